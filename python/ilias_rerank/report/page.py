"""The report page: one HTML file, its style and script inline (no CDN, no network), the
run's data embedded as JSON and rendered a page of queries at a time."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

__all__ = ["render"]

_HERE = Path(__file__).parent


def _asset(name: str) -> str:
    """``page.css`` / ``page.js``, shipped beside this module and inlined in the page."""
    return (_HERE / name).read_text(encoding="utf-8")


def json_for_script(value: Any) -> str:
    """JSON safe inside a ``<script>`` element: no ``<`` (so no ``</script>``, no
    ``<!--``) and no ``&`` as themselves."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _metrics_table(metrics: dict[str, Any]) -> str:
    rows = [r for r in ("global", "reranked") if isinstance(metrics.get(r), dict)]
    if not rows:
        return ""
    keys = [k for k in ("map", "top1", "p@5", "ndcg", "mrr") if k in metrics[rows[0]]]
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join(
        f"<tr><td>{r}</td>" + "".join(f"<td>{metrics[r][k]:.3f}</td>" for k in keys) + "</tr>"
        for r in rows
    )
    return f'<table class="metrics" id="metrics"><tr><th></th>{head}</tr>{body}</table>'


def _settings(settings: dict[str, Any]) -> str:
    def text(v: Any) -> str:
        return html.escape(v if isinstance(v, str) else json.dumps(v))

    def value(v: Any) -> str:
        if isinstance(v, dict):  # e.g. the re-ranking config: folded
            inner = "".join(f"<div>{text(str(k))}: {text(x)}</div>" for k, x in v.items())
            return f"<details><summary>{len(v)} settings</summary>{inner}</details>"
        return text(v)

    items = "".join(f"<dt>{text(str(k))}</dt><dd>{value(v)}</dd>" for k, v in settings.items())
    return f'<dl class="settings" id="settings">{items}</dl>'


def _unreadable(lines: list[str]) -> str:
    if not lines:
        return ""
    items = "".join(f"<div>{html.escape(line)}</div>" for line in lines)
    return (
        f'<details id="unreadable" open><summary>{len(lines)} pictures could not be made '
        f"(grey placeholders)</summary>{items}</details>"
    )


def render(
    *,
    title: str,
    data: dict[str, Any],
    metrics: dict[str, Any],
    settings: dict[str, Any],
    plot: str,
    seconds: float,
) -> str:
    n = len(data["queries"])
    legend = (
        "green frame: a positive, red: a negative (ground truth)"
        if data["has_gt"]
        else "no ground truth: candidates unmarked"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_asset("page.css")}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<div class="top">
<div>{_metrics_table(metrics)}
<p class="muted">{n} queries; top {data["top"]} of each ranking shown; {legend}; "inl": inliers
of the candidate's spatial verification; "was": its global rank; click a candidate with a
hand cursor to open its match picture (green: inlier matches; yellow: the query's outline on
the candidate; cyan: the candidate's outline located in the query).</p></div>
<div>{_settings(settings)}{_unreadable(data["unreadable"])}</div>
<div>{plot}</div>
</div>
<div class="controls">
<label>sort <select id="sort">
<option value="gain">AP gain, largest first</option>
<option value="failures">failures first (lowest re-ranked AP)</option>
<option value="loss">AP change, worst first</option>
<option value="id">query id</option>
</select></label>
<label>filter <input id="filter" type="search" placeholder="query id"></label>
<button id="prev" type="button">previous</button><span id="page-info"></span>
<button id="next" type="button">next</button>
</div>
<div id="queries"></div>
<dialog id="match"><div><button type="button">close</button>
<a target="_blank" rel="noopener">open the picture alone</a></div><img alt=""></dialog>
<p class="muted">written by ilias-rerank in {seconds:.1f} s</p>
<script type="application/json" id="report-data">{json_for_script(data)}</script>
<script>{_asset("page.js")}</script>
</body></html>
"""
