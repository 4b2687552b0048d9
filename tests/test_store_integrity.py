"""A sharded store that survives (issue 15): the store-level contract.

- an id is registered in one shard at most: a shard that brings ids already registered is
  registered with only its new ones (or removed), so the store always opens;
- a registered shard is never written again (a StoreWriter refuses it);
- one writer per store directory: a second gets StoreLockedError (at once, or after its
  timeout); a killed writer's lock is released by the kernel;
- opening and reading a store of many shards costs a bounded number of descriptors, and
  running out of descriptors is never reported as damage;
- ``store check`` finds orphans, duplicates, damaged and changed shards and temporary
  files without changing anything; ``store repair`` fixes them without losing an image an
  intact shard holds; ``store merge`` rewrites small shards into large ones;
- version 1 stores, shard lists and compact records (the previous release) are read right.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest

import ilias_rerank as ir
from ilias_rerank.cli import main
from ilias_rerank.store import (
    FeatureStore,
    StoreWriter,
    check_store,
    merge_store,
    register_shards,
    repair_store,
    shard_path,
)

PYTHON_PATH = str(Path(ir.__file__).parents[1])


def _features(seed: int, n: int = 20) -> ir.LocalFeatures:
    g = np.random.default_rng(seed)
    return ir.LocalFeatures(
        g.uniform(0, 500, (n, 2)).astype(np.float32),
        g.integers(0, 256, (n, 16)).astype(np.uint8),
    )


def _seed(image_id: str) -> int:
    return zlib.crc32(image_id.encode())


def _shard(root: Path, name: str, ids: list[str]) -> None:
    with StoreWriter(shard_path(root, name), {"name": "t"}) as w:
        for image_id in ids:
            w.add(image_id, _features(_seed(image_id)))


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def _assert_intact(store, ids) -> None:
    assert sorted(store.ids) == sorted(ids) and len(set(store.ids)) == len(store.ids)
    for image_id in ids:
        np.testing.assert_array_equal(
            store[image_id].descriptors, _features(_seed(image_id)).descriptors
        )


def test_registering_a_shard_never_registers_an_id_twice(tmp_path):
    root = tmp_path / "s"
    _shard(root, "a", ["x1", "x2"])
    register_shards(root, ["a"])
    _shard(root, "b", ["x2", "x3"])  # x2 again: an orphan of an earlier, other plan
    _shard(root, "c", ["x1"])  # nothing new
    register_shards(root, ["b", "c"])
    store = FeatureStore(root)
    _assert_intact(store, ["x1", "x2", "x3"])
    assert store.shard_of("x2") == "a" and store.shard_of("x3") != "b"
    assert not shard_path(root, "b").exists() and not shard_path(root, "c").exists()
    assert check_store(root).ok


def test_a_registered_shard_is_never_written_again(tmp_path):
    root = tmp_path / "s"
    _shard(root, "a", ["x1"])
    register_shards(root, ["a"])
    with pytest.raises(ir.StoreWriteError, match="never written again"):
        StoreWriter(shard_path(root, "a"), {"name": "t"})
    _assert_intact(FeatureStore(root), ["x1"])


def test_a_second_writer_gets_a_clear_error_and_a_killed_one_frees_the_store(tmp_path):
    path = tmp_path / "one"
    first = StoreWriter(path, {"name": "t"})
    first.add("a", _features(1))
    with pytest.raises(ir.StoreLockedError, match="another writer holds"):
        StoreWriter(path, {"name": "t"})
    with pytest.raises(ir.StoreLockedError, match=r"after waiting 0\.2 s"):
        StoreWriter(path, {"name": "t"}, lock_timeout=0.2)
    with pytest.raises(ir.ConfigError, match="lock timeout"):
        StoreWriter(path, {"name": "t"}, lock_timeout=-1)
    first.close()
    with StoreWriter(path, {"name": "t"}) as second:
        second.add("b", _features(2))
    assert FeatureStore(path).ids == ["a", "b"]
    # Another process holds it, then is SIGKILLed: the lock goes with it.
    code = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {PYTHON_PATH!r})
        from ilias_rerank.store import StoreWriter
        w = StoreWriter({str(path)!r}, {{"name": "t"}})
        print("locked", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(ir.StoreLockedError):
            StoreWriter(path, {"name": "t"})
        with pytest.raises(ir.StoreLockedError):
            repair_store(path)
    finally:
        proc.kill()
        proc.wait()
    with StoreWriter(path, {"name": "t"}) as again:
        again.add("c", _features(3))
    assert FeatureStore(path).ids == ["a", "b", "c"]


def _run_limited(code: str, nofile: int) -> str:
    """``code`` in a fresh interpreter whose descriptor limit is ``nofile``."""
    prelude = textwrap.dedent(
        f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_NOFILE, ({nofile}, {nofile}))
        sys.path.insert(0, {PYTHON_PATH!r})
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_reading_many_shards_holds_few_descriptors(tmp_path):
    root = tmp_path / "s"
    names = [f"s{k:03d}" for k in range(120)]
    for k, name in enumerate(names):
        _shard(root, name, [f"i{k:03d}a", f"i{k:03d}b"])
    register_shards(root, names)
    got = _run_limited(
        f"""
        import os
        from ilias_rerank.store import FeatureStore
        store = FeatureStore({str(root)!r}, max_open=8)
        assert not store.broken and len(store) == 240
        for image_id in store.ids:
            store[image_id]
        print(len(os.listdir("/proc/self/fd")), store.mapped_shards)
        """,
        nofile=96,
    )
    fds, mapped = map(int, got.split())
    assert mapped == 8 and fds < 60


def test_check_finds_every_problem_and_changes_nothing_repair_fixes_them(tmp_path):
    root = tmp_path / "s"
    for name, ids in {"a": ["x1", "x2"], "b": ["y1", "y2"], "c": ["z1"], "d": ["w1"]}.items():
        _shard(root, name, ids)
    register_shards(root, ["a", "b", "c", "d"])
    # The previous release's states: b registered with an id of a (duplicate), c rewritten
    # after registration, d's index corrupt; an orphan with one new id; a killed write's
    # temporary file.
    _shard(root, "dup", ["x1", "y3"])
    listing = json.loads((root / "shards.json").read_text())
    from ilias_rerank.store.sharded import _crc, _manifest_crc

    listing["shards"].append(
        {
            "name": "dup",
            "images": 2,
            "features": 40,
            "manifest_crc": _manifest_crc(shard_path(root, "dup")),
        }
    )
    listing["checksum"] = _crc(listing)
    (root / "shards.json").write_text(json.dumps(listing))
    c = shard_path(root, "c")
    shutil.copytree(c, tmp_path / "c2")
    with StoreWriter(tmp_path / "c2", {"name": "t"}) as w:
        w.add("z2", _features(_seed("z2")))
    shutil.rmtree(c)
    shutil.copytree(tmp_path / "c2", c)
    d = shard_path(root, "d") / "descriptors.bin"
    data = bytearray(d.read_bytes())
    data[5] ^= 0xFF
    d.write_bytes(bytes(data))
    _shard(root, "orphan", ["y2", "v1"])
    (root / ".shards.json.abc.tmp").write_bytes(b"half")
    with pytest.raises(ir.FormatError):
        FeatureStore(root)

    before = _tree(root)
    report = check_store(root)
    assert not report.ok
    text = "\n".join(report.findings)
    assert "shard c: its manifest changed" in text
    assert "shard d: 1 images fail their checksum" in text
    assert "orphan shard orphan: 2 images, 1 not held intact by a registered shard" in text
    assert "1 ids are registered in more than one shard ('x1' in shards a and dup)" in text
    assert "1 temporary files" in text
    assert _tree(root) == before  # nothing changed
    assert main(["store", "check", str(root)]) == 1

    assert main(["store", "repair", str(root)]) == 0
    store = FeatureStore(root)
    # Every image an intact shard held, once; the damaged image is set aside.
    _assert_intact(store, ["x1", "x2", "y1", "y2", "y3", "z1", "z2", "v1"])
    assert (root / "damaged" / "d").is_dir()
    assert check_store(root).ok and main(["store", "check", str(root)]) == 0


def test_merge_rewrites_small_shards_atomically_and_keeps_every_image(tmp_path):
    root = tmp_path / "s"
    names = [f"s{k:02d}" for k in range(12)]
    for k, name in enumerate(names):
        _shard(root, name, [f"i{k:02d}a", f"i{k:02d}b"])
    register_shards(root, names)
    ids = FeatureStore(root).ids
    report = merge_store(root, target_bytes=4096)
    assert report.shards < 12 and report.images == 24
    store = FeatureStore(root)
    assert len(store.shards) == report.shards
    _assert_intact(store, ids)
    assert sorted(p.name for p in (root / "shards").iterdir()) == sorted(
        s.path.name for s in store.shards
    )
    assert check_store(root).ok
    assert main(["store", "merge", str(root), "--target-size", "1M"]) == 0
    assert len(FeatureStore(root).shards) == 1
    _assert_intact(FeatureStore(root), ids)


def test_version_1_stores_and_shard_lists_are_read_and_resumed(tmp_path):
    root = tmp_path / "s"
    _shard(root, "a", ["x1", "x2"])
    register_shards(root, ["a"])
    # The previous release's files: store manifests without global_crc, version 1 both.
    from ilias_rerank.store.sharded import _crc, _manifest_crc
    from ilias_rerank.store.single import _manifest_crc as store_crc

    path = shard_path(root, "a")
    m = json.loads((path / "manifest.json").read_text())
    del m["global_crc"]
    m["version"] = 1
    m["checksum"] = store_crc(m)
    (path / "manifest.json").write_text(json.dumps(m, indent=1))
    listing = json.loads((root / "shards.json").read_text())
    listing["version"] = 1
    listing["shards"][0]["manifest_crc"] = _manifest_crc(path)
    listing["checksum"] = _crc(listing)
    (root / "shards.json").write_text(json.dumps(listing, indent=1))
    _assert_intact(FeatureStore(root), ["x1", "x2"])
    assert check_store(root).ok
    # A version 1 store is resumed and upgraded by its writer.
    single = tmp_path / "single"
    with StoreWriter(single, {"name": "t"}) as w:
        w.add("x1", _features(_seed("x1")), np.ones(4))
    m = json.loads((single / "manifest.json").read_text())
    del m["global_crc"]
    m["version"] = 1
    m["checksum"] = store_crc(m)
    (single / "manifest.json").write_text(json.dumps(m))
    with StoreWriter(single, {"name": "t"}) as w:
        w.add("x2", _features(_seed("x2")), np.full(4, 2.0))
    store = FeatureStore(single)
    assert store.manifest["version"] == 2
    np.testing.assert_array_equal(store.global_vectors, [[1] * 4, [2] * 4])
    _assert_intact(store, ["x1", "x2"])


def test_a_version_1_compact_record_is_decoded_with_its_frames_the_right_way():
    from ilias_rerank import compact

    g = np.random.default_rng(3)
    n = 50
    theta = g.uniform(-np.pi, np.pi, n)
    scale = g.uniform(2, 20, n)
    rot = np.stack([np.cos(theta), -np.sin(theta), np.sin(theta), np.cos(theta)], 1)
    a = (rot.reshape(n, 2, 2) * scale[:, None, None]).astype(np.float32)
    kp = g.uniform(0, 400, (n, 2)).astype(np.float32)
    frames = np.concatenate([a, kp[:, :, None]], axis=2)
    f = ir.LocalFeatures(kp, g.standard_normal((n, 128)).astype(np.float32), frames=frames)
    now = compact.encode(f)
    # The previous release: version 1, orientation atan2(a10, a00) (the opposite sign).
    header = compact._HEADER
    fields = list(header.unpack_from(now))
    payload = bytearray(now[header.size :])
    for i in range(n):
        payload[4 * n + 2 * i + 1] = (256 - payload[4 * n + 2 * i + 1]) % 256
    fields[1], fields[-1] = 1, zlib.crc32(bytes(payload))
    old = header.pack(*fields) + bytes(payload)
    np.testing.assert_allclose(compact.decode(old).frames, compact.decode(now).frames)


@pytest.mark.parametrize(
    "entry", [None, {"name": "a"}, {"name": "a", "images": None, "features": 1, "manifest_crc": 1}]
)
def test_a_malformed_shard_list_entry_is_a_format_error(tmp_path, entry):
    from ilias_rerank.store.sharded import _crc

    root = tmp_path / "s"
    _shard(root, "a", ["x1"])
    register_shards(root, ["a"])
    listing = json.loads((root / "shards.json").read_text())
    listing["shards"] = [entry]
    listing["checksum"] = _crc(listing)
    (root / "shards.json").write_text(json.dumps(listing))
    with pytest.raises(ir.FormatError, match="shard entry 0: expected name, images"):
        FeatureStore(root)


def test_copying_refuses_a_store_that_skips_its_checksums(tmp_path):
    """A copy gets fresh checksums: copying from a store opened with verify="none" would
    launder a damaged image, so copy_images refuses it (register, merge and repair open the
    stores they copy from with verification)."""
    import numpy as np

    import ilias_rerank as ir
    from ilias_rerank.store import copy_images

    rng = np.random.default_rng(0)
    f = ir.LocalFeatures(
        rng.random((5, 2), np.float32) * 10, rng.integers(0, 255, (5, 8), np.uint8)
    )
    with ir.StoreWriter(tmp_path / "a") as w:
        w.add("x", f)
    with ir.StoreWriter(tmp_path / "b") as w, pytest.raises(ValueError, match="verification"):
        copy_images(ir.FeatureStore(tmp_path / "a", verify="none"), ["x"], w)
    with ir.StoreWriter(tmp_path / "c") as w:
        assert copy_images(ir.FeatureStore(tmp_path / "a"), ["x"], w) == 1
