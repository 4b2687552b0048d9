"""Issue 21, items 2, 6, 7 and 8: repair and merge never delete or move data that no other
registered shard holds, and a failed registration changes nothing.

- (2) ``store repair`` keeps an intact shard whose layout differs from the store's (it was
  deleted as "none of its images is needed");
- (6) a failed ``register_shards`` leaves nothing behind that makes the next registration
  under the same lock (the job's ``finally: register()``) delete shards;
- (7) ``store merge`` refuses a store ``store check`` finds problems in, naming them, and a
  merge whose copy fails leaves no half-merged shard;
- (8) ``store repair`` moves an unreadable shard to ``damaged/`` only once the new
  ``shards.json`` is durable.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from test_store_integrity import _assert_intact, _features, _seed, _tree

import ilias_rerank as ir
from ilias_rerank.store import (
    FeatureStore,
    StoreWriter,
    check_store,
    merge_store,
    register_shards,
    repair_store,
    shard_path,
    writer_lock,
)


def _wide(image_id: str) -> ir.LocalFeatures:
    """Features of another layout than ``_features`` (32-D descriptors)."""
    f = _features(_seed(image_id))
    return ir.LocalFeatures(f.keypoints, np.hstack([f.descriptors, f.descriptors]))


def _shard(root: Path, name: str, ids: list[str], extractor=None, make=None) -> Path:
    path = shard_path(root, name)
    with StoreWriter(path, extractor or {"name": "t"}) as w:
        for image_id in ids:
            w.add(image_id, make(image_id) if make else _features(_seed(image_id)))
    return path


def _shard_dirs(root: Path) -> set[str]:
    return {p.name for p in (root / "shards").iterdir()}


def test_repair_keeps_an_intact_shard_of_another_layout(tmp_path):
    """Item 2: its images are held by no other shard, so it is never removed."""
    root = tmp_path / "s"
    _shard(root, "a", ["x1", "x2"])
    register_shards(root, ["a"])
    odd = _shard(root, "odd", ["y1", "y2", "y3"], make=_wide)  # another descriptor dimension
    report = repair_store(root)
    assert odd.is_dir(), report
    kept = FeatureStore(odd)
    assert kept.ids == ["y1", "y2", "y3"]
    for image_id in kept.ids:
        np.testing.assert_array_equal(kept[image_id].descriptors, _wide(image_id).descriptors)
    text = "\n".join(report.actions)
    assert "left orphan shard odd where it is" in text and "3 held by no other shard" in text
    _assert_intact(FeatureStore(root), ["x1", "x2"])
    # check names it (the user decides), and the next job's adoption leaves it alone.
    assert "orphan shard odd: layout differs" in "\n".join(check_store(root).findings)
    from ilias_rerank.store.maintenance import adopt_orphans

    assert any("left orphan shard odd alone" in a for a in adopt_orphans(root))
    assert odd.is_dir()


def test_a_failed_registration_leaves_nothing_that_deletes_shards_later(tmp_path):
    """Item 6: the job holds the root lock, registers, one registration fails, and its
    ``finally`` registers the same shards again."""
    root = tmp_path / "s"
    _shard(root, "base", ["x1"])
    _shard(root, "a", ["y1", "y2"])
    _shard(root, "odd", ["z1"], extractor={"name": "other"})
    with writer_lock(root, reentrant=True):
        register_shards(root, ["base"])
        with pytest.raises(ir.FormatError, match="shard odd: layout"):
            register_shards(root, ["a", "odd"])
        assert check_store(root).findings  # a and odd are orphans now, untouched
        register_shards(root, ["a"])  # the retry
    assert shard_path(root, "a").is_dir()
    _assert_intact(FeatureStore(root), ["x1", "y1", "y2"])


def test_a_failed_registration_removes_the_copies_it_wrote(tmp_path):
    root = tmp_path / "s"
    _shard(root, "base", ["x1"])
    register_shards(root, ["base"])
    _shard(root, "part", ["x1", "y1"])  # rewritten as a copy holding y1
    _shard(root, "odd", ["z1"], extractor={"name": "other"})
    with pytest.raises(ir.FormatError):
        register_shards(root, ["part", "odd"])
    assert _shard_dirs(root) == {"base", "part", "odd"}
    _assert_intact(FeatureStore(root), ["x1"])


def _duplicated_store(root: Path) -> None:
    """A version-1 listing (an earlier release) that registers x1 in two shards."""
    from ilias_rerank.store.sharded import _crc, _manifest_crc

    _shard(root, "a", ["x1", "x2"])
    _shard(root, "b", ["y1"])
    register_shards(root, ["a", "b"])
    _shard(root, "dup", ["x1", "y3"])
    listing = json.loads((root / "shards.json").read_text())
    listing["shards"].append(
        {
            "name": "dup",
            "images": 2,
            "features": 40,
            "manifest_crc": _manifest_crc(root / "shards" / "dup"),
        }
    )
    listing["version"] = 1
    listing["checksum"] = _crc(listing)
    (root / "shards.json").write_text(json.dumps(listing))


def test_merge_refuses_a_store_check_finds_problems_in_and_names_them(tmp_path):
    """Item 7: duplicate ids; before, merge died on a temporary shard's ValueError and left
    that half-merged shard on disk."""
    root = tmp_path / "s"
    _duplicated_store(root)
    before = _tree(root)
    with pytest.raises(ir.FormatError, match="registered in more than one shard") as caught:
        merge_store(root, target_bytes=1 << 20)
    assert "store repair" in str(caught.value)
    assert _tree(root) == before  # nothing written, nothing removed
    from ilias_rerank.cli import main

    assert main(["store", "merge", str(root), "--target-size", "1M"]) != 0
    assert _tree(root) == before
    repair_store(root)
    merge_store(root, target_bytes=1 << 20)
    _assert_intact(FeatureStore(root), ["x1", "x2", "y1", "y3"])


def test_merge_refuses_an_orphan_and_a_failed_copy_leaves_no_half_merged_shard(tmp_path):
    root = tmp_path / "s"
    for name, ids in {"a": ["x1"], "b": ["x2"], "c": ["x3"]}.items():
        _shard(root, name, ids)
    register_shards(root, ["a", "b", "c"])
    _shard(root, "orphan", ["x4"])
    with pytest.raises(ir.FormatError, match="orphan shard orphan"):
        merge_store(root, target_bytes=1 << 20)
    register_shards(root, ["orphan"])
    # A damaged image that the quick check does not read: the copy finds it.
    d = shard_path(root, "b") / "descriptors.bin"
    data = bytearray(d.read_bytes())
    data[3] ^= 0xFF
    d.write_bytes(bytes(data))
    before = _tree(root)
    with pytest.raises(ir.FormatError, match="checksum mismatch"):
        merge_store(root, target_bytes=1 << 20)
    assert _tree(root) == before


def test_repair_moves_an_unreadable_shard_only_after_the_new_list_is_durable(tmp_path, monkeypatch):
    """Item 8: a repair that dies before ``shards.json`` is replaced leaves every shard the
    old list names where it was."""
    root = tmp_path / "s"
    _shard(root, "a", ["x1"])
    _shard(root, "b", ["x2"])
    register_shards(root, ["a", "b"])
    (shard_path(root, "b") / "index.bin").write_bytes(b"garbage")
    real_replace = os.replace

    def crash_on_the_list(src, dst, *args, **kwargs):
        if Path(dst).name == "shards.json":
            raise OSError("simulated crash before the new list is durable")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", crash_on_the_list)
    with pytest.raises(OSError, match="simulated crash"):
        repair_store(root)
    monkeypatch.setattr(os, "replace", real_replace)
    assert shard_path(root, "b").is_dir() and not (root / "damaged").exists()
    report = repair_store(root)
    assert (root / "damaged" / "b").is_dir() and not shard_path(root, "b").exists()
    assert any("moved unreadable shard b to damaged/b" in a for a in report.actions)
    _assert_intact(FeatureStore(root), ["x1"])


def test_repair_records_the_layout_of_the_shards_it_registers(tmp_path):
    """A store whose registered shards are all featureless has no layout yet; the orphan
    repair registers fixes it, and readers see it."""
    from test_store_layout import SIFT, _blank, _sift_like

    root = tmp_path / "s"
    with StoreWriter(shard_path(root, "a"), {"name": "t"}) as w:
        w.add("blank", _blank(frames=False))
    register_shards(root, ["a"])
    assert FeatureStore(root).layout is None
    with StoreWriter(shard_path(root, "b"), {"name": "t"}, layout=SIFT) as w:
        w.add("photo", _sift_like(1))
    repair_store(root)
    store = FeatureStore(root)
    assert store.layout == SIFT and sorted(store) == ["blank", "photo"]
    assert store["photo"].frames.shape == (30, 2) and check_store(root).ok


def test_registration_keeps_an_orphan_whose_copy_is_the_only_intact_one(tmp_path):
    """The registered copy of ``i0`` fails its checksum and an orphan holds an intact one:
    registering the orphan must not delete it (it deleted it, and `store repair` then lost
    ``i0``); `store check` counts its copy as held by nobody; repair keeps it readable."""
    root = tmp_path / "s"
    a = _shard(root, "a-1", ["i0", "i1"])
    register_shards(root, ["a-1"])
    raw = bytearray((a / "descriptors.bin").read_bytes())
    raw[5] ^= 0xFF  # damages i0, the first image
    (a / "descriptors.bin").write_bytes(bytes(raw))
    _shard(root, "b-1", ["i0"])
    assert any("1 not held intact" in f for f in check_store(root).findings)
    register_shards(root, ["b-1"])
    assert "b-1" in _shard_dirs(root)
    repair_store(root)
    store = FeatureStore(root)
    np.testing.assert_array_equal(store["i0"].descriptors, _features(_seed("i0")).descriptors)
    assert len(store["i1"]) == len(_features(_seed("i1")))
    store.close()
    assert check_store(root).ok
