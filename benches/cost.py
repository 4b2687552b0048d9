"""What mini-ILIAS (5M) and ILIAS (100M) cost to re-rank (issue 9): a table of worker-hours
and storage computed from measured per-worker rates, never from guesses.

Inputs (each written by its own command; a missing one leaves its rows marked unmeasured):

- ``out/extract.json``: ``benches/extract.py`` (SIFT-1024 extraction on one CPU core of this
  machine, decode included, for the default backend, the rust backend and the previous
  default);
- ``docs/measured/gpu_h200_2026-11-30.jsonl``: ``benches/device_rates.py`` on an H200 machine
  (per-image extraction on the GPU, and on that machine's 16 CPU cores together);
- ``out/scale.json``: ``benches/scale.py`` (re-rank pairs/s of the ILIAS-shaped job, both
  cores of this machine);
- ``out/accuracy.json``: ``benches/accuracy.py`` (re-rank pairs/s of the learned features on
  SMVS, both cores);
- the tar index scan rate, measured here on a synthetic tar (20,000 members).

The images to extract do not depend on the database size: the union of the shortlists and
the queries, at most 1,232 x 1,000 + 1,232 = 1,233,232 for both; only the tar index scan
grows with it. Run: ``.venv/bin/python benches/cost.py`` -> ``out/cost.{json,md}``.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from report import write_report

REPO = Path(__file__).resolve().parents[1]
QUERIES, TOP = 1232, 1000
IMAGES = QUERIES * TOP + QUERIES  # an upper bound: shortlists overlap
GPU = REPO / "docs" / "measured" / "gpu_h200_2026-11-30.jsonl"
#: The re-rank rates of the last quiet scale run, used when out/ holds none of its own.
RATES = REPO / "docs" / "measured" / "rates_2026-11-30.json"

#: Bytes an image in the store (index entry included): keypoints 8 B + frames + descriptor
#: per feature; SIFT frames are 2x3 affine (24 B); the learned methods have none.
STORE_BYTES = {
    "sift-1024 uint8 (the default, scale + orientation frames)": 1024 * (8 + 8 + 128) + 24,
    "sift-1024 uint8 (kornia, 2x3 affine frames)": 1024 * (8 + 24 + 128) + 24,
    "aliked-2048 uint8": 2048 * (8 + 128) + 24,
    "disk-2048 uint8": 2048 * (8 + 128) + 24,
    "xfeat-2048 uint8": 2048 * (8 + 64) + 24,
}


def _load(path: Path):
    if not path.is_file():
        return None
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return json.loads(path.read_text())


def tar_scan_rate(members: int = 20_000) -> float:
    """Members indexed per second by :class:`TarSource` (headers only; page-cached)."""
    from ilias_rerank.sources import TarSource

    payload = np.random.default_rng(0).bytes(4096)
    with tempfile.TemporaryDirectory() as tmp:
        tar = Path(tmp) / "shard.tar"
        with tarfile.open(tar, "w") as tf:
            for i in range(members):
                info = tarfile.TarInfo(f"{i // 1000:03d}/{i:08d}.jpg")
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
        t0 = time.perf_counter()
        src = TarSource([tar], index_dir=Path(tmp) / "idx")
        assert len(src) == members
        return members / (time.perf_counter() - t0)


def main() -> int:
    cpu = _load(REPO / "out" / "extract.json") or {"rows": []}
    gpu = _load(GPU) or []
    record = _load(RATES) or {}
    scale = _load(REPO / "out" / "scale.json") or record.get("scale", [])
    acc = _load(REPO / "out" / "accuracy.json") or {"rows": record.get("accuracy_rows", [])}
    rows = []

    def add(stage, worker, seconds_per_item, items, note):
        hours = None if seconds_per_item is None else seconds_per_item * items / 3600
        rows.append(
            {
                "stage": stage,
                "worker": worker,
                "s_per_item": seconds_per_item,
                "items": items,
                "worker_hours": hours,
                "note": note,
            }
        )

    for wanted, note in (
        (
            "rust SIFT-1024 (default: 768 px)",
            "the core's SIFT at 768 px (rust backend, numpy only), 1 thread, decode included "
            "(extract.py)",
        ),
        (
            "opencv SIFT-1024 (768 px, previous default)",
            "OpenCV SIFT at 768 px, 1 thread, decode included (extract.py)",
        ),
        (
            "kornia SIFT-1024, 1024 px (before opencv)",
            "kornia SIFT at 1024 px, 1 thread, decode included (extract.py)",
        ),
    ):
        row = next((r for r in cpu["rows"] if r["name"] == wanted), None)
        add(
            f"extract {wanted}",
            "1 CPU core (this machine)",
            row["ms_per_image"] / 1e3 if row else None,
            IMAGES,
            note,
        )
    # The 2026-11-30 kornia SIFT GPU figure timed an unbatched per-image path over images of
    # every shape: withdrawn. The batched path has not been measured on a GPU yet.
    add(
        "extract sift-1024 (kornia, batched)",
        "1 H200 GPU",
        None,
        IMAGES,
        "device_rates.py sift_batched: no GPU was lent since the batched path",
    )
    for rec in gpu:
        if "method" not in rec or rec["method"] == "sift":
            continue
        name = f"{rec['method']}-{rec['features']}"
        if rec["device"] == "cuda":
            add(
                f"extract {name}",
                "1 H200 GPU",
                rec.get("ms_per_image", rec.get("end_to_end_ms_per_image")) / 1e3,
                IMAGES,
                "device_rates.py, images decoded beforehand",
            )
        else:
            add(
                f"extract {name}",
                "16-core H200 host (CPU)",
                rec["ms_per_image"] / 1e3,
                IMAGES,
                "all 16 cores on one image at a time",
            )
    uint8 = next((r for r in scale if r["store"] == "uint8" and r["backend"] == "local"), None)
    pairs = QUERIES * TOP
    add(
        "re-rank top 1,000, sift-1024 uint8",
        "1 CPU core (this machine)",
        2 / uint8["pairs_per_s"] if uint8 else None,  # both cores ran the job
        pairs,
        "scale.py, local, both cores / 2",
    )
    add(
        "re-rank top 100, sift-1024 uint8",
        "1 CPU core (this machine)",
        2 / uint8["pairs_per_s"] if uint8 else None,
        QUERIES * 100,
        "as above",
    )
    for r in acc["rows"]:
        if r["name"] in ("aliked-2048", "xfeat-2048", "disk-2048"):
            add(
                f"re-rank top 1,000, {r['name']} uint8",
                "1 CPU core (this machine)",
                2 / r["smvs"]["pairs_per_s"],
                pairs,
                "accuracy.py SMVS pairs/s (measured beside other work), both cores / 2",
            )
    rate = tar_scan_rate()
    for name, members in (("mini-ILIAS", 5_000_000), ("ILIAS", 100_000_000)):
        add(
            f"index the tars of {name} (once)",
            "1 CPU core + disk",
            1 / rate,
            members,
            "synthetic tar, page-cached: a cold disk is slower",
        )
    storage = {k: v * IMAGES for k, v in STORE_BYTES.items()}
    compact = next((r for r in scale if r["store"] == "compact"), None)
    if compact:
        storage["compact (360 binary)"] = compact["disk_bytes"] / compact["images"] * IMAGES
    summary = {
        "images_to_extract": IMAGES,
        "rows": rows,
        "storage_bytes": storage,
        "tar_members_per_s": rate,
    }
    lines = [
        f"Both mini-ILIAS (5M) and ILIAS (100M): at most {IMAGES:,} images to extract "
        f"(1,232 queries + the union of their top 1,000; shortlists overlap, so fewer) and "
        f"{pairs:,} pairs to re-rank at top 1,000 ({QUERIES * 100:,} at the default top 100). "
        "Worker-hours from measured rates (`benches/cost.py`):",
        "",
        "| stage | worker | per item | items | worker-hours | source |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        per = "unmeasured" if r["s_per_item"] is None else _per(r["s_per_item"])
        hours = "unmeasured" if r["worker_hours"] is None else f"{r['worker_hours']:,.2f}"
        lines.append(
            f"| {r['stage']} | {r['worker']} | {per} | {r['items']:,} | {hours} | {r['note']} |"
        )
    lines += ["", "| store | per image | for the shortlisted images |", "| --- | --- | --- |"]
    for k, v in storage.items():
        lines.append(f"| {k} | {v / IMAGES / 1e3:,.1f} KB | {v / 1e9:,.0f} GB |")
    write_report(REPO / "out" / "cost", summary, lines)
    return 0


def _per(seconds: float) -> str:
    if seconds >= 0.1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-4:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.0f} µs"


if __name__ == "__main__":
    sys.exit(main())
