"""Hardening: absurd sizes refused up front, arrays of any layout and value, hostile bytes
in stores and compact records, and write failures that keep the last commit."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ilias_rerank as ir
from ilias_rerank import compact
from ilias_rerank.store import FeatureStore, StoreWriter


def test_ten_million_keypoints_are_refused_before_any_work():
    n = 10_000_000
    f = ir.LocalFeatures(np.zeros((n, 2), np.float32), np.zeros((n, 1), np.uint8))
    small = ir.LocalFeatures(np.zeros((2, 2), np.float32), np.zeros((2, 1), np.uint8))
    with pytest.raises(ir.ResourceLimitError, match="1048576"):
        ir.rerank(small, [f])


def test_a_hundred_thousand_dimensions_are_refused():
    f = ir.LocalFeatures(np.zeros((2, 2), np.float32), np.zeros((2, 100_000), np.uint8))
    with pytest.raises(ir.ShapeError, match=r"dimension in 1\.\.=4096"):
        ir.rerank(f, [f])


layouts = st.sampled_from(["plain", "strided", "fortran", "readonly", "torch"])
dtypes = st.sampled_from(["<f4", ">f4", "<f8", "<f2", "u1", "<i4", "<u8", "?", "<c8"])
values = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True, width=32)


def _layout(arr: np.ndarray, layout: str):
    if layout == "strided":
        return np.repeat(arr, 2, axis=0)[::2]
    if layout == "fortran":
        return np.asfortranarray(arr)
    if layout == "readonly":
        arr = arr.copy()
        arr.flags.writeable = False
        return arr
    if layout == "torch" and arr.dtype.kind in "fiub" and arr.dtype.isnative:
        import torch

        return torch.from_numpy(arr.copy())
    return arr


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kp=hnp.arrays(
        np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=12), elements=values
    ),
    desc_dtype=dtypes,
    desc_shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=12),
    fill=values,
    layout=layouts,
    frames=st.sampled_from([None, "so", "laf", "bad"]),
)
def test_any_array_gives_a_result_or_a_documented_error(
    kp, desc_dtype, desc_shape, fill, layout, frames
):
    try:
        with np.errstate(all="ignore"):
            desc = np.full(desc_shape, fill).astype(desc_dtype)
        n = kp.shape[0] if kp.ndim else 0
        fr = {
            None: None,
            "so": np.ones((n, 2), np.float32),
            "laf": np.ones((n, 2, 3), np.float32),
            "bad": np.ones((n, 5), np.float32),
        }[frames]
        f = ir.LocalFeatures(_layout(kp, layout), _layout(desc, layout), frames=fr)
        r = ir.rerank(f, [f, f], np.array([0.5, 0.25], np.float32))
    except ir.IliasRerankError:
        return
    assert sorted(r.order.tolist()) == [0, 1]
    assert np.all(np.diff(r.scores) < 0)


def test_tensors_on_the_meta_device_are_refused_clearly():
    torch = pytest.importorskip("torch")
    kp = torch.zeros((3, 2), device="meta")
    with pytest.raises(ir.IliasRerankError):
        ir.LocalFeatures(kp, np.zeros((3, 8), np.uint8))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_compact_decoding_of_arbitrary_bytes(data):
    try:
        f = compact.decode(data)
    except ir.FormatError:
        return
    assert f.descriptors.dtype == np.uint64


def _store(path):
    rng = np.random.default_rng(0)
    with StoreWriter(path, {"name": "t"}) as w:
        for i in range(3):
            w.add(
                f"i{i}",
                ir.LocalFeatures(
                    rng.random((20, 2), dtype=np.float32),
                    rng.integers(0, 256, (20, 16), dtype=np.uint8),
                    frames=rng.random((20, 2), dtype=np.float32),
                ),
                global_vector=rng.random(8, dtype=np.float32),
            )
    store = FeatureStore(path)
    want = {i: store[i].descriptors.copy() for i in ("i0", "i1", "i2")}
    want["global"] = store.global_vectors.copy()
    return want


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(
        [
            "manifest.json",
            "index.bin",
            "ids.txt",
            "descriptors.bin",
            "keypoints.bin",
            "frames.bin",
            "global.bin",
        ]
    ),
    position=st.floats(0, 1),
    action=st.sampled_from(["flip", "truncate", "garbage"]),
    garbage=st.binary(min_size=1, max_size=16),
)
def test_a_damaged_store_is_either_refused_or_read_exactly(
    tmp_path_factory, name, position, action, garbage
):
    path = tmp_path_factory.mktemp("store")
    want = _store(path)
    f = path / name
    data = bytearray(f.read_bytes())
    at = min(int(position * len(data)), max(len(data) - 1, 0))
    if action == "flip" and data:
        data[at] ^= 0x5A
    elif action == "truncate":
        data = data[:at]
    else:
        data[at : at + len(garbage)] = garbage
    f.write_bytes(bytes(data))
    try:
        store = FeatureStore(path)
        got = {i: store[i].descriptors for i in store.ids}
        got["global"] = store.global_vectors
    except (ir.FormatError, KeyError):
        return
    # Whatever opens must be exactly what was committed (bytes past the committed
    # lengths, or inside ids.txt's last newline, may change without harm).
    assert set(got) <= set(want)
    for i, d in got.items():
        assert np.array_equal(d, want[i])


def test_a_failed_write_keeps_the_last_commit(tmp_path, monkeypatch):
    _store(tmp_path / "s")
    w = StoreWriter(tmp_path / "s", {"name": "t"})
    real_fsync = os.fsync

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    f = ir.LocalFeatures(
        np.zeros((4, 2), np.float32),
        np.zeros((4, 16), np.uint8),
        frames=np.ones((4, 2), np.float32),
    )
    g = np.zeros(8, np.float32)
    with pytest.raises(ir.StoreWriteError, match="No space left"):
        w.add("i3", f, global_vector=g)
    with pytest.raises(ir.StoreWriteError, match="stopped after an error"):
        w.add("i4", f, global_vector=g)
    w.close()
    monkeypatch.setattr(os, "fsync", real_fsync)
    store = FeatureStore(tmp_path / "s", verify="full")
    assert store.ids == ["i0", "i1", "i2"]
    json.loads((tmp_path / "s" / "manifest.json").read_text())


def test_an_unwritable_place_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ir.StoreWriteError, match="cannot create the store"):
        StoreWriter(blocker / "store")
