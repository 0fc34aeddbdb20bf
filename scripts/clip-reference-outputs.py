#!/usr/bin/env python3
"""Reference outputs of a CLIP model folder (HF layout: config.json + model.safetensors, F32 or
F16), computed by the PyTorch re-implementation of transformers' CLIPModel in
make-onnx-fixture.py: image_embeds for the pixel formula x[i] = sin(0.01 i) over [1, 3, S, S],
and text_embeds for the given token ids. Prints JSON. Used to pin the outputs of the full-size
ViT-B/32 checkpoint in test/encoders/real-config.test.ts:

  python3 scripts/clip-reference-outputs.py --model DIR --ids 31,0,3,5,0,17,32
"""
import argparse
import importlib.util
import json
import os
import struct

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("make_onnx_fixture", os.path.join(HERE, "make-onnx-fixture.py"))
fixture = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fixture)

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    with open(path, "rb") as f:
        length = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(length))
        data = f.read()
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__" or entry["dtype"] not in DTYPES:
            continue  # position_ids (I64) are buffers, not parameters
        start, end = entry["data_offsets"]
        values = torch.frombuffer(bytearray(data[start:end]), dtype=DTYPES[entry["dtype"]])
        tensors[name] = values.to(torch.float32).reshape(entry["shape"])
    return tensors


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--ids", required=True, help="comma-separated token ids of one text")
    parser.add_argument("--show", type=int, default=8, help="how many leading values to print")
    args = parser.parse_args()
    with open(os.path.join(args.model, "config.json")) as f:
        config = json.load(f)
    for tower in ("text_config", "vision_config"):
        config[tower].setdefault("layer_norm_eps", 1e-5)
    model = fixture.Clip(config).eval()
    model.load_state_dict(read_safetensors(os.path.join(args.model, "model.safetensors")))
    size = config["vision_config"]["image_size"]
    pixels = torch.sin(torch.arange(3 * size * size, dtype=torch.float64) * 0.01).to(torch.float32).reshape(1, 3, size, size)
    ids = torch.tensor([[int(i) for i in args.ids.split(",")]], dtype=torch.int64)
    with torch.no_grad():
        image_embeds, _ = fixture.VisionWithProjection(model)(pixels)
        text_embeds, _ = fixture.TextWithProjection(model)(ids, torch.ones_like(ids))
    print(json.dumps({
        "image_embeds": [float(v) for v in image_embeds[0, : args.show]],
        "text_embeds": [float(v) for v in text_embeds[0, : args.show]],
        "image_sum": float(image_embeds.double().sum()),
        "text_sum": float(text_embeds.double().sum()),
    }))


if __name__ == "__main__":
    main()
