"""Is rotation why learned features fail SMVS (issue 16, item 5)? Each of the first
``--refs`` SMVS reference covers is rotated by 0-180 degrees (PIL, canvas expanded) and
verified against itself unrotated: inliers of the learned extractor (``verify_pair``,
LO-RANSAC: no frames) next to OpenCV SIFT's (frames), same 2048 / 4096-feature budgets as
the accuracy bench. A rotation-invariant method keeps its inliers at every angle.

Run: ``PYTHONPATH=python .venv/bin/python benches/rotation_probe.py [aliked|disk|xfeat]
[--variant n16rot] [--refs 6]``
"""

from __future__ import annotations

import argparse
import io

import accuracy as acc
import cvsift
import numpy as np
from PIL import Image

import ilias_rerank as ir

ANGLES = (0, 15, 30, 60, 90, 180)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("method", nargs="?", default="aliked")
    ap.add_argument("--refs", type=int, default=8)
    ap.add_argument("--variant", help="ALIKED variant (n16, n16rot, ...)")
    args = ap.parse_args()
    from ilias_rerank.extractors import make_extractor

    extra = {"variant": args.variant} if args.variant else {}
    learned = make_extractor(args.method, num_features=2048, **extra)
    rows = {a: ([], []) for a in ANGLES}
    for i in range(1, args.refs + 1):
        path = acc.SMVS / f"Reference/{i:03d}.jpg"
        base = Image.open(path).convert("RGB")
        f0 = learned(base)
        c0 = cvsift.extract(path, 4096)
        for a in ANGLES:
            img = base.rotate(a, resample=Image.Resampling.BICUBIC, expand=True)
            buf = io.BytesIO()
            img.save(buf, "PNG")
            tmp = acc.REPO / "out" / "rotation_probe.png"
            tmp.parent.mkdir(exist_ok=True)
            tmp.write_bytes(buf.getvalue())
            fl = learned(img)
            cv = cvsift.extract(tmp, 4096)
            rows[a][0].append(ir.verify_pair(f0, fl).num_inliers)
            rows[a][1].append(ir.verify_pair(c0, cv).num_inliers)
    name = f"{args.method}{'-' + args.variant if args.variant else ''}"
    print(f"| rotation | {name}-2048 median inliers | OpenCV SIFT-4096 median inliers |")
    print("| --- | --- | --- |")
    for a in ANGLES:
        lr, cr = rows[a]
        print(
            f"| {a} deg | {np.median(lr):.0f} (min {min(lr)}) "
            f"| {np.median(cr):.0f} (min {min(cr)}) |"
        )


if __name__ == "__main__":
    main()
