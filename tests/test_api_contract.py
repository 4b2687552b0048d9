"""API contract: the config's defaults equal the Rust core's; results are frozen, shaped
and ordered as documented (order is a permutation, scores strictly decrease, transforms
map query to candidate pixels); numpy and torch inputs give identical results; the
extracted features follow the data contract."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from skimage import data as skdata

import ilias_rerank as ir
from ilias_rerank import _core


def test_config_defaults_equal_the_rust_defaults():
    assert dataclasses.asdict(ir.RerankConfig()) == _core.default_config()


def test_config_is_frozen_and_keyword_only():
    cfg = ir.RerankConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.ratio = 0.5  # type: ignore[misc]
    with pytest.raises(TypeError):
        ir.RerankConfig(True)  # type: ignore[misc]
    assert cfg.replace(ratio=0.8).ratio == 0.8


def warp(img: np.ndarray, h: np.ndarray) -> np.ndarray:
    from skimage.transform import ProjectiveTransform
    from skimage.transform import warp as skwarp

    # skimage's warp takes the inverse map (output -> input coordinates).
    return (
        skwarp(img, ProjectiveTransform(np.linalg.inv(h)), output_shape=img.shape) * 255
    ).astype(np.uint8)


@pytest.fixture(scope="module")
def astronaut_pair():
    img = skdata.astronaut().mean(axis=2).astype(np.uint8)
    h = np.array([[0.9, -0.15, 40.0], [0.12, 0.92, 20.0], [1e-4, -5e-5, 1.0]])
    feats = ir.extract_local([img, warp(img, h)], num_features=1024)
    return feats, h


def test_verify_pair_recovers_a_synthetic_warp(astronaut_pair):
    (a, b), h = astronaut_pair
    v = ir.verify_pair(a, b)
    assert v.model == "homography"
    assert v.transform.shape == (3, 3)
    assert v.num_inliers == int(v.inlier_mask.sum()) >= 100
    grid = np.array([[x, y, 1.0] for x in range(100, 500, 100) for y in range(100, 500, 100)])
    est = grid @ v.transform.T
    true = grid @ h.T
    err = np.linalg.norm(est[:, :2] / est[:, 2:] - true[:, :2] / true[:, 2:], axis=1)
    assert np.median(err) < 2.0
    # Inlier matches really are consistent with the true warp.
    m = v.inlier_matches
    p = np.c_[a.keypoints[m[:, 0]], np.ones(len(m))] @ h.T
    resid = np.linalg.norm(p[:, :2] / p[:, 2:] - b.keypoints[m[:, 1]], axis=1)
    assert np.median(resid) < 2.0


def test_rerank_result_contract(astronaut_pair):
    (a, b), _ = astronaut_pair
    camera = ir.extract_local(skdata.camera(), num_features=512)[0]
    coffee = ir.extract_local(skdata.coffee(), num_features=512)[0]
    cands = [camera, coffee, b, camera]
    r = ir.rerank(a, cands, global_scores=[0.9, 0.8, 0.1, 0.7])
    assert sorted(r.order.tolist()) == [0, 1, 2, 3]
    assert r.order[0] == 2
    assert np.all(np.diff(r.scores) < 0)
    assert r.inliers.shape == (4,) and r.transforms.shape == (4, 3, 3)
    assert r.models[2] == "homography"
    assert np.isnan(r.transforms[0]).all() or r.inliers[0] < 20
    # Lexicographic: by inliers, then by global score (0 and 3 are the same image).
    g = [0.9, 0.8, 0.1, 0.7]
    keys = [(int(r.inliers[j]) if r.inliers[j] >= 4 else 0, g[j]) for j in r.order]
    assert keys == sorted(keys, reverse=True)
    assert r.order.tolist().index(0) < r.order.tolist().index(3)
    assert r.ranked_ids(["w", "x", "y", "z"])[0] == "y"
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.order = None  # type: ignore[misc]


def test_torch_and_numpy_inputs_agree(astronaut_pair):
    (a, b), _ = astronaut_pair
    ta = ir.LocalFeatures(
        torch.from_numpy(a.keypoints), torch.from_numpy(a.descriptors), torch.from_numpy(a.frames)
    )
    tb = ir.LocalFeatures(
        torch.from_numpy(b.keypoints).double(),
        torch.from_numpy(b.descriptors)[None],
        b.frames,
        b.image_size,
    )
    ra = ir.rerank(a, [b])
    rt = ir.rerank(ta, [tb])
    assert ra.inliers.tolist() == rt.inliers.tolist()
    np.testing.assert_array_equal(ra.scores, rt.scores)


@pytest.mark.parametrize("backend", ["opencv", "kornia", "kornia-rs"])
def test_extracted_features_follow_the_contract(backend):
    img = skdata.coffee()  # 400 x 600 RGB
    f = ir.extract_local(img, num_features=300, max_side=256, backend=backend)[0]
    assert f.image_size == (400, 600)
    assert f.keypoints.dtype == np.float32 and f.keypoints.shape == (len(f), 2)
    assert f.descriptors.dtype == np.uint8 and f.descriptors.shape == (len(f), 128)
    assert 50 <= len(f) <= 300
    assert f.frames.shape == ((len(f), 2, 3) if backend == "kornia" else (len(f), 2))
    # Keypoints are in original pixels even though detection ran at 256 px.
    assert f.keypoints[:, 0].max() > 300 and f.keypoints[:, 1].max() > 200
    assert (
        (f.keypoints >= -1).all()
        and (f.keypoints[:, 0] <= 600).all()
        and (f.keypoints[:, 1] <= 400).all()
    )
    if backend == "kornia":
        np.testing.assert_allclose(f.frames[:, :, 2], f.keypoints)
    else:  # (scale, orientation): scales in original pixels (detection ran at 256 / 600)
        assert (f.frames[:, 0] > 0).all() and np.isfinite(f.frames).all()
    # No zero padding rows; uint8 = RootSIFT x 512 of the float32 output.
    assert (f.descriptors.astype(int).sum(axis=1) > 0).all()
    g = ir.extract_local(
        img, num_features=300, max_side=256, descriptor_dtype="float32", backend=backend
    )[0]
    assert g.descriptors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(g.descriptors, axis=1), 1.0, atol=1e-4)
    np.testing.assert_array_equal(f.keypoints, g.keypoints)
    assert np.abs(g.descriptors * 512 - f.descriptors).max() <= 0.5 + 1e-3


def test_keypoints_are_in_original_pixels_whatever_the_resize():
    img = skdata.camera()  # 512 x 512
    small = ir.extract_local(img, num_features=800, max_side=256)[0]
    full = ir.extract_local(img, num_features=800, max_side=1024)[0]
    v = ir.verify_pair(small, full, config=ir.RerankConfig(model="similarity"))
    # The transform between the two extractions of one image is the identity.
    np.testing.assert_allclose(v.transform[:2, :2], np.eye(2), atol=0.03)
    assert np.abs(v.transform[:2, 2]).max() < 2.5


def test_exif_orientation_is_honoured(tmp_path):
    from PIL import Image

    img = Image.fromarray(skdata.camera()[:, :400])  # 512 rows x 400 columns
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif.tobytes(), quality=95)
    f = ir.extract_local(str(path), num_features=200)[0]
    assert f.image_size == (400, 512)


def test_hand_written_stubs_match_the_extension():
    """Every function in ``_core.pyi`` exists with the same parameter names, and back."""
    import ast
    import inspect
    from pathlib import Path

    stub = ast.parse((Path(ir.__file__).parent / "_core.pyi").read_text())
    stubbed = {
        node.name: [a.arg for a in node.args.args]
        for node in stub.body
        if isinstance(node, ast.FunctionDef)
    }
    runtime = {n for n in dir(_core) if callable(getattr(_core, n)) and not n.startswith("_")}
    assert set(stubbed) == runtime
    for name, params in stubbed.items():
        assert list(inspect.signature(getattr(_core, name)).parameters) == params, name
