"""Batch re-ranking against a :class:`~ilias_rerank.store.FeatureStore`, and the result
files in ILIAS's layouts.

``Reranker(store, config).rerank_many(queries, shortlists)`` re-ranks every query's
shortlist (queries in parallel, each shortlist in parallel in the core, the GIL released)
and returns ``{query_id: {db_id: score}}`` in re-ranked order, scores strictly decreasing.

Result files: JSON ``{query_id: {db_id: score}}`` (:func:`save_similarities`, the default
and safe to read), ``.npz`` with ILIAS's pickle keys ``query_ids, db_ids, sims, ranks``
(safe: loaded without pickle), and ILIAS's ``.pkl`` itself. Loading a pickle can run
arbitrary code, so :func:`load_similarities` refuses ``.pkl`` unless ``trust_pickle=True``:
only pass it for files you made.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_write, atomic_write_json, atomic_write_npz
from ._progress import progress as progress_bar
from .api import rerank
from .config import RerankConfig
from .errors import FormatError, MissingIdError, ShapeError
from .features import LocalFeatures
from .results import RerankResult
from .store import FeatureStore

__all__ = ["Reranker", "load_similarities", "save_similarities"]

Similarities = dict[str, dict[str, float]]


def _as_ranked_ids(shortlist: Any) -> tuple[list[str], np.ndarray | None]:
    if isinstance(shortlist, Mapping):
        ids = list(shortlist.keys())
        scores = np.array([shortlist[i] for i in ids], dtype=np.float32)
        order = np.argsort(-scores, kind="stable")
        return [ids[i] for i in order], scores[order]
    return list(shortlist), None


class Reranker:
    """Re-rank shortlists of a store's images, query after query.

    Parameters
    ----------
    store : FeatureStore or mapping
        A :class:`FeatureStore`, or any mapping of id -> :class:`LocalFeatures`.
    config : RerankConfig, mapping or None
        The settings of every re-ranking (``None``: the defaults).
    workers : int
        Queries run at once (default 2; each also uses every core of the Rust pool over
        its shortlist).

    Raises
    ------
    MissingIdError
        (from :meth:`rerank_many`) a shortlist id that is not in the store.
    ShapeError
        (from :meth:`rerank_many`) a shortlist that repeats an id.
    """

    def __init__(
        self,
        store: FeatureStore,
        config: RerankConfig | Mapping | None = None,
        *,
        workers: int = 2,
    ) -> None:
        self.store = store
        self.config = config
        self.workers = max(1, workers)

    def _checked(self, shortlist: Any, place: str) -> tuple[list[str], np.ndarray | None]:
        """The shortlist's ids (best first) and scores, every id in the store, no repeats."""
        ids, scores = _as_ranked_ids(shortlist)
        missing = [i for i in ids if i not in self.store]
        if missing:
            raise MissingIdError(
                f"{place}{len(missing)} shortlist ids are not in the store "
                f"{getattr(self.store, 'path', '(a mapping)')}: "
                f"{missing[:5]}{'...' if len(missing) > 5 else ''}"
            )
        if len(set(ids)) != len(ids):
            raise ShapeError(f"{place}shortlist: duplicate ids")
        return ids, scores

    def _rerank_ids(
        self, query: LocalFeatures, ids: list[str], scores: np.ndarray | None
    ) -> RerankResult:
        return rerank(query, [self.store[i] for i in ids], scores, config=self.config)

    def rerank_one(self, query: LocalFeatures, shortlist: Any) -> dict[str, float]:
        """One query: ``shortlist`` is ``{db_id: global score}`` or a ranked list of ids."""
        ids, scores = self._checked(shortlist, "")
        return _as_similarities(ids, self._rerank_ids(query, ids, scores))

    def rerank_results(
        self,
        queries: Mapping[str, LocalFeatures],
        shortlists: Mapping[str, Any],
        *,
        progress: bool | None = None,
    ) -> dict[str, tuple[list[str], RerankResult]]:
        """Every query of ``shortlists`` (each must be in ``queries``), in its order:
        ``{query: (shortlist ids best first, RerankResult over them)}`` (the result's
        per-candidate fields follow the ids)."""
        absent = [q for q in shortlists if q not in queries]
        if absent:
            raise MissingIdError(f"shortlists for queries without features: {absent[:5]}")
        # Check every shortlist before any work, so that a bad one fails fast.
        checked = {q: self._checked(shortlists[q], f"query {q!r}: ") for q in shortlists}
        if progress is None and len(checked) <= 1:
            progress = False
        with ThreadPoolExecutor(self.workers) as pool:
            results = pool.map(lambda q: self._rerank_ids(queries[q], *checked[q]), checked)
            results = progress_bar(
                results, progress, total=len(checked), desc="re-ranking", unit="query"
            )
            return {q: (checked[q][0], r) for q, r in zip(checked, results, strict=True)}

    def rerank_many(
        self,
        queries: Mapping[str, LocalFeatures],
        shortlists: Mapping[str, Any],
        *,
        progress: bool | None = None,
    ) -> Similarities:
        """Every query of ``shortlists`` (each must be in ``queries``), in its order:
        ``{query: {db_id: fused score}}`` best first, scores strictly decreasing."""
        found = self.rerank_results(queries, shortlists, progress=progress)
        return {q: _as_similarities(ids, r) for q, (ids, r) in found.items()}


def _as_similarities(ids: list[str], result: RerankResult) -> dict[str, float]:
    return {ids[j]: float(s) for j, s in zip(result.order, result.scores, strict=True)}


def _ilias_arrays(sims: Similarities) -> dict[str, np.ndarray]:
    lengths = {len(v) for v in sims.values()}
    if len(lengths) > 1:
        raise ShapeError(
            f"ILIAS arrays need the same shortlist length for every query, got {sorted(lengths)}"
        )
    db_ids = sorted({d for v in sims.values() for d in v})
    position = {d: i for i, d in enumerate(db_ids)}
    query_ids = list(sims)
    k = lengths.pop() if lengths else 0
    ranks = np.zeros((len(query_ids), k), dtype=np.int64)
    scores = np.zeros((len(query_ids), k), dtype=np.float32)
    for row, q in enumerate(query_ids):
        for col, (d, s) in enumerate(sims[q].items()):
            ranks[row, col] = position[d]
            scores[row, col] = s
    return {
        "query_ids": np.array(query_ids),
        "db_ids": np.array(db_ids),
        "sims": scores,
        "ranks": ranks,
    }


def save_similarities(path: str | os.PathLike, sims: Similarities) -> Path:
    """Write ``sims`` atomically as ``.json`` (default), ``.npz`` or ILIAS ``.pkl``."""
    path = Path(path)
    if path.suffix == ".json":
        atomic_write_json(path, sims, indent=None)
    elif path.suffix == ".npz":
        atomic_write_npz(path, **_ilias_arrays(sims))
    elif path.suffix in (".pkl", ".pickle"):
        arrays = _ilias_arrays(sims)
        arrays["query_ids"] = arrays["query_ids"].tolist()
        arrays["db_ids"] = arrays["db_ids"].tolist()
        atomic_write(path, pickle.dumps(arrays))
    else:
        raise ValueError(f"{path}: expected a .json, .npz or .pkl file name")
    return path


def by_score(shortlist: Mapping[str, float]) -> list[str]:
    """The ids of ``shortlist`` by descending score (ties keep the mapping's order): the
    global ranking whose head is re-ranked and whose tail is kept, by the pipeline and by
    the shortlist job alike."""
    return sorted(shortlist, key=lambda d: -shortlist[d])


def rank_scores(order: list[str]) -> dict[str, float]:
    """Distinct, strictly decreasing scores ``(n - rank) / n`` for ids best first: what the
    pipeline and the shortlist job write, so that every evaluator sees exactly ``order``."""
    n = len(order)
    return {d: (n - r) / n for r, d in enumerate(order)}


def _score(value, path: Path, q: str, d: str) -> float:
    """A JSON score as a float: a number that fits one (not null, a string, a bool or a
    400-digit int)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FormatError(
            f"{path}: query {q!r}, candidate {d!r}: expected a number, got {value!r:.40}"
        )
    try:
        return float(value)
    except OverflowError:
        raise FormatError(
            f"{path}: query {q!r}, candidate {d!r}: expected a number that fits a float, "
            f"got an int of {len(str(abs(value)))} digits"
        ) from None


def _from_arrays(query_ids, db_ids, sims, ranks, source: Path) -> Similarities:
    query_ids, db_ids = np.asarray(query_ids), np.asarray(db_ids)
    for name, ids in (("query_ids", query_ids), ("db_ids", db_ids)):
        if ids.ndim != 1:
            raise FormatError(
                f"{source}: {name}: expected a 1-d array of ids, got shape {ids.shape}"
            )
    sims, ranks = np.asarray(sims), np.asarray(ranks)
    if sims.shape != ranks.shape or sims.ndim != 2 or len(sims) != len(query_ids):
        raise FormatError(f"{source}: sims {sims.shape} and ranks {ranks.shape} do not match")
    db_ids = list(db_ids)
    if ranks.size and (ranks.min() < 0 or ranks.max() >= len(db_ids)):
        raise FormatError(f"{source}: ranks outside db_ids")
    return {
        str(q): {str(db_ids[r]): float(s) for r, s in zip(rr, ss, strict=True)}
        for q, rr, ss in zip(query_ids, ranks, sims, strict=True)
    }


def load_similarities(path: str | os.PathLike, *, trust_pickle: bool = False) -> Similarities:
    """Read a similarity file written by :func:`save_similarities` or by ILIAS tools.
    Pickles are refused unless ``trust_pickle=True`` (loading one can run code)."""
    path = Path(path)
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
                raise FormatError(f"{path}: expected {{query_id: {{db_id: score}}}}")
            return {q: {d: _score(s, path, q, d) for d, s in v.items()} for q, v in data.items()}
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return _from_arrays(z["query_ids"], z["db_ids"], z["sims"], z["ranks"], path)
        if path.suffix in (".pkl", ".pickle"):
            if not trust_pickle:
                raise FormatError(
                    f"{path}: refusing to unpickle (it can run arbitrary code); pass "
                    "trust_pickle=True only for files you made, or use .json / .npz"
                )
            with open(path, "rb") as fh:
                d = pickle.load(fh)  # explicitly trusted by the caller
            return _from_arrays(d["query_ids"], d["db_ids"], d["sims"], d["ranks"], path)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, ValueError, OSError) as exc:
        if isinstance(exc, FormatError):
            raise
        raise FormatError(f"{path}: unreadable similarity file ({exc})") from None
    raise ValueError(f"{path}: expected a .json, .npz or .pkl file")
