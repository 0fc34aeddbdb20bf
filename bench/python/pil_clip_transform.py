#!/usr/bin/env python3
"""The baseline of bench/images.ts: CLIP's own image transform as PyTorch users run it, PIL +
torchvision, over the same files, one process per core.

Each image: PIL decode + convert('RGB'), Resize(224, BICUBIC) (the shortest side), CenterCrop(224),
ToTensor, Normalize with CLIP's mean and std -- the transform of openai/CLIP's clip.py. Torch uses
one thread per process (torch.set_num_threads(1)); the processes of a multiprocessing Pool share
the files (as a DataLoader's workers would). The pool is started and warmed up (one pass over the
files) before the timed runs, and the workers send back one float per image, not the tensor: the
baseline pays no transfer, which only flatters it.

Prints one JSON line: {"images_per_s": best, "mean_images_per_s", "processes", "files", "runs",
"versions"}; with --split, also "split_ms": the CPU milliseconds per image of decoding, of resizing
and cropping, and of ToTensor + Normalize, one image at a time in this process. Exit 3 (with a
line on stderr) when torch, torchvision or PIL cannot be imported.

  python3 bench/python/pil_clip_transform.py FOLDER [--processes N] [--runs 3] [--split]
"""
import argparse
import json
import os
import sys
import time

try:
    import PIL
    import torch
    import torchvision
    from PIL import Image
    from torchvision import transforms
    from torchvision.transforms import InterpolationMode
except ImportError as error:  # the bench prints that the baseline is unavailable
    print(f"cannot import the baseline's packages: {error}", file=sys.stderr)
    sys.exit(3)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_transform = None


def _geometry():
    return [transforms.Resize(224, interpolation=InterpolationMode.BICUBIC), transforms.CenterCrop(224)]


def _values():
    return [transforms.ToTensor(), transforms.Normalize(CLIP_MEAN, CLIP_STD)]


def _start_worker():
    global _transform
    torch.set_num_threads(1)
    # openai/CLIP's _transform(224), less its _convert_image_to_rgb (done at open, below).
    _transform = transforms.Compose(_geometry() + _values())


def _split(files):
    """CPU ms per image of each step, one image at a time (after one pass to warm up)."""
    torch.set_num_threads(1)
    geometry = transforms.Compose(_geometry())
    values = transforms.Compose(_values())
    totals = [0.0, 0.0, 0.0]
    for timed in (False, True):
        for path in files:
            a = time.process_time()
            with Image.open(path) as image:
                rgb = image.convert("RGB")
            b = time.process_time()
            cropped = geometry(rgb)
            c = time.process_time()
            values(cropped)
            d = time.process_time()
            if timed:
                totals[0] += b - a
                totals[1] += c - b
                totals[2] += d - c
    return {"decode": totals[0] * 1e3 / len(files), "resize_crop": totals[1] * 1e3 / len(files), "to_tensor_normalise": totals[2] * 1e3 / len(files)}


def _one(path):
    with Image.open(path) as image:
        pixels = _transform(image.convert("RGB"))
    return float(pixels[0, 0, 0])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--processes", type=int, default=os.cpu_count())
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--split", action="store_true")
    args = parser.parse_args()
    files = sorted(os.path.join(args.folder, name) for name in os.listdir(args.folder) if name.lower().endswith((".jpg", ".jpeg", ".png", ".webp")))
    if not files:
        print(f"no images in {args.folder}", file=sys.stderr)
        sys.exit(2)
    import multiprocessing

    chunk = max(1, len(files) // (args.processes * 8))
    with multiprocessing.get_context("fork").Pool(args.processes, initializer=_start_worker) as pool:
        pool.map(_one, files, chunksize=chunk)  # warm-up: workers started, files in the page cache
        seconds = []
        for _ in range(args.runs):
            started = time.perf_counter()
            pool.map(_one, files, chunksize=chunk)
            seconds.append(time.perf_counter() - started)
    split = {"split_ms": _split(files)} if args.split else {}
    print(json.dumps({
        **split,
        "images_per_s": len(files) / min(seconds),
        "mean_images_per_s": len(files) / (sum(seconds) / len(seconds)),
        "processes": args.processes,
        "files": len(files),
        "runs": args.runs,
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__, "torchvision": torchvision.__version__, "PIL": PIL.__version__},
    }))


if __name__ == "__main__":
    main()
