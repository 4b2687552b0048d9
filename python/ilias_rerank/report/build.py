"""Write the HTML report (:func:`write_report`): thumbnails and match pictures beside the
page, the data embedded in it, and the page itself (:mod:`.page`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .._io import atomic_write
from .._progress import progress as _progress
from ..errors import IliasRerankError, InvalidInputError
from ..reranker import by_score
from .record import Verification

__all__ = ["write_report"]

#: Thumbnail height in pixels (JPEG files under ``<name>_files/thumbs``).
THUMB_HEIGHT = 96


def _thumbnail(source: Any, path: Path, height: int = THUMB_HEIGHT) -> None:
    """A JPEG thumbnail of an image source; a JPEG (file or bytes) is decoded at a reduced
    DCT scale."""
    import io

    from PIL import Image, ImageOps

    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    if isinstance(source, (str, os.PathLike, io.BytesIO)):
        with Image.open(source) as img:
            if img.format == "JPEG":
                img.draft("RGB", (height * 4, height * 4))
            img = ImageOps.exif_transpose(img).convert("RGB")
    else:
        from ..images import load_image

        img = load_image(source, mode="RGB")
    img.thumbnail((height * 8, height), Image.Resampling.BILINEAR)
    atomic_write(path, lambda fh: img.save(fh, format="JPEG", quality=85))


def _placeholder(path: Path, why: str, height: int = THUMB_HEIGHT) -> None:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (height * 3 // 2, height), (200, 200, 200))
    ImageDraw.Draw(img).text((4, 4), "unreadable\n" + why[:40], fill=(120, 0, 0))
    atomic_write(path, lambda fh: img.save(fh, format="JPEG", quality=85))


def _ap(ranking: list[str], positives: set[str] | None) -> float | None:
    if positives is None:
        return None
    from ..evaluation import ilias_map

    sims = {"q": {d: -float(i) for i, d in enumerate(ranking)}}
    return float(ilias_map(sims, {"q": positives}).aps["q"])


def _scatter(points: list[tuple[float, float]], size: int = 260) -> str:
    """Per-query AP before (x) vs after (y) as an inline SVG."""
    pad, span = 34, size - 44
    out = [
        f'<svg id="ap-plot" xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'viewBox="0 0 {size} {size}" role="img" aria-label="per-query AP before vs after">',
        f'<rect x="{pad}" y="10" width="{span}" height="{span}" fill="#fafafa" stroke="#999"/>',
        f'<line x1="{pad}" y1="{10 + span}" x2="{pad + span}" y2="10" stroke="#bbb" '
        'stroke-dasharray="4 3"/>',
    ]
    for t in (0.0, 0.5, 1.0):
        out.append(
            f'<text x="{pad + t * span:.0f}" y="{size - 18}" font-size="10" '
            f'text-anchor="middle">{t:g}</text>'
            f'<text x="{pad - 4}" y="{10 + (1 - t) * span + 3:.0f}" font-size="10" '
            f'text-anchor="end">{t:g}</text>'
        )
    out.append(
        f'<text x="{pad + span / 2:.0f}" y="{size - 4}" font-size="11" text-anchor="middle">'
        "AP global</text>"
        f'<text x="10" y="{10 + span / 2:.0f}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 10 {10 + span / 2:.0f})">AP re-ranked</text>'
    )
    for x, y in points:
        colour = "#2a2" if y > x + 1e-9 else "#d22" if y < x - 1e-9 else "#888"
        out.append(
            f'<circle cx="{pad + x * span:.1f}" cy="{10 + (1 - y) * span:.1f}" r="3" '
            f'fill="{colour}" fill-opacity="0.6"/>'
        )
    out.append("</svg>")
    return "".join(out)


def write_report(
    path: str | os.PathLike,
    global_sims: Mapping[str, Mapping[str, float]],
    reranked: Mapping[str, Mapping[str, float]],
    *,
    query_images: Mapping[str, Any] | Callable[[str], Any],
    db_images: Mapping[str, Any] | Callable[[str], Any],
    positives: Mapping[str, set[str]] | None = None,
    verification: Verification | None = None,
    query_features: Any = None,
    db_features: Any = None,
    config: Any = None,
    metrics: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
    top: int = 10,
    match_pictures: int = 5,
    title: str = "re-ranking report",
    progress: bool = True,
    workers: int = 2,
) -> Path:
    """Write the report page at ``path`` (``.html``) and its pictures in
    ``<stem>_files/`` beside it; return the page's path.

    ``global_sims`` / ``reranked``: ``{query: {db id: score}}`` (best first, as
    ``global.json`` and ``reranked.json``); ``query_images`` / ``db_images``: id -> image
    source (a path, bytes, an array) for the thumbnails; ``positives``: the ground truth,
    where there is one; ``verification``: inliers and transforms
    (:func:`~ilias_rerank.report.read_verification`); ``query_features`` / ``db_features``
    (id -> :class:`~ilias_rerank.LocalFeatures`, e.g. feature stores): with them the
    re-ranked top ``match_pictures`` of each query (verified ones) get a match picture,
    drawn as :func:`~ilias_rerank.pictures.draw_matches` draws it (at most ``top``).
    ``top``: candidates shown per row (1-100). Every query of ``reranked`` is listed; the
    page shows them a page at a time and loads thumbnails lazily, so a run of thousands of
    queries stays usable."""
    if not 1 <= top <= 100:
        raise InvalidInputError(f"report top: expected 1 to 100, got {top}")
    if not 0 <= match_pictures <= 100:
        raise InvalidInputError(f"report match pictures: expected 0 to 100, got {match_pictures}")
    path = Path(path)
    if path.suffix.lower() != ".html":
        raise InvalidInputError(f"report: expected a .html path, got {path}")
    t0 = time.perf_counter()
    files = path.with_name(path.stem + "_files")
    (files / "thumbs").mkdir(parents=True, exist_ok=True)
    (files / "matches").mkdir(parents=True, exist_ok=True)

    def lookup(images, image_id):
        return images(image_id) if callable(images) else images[image_id]

    thumbs: dict[tuple[str, str], int] = {}  # (kind, id) -> thumbnail index

    def thumb(kind: str, image_id: str) -> int:
        return thumbs.setdefault((kind, image_id), len(thumbs))

    verification = verification or {}
    queries, pairs, points = [], [], []
    for q, after_sims in reranked.items():
        # Rankings by score, as the job and the evaluator read them (never the file's order).
        before = by_score(global_sims.get(q, {}))
        after = by_score(after_sims)
        grank = {d: i + 1 for i, d in enumerate(before)}
        pos = set(positives[q]) if positives is not None and q in positives else None
        checked = verification.get(q, {})
        ap_g, ap_r = _ap(before, pos), _ap(after, pos)
        if ap_g is not None and ap_r is not None:
            points.append((ap_g, ap_r))
        first_pos = next((i + 1 for i, d in enumerate(after) if pos and d in pos), None)
        first_pos_g = next((i + 1 for i, d in enumerate(before) if pos and d in pos), None)

        def cell(d: str, drawn: bool, q=q, pos=pos, checked=checked, grank=grank) -> list:
            inl = checked[d][0] if d in checked else None
            picture = None
            if drawn and inl is not None and inl > 0 and query_features is not None:
                picture = len(pairs)
                pairs.append((q, d))
            return [
                thumb("db", d),
                None if pos is None else int(d in pos),
                inl,
                picture,
                grank.get(d),
                d,
            ]

        row_after = [cell(d, i < match_pictures) for i, d in enumerate(after[:top])]
        drawn = {c[5]: c[3] for c in row_after if c[3] is not None}
        row_before = []
        for d in before[:top]:
            c = cell(d, False)
            c[3] = drawn.get(d)
            row_before.append(c)
        queries.append(
            {
                "id": q,
                "img": thumb("query", q),
                "apg": ap_g,
                "apr": ap_r,
                "pos_g": first_pos_g,
                "pos_r": first_pos,
                "g": row_before,
                "r": row_after,
            }
        )

    # Thumbnails and match pictures, two threads (Pillow releases the GIL while decoding).
    folder = quote(files.name)  # a page named "run#1.html" still finds its files
    names = {i: f"{folder}/thumbs/{i}.jpg" for i in thumbs.values()}
    jobs: list[Callable[[], None]] = []
    for (kind, image_id), i in thumbs.items():
        images = query_images if kind == "query" else db_images
        jobs.append(
            lambda m=images, d=image_id, i=i: _thumbnail(
                lookup(m, d), files / "thumbs" / f"{i}.jpg"
            )
        )
    if pairs:
        from ..pictures import match_picture

        for n, (q, d) in enumerate(pairs):
            jobs.append(
                lambda n=n, q=q, d=d: match_picture(
                    lookup(query_images, q),
                    lookup(db_images, d),
                    query_features[q],
                    db_features[d],
                    files / "matches" / f"{n}.jpg",
                    config=config,
                    title=f"{q} -> {d}",
                )
            )
    paths = [files / "thumbs" / f"{i}.jpg" for i in range(len(thumbs))]
    paths += [files / "matches" / f"{n}.jpg" for n in range(len(pairs))]
    unreadable: list[str] = []

    def run(k: int) -> None:
        # An image that cannot be read (or a pair that cannot be drawn) costs its picture,
        # not the report: a grey placeholder that says why, and a line on the page.
        try:
            jobs[k]()
        except (OSError, ValueError, KeyError, IliasRerankError) as exc:
            unreadable.append(f"{paths[k].parent.name}/{paths[k].name}: {exc}")
            _placeholder(paths[k], str(exc))

    with ThreadPoolExecutor(max(1, workers)) as pool:
        done = pool.map(run, range(len(jobs)))
        for _ in _progress(
            done, progress and len(jobs) > 1, desc="report", unit="pic", total=len(jobs)
        ):
            pass

    data = {
        "title": title,
        "thumbs": [names[i] for i in range(len(names))],
        "matches": [f"{folder}/matches/{n}.jpg" for n in range(len(pairs))],
        "queries": queries,
        "top": top,
        "has_gt": positives is not None,
        "unreadable": sorted(unreadable),
    }
    from .page import render

    html = render(
        title=title,
        data=data,
        metrics=dict(metrics or {}),
        settings=dict(settings or {}),
        plot=_scatter(points) if points else "",
        seconds=time.perf_counter() - t0,
    )
    return atomic_write(path, html.encode("utf-8"))
