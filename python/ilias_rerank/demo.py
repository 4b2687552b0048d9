"""The embedded demo data: real photos shipped inside scikit-image's wheel (no ../shared,
no network) and synthetic views of them: "phone shots" (random homography, brightness and
contrast change, noise) and the photo as a small object over synthetic clutter.

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


def clutter(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A textured background that is in no database: smoothed noise at several scales and
    random rectangles."""
    from skimage.filters import gaussian

    h, w = shape
    img = sum(gaussian(rng.random((h, w)), sigma) * (sigma / 4) for sigma in (1, 4, 16))
    img = (img - img.min()) / (np.ptp(img) + 1e-9)
    for _ in range(12):
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        y1, x1 = y0 + int(rng.integers(10, h // 3)), x0 + int(rng.integers(10, w // 3))
        img[y0:y1, x0:x1] = rng.uniform(0, 1)
    return (img * 255).astype(np.uint8)


def cluttered_shot(img: np.ndarray, rng: np.random.Generator, scale: float = 0.5) -> np.ndarray:
    """A harder view: a phone shot of ``img`` shrunk to ``scale`` of the frame and pasted
    at a random place over clutter (a small object in a busy scene)."""
    from PIL import Image

    h, w = img.shape
    frame = clutter((h, w), rng)
    obj = phone_shot(img, rng)
    oh, ow = max(8, int(h * scale)), max(8, int(w * scale))
    obj = np.asarray(Image.fromarray(obj).resize((ow, oh), Image.Resampling.BILINEAR))
    y, x = int(rng.integers(0, h - oh + 1)), int(rng.integers(0, w - ow + 1))
    frame[y : y + oh, x : x + ow] = obj
    return frame
