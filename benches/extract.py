"""Local-feature extraction, every SIFT backend side by side in one run (issue 14).

For each row (backend x features x decoding), on the same photos:

- **ms/image on one core**, JPEG decode included: the extractor in this process with one
  thread (OpenCV and torch set to 1), images one after another; the decode-and-resize part
  is timed apart (``prepare``) and reported next to the whole;
- **images/s on both cores**: ``extract_local(paths * 3, workers=2)`` (two threads of this
  process, the pool's default) and the ratio to one core; for the default row also with
  ``isolate=True`` (two worker processes started as ``python -m``; their start included);
  the rust backend (GIL released, images spread over the core's threads) runs the same batch
  in one call of :meth:`RustSift.extract_many` with 2 threads, and its one-core figure is
  the same call with 1 thread (``rust ... 1 thread`` in the JSON);
- the peer in the same run: plain OpenCV (``cv2.imread`` + ``cv2.resize`` +
  ``SIFT.detectAndCompute``, one thread), what a user would write by hand, on one core and
  in two threads (a detector each): the scaling a hand-written loop gets on this machine.

Target (issue 21): two cores >= 1.8x one core on the default row.

The photos are read once before timing (page cache warm). Every row gets the same
rounds, interleaved (row A, B, C, A, B, C, ...), and the median of
the rounds' means; one warm-up image per row first. Photos: half from the roxford/rparis
subset's database (Flickr, <= 1024 px), half SMVS E63 phone photos (1600 x 1200, which the
768 px default decodes at 1/2 scale). Accuracy of the same settings: ``benches/accuracy.py
--backends``.

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
    ("rust SIFT-1024 (default: 768 px)", {"backend": "rust"}),
    ("opencv SIFT-1024 (768 px, previous default)", {"backend": "opencv"}),
    ("opencv SIFT-1024, 768 px, full decode", {"backend": "opencv", "draft": False}),
    ("opencv SIFT-1024, 1024 px", {"backend": "opencv", "max_side": 1024}),
    (
        "opencv SIFT-1024, 1024 px, contrast 0.04",
        {"backend": "opencv", "max_side": 1024, "contrast_threshold": 0.04},
    ),
    ("opencv SIFT-2048, 1024 px", {"backend": "opencv", "num_features": 2048, "max_side": 1024}),
    ("opencv SIFT-4096, 1024 px", {"backend": "opencv", "num_features": 4096, "max_side": 1024}),
    ("kornia-rs SIFT-1024, 1024 px", {"backend": "kornia-rs"}),
    ("kornia-rs SIFT-1024, 1024 px, doubled octave", {"backend": "kornia-rs", "upsample": True}),
    ("kornia SIFT-1024, 1024 px (before opencv)", {"backend": "kornia"}),
]


def photos(n: int) -> list[Path]:
    """Half Flickr photos of the roxford/rparis subset (<= 1024 px), half SMVS E63 phone
    photos (1600 x 1200: decoded at 1/2 scale for a 768 px working size)."""
    rox = sorted((DATA / "roxford_rparis_pixel_subset").glob("*/*/*.jpg"))
    smvs = sorted((DATA / "smvs_dvd_covers" / "E63").glob("*.jpg"))
    if not rox or not smvs:
        sys.exit(f"no photos under {DATA}: this bench needs ../shared/data")
    half = n // 2
    return rox[:: max(1, len(rox) // half)][:half] + smvs[:: max(1, len(smvs) // half)][:half]


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


def threaded(settings: dict, paths: list[Path], threads: int) -> float:
    """Images per second of a GIL-releasing backend's batch call over the photos three
    times, on ``threads`` of the core's threads (no processes)."""
    from ilias_rerank.extractors import make_extractor

    ex = make_extractor("sift", **settings)
    batch = [str(p) for p in paths * 3]
    t0 = time.perf_counter()
    out = ex.extract_many(batch, threads=threads)
    elapsed = time.perf_counter() - t0
    failed = [o for o in out if isinstance(o, Exception)]
    assert not failed, failed[:3]
    return len(batch) / elapsed


#: Two cores over one core on the default row (issue 21).
SCALING_TARGET = 1.8


def two_cores(settings: dict, paths: list[Path], isolate: bool = False) -> float:
    """Images per second with two workers (threads, or ``isolate``: processes, their start
    included) over the photos three times; the rust backend: its batch call on two
    threads."""
    import ilias_rerank as ir

    if settings.get("backend") == "rust":
        return threaded(settings, paths, 2)
    batch = paths * 3
    t0 = time.perf_counter()
    ir.extract_local(batch, method="sift", workers=2, isolate=isolate, progress=False, **settings)
    return len(batch) / (time.perf_counter() - t0)


def opencv_by_hand_two(paths: list[Path], side: int, n: int = 1024) -> float:
    """ms per image (wall) of :func:`opencv_by_hand`'s loop in two threads, a detector each."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import cv2

    local = threading.local()

    def one(p: Path) -> None:
        if not hasattr(local, "sift"):
            local.sift = cv2.SIFT_create(nfeatures=n)
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if max(img.shape) > side:
            s = side / max(img.shape)
            img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        local.sift.detectAndCompute(img, None)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, paths[:2]))  # warm-up: a detector per thread
        t0 = time.perf_counter()
        list(pool.map(one, paths))
    return 1e3 * (time.perf_counter() - t0) / len(paths)


def opencv_by_hand(paths: list[Path], side: int, n: int = 1024) -> float:
    """What a user writes by hand: imread (grayscale), resize to ``side``, SIFT."""
    import cv2

    sift = cv2.SIFT_create(nfeatures=n)
    img = cv2.imread(str(paths[0]), cv2.IMREAD_GRAYSCALE)
    sift.detectAndCompute(img, None)
    t0 = time.perf_counter()
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if max(img.shape) > side:
            s = side / max(img.shape)
            img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        sift.detectAndCompute(img, None)
    return 1e3 * (time.perf_counter() - t0) / len(paths)


def side_of(settings: dict) -> int:
    default = 768 if settings.get("backend") in ("opencv", "rust") else 1024
    return settings.get("max_side") or default


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=48, help="photos per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rows", nargs="*", help="row names (default: all)")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "extract")
    args = ap.parse_args(argv)

    import cv2
    import torch

    import ilias_rerank as ir

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    paths = photos(args.images)
    for p in paths:  # the page cache warm: the rounds time decoding, not the first disk read
        p.read_bytes()
    rows = [(n, s) for n, s in ROWS if not args.rows or n in args.rows]
    samples: dict[str, dict[str, list[float]]] = {
        n: {"ms": [], "decode_ms": [], "two_core_img_s": [], "one_thread_img_s": []}
        for n, _ in rows
    }
    peer: dict[int, list[float]] = {768: [], 1024: []}
    peer_two: list[float] = []  # plain OpenCV in two threads, 768 px
    isolated: list[float] = []  # the default row, isolated processes
    for r in range(args.rounds):
        for side, values in peer.items():
            values.append(opencv_by_hand(paths, side))
        peer_two.append(opencv_by_hand_two(paths, 768))
        for k, (name, settings) in enumerate(rows):
            ms, dec = one_core(settings, paths)
            samples[name]["ms"].append(ms)
            samples[name]["decode_ms"].append(dec)
            samples[name]["two_core_img_s"].append(two_cores(settings, paths))
            if settings.get("backend") == "rust":
                samples[name]["one_thread_img_s"].append(threaded(settings, paths, 1))
            if k == 0:
                isolated.append(two_cores(settings, paths, isolate=True))
            print(f"round {r + 1}: {name}: {ms:.0f} ms/img ({dec:.0f} decode)", flush=True)
    peer_ms = {side: statistics.median(v) for side, v in peer.items()}
    base = statistics.median(samples[rows[0][0]]["ms"]) if rows else float("nan")
    results = []
    for name, settings in rows:
        s = samples[name]
        ms = statistics.median(s["ms"])
        two = statistics.median(s["two_core_img_s"])
        # A threaded backend: both cores against the same batch call on one thread.
        one = statistics.median(s["one_thread_img_s"]) if s["one_thread_img_s"] else 1e3 / ms
        results.append(
            {
                "name": name,
                "settings": settings,
                "ms_per_image": ms,
                "decode_ms_per_image": statistics.median(s["decode_ms"]),
                "one_core_img_s": 1e3 / ms,
                "two_core_img_s": two,
                "one_thread_batch_img_s": one if s["one_thread_img_s"] else None,
                "two_core_speedup": two / one,
                "vs_opencv_by_hand": ms / peer_ms[side_of(settings)],
                "vs_default": ms / base,
            }
        )
    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, kernels {ir.cpu_features()}",
        "date": time.strftime("%Y-%m-%d"),
        "photos": f"{len(paths)} photos (half roxford Flickr, half SMVS E63 1600 x 1200), "
        f"median of {args.rounds} interleaved rounds",
        "opencv_by_hand_ms": {str(k): v for k, v in peer_ms.items()},
        "rows": results,
    }
    if results:
        default_ms = results[0]["ms_per_image"]
        threads = results[0]["two_core_speedup"]
        summary["scaling"] = {
            "row": results[0]["name"],
            "threads": threads,
            "isolated_processes": statistics.median(isolated) * default_ms / 1e3,
            "opencv_by_hand_two_threads": peer_ms[768] / statistics.median(peer_two),
            "target": SCALING_TARGET,
            "met": threads >= SCALING_TARGET,
        }
    write_report(args.out, summary, render(summary))
    return 0


def render(summary: dict) -> list[str]:
    lines = [
        f"{summary['photos']}; {summary['machine']}; {summary['date']}. Peer in the same run: "
        "plain OpenCV (imread + resize + SIFT-1024, one thread) "
        f"{summary['opencv_by_hand_ms']['768']:.0f} ms/image at 768 px, "
        f"{summary['opencv_by_hand_ms']['1024']:.0f} at 1024 px; each row is compared with "
        "it at the row's size.",
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
    sc = summary.get("scaling")
    if sc:
        lines += [
            "",
            f"2 cores / 1 core, {sc['row']}: threads (the default) {sc['threads']:.2f}x, "
            f"isolated processes {sc['isolated_processes']:.2f}x; the peer, plain OpenCV in "
            f"two threads: {sc['opencv_by_hand_two_threads']:.2f}x. Target >= "
            f"{sc['target']:.1f}x: {'met' if sc['met'] else 'missed'}.",
        ]
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
