"""Pictures people look at, as PNG (Pillow only): a query with its top-k before and after
re-ranking, and the inlier matches of a pair with the query's outline projected by the
estimated transform. Also the polygon IoU used to score localisation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ._io import atomic_write
from .images import load_image

__all__ = ["draw_matches", "draw_rankings", "match_picture", "polygon_iou"]

GREEN, RED, YELLOW, GREY = (40, 170, 60), (210, 40, 40), (250, 210, 0), (120, 120, 120)
CYAN = (0, 200, 230)


def _mask(polygon: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    img = Image.new("1", size, 0)
    ImageDraw.Draw(img).polygon([tuple(map(float, p)) for p in polygon], fill=1)
    return np.asarray(img, dtype=bool)


def polygon_iou(a: np.ndarray, b: np.ndarray, size: tuple[int, int]) -> float:
    """Intersection over union of two polygons, rasterised on a ``size`` = (width, height)
    canvas (the image they live in; parts outside it do not count)."""
    ma, mb = _mask(np.asarray(a), size), _mask(np.asarray(b), size)
    union = (ma | mb).sum()
    return float((ma & mb).sum() / union) if union else 0.0


def _thumb(source: Any, height: int) -> Image.Image:
    img = load_image(source, mode="RGB")
    scale = height / img.height
    return img.resize((max(1, round(img.width * scale)), height), Image.Resampling.BILINEAR)


def _save(img: Image.Image, path: Path) -> Path:
    """PNG, or JPEG for a ``.jpg`` / ``.jpeg`` path (the report's match pictures: a PNG of
    a match picture takes about half a second to encode, a JPEG a hundredth)."""
    if path.suffix.lower() in (".jpg", ".jpeg"):
        return atomic_write(path, lambda fh: img.save(fh, format="JPEG", quality=90))
    return atomic_write(path, lambda fh: img.save(fh, format="PNG"))


def draw_rankings(
    query: Any,
    rows: Sequence[tuple[str, Sequence[Any], Sequence[bool]]],
    path: str | Path,
    height: int = 120,
) -> Path:
    """The query, then one row per ``(title, images, relevant flags)``: green frames for
    relevant images, red for the others."""
    pad, label = 6, 16
    q = _thumb(query, height)
    thumbs = [[_thumb(s, height) for s in images] for _, images, _ in rows]
    width = q.width + pad * 3 + max((sum(t.width + pad for t in row) for row in thumbs), default=0)
    canvas = Image.new("RGB", (width, pad + len(rows) * (height + label + pad)), "white")
    draw = ImageDraw.Draw(canvas)
    canvas.paste(q, (pad, pad + label))
    draw.text((pad, pad), "query", fill="black")
    for r, ((title, _, relevant), row) in enumerate(zip(rows, thumbs, strict=True)):
        y = pad + r * (height + label + pad)
        x = q.width + pad * 3
        draw.text((x, y), title, fill="black")
        for t, ok in zip(row, relevant, strict=True):
            canvas.paste(t, (x, y + label))
            draw.rectangle(
                [x, y + label, x + t.width - 1, y + label + height - 1],
                outline=GREEN if ok else RED,
                width=4,
            )
            x += t.width + pad
    return _save(canvas, Path(path))


def draw_matches(
    query: Any,
    candidate: Any,
    query_points: np.ndarray,
    candidate_points: np.ndarray,
    inlier_mask: np.ndarray,
    transform: np.ndarray | None,
    path: str | Path,
    height: int = 480,
    title: str = "",
    candidate_outline: bool = False,
) -> Path:
    """Side by side: inlier matches in green (outliers omitted), and on the candidate the
    query's outline mapped by ``transform`` (query pixels -> candidate pixels) in yellow;
    with ``candidate_outline``, also the candidate's outline mapped back into the query (by
    the inverse transform) in cyan: where the object is in a cluttered query."""
    qi, ci = load_image(query, mode="RGB"), load_image(candidate, mode="RGB")
    sq, sc = height / qi.height, height / ci.height
    qi = qi.resize((max(1, round(qi.width * sq)), height), Image.Resampling.BILINEAR)
    ci = ci.resize((max(1, round(ci.width * sc)), height), Image.Resampling.BILINEAR)
    if transform is not None and np.isfinite(transform).all():
        # Drawn on the candidate's own panel, so an outline that leaves the candidate is
        # clipped at its border and never crosses into the query's panel.
        w, h = qi.width / sq, qi.height / sq
        corners = np.array([[0, 0], [w, 0], [w, h], [0, h], [0, 0]], dtype=np.float64)
        p = np.c_[corners, np.ones(5)] @ np.asarray(transform).T
        outline = p[:, :2] / p[:, 2:3]
        if np.isfinite(outline).all() and (p[:, 2] > 0).all():
            ImageDraw.Draw(ci).line([(x * sc, y * sc) for x, y in outline], fill=YELLOW, width=3)
        if candidate_outline and abs(np.linalg.det(transform)) > 1e-12:
            w, h = ci.width / sc, ci.height / sc
            corners = np.array([[0, 0], [w, 0], [w, h], [0, h], [0, 0]], dtype=np.float64)
            p = np.c_[corners, np.ones(5)] @ np.linalg.inv(np.asarray(transform)).T
            back = p[:, :2] / p[:, 2:3]
            if np.isfinite(back).all() and (p[:, 2] > 0).all():
                ImageDraw.Draw(qi).line([(x * sq, y * sq) for x, y in back], fill=CYAN, width=3)
    canvas = Image.new("RGB", (qi.width + ci.width + 10, height + 20), "white")
    canvas.paste(qi, (0, 20))
    canvas.paste(ci, (qi.width + 10, 20))
    draw = ImageDraw.Draw(canvas)
    n_in = int(np.sum(inlier_mask))
    draw.text((4, 4), title or f"{n_in} inliers of {len(inlier_mask)} matches", fill="black")
    off = qi.width + 10
    for (xq, yq), (xc, yc), ok in zip(query_points, candidate_points, inlier_mask, strict=True):
        if ok:
            draw.line([(xq * sq, yq * sq + 20), (xc * sc + off, yc * sc + 20)], fill=GREEN, width=1)
    return _save(canvas, Path(path))


def match_picture(
    query: Any,
    candidate: Any,
    query_features: Any,
    candidate_features: Any,
    path: str | Path,
    config: Any = None,
    title: str = "",
    height: int = 480,
) -> tuple[Path, Any]:
    """Verify the pair (:func:`~ilias_rerank.verify_pair` with ``config``) and draw its
    inlier matches, the query's outline mapped onto the candidate and the candidate's
    mapped into the query (:func:`draw_matches`): ``(picture path, the verification)``."""
    from .api import verify_pair

    v = verify_pair(query_features, candidate_features, config=config)
    qk, ck = query_features.keypoints, candidate_features.keypoints
    label = f"{title}: " if title else ""
    picture = draw_matches(
        query,
        candidate,
        qk[v.matches[:, 0]],
        ck[v.matches[:, 1]],
        v.inlier_mask,
        v.transform,
        path,
        height=height,
        title=f"{label}{v.num_inliers} inliers of {len(v.matches)} matches ({v.model})",
        candidate_outline=True,
    )
    return picture, v
