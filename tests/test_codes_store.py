"""A store of codes (issue 22): ``StoreWriter`` writes ``QuantisedFeatures`` in the codes
layout (16-bit keypoints, one row a feature), ``FeatureStore`` reads them back as the codes
the core matches, and a store refuses codes of another vocabulary."""

from __future__ import annotations

import numpy as np
import pytest

import ilias_rerank as ir
from ilias_rerank.codes import Vocabulary, default_vocabulary, quantise
from ilias_rerank.demo import load_photos, phone_shot
from ilias_rerank.errors import StoreLayoutError
from ilias_rerank.store import FeatureStore, StoreWriter
from ilias_rerank.store.layout import StoreLayout, codes_layout


def _features(n, seed=0, size=(600, 800)):
    rng = np.random.default_rng(seed)
    return ir.LocalFeatures(
        rng.uniform(0, min(size), (n, 2)).astype(np.float32),
        rng.integers(0, 255, (n, 128)).astype(np.uint8),
        np.c_[rng.uniform(1, 30, n), rng.uniform(0, 359, n)].astype(np.float32),
        size,
    )


def _other_vocabulary() -> Vocabulary:
    v = default_vocabulary()
    return Vocabulary(v.codebooks[:, ::-1].copy(), v.projection, v.medians, "reversed cells")


def test_codes_round_trip_in_under_100_kb_an_image_at_4096_features(tmp_path):
    q = quantise(_features(4096))
    with StoreWriter(tmp_path / "s") as w:
        w.add("a", q)
        w.add("empty", quantise(_features(0)))
    store = FeatureStore(tmp_path / "s", verify="full")
    back = store["a"]
    assert store.layout == codes_layout(q.vocabulary_id, 5, 1, True)
    assert (back.words == q.words).all() and (back.signatures == q.signatures).all()
    assert back.vocabulary_id == q.vocabulary_id and back.image_size == (600, 800)
    assert np.abs(back.keypoints - q.keypoints).max() <= 800 / 65535
    assert np.abs(back.frames[:, 0] / q.frames[:, 0] - 1).max() < 0.03
    assert len(store["empty"]) == 0
    on_disk = sum(p.stat().st_size for p in (tmp_path / "s").iterdir())
    assert on_disk <= 100 * 1024, on_disk  # 24 B a feature + the manifest and index


def test_a_store_refuses_codes_of_another_vocabulary_and_local_features(tmp_path):
    f = _features(50)
    with StoreWriter(tmp_path / "s") as w:
        w.add("a", quantise(f))
        with pytest.raises(StoreLayoutError, match="vocabulary"):
            w.add("b", quantise(f, _other_vocabulary()))
        with pytest.raises(StoreLayoutError, match="codes features"):
            w.add("c", f)
        assert "b" not in w and "c" not in w
    # A writer declaring another vocabulary's layout cannot resume it.
    other = codes_layout(_other_vocabulary().id, 5, 1, True)
    with pytest.raises(ir.FormatError, match="never mixes layouts"):
        StoreWriter(tmp_path / "s", layout=other)
    # A store of local features refuses codes.
    with StoreWriter(tmp_path / "l") as w:
        w.add("a", f)
        with pytest.raises(StoreLayoutError, match="local features"):
            w.add("b", quantise(f))


def test_codes_need_an_image_size_and_a_layout_its_keys(tmp_path):
    q = quantise(_features(10))
    q.image_size = None
    with StoreWriter(tmp_path / "s") as w, pytest.raises(StoreLayoutError, match="image_size"):
        w.add("a", q)
    bad = codes_layout(1, 5, 1, True).as_dict()
    del bad["vocabulary"]
    with pytest.raises(ValueError, match="codes layout"):
        StoreLayout.from_dict(bad)


def test_reranker_over_a_store_of_codes_finds_the_planted_photo(tmp_path):
    photos = load_photos()
    rng = np.random.default_rng(1)
    refs = ir.extract_local(list(photos.values()), progress=False)
    shots = ir.extract_local([phone_shot(p, rng) for p in photos.values()], progress=False)
    with StoreWriter(tmp_path / "db") as w:
        for i, f in enumerate(refs):
            w.add(f"ref{i}", quantise(f))
    db = FeatureStore(tmp_path / "db")
    queries = {f"shot{i}": quantise(f) for i, f in enumerate(shots)}
    # The right photo is planted last in every shortlist.
    shortlists = {
        f"shot{i}": [x for x in db if x != f"ref{i}"] + [f"ref{i}"] for i in range(len(shots))
    }
    found = ir.Reranker(db).rerank_many(queries, shortlists, progress=False)
    hits = sum(next(iter(found[f"shot{i}"])) == f"ref{i}" for i in range(len(shots)))
    assert hits >= len(shots) - 1
    # Queries of another vocabulary are refused, not matched.
    other = {"shot0": quantise(shots[0], _other_vocabulary())}
    with pytest.raises(ir.InvalidInputError, match="vocabulary"):
        ir.Reranker(db).rerank_many(other, {"shot0": list(db)}, progress=False)


@pytest.fixture(scope="module")
def smvs_codes_job(tmp_path_factory):
    """6 SMVS phone photos, each with a 12-reference shortlist in which its own cover is
    planted sixth; the images as one folder."""
    from conftest import shared_dataset

    from ilias_rerank.reranker import save_similarities

    root = shared_dataset("smvs_dvd_covers")
    base = tmp_path_factory.mktemp("codes_job")
    files = {f"ref/{i:03d}": root / f"Reference/{i:03d}.jpg" for i in range(1, 31)}
    files |= {f"query/{i:03d}": root / f"E63/{i:03d}.jpg" for i in range(1, 7)}
    for image_id, src in files.items():
        (base / "images" / image_id).parent.mkdir(parents=True, exist_ok=True)
        (base / "images" / f"{image_id}.jpg").write_bytes(src.read_bytes())
    rng = np.random.default_rng(0)
    knn = {}
    for i in range(1, 7):
        others = [f"ref/{j:03d}" for j in rng.choice(np.arange(1, 31), 15, replace=False) if j != i]
        ids = [*others[:5], f"ref/{i:03d}", *others[5:11]]
        knn[f"query/{i:03d}"] = dict(zip(ids, np.linspace(0.9, 0.2, 12).tolist(), strict=True))
    save_similarities(base / "knn.json", knn)
    return base


def _job(base, store, out, *extra):
    from ilias_rerank.cli import main

    args = ["rerank-shortlists", "--shortlists", str(base / "knn.json"), "--store", str(store)]
    tail = ["--out", str(out), "-k", "12", "--max-side", "512", "--no-progress", "--workers", "1"]
    return main([*args, *tail, *extra])


def test_the_job_writes_and_reranks_a_store_of_codes(smvs_codes_job, tmp_path, capsys):
    from ilias_rerank.reranker import load_similarities

    base = smvs_codes_job
    images = ["--images", str(base / "images")]
    assert _job(base, tmp_path / "s", tmp_path / "r.json", *images, "--codes") == 0
    store = FeatureStore(tmp_path / "s")
    assert store.layout.kind == "codes"
    assert dict(store.layout.extra)["vocabulary"] == default_vocabulary().name
    assert store.extractor["codes"] == {"vocabulary": default_vocabulary().name, "words": 5}
    found = load_similarities(tmp_path / "r.json")
    top = [next(iter(found[f"query/{i:03d}"])) == f"ref/{i:03d}" for i in range(1, 7)]
    assert sum(top) >= 5, top  # the planted cover (sixth globally) comes first
    # --method store re-ranks the same codes to the same result, extracting nothing.
    assert _job(base, tmp_path / "s", tmp_path / "r2.json", "--method", "store") == 0
    assert load_similarities(tmp_path / "r2.json") == found
    # Codes of another vocabulary never go into this store.
    other = tmp_path / "other.npz"
    _other_vocabulary().save(other)
    assert _job(base, tmp_path / "s", tmp_path / "r3.json", *images, "--codes", str(other)) == 2
    err = capsys.readouterr().err
    assert "holds codes" in err and default_vocabulary().name in err, err
    assert not (tmp_path / "r3.json").exists()
    # A vocabulary that is not there, and --codes with --method store, are clear errors.
    assert _job(base, tmp_path / "s", tmp_path / "r4.json", *images, "--codes", "no.npz") == 2
    assert "no such file" in capsys.readouterr().err
    assert _job(base, tmp_path / "s", tmp_path / "r5.json", "--method", "store", "--codes") == 2
    assert "extracts nothing" in capsys.readouterr().err
    # A job asking for descriptors is refused a store of codes.
    assert _job(base, tmp_path / "s", tmp_path / "r6.json", *images) == 2
    assert "holds codes" in capsys.readouterr().err


@pytest.mark.parametrize("size", [(600, 800), (1, 1), (333, 1211), (65535, 7)])
def test_copying_a_store_of_codes_is_lossless(tmp_path, size):
    """A merge or repair copies images through ``FeatureStore`` -> ``StoreWriter``: codes
    read back and written again give the same bytes (the quantisation is idempotent)."""
    from ilias_rerank.store.sharded import copy_images

    rng = np.random.default_rng(3)
    n = 3000
    f = ir.LocalFeatures(
        np.c_[rng.uniform(0, size[1], n), rng.uniform(0, size[0], n)].astype(np.float32),
        rng.integers(0, 255, (n, 128)).astype(np.uint8),
        np.c_[np.exp(rng.uniform(-3, 15, n)), rng.uniform(-400, 400, n)].astype(np.float32),
        size,
    )
    with StoreWriter(tmp_path / "a") as w:
        w.add("x", quantise(f))
    with StoreWriter(tmp_path / "b") as w:
        assert copy_images(FeatureStore(tmp_path / "a"), ["x"], w) == 1
    for name in ("keypoints.bin", "descriptors.bin", "index.bin"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
