"""Bytes per image and accuracy of the compact mode next to the default features.

Settings compared (features extracted once, defaults: kornia RootSIFT, 1,024 per image):

- ``default``: uint8 RootSIFT x 512 with keypoints and frames (what ``extract_local`` returns);
- ``binary-1024``: the same 1,024 features, descriptors binarised (128 bits);
- ``compact-360``: :func:`ilias_rerank.compact.compact`, 360 binarised features with
  quantised keypoints and frames: <= 8 KB per image.

Bytes per image: the default as stored (float32 keypoints, float32 scale + orientation,
uint8 descriptors: 144 bytes a feature), the compact mode as its serialised record.

Accuracy on ``../shared/data``: smvs_dvd_covers (each E63 phone photo re-ranks the 100
references by local features alone: top-1, mAP) and roxford_rparis_pixel_subset (each
query's 20-image shortlist re-ranked: mAP). Writes ``out/compact_accuracy.{json,md}``.

Run: ``.venv/bin/python benches/compact_accuracy.py``
"""

from __future__ import annotations

import argparse
import csv
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from peer_benchmark import REPO, cached
from report import write_report

import ilias_rerank as ir
from ilias_rerank import compact
from ilias_rerank.evaluation import average_precision

DATA = REPO.parent / "shared" / "data"


def stored_bytes(f: ir.LocalFeatures) -> int:
    """Bytes of the default store layout: 2 + 2 float32 (keypoint, scale + orientation)
    plus the descriptor row."""
    return len(f) * (16 + f.descriptors.shape[1] * f.descriptors.itemsize)


def settings(features: list[ir.LocalFeatures]) -> dict[str, tuple[list, float]]:
    binary = [
        ir.LocalFeatures(f.keypoints, compact.binarise(f.descriptors), f.frames, f.image_size)
        for f in features
    ]
    records = [compact.encode(f) for f in features]
    return {
        "default": (features, float(np.mean([stored_bytes(f) for f in features]))),
        "binary-1024": (binary, float(np.mean([len(f) * (16 + 16) for f in features]))),
        "compact-360": (
            [compact.decode(r) for r in records],
            float(np.mean([len(r) for r in records])),
        ),
    }


def smvs(rows: dict) -> None:
    root = DATA / "smvs_dvd_covers"
    refs = cached(
        [root / f"Reference/{i:03d}.jpg" for i in range(1, 101)],
        [str(root / f"Reference/{i:03d}.jpg") for i in range(1, 101)],
    )
    queries = cached(
        [root / f"E63/{i:03d}.jpg" for i in range(1, 101)],
        [str(root / f"E63/{i:03d}.jpg") for i in range(1, 101)],
    )
    ref_sets, query_sets = settings(refs), settings(queries)
    for name, (r, nbytes) in ref_sets.items():
        q = query_sets[name][0]
        t0 = time.perf_counter()
        orders = [ir.rerank(qi, r).order for qi in q]
        dt = time.perf_counter() - t0
        top1 = np.mean([o[0] == i for i, o in enumerate(orders)])
        aps = [average_precision(o == i) for i, o in enumerate(orders)]
        rows.setdefault(name, {}).update(
            bytes_per_image=nbytes,
            smvs_top1=float(top1),
            smvs_map=float(np.mean(aps)),
            smvs_pairs_per_s=100 * len(q) / dt,
        )


def roxford(rows: dict) -> None:
    root = DATA / "roxford_rparis_pixel_subset"
    shortlists = defaultdict(list)
    with open(root / "gt.tsv") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            shortlists[row["query_id"]].append((row["image_path"], int(row["positive"])))
    aps = defaultdict(list)
    rng = np.random.default_rng(0)
    for qid, items in sorted(shortlists.items()):
        # gt.tsv lists the positives first: shuffle, or unverified candidates (kept in
        # input order) would inherit the labels' order.
        items = [items[i] for i in rng.permutation(len(items))]
        paths = [root / qid / "query.jpg", *(root / p for p, _ in items)]
        feats = settings(cached(paths, [str(p) for p in paths]))
        labels = np.array([lab for _, lab in items])
        for name, (f, _) in feats.items():
            aps[name].append(average_precision(labels[ir.rerank(f[0], f[1:]).order]))
    for name, values in aps.items():
        rows.setdefault(name, {})["roxford_map"] = float(np.mean(values))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "out" / "compact_accuracy")
    args = ap.parse_args(argv)
    if not DATA.is_dir():
        raise SystemExit(f"shared data not found at {DATA}")
    rows: dict = {}
    smvs(rows)
    roxford(rows)
    lines = [
        "| setting | bytes / image | SMVS top-1 | SMVS mAP | rOxf/rPar mAP | SMVS pairs/s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['bytes_per_image']:,.0f} | {r['smvs_top1']:.2f} | "
            f"{r['smvs_map']:.3f} | {r['roxford_map']:.3f} | {r['smvs_pairs_per_s']:,.0f} |"
        )
    write_report(args.out, rows, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
