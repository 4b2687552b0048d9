"""The store's layout is declared, not guessed (issue 21, item 1 and "What to build" 4):

- every extractor declares the layout of what it returns (``store_layout()``), a
  featureless image included: empty results carry ``(0, 2)`` frames (SIFT), never ``None``;
- the writer records the declared layout in the manifest and stores every image in it, an
  empty one included; an image whose arrays disagree is that image's named failure
  (``StoreLayoutError``), never the store's;
- a featureless image never fixes the layout of a store that declares none, and a store an
  earlier release poisoned that way (layout taken from a blank first image) is read and
  resumed with the right layout;
- the job's batch and the pipeline count such an image as failed and keep the others.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import ilias_rerank as ir
from ilias_rerank.errors import StoreLayoutError
from ilias_rerank.store import FeatureStore, StoreLayout, StoreWriter, check_store

SIFT = StoreLayout("uint8", 128, 2)


def _sift_like(seed: int, n: int = 30) -> ir.LocalFeatures:
    g = np.random.default_rng(seed)
    return ir.LocalFeatures(
        g.uniform(0, 400, (n, 2)).astype(np.float32),
        g.integers(0, 256, (n, 128)).astype(np.uint8),
        frames=np.c_[g.uniform(1, 9, n), g.uniform(-180, 180, n)].astype(np.float32),
        image_size=(400, 400),
    )


def _blank(frames=True) -> ir.LocalFeatures:
    return ir.LocalFeatures(
        np.zeros((0, 2), np.float32),
        np.zeros((0, 128), np.uint8),
        frames=np.zeros((0, 2), np.float32) if frames else None,
        image_size=(64, 64),
    )


def _textured(seed: int = 0, size: int = 160) -> np.ndarray:
    g = np.random.default_rng(seed)
    small = g.integers(0, 256, (size // 8, size // 8), dtype=np.uint8)
    return np.kron(small, np.ones((8, 8), np.uint8))


@pytest.mark.parametrize("backend", ["opencv", "kornia-rs", "kornia", "rust"])
def test_every_sift_backend_returns_its_declared_layout_for_a_blank_image(backend):
    pytest.importorskip(
        {"opencv": "cv2", "kornia-rs": "kornia_rs", "kornia": "kornia", "rust": "numpy"}[backend]
    )
    from ilias_rerank.extractors import make_extractor

    extractor = make_extractor("sift", 256, 256, backend=backend)
    layout = extractor.store_layout()
    assert layout.frame_width == (6 if backend == "kornia" else 2)
    assert layout.descriptor_dim == 128
    for image in (np.full((96, 128), 127, np.uint8), np.zeros((1, 1), np.uint8), _textured()):
        f = extractor(image)
        layout.check("image", f)  # raises unless the arrays are of the declared layout
        if not len(f.keypoints):
            assert f.frames is not None and f.frames.shape[1:] == (
                (2,) if layout.frame_width == 2 else (2, 3)
            )
            assert f.descriptors.shape == (0, 128)


def test_learned_extractors_declare_their_dimension_and_no_frames():
    from ilias_rerank.extractors.aliked import Aliked
    from ilias_rerank.extractors.disk import Disk
    from ilias_rerank.extractors.xfeat import XFeat

    assert (Disk.descriptor_dim, Disk.frame_width) == (128, 0)
    assert (XFeat.descriptor_dim, XFeat.frame_width) == (64, 0)
    pytest.importorskip("torch")
    assert Aliked(variant="t16").store_layout() == StoreLayout("uint8", 64, 0)
    assert Aliked(variant="n32").store_layout() == StoreLayout("uint8", 128, 0)


def test_a_blank_first_image_does_not_poison_a_declared_store(tmp_path):
    path = tmp_path / "s"
    with StoreWriter(path, {"name": "t"}, layout=SIFT) as w:
        w.add("blank", _blank())
        w.add("photo", _sift_like(1))
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["layout"] == SIFT.as_dict() and manifest["frame_width"] == 2
    # Later runs resume it and add images of the layout.
    with StoreWriter(path, {"name": "t"}, layout=SIFT) as w:
        w.add("photo2", _sift_like(2))
    store = FeatureStore(path)
    assert store.layout == SIFT and len(store["blank"].keypoints) == 0
    assert store["blank"].frames.shape == (0, 2)
    np.testing.assert_array_equal(store["photo2"].frames, _sift_like(2).frames)


def test_an_image_of_another_layout_is_that_images_failure(tmp_path):
    path = tmp_path / "s"
    with StoreWriter(path, {"name": "t"}, layout=SIFT) as w:
        w.add("a", _sift_like(1))
        f = _sift_like(2)
        with pytest.raises(StoreLayoutError, match=r"'no-frames'.*frames of width 2"):
            w.add("'no-frames'", ir.LocalFeatures(f.keypoints, f.descriptors))
        with pytest.raises(StoreLayoutError, match="b: expected uint8 descriptors of dimension"):
            w.add("b", ir.LocalFeatures(f.keypoints, f.descriptors[:, :64], f.frames))
        with pytest.raises(StoreLayoutError, match="empty: expected frames of width 2"):
            w.add("empty", _blank(frames=False))  # declared: empty images too
        w.add("c", _sift_like(3))  # the writer goes on
    assert FeatureStore(path).ids == ["a", "c"]
    # The error is one a caller counts as an image's failure.
    assert issubclass(StoreLayoutError, (ir.IliasRerankError)) and issubclass(
        StoreLayoutError, ValueError
    )


def test_a_store_without_a_declared_layout_takes_it_from_its_first_image_with_features(tmp_path):
    path = tmp_path / "s"
    with StoreWriter(path, {"name": "t"}) as w:
        w.add("blank", _blank(frames=False))  # frames=None: fixes nothing
        w.add("blank2", _blank())
    assert json.loads((path / "manifest.json").read_text())["layout"] is None
    assert FeatureStore(path).layout is None
    with StoreWriter(path, {"name": "t"}) as w:
        w.add("photo", _sift_like(1))
        with pytest.raises(StoreLayoutError):
            w.add("other", ir.LocalFeatures(np.zeros((3, 2)), np.zeros((3, 128), np.uint8)))
    store = FeatureStore(path)
    assert store.layout == SIFT and store.ids == ["blank", "blank2", "photo"]


def test_a_declared_writer_refuses_a_store_of_another_layout(tmp_path):
    path = tmp_path / "s"
    with StoreWriter(path, {"name": "t"}, layout=SIFT) as w:
        w.add("a", _sift_like(1))
    with pytest.raises(ir.FormatError, match="never mixes layouts"):
        StoreWriter(path, {"name": "t"}, layout=StoreLayout("uint8", 128, 0))
    with StoreWriter(path, {"name": "t"}, layout=SIFT.as_dict()) as w:  # its dict is fine
        w.add("b", _sift_like(2))


def test_layouts_are_checked_and_carry_extra_keys():
    with pytest.raises(ValueError, match="frame_width"):
        StoreLayout("uint8", 128, 3)
    with pytest.raises(ValueError, match="descriptor_dtype"):
        StoreLayout("int8", 128, 2)
    # An unchecked kind of one's own ("codes" is the store of codes: tests/test_codes_store.py).
    codes = StoreLayout.from_dict({**SIFT.as_dict(), "kind": "mine", "vocabulary": "v1"})
    assert codes.kind == "mine" and dict(codes.extra) == {"vocabulary": "v1"}
    assert StoreLayout.from_dict(codes.as_dict()) == codes
    assert codes != StoreLayout.from_dict({**codes.as_dict(), "vocabulary": "v2"})


def _poisoned_old_store(path: Path) -> None:
    """A store as the previous release wrote it when its first image was blank: no
    ``layout`` key, ``frame_width`` 0 taken from that image's ``frames=None``."""
    from ilias_rerank.store.single import _manifest_crc

    with StoreWriter(path, {"name": "t"}) as w:
        w.add("blank", _blank(frames=False))
    m = json.loads((path / "manifest.json").read_text())
    del m["layout"]
    m["descriptors"], m["frame_width"] = {"dtype": "uint8", "dim": 128}, 0
    m["checksum"] = _manifest_crc(m)
    (path / "manifest.json").write_text(json.dumps(m, indent=1))


def test_a_store_an_earlier_release_poisoned_is_resumed_with_the_declared_layout(tmp_path):
    path = tmp_path / "old"
    _poisoned_old_store(path)
    assert FeatureStore(path).layout is None  # what the blank image made up is not kept
    with StoreWriter(path, {"name": "t"}, layout=SIFT) as w:
        w.add("photo", _sift_like(1))
    store = FeatureStore(path)
    assert store.layout == SIFT and store.manifest["version"] == 2
    np.testing.assert_array_equal(store["photo"].frames, _sift_like(1).frames)


def test_an_old_store_with_features_reads_its_layout_from_its_fields(tmp_path):
    from ilias_rerank.store.single import _manifest_crc

    path = tmp_path / "old"
    with StoreWriter(path, {"name": "t"}, layout=SIFT) as w:
        w.add("a", _sift_like(1))
    m = json.loads((path / "manifest.json").read_text())
    del m["layout"]
    m["checksum"] = _manifest_crc(m)
    (path / "manifest.json").write_text(json.dumps(m, indent=1))
    assert FeatureStore(path).layout == SIFT
    with StoreWriter(path, {"name": "t"}, layout=SIFT) as w:
        w.add("b", _sift_like(2))
    with pytest.raises(ir.FormatError, match="never mixes layouts"):
        StoreWriter(path, {"name": "t"}, layout=StoreLayout("float32", 128, 2))


class _Source:
    def __init__(self, images: dict) -> None:
        self.images = images

    def read(self, image_id: str):
        return self.images[image_id]


class _OddExtractor:
    """Declares SIFT's layout; returns features of another layout for ``odd``."""

    def params(self) -> dict:
        return {"name": "odd-test"}

    def store_layout(self) -> StoreLayout:
        return SIFT

    def __call__(self, source, name=None):
        if source == "odd":
            f = _sift_like(9)
            return ir.LocalFeatures(f.keypoints, f.descriptors[:, :64], f.frames)
        if source == "blank":
            return _blank()
        return _sift_like(int(source))


def test_a_batch_counts_an_image_of_another_layout_as_failed_and_keeps_the_others(tmp_path):
    from ilias_rerank.scale.extraction import Batch, extract_batch

    root = tmp_path / "store"
    ids = {"i1": "1", "i2": "odd", "i3": "blank", "i4": "4"}
    result = extract_batch(Batch("b-1", tuple(ids)), _Source(ids), _OddExtractor(), root)
    assert list(result.failed) == ["i2"] and "dimension 128" in result.failed["i2"]
    assert result.extracted == 3
    from ilias_rerank.store import register_shards

    register_shards(root, ["b-1"])
    store = FeatureStore(root)
    assert store.ids == ["i1", "i3", "i4"] and store.layout == SIFT
    assert check_store(root).ok


def test_a_blank_image_in_a_job_is_stored_and_the_next_run_extends_the_store(tmp_path):
    pytest.importorskip("cv2")
    from PIL import Image

    from ilias_rerank.scale.job import rerank_shortlists

    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.full((120, 160), 200, np.uint8)).save(images / "blank.png")
    for k in range(3):
        Image.fromarray(_textured(k)).save(images / f"t{k}.png")
    shortlists = tmp_path / "short.json"
    store = tmp_path / "store"
    # The blank image comes first (sorted ids), as the query of the first job.
    shortlists.write_text(json.dumps({"blank": {"t0": 1.0, "t1": 0.5}}))
    kwargs = dict(k=2, workers=1, max_failed=0, progress=False)
    first = rerank_shortlists(shortlists, images, store, tmp_path / "out1.json", **kwargs)
    assert first["failed"] == 0 and first["extracted"] == 3
    assert FeatureStore(store).layout.frame_width == 2
    shortlists.write_text(json.dumps({"t2": {"blank": 1.0, "t0": 0.5}}))
    second = rerank_shortlists(shortlists, images, store, tmp_path / "out2.json", **kwargs)
    assert second["failed"] == 0 and second["extracted"] == 1
    assert sorted(FeatureStore(store)) == ["blank", "t0", "t1", "t2"]
    assert check_store(store).ok


def test_a_shard_list_an_earlier_release_poisoned_takes_new_shards_of_the_layout(tmp_path):
    """A ``shards.json`` without a declared layout, whose recorded one came from a blank
    first image (frame width 0): its layout is read from its shards, so the next job's
    shards of the extractor's layout register."""
    from ilias_rerank.store import register_shards, shard_path
    from ilias_rerank.store.sharded import _crc, _manifest_crc

    root = tmp_path / "s"
    _poisoned_old_store(shard_path(root, "blank"))
    register_shards(root, ["blank"])
    listing = json.loads((root / "shards.json").read_text())
    m = json.loads((shard_path(root, "blank") / "manifest.json").read_text())
    listing["layout"] = {k: m[k] for k in ("extractor", "descriptors", "frame_width", "global_dim")}
    listing["shards"][0]["manifest_crc"] = _manifest_crc(shard_path(root, "blank"))
    listing["checksum"] = _crc(listing)
    (root / "shards.json").write_text(json.dumps(listing))
    with StoreWriter(shard_path(root, "next"), {"name": "t"}, layout=SIFT) as w:
        w.add("photo", _sift_like(1))
    register_shards(root, ["next"])
    store = FeatureStore(root)
    assert sorted(store) == ["blank", "photo"] and store.layout == SIFT
    assert json.loads((root / "shards.json").read_text())["layout"]["layout"] == SIFT.as_dict()
    assert check_store(root).ok


def test_one_reader_class_opens_single_and_sharded_stores_and_pickles_by_path(tmp_path):
    import pickle

    from ilias_rerank.store import ShardedStore, register_shards, shard_path

    single, root = tmp_path / "single", tmp_path / "sharded"
    for path in (single, shard_path(root, "a")):
        with StoreWriter(path, {"name": "t"}, layout=SIFT) as w:
            w.add("x", _sift_like(1))
    register_shards(root, ["a"])
    for path in (single, root):
        store = FeatureStore(path)
        assert type(store) is FeatureStore and isinstance(store, ShardedStore)
        assert store.layout == SIFT and store.ids == ["x"]
        again = pickle.loads(pickle.dumps(store))  # reopened from its path, not copied
        assert again.path == store.path and again.sharded == store.sharded
        np.testing.assert_array_equal(again["x"].descriptors, _sift_like(1).descriptors)
    assert FeatureStore(root).shards[0].path.name == "a" and not FeatureStore(single).shards
