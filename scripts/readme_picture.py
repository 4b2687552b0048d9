"""The README's picture: from the demo's report (``out/demo/report.html``, written by
``ilias-rerank run --report``), the query whose right answer re-ranking moved from
furthest down to first, as the report shows it, into ``docs/img/demo_report.png``; and its
match picture beside it (``docs/img/demo_matches.jpg``). Needs Chromium.

    python scripts/readme_picture.py [--report out/demo/report.html]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

from ilias_rerank.report.browser import Chromium

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--report", type=Path, default=REPO / "out" / "demo" / "report.html")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "demo_report.png")
    args = ap.parse_args()
    text = args.report.read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', text, re.S).group(1))
    moved = [q for q in data["queries"] if q["pos_r"] == 1 and q["pos_g"]]
    best = max(moved, key=lambda q: (q["pos_g"], q["id"]))
    with Chromium(width=1720, height=900) as browser:
        browser.open(args.report)
        browser.evaluate(
            "(() => { const f = document.getElementById('filter');"
            f" f.value = {json.dumps(best['id'])}; f.dispatchEvent(new Event('input')); }})()"
        )
        browser.evaluate(
            "Promise.all([...document.querySelectorAll('#queries img')].map((i) => i.decode()))"
        )
        path = browser.screenshot(args.out, selector="#queries .query")
        assert browser.errors() == [], browser.errors()
    match = data["matches"][best["r"][0][3]]
    shutil.copyfile(args.report.parent / match, args.out.with_name("demo_matches.jpg"))
    print(f"{best['id']}: first positive {best['pos_g']} -> 1; wrote {path} and its match picture")


if __name__ == "__main__":
    main()
