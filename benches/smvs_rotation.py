"""Why learned features fail SMVS (issue 16, item 5): each E63 phone photo's rotation
against its reference (the angle of the homography that OpenCV SIFT verifies: SIFT finds
every pair) next to whether a learned extractor ranks the right reference first, and with
how many inliers (the true pair's and the strongest negative's).

Run: ``PYTHONPATH=python .venv/bin/python benches/smvs_rotation.py [aliked|disk|xfeat]
[--subset] [--variant=n16rot]``
-> ``out/smvs_rotation_<method>.json`` and a table by rotation bin.
"""

from __future__ import annotations

import json
import sys

import accuracy as acc
import cvsift
import numpy as np
from featcache import features

import ilias_rerank as ir


def rotation_deg(h) -> float:
    """The rotation of a homography's linear part at the image centre, in degrees."""
    a = np.asarray(h)[:2, :2]
    return float(np.degrees(np.arctan2(a[1, 0] - a[0, 1], a[0, 0] + a[1, 1])))


def main() -> None:
    method = sys.argv[1] if len(sys.argv) > 1 else "aliked"
    # --subset: only the photos rotated by >= 30 degrees and as many of the least rotated
    # (every reference is still a candidate): the comparison at a third of the cost.
    subset = "--subset" in sys.argv
    variant = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--variant=")), None)
    refs = [acc.SMVS / f"Reference/{i:03d}.jpg" for i in range(1, 101)]
    shots = [acc.SMVS / f"E63/{i:03d}.jpg" for i in range(1, 101)]
    rs, _ = cvsift.features(refs, 4096)
    ss, _ = cvsift.features(shots, 4096)
    angles = []
    for q, r in zip(ss, rs, strict=True):
        v = ir.verify_pair(acc._prefix(q, 1024), acc._prefix(r, 1024), config={})
        angles.append(np.nan if v.transform is None else rotation_deg(v.transform))
    params = {"num_features": 2048, "descriptor_dtype": "float32"}
    if variant:
        params["variant"] = variant
        method_name = f"{method}-{variant}"
    else:
        method_name = method
    rf, _ = features(refs, method, **params)
    chosen = list(range(100))
    if subset:
        by_angle = np.argsort(np.abs(np.nan_to_num(angles, nan=180.0)), kind="stable")
        far = [int(i) for i in by_angle if abs(angles[i]) >= 30]
        chosen = sorted(far + [int(i) for i in by_angle[: len(far)]])
    qf, _ = features([shots[i] for i in chosen], method, **params)
    rows = []
    for i, q in zip(chosen, qf, strict=True):
        r = ir.rerank(q, rf)
        neg = np.delete(r.inliers, i)
        rows.append(
            {
                "photo": i + 1,
                "angle": angles[i],
                "top1": bool(r.order[0] == i),
                "true_inliers": int(r.inliers[i]),
                "best_negative": int(neg.max()),
            }
        )
    out = acc.REPO / "out" / f"smvs_rotation_{method_name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    bins = [(0, 10), (10, 30), (30, 60), (60, 120), (120, 181)]
    print(
        f"| |angle| (SIFT homography) | photos | {method_name} top-1 "
        "| median true / best negative |"
    )
    print("| --- | --- | --- | --- |")
    for lo, hi in bins:
        sel = [x for x in rows if lo <= abs(x["angle"]) < hi]
        if not sel:
            continue
        t = np.median([x["true_inliers"] for x in sel])
        n = np.median([x["best_negative"] for x in sel])
        top1 = np.mean([x["top1"] for x in sel])
        print(f"| {lo}-{hi} deg | {len(sel)} | {top1:.2f} | {t:.0f} / {n:.0f} |")
    nan = [x for x in rows if not np.isfinite(x["angle"])]
    if nan:
        print(f"| SIFT unverified | {len(nan)} | {np.mean([x['top1'] for x in nan]):.2f} | |")


if __name__ == "__main__":
    main()
