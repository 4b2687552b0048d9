"""Local-feature extraction, every SIFT backend side by side in one run (issue 14).

For each row (backend x features x decoding), on the same photos:

- **ms/image on one core**, JPEG decode included: the extractor in this process with one
  thread (OpenCV and torch set to 1), images one after another; the decode-and-resize part
  is timed apart (``prepare``) and reported next to the whole;
- **images/s on both cores**: ``extract_local(paths, workers=2)`` (two worker processes of one
  thread; the pool's start is included) and the ratio to one core;
- the peer in the same run: plain OpenCV (``cv2.imread`` + ``cv2.resize`` +
  ``SIFT.detectAndCompute``, one thread), what a user would write by hand.

Every row gets the same rounds, interleaved (row A, B, C, A, B, C, ...), and the median of
the rounds' means; one warm-up image per row first. Photos: the roxford/rparis subset's
database images (357 Flickr photos, <= 1024 px) by default; ``--set smvs`` takes the 100
SMVS E63 phone photos (1600 x 1200, shrunk to 1024). Accuracy of the same backends is
measured by ``benches/accuracy.py`` (rows ``sift-* opencv`` / ``kornia-rs`` / ``kornia``).

Writes ``out/extract.{json,md}``. Run with both cores idle:
``.venv/bin/python benches/extract.py [--images 48] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import platform
import statistics
import sys
import time
from pathlib import Path

from report import write_report

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"

#: (row name, make_extractor settings); the first row is the default.
ROWS = [
    ("opencv SIFT-1024 (default)", {"backend": "opencv", "num_features": 1024}),
    ("opencv SIFT-1024, full decode", {"backend": "opencv", "num_features": 1024, "draft": False}),
    ("opencv SIFT-1024 at 768 px", {"backend": "opencv", "num_features": 1024, "max_side": 768}),
    ("opencv SIFT-1024 at 512 px", {"backend": "opencv", "num_features": 1024, "max_side": 512}),
    ("opencv SIFT-2048", {"backend": "opencv", "num_features": 2048}),
    ("opencv SIFT-4096", {"backend": "opencv", "num_features": 4096}),
    ("kornia-rs SIFT-1024", {"backend": "kornia-rs", "num_features": 1024}),
    (
        "kornia-rs SIFT-1024 doubled octave",
        {"backend": "kornia-rs", "num_features": 1024, "upsample": True},
    ),
    ("kornia SIFT-1024 (previous default)", {"backend": "kornia", "num_features": 1024}),
]


def photos(which: str, n: int) -> list[Path]:
    if which == "smvs":
        paths = sorted((DATA / "smvs_dvd_covers" / "E63").glob("*.jpg"))
    else:
        root = DATA / "roxford_rparis_pixel_subset"
        paths = sorted(p for p in root.glob("*/*/*.jpg"))
    if not paths:
        sys.exit(f"no photos under {DATA}: this bench needs ../shared/data")
    step = max(1, len(paths) // n)
    return paths[::step][:n]


def one_core(settings: dict, paths: list[Path]) -> tuple[float, float]:
    """(ms per image, decode-and-resize ms per image), one thread, in this process."""
    from ilias_rerank.extractors import make_extractor

    ex = make_extractor("sift", **settings)
    ex(paths[0])  # warm-up: builds the detector, loads libraries
    t0 = time.perf_counter()
    for p in paths:
        ex(p)
    total = (time.perf_counter() - t0) / len(paths)
    t0 = time.perf_counter()
    for p in paths:
        ex.prepare(p)
    decode = (time.perf_counter() - t0) / len(paths)
    return 1e3 * total, 1e3 * decode


def two_cores(settings: dict, paths: list[Path]) -> float:
    """Images per second with two worker processes (pool start included)."""
    import ilias_rerank as ir

    settings = dict(settings)
    t0 = time.perf_counter()
    ir.extract_local(paths, method="sift", workers=2, progress=False, **settings)
    return len(paths) / (time.perf_counter() - t0)


def opencv_by_hand(paths: list[Path], n: int = 1024) -> float:
    import cv2

    sift = cv2.SIFT_create(nfeatures=n)
    img = cv2.imread(str(paths[0]), cv2.IMREAD_GRAYSCALE)
    sift.detectAndCompute(img, None)
    t0 = time.perf_counter()
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if max(img.shape) > 1024:
            s = 1024 / max(img.shape)
            img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        sift.detectAndCompute(img, None)
    return 1e3 * (time.perf_counter() - t0) / len(paths)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=48, help="photos per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--set", choices=("roxford", "smvs"), default="roxford")
    ap.add_argument("--rows", nargs="*", help="row names (default: all)")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "extract")
    args = ap.parse_args(argv)

    import cv2
    import torch

    import ilias_rerank as ir

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    paths = photos(args.set, args.images)
    rows = [(n, s) for n, s in ROWS if not args.rows or n in args.rows]
    samples: dict[str, dict[str, list[float]]] = {
        n: {"ms": [], "decode_ms": [], "two_core_img_s": []} for n, _ in rows
    }
    peer: list[float] = []
    for r in range(args.rounds):
        peer.append(opencv_by_hand(paths))
        for name, settings in rows:
            ms, dec = one_core(settings, paths)
            samples[name]["ms"].append(ms)
            samples[name]["decode_ms"].append(dec)
            samples[name]["two_core_img_s"].append(two_cores(settings, paths))
            print(f"round {r + 1}: {name}: {ms:.0f} ms/img ({dec:.0f} decode)", flush=True)
    peer_ms = statistics.median(peer)
    base = statistics.median(samples[rows[0][0]]["ms"]) if rows else float("nan")
    results = []
    for name, settings in rows:
        s = samples[name]
        ms = statistics.median(s["ms"])
        two = statistics.median(s["two_core_img_s"])
        results.append(
            {
                "name": name,
                "settings": settings,
                "ms_per_image": ms,
                "decode_ms_per_image": statistics.median(s["decode_ms"]),
                "one_core_img_s": 1e3 / ms,
                "two_core_img_s": two,
                "two_core_speedup": two * ms / 1e3,
                "vs_opencv_by_hand": ms / peer_ms,
                "vs_default": ms / base,
            }
        )
    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, kernels {ir.cpu_features()}",
        "date": time.strftime("%Y-%m-%d"),
        "photos": f"{len(paths)} {args.set} photos, median of {args.rounds} interleaved rounds",
        "opencv_by_hand_ms": peer_ms,
        "rows": results,
    }
    write_report(args.out, summary, render(summary))
    return 0


def render(summary: dict) -> list[str]:
    lines = [
        f"{summary['photos']}; {summary['machine']}; {summary['date']}. Peer in the same run: "
        f"plain OpenCV (imread + resize + SIFT-1024, one thread) "
        f"{summary['opencv_by_hand_ms']:.0f} ms/image.",
        "",
        "| backend | ms/image, 1 core (decode incl.) | of which decode | images/s, 2 cores "
        "| 2 cores / 1 core | vs plain OpenCV | vs default |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in summary["rows"]:
        lines.append(
            f"| {r['name']} | {r['ms_per_image']:.0f} | {r['decode_ms_per_image']:.0f} "
            f"| {r['two_core_img_s']:.1f} | {r['two_core_speedup']:.2f}x "
            f"| {r['vs_opencv_by_hand']:.2f}x | {r['vs_default']:.2f}x |"
        )
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
