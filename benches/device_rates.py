"""Per-worker rates on a GPU machine, for the README's cost table: extraction ms/image of
each method on the GPU (and that machine's CPU), and re-rank pairs/s on its cores. Prints
one JSON line per measurement. Run there with the package, kornia and the weights files
importable, on a folder of sample images (``.devcarry/imgs``: SMVS and Oxford photos).
The H200 run of 2026-11-30 is kept in ``docs/measured/gpu_h200_2026-11-30.jsonl``."""

import glob
import json
import os
import time

import numpy as np
import torch

imgs = sorted(glob.glob(os.environ.get("IMAGES", ".devcarry/imgs") + "/*.jpg"))
print(
    json.dumps(
        {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cpus": os.cpu_count()}
    ),
    flush=True,
)
from PIL import Image

import ilias_rerank as ir
from ilias_rerank.extractors import make_extractor

pil = [Image.open(p).convert("RGB") for p in imgs]
for method, n in [("sift", 1024), ("aliked", 2048), ("disk", 2048), ("xfeat", 2048)]:
    for device in ("cuda", "cpu"):
        if device == "cpu" and method in ("aliked", "disk"):
            torch.set_num_threads(os.cpu_count())
        ex = make_extractor(method, n, 1024, device)
        ex(pil[0])
        ex(pil[1])  # warm up
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        feats = [ex(p) for p in pil]
        if device == "cuda":
            torch.cuda.synchronize()
        dt = (time.perf_counter() - t) / len(pil)
        print(
            json.dumps(
                {
                    "method": method,
                    "features": n,
                    "device": device,
                    "ms_per_image": 1e3 * dt,
                    "mean_keypoints": float(np.mean([len(f) for f in feats])),
                }
            ),
            flush=True,
        )
        if device == "cpu" and method in ("aliked", "disk"):
            break
f = make_extractor("sift", 1024, 1024, "cpu")
fs = [f(p) for p in pil]
cands = [fs[i % len(fs)] for i in range(1000)]
for threads in (1, os.cpu_count()):
    t = time.perf_counter()
    ir.rerank(fs[0], cands, config={"num_threads": threads})
    dt = time.perf_counter() - t
    t = time.perf_counter()
    ir.rerank(fs[0], cands, config={"num_threads": threads})
    dt = min(dt, time.perf_counter() - t)
    print(
        json.dumps({"rerank_threads": threads, "pairs_per_s": 1000 / dt, "isa": ir.cpu_features()}),
        flush=True,
    )
