#!/usr/bin/env python3
"""Reference pixels of CLIP's preprocessing (and SigLIP's squash), computed the way Hugging Face's CLIPImageProcessor
does it, with PIL: resize the shortest edge to `size` with PIL's bicubic filter (resample=3,
reducing_gap=None, the long side truncated), center crop (top = (h - crop) // 2, left likewise),
then the uint8 values. Rescaling and normalising are plain arithmetic on these.

The input images are generated from formulas (written into the output) so the TypeScript test
builds the same bytes without PIL; it never runs this script.

  python3 scripts/pil-reference-pixels.py --out test/fixtures/pil-reference/clip-preprocessing.json
"""
import argparse
import json

from PIL import Image, __version__ as pil_version

CASES = [
    # A sawtooth of period 256/7 along the flat RGB index: large jumps, the hardest case for two
    # implementations of the same cubic filter to agree on. Downscaled 1.25x.
    {"name": "sawtooth-96x40", "width": 96, "height": 40, "formula": "(i * 7) % 256", "size": 32, "crop": 32},
    # A smooth ramp, upscaled 1.6x: x and y mixed per channel.
    {"name": "ramp-20x24", "width": 20, "height": 24, "formula": "x * 9 + y * 2 + c * 15", "size": 32, "crop": 32},
    # Hash noise (Knuth's multiplicative hash of the flat index, top byte), shrunk 3.1x: a wide kernel.
    {"name": "noise-480x200", "width": 480, "height": 200, "formula": "((i * 2654435761) % 4294967296) >> 24", "size": 64, "crop": 64},
    # SigLIP's form (`size: {height, width}`, no crop): squashed to exactly 24×24, the aspect not
    # kept: 4x narrower and 1.67x shorter at once.
    {"name": "sawtooth-96x40-squash", "width": 96, "height": 40, "formula": "(i * 7) % 256", "squash": [24, 24]},
]


def pixel(formula, i, x, y, c):
    return eval(formula, {}, {"i": i, "x": x, "y": y, "c": c})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    results = []
    for case in CASES:
        w, h = case["width"], case["height"]
        raw = bytes(pixel(case["formula"], (y * w + x) * 3 + c, x, y, c) for y in range(h) for x in range(w) for c in range(3))
        image = Image.frombytes("RGB", (w, h), raw)
        if "squash" in case:
            # transformers' resize for size {height, width}: exactly that size, then no crop.
            out_w, out_h = case["squash"]
            cropped = image.resize((out_w, out_h), resample=Image.BICUBIC, reducing_gap=None)
            top, left = 0, 0
        else:
            size = case["size"]
            # transformers' get_resize_output_image_size: the short side becomes `size`, the long side int(size * long / short).
            out_w, out_h = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
            resized = image.resize((out_w, out_h), resample=Image.BICUBIC, reducing_gap=None)
            crop = case["crop"]
            top, left = (out_h - crop) // 2, (out_w - crop) // 2
            cropped = resized.crop((left, top, left + crop, top + crop))
        # Channels first, as pixel_values: [3][height][width].
        values = [[[cropped.getpixel((x, y))[c] for x in range(cropped.width)] for y in range(cropped.height)] for c in range(3)]
        results.append({**case, "resized": [out_w, out_h], "top": top, "left": left, "uint8": values})
    with open(args.out, "w") as f:
        json.dump({"pil": pil_version, "cases": results}, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
