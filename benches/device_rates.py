"""Per-worker rates on a GPU machine, for the README's cost table: extraction ms/image of
each method on the GPU (and that machine's CPU), and re-rank pairs/s on its cores. Prints
one JSON line per measurement. Run there with the package, kornia and the weights files
importable, on a folder of sample images (``.devcarry/imgs``: SMVS and Oxford photos).
The H200 run of 2026-11-30 is kept in ``docs/measured/gpu_h200_2026-11-30.jsonl``; its
kornia SIFT figure (608 ms/image) timed the unbatched per-image path on images of every
shape and is withdrawn (README, "Extraction").

SIFT on the GPU is measured the way it runs now (issue 14): warm, synchronised, decoding
timed apart: ``decode`` (the thread pool alone), ``detect`` (prepared images of one shape
in batches of ``GPU_BATCH``, synchronised) and ``end_to_end`` (``extract_local(paths,
device="cuda")``: decode threads beside the batched detection)."""

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


def sift_batched(n: int = 1024, rounds: int = 3) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from ilias_rerank.extractors.pool import GPU_BATCH

    ex = make_extractor("sift", n, 1024, "cuda", backend="kornia")
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        t = time.perf_counter()
        prepared = list(pool.map(ex.prepare, imgs))
        decode = (time.perf_counter() - t) / len(imgs)
    shape = max(
        {a.shape for a, _ in prepared}, key=lambda s: sum(a.shape == s for a, _ in prepared)
    )
    same = [a for a, _ in prepared if a.shape == shape] or [prepared[0][0]]
    batch = [same[i % len(same)] for i in range(GPU_BATCH)]
    ex._detect_many(batch)  # warm-up: kernels, allocator, this shape
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(8):
            ex._detect_many(batch)
        torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t) / (8 * GPU_BATCH))
    ir.extract_local(imgs[:GPU_BATCH], num_features=n, device="cuda", backend="kornia")
    t = time.perf_counter()
    ir.extract_local(imgs, num_features=n, device="cuda", backend="kornia", workers=os.cpu_count())
    torch.cuda.synchronize()
    e2e = (time.perf_counter() - t) / len(imgs)
    print(
        json.dumps(
            {
                "method": "sift-batched",
                "features": n,
                "device": "cuda",
                "shape": list(shape),
                "batch": GPU_BATCH,
                "decode_ms_per_image_threads": 1e3 * decode,
                "detect_ms_per_image": 1e3 * best,
                "detect_images_per_s": 1 / best,
                "end_to_end_ms_per_image": 1e3 * e2e,
            }
        ),
        flush=True,
    )


sift_batched()
pil = [Image.open(p).convert("RGB") for p in imgs]
for method, n in [("aliked", 2048), ("disk", 2048), ("xfeat", 2048)]:
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
f = make_extractor("sift", 1024, 1024, "cpu", backend="opencv")
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
