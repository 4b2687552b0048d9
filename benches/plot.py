"""Line plots as PNG with Pillow (no plotting library needed): log-scaled axes, one
coloured line with markers per series, a legend."""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189)]


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        return [10.0**e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]
    step = 10 ** math.floor(math.log10(max(hi - lo, 1e-12)))
    return [lo + i * step for i in range(int((hi - lo) / step) + 1)]


def line_plot(
    series: dict[str, list[tuple[float, float]]],
    path: Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    logx: bool = True,
    logy: bool = True,
    size: tuple[int, int] = (900, 560),
) -> None:
    """Draw ``{name: [(x, y), ...]}`` to ``path`` (written atomically)."""
    width, height = size
    left, right, top, bottom = 90, 30, 50, 70
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts if y > 0]
    fx = math.log10 if logx else float
    fy = math.log10 if logy else float
    x_ticks = _ticks(min(xs), max(xs), logx)
    y_ticks = _ticks(min(ys), max(ys), logy)
    x0, x1 = fx(min(x_ticks[0], min(xs))), fx(max(x_ticks[-1], max(xs)))
    y0, y1 = fy(min(y_ticks[0], min(ys))), fy(max(y_ticks[-1], max(ys)))

    def px(x: float, y: float) -> tuple[float, float]:
        u = left + (fx(x) - x0) / (x1 - x0 or 1) * (width - left - right)
        v = height - bottom - (fy(y) - y0) / (y1 - y0 or 1) * (height - top - bottom)
        return u, v

    for t in x_ticks:
        u, _ = px(t, y_ticks[0])
        draw.line([(u, top), (u, height - bottom)], fill=(225, 225, 225))
        draw.text((u - 12, height - bottom + 6), f"{t:g}", fill="black")
    for t in y_ticks:
        _, v = px(x_ticks[0], t)
        draw.line([(left, v), (width - right, v)], fill=(225, 225, 225))
        draw.text((8, v - 6), f"{t:g}", fill="black")
    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    draw.text((left, 15), title, fill="black")
    draw.text((width // 2 - 60, height - 30), xlabel, fill="black")
    draw.text((8, top - 20), ylabel, fill="black")
    for k, (name, pts) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        coords = [px(x, y) for x, y in sorted(pts) if y > 0]
        if len(coords) > 1:
            draw.line(coords, fill=colour, width=3)
        for u, v in coords:
            draw.ellipse([u - 4, v - 4, u + 4, v + 4], fill=colour)
        ly = top + 10 + 18 * k
        draw.line(
            [(width - right - 230, ly + 6), (width - right - 200, ly + 6)], fill=colour, width=3
        )
        draw.text((width - right - 195, ly), name, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    img.save(tmp)
    tmp.replace(path)
