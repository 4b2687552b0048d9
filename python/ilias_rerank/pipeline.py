"""The whole retrieval loop on a dataset, step by step (each step is a CLI subcommand):

1. ``extract``: local features of the database and of the queries into two
   :class:`~ilias_rerank.store.FeatureStore` s under the work directory (resumable);
2. ``index``: global embeddings (``vlad``, ``vlad-pcaw`` or ``effnet``) of both, saved as
   ``global-*.npz``;
3. ``search``: the global ranking (exact inner product, top ``global_depth``), or the
   dataset's fixed shortlists, saved as ``global.json`` ``{query: {db: score}}``;
4. ``rerank``: the top ``k`` of each global ranking re-ranked by local features, the rest
   of the global ranking kept after them, saved as ``reranked.json``; what verification
   found (inliers and transforms of every candidate) in ``verification.npz``
   (:mod:`ilias_rerank.report.record`);
5. ``evaluate``: mAP (ILIAS mAP@1k definition), top-1, P@5 (and nDCG, MRR on fixed
   shortlists) before and after, plus localisation where the dataset has polygons;
6. ``show``: PNG pictures of rankings and matches; ``report``: the HTML report
   (:mod:`ilias_rerank.report`).

Re-ranking goes through :class:`~ilias_rerank.reranker.Reranker` (one loop, one set of
checks). Scores written for the re-ranked list are rank-based (distinct, strictly decreasing), so
every evaluator sees exactly the re-ranked order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_write_json, atomic_write_npz
from ._progress import progress as _progress
from .config import RerankConfig
from .datasets import Dataset
from .errors import ExtractionError, IliasRerankError, InvalidInputError
from .evaluation import ilias_map, shortlist_metrics
from .extractors import make_extractor
from .report.record import write_verification
from .reranker import Reranker, by_score, load_similarities, rank_scores, save_similarities
from .store import FeatureStore, StoreWriter

__all__ = ["DEFAULT_GLOBAL", "GLOBAL_MODELS", "Workspace"]

#: ``vlad-pcaw``: VLAD PCA-whitened on the database to 512-D (2 KB an image; measured in
#: ``benches/global_scale.py``), for databases too large for 128 KB vectors.
GLOBAL_MODELS = ("vlad", "vlad-pcaw", "effnet")
#: Chosen by measured mAP on the shared data (README, "Global embeddings"): VLAD-256 over
#: RootSIFT beat EfficientNet-Lite0 + GeM by far on both sets.
DEFAULT_GLOBAL = "vlad"
#: VLAD codebook size (mAP on SMVS + distractors: 64 words 0.51, 256 words 0.75).
VLAD_WORDS = 256


@dataclass
class Workspace:
    """Files of one pipeline run on one dataset, under ``workdir``."""

    dataset: Dataset
    workdir: Path
    num_features: int = 1024
    method: str = "sift"
    #: Extraction: backend (None: the method's default for the device), device, and worker
    #: processes (None: every core).
    backend: str | None = None
    device: str = "cpu"
    workers: int | None = None
    #: Extract in isolated worker processes instead of threads (extractors.pool).
    isolate: bool = False
    global_model: str = DEFAULT_GLOBAL
    k: int = 100
    global_depth: int = 1000
    config: RerankConfig | None = None
    progress: bool = True
    expansion: int = 0

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        if self.global_model not in GLOBAL_MODELS:
            raise InvalidInputError(
                f"global model: expected one of {GLOBAL_MODELS}, got {self.global_model!r}"
            )
        self.timing: dict[str, float] = {}
        self._stores: tuple[FeatureStore, FeatureStore] | None = None

    # 1. extract ---------------------------------------------------------------------
    @property
    def extractor(self):
        """The local feature extractor (built once per setting)."""
        return make_extractor(
            self.method, self.num_features, None, self.device, backend=self.backend
        )

    def _extract(self, images: dict[str, Any], name: str) -> FeatureStore:
        """Extract the images the store lacks through the extraction pool, committing as
        they come; images that fail (raise, give nothing, or kill their process: a journal
        beside the store makes one that killed this process fail on the next run instead
        of killing it again) are named in one :class:`ExtractionError` at the end, after
        every other image is stored."""
        from .extractors.pool import check_workers, run_images
        from .scale.journal import Journal

        path = self.workdir / name
        extractor = self.extractor
        failures: dict[int, tuple[str, str]] = {}
        with (
            StoreWriter(path, extractor.params(), layout=extractor.store_layout()) as writer,
            Journal(self.workdir / f"{name}.journal.jsonl") as journal,
        ):
            todo = []
            for i in images:
                if i in writer:
                    continue
                why = journal.failed(i)
                if why is not None:
                    failures[len(failures)] = (i, why)
                else:
                    todo.append(i)
            untried = len(failures)
            outcomes = run_images(
                extractor,
                todo,
                check_workers(self.workers),
                read=images.__getitem__,
                isolate=self.isolate,
                on_start=lambda k: journal.start(todo[k]),
                alone=lambda k: journal.suspect(todo[k]),
            )
            bar = _progress(
                outcomes,
                self.progress and len(todo) > 1,
                desc=f"extract {name}",
                unit="img",
                total=len(todo),
            )
            for index, features, failure in bar:
                stored = False
                if failure is None:
                    try:
                        writer.add(todo[index], features)
                        stored = True
                    except (IliasRerankError, ValueError) as exc:  # the store refused it
                        failure = (todo[index], f"{type(exc).__name__}: {exc}")
                if failure is not None:
                    failures[len(failures)] = (todo[index], failure[1])
                journal.end(todo[index], stored)
        if failures:
            listing = "; ".join(f"{i}: {why}" for i, why in failures.values())
            raise ExtractionError(
                f"{name}: {len(failures)} of {len(todo) + untried} images failed: {listing}",
                [],
                failures,
            )
        return FeatureStore(path)

    def extract(self) -> tuple[FeatureStore, FeatureStore]:
        """(database store, query store), extracted or resumed once per workspace."""
        if self._stores is None:
            t0 = time.perf_counter()
            db = self._extract(self.dataset.database, "database")
            queries = self._extract(self.dataset.queries, "queries")
            self.timing["extract_s"] = time.perf_counter() - t0
            self._stores = (db, queries)
        return self._stores

    # 2. index -----------------------------------------------------------------------
    def global_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(query vectors, database vectors), rows in the dataset's id order."""
        ds = self.dataset
        if ds.global_queries is not None and ds.global_database is not None:
            return ds.global_queries, ds.global_database
        name = {
            "vlad": f"vlad{VLAD_WORDS}",
            "vlad-pcaw": f"vlad{VLAD_WORDS}-pcaw512",
            "effnet": "effnet-lite0-gem",
        }[self.global_model]
        if self.method != "sift" and self.global_model != "effnet":
            name = f"{name}-{self.method}"  # VLAD over that method's descriptors
        path = self.workdir / f"global-{name}.npz"
        qids, dids = list(ds.queries), list(ds.database)
        if path.is_file():
            with np.load(path, allow_pickle=False) as z:
                if list(z["query_ids"]) == qids and list(z["db_ids"]) == dids:
                    return z["queries"], z["database"]
        t0 = time.perf_counter()
        if self.global_model in ("vlad", "vlad-pcaw"):
            from .global_features import Vlad

            db, queries = self.extract()
            from .extractors import uint8_codec

            scale, offset = uint8_codec(db.extractor)
            vlad = Vlad(VLAD_WORDS, uint8_scale=scale, uint8_offset=offset)
            vlad = vlad.fit([db[i] for i in dids])
            qv, dv = vlad.encode([queries[i] for i in qids]), vlad.encode([db[i] for i in dids])
            if self.global_model == "vlad-pcaw":
                from .global_features import PcaWhitening

                pca = PcaWhitening(512).fit(dv)
                qv, dv = pca.transform(qv), pca.transform(dv)
        else:
            from .global_features import EfficientNetLite0GeM

            model = EfficientNetLite0GeM()
            dv = model.embed([ds.database[i] for i in dids], progress=self.progress)
            qv = model.embed([ds.queries[i] for i in qids], progress=self.progress)
        self.timing["global_s"] = time.perf_counter() - t0
        atomic_write_npz(
            path, query_ids=np.array(qids), db_ids=np.array(dids), queries=qv, database=dv
        )
        return qv, dv

    # 3. search ----------------------------------------------------------------------
    def search(self) -> dict[str, dict[str, float]]:
        from .shortlist import GlobalIndex

        ds = self.dataset
        qv, dv = self.global_vectors()
        qids, dids = list(ds.queries), list(ds.database)
        t0 = time.perf_counter()
        if ds.shortlists is not None:  # fixed shortlists, ordered by global score
            pos = {d: i for i, d in enumerate(dids)}
            sims = {}
            for qi, q in enumerate(qids):
                scores = {d: float(qv[qi] @ dv[pos[d]]) for d in ds.shortlists[q]}
                sims[q] = dict(sorted(scores.items(), key=lambda kv: -kv[1]))
        else:
            index = GlobalIndex(dv)
            found = index.search(qv, self.global_depth, expansion=self.expansion)
            sims = {
                q: {dids[j]: float(s) for j, s in zip(idx, sc, strict=True)}
                for q, idx, sc in zip(qids, found.indices, found.scores, strict=True)
            }
        self.timing["search_s"] = time.perf_counter() - t0
        save_similarities(self.workdir / "global.json", sims)
        return sims

    # 4. rerank ----------------------------------------------------------------------
    def rerank(self, global_sims: dict[str, dict[str, float]] | None = None):
        """Returns (re-ranked similarities, per-query verification details)."""
        if global_sims is None:
            global_sims = load_similarities(self.workdir / "global.json")
        db, queries = self.extract()
        # The head by score, not by the mapping's order (the shortlist job does the same).
        ranked = {q: by_score(ranking) for q, ranking in global_sims.items()}
        heads = {q: {d: global_sims[q][d] for d in r[: self.k]} for q, r in ranked.items()}
        t0 = time.perf_counter()
        found = Reranker(db, self.config).rerank_results(
            queries, heads, progress=self.progress and len(heads) > 1
        )
        dt = time.perf_counter() - t0
        reranked, details = {}, {}
        for q, (ids, result) in found.items():
            reranked[q] = rank_scores(result.ranked_ids(ids) + ranked[q][self.k :])
            details[q] = {
                d: (int(result.inliers[j]), result.transforms[j]) for j, d in enumerate(ids)
            }
        pairs = sum(len(ids) for ids, _ in found.values())
        self.timing["rerank_s"] = dt
        self.timing["rerank_pairs_per_s"] = pairs / dt if dt else 0.0
        save_similarities(self.workdir / "reranked.json", reranked)
        write_verification(self.workdir / "verification.npz", details)
        return reranked, details

    # 5. evaluate --------------------------------------------------------------------
    def evaluate(self, sims: dict[str, dict[str, float]]) -> dict[str, float]:
        ds = self.dataset
        ev = ilias_map(sims, ds.positives, k=1000)
        out: dict[str, float] = {"map": ev.map}
        per_query = []
        for q, ranking in sims.items():
            ids = list(ranking)
            labels = [int(d in ds.positives.get(q, ())) for d in ids]
            scores = [ranking[d] for d in ids]
            per_query.append(shortlist_metrics(labels, scores, ks=(5,)))
        for key in ("top1", "p@5", "ndcg", "mrr"):
            out[key] = float(np.mean([m[key] for m in per_query]))
        out["queries_evaluated"] = ev.queries_evaluated
        return out

    def localisation(
        self, details: dict, iou_threshold: float = 0.3, min_inliers: int | None = None
    ) -> dict[str, float] | None:
        """Share of verified positives whose projected query outline overlaps the
        ground-truth polygon with IoU >= ``iou_threshold`` (datasets with polygons).
        A positive verifies with ``min_inliers`` inliers (default: the re-ranking's)."""
        from .images import load_image
        from .pictures import polygon_iou

        ds = self.dataset
        if not ds.polygons:
            return None
        db, queries = self.extract()

        def width_height(store: FeatureStore, image_id: str, source: Any) -> tuple[int, int]:
            size = store[image_id].image_size  # recorded at extraction: no decoding
            return (size[1], size[0]) if size else load_image(source).size

        if min_inliers is None:
            min_inliers = (self.config or RerankConfig()).min_inliers
        ious = []
        for (q, d), polygon in ds.polygons.items():
            inliers, transform = details.get(q, {}).get(d, (0, None))
            if transform is None or inliers < min_inliers or not np.isfinite(transform).all():
                continue
            qw, qh = width_height(queries, q, ds.queries[q])
            corners = np.array([[0, 0], [qw, 0], [qw, qh], [0, qh]], dtype=np.float64)
            p = np.c_[corners, np.ones(4)] @ np.asarray(transform).T
            projected = p[:, :2] / p[:, 2:3]
            ious.append(polygon_iou(projected, polygon, width_height(db, d, ds.database[d])))
        if not ious:
            return {"min_inliers": min_inliers, "verified_positives": 0, "iou_ge_threshold": 0.0}
        ious = np.array(ious)
        return {
            "min_inliers": min_inliers,
            "verified_positives": len(ious),
            "positives_with_polygon": len(ds.polygons),
            "iou_ge_threshold": float((ious >= iou_threshold).mean()),
            "median_iou": float(np.median(ious)),
        }

    def report(self, global_sims, reranked, details) -> dict[str, Any]:
        report = {
            "dataset": self.dataset.name,
            "global_model": self.global_model,
            "k": self.k,
            "global": self.evaluate(global_sims),
            "reranked": self.evaluate(reranked),
            "timing": self.timing,
        }
        report["queries_evaluated"] = report["reranked"].pop("queries_evaluated")
        report["global"].pop("queries_evaluated")
        loc = self.localisation(details)
        if loc is not None:
            # Also with one inlier more than a homography's minimal sample of 4.
            report["localisation"] = loc
            report["localisation_5_inliers"] = self.localisation(details, min_inliers=5)
        atomic_write_json(self.workdir / "report.json", report)
        return report
