"""How our cost grows: with the shortlist length, and the peak memory of re-ranking 1,000
candidates. (Throughput against the number of features, next to the fastest peer, is
measured by ``peer_benchmark.py``, the one command for every peer number.)

- Shortlist length M in {10, 30, 100, 300, 1000} at N = 1,024 features: seconds per query
  (should be linear in M), the median of ``--rounds`` rounds (as every benchmark here);
- peak memory: the process's peak resident memory (VmHWM, reset through
  ``/proc/self/clear_refs``) while re-ranking 1,000 distinct candidates of 1,024 features,
  minus the resident memory before the call, next to the candidates' feature bytes.

Inputs: the smvs_dvd_covers references and E63 phone photos (2,048 RootSIFT features,
truncated to N: extractors list the strongest first) or, without ``../shared``, synthetic
phone shots of scikit-image photos. Writes ``out/scaling.{json,md}`` and
``docs/img/cost_vs_shortlist.png``.

Run: ``.venv/bin/python benches/scaling.py`` with both cores idle.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import peers
from peer_benchmark import REPO, load_inputs, truncate
from plot import line_plot
from report import write_report

import ilias_rerank as ir


def status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))


def peak_extra_bytes(fn) -> int | None:
    """Peak resident bytes above the resident bytes before ``fn()`` (Linux only)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    before = status_kib("VmRSS")
    fn()
    return (status_kib("VmHWM") - before) * 1024


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "out")
    args = ap.parse_args(argv)
    dataset, queries, refs, _ = load_inputs(args.queries, num_features=2048)
    print(f"inputs: {dataset}, kernels {ir.cpu_features()}")
    result: dict = {"dataset": dataset, "machine": ir.cpu_features(), "date": time.strftime("%F")}

    # 1. Shortlist length.
    q = [truncate(f, 1024) for f in queries]
    by_m = []
    for m in (10, 30, 100, 300, 1000):
        cands = [truncate(refs[j % len(refs)], 1024) for j in range(m)]
        (ours,) = peers.interleaved(
            [("ilias-rerank", lambda c=cands: peers.run_ours(q, c), len(q) * m)], args.rounds
        )
        seconds = ours.median_seconds / len(q)
        by_m.append(
            {"shortlist": m, "seconds_per_query": seconds, "ms_per_candidate": 1e3 * seconds / m}
        )
        print(by_m[-1])
    result["by_shortlist"] = by_m

    # 2. Peak memory while re-ranking 1,000 distinct candidates.
    cands = [truncate(refs[j % len(refs)], 1024, copy=True) for j in range(1000)]
    feature_bytes = sum(c.nbytes for c in cands)
    extra = peak_extra_bytes(lambda: ir.rerank(q[0], cands))
    result["memory"] = {
        "candidates": 1000,
        "feature_bytes": feature_bytes,
        "peak_extra_bytes": extra,
        "ratio": None if extra is None else extra / feature_bytes,
    }
    print(result["memory"])

    line_plot(
        {"ilias-rerank": [(r["shortlist"], r["seconds_per_query"]) for r in by_m]},
        REPO / "docs" / "img" / "cost_vs_shortlist.png",
        title="Seconds per query vs shortlist length (N = 1024, 2 cores)",
        xlabel="shortlist length (M)",
        ylabel="seconds / query",
    )
    lines = [
        f"{dataset}, median of {args.rounds} rounds:",
        "",
        "| shortlist M | seconds / query | ms / candidate |",
        "| --- | --- | --- |",
        *(
            f"| {r['shortlist']} | {r['seconds_per_query']:.3f} | {r['ms_per_candidate']:.3f} |"
            for r in by_m
        ),
        "",
        "Peak extra memory re-ranking 1,000 candidates: "
        + (
            "n/a"
            if extra is None
            else f"{extra / 2**20:.1f} MiB vs {feature_bytes / 2**20:.1f} MiB of features "
            f"({extra / feature_bytes:.3f} of them)"
        ),
    ]
    write_report(args.out / "scaling", result, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
