"""The re-ranking API: :func:`rerank`, :func:`verify_pair`, :func:`verify_correspondences`.

All the work runs in the Rust core with the GIL released. Inputs must not be mutated by
another thread while a call is running (the core reads them in place).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import _core
from .config import RerankConfig
from .errors import ConfigError, DTypeError, ShapeError
from .features import LocalFeatures, as_numpy, c_array, check_frames, real_float32
from .results import PairVerification, RerankResult

__all__ = [
    "frame_hypotheses",
    "rerank",
    "rerank_consensus",
    "verify_correspondences",
    "verify_pair",
]

_DEFAULT = RerankConfig()


def _features(value: Any, what: str) -> LocalFeatures:
    if isinstance(value, LocalFeatures) or type(value).__name__ == "QuantisedFeatures":
        return value
    if isinstance(value, Mapping):
        return LocalFeatures(**value)
    if isinstance(value, tuple) and 2 <= len(value) <= 4:
        return LocalFeatures(*value)
    raise DTypeError(
        f"{what}: expected LocalFeatures (or a dict / tuple of its fields), "
        f"got {type(value).__name__}"
    )


def _config(config: RerankConfig | Mapping | None) -> dict:
    if config is None:
        return _DEFAULT.to_dict()
    if isinstance(config, RerankConfig):
        return config.to_dict()
    if isinstance(config, Mapping):
        return RerankConfig(**config).to_dict()
    raise DTypeError(f"config: expected RerankConfig, dict or None, got {type(config).__name__}")


def rerank(
    query: LocalFeatures,
    candidates: Sequence[LocalFeatures],
    global_scores: Any = None,
    *,
    config: RerankConfig | Mapping | None = None,
) -> RerankResult:
    """Re-rank a shortlist by local-feature matching and spatial verification.

    Candidates with no or too few matches get zero inliers (no error). Inputs are read in
    place with the GIL released: do not mutate them from another thread during the call.

    Parameters
    ----------
    query : LocalFeatures
        The query image's features.
    candidates : sequence of LocalFeatures
        The shortlist (M images, best first).
    global_scores : array_like or None
        ``(M,)`` first-stage scores (higher is better), or ``None`` (the input order breaks
        ties).
    config : RerankConfig, mapping or None
        Settings (a mapping is passed to ``RerankConfig(**config)``); ``None``: the defaults.

    Returns
    -------
    RerankResult
        The new order, strictly decreasing fused scores, and per candidate its inliers,
        matches, transform and model.

    Raises
    ------
    InvalidInputError
        An array of the wrong shape (``ShapeError``), dtype (``DTypeError``), descriptor
        dimension (``DimensionMismatchError``) or with NaN / infinity (``NonFiniteError``);
        all are ``ValueError`` subclasses that name the offending input and row.
    ConfigError
        A setting out of range.
    ResourceLimitError
        More keypoints, dimensions or candidates than the limits, or no worker pool.
    """
    q = _features(query, "query")
    cands = [_features(c, f"candidate {j}") for j, c in enumerate(candidates)]
    out = _core.rerank(q, cands, _global_scores(global_scores), _config(config))
    return _result(out)


def rerank_consensus(
    candidates: Sequence[LocalFeatures],
    global_scores: Any = None,
    *,
    config: RerankConfig | Mapping | None = None,
    pseudo_queries: int = 5,
) -> RerankResult:
    """Re-rank a shortlist that has no query image (a text query, as in ILIAS
    text-to-image or INQUIRE-Rerank) by verifying its candidates among themselves.

    The first ``pseudo_queries`` candidates of the global ranking (by ``global_scores``,
    else the input order) act as queries; each candidate's verified score is the inliers
    it verifies with them (each term counted from ``min_inliers``; a pseudo-query is scored
    by the others), fused with the global score as in :func:`rerank`. Cost: at most
    ``pseudo_queries`` x M pairs.

    Parameters
    ----------
    candidates : sequence of LocalFeatures
        The shortlist (M images).
    global_scores : array_like or None
        ``(M,)`` first-stage scores (higher is better), or ``None`` (the input order).
    config : RerankConfig, mapping or None
        Settings (a mapping is passed to ``RerankConfig(**config)``); ``None``: the defaults.
    pseudo_queries : int
        How many of the top candidates act as queries, 1 to 64.

    Returns
    -------
    RerankResult
        ``expansion`` lists the pseudo-queries, ``support`` the verified score of each
        candidate.

    Raises
    ------
    InvalidInputError
        An array of the wrong shape (``ShapeError``), dtype (``DTypeError``), descriptor
        dimension (``DimensionMismatchError``) or with NaN / infinity (``NonFiniteError``);
        all are ``ValueError`` subclasses that name the offending input and row.
    ConfigError
        A setting out of range.
    ResourceLimitError
        More keypoints, dimensions or candidates than the limits, or no worker pool.
    """
    cands = [_features(c, f"candidate {j}") for j, c in enumerate(candidates)]
    if not isinstance(pseudo_queries, int) or isinstance(pseudo_queries, bool):
        raise ConfigError(f"pseudo_queries: expected an int in 1..=64, got {pseudo_queries!r}")
    if not 1 <= pseudo_queries <= 64:
        raise ConfigError(f"pseudo_queries: expected an int in 1..=64, got {pseudo_queries}")
    out = _core.rerank_consensus(
        cands, _global_scores(global_scores), pseudo_queries, _config(config)
    )
    return _result(out)


def _global_scores(global_scores: Any) -> np.ndarray | None:
    if global_scores is None:
        return None
    g = as_numpy(global_scores, "global_scores")
    if g.ndim != 1:
        raise ShapeError(f"global_scores: expected (M,) float32, got {tuple(g.shape)} {g.dtype}")
    if g.dtype.kind not in "fiu":
        raise DTypeError(f"global_scores: expected (M,) float32, got {g.dtype}")
    return c_array(g, np.float32)


def _result(out: dict) -> RerankResult:
    return RerankResult(
        order=out["order"],
        scores=out["scores"],
        inliers=out["inliers"],
        num_matches=out["num_matches"],
        transforms=out["transforms"],
        models=tuple(out["models"]),
        support=out["support"],
        expansion=out["expansion"],
        refined=out["refined"],
    )


def verify_pair(
    query: LocalFeatures,
    candidate: LocalFeatures,
    *,
    config: RerankConfig | Mapping | None = None,
) -> PairVerification:
    """Match and spatially verify one pair; the transform maps query to candidate pixels.

    Parameters
    ----------
    query : LocalFeatures
        The query image's features.
    candidate : LocalFeatures
        The candidate image's features.
    config : RerankConfig, mapping or None
        Settings (a mapping is passed to ``RerankConfig(**config)``); ``None``: the defaults.

    Returns
    -------
    PairVerification
        The tentative matches, their distances, the inlier mask, the query -> candidate
        transform (``None`` when nothing verified), the model and the inlier count.

    Raises
    ------
    InvalidInputError
        An array of the wrong shape (``ShapeError``), dtype (``DTypeError``), descriptor
        dimension (``DimensionMismatchError``) or with NaN / infinity (``NonFiniteError``);
        all are ``ValueError`` subclasses that name the offending input and row.
    ConfigError
        A setting out of range.
    ResourceLimitError
        More keypoints, dimensions or candidates than the limits, or no worker pool.
    """
    out = _core.verify_pair(
        _features(query, "query"), _features(candidate, "candidate"), _config(config)
    )
    return PairVerification(
        matches=out["matches"],
        distances=out["distances"],
        inlier_mask=out["inlier_mask"],
        transform=out["transform"],
        model=out["model"],
        num_inliers=int(out["num_inliers"]),
    )


def _points(value: Any, what: str) -> np.ndarray:
    arr = as_numpy(value, what)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ShapeError(f"{what}: expected (K, 2) float32, got {tuple(arr.shape)} {arr.dtype}")
    return real_float32(arr, what, "(K, 2) float32")


def _frames(value: Any, n: int, what: str) -> np.ndarray | None:
    if value is None:
        return None
    fr = check_frames(value, n, what)
    return fr.reshape(n, 6) if fr.ndim == 3 else fr


def _size(size: Any) -> tuple[int, int] | None:
    """``(height, width)`` of positive ints, or None."""
    if size is None:
        return None
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ShapeError(f"candidate_size: expected (height, width), got {size!r}") from None
    if not (0 < h < 2**32 and 0 < w < 2**32):
        raise ShapeError(f"candidate_size: expected (height, width) both > 0, got {(h, w)}")
    return h, w


def _given(query_points, candidate_points, query_frames, candidate_frames) -> tuple:
    """Checked arrays of given correspondences: points of both sides and their frames."""
    if (query_frames is None) != (candidate_frames is None):
        raise ShapeError(
            "frames: expected frames for both sides or for neither, got "
            f"{'query' if candidate_frames is None else 'candidate'} frames only"
        )
    qp = _points(query_points, "query_points")
    cp = _points(candidate_points, "candidate_points")
    return (
        qp,
        cp,
        _frames(query_frames, len(qp), "query_frames"),
        _frames(candidate_frames, len(qp), "candidate_frames"),
    )


def verify_correspondences(
    query_points: Any,
    candidate_points: Any,
    *,
    query_frames: Any = None,
    candidate_frames: Any = None,
    candidate_size: tuple[int, int] | None = None,
    config: RerankConfig | Mapping | None = None,
) -> PairVerification:
    """Verify given tentative correspondences (row i of both point arrays is one pair).

    With frames on both sides the hypotheses come from them; otherwise seeded LO-RANSAC.

    Parameters
    ----------
    query_points : array_like
        ``(K, 2)`` float32 pixel ``x, y`` in the query image (row i of both point arrays
        is one correspondence).
    candidate_points : array_like
        ``(K, 2)`` float32 pixel ``x, y`` in the candidate image.
    query_frames, candidate_frames : array_like or None
        ``(K, 2)`` ``(scale, orientation in degrees)`` or ``(K, 2, 3)`` kornia LAFs, on
        both sides or on neither.
    candidate_size : (int, int) or None
        ``(height, width)`` of the candidate image: scales the inlier threshold as in
        :func:`rerank`.
    config : RerankConfig, mapping or None
        Settings (a mapping is passed to ``RerankConfig(**config)``); ``None``: the defaults.

    Returns
    -------
    PairVerification
        ``matches`` are the rows ``[i, i]``, ``distances`` zeros; the inlier mask, the
        transform (``None`` when nothing verified), the model and the inlier count.

    Raises
    ------
    ShapeError
        Point arrays that are not ``(K, 2)`` or differ in K, more than 32768
        correspondences (every one's hypothesis is scored against all: O(K²) work), frames
        on one side only, or a ``candidate_size`` that is not two positive ints.
    InvalidInputError
        Another invalid array (dtype, NaN / infinity).
    ConfigError
        A setting out of range.
    """
    given = _given(query_points, candidate_points, query_frames, candidate_frames)
    out = _core.verify_correspondences(*given, _size(candidate_size), _config(config))
    k = given[0].shape[0]
    return PairVerification(
        matches=np.stack([np.arange(k), np.arange(k)], axis=1).astype(np.int64),
        distances=np.zeros(k, dtype=np.float32),
        inlier_mask=out["inlier_mask"],
        transform=out["transform"],
        model=out["model"],
        num_inliers=int(out["num_inliers"]),
    )


def frame_hypotheses(
    query_points: Any,
    candidate_points: Any,
    query_frames: Any,
    candidate_frames: Any,
    *,
    candidate_size: tuple[int, int] | None = None,
    config: RerankConfig | Mapping | None = None,
) -> np.ndarray:
    """Support of each correspondence's own frame hypothesis, before any refinement.

    Use it to check a frame convention: on a true pair, frames in the convention of the
    data contract give hypotheses that many correspondences support; orientations that
    turn the other way give hypotheses that almost none do.

    Parameters
    ----------
    query_points : array_like
        ``(K, 2)`` float32 pixel ``x, y`` in the query image (row i of both point arrays
        is one correspondence).
    candidate_points : array_like
        ``(K, 2)`` float32 pixel ``x, y`` in the candidate image.
    query_frames, candidate_frames : array_like
        ``(K, 2)`` ``(scale, orientation in degrees)`` or ``(K, 2, 3)`` kornia LAFs.
    candidate_size : (int, int) or None
        ``(height, width)`` of the candidate image: scales the inlier threshold.
    config : RerankConfig, mapping or None
        Settings (a mapping is passed to ``RerankConfig(**config)``); ``None``: the defaults.

    Returns
    -------
    numpy.ndarray
        ``(K,)`` int64: how many of the K correspondences the affine map proposed by row
        ``i``'s two frames brings within twice the inlier threshold (0 when its frames give
        no plausible map).

    Raises
    ------
    ShapeError
        Point arrays that are not ``(K, 2)`` or differ in K, more than 32768
        correspondences (every one's hypothesis is scored against all: O(K²) work), frames
        on one side only, or a ``candidate_size`` that is not two positive ints.
    InvalidInputError
        Another invalid array (dtype, NaN / infinity).
    ConfigError
        A setting out of range.
    """
    given = _given(query_points, candidate_points, query_frames, candidate_frames)
    support = _core.frame_hypothesis_support(*given, _size(candidate_size), _config(config))
    return support.astype(np.int64)
