"""Quantised matching (issue 22): the vocabulary (training, encoding, files), quantised
features through the API, the byte record, and the refusals (another vocabulary, bad
settings, damaged records)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import ilias_rerank as ir
from ilias_rerank.codes import QuantisedFeatures, Vocabulary, default_vocabulary, quantise, record
from ilias_rerank.demo import load_photos, phone_shot


def _clusters(n=4000, seed=0):
    """RootSIFT-like rows: 40 centres plus noise (non-negative, unit norm)."""
    rng = np.random.default_rng(seed)
    centres = rng.random((40, 128)).astype(np.float32) ** 3
    x = centres[rng.integers(40, size=n)] + 0.02 * rng.random((n, 128)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def small_vocabulary():
    return Vocabulary.train(_clusters(), "synthetic clusters", iterations=5, half_words=16)


def test_training_is_deterministic_and_identified(small_vocabulary):
    again = Vocabulary.train(_clusters(), "synthetic clusters", iterations=5, half_words=16)
    assert again.id == small_vocabulary.id
    other = Vocabulary.train(_clusters(seed=1), "other", iterations=5, half_words=16)
    assert other.id != small_vocabulary.id


def test_encoding_assigns_the_nearest_cells_first(small_vocabulary):
    x = _clusters(200, seed=3)
    words, sigs = small_vocabulary.encode(x, words=3)
    assert words.shape == (200, 3) and words.dtype == np.uint32
    assert sigs.shape == (200, 1) and sigs.dtype == np.uint64
    books = small_vocabulary.codebooks
    d1 = ((x[:, None, :64] - books[0][None]) ** 2).sum(-1)
    d2 = ((x[:, None, 64:] - books[1][None]) ** 2).sum(-1)
    cell = d1.argmin(1) * 16 + d2.argmin(1)
    assert (words[:, 0] == cell).all()
    assert (words[:, 1:] != words[:, :1]).all()  # the other words are other cells
    # uint8 input (RootSIFT x 512) encodes as the float rows it quantises.
    w8, _ = small_vocabulary.encode(np.clip(np.rint(x * 512), 0, 255).astype(np.uint8), 1)
    assert (w8[:, 0] == words[:, 0]).mean() > 0.9


def test_vocabulary_file_round_trips_and_refuses_garbage(small_vocabulary, tmp_path):
    path = tmp_path / "v.npz"
    small_vocabulary.save(path)
    back = Vocabulary.load(path)
    assert back.id == small_vocabulary.id and back.trained_on == "synthetic clusters"
    (tmp_path / "bad.npz").write_bytes(b"not a vocabulary")
    with pytest.raises(ir.FormatError, match="vocabulary"):
        Vocabulary.load(tmp_path / "bad.npz")


def test_the_shipped_vocabulary_records_its_training_data():
    voc = default_vocabulary()
    record_ = json.loads(voc.trained_on)
    assert "no evaluation set" in record_["source"]
    files = {img["file"] for img in record_["images"]}
    assert "data/astronaut.png" in files and all(
        len(img["sha1"]) == 40 for img in record_["images"]
    )
    assert voc.half_words == 256 and voc.bits == 64


@pytest.fixture(scope="module")
def photos():
    ph = load_photos()
    rng = np.random.default_rng(1)
    refs = ir.extract_local(list(ph.values()), progress=False)
    shots = ir.extract_local([phone_shot(p, rng) for p in ph.values()], progress=False)
    return refs, shots


def test_quantised_features_find_the_photo(photos):
    refs, shots = photos
    coded = [quantise(f, words=1) for f in refs]
    hits = 0
    for i, q in enumerate(shots):
        r = ir.rerank(quantise(q, words=5), coded)
        hits += int(r.order[0] == i)
        assert r.inliers[i] >= 10  # the photo itself verifies
    assert hits >= len(shots) - 1


def test_codes_of_two_vocabularies_and_mixed_kinds_are_refused(photos, small_vocabulary):
    f = photos[0][0]
    a, b = quantise(f), quantise(f, small_vocabulary)
    with pytest.raises(ir.InvalidInputError, match="vocabulary"):
        ir.rerank(a, [b])
    with pytest.raises(ir.InvalidInputError):
        ir.rerank(a, [f])


def _planted(n: int, bits: int) -> QuantisedFeatures:
    """``n`` features with distinct words 0..n-1, keypoints spread over a 100 px image, all
    signatures ``bits`` ones (so two such sets meet at Hamming distance |bits_a - bits_b|)."""
    i = np.arange(n, dtype=np.float32)
    kp = np.c_[5 + 11 * i, 7 + (i * i) % 17 * 5].astype(np.float32)
    sig = np.full((n, 1), (1 << bits) - 1, np.uint64)
    return QuantisedFeatures(kp, np.arange(n, dtype=np.uint32), sig, 7, None, (100, 100))


def test_codes_sigma_scores_by_summed_hamming_weights():
    # Candidate 0 verifies 6 correspondences at Hamming 0, candidate 1 verifies 8 at 20:
    # by count 1 ranks first, with codes_sigma 10 (weights 1 and exp(-4)) 0 does.
    q, near, far = _planted(8, 0), _planted(6, 0), _planted(8, 20)
    by_count = ir.rerank(q, [near, far])
    assert by_count.order.tolist() == [1, 0]
    assert by_count.inliers.tolist() == [6, 8]
    weighted = ir.rerank(q, [near, far], config={"codes_sigma": 10.0})
    assert weighted.order.tolist() == [0, 1]
    assert weighted.inliers.tolist() == [6, 8]  # the counts are reported as before
    assert weighted.scores[0] == pytest.approx(6.5)
    assert weighted.scores[1] == pytest.approx(8 * np.exp(-4) + 0.5, rel=1e-5)


@pytest.mark.parametrize(
    "field, value",
    [
        ("codes_hamming", 257),
        ("codes_hamming", -1),
        ("codes_ratio", 1.5),
        ("codes_sigma", 0.0),
        ("codes_sigma", -2.0),
        ("codes_sigma", float("nan")),
        ("codes_sigma", 300.0),
    ],
)
def test_codes_settings_are_range_checked(field, value):
    with pytest.raises(ir.ConfigError, match=field):
        ir.RerankConfig(**{field: value})


def test_quantised_features_check_their_arrays():
    kp = np.zeros((3, 2), np.float32)
    with pytest.raises(ir.ShapeError, match="words"):
        QuantisedFeatures(kp, np.zeros((2, 1), np.uint32), np.zeros((3, 1), np.uint64), 1)
    with pytest.raises(ir.ShapeError, match="signatures"):
        QuantisedFeatures(kp, np.zeros((3, 1), np.uint32), np.zeros((3, 1), np.uint32), 1)
    # Word ids out of range are refused, not wrapped (-1 became 4294967295, 2**40 became 0).
    sig = np.zeros((3, 1), np.uint64)
    for words in (np.array([[0], [-1], [2]]), np.array([[0], [2**40], [2]])):
        with pytest.raises(ir.ShapeError, match="words: expected ids"):
            QuantisedFeatures(kp, words, sig, 1)


def test_records_round_trip_fit_the_budget_and_refuse_damage(photos):
    f = photos[0][0]
    q = quantise(f, words=3)
    rec = record.encode(q)
    # 6 B geometry + 8 B signature + 3 x 2 B words a feature, plus headers.
    assert len(rec) <= 20 * len(f) + 64
    back = record.decode(rec, vocabulary_id=q.vocabulary_id)
    assert (back.words == q.words).all() and (back.signatures == q.signatures).all()
    assert np.abs(back.keypoints - q.keypoints).max() <= max(f.image_size) / 65535
    with pytest.raises(ir.FormatError, match="vocabulary"):
        record.decode(rec, vocabulary_id=q.vocabulary_id ^ 1)
    with pytest.raises(ir.FormatError, match="checksum"):
        record.decode(rec[:40] + bytes([rec[40] ^ 1]) + rec[41:])
    with pytest.raises(ir.FormatError):
        record.decode(rec[:-1])
    # The decoded codes match like the originals.
    a = ir.verify_pair(q, quantise(photos[1][0], words=1))
    b = ir.verify_pair(back, quantise(photos[1][0], words=1))
    assert abs(a.num_inliers - b.num_inliers) <= max(3, a.num_inliers // 5)


def test_reranker_over_a_quantised_store_finds_the_photos(photos):
    from ilias_rerank.codes import QuantisedStore

    refs, shots = photos
    db = QuantisedStore({f"ref{i}": f for i, f in enumerate(refs)}, words=1)
    queries = QuantisedStore({f"shot{i}": f for i, f in enumerate(shots)})
    shortlists = {f"shot{i}": list(db) for i in range(len(shots))}
    found = ir.Reranker(db).rerank_many(queries, shortlists, progress=False)
    hits = sum(next(iter(found[f"shot{i}"])) == f"ref{i}" for i in range(len(shots)))
    assert hits >= len(shots) - 1
