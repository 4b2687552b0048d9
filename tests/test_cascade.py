"""The cascade (``cascade_*`` in ``RerankConfig``, issue 16), on planted scenes with known
answers: with no second-pass candidate it equals ``rerank`` on the prefixes, bit for bit;
with every candidate and a prefix that holds every feature it equals the one-pass
``rerank``; a positive whose shared object sits only in its weak features is missed by the
first pass and found by the second; the second pass re-verifies at most
``cascade_candidates`` candidates, never a certain one, and the result is the same on any
number of threads; bad settings are refused with "expected ..., got ..."."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ilias_rerank as ir

N_PART = 200


def _set(g, n=N_PART):
    """A random 'object': keypoints, uint8 descriptors, (scale, orientation) frames."""
    return (
        g.uniform(0, 800, (n, 2)).astype(np.float32),
        g.integers(0, 256, (n, 64)).astype(np.uint8),
        np.c_[g.uniform(2, 9, n), g.uniform(-180, 180, n)].astype(np.float32),
    )


def _image(*parts, shift=(0.0, 0.0)):
    """Rows of the parts in order (the first part is the 'strongest')."""
    return ir.LocalFeatures(
        np.concatenate([p[0] for p in parts]) + np.float32(shift),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
        (800, 1000),
    )


def _prefix(f: ir.LocalFeatures, n: int) -> ir.LocalFeatures:
    return ir.LocalFeatures(f.keypoints[:n], f.descriptors[:n], f.frames[:n], f.image_size)


@pytest.fixture(scope="module")
def scene():
    """Query = [its own clutter, object A]; candidate 2 = [A, clutter] (A strong);
    candidate 5 = [clutter, A] (A only in its weak half); the others unrelated."""
    g = np.random.default_rng(16)
    obj = _set(g)
    query = _image(_set(g), obj)
    strong = _image(obj, _set(g), shift=(10, -5))
    weak = _image(_set(g), obj, shift=(-15, 8))
    cands = [_image(_set(g), _set(g)) for _ in range(8)]
    cands[2], cands[5] = strong, weak
    return query, cands


def _same(a: ir.RerankResult, b: ir.RerankResult) -> None:
    np.testing.assert_array_equal(a.order, b.order)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.inliers, b.inliers)
    np.testing.assert_array_equal(a.num_matches, b.num_matches)
    np.testing.assert_array_equal(a.transforms, b.transforms)
    assert a.models == b.models


@pytest.mark.parametrize("n", [1, 100, N_PART, 2 * N_PART - 1])
def test_no_second_pass_is_rerank_on_the_prefixes(scene, n):
    query, cands = scene
    g = np.linspace(0.9, 0.1, len(cands)).astype(np.float32)
    cheap = ir.rerank(_prefix(query, n), [_prefix(c, n) for c in cands], g)
    got = ir.rerank(query, cands, g, config={"cascade_features": n, "cascade_candidates": 0})
    _same(cheap, got)
    assert got.refined.size == 0


@pytest.mark.parametrize(
    ("features", "candidates", "rich"),
    [(2 * N_PART, 8, 0), (5000, 100, 0), (50, 8, 2 * N_PART)],
)
def test_every_candidate_with_every_feature_is_the_one_pass(scene, features, candidates, rich):
    query, cands = scene
    full = ir.rerank(query, cands)
    cfg = {
        "cascade_features": features,
        "cascade_candidates": candidates,
        "cascade_rich_features": rich,
    }
    got = ir.rerank(query, cands, config=cfg)
    _same(full, got)
    # ``refined`` lists the pairs the second pass verified again: none when the first
    # pass already held every feature (the second pass is skipped), else every candidate.
    skipped = features >= 2 * N_PART
    assert sorted(got.refined.tolist()) == ([] if skipped else list(range(len(cands))))


def test_the_second_pass_finds_what_the_prefix_misses(scene):
    query, cands = scene
    full = ir.rerank(query, cands)
    assert set(full.order[:2].tolist()) == {2, 5} and full.inliers[5] >= 100
    # The query's first N_PART features are its clutter: the first pass finds nothing.
    cheap = {"cascade_features": N_PART, "cascade_candidates": 0}
    first = ir.rerank(query, cands, config=cheap)
    assert first.inliers.max() < 4
    # A global score that favours 5: one second-pass pair finds it.
    g = np.full(len(cands), 0.1, np.float32)
    g[5] = 0.5
    one = ir.rerank(query, cands, g, config={**cheap, "cascade_candidates": 1})
    assert one.refined.tolist() == [5] and one.order[0] == 5
    assert one.inliers[5] == full.inliers[5]
    # Everything re-verified: both found.
    every = ir.rerank(query, cands, config={**cheap, "cascade_candidates": len(cands)})
    assert set(every.order[:2].tolist()) == {2, 5}


def test_certain_candidates_keep_their_first_pass(scene):
    query, cands = scene
    cfg = {  # a first pass one feature short of all: the second pass really runs
        "cascade_features": 2 * N_PART - 1,
        "cascade_candidates": 8,
        "cascade_certain_inliers": 50,
    }
    out = ir.rerank(query, cands, config=cfg)
    assert 2 not in out.refined and 5 not in out.refined and len(out.refined) == 6


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    features=st.integers(1, 2 * N_PART + 10),
    candidates=st.integers(0, 10),
    rich_extra=st.integers(0, 300),
    certain=st.integers(0, 60),
    with_global=st.booleans(),
)
def test_bounded_and_independent_of_threads(
    scene, features, candidates, rich_extra, certain, with_global
):
    query, cands = scene
    g = np.arange(len(cands), dtype=np.float32)[::-1].copy() if with_global else None
    cfg = ir.RerankConfig(
        cascade_features=features,
        cascade_candidates=candidates,
        cascade_rich_features=features + rich_extra if rich_extra else 0,
        cascade_certain_inliers=certain,
    )
    runs = [ir.rerank(query, cands, g, config=cfg.replace(num_threads=t)) for t in (1, 2, 3)]
    for other in runs[1:]:
        _same(runs[0], other)
        np.testing.assert_array_equal(runs[0].refined, other.refined)
    out = runs[0]
    assert len(out.refined) <= candidates and len(set(out.refined.tolist())) == len(out.refined)
    assert np.all(np.diff(out.scores) < 0)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"cascade_features": -1}, "cascade_features"),
        ({"cascade_features": 2**20 + 1}, "cascade_features"),
        ({"cascade_candidates": 2**22 + 1}, "cascade_candidates"),
        ({"cascade_features": 512, "cascade_rich_features": 256}, "cascade_rich_features"),
        ({"cascade_certain_inliers": 2**20 + 1}, "cascade_certain_inliers"),
        ({"cascade_candidates": 1.5}, "cascade_candidates"),
    ],
)
def test_bad_settings_are_refused(changes, field):
    with pytest.raises(ir.ConfigError, match=rf"config\.{field}: expected .*, got "):
        ir.RerankConfig(**changes)


def test_kornia_sift_keeps_the_strongest_first():
    """The cascade reads prefixes: the package's default extractor must store features
    strongest first. kornia's ``SIFTFeatureScaleSpace`` returns them by descending
    response, so the first 128 of a 256-feature extraction are the 128-feature extraction
    (as a set of rows: keypoints at one position with two orientations tie in response,
    and their order may differ)."""
    pytest.importorskip("kornia")
    from conftest import shared_dataset

    from ilias_rerank.extractors import make_extractor

    img = shared_dataset("smvs_dvd_covers") / "Reference" / "002.jpg"
    small = make_extractor("sift", num_features=128, max_side=320)(img)
    large = make_extractor("sift", num_features=256, max_side=320)(img)

    def rows(f, n):
        return {
            (*f.keypoints[i].tolist(), *f.frames[i].tolist(), f.descriptors[i].tobytes())
            for i in range(n)
        }

    assert len(small.keypoints) == 128
    assert rows(small, 128) == rows(large, 128)
