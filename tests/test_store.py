"""FeatureStore: round trip, zero-copy reads, resume, and every corruption detected."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import ilias_rerank as ir
from ilias_rerank.store import FeatureStore, StoreWriter

EXTRACTOR = {"name": "test", "num_features": 50}


def make_features(seed: int, n: int = 50, frames: str = "so") -> ir.LocalFeatures:
    rng = np.random.default_rng(seed)
    kp = rng.random((n, 2), dtype=np.float32) * 500
    desc = rng.integers(0, 256, (n, 128), dtype=np.uint8)
    if frames == "so":
        fr = np.c_[rng.random(n) * 10 + 1, rng.random(n) * 360].astype(np.float32)
    elif frames == "laf":
        fr = rng.random((n, 2, 3), dtype=np.float32)
    else:
        fr = None
    return ir.LocalFeatures(kp, desc, frames=fr, image_size=(480, 640))


def build(path, count=3, **kw):
    with StoreWriter(path, EXTRACTOR, **kw) as w:
        for i in range(count):
            w.add(f"img/{i}", make_features(i, n=40 + i), global_vector=np.full(8, i, np.float32))
    return FeatureStore(path)


def test_round_trip_is_exact_and_zero_copy(tmp_path):
    store = build(tmp_path / "s")
    assert store.ids == ["img/0", "img/1", "img/2"] and len(store) == 3
    for i in range(3):
        want, got = make_features(i, n=40 + i), store[f"img/{i}"]
        assert np.array_equal(got.keypoints, want.keypoints)
        assert np.array_equal(got.descriptors, want.descriptors)
        assert np.array_equal(got.frames, want.frames)
        assert got.image_size == (480, 640)
        assert np.shares_memory(got.descriptors, store._mapped()[2])  # no copy
    assert store.global_vectors.shape == (3, 8) and store.global_vectors[2, 0] == 2
    assert store.extractor == EXTRACTOR
    # Re-ranking from the mapped store equals re-ranking the in-memory features.
    mem = [make_features(i, n=40 + i) for i in range(3)]
    a = ir.rerank(mem[0], [store[k] for k in store.ids])
    b = ir.rerank(mem[0], mem)
    assert np.array_equal(a.order, b.order) and np.array_equal(a.inliers, b.inliers)


@pytest.mark.parametrize("frames", ["laf", None])
def test_frame_layouts_and_binary_descriptors(tmp_path, frames):
    f = make_features(5, frames=frames)
    f = ir.LocalFeatures(f.keypoints, ir.compact.binarise(f.descriptors), f.frames, None)
    with StoreWriter(tmp_path / "s") as w:
        w.add("a", f)
    got = FeatureStore(tmp_path / "s")["a"]
    assert got.descriptors.dtype == np.uint64 and np.array_equal(got.descriptors, f.descriptors)
    assert (got.frames is None) == (frames is None) and got.image_size is None
    if frames:
        assert np.array_equal(got.frames, f.frames)


def test_resume_keeps_committed_images_and_refuses_mixed_extractors(tmp_path):
    build(tmp_path / "s", count=2)
    with StoreWriter(tmp_path / "s", EXTRACTOR) as w:
        assert "img/1" in w and "img/2" not in w and len(w) == 2
        w.add("img/2", make_features(2, n=42), global_vector=np.full(8, 2, np.float32))
    assert FeatureStore(tmp_path / "s").ids == ["img/0", "img/1", "img/2"]
    with pytest.raises(ir.FormatError, match="mixed extractors"):
        StoreWriter(tmp_path / "s", {"name": "other"})


def test_bad_additions_are_refused_and_lose_nothing(tmp_path):
    with StoreWriter(tmp_path / "s", EXTRACTOR) as w:
        w.add("a", make_features(0), global_vector=np.zeros(8))
        with pytest.raises(ValueError, match="already in the store"):
            w.add("a", make_features(1), global_vector=np.zeros(8))
        with pytest.raises(ir.DimensionMismatchError, match="dimension 128"):
            f = make_features(1)
            w.add("b", ir.LocalFeatures(f.keypoints, f.descriptors[:, :64], f.frames))
        with pytest.raises(ir.DimensionMismatchError, match="global vector of dimension 8"):
            w.add("b", make_features(1), global_vector=np.zeros(4))
        with pytest.raises(ValueError, match="newlines"):
            w.add("b\nc", make_features(1), global_vector=np.zeros(8))
    assert FeatureStore(tmp_path / "s").ids == ["a"]


def test_missing_truncated_and_unknown_versions_are_detected(tmp_path):
    with pytest.raises(ir.FormatError, match="no committed store"):
        FeatureStore(tmp_path)
    build(tmp_path / "s")
    path = tmp_path / "s" / "descriptors.bin"
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(ir.FormatError, match="truncated"):
        FeatureStore(tmp_path / "s")
    path.write_bytes(data)
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    manifest["version"] = 99
    (tmp_path / "s" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ir.FormatError, match="version 1 or 2, got 99"):
        FeatureStore(tmp_path / "s")
    (tmp_path / "s" / "manifest.json").write_text("{not json")
    with pytest.raises(ir.FormatError, match="corrupt manifest"):
        FeatureStore(tmp_path / "s")


@pytest.mark.parametrize("name", ["descriptors.bin", "keypoints.bin", "frames.bin", "index.bin"])
def test_a_flipped_bit_is_detected(tmp_path, name):
    build(tmp_path / "s")
    path = tmp_path / "s" / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(ir.FormatError, match=r"checksum|offsets"):
        store = FeatureStore(tmp_path / "s")
        for image_id in store.ids:
            store[image_id]
    with pytest.raises(ir.FormatError):
        FeatureStore(tmp_path / "s", verify="full")


def test_uncommitted_tails_are_ignored_then_cut(tmp_path):
    build(tmp_path / "s")
    with open(tmp_path / "s" / "descriptors.bin", "ab") as fh:
        fh.write(b"half-written image")
    assert len(FeatureStore(tmp_path / "s", verify="full")) == 3
    with StoreWriter(tmp_path / "s", EXTRACTOR) as w:
        w.add("img/3", make_features(3, n=43), global_vector=np.full(8, 3, np.float32))
    store = FeatureStore(tmp_path / "s", verify="full")
    assert np.array_equal(store["img/3"].descriptors, make_features(3, n=43).descriptors)


BUILDER = textwrap.dedent(
    """
    import sys, numpy as np
    sys.path.insert(0, {tests!r})
    from test_store import EXTRACTOR, make_features
    from ilias_rerank.store import StoreWriter
    with StoreWriter(sys.argv[1], EXTRACTOR) as w:
        for i in range(200):
            if f"img/{{i}}" not in w:
                w.add(f"img/{{i}}", make_features(i, n=40 + i % 7), global_vector=np.full(8, i))
                print(i, flush=True)
    """
)


def test_a_build_killed_at_random_points_reopens_at_its_last_commit(tmp_path):
    script = tmp_path / "builder.py"
    script.write_text(BUILDER.format(tests=os.path.dirname(__file__)))
    rng = np.random.default_rng(0)
    committed = 0
    for _ in range(4):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "s")], stdout=subprocess.PIPE, text=True
        )
        time.sleep(float(rng.uniform(0.5, 1.5)))
        proc.send_signal(signal.SIGKILL)
        printed = proc.communicate()[0].split()
        proc.wait()
        if not (tmp_path / "s" / "manifest.json").exists():
            continue
        store = FeatureStore(tmp_path / "s", verify="full")
        # Never a lost committed image: at least everything reported before the kill
        # (the print comes after the commit), and every image exactly as written.
        assert len(store) >= committed + len(printed)
        for k, image_id in enumerate(store.ids):
            assert image_id == f"img/{k}"
            want = make_features(k, n=40 + k % 7)
            assert np.array_equal(store[image_id].descriptors, want.descriptors)
        committed = len(store)
    subprocess.run(
        [sys.executable, str(script), str(tmp_path / "s")], check=True, capture_output=True
    )
    assert len(FeatureStore(tmp_path / "s", verify="full")) == 200


def test_hdf5_round_trips(tmp_path):
    pytest.importorskip("h5py")
    from ilias_rerank.hdf5 import (
        export_hloc,
        import_hloc,
        read_global_features,
        write_global_features,
    )

    store = build(tmp_path / "s")
    export_hloc(store, tmp_path / "feats.h5")
    back = import_hloc(tmp_path / "feats.h5", tmp_path / "s2", {"name": "hloc"})
    assert back.ids == store.ids
    for image_id in store.ids:
        a, b = store[image_id], back[image_id]
        assert np.array_equal(a.keypoints, b.keypoints) and a.image_size == b.image_size
        assert np.allclose(b.descriptors, a.descriptors / 512.0)
    ids, vecs = read_global_features(
        write_global_features(tmp_path / "g.h5", ["a", "b"], np.eye(2))
    )
    assert ids == ["a", "b"] and np.array_equal(vecs, np.eye(2, dtype=np.float32))
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(ir.FormatError, match="not a readable HDF5"):
        read_global_features(tmp_path / "bad.h5")
