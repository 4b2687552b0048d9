"""Does the HTML report stay usable at ILIAS scale (issue 24)? A synthetic run of 1,232
queries x top 100 (the ILIAS query count), its images real photos (the rOxford/rParis
subset's JPEGs, cycled over 5,000 database ids and the 1,232 queries): the time to write
the report (thumbnails for every image shown, no match pictures: their cost is one
verification and one drawing per pair, measured on the subset by ``ilias-rerank run
--dataset roxford-subset --report``), the page's size, and the time it takes to open in
headless Chromium (navigation to the load event and the first page of queries rendered),
three times.

    python benches/html_report.py [--queries 1232] [--depth 100] [--db 5000]

Writes ``out/html_report.{json,md}``. Needs the shared data and Chromium."""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from accuracy import ROX
from report import write_report as write_table

from ilias_rerank.report import write_report
from ilias_rerank.report.browser import Chromium


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=1232)
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--db", type=int, default=5000)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--out", type=Path, default=Path("out/html_report"))
    args = ap.parse_args()

    files = sorted(Path(ROX).rglob("*.jpg"))
    if not files:
        raise SystemExit(f"no JPEGs under {ROX} (the shared data)")
    rng = np.random.default_rng(0)
    db_ids = [f"db/{i:05d}" for i in range(args.db)]
    db_images = {d: files[i % len(files)] for i, d in enumerate(db_ids)}
    qids = [f"q/{i:04d}" for i in range(args.queries)]
    query_images = {q: files[(7 * i) % len(files)] for i, q in enumerate(qids)}
    global_sims, reranked, positives, verification = {}, {}, {}, {}
    for q in qids:
        ids = [db_ids[j] for j in rng.choice(args.db, args.depth, replace=False)]
        global_sims[q] = {d: 1.0 - r / args.depth for r, d in enumerate(ids)}
        inliers = rng.integers(0, 60, args.depth)
        order = np.argsort(-inliers, kind="stable")
        reranked[q] = {ids[j]: 1.0 - r / args.depth for r, j in enumerate(order)}
        positives[q] = set(rng.choice(ids, 3, replace=False))
        verification[q] = {d: (int(n), np.eye(3)) for d, n in zip(ids, inliers, strict=True)}

    work = Path(tempfile.mkdtemp(prefix="html-report-"))
    try:
        t0 = time.perf_counter()
        page = write_report(
            work / "report.html",
            global_sims,
            reranked,
            query_images=query_images,
            db_images=db_images,
            positives=positives,
            verification=verification,
            metrics={},
            settings={"synthetic": True},
            top=args.top,
            progress=False,
        )
        write_s = time.perf_counter() - t0
        thumbs = len(list((work / "report_files" / "thumbs").iterdir()))
        opens = []
        with Chromium() as browser:
            for _ in range(3):
                t1 = time.perf_counter()
                browser.open(page)
                assert browser.evaluate("window.reportReady === true")
                browser.evaluate("document.querySelectorAll('.query').length")
                opens.append(time.perf_counter() - t1)
            errors = browser.errors()
        data = {
            "queries": args.queries,
            "depth": args.depth,
            "db": args.db,
            "top": args.top,
            "thumbnails": thumbs,
            "write_s": write_s,
            "page_bytes": page.stat().st_size,
            "open_s": opens,
            "console_errors": errors,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_table(
        args.out,
        data,
        [
            "| queries x depth | thumbnails | report written | page size | opens in (3 runs) |",
            "| --- | --- | --- | --- | --- |",
            f"| {args.queries} x {args.depth} | {thumbs} | {write_s:.1f} s | "
            f"{data['page_bytes'] / 1e6:.1f} MB | " + ", ".join(f"{s:.2f} s" for s in opens) + " |",
        ],
    )


if __name__ == "__main__":
    main()
