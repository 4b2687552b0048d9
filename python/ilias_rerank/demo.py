"""The embedded demo data: real photos shipped inside scikit-image's wheel (no ../shared,
no network) and synthetic views of them that a global embedding gets wrong.

The database is every photo plus a *scrambled* copy of each (its blocks shuffled and
turned: the same local textures, no object), near-duplicates for any orderless global
descriptor. Each query shows one photo as a small object (5-20 % of the frame) at any
rotation, under strong perspective and another light, partly occluded, over clutter cut
from *other* database photos (:func:`hard_shot`). The global stage (VLAD) sees mostly the
clutter and ranks other photos first; spatial verification finds the one rigid object.

It is the ``demo`` dataset of the pipeline (:mod:`ilias_rerank.datasets`); ``ilias-rerank
run`` (or ``python -m ilias_rerank run``) runs the whole job on it. This module only makes
the images: it imports neither the pipeline nor the command line. Needs scikit-image (the
``pipeline`` extra).
"""

from __future__ import annotations

import numpy as np

from ._extras import require

PHOTOS = (
    "astronaut",
    "camera",
    "coffee",
    "chelsea",
    "rocket",
    "motorcycle_left",
    "immunohistochemistry",
    "hubble_deep_field",
    "brick",
    "grass",
    "gravel",
    "page",
    "text",
    "coins",
    "retina",
    "moon",
)


def load_photos() -> dict[str, np.ndarray]:
    skdata = require("skimage.data", "the embedded demo")

    out = {}
    for name in PHOTOS:
        try:
            img = getattr(skdata, name)()
        except Exception:  # a photo missing from this scikit-image version (or fetched remotely)
            continue
        if img.ndim == 3:
            img = img[..., :3].mean(axis=2)
        out[name] = img.astype(np.uint8)
    return out


def phone_shot(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A synthetic view: perspective warp, photometric change, sensor noise."""
    from skimage.transform import ProjectiveTransform, warp

    h, w = img.shape
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], float)
    jitter = rng.uniform(-0.12, 0.12, (4, 2)) * [w, h]
    if hasattr(ProjectiveTransform, "from_estimate"):  # scikit-image >= 0.26
        t = ProjectiveTransform.from_estimate(corners, corners + jitter)
    else:  # pragma: no cover
        t = ProjectiveTransform()
        t.estimate(corners, corners + jitter)
    view = warp(
        img / 255.0, t.inverse, output_shape=(h, w), mode="constant", cval=rng.uniform(0, 1)
    )
    view = view * rng.uniform(0.7, 1.2) + rng.uniform(-0.1, 0.1) + rng.normal(0, 0.02, view.shape)
    return (np.clip(view, 0, 1) * 255).astype(np.uint8)


def _warp_object(
    img: np.ndarray, rng: np.random.Generator, side: float, angle: float, tilt: float
) -> tuple[np.ndarray, np.ndarray]:
    """``img`` rotated by ``angle`` degrees, foreshortened by up to ``tilt`` of its side and
    scaled so that its longer side is ``side`` pixels: (object, mask of its pixels)."""
    from skimage.transform import ProjectiveTransform, warp

    h, w = img.shape
    s = side / max(h, w)
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], float)
    centred = (corners - [w / 2, h / 2]) * s
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    moved = centred @ rot.T + rng.uniform(-tilt, tilt, (4, 2)) * side
    moved -= moved.min(axis=0)
    oh, ow = (np.ceil(moved.max(axis=0)).astype(int) + 1)[::-1]
    if hasattr(ProjectiveTransform, "from_estimate"):  # scikit-image >= 0.26
        t = ProjectiveTransform.from_estimate(corners, moved)
    else:  # pragma: no cover
        t = ProjectiveTransform()
        t.estimate(corners, moved)
    obj = warp(img / 255.0, t.inverse, output_shape=(oh, ow), order=1)
    mask = warp(np.ones((h, w)), t.inverse, output_shape=(oh, ow), order=0) > 0.5
    return obj, mask


def scrambled(img: np.ndarray, rng: np.random.Generator, tiles: int = 10) -> np.ndarray:
    """``img`` cut into ``tiles`` x ``tiles`` blocks, shuffled and each turned by a multiple
    of 90 degrees: the same local textures (a bag of features all but identical to the
    photo's), no object."""
    h, w = img.shape
    th, tw = h // tiles, w // tiles
    t = min(th, tw)
    blocks = [
        np.rot90(img[y * t : (y + 1) * t, x * t : (x + 1) * t], int(rng.integers(4)))
        for y in range(h // t)
        for x in range(w // t)
    ]
    order = rng.permutation(len(blocks))
    rows, cols = h // t, w // t
    out = np.zeros((rows * t, cols * t), np.uint8)
    for i, j in enumerate(order):
        y, x = divmod(i, cols)
        out[y * t : (y + 1) * t, x * t : (x + 1) * t] = blocks[j]
    return out


def _clutter(
    shape: tuple[int, int], sources: list[np.ndarray], rng: np.random.Generator, tile: int
) -> np.ndarray:
    """A frame covered with soft-edged round pieces (radius about ``tile`` pixels) cut from
    ``sources`` (other photos), each turned by a multiple of 90 degrees, over a blurred,
    enlarged one: busy and made of database textures, with no database object in one
    piece."""
    from PIL import Image, ImageFilter

    h, w = shape
    base = sources[int(rng.integers(len(sources)))]
    frame = np.asarray(
        Image.fromarray(base)
        .resize((w, h), Image.Resampling.BILINEAR)
        .filter(ImageFilter.GaussianBlur(6)),
        dtype=np.float64,
    )
    r = tile
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    alpha = np.clip(1.5 - np.hypot(yy, xx) / r * 1.5, 0, 1)  # flat centre, soft rim
    side = 2 * r + 1
    for _ in range(int(2.0 * h * w / side**2)):
        src = sources[int(rng.integers(len(sources)))]
        sy = int(rng.integers(0, src.shape[0] - side + 1))
        sx = int(rng.integers(0, src.shape[1] - side + 1))
        piece = np.rot90(src[sy : sy + side, sx : sx + side], int(rng.integers(4)))
        y, x = int(rng.integers(-r, h - r)), int(rng.integers(-r, w - r))
        y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + side, h), min(x + side, w)
        a = alpha[y0 - y : y1 - y, x0 - x : x1 - x]
        frame[y0:y1, x0:x1] = (1 - a) * frame[y0:y1, x0:x1] + a * piece[
            y0 - y : y1 - y, x0 - x : x1 - x
        ]
    return np.clip(frame, 0, 255).astype(np.uint8)


#: The demo's query views: (share of the frame the object covers, share of its side
#: occluded). Every view is also rotated (any angle), foreshortened and relit.
VIEWS = (((0.12, 0.2), 0.15), ((0.05, 0.12), 0.1), ((0.08, 0.16), 0.3))


def hard_shot(
    img: np.ndarray,
    others: list[np.ndarray],
    rng: np.random.Generator,
    area: tuple[float, float] = (0.05, 0.2),
    shape: tuple[int, int] = (576, 768),
    tile: int = 20,
    occlusion: float = 0.15,
) -> np.ndarray:
    """A view a global embedding gets wrong: ``img`` as a small object (``area`` of the frame,
    a random share in that range) at any rotation and a strong perspective, under another
    light, partly occluded, pasted over clutter made of soft round pieces of ``others``."""
    h, w = shape
    frame = _clutter(shape, others, rng, tile) / 255.0
    ih, iw = img.shape
    share = rng.uniform(*area)
    side = np.sqrt(share * h * w * max(ih, iw) ** 2 / (ih * iw))
    obj, mask = _warp_object(img, rng, min(side, 0.95 * min(h, w)), rng.uniform(0, 360), 0.12)
    obj = np.clip(obj * rng.uniform(0.6, 1.3) + rng.uniform(-0.15, 0.15), 0, 1)
    oh, ow = obj.shape
    oh, ow = min(oh, h), min(ow, w)
    y, x = int(rng.integers(0, h - oh + 1)), int(rng.integers(0, w - ow + 1))
    region = frame[y : y + oh, x : x + ow]
    m = mask[:oh, :ow]
    region[m] = obj[:oh, :ow][m]
    if occlusion > 0:  # a patch of clutter over part of the object
        cy, cx = (
            int(oh * (1 - occlusion) * rng.uniform()),
            int(ow * (1 - occlusion) * rng.uniform()),
        )
        ch, cw = int(oh * occlusion * 1.5), int(ow * occlusion * 1.5)
        if ch and cw:
            patch = _clutter((ch, cw), others, rng, tile) / 255.0
            region[cy : cy + ch, cx : cx + cw] = patch[
                : region.shape[0] - cy, : region.shape[1] - cx
            ]
    frame = frame + rng.normal(0, 0.015, frame.shape)
    return (np.clip(frame, 0, 1) * 255).astype(np.uint8)


#: What the demo must show (printed by ``ilias-rerank run`` on it): the global stage wrong
#: for a clear share of queries, re-ranking repairing most of them.
TARGETS = {"global_at_most": 0.80, "gain_at_least": 0.15}


def target_lines(report: dict) -> list[str]:
    """One line per metric (mAP, top-1): the demo's targets, met or missed."""
    lines = []
    for key, name in (("map", "mAP"), ("top1", "top-1")):
        g, r = report["global"][key], report["reranked"][key]
        ok_g = g <= TARGETS["global_at_most"]
        ok_r = r >= g + TARGETS["gain_at_least"]
        lines.append(
            f"demo target {name}: global {g:.3f} <= {TARGETS['global_at_most']:.2f} "
            f"{'met' if ok_g else 'MISSED'}; re-ranked {r:.3f} >= global + "
            f"{TARGETS['gain_at_least']:.2f} {'met' if ok_r else 'MISSED'} ({r - g:+.3f})"
        )
    return lines
