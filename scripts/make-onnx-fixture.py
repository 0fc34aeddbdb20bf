#!/usr/bin/env python3
"""Writes a CLIP model folder in the Hugging Face layout, with ONNX exports and reference outputs.

Used to make the committed test fixture (test/fixtures/clip-tiny) and, at benchmark time, a
ViT-B/32-shaped random model. Needs only plain PyTorch (Debian's python3-torch 1.13 works:
`apt-get install python3-torch`); Hugging Face's python transformers is not needed, so the
model below is a small re-implementation of transformers' CLIPModel with its parameter names
and arithmetic. The TypeScript tests never run this script: they read what it committed.

  python3 scripts/make-onnx-fixture.py --preset tiny --out test/fixtures/clip-tiny
  python3 scripts/make-onnx-fixture.py --preset vit-b-32 --out /tmp/clip-b32 --no-reference

A text graph with a fixed sequence length, as torch.onnx.export of openai/CLIP without a dynamic
sequence axis writes it (input_ids [batch_size, N]), on the weights of an existing folder:

  python3 scripts/make-onnx-fixture.py --preset tiny --weights-from test/fixtures/clip-tiny \
      --text-sequence-length 16 --text-only --no-reference --out test/fixtures/clip-tiny-text16
"""
import argparse
import json
import math
import os
import struct

import torch
from torch import nn

WORDS = [
    "a", "an", "the", "photo", "picture", "of", "red", "green", "blue", "yellow", "small", "large",
    "circle", "square", "triangle", "circles", "squares", "cat", "dog", "on", "left", "right", "above", "below", "and",
    "two", "three", "is", "there", ".", ",",
]
BOS = "<|startoftext|>"
EOS = "<|endoftext|>"

PRESETS = {
    # Hidden 32, 2 layers: a few KB of weights, but every code path of the real model.
    # The towers use different activations so both are checked against torch.
    "tiny": {
        "projection_dim": 16,
        "text_config": {"vocab_size": len(WORDS) + 2, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                        "num_attention_heads": 4, "max_position_embeddings": 16, "hidden_act": "gelu"},
        "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                          "image_size": 32, "patch_size": 8, "hidden_act": "quick_gelu"},
    },
    # openai/clip-vit-base-patch32's sizes (eos_token_id 2: the original config's legacy value).
    "vit-b-32": {
        "projection_dim": 512,
        "text_config": {"vocab_size": 49408, "hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12,
                        "num_attention_heads": 8, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
                        "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1},
        "vision_config": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                          "image_size": 224, "patch_size": 32, "hidden_act": "quick_gelu"},
    },
}


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.k_proj = nn.Linear(hidden, hidden)
        self.v_proj = nn.Linear(hidden, hidden)
        self.q_proj = nn.Linear(hidden, hidden)
        self.out_proj = nn.Linear(hidden, hidden)

    def forward(self, x, bias):
        n, length, hidden = x.shape
        def split(t):
            return t.reshape(n, length, self.heads, self.head_dim).transpose(1, 2)
        q = split(self.q_proj(x) * self.head_dim ** -0.5)
        k = split(self.k_proj(x))
        v = split(self.v_proj(x))
        scores = q @ k.transpose(-1, -2)
        if bias is not None:
            scores = scores + bias
        context = torch.softmax(scores, dim=-1) @ v
        return self.out_proj(context.transpose(1, 2).reshape(n, length, hidden))


class Mlp(nn.Module):
    def __init__(self, hidden, intermediate, act):
        super().__init__()
        self.act = quick_gelu if act == "quick_gelu" else nn.GELU()
        self.fc1 = nn.Linear(hidden, intermediate)
        self.fc2 = nn.Linear(intermediate, hidden)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class EncoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = Attention(c["hidden_size"], c["num_attention_heads"])
        self.layer_norm1 = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.mlp = Mlp(c["hidden_size"], c["intermediate_size"], c["hidden_act"])
        self.layer_norm2 = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, x, bias):
        x = x + self.self_attn(self.layer_norm1(x), bias)
        return x + self.mlp(self.layer_norm2(x))


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList([EncoderLayer(c) for _ in range(c["num_hidden_layers"])])

    def forward(self, x, bias=None):
        for layer in self.layers:
            x = layer(x, bias)
        return x


class TextEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.token_embedding = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.position_embedding = nn.Embedding(c["max_position_embeddings"], c["hidden_size"])


class TextTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embeddings = TextEmbeddings(c)
        self.encoder = Encoder(c)
        self.final_layer_norm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, input_ids, attention_mask):
        n, length = input_ids.shape
        positions = torch.arange(length, device=input_ids.device)
        x = self.embeddings.token_embedding(input_ids) + self.embeddings.position_embedding(positions)[None]
        blocked = torch.finfo(x.dtype).min
        causal = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
        padding = attention_mask[:, None, None, :] == 0
        bias = torch.zeros(n, 1, length, length).masked_fill(causal[None, None] | padding, blocked)
        x = self.final_layer_norm(self.encoder(x, bias))
        if self.c["eos_token_id"] == 2:
            # Legacy: the original configs said 2; EOS is the largest id in CLIP's vocabulary.
            eos = input_ids.to(torch.int32).argmax(dim=-1)
        else:
            eos = (input_ids == self.c["eos_token_id"]).to(torch.int32).argmax(dim=-1)
        pooled = x[torch.arange(n), eos]
        return x, pooled


class VisionEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.zeros(c["hidden_size"]))
        self.patch_embedding = nn.Conv2d(3, c["hidden_size"], c["patch_size"], stride=c["patch_size"], bias=False)
        patches = (c["image_size"] // c["patch_size"]) ** 2
        self.position_embedding = nn.Embedding(patches + 1, c["hidden_size"])


class VisionTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = VisionEmbeddings(c)
        self.pre_layrnorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.encoder = Encoder(c)
        self.post_layernorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, pixel_values):
        n = pixel_values.shape[0]
        patches = self.embeddings.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        cls = self.embeddings.class_embedding.expand(n, 1, -1)
        x = torch.cat([cls, patches], dim=1) + self.embeddings.position_embedding.weight[None]
        x = self.encoder(self.pre_layrnorm(x))
        return x, self.post_layernorm(x[:, 0, :])


class Clip(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.text_model = TextTransformer(config["text_config"])
        self.vision_model = VisionTransformer(config["vision_config"])
        self.visual_projection = nn.Linear(config["vision_config"]["hidden_size"], config["projection_dim"], bias=False)
        self.text_projection = nn.Linear(config["text_config"]["hidden_size"], config["projection_dim"], bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(config["logit_scale_init_value"]))


class VisionWithProjection(nn.Module):
    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, pixel_values):
        tokens, pooled = self.clip.vision_model(pixel_values)
        return self.clip.visual_projection(pooled), tokens


class TextWithProjection(nn.Module):
    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, input_ids, attention_mask):
        tokens, pooled = self.clip.text_model(input_ids, attention_mask)
        return self.clip.text_projection(pooled), tokens


def full_config(preset):
    p = PRESETS[preset]
    text = {"vocab_size": 49408, "hidden_size": 512, "intermediate_size": 2048, "projection_dim": p["projection_dim"],
            "num_hidden_layers": 12, "num_attention_heads": 8, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-5, "pad_token_id": None, "bos_token_id": None, "eos_token_id": None,
            "model_type": "clip_text_model"}
    text.update(p["text_config"])
    if text["eos_token_id"] is None:
        # The tiny vocabulary: words first, then BOS and EOS (largest ids, like CLIP's).
        text.update({"bos_token_id": len(WORDS), "eos_token_id": len(WORDS) + 1, "pad_token_id": len(WORDS) + 1})
    vision = {"hidden_size": 768, "intermediate_size": 3072, "projection_dim": p["projection_dim"], "num_hidden_layers": 12,
              "num_attention_heads": 12, "num_channels": 3, "image_size": 224, "patch_size": 32,
              "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "model_type": "clip_vision_model"}
    vision.update(p["vision_config"])
    return {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": p["projection_dim"],
            "logit_scale_init_value": 2.6592, "text_config": text, "vision_config": vision}


def randomise(model, generator, spread):
    """Random weights. `spread` > 0 draws everything (norms and biases too) from a wide
    normal, so a test notices a norm or bias used wrongly; 0 keeps torch's defaults."""
    if spread == 0:
        return
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if name == "logit_scale":
                continue
            if "norm" in name and name.endswith("weight"):
                parameter.copy_(1 + 0.2 * noise)
            else:
                parameter.copy_(spread * noise)


def write_safetensors(path, tensors):
    """safetensors by hand: 8-byte little-endian header length, JSON header, raw F32 bytes."""
    header = {"__metadata__": {"format": "pt"}}
    offset = 0
    blobs = []
    for name, tensor in tensors:
        data = tensor.detach().contiguous().to(torch.float32).numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensor.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * ((8 - (len(text.encode()) + 8) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text.encode())))
        f.write(text.encode())
        for blob in blobs:
            f.write(blob)


def read_safetensors(path):
    """The F32 tensors of a safetensors file (the layout write_safetensors writes)."""
    with open(path, "rb") as f:
        length = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(length))
        data = f.read()
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] != "F32":
            raise SystemExit(f"{path}: {name} is {entry['dtype']}, expected F32")
        start, end = entry["data_offsets"]
        values = torch.frombuffer(bytearray(data[start:end]), dtype=torch.float32)
        tensors[name] = values.reshape(entry["shape"])
    return tensors


def tokenizer_json(vocab):
    special = lambda token: {"id": vocab[token], "content": token, "single_word": False, "lstrip": False,
                             "rstrip": False, "normalized": False, "special": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [special(BOS), special(EOS)],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": EOS, "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": EOS, "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": EOS, "type_id": 1}}],
            "special_tokens": {BOS: {"id": BOS, "ids": [vocab[BOS]], "tokens": [BOS]},
                               EOS: {"id": EOS, "ids": [vocab[EOS]], "tokens": [EOS]}},
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": EOS},
    }


def tokenize(text, vocab, max_length):
    """What the tokenizer.json above does (lowercase, split words from punctuation), then
    HF Python's truncation (content first, so EOS survives) and padding with EOS."""
    import re
    words = re.findall(r"\w+|[^\w\s]+", text.lower())
    ids = [vocab.get(w, vocab[EOS]) for w in words][: max_length - 2]
    ids = [vocab[BOS]] + ids + [vocab[EOS]]
    mask = [1] * len(ids) + [0] * (max_length - len(ids))
    return ids + [vocab[EOS]] * (max_length - len(ids)), mask


def pixel_formula(n, image_size):
    # Written out in reference.json so the TypeScript test recomputes the same inputs.
    index = torch.arange(n * 3 * image_size * image_size, dtype=torch.float64).reshape(n, 3, image_size, image_size)
    values = torch.sin(index * 0.37 + 1.3) * 1.7
    return values.to(torch.float32)


PIXEL_FORMULA = "x[i] = float32(1.7 * sin(0.37 * i + 1.3)) for the flat row-major index i of [N, 3, H, W]"
TEXTS = [
    "a photo of a red circle",
    "Two blue squares, left of the yellow triangle.",
    "a small green dog on the right of a large cat above two red squares and three blue circles",
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--no-reference", action="store_true", help="skip reference.json (benchmark models)")
    parser.add_argument("--weights-from", help="take the weights from this folder's model.safetensors instead of drawing them")
    parser.add_argument("--text-sequence-length", type=int,
                        help="export the text graph with this fixed sequence length (no dynamic sequence axis)")
    parser.add_argument("--text-only", action="store_true", help="write only onnx/text_model.onnx (no vision graph, no safetensors)")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    config = full_config(args.preset)
    model = Clip(config).eval()
    randomise(model, generator, 0.3 if args.preset == "tiny" else 0.0)
    if args.weights_from:
        model.load_state_dict(read_safetensors(os.path.join(args.weights_from, "model.safetensors")))
    os.makedirs(os.path.join(args.out, "onnx"), exist_ok=True)

    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    if not args.text_only:
        write_safetensors(os.path.join(args.out, "model.safetensors"), list(model.state_dict().items()))

    vocab = {word: i for i, word in enumerate(WORDS)}
    vocab[BOS] = len(WORDS)
    vocab[EOS] = len(WORDS) + 1
    max_length = config["text_config"]["max_position_embeddings"]
    with open(os.path.join(args.out, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(vocab), f, indent=1)
        f.write("\n")
    with open(os.path.join(args.out, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "CLIPTokenizer", "model_max_length": max_length, "bos_token": BOS, "eos_token": EOS,
                   "pad_token": EOS, "unk_token": EOS, "do_lower_case": True, "clean_up_tokenization_spaces": True},
                  f, indent=2)
        f.write("\n")
    with open(os.path.join(args.out, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": BOS, "eos_token": EOS, "pad_token": EOS, "unk_token": EOS}, f, indent=2)
        f.write("\n")
    size = config["vision_config"]["image_size"]
    with open(os.path.join(args.out, "preprocessor_config.json"), "w") as f:
        json.dump({"image_processor_type": "CLIPImageProcessor", "feature_extractor_type": "CLIPFeatureExtractor",
                   "do_resize": True, "size": {"shortest_edge": size}, "resample": 3, "do_center_crop": True,
                   "crop_size": {"height": size, "width": size}, "do_rescale": True, "rescale_factor": 1 / 255,
                   "do_normalize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
                   "image_std": [0.26862954, 0.26130258, 0.27577711], "do_convert_rgb": True}, f, indent=2)
        f.write("\n")

    vision = VisionWithProjection(model).eval()
    text = TextWithProjection(model).eval()
    pixels = pixel_formula(2, size)
    sequence_length = args.text_sequence_length or max_length
    if sequence_length > max_length:
        raise SystemExit(f"--text-sequence-length {sequence_length} exceeds max_position_embeddings {max_length}")
    encoded = [tokenize(t, vocab, sequence_length) for t in TEXTS]
    input_ids = torch.tensor([ids for ids, _ in encoded], dtype=torch.int64)
    attention_mask = torch.tensor([mask for _, mask in encoded], dtype=torch.int64)
    # Without a dynamic sequence axis the graph accepts exactly sequence_length tokens.
    text_axes = {0: "batch_size"} if args.text_sequence_length else {0: "batch_size", 1: "sequence_length"}
    with torch.no_grad():
        if not args.text_only:
            torch.onnx.export(vision, (pixels,), os.path.join(args.out, "onnx", "vision_model.onnx"), opset_version=14,
                              input_names=["pixel_values"], output_names=["image_embeds", "last_hidden_state"],
                              dynamic_axes={"pixel_values": {0: "batch_size"}, "image_embeds": {0: "batch_size"},
                                            "last_hidden_state": {0: "batch_size"}})
        torch.onnx.export(text, (input_ids, attention_mask), os.path.join(args.out, "onnx", "text_model.onnx"),
                          opset_version=14, input_names=["input_ids", "attention_mask"],
                          output_names=["text_embeds", "last_hidden_state"],
                          dynamic_axes={"input_ids": text_axes, "attention_mask": text_axes,
                                        "text_embeds": {0: "batch_size"}, "last_hidden_state": text_axes})
        if args.no_reference:
            return
        image_embeds, image_tokens = vision(pixels)
        text_embeds, text_tokens = text(input_ids, attention_mask)
    rounded = lambda t: [round(float(v), 7) for v in t.flatten()] if t.dim() <= 1 else [rounded(r) for r in t]
    reference = {
        "preset": args.preset,
        "seed": args.seed,
        "torch": torch.__version__,
        "pixel_shape": list(pixels.shape),
        "pixel_formula": PIXEL_FORMULA,
        "pixel_sum": float(pixels.double().sum()),
        "texts": TEXTS,
        "input_ids": input_ids.tolist(),
        "attention_mask": attention_mask.tolist(),
        "image_embeds": rounded(image_embeds),
        "text_embeds": rounded(text_embeds),
        "image_tokens": rounded(image_tokens),
        "text_tokens": rounded(text_tokens),
        "logit_scale": float(model.logit_scale),
    }
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(reference, f)
        f.write("\n")


if __name__ == "__main__":
    main()
