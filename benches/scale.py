"""Scale benchmark (issue 9): an ILIAS-shaped job — 1,232 queries x top 1,000 = 1,232,000
pairs — on synthetic sharded stores, locally and on a local Ray, with wall time, pairs/s,
peak resident memory and disk.

Stores (built once under ``--root``, default ``.cache/scale``; the disk must hold them):

- ``uint8``: ``--uint8-images`` (default 100,000) images of 1,024 uint8 RootSIFT-like
  features with (scale, orientation) frames, in shards of 10,000 (~150 KB an image);
- ``compact``: ``--compact-images`` (default 1,000,000) images in compact mode (360 binary
  128-bit features with frames, ``ilias_rerank.compact``), in shards of 50,000;
- ``codes``: ``--codes-images`` (default 100,000) images as a store of codes (issue 22:
  quantised matching, ``ilias_rerank.codes``), in shards of 10,000. Random descriptors
  would spread over the vocabulary's cells unlike photos (the join's cost is the
  collisions), so its pool is **real photos**: the OpenCV SIFT features (the accuracy
  bench's, ``benches/cvsift.py``, first ``--codes-features`` = 4,096 strongest) of every
  image of ``roxford_rparis_pixel_subset`` and ``smvs_dvd_covers`` (557), quantised by the
  shipped vocabulary with 5 words a feature.

Images are drawn from a pool of 1,000 synthetic feature sets (random descriptors, uniform
keypoints; for codes, the 557 photos); each query's shortlist of 1,000 ids is drawn from
the store, and holds five copies of the query's own set (pairs that verify), the rest
unrelated. The job is
``rerank-shortlists`` itself on a store that already holds every id (extraction is costed
separately, from the accuracy bench's measured rates, in the cost table of docs/scale.md).

Run: ``.venv/bin/python benches/scale.py [--backends local ray] [--stores uint8 compact
codes]`` with both cores idle; ``--codes-config`` gives the codes store one row per
RerankConfig (JSON); ``--top 100`` runs a tenth of the job (the rate is per pair, so the
full job's time is 10x; the table says which was run). Writes ``out/scale.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from report import write_report

import ilias_rerank as ir
from ilias_rerank import compact
from ilias_rerank.reranker import save_similarities
from ilias_rerank.store import FeatureStore, StoreWriter, register_shards, shard_path

REPO = Path(__file__).resolve().parents[1]
POOL = 1000
QUERIES, TOP = 1232, 1000


def codes_pool(features: int) -> list:
    """Real photos as codes: every image of the rOxf/rPar subset and of SMVS (OpenCV SIFT,
    the ``features`` strongest, the accuracy bench's cache), shipped vocabulary, 5 words."""
    import cvsift

    from ilias_rerank.codes import quantise

    data = REPO.parent / "shared" / "data"
    paths = sorted(
        p
        for d in ("roxford_rparis_pixel_subset", "smvs_dvd_covers")
        for p in (data / d).rglob("*")
        if p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )
    feats, _ = cvsift.features(paths, 8192)  # the accuracy bench's store: prefixes of it
    return [
        quantise(
            ir.LocalFeatures(
                f.keypoints[:features], f.descriptors[:features], f.frames[:features], f.image_size
            )
        )
        for f in feats
    ]


def pool(kind: str, seed: int = 0, codes_features: int = 4096) -> list:
    if kind == "codes":
        return codes_pool(codes_features)
    g = np.random.default_rng(seed)
    out = []
    for _ in range(POOL):
        n = 1024
        kp = g.uniform(0, 1000, (n, 2)).astype(np.float32)
        d = np.clip(g.gamma(2.0, 12.0, (n, 128)), 0, 255).astype(np.uint8)
        fr = np.c_[g.uniform(2, 12, n), g.uniform(-180, 180, n)].astype(np.float32)
        f = ir.LocalFeatures(kp, d, fr, (768, 1024))
        out.append(compact.compact(f) if kind == "compact" else f)
    return out


def build(root: Path, kind: str, images: int, per_shard: int, codes_features: int) -> dict:
    """The store, built once (skipped when complete); ``pool`` is the size of its pool."""
    feats = pool(kind, codes_features=codes_features)
    info = {"pool": len(feats), "features_mean": float(np.mean([len(f) for f in feats]))}
    if (root / "shards.json").is_file() and len(FeatureStore(root, verify="none")) == images:
        return {"built_s": None, **info}
    shutil.rmtree(root, ignore_errors=True)
    layout = None
    if kind == "codes":
        from ilias_rerank.codes import DEFAULT_WORDS, default_vocabulary
        from ilias_rerank.store.layout import codes_layout

        layout = codes_layout(default_vocabulary().id, DEFAULT_WORDS, 1, True)
    t0 = time.perf_counter()
    names = []
    for s in range(0, images, per_shard):
        name = f"s{s // per_shard:04d}"
        with StoreWriter(
            shard_path(root, name),
            {"name": f"synthetic-{kind}"},
            layout=layout,
            commit_every=5000,
        ) as w:
            for i in range(s, min(s + per_shard, images)):
                w.add(f"img{i:08d}", feats[i % len(feats)])
        names.append(name)
        print(f"{kind}: {min(s + per_shard, images):,} images", flush=True)
    register_shards(root, names)
    return {"built_s": time.perf_counter() - t0, **info}


def shortlists(
    path: Path, images: int, queries: int, top: int, pool: int = POOL, seed: int = 1
) -> None:
    g = np.random.default_rng(seed)
    sims = {}
    for q in range(queries):
        qid = f"img{q:08d}"
        cands = g.choice(np.arange(queries, images), top, replace=False)
        # Five candidates that are the query's own features (same pool entry).
        same = [q % pool + pool * k for k in range(1, 2000) if q % pool + pool * k >= queries]
        same = [c for c in same if c < images][:5]
        cands[: len(same)] = same
        scores = np.sort(g.uniform(0.3, 0.9, top))[::-1]
        g.shuffle(cands)
        sims[qid] = {f"img{c:08d}": float(s) for c, s in zip(cands, scores, strict=True)}
    save_similarities(path, sims)


class RssSampler:
    """Peak total resident memory of this process, its children and Ray's workers."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _total(self) -> int:
        total = 0
        me = os.getpid()
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            ppid = int(next(x for x in status.splitlines() if x.startswith("PPid:")).split()[1])
            if (
                int(pid) == me
                or ppid == me
                or b"ray::" in cmd
                or b"raylet" in cmd
                or b"gcs_server" in cmd
            ):
                rss = next(
                    (x for x in status.splitlines() if x.startswith("VmRSS:")), "VmRSS: 0 kB"
                )
                total += int(rss.split()[1]) * 1024
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._total())
            time.sleep(0.5)

    def __enter__(self) -> RssSampler:
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()


def run_job(
    root: Path, knn: Path, out: Path, backend: str, workers: int, top: int, config: dict
) -> dict:
    from ilias_rerank.scale import rerank_shortlists

    t0 = time.perf_counter()
    with RssSampler() as rss:
        summary = rerank_shortlists(
            knn,
            root,
            root,
            out,
            k=top,
            workers=workers,
            ray=backend == "ray",
            progress=False,
            query_group=16,
            extractor=None,  # the synthetic features are in the store; extract nothing
            config=ir.RerankConfig(**config),
        )
    wall = time.perf_counter() - t0
    return {
        "backend": backend,
        "workers": workers,
        "pairs": summary["pairs"],
        "wall_s": wall,
        "rerank_s": summary["timing"]["rerank_s"],
        "pairs_per_s": summary["pairs_per_s"],
        "peak_rss_bytes": rss.peak,
        "self_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def store_name(row: dict) -> str:
    name = row["store"]
    if name == "codes":
        name = (
            f"codes, 5 words ({row['pool']} real photos, {row['features_mean']:,.0f} features mean)"
        )
    if row.get("config"):
        name += ", " + ", ".join(f"{k} {v:g}" for k, v in row["config"].items())
    return name


def disk_bytes(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=REPO / ".cache" / "scale")
    ap.add_argument("--stores", nargs="*", default=["uint8", "compact"])
    ap.add_argument("--backends", nargs="*", default=["local", "ray"])
    ap.add_argument("--uint8-images", type=int, default=100_000)
    ap.add_argument("--compact-images", type=int, default=1_000_000)
    ap.add_argument("--codes-images", type=int, default=100_000)
    ap.add_argument("--codes-features", type=int, default=4096)
    ap.add_argument("--queries", type=int, default=QUERIES)
    ap.add_argument("--top", type=int, default=TOP)
    ap.add_argument("--out", type=Path, default=REPO / "out" / "scale")
    ap.add_argument(
        "--codes-config",
        nargs="*",
        type=json.loads,
        default=[{}],
        help="the codes store's rows: one job per RerankConfig given as JSON, e.g. "
        "'{}' '{\"codes_hamming\": 28, \"codes_sigma\": 16}' (the exact stores run the defaults)",
    )
    args = ap.parse_args(argv)
    results = []
    for kind in args.stores:
        images = {
            "uint8": args.uint8_images,
            "compact": args.compact_images,
            "codes": args.codes_images,
        }[kind]
        per_shard = 50_000 if kind == "compact" else 10_000
        root = args.root / (f"codes-{args.codes_features}" if kind == "codes" else kind)
        built = build(root, kind, images, per_shard, args.codes_features)
        knn = args.root / f"{root.name}-knn-{args.queries}x{args.top}.json"
        if not knn.is_file():
            shortlists(knn, images, args.queries, args.top, built["pool"])
        configs = args.codes_config if kind == "codes" else [{}]
        for backend, config in ((b, c) for b in args.backends for c in configs):
            workers = 2 if backend == "ray" else 1  # local: one process, both cores in Rust
            row = {
                "store": kind,
                "images": images,
                "disk_bytes": disk_bytes(root),
                **built,
                "config": config,
                **run_job(
                    root,
                    knn,
                    args.root / f"{kind}-{backend}.json",
                    backend,
                    workers,
                    args.top,
                    config,
                ),
            }
            row["load_average"] = os.getloadavg()
            print(json.dumps(row), flush=True)
            results.append(row)
    lines = [
        f"ILIAS-shaped job: {args.queries:,} queries x top {args.top:,} = "
        f"{args.queries * args.top:,} pairs, "
        f"{os.cpu_count()} cores, kernels {ir.cpu_features()}",
        "",
        "| store | images | disk | backend | wall | re-rank | pairs/s | peak RSS |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *(
            f"| {store_name(r)} | {r['images']:,} | {r['disk_bytes'] / 2**30:.1f} GiB | "
            f"{r['backend']} ({r['workers']}) | {r['wall_s'] / 60:.1f} min | "
            f"{r['rerank_s'] / 60:.1f} min | {r['pairs_per_s']:,.0f} | "
            f"{r['peak_rss_bytes'] / 2**30:.1f} GiB |"
            for r in results
        ),
        "",
        "Load average (1, 5, 15 min) after each row: "
        + "; ".join(
            f"{r['store']} {r['backend']} " + " / ".join(f"{v:.1f}" for v in r["load_average"])
            for r in results
        ),
    ]
    write_report(args.out, results, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
