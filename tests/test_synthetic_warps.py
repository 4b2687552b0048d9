"""Property: for random homographies (rotation, scale, shear, perspective) applied to real
photos shipped in scikit-image's wheel, extraction + ``verify_pair`` recovers the warp
(median grid error below 2 px) and ``rerank`` puts the warped photo first among the other
photos; and results are identical for any thread count."""

from __future__ import annotations

import functools

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from skimage import data as skdata
from skimage.transform import ProjectiveTransform, warp

import ilias_rerank as ir

PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "immunohistochemistry")


@functools.cache
def photo(name: str) -> np.ndarray:
    img = getattr(skdata, name)()
    return (img.mean(axis=2) if img.ndim == 3 else img).astype(np.uint8)


@functools.cache
def photo_features(name: str) -> ir.LocalFeatures:
    return ir.extract_local(photo(name), num_features=1024)[0]


def homography(angle, scale, shear, px, py, shape):
    h, w = shape
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    a = np.array([[scale * c, -scale * s + shear, 0.0], [scale * s, scale * c, 0.0], [px, py, 1.0]])
    # Keep the warped centre at the centre.
    centre = np.array([w / 2, h / 2, 1.0])
    m = a @ centre
    a[0, 2] += w / 2 - m[0] / m[2] * 1.0 if m[2] else 0.0
    a[1, 2] += h / 2 - m[1] / m[2] * 1.0 if m[2] else 0.0
    return a


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(PHOTOS),
    angle=st.floats(-40, 40),
    scale=st.floats(0.7, 1.3),
    shear=st.floats(-0.15, 0.15),
    px=st.floats(-3e-4, 3e-4),
    py=st.floats(-3e-4, 3e-4),
)
def test_planted_warps_are_recovered_and_ranked_first(name, angle, scale, shear, px, py):
    img = photo(name)
    h = homography(angle, scale, shear, px, py, img.shape)
    warped = (
        warp(img, ProjectiveTransform(np.linalg.inv(h)), output_shape=img.shape) * 255
    ).astype(np.uint8)
    q = ir.extract_local(warped, num_features=1024)[0]
    target = photo_features(name)
    v = ir.verify_pair(target, q)
    assert v.transform is not None, "no model"
    ys, xs = np.mgrid[0.3:0.7:5j, 0.3:0.7:5j]
    grid = np.c_[xs.ravel() * img.shape[1], ys.ravel() * img.shape[0], np.ones(25)]
    est, true = grid @ v.transform.T, grid @ h.T
    err = np.linalg.norm(est[:, :2] / est[:, 2:] - true[:, :2] / true[:, 2:], axis=1)
    assert np.median(err) < 2.0, f"median grid error {np.median(err):.2f} px"
    cands = [photo_features(p) for p in PHOTOS]
    r = ir.rerank(q, cands)
    assert PHOTOS[r.order[0]] == name
    one = ir.rerank(q, cands, config=ir.RerankConfig(num_threads=1, use_frames=False))
    many = ir.rerank(q, cands, config=ir.RerankConfig(num_threads=5, use_frames=False))
    np.testing.assert_array_equal(one.scores, many.scores)
    np.testing.assert_array_equal(one.transforms, many.transforms)
