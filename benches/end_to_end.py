"""The whole pipeline, as a new user runs it (issue 14): ``ilias-rerank run --dataset
roxford-subset`` on a fresh work directory, with today's defaults (OpenCV SIFT over every
core) and with the previous default (kornia SIFT at 1024 px in one process, as before
issue 14), wall clock and the pipeline's own stage timings (extraction, global vectors,
search, re-ranking) apart, and the mAP each gives.

Writes ``out/end_to_end.{json,md}``. Run with both cores idle:
``.venv/bin/python benches/end_to_end.py [--runs default previous]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from report import write_report

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO.parent / "shared" / "data" / "roxford_rparis_pixel_subset"
RUNS = {
    "default": [],
    "previous": ["--backend", "kornia", "--workers", "1"],
}


def run(name: str, extra: list[str]) -> dict:
    work = REPO / "out" / f"e2e-{name}"
    shutil.rmtree(work, ignore_errors=True)
    report = work / "report.json"
    cli = Path(sys.executable).with_name("ilias-rerank")
    cmd = [str(cli), "run", "--dataset", "roxford-subset", "--root", str(ROOT)]
    cmd += ["--workdir", str(work), "--json", str(report), "--pictures", "0", "--no-progress"]
    t0 = time.perf_counter()
    subprocess.run([*cmd, *extra], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    rep = json.loads(report.read_text())
    t = rep["timing"]
    return {
        "run": name,
        "options": " ".join(extra) or "(defaults)",
        "wall_s": wall,
        "extract_s": t.get("extract_s"),
        # global_s includes the extraction it waits for (the VLAD needs the features)
        "global_only_s": t.get("global_s", 0.0) - t.get("extract_s", 0.0),
        "search_s": t.get("search_s"),
        "rerank_s": t.get("rerank_s"),
        "map_global": rep["global"]["map"],
        "map_reranked": rep["reranked"]["map"],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", nargs="*", default=list(RUNS), choices=list(RUNS))
    args = ap.parse_args(argv)
    if not ROOT.is_dir():
        sys.exit(f"{ROOT} missing: this bench needs ../shared/data")
    rows = [run(n, RUNS[n]) for n in args.runs]
    by = {r["run"]: r for r in rows}
    lines = [
        "`ilias-rerank run --dataset roxford-subset` on a fresh work directory "
        f"({time.strftime('%Y-%m-%d')}, 2 cores):",
        "",
        "| run | wall s | extract s | VLAD s | search s | re-rank s | mAP global -> re-ranked |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['run']}: {r['options']} | {r['wall_s']:.1f} | {r['extract_s']:.1f} "
            f"| {r['global_only_s']:.1f} | {r['search_s']:.2f} | {r['rerank_s']:.2f} "
            f"| {r['map_global']:.3f} -> {r['map_reranked']:.3f} |"
        )
    if "default" in by and "previous" in by:
        speedup = by["previous"]["wall_s"] / by["default"]["wall_s"]
        lines += ["", f"Speed-up of the whole run: {speedup:.1f}x."]
    write_report(REPO / "out" / "end_to_end", {"rows": rows}, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
