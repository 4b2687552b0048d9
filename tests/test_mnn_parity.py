"""Mutual-nearest-neighbour parity with ``kornia.feature.match_mnn`` on real RootSIFT
descriptors and on random float32 data, including the empty cases (empty output, no
error, as kornia)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kornia.feature import match_mnn
from skimage import data as skdata

import ilias_rerank as ir


def ours(a: np.ndarray, b: np.ndarray) -> set[tuple[int, int]]:
    fa = ir.LocalFeatures(np.zeros((len(a), 2)), a)
    fb = ir.LocalFeatures(np.zeros((len(b), 2)), b)
    v = ir.verify_pair(fa, fb, config=ir.RerankConfig(ratio=None))
    return {tuple(m) for m in v.matches.tolist()}


def kornias(a: np.ndarray, b: np.ndarray) -> set[tuple[int, int]]:
    _, idx = match_mnn(torch.from_numpy(a), torch.from_numpy(b))
    return {tuple(m) for m in idx.tolist()}


@pytest.fixture(scope="module")
def real_descriptors():
    kw = {"num_features": 700, "descriptor_dtype": "float32"}
    a = ir.extract_local(skdata.astronaut(), **kw)[0].descriptors
    b = ir.extract_local(skdata.astronaut()[::-1, 40:], **kw)[0].descriptors
    return a, b


def test_parity_on_real_rootsift(real_descriptors):
    a, b = real_descriptors
    ref = kornias(a, b)
    got = ours(a, b)
    # Float rounding may flip a near-tie; require near-identity.
    assert len(got ^ ref) <= max(2, len(ref) // 200), (len(got), len(ref), len(got ^ ref))
    assert len(ref) > 100


@pytest.mark.parametrize(("n", "m", "d"), [(1, 1, 8), (3, 70, 16), (257, 31, 128), (500, 600, 64)])
def test_parity_on_random_descriptors(n, m, d):
    g = np.random.default_rng(n + m + d)
    a = g.normal(size=(n, d)).astype(np.float32)
    b = g.normal(size=(m, d)).astype(np.float32)
    assert ours(a, b) == kornias(a, b)


@pytest.mark.parametrize(("n", "m"), [(5, 9), (300, 200)])
def test_parity_on_uint8_descriptors(n, m):
    g = np.random.default_rng(n * m)
    a = g.integers(0, 256, (n, 128), dtype=np.uint8)
    b = g.integers(0, 256, (m, 128), dtype=np.uint8)
    # Our uint8 path is exact integer arithmetic; kornia gets float64 copies.
    ref = kornias(a.astype(np.float64), b.astype(np.float64))
    assert ours(a, b) == ref


def test_empty_sides_give_empty_output():
    a = np.zeros((0, 16), np.float32)
    b = np.ones((5, 16), np.float32)
    assert ours(a, b) == set() == kornias(a, b)
    assert ours(b, a) == set() == kornias(b, a)
