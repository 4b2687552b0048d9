"""Compact mode: binarised descriptors matched by Hamming distance, records of at most
8 KB that round-trip, and corrupt records refused."""

from __future__ import annotations

import numpy as np
import pytest

import ilias_rerank as ir
from ilias_rerank import compact
from ilias_rerank.demo import load_photos, phone_shot


def test_binarise_sets_the_bits_above_the_median():
    d = np.arange(128, dtype=np.float32)[None, :].repeat(2, 0)
    d[1] = d[1][::-1]
    words = compact.binarise(d)
    assert words.shape == (2, 2) and words.dtype == np.uint64
    # Row 0: values 64..127 are above the median 63.5 -> the whole second word.
    assert words[0].tolist() == [0, 2**64 - 1]
    assert words[1].tolist() == [2**64 - 1, 0]


def test_hamming_matching_pairs_noisy_copies():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**63, size=(50, 2), dtype=np.uint64)
    noisy = base.copy()
    noisy[:, 0] ^= np.uint64(0b1011)  # 3 bits flipped per descriptor
    kp = rng.random((50, 2), dtype=np.float32) * 100
    result = ir.verify_pair(
        ir.LocalFeatures(kp, base), ir.LocalFeatures(kp + 5, noisy), config={"model": "affine"}
    )
    assert len(result.matches) == 50
    assert (result.matches[:, 0] == result.matches[:, 1]).all()
    assert (result.distances == 4 * 3).all()  # squared L2 of ±1 vectors = 4 x Hamming
    assert result.num_inliers == 50


def test_binary_and_float_descriptors_do_not_mix():
    kp = np.zeros((4, 2), np.float32)
    a = ir.LocalFeatures(kp, np.zeros((4, 2), np.uint64))
    b = ir.LocalFeatures(kp, np.zeros((4, 128), np.uint8))
    with pytest.raises(ir.DTypeError, match="binary"):
        ir.rerank(a, [b])


@pytest.fixture(scope="module")
def photos():
    ph = load_photos()
    names = list(ph)
    rng = np.random.default_rng(1)
    refs = ir.extract_local([ph[n] for n in names], progress=False)
    shots = ir.extract_local([phone_shot(ph[n], rng) for n in names], progress=False)
    return refs, shots


def test_records_fit_the_budget_and_round_trip(photos):
    refs, _ = photos
    for f in refs:
        record = compact.encode(f)
        assert len(record) <= compact.BYTES_BUDGET
        back = compact.decode(record)
        n = min(len(f), compact.DEFAULT_MAX_FEATURES)
        assert len(back) == n and back.image_size == f.image_size
        # Keypoints within a quantisation step of the image side.
        step = max(f.image_size) / 65535
        assert np.abs(back.keypoints - f.keypoints[:n]).max() <= step
        assert (back.descriptors == compact.binarise(f.descriptors[:n])).all()
        # Scale within half a log step, orientation within half a 1.4 degree step.
        if f.frames.ndim == 3:  # kornia LAFs: scale and orientation as kornia reads them
            a = f.frames[:n, :, :2].astype(np.float64)
            scale = np.sqrt(np.abs(np.linalg.det(a)))
            angle = np.degrees(np.arctan2(a[:, 0, 1], a[:, 0, 0]))
        else:  # (scale, orientation) already
            scale, angle = f.frames[:n, 0].astype(np.float64), f.frames[:n, 1].astype(np.float64)
        assert np.allclose(np.log2(back.frames[:, 0]), np.log2(scale), atol=0.5 * 14 / 255 + 1e-4)
        diff = (back.frames[:, 1] - angle + 180) % 360 - 180
        assert np.abs(diff).max() <= 360 / 512 + 1e-3


def test_compact_features_still_find_the_photo(photos):
    refs, shots = photos
    small_refs = [compact.compact(f) for f in refs]
    hits = sum(
        int(ir.rerank(compact.compact(q), small_refs).order[0] == i) for i, q in enumerate(shots)
    )
    assert hits >= len(shots) - 1


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda r: r[:-1], "truncated"),
        (lambda r: r[:10], "header"),
        (lambda r: b"XXXX" + r[4:], "magic"),
        (lambda r: r[:4] + bytes([9]) + r[5:], "version"),
        (lambda r: r[:-3] + bytes([r[-3] ^ 1]) + r[-2:], "checksum"),
    ],
)
def test_damaged_records_raise_format_errors(photos, damage, message):
    record = compact.encode(photos[0][0])
    with pytest.raises(ir.FormatError, match=message):
        compact.decode(damage(record))
