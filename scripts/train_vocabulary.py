"""Train the vocabulary that ships in the package (``ilias_rerank/codes/vocabulary.npz``)
from photos that ship inside installed PyPI wheels and are in no evaluation set:
scikit-image's ``skimage/data`` photos, matplotlib's ``grace_hopper.jpg`` and
scikit-learn's ``china.jpg`` / ``flower.jpg``, each augmented (scales, rotations, perspective
warps) so that the descriptors cover the viewpoint changes retrieval meets. Nothing is
downloaded. The embedded demo's database uses scikit-image's photos too, so the demo is not
an independent test of the vocabulary.

The record of what it was trained on (files, byte digests, augmentations, features) is
stored in the vocabulary's ``trained_on`` field and printed.

Run: ``PYTHONPATH=python .venv/bin/python scripts/train_vocabulary.py [--out PATH]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

#: The photos: (package, path inside it). Synthetic / non-photographic images are left out.
PHOTOS = [
    ("skimage", "data/astronaut.png"),
    ("skimage", "data/brick.png"),
    ("skimage", "data/camera.png"),
    ("skimage", "data/chelsea.png"),
    ("skimage", "data/coffee.png"),
    ("skimage", "data/coins.png"),
    ("skimage", "data/grass.png"),
    ("skimage", "data/gravel.png"),
    ("skimage", "data/hubble_deep_field.jpg"),
    ("skimage", "data/moon.png"),
    ("skimage", "data/motorcycle_left.png"),
    ("skimage", "data/motorcycle_right.png"),
    ("skimage", "data/rocket.jpg"),
    ("skimage", "data/retina.jpg"),
    ("skimage", "data/page.png"),
    ("skimage", "data/text.png"),
    ("skimage", "data/clock_motion.png"),
    ("skimage", "data/color.png"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ("sklearn", "datasets/images/china.jpg"),
    ("sklearn", "datasets/images/flower.jpg"),
]

#: Augmentations: (scale, rotation in degrees, perspective strength).
AUGMENT = [
    (1.0, 0, 0.0),
    (2.0, 0, 0.0),
    (0.6, 0, 0.0),
    (1.5, 30, 0.0),
    (1.0, -60, 0.0),
    (1.5, 0, 0.25),
    (1.2, 15, -0.2),
    (2.5, 0, 0.15),
]


def photo_paths() -> list[Path]:
    import importlib

    out = []
    for pkg, rel in PHOTOS:
        root = Path(importlib.import_module(pkg).__file__).parent
        out.append(root / rel)
    return out


def augmented(img: np.ndarray, scale: float, angle: float, persp: float, seed: int):
    import cv2

    h, w = img.shape[:2]
    img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    h, w = img.shape[:2]
    if angle:
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        img = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    if persp:
        d = abs(persp) * w / 2
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        dst = src.copy()
        if persp > 0:
            dst[0, 1] += d / 2
            dst[3, 1] -= d / 2
        else:
            dst[1, 1] += d / 2
            dst[2, 1] -= d / 2
        img = cv2.warpPerspective(
            img, cv2.getPerspectiveTransform(src, dst), (w, h), borderMode=cv2.BORDER_REFLECT
        )
    return img


def descriptors(per_image: int = 4096):
    """RootSIFT of every augmented photo (OpenCV SIFT, the default extractor's settings)."""
    import cv2

    from ilias_rerank.extractors.sift_opencv import DEFAULT_CONTRAST

    cv2.setNumThreads(1)
    sift = cv2.SIFT_create(nfeatures=per_image, contrastThreshold=DEFAULT_CONTRAST)
    out, record = [], []
    for k, path in enumerate(photo_paths()):
        data = path.read_bytes()
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        n = 0
        for a, (scale, angle, persp) in enumerate(AUGMENT):
            view = augmented(img, scale, angle, persp, 100 * k + a)
            if max(view.shape) > 2048:
                f = 2048 / max(view.shape)
                view = cv2.resize(view, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
            _, d = sift.detectAndCompute(view, None)
            if d is None:
                continue
            d = np.sqrt(d / np.maximum(d.sum(1, keepdims=True), 1e-9))
            out.append(d.astype(np.float32))
            n += len(d)
        record.append(
            {
                "file": f"{path.parent.name}/{path.name}",
                "package": path.parts[-3] if path.parts[-3] != "site-packages" else "",
                "sha1": hashlib.sha1(data).hexdigest(),
                "features": n,
            }
        )
    return np.concatenate(out), record


def main(argv=None) -> int:
    from ilias_rerank.codes import Vocabulary

    here = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=here / "python/ilias_rerank/codes/vocabulary.npz")
    ap.add_argument("--half-words", type=int, default=256)
    ap.add_argument("--bits", type=int, default=64)
    ap.add_argument("--max-descriptors", type=int, default=150_000)
    ap.add_argument("--iterations", type=int, default=15)
    args = ap.parse_args(argv)
    x, record = descriptors()
    total = len(x)
    x = x[np.sort(np.random.default_rng(0).permutation(len(x))[: args.max_descriptors])]
    trained_on = json.dumps(
        {
            "source": "photos shipped in PyPI wheels (scikit-image, matplotlib, scikit-learn), "
            "in no evaluation set",
            "augmentations": [list(a) for a in AUGMENT],
            "extraction": "OpenCV SIFT, 4096 strongest, RootSIFT",
            "descriptors": total,
            "sampled": len(x),
            "kmeans_iterations": args.iterations,
            "images": record,
        },
        sort_keys=True,
    )
    voc = Vocabulary.train(
        x, trained_on, half_words=args.half_words, bits=args.bits, iterations=args.iterations
    )
    voc.save(args.out)
    print(json.dumps({"id": voc.name, "descriptors": len(x), "out": str(args.out)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
