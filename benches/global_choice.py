"""Which global embedding is the default: mAP of the global ranking (and after
re-ranking its top 100) for EfficientNet-Lite0 + GeM and for VLAD-64 over RootSIFT, on

- smvs_dvd_covers: 100 E63 phone photos against the 100 references plus the 357
  Oxford/Paris images of roxford_rparis_pixel_subset as distractors;
- roxford_rparis_pixel_subset: 17 queries against its 340 images (full ranking).

Uses the pipeline's work directories (``out/global-choice/<dataset>``; features are
extracted once and reused). Writes ``out/global_choice.{json,md}``.

Run: ``.venv/bin/python benches/global_choice.py``
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from report import write_report

from ilias_rerank.datasets import load_dataset
from ilias_rerank.pipeline import GLOBAL_MODELS, Workspace

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def main() -> int:
    rox = DATA / "roxford_rparis_pixel_subset"
    smvs = load_dataset("smvs", DATA / "smvs_dvd_covers", distractors=sorted(rox.rglob("*.jpg")))
    roxford = replace(load_dataset("roxford-subset", rox), shortlists=None)  # full ranking
    rows = []
    for ds in (smvs, roxford):
        for model in GLOBAL_MODELS:
            ws = Workspace(
                ds, REPO / "out" / "global-choice" / ds.name.replace("/", "-"), global_model=model
            )
            global_sims = ws.search()
            reranked, details = ws.rerank(global_sims)
            report = ws.report(global_sims, reranked, details)
            rows.append({"dataset": ds.name, "model": model, **report})
            print(rows[-1]["dataset"], model, report["global"], report["reranked"])
    lines = [
        "| dataset | global model | global mAP | global top-1 | re-ranked mAP | re-ranked top-1 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['global']['map']:.3f} | "
            f"{r['global']['top1']:.2f} | {r['reranked']['map']:.3f} | "
            f"{r['reranked']['top1']:.2f} |"
        )
    write_report(REPO / "out" / "global_choice", rows, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
