"""Spatially verified expansion and consensus (issue 11), on planted scenes with known
answers: a candidate the query cannot verify, but a verified candidate can, is found by
query expansion and by nothing else; a shortlist without a query is re-ranked by its own
top candidates (consensus); the second tier re-scores only the uncertain head; both are
deterministic and bounded."""

from __future__ import annotations

import numpy as np
import pytest

import ilias_rerank as ir
from ilias_rerank.matchers import rerank_two_tier


def _set(g, n=300):
    """A random 'object': keypoints, uint8 descriptors, (scale, orientation) frames."""
    return (
        g.uniform(0, 800, (n, 2)).astype(np.float32),
        g.integers(0, 256, (n, 64)).astype(np.uint8),
        np.c_[g.uniform(2, 9, n), g.uniform(-180, 180, n)].astype(np.float32),
    )


def _image(*parts, shift=(0.0, 0.0)):
    kp = np.concatenate([p[0] for p in parts]) + np.float32(shift)
    return ir.LocalFeatures(
        kp,
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
        (800, 1000),
    )


@pytest.fixture(scope="module")
def scene():
    g = np.random.default_rng(7)
    a, b = _set(g), _set(g)
    query = _image(a)
    bridge = _image(a, b, shift=(12, -7))  # the query's object and a second one
    hidden = _image(b, _set(g), shift=(-20, 15))  # only the second object: no link to the query
    others = [_image(_set(g), _set(g)) for _ in range(6)]
    candidates = [*others[:3], bridge, *others[3:], hidden]
    global_scores = np.linspace(0.9, 0.1, len(candidates)).astype(np.float32)
    return query, candidates, global_scores


def test_expansion_finds_what_only_a_verified_candidate_can_verify(scene):
    query, cands, g = scene
    plain = ir.rerank(query, cands, g)
    assert plain.order[0] == 3 and plain.inliers[-1] == 0
    assert list(plain.order).index(len(cands) - 1) == len(cands) - 1  # last, by global score
    expanded = ir.rerank(query, cands, g, config={"expansion": 1, "expansion_min_inliers": 20})
    assert list(expanded.expansion) == [3]
    assert list(expanded.order[:2]) == [3, len(cands) - 1]
    assert expanded.support[-1] >= 200 and expanded.support[0] == 0
    assert np.all(np.diff(expanded.scores) < 0)
    # Deterministic, and nothing joins when no candidate verifies well enough.
    again = ir.rerank(query, cands, g, config={"expansion": 1, "expansion_min_inliers": 20})
    np.testing.assert_array_equal(again.scores, expanded.scores)
    strict = ir.rerank(query, cands, g, config={"expansion": 1, "expansion_min_inliers": 10**5})
    assert len(strict.expansion) == 0
    np.testing.assert_array_equal(strict.order, plain.order)


def test_consensus_reranks_a_shortlist_without_its_query(scene):
    _, cands, _ = scene
    # The global ranking puts the two images of the second object first and last.
    bridge, hidden = 3, len(cands) - 1
    g = np.full(len(cands), 0.2, np.float32)
    g[bridge] = 0.9
    r = ir.rerank_consensus(cands, g, pseudo_queries=1)
    assert list(r.expansion) == [bridge]
    assert r.support[hidden] >= 200  # verified by the pseudo-query
    # The pseudo-query is scored by its strongest link (here: the hidden image), so both
    # lead, the pseudo-query first by its global score.
    assert list(r.order[:2]) == [bridge, hidden] and r.support[bridge] == r.support[hidden]
    assert np.all(np.diff(r.scores) < 0) and sorted(r.order) == list(range(len(cands)))
    with pytest.raises(ir.ConfigError, match="pseudo_queries"):
        ir.rerank_consensus(cands, g, pseudo_queries=0)
    assert len(ir.rerank_consensus([], None)) == 0


class CountingMatcher:
    """A stand-in matcher: matches features by identical descriptors, counts its calls."""

    def __init__(self):
        self.calls = 0

    def match(self, q, c):
        self.calls += 1
        index = {d.tobytes(): i for i, d in enumerate(c.descriptors)}
        pairs = [
            (i, index[d.tobytes()]) for i, d in enumerate(q.descriptors) if d.tobytes() in index
        ]
        return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def test_the_second_tier_rescoring_is_bounded_to_the_uncertain_head(scene):
    query, cands, g = scene
    m = CountingMatcher()
    r = rerank_two_tier(query, cands, g, matcher=m, top=4, certain_inliers=30)
    # The bridge is certain already: only the other three of the head are matched.
    assert m.calls == 3
    assert r.order[0] == 3
    fast = ir.rerank(query, cands, g)
    np.testing.assert_array_equal(r.inliers[[3]], fast.inliers[[3]])
    with pytest.raises(ir.ConfigError, match="top"):
        rerank_two_tier(query, cands, g, matcher=m, top=-1)


def test_ransac_fallback_runs_only_below_its_threshold():
    """Two objects: A (40 points) with right frames, B (60 points) whose candidate frames
    are turned a quarter (a wrong orientation convention). The frame hypotheses find only
    A; only the RANSAC fallback finds B, and it runs only when the frames found fewer
    inliers than its threshold."""
    g = np.random.default_rng(7)
    a, b = _set(g, 40), _set(g, 60)
    query = _image(a, b)
    b_turned = (b[0] + np.float32([-162, 97]), b[1], b[2].copy())
    b_turned[2][:, 1] = (b_turned[2][:, 1] + 270) % 360 - 180
    cand = _image((a[0] + np.float32([12, -7]), a[1], a[2]), b_turned)
    frames_only = ir.verify_pair(query, cand).num_inliers
    assert frames_only == 40  # the fallback is off by default
    assert ir.verify_pair(query, cand, config={"use_frames": False}).num_inliers == 60
    # At or above the threshold the frame result stands; below it RANSAC finds B.
    assert ir.verify_pair(query, cand, config={"ransac_fallback_below": 40}).num_inliers == 40
    assert ir.verify_pair(query, cand, config={"ransac_fallback_below": 41}).num_inliers == 60


def test_pca_whitening_keeps_neighbours_in_a_fraction_of_the_bytes():
    from ilias_rerank.global_features import PcaWhitening

    g = np.random.default_rng(0)
    basis = g.normal(size=(20, 4096))
    db = g.normal(size=(300, 20)) @ basis + 0.05 * g.normal(size=(300, 4096))
    db = (db / np.linalg.norm(db, axis=1, keepdims=True)).astype(np.float32)
    pca = PcaWhitening(64).fit(db)
    small = pca.transform(db)
    assert small.shape == (300, 64) and np.allclose(np.linalg.norm(small, axis=1), 1, atol=1e-5)
    q = pca.transform(db[:20] + 0.01 * g.normal(size=(20, 4096)).astype(np.float32))
    assert (np.argmax(q @ small.T, axis=1) == np.arange(20)).mean() >= 0.95
    assert PcaWhitening(512).fit(db[:10]).projection.shape[1] == 9  # at most n - 1
    with pytest.raises(ir.ShapeError):
        pca.transform(np.zeros((2, 7), np.float32))


@pytest.mark.parametrize("n, dim", [(200, 32), (20, 64)])  # covariance / Gram branch
def test_pca_whitening_matches_an_svd_of_the_sample(n, dim):
    from ilias_rerank.global_features import PcaWhitening

    x = np.random.default_rng(1).normal(size=(n, dim)).astype(np.float32)
    pca = PcaWhitening(16, shrinkage=0.1).fit(x)
    xc = (x - x.mean(axis=0)).astype(np.float64)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    var = s[:16] ** 2 / n
    want = vt[:16].T / np.sqrt(var + 0.1 * var[0])
    # Principal directions are defined up to sign.
    np.testing.assert_allclose(np.abs(pca.projection), np.abs(want), rtol=1e-3, atol=1e-5)
