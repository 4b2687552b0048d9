"""Dataset adapters: where the queries and database images are, and what is relevant.

- ``demo``: embedded, needs nothing on disk or network: the photos shipped inside
  scikit-image and a scrambled copy of each as the database; queries are the photos as
  small, turned, relit, partly occluded objects over clutter cut from other photos;
- ``smvs``: the SMVS layout (``Reference/NNN.jpg`` database, a phone folder such as ``E63/``
  of queries, same number = same object), optionally with distractor images;
- ``roxford-subset``: the ``roxford_rparis_pixel_subset`` layout (``<qid>/query.jpg``,
  ``<qid>/TP|FP/*.jpg`` with LabelMe polygons, ``gt.tsv``): its fixed 20-image shortlists
  and its TP polygons for localisation;
- ``pairs``: image pairs ``<name>A`` / ``<name>B`` (the ``homogr_evd`` layout), each A a
  query whose relevant image is its B;
- ``folder``: any folder of images with a ground-truth TSV (``query``, ``image``,
  ``positive`` columns, paths relative to the folder);
- ``ilias``: the ILIAS layout (``image_ids/*.txt``) with global features from HDF5
  (``features`` + ``index`` datasets).

Every adapter checks that the files it lists exist, and refuses an empty dataset and
duplicate ids, naming what is wrong.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ImageReadError, InvalidInputError

__all__ = ["DATASETS", "Dataset", "load_dataset"]


@dataclass
class Dataset:
    """``queries`` / ``database``: id -> image (a path, or an array for the demo);
    ``positives``: query id -> relevant database ids; ``shortlists``: fixed shortlists
    (query id -> database ids) where the protocol has them; ``polygons``: (query id,
    database id) -> (P, 2) outline of the query object in that image."""

    name: str
    queries: dict[str, Any]
    database: dict[str, Any]
    positives: dict[str, set[str]]
    shortlists: dict[str, list[str]] | None = None
    polygons: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    global_queries: np.ndarray | None = None
    global_database: np.ndarray | None = None

    def check(self) -> Dataset:
        if not self.queries or not self.database:
            raise InvalidInputError(
                f"dataset {self.name}: expected queries and database images, got "
                f"{len(self.queries)} queries and {len(self.database)} database images"
            )
        for kind, items in (("query", self.queries), ("database image", self.database)):
            for image_id, source in items.items():
                if isinstance(source, Path) and not source.is_file():
                    raise ImageReadError(
                        f"dataset {self.name}: {kind} {image_id!r}: no file {source}"
                    )
        unknown = {d for ps in self.positives.values() for d in ps} - set(self.database)
        if unknown:
            raise InvalidInputError(
                f"dataset {self.name}: positives not in the database: {sorted(unknown)[:5]}"
            )
        return self


def _unique(pairs: Iterable[tuple[str, Any]], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidInputError(f"duplicate {what} id {key!r}")
        out[key] = value
    return out


def demo(views: int = 3, seed: int = 0) -> Dataset:
    """The embedded demo (:mod:`ilias_rerank.demo`): every photo and a scrambled copy of it
    (a distractor) as the database; per photo ``views`` queries (at most
    ``len(demo.VIEWS)``), each the photo as a small, turned, relit, partly occluded object
    over clutter cut from three other photos; the photo is its queries' one positive."""
    from .demo import VIEWS, hard_shot, load_photos, scrambled

    if not 1 <= views <= len(VIEWS):
        raise InvalidInputError(f"demo views: expected 1 to {len(VIEWS)}, got {views}")
    rng = np.random.default_rng(seed)
    photos = load_photos()
    names = list(photos)
    database = dict(photos)
    for name in names:
        database[f"scrambled/{name}"] = scrambled(photos[name], rng)
    queries, positives = {}, {}
    for name in names:
        others = [photos[o] for o in names if o != name]
        for v in range(views):
            area, occlusion = VIEWS[v]
            pick = [others[i] for i in rng.choice(len(others), 3, replace=False)]
            qid = f"{name}/view{v}"
            queries[qid] = hard_shot(photos[name], pick, rng, area=area, occlusion=occlusion)
            positives[qid] = {name}
    return Dataset("demo", queries, database, positives).check()


def smvs(root: Path, phone: str = "E63", distractors: Iterable[Path] = ()) -> Dataset:
    root = Path(root)
    refs = sorted((root / "Reference").glob("*.jpg"))
    shots = sorted((root / phone).glob("*.jpg"))
    if not refs or not shots:
        raise ImageReadError(f"{root}: expected Reference/*.jpg and {phone}/*.jpg (SMVS layout)")
    database = _unique(((f"Reference/{p.stem}", p) for p in refs), "database")
    # Distractor ids keep three path levels (e.g. ``o15/FP/x.jpg``): the same file name
    # may sit in several folders.
    extra = _unique(
        ((f"distractor/{'/'.join(Path(p).parts[-3:])}", Path(p)) for p in distractors),
        "distractor",
    )
    database.update(extra)
    queries = _unique(((f"{phone}/{p.stem}", p) for p in shots), "query")
    positives = {q: {f"Reference/{q.split('/')[1]}"} & set(database) for q in queries}
    return Dataset(f"smvs/{phone}", queries, database, positives).check()


def pairs(root: Path) -> Dataset:
    """Image pairs ``<name>A.<ext>`` / ``<name>B.<ext>`` (the ``homogr_evd`` layout): each A
    is a query whose one relevant database image is its B."""
    root = Path(root)
    firsts = sorted(
        p
        for p in root.iterdir()
        if p.stem.endswith("A") and p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )
    queries, database, positives = {}, {}, {}
    for a in firsts:
        name = a.stem[:-1]
        b = [p for p in root.glob(f"{name}B.*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
        if len(b) != 1:
            raise ImageReadError(f"{root}: expected one {name}B image for {a.name}, got {len(b)}")
        queries[name] = a
        database[name] = b[0]
        positives[name] = {name}
    return Dataset(f"pairs/{root.name}", queries, database, positives).check()


def _labelme_polygon(path: Path) -> np.ndarray | None:
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    for shape in data.get("shapes", []):
        if str(shape.get("label", "")).lower() == "q":  # some files say "Q"
            return np.asarray(shape["points"], dtype=np.float64)
    return None


def roxford_subset(root: Path) -> Dataset:
    root = Path(root)
    gt = root / "gt.tsv"
    if not gt.is_file():
        raise ImageReadError(f"{root}: expected gt.tsv (roxford_rparis_pixel_subset layout)")
    queries, database, positives = {}, {}, defaultdict(set)
    shortlists: dict[str, list[str]] = defaultdict(list)
    polygons = {}
    with open(gt, encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            qid, image = row["query_id"], row["image_path"]
            queries[qid] = root / qid / "query.jpg"
            database[image] = root / image
            shortlists[qid].append(image)
            if row["positive"] == "1":
                positives[qid].add(image)
                poly = _labelme_polygon((root / image).with_suffix(".json"))
                if poly is not None:
                    polygons[(qid, image)] = poly
    return Dataset(
        "roxford-subset", queries, database, dict(positives), dict(shortlists), polygons
    ).check()


def folder(root: Path, gt_tsv: Path | None = None) -> Dataset:
    root = Path(root)
    gt = Path(gt_tsv) if gt_tsv else root / "gt.tsv"
    if not gt.is_file():
        raise ImageReadError(f"{gt}: no ground-truth TSV (columns: query, image, positive)")
    queries, database, positives = {}, {}, defaultdict(set)
    with open(gt, encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        if not {"query", "image", "positive"} <= set(reader.fieldnames or ()):
            raise InvalidInputError(
                f"{gt}: expected columns query, image, positive; got {reader.fieldnames}"
            )
        for row in reader:
            queries[row["query"]] = root / row["query"]
            database[row["image"]] = root / row["image"]
            positives.setdefault(row["query"], set())  # ground truth even without a positive
            if row["positive"].strip() in ("1", "true", "yes"):
                positives[row["query"]].add(row["image"])
    return Dataset(f"folder/{root.name}", queries, database, dict(positives)).check()


def _global_features(path: Path, what: str) -> tuple[list[str], np.ndarray]:
    from .errors import NonFiniteError
    from .hdf5 import read_global_features

    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"ilias: {what} features: no such file {path}")
    ids, feats = read_global_features(path)
    if not len(ids):
        raise InvalidInputError(f"ilias: {what} features {path}: no vectors")
    bad = np.nonzero(~np.isfinite(feats).all(axis=1))[0]
    if len(bad):
        raise NonFiniteError(
            f"ilias: {what} features {path}: NaN or infinity in the vector of {ids[bad[0]]!r} "
            f"(and {len(bad) - 1} more)"
        )
    return ids, feats


def ilias(root: Path, query_features: Path, database_features: Path) -> Dataset:
    """ILIAS ids (``image_ids/positive_ids.txt``) and global features from HDF5 (``features``
    + ``index``); an id's image is ``root/<id>`` when that file exists (for re-ranking).
    Checked: both feature files exist, are non-empty, finite and of one dimension, ids are
    unique, and the positives list is there and not empty."""
    from .errors import DimensionMismatchError
    from .evaluation import ilias_instance

    root = Path(root)
    if query_features is None or database_features is None:
        raise InvalidInputError("ilias: needs --query-features and --db-features (HDF5)")
    qids, qf = _global_features(query_features, "query")
    dids, df = _global_features(database_features, "database")
    if qf.shape[1] != df.shape[1]:
        raise DimensionMismatchError(
            f"ilias: query features have dimension {qf.shape[1]}, database features {df.shape[1]}"
        )
    positive_file = root / "image_ids" / "positive_ids.txt"
    if not positive_file.is_file():
        raise ImageReadError(f"{root}: expected image_ids/positive_ids.txt (ILIAS layout)")
    pos_ids = [
        line.split(",")[0].strip()
        for line in positive_file.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    if not pos_ids:
        raise InvalidInputError(f"{positive_file}: no positive ids")
    by_instance = defaultdict(set)
    for p in pos_ids:
        by_instance[ilias_instance(p)].add(p)
    queries = _unique(((q, root / q) for q in qids), "query")
    database = _unique(((d, root / d) for d in dids), "database")
    positives = {q: by_instance[ilias_instance(q)] & set(database) for q in queries}
    return Dataset("ilias", queries, database, positives, global_queries=qf, global_database=df)


DATASETS = ("demo", "smvs", "roxford-subset", "pairs", "folder", "ilias")


def load_dataset(name: str, root: str | Path | None = None, **options: Any) -> Dataset:
    """One of :data:`DATASETS` (``root`` needed except for ``demo``)."""
    if name == "demo":
        return demo(**options)
    if root is None:
        raise InvalidInputError(f"dataset {name!r} needs --root")
    if name == "smvs":
        return smvs(Path(root), **options)
    if name == "roxford-subset":
        return roxford_subset(Path(root))
    if name == "pairs":
        return pairs(Path(root))
    if name == "folder":
        return folder(Path(root), **options)
    if name == "ilias":
        return ilias(Path(root), **options)
    raise InvalidInputError(f"dataset: expected one of {', '.join(DATASETS)}, got {name!r}")
