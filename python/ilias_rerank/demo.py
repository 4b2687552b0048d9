"""The embedded default job: re-rank a retrieval shortlist on data that exists on every
machine with this package's test extras (no ../shared, no network).

Database: real photos shipped inside scikit-image's wheel. Queries: synthetic "phone
shots" of them (random homography, crop, brightness/contrast change, noise). First stage:
a deliberately weak global descriptor (a 16x16 thumbnail, cosine), as a stand-in for any
embedding. Second stage: ``ilias_rerank.rerank`` with local features. Prints what it did,
the before/after top-1 and mAP, and the re-ranking throughput.

Run: ``python -m ilias_rerank.demo`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import ilias_rerank as ir
from ilias_rerank.evaluation import average_precision

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
    from skimage import data as skdata

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


def thumbnail_embedding(img: np.ndarray) -> np.ndarray:
    from PIL import Image

    v = np.asarray(
        Image.fromarray(img).resize((16, 16), Image.Resampling.BILINEAR), np.float32
    ).ravel()
    v -= v.mean()
    return v / (np.linalg.norm(v) + 1e-9)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--views", type=int, default=2, help="synthetic queries per photo")
    parser.add_argument("--features", type=int, default=1024, help="local features per image")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    photos = load_photos()
    names = list(photos)
    print(f"database: {len(names)} photos shipped in scikit-image ({', '.join(names)})")
    queries, truth = [], []
    for i, name in enumerate(names):
        for _ in range(args.views):
            queries.append(phone_shot(photos[name], rng))
            truth.append(i)
    print(f"queries:  {len(queries)} synthetic phone shots ({args.views} per photo)")

    t0 = time.perf_counter()
    db_feats = ir.extract_local(
        [photos[n] for n in names], num_features=args.features, progress=True
    )
    q_feats = ir.extract_local(queries, num_features=args.features, progress=True)
    t_extract = time.perf_counter() - t0
    print(
        f"extracted {args.features} RootSIFT features per image with kornia in {t_extract:.1f} s "
        f"(kernels: {ir.cpu_features()})"
    )

    db_emb = np.stack([thumbnail_embedding(photos[n]) for n in names])
    q_emb = np.stack([thumbnail_embedding(q) for q in queries])
    sims = q_emb @ db_emb.T

    before_top1, after_top1, before_ap, after_ap = [], [], [], []
    t_rerank, pairs = 0.0, 0
    for qi, (qf, target) in enumerate(zip(q_feats, truth, strict=True)):
        shortlist = np.argsort(-sims[qi], kind="stable")
        labels = (shortlist == target).astype(float)
        before_top1.append(shortlist[0] == target)
        before_ap.append(average_precision(labels))
        t1 = time.perf_counter()
        result = ir.rerank(qf, [db_feats[j] for j in shortlist], global_scores=sims[qi, shortlist])
        t_rerank += time.perf_counter() - t1
        pairs += len(shortlist)
        reranked = shortlist[result.order]
        after_top1.append(reranked[0] == target)
        after_ap.append(average_precision((reranked == target).astype(float)))

    print()
    print(f"{'':22s}{'top-1':>8s}{'mAP':>8s}")
    print(f"{'global (thumbnail)':22s}{np.mean(before_top1):8.3f}{np.mean(before_ap):8.3f}")
    print(f"{'re-ranked (ilias)':22s}{np.mean(after_top1):8.3f}{np.mean(after_ap):8.3f}")
    print(
        f"\nre-ranked {pairs} query-candidate pairs in {t_rerank * 1000:.0f} ms "
        f"({pairs / max(t_rerank, 1e-9):.0f} pairs/s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
