"""Bad input gets a clear error or a documented neutral result, and loses nothing:
empty sets and too few matches give zero inliers (no error); NaN/inf, mismatched
dimensions or descriptor types, wrong dtype/rank/shape are specific exceptions (also
ValueError / TypeError) whose message says what was expected and what came; non-contiguous
arrays are accepted through the public API (copied once) and refused by the raw core;
unreadable images are named while the rest of the batch is kept."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ilias_rerank as ir
from ilias_rerank import _core

RNG = np.random.default_rng(0)


def feats(n=50, d=32, dtype=np.float32, frames=True, seed=0):
    g = np.random.default_rng(seed)
    kp = g.uniform(0, 500, (n, 2)).astype(np.float32)
    if dtype == np.uint8:
        desc = g.integers(0, 256, (n, d), dtype=np.uint8)
    else:
        desc = g.normal(size=(n, d)).astype(dtype)
    fr = np.c_[g.uniform(2, 8, n), g.uniform(-180, 180, n)].astype(np.float32) if frames else None
    return ir.LocalFeatures(kp, desc, fr, image_size=(500, 500))


def test_empty_sets_and_too_few_matches_are_neutral():
    empty = ir.LocalFeatures(np.zeros((0, 2)), np.zeros((0, 32), np.float32))
    r = ir.rerank(empty, [feats(), feats(seed=1)], global_scores=[0.2, 0.9])
    assert r.inliers.tolist() == [0, 0] and r.order.tolist() == [1, 0]
    assert r.models == (None, None)
    r = ir.rerank(feats(), [empty, feats(n=2, seed=3)])
    assert r.inliers.tolist() == [0, 0]
    v = ir.verify_pair(feats(n=3), feats(n=3, seed=5))
    assert v.num_inliers == 0 and v.transform is None and v.model is None
    assert ir.rerank(feats(), []).order.shape == (0,)


@pytest.mark.parametrize("field", ["keypoints", "descriptors", "frames"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused_and_located(field, value):
    good = feats()
    bad = feats(seed=2)
    arr = getattr(bad, field).copy()
    arr.reshape(len(bad), -1)[7, 1] = value
    bad = ir.LocalFeatures(
        **{
            "keypoints": bad.keypoints,
            "descriptors": bad.descriptors,
            "frames": bad.frames,
            field: arr,
        }
    )
    with pytest.raises(
        ir.NonFiniteError, match=rf"candidate 1 {field}: expected finite values, got .* at row 7"
    ):
        ir.rerank(good, [good, bad])
    with pytest.raises(ValueError):
        ir.rerank(bad, [good])


def test_non_finite_global_scores():
    with pytest.raises(ir.NonFiniteError, match="global_scores"):
        ir.rerank(feats(), [feats(), feats()], global_scores=[0.5, np.nan])


def test_mismatched_descriptor_dimensions_and_types():
    with pytest.raises(
        ir.DimensionMismatchError,
        match="candidate 1 descriptors: expected descriptor dimension 32, got 64",
    ):
        ir.rerank(feats(), [feats(), feats(d=64)])
    with pytest.raises(ir.DTypeError, match="expected float32 descriptors, got uint8"):
        ir.rerank(feats(), [feats(dtype=np.uint8)])
    assert issubclass(ir.DimensionMismatchError, ValueError)
    assert issubclass(ir.DTypeError, TypeError)


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        (
            {"keypoints": np.zeros((5, 3))},
            ir.ShapeError,
            r"keypoints: expected \(N, 2\) float32, got \(5, 3\) float64",
        ),
        ({"keypoints": np.zeros((2, 5, 2))}, ir.ShapeError, "keypoints: expected"),
        ({"keypoints": np.zeros((5, 2), complex)}, ir.DTypeError, "complex128"),
        (
            {"descriptors": np.zeros((5, 8), np.int64)},
            ir.DTypeError,
            r"expected \(N, D\) float32 or uint8.*int64",
        ),
        ({"descriptors": np.zeros(40, np.float32)}, ir.ShapeError, r"got \(40,\) float32"),
        ({"descriptors": np.zeros((4, 8), np.float32)}, ir.ShapeError, r"to match 5 keypoints"),
        ({"frames": np.zeros((5, 3), np.float32)}, ir.ShapeError, "frames: expected"),
        ({"frames": np.zeros((5, 2), np.int32)}, ir.DTypeError, "frames: expected"),
        ({"image_size": (0, 10)}, ir.ShapeError, "image_size"),
        ({"descriptors": [["a"] * 8] * 5}, ir.DTypeError, "descriptors"),
    ],
)
def test_wrong_dtype_rank_or_shape(kwargs, error, text):
    base = {"keypoints": np.zeros((5, 2), np.float32), "descriptors": np.zeros((5, 8), np.float32)}
    base.update(kwargs)
    with pytest.raises(error, match=text):
        ir.LocalFeatures(**base)


def test_non_contiguous_arrays():
    f = feats(n=80)
    wide = np.zeros((80, 64), np.float32)
    wide[:, ::2] = f.descriptors
    strided = ir.LocalFeatures(
        np.asfortranarray(f.keypoints), wide[:, ::2], f.frames[:, :], f.image_size
    )
    assert strided.descriptors.flags.c_contiguous
    assert ir.rerank(f, [strided]).inliers.tolist() == ir.rerank(f, [f]).inliers.tolist()

    class Raw:  # bypasses LocalFeatures: the core itself must refuse the layout
        keypoints = f.keypoints
        descriptors = wide[:, ::2]
        frames = None
        image_size = None

    with pytest.raises(ir.ShapeError, match="C-contiguous"):
        _core.rerank(f, [Raw()], None, None)


def _misaligned(arr: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``arr`` one byte into a buffer: misaligned for its dtype."""
    buf = np.zeros(arr.nbytes + 1, np.uint8)[1:]
    out = buf.view(arr.dtype).reshape(arr.shape)
    out[...] = arr
    return out


def test_misaligned_c_contiguous_arrays_are_copied_not_refused():
    """A view into a byte buffer at an odd offset is C-contiguous but misaligned: it is
    copied (was: "expected a C-contiguous array" from the core)."""
    f = feats(n=80)
    odd = ir.LocalFeatures(
        _misaligned(f.keypoints), _misaligned(f.descriptors), _misaligned(f.frames), f.image_size
    )
    assert not _misaligned(f.keypoints).flags.aligned and odd.keypoints.flags.aligned
    scores = _misaligned(np.array([0.9, 0.5], np.float32))
    got = ir.rerank(odd, [odd, f], scores)
    assert got.inliers.tolist() == ir.rerank(f, [f, f], [0.9, 0.5]).inliers.tolist()


def test_global_scores_and_config_errors():
    with pytest.raises(
        ir.ShapeError, match=r"global_scores: expected one score per candidate \(2\), got 3"
    ):
        ir.rerank(feats(), [feats(), feats()], global_scores=[1, 2, 3])
    with pytest.raises(
        ir.ConfigError, match=r"config.ratio: expected a number in \(0, 1\] or None, got 1.5"
    ):
        ir.rerank(feats(), [feats()], config=ir.RerankConfig(ratio=1.5))
    with pytest.raises(ir.ConfigError, match="model"):
        ir.rerank(feats(), [feats()], config=ir.RerankConfig(model="projective"))  # type: ignore[arg-type]
    with pytest.raises(ir.ConfigError, match="unknown field"):
        _core.rerank(feats(), [feats()], None, {"ratoi": 0.8})
    with pytest.raises(ir.ConfigError, match="seed"):
        ir.rerank(feats(), [feats()], config=ir.RerankConfig(seed=-1))
    assert issubclass(ir.ConfigError, ValueError)


def test_missing_and_unreadable_images_are_named_and_the_rest_kept(tmp_path):
    from skimage import data as skdata

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    missing = tmp_path / "missing.png"
    batch = [skdata.camera(), str(missing), skdata.coffee(), str(broken)]
    with pytest.raises(ir.ExtractionError) as info:
        ir.extract_local(batch, num_features=100)
    err = info.value
    assert "missing.png: no such file" in str(err) and "broken.jpg" in str(err)
    assert sorted(err.failures) == [1, 3]
    assert err.results[0] is not None and err.results[2] is not None
    assert err.results[1] is None and err.results[3] is None
    with pytest.warns(UserWarning, match="2 of 4 images failed"):
        kept = ir.extract_local(batch, num_features=100, on_error="skip")
    assert [k is None for k in kept] == [False, True, False, True]
    with pytest.raises(ir.ConfigError, match="method"):
        ir.extract_local(batch, method="superpoint")
    with pytest.raises(ir.ConfigError, match="device"):
        ir.extract_local(batch, device="tpu:7")


def test_unavailable_cuda_device_is_a_config_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    from skimage import data as skdata

    with pytest.raises(ir.ConfigError, match="no CUDA device"):
        ir.extract_local(skdata.camera(), device="cuda")


arrays = st.sampled_from(
    [np.float32, np.float64, np.float16, np.uint8, np.int32, np.bool_, np.complex64]
)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 40),
    m=st.integers(0, 40),
    d=st.integers(0, 12),
    d2=st.integers(0, 12),
    kp_cols=st.sampled_from([2, 2, 2, 3]),
    dtype=arrays,
    fill=st.sampled_from([0.0, 1.0, np.nan, np.inf, 1e30, 1e-40]),
)
def test_never_a_crash_only_documented_outcomes(n, m, d, d2, kp_cols, dtype, fill):
    """Arbitrary shapes, dtypes and values: a result or an IliasRerankError, never a panic."""
    g = np.random.default_rng(n * 1000 + m)
    try:
        q = ir.LocalFeatures(g.normal(size=(n, kp_cols)), (g.normal(size=(n, d)) * 3).astype(dtype))
        with np.errstate(all="ignore"):
            desc = (
                np.full((m, d2), fill).astype(dtype)
                if dtype != np.bool_
                else np.zeros((m, d2), bool)
            )
        c = ir.LocalFeatures(g.uniform(0, 9, (m, 2)), desc)
        r = ir.rerank(q, [c, q])
    except ir.IliasRerankError:
        return
    assert sorted(r.order.tolist()) == [0, 1]
    assert np.all(np.diff(r.scores) < 0)


def test_extraction_and_benchmark_hook_arguments_are_checked():
    from skimage import data as skdata

    with pytest.raises(ir.ConfigError, match="descriptor_dtype: expected one of"):
        ir.extract_local(skdata.camera(), descriptor_dtype="float16")
    with pytest.raises(ir.ConfigError, match="kernel_throughput: expected"):
        _core.kernel_throughput(0, 10, 128)
    with pytest.raises(ir.ConfigError, match="kernel_throughput: expected"):
        _core.kernel_throughput(10, 10, 128, repeats=0)
