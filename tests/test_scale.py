"""At scale (issue 9): image sources, sharded stores and the rerank-shortlists job.

- a tar source reads members in place through a cached index; a missing or corrupt member
  is named and the other images are kept;
- a sharded store reads across shards like a single store; a missing, truncated or
  corrupt shard is a FormatError naming it, and the other shards stay readable;
- the shortlist job on tar shards gives the same result file as on a folder and as the
  in-memory Reranker; a second run extracts nothing; a worker killed mid-shard costs
  time, not results (the batch resumes its own shard: nothing duplicated or lost).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_dataset

import ilias_rerank as ir
from ilias_rerank.reranker import Reranker, load_similarities, save_similarities
from ilias_rerank.scale import rerank_shortlists
from ilias_rerank.scale.extraction import COMMIT_EVERY, ExtractorSpec, plan_batches
from ilias_rerank.sources import (
    CallableSource,
    FolderSource,
    ImageSource,
    TarSource,
    open_source,
)
from ilias_rerank.store import FeatureStore, StoreWriter, register_shards, shard_path

SPEC = ExtractorSpec("sift", num_features=256, max_side=512, torch_threads=1)


def _write_tars(files: dict[str, Path], folder: Path, per_tar: int) -> list[Path]:
    """``files`` (id -> image path) into tars of ``per_tar`` members named ``<id>.jpg``."""
    folder.mkdir(parents=True, exist_ok=True)
    tars = []
    items = sorted(files.items())
    for k in range(0, len(items), per_tar):
        path = folder / f"part-{k // per_tar:03d}.tar"
        with tarfile.open(path, "w") as tf:
            for image_id, src in items[k : k + per_tar]:
                tf.add(src, arcname=f"{image_id}{src.suffix}")
        tars.append(path)
    return tars


@pytest.fixture(scope="module")
def smvs_job(tmp_path_factory):
    """A small ILIAS-shaped job on smvs_dvd_covers: 6 phone photos, each with a kNN
    shortlist of 12 references (its own among them), as an ILIAS JSON file; the images as a
    folder and as 3 tar shards."""
    root = shared_dataset("smvs_dvd_covers")
    base = tmp_path_factory.mktemp("smvs_job")
    files = {f"ref/{i:03d}": root / f"Reference/{i:03d}.jpg" for i in range(1, 31)}
    files |= {f"query/{i:03d}": root / f"E63/{i:03d}.jpg" for i in range(1, 7)}
    folder = base / "folder"
    for image_id, src in files.items():
        (folder / image_id).parent.mkdir(parents=True, exist_ok=True)
        (folder / f"{image_id}.jpg").write_bytes(src.read_bytes())
    tars = _write_tars(files, base / "tars", per_tar=13)
    rng = np.random.default_rng(0)
    knn = {}
    for i in range(1, 7):
        others = [f"ref/{j:03d}" for j in rng.choice(np.arange(1, 31), 15, replace=False) if j != i]
        scores = np.sort(rng.uniform(0.2, 0.9, 12))[::-1]
        # The true cover sits sixth in the global ranking: re-ranking should lift it.
        ids = [*others[:5], f"ref/{i:03d}", *others[5:11]]
        knn[f"query/{i:03d}"] = dict(zip(ids, scores.tolist(), strict=True))
    save_similarities(base / "knn.json", knn)
    return base, folder, tars, knn


def test_tar_source_reads_members_in_place_through_a_cached_index(smvs_job, tmp_path):
    base, folder, tars, _ = smvs_job
    src = TarSource(tars, index_dir=tmp_path / "idx")
    assert len(src) == 36 and "ref/001" in src and "nope" not in src
    assert src.read("ref/007") == (folder / "ref/007.jpg").read_bytes()
    assert len(list((tmp_path / "idx").glob("*.idx.npz"))) == 3
    again = TarSource(tars, index_dir=tmp_path / "idx")  # from the cache
    assert again.read("query/003") == (folder / "query/003.jpg").read_bytes()
    with pytest.raises(ir.ImageReadError, match=r"'ref/999'.*not in 3 tar files"):
        src.read("ref/999")
    assert isinstance(open_source(base / "tars"), TarSource)
    assert isinstance(open_source(str(base / "tars" / "*.tar")), TarSource)
    assert isinstance(open_source(folder), FolderSource)
    assert isinstance(open_source(lambda i: b""), CallableSource)


def test_a_tar_with_a_missing_or_corrupt_member_names_it_and_keeps_the_rest(smvs_job, tmp_path):
    _, folder, _, _ = smvs_job
    files = {f"ref/{i:03d}": folder / f"ref/{i:03d}.jpg" for i in range(1, 5)}
    tar = tmp_path / "bad.tar"
    with tarfile.open(tar, "w") as tf:
        for image_id, src in files.items():
            tf.add(src, arcname=f"{image_id}.jpg")
        junk = b"not a jpeg at all" * 10
        info = tarfile.TarInfo("ref/005.jpg")
        info.size = len(junk)
        tf.addfile(info, io.BytesIO(junk))
    knn = {"ref/001": {"ref/002": 0.9, "ref/005": 0.8, "ref/006": 0.7, "ref/003": 0.6}}
    save_similarities(tmp_path / "knn.json", knn)
    summary = rerank_shortlists(
        tmp_path / "knn.json",
        tar,
        tmp_path / "store",
        tmp_path / "out.json",
        extractor=SPEC,
        max_failed=2,
    )
    assert summary["failed"] == 2 and summary["extracted"] == 3
    failures = (tmp_path / "out.json.failures.tsv").read_text()
    assert "ref/005" in failures and "not a readable image" in failures
    assert "ref/006" in failures and "not in the tar" in failures
    out = load_similarities(tmp_path / "out.json")["ref/001"]
    # The failed candidates keep their global places (2nd and 3rd); the others re-ranked.
    assert list(out)[1:3] == ["ref/005", "ref/006"]
    assert set(out) == set(knn["ref/001"])
    # A truncated tar: what it still holds is read, the cut member is named.
    data = tar.read_bytes()
    cut = tmp_path / "cut.tar"
    start = data.rindex(files["ref/004"].read_bytes()[:256])  # the last member with it
    cut.write_bytes(data[: start + 1000])  # in the middle of ref/004's bytes
    src = TarSource([cut], index_dir=tmp_path / "idx")
    assert src.read("ref/001") == files["ref/001"].read_bytes()
    with pytest.raises(ir.ImageReadError, match=r"'ref/004'.*truncated"):
        src.read("ref/004")


def _features(seed: int, n: int = 30) -> ir.LocalFeatures:
    g = np.random.default_rng(seed)
    return ir.LocalFeatures(g.uniform(0, 500, (n, 2)), g.integers(0, 256, (n, 16)).astype(np.uint8))


def _sharded(root: Path, shards: dict[str, list[str]]) -> dict[str, ir.LocalFeatures]:
    want = {}
    for name, ids in shards.items():
        with StoreWriter(shard_path(root, name), {"name": "t"}) as w:
            for image_id in ids:
                want[image_id] = _features(hash(image_id) % 1000)
                w.add(image_id, want[image_id])
    register_shards(root, list(shards))
    return want


def test_a_sharded_store_reads_like_one_store(tmp_path):
    want = _sharded(tmp_path / "s", {"a": ["x1", "x2"], "b": ["y1"], "c": ["z1", "z2", "z3"]})
    store = FeatureStore(tmp_path / "s")
    assert isinstance(store, ir.store.ShardedStore) if hasattr(ir, "store") else True
    assert len(store) == 6 and set(store) == set(want)
    for image_id, f in want.items():
        np.testing.assert_array_equal(store[image_id].descriptors, f.descriptors)
    assert store.shard_of("y1") == "b"
    assert sorted(store.position(i) for i in want) == list(range(6))
    with pytest.raises(ir.MissingIdError):
        store["nope"]
    # The Reranker takes it like any store.
    r = Reranker(store).rerank_one(want["x1"], ["x1", "y1", "z2"])
    assert next(iter(r)) == "x1"


@pytest.mark.parametrize("damage", ["missing", "truncated", "corrupt", "changed"])
def test_a_damaged_shard_is_named_and_the_others_stay_readable(tmp_path, damage):
    want = _sharded(tmp_path / "s", {"a": ["x1", "x2"], "b": ["y1", "y2"]})
    b = shard_path(tmp_path / "s", "b")
    if damage == "missing":
        import shutil

        shutil.rmtree(b)
    elif damage == "truncated":
        data = (b / "descriptors.bin").read_bytes()
        (b / "descriptors.bin").write_bytes(data[: len(data) // 2])
    elif damage == "corrupt":
        data = bytearray((b / "index.bin").read_bytes())
        data[3] ^= 0xFF
        (b / "index.bin").write_bytes(bytes(data))
    else:  # changed behind the store's back (StoreWriter refuses a registered shard)
        import shutil

        copy = tmp_path / "copy"
        shutil.copytree(b, copy)
        with StoreWriter(copy, {"name": "t"}) as w:
            w.add("y3", _features(5))
        shutil.rmtree(b)
        shutil.copytree(copy, b)
    with pytest.raises(ir.FormatError, match=r"shard b: "):
        FeatureStore(tmp_path / "s")
    store = FeatureStore(tmp_path / "s", on_broken_shard="skip")
    assert set(store) == {"x1", "x2"} and list(store.broken) == ["b"]
    np.testing.assert_array_equal(store["x2"].descriptors, want["x2"].descriptors)
    with pytest.raises(ir.MissingIdError, match=r"damaged shards left out: \['b'\]"):
        store["y1"]


def test_shards_of_another_layout_are_refused(tmp_path):
    _sharded(tmp_path / "s", {"a": ["x1"]})
    with StoreWriter(shard_path(tmp_path / "s", "odd"), {"name": "other"}) as w:
        w.add("q", _features(1))
    with pytest.raises(ir.FormatError, match="shard odd: layout"):
        register_shards(tmp_path / "s", ["odd"])
    assert set(FeatureStore(tmp_path / "s")) == {"x1"}


def test_batches_are_deterministic_and_named_by_their_ids():
    a = plan_batches(["c", "a", "b", "d", "a"], 2)
    b = plan_batches(["d", "b", "a", "c"], 2)
    assert a == b and [x.ids for x in a] == [("a", "b"), ("c", "d")]
    assert a[0].name != a[1].name and a[0].name.startswith("b-")


def _reranker_reference(folder: Path, knn: dict, k: int) -> dict:
    """The in-memory path: extract with the same settings, Reranker, same output rules."""
    ranked = {q: sorted(v, key=lambda d: -v[d]) for q, v in knn.items()}
    ids = sorted(set(knn) | {d for r in ranked.values() for d in r[:k]})
    extractor = SPEC.build()
    feats = {i: extractor(folder / f"{i}.jpg") for i in ids}
    out = {}
    for q, shortlist in knn.items():
        ranking = sorted(shortlist, key=lambda d: -shortlist[d])
        head = {d: shortlist[d] for d in ranking[:k]}
        store = dict(feats)  # a Mapping of id -> LocalFeatures
        res = Reranker(store).rerank_one(feats[q], head)
        order = list(res) + ranking[k:]
        out[q] = {d: (len(order) - r) / len(order) for r, d in enumerate(order)}
    return out


def test_the_job_gives_one_result_on_tars_on_a_folder_and_in_memory(smvs_job, tmp_path):
    base, folder, _tars, knn = smvs_job
    settings = {"k": 8, "extractor": SPEC, "batch_size": 10}
    s_tar = rerank_shortlists(
        base / "knn.json", base / "tars", tmp_path / "st", tmp_path / "t.json", **settings
    )
    s_dir = rerank_shortlists(
        base / "knn.json", folder, tmp_path / "sf", tmp_path / "f.json", **settings
    )
    assert s_tar["ids_needed"] == s_dir["ids_needed"] == s_tar["extracted"]
    assert s_tar["failed"] == 0 and s_tar["pairs"] == 6 * 8
    tar_out, dir_out = (tmp_path / "t.json").read_bytes(), (tmp_path / "f.json").read_bytes()
    assert tar_out == dir_out
    got = json.loads(tar_out)
    assert got == _reranker_reference(folder, knn, 8)
    # Each query's own cover comes first after re-ranking (it is in its top 8).
    assert all(next(iter(v)) == q.replace("query", "ref") for q, v in got.items())
    # Resumable: a second run extracts nothing and writes the same file.
    again = rerank_shortlists(
        base / "knn.json", base / "tars", tmp_path / "st", tmp_path / "t2.json", **settings
    )
    assert again["extracted"] == 0 and again["reused"] == again["ids_needed"]
    assert (tmp_path / "t2.json").read_bytes() == tar_out
    # Other output formats, read back.
    rerank_shortlists(base / "knn.json", folder, tmp_path / "sf", tmp_path / "f.npz", **settings)
    npz = load_similarities(tmp_path / "f.npz")
    assert {q: list(v) for q, v in npz.items()} == {q: list(v) for q, v in got.items()}
    assert all(npz[q][d] == pytest.approx(got[q][d], rel=1e-6) for q in got for d in got[q])


class KillOnce(ImageSource):
    """A source that SIGKILLs the worker process reading ``victim`` the first time, and
    logs every read (one line per id, appended by every worker process) to ``log``."""

    def __init__(self, folder: Path, victim: str, marker: Path, log: Path | None = None) -> None:
        self.folder, self.victim, self.marker, self.log = folder, victim, marker, log

    def __contains__(self, image_id) -> bool:
        return True

    def prepare(self, ids) -> None:
        pass

    def read(self, image_id: str) -> bytes:
        if self.log is not None:
            with open(self.log, "a") as f:
                f.write(image_id + "\n")
        if image_id == self.victim and not self.marker.exists():
            self.marker.write_text("killed once")
            os.kill(os.getpid(), 9)
        return (self.folder / f"{image_id}.jpg").read_bytes()


def test_an_isolated_worker_killed_mid_batch_costs_only_a_retry_of_its_image(smvs_job, tmp_path):
    """Isolated workers (``isolate=True``), a batch larger than the commit interval, the
    worker reading ``victim`` SIGKILLed once: ``victim`` is run again in a fresh worker and
    stored; every other image is read (extracted) once; nothing is duplicated or lost; the
    output equals a clean run's."""
    base, folder, _, knn = smvs_job
    needed = sorted(set(knn) | {d for v in knn.values() for d in list(v)[:8]})
    batch_size = 24
    assert len(needed) > batch_size > COMMIT_EVERY + 3
    victim = needed[COMMIT_EVERY + 3]
    log = tmp_path / "reads.log"
    source = KillOnce(folder, victim, tmp_path / "marker", log)
    summary = rerank_shortlists(
        base / "knn.json",
        source,
        tmp_path / "s",
        tmp_path / "out.json",
        k=8,
        extractor=SPEC,
        batch_size=batch_size,
        workers=2,
        isolate=True,
    )
    assert (tmp_path / "marker").exists(), "the worker was not killed"
    assert summary["failed"] == 0 and summary["complete"]
    reads = log.read_text().split()
    assert reads.count(victim) == 2
    assert all(reads.count(i) == 1 for i in needed if i != victim)
    assert summary["extracted"] == summary["ids_needed"]
    store = FeatureStore(tmp_path / "s", verify="full")
    assert len(store.ids) == len(set(store.ids)) == summary["ids_needed"]
    reference = rerank_shortlists(
        base / "knn.json", folder, tmp_path / "s2", tmp_path / "ref.json", k=8, extractor=SPEC
    )
    assert reference["extracted"] == summary["ids_needed"]
    assert (tmp_path / "out.json").read_bytes() == (tmp_path / "ref.json").read_bytes()


def test_the_cli_runs_the_job_and_reports(smvs_job, tmp_path, capsys):
    from ilias_rerank.cli import main

    base, folder, _tars, _ = smvs_job
    args = ["rerank-shortlists", "--shortlists", str(base / "knn.json"), "--images"]
    tail = ["-k", "8", "--features", "256", "--max-side", "512", "--batch-size", "10"]
    code = main(
        [
            *args,
            str(base / "tars"),
            "--store",
            str(tmp_path / "s"),
            "--out",
            str(tmp_path / "r.json"),
            "--json",
            str(tmp_path / "summary.json"),
            "--no-progress",
            *tail,
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "ids needed 30 / extracted 30 / reused 0 / failed 0" in printed
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["pairs"] == 48 and set(summary["timing"]) >= {"extract_s", "rerank_s"}
    # A bad setting is a clear error, not a traceback.
    assert (
        main(
            [
                *args,
                str(folder),
                "--store",
                str(tmp_path / "s2"),
                "--out",
                str(tmp_path / "r.txt"),
                "--no-progress",
            ]
        )
        == 2
    )
    assert "expected a .json, .npz or .pkl" in capsys.readouterr().err


def test_jobs_in_one_process_see_the_store_grow_and_settings_are_checked(smvs_job, tmp_path):
    base, folder, tars, knn = smvs_job
    first = dict(list(knn.items())[:3])
    save_similarities(tmp_path / "first.json", first)
    store = tmp_path / "s"
    settings = {"k": 8, "extractor": SPEC, "batch_size": 10}
    rerank_shortlists(tmp_path / "first.json", folder, store, tmp_path / "a.json", **settings)
    # A second job in the same process with new ids: the store it re-ranks is the new one.
    both = rerank_shortlists(base / "knn.json", folder, store, tmp_path / "b.json", **settings)
    assert both["extracted"] > 0 and both["queries_reranked"] == 6
    # The queries' folder and the tars together (an id from the first that has it).
    chained = rerank_shortlists(
        base / "knn.json", [folder, *tars], tmp_path / "c", tmp_path / "c.json", **settings
    )
    assert chained["failed"] == 0
    assert (tmp_path / "c.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    # Another extractor on this store, a lambda with isolated processes: clear errors.
    other = ExtractorSpec("sift", num_features=128, max_side=512)
    save_similarities(tmp_path / "new.json", {"query/001": {"ref/030": 1.0, "query/002": 0.5}})
    new_ids = {"query/001": {"nope/1": 1.0}}
    save_similarities(tmp_path / "new2.json", new_ids)
    with pytest.raises(ir.ConfigError, match="holds features of"):
        rerank_shortlists(
            tmp_path / "new2.json", folder, store, tmp_path / "d.json", extractor=other
        )

    def empty_images(**settings):
        return rerank_shortlists(
            tmp_path / "new2.json",
            lambda i: b"",
            tmp_path / "e",
            tmp_path / "e.json",
            extractor=SPEC,
            workers=2,
            **settings,
        )

    with pytest.raises(ir.ConfigError, match="picklable"):
        empty_images(isolate=True)
    # In threads (the default) a lambda is a source like any other: its empty images fail.
    done = empty_images(max_failed=1.0)
    assert done["failed"] == 2 and not done["complete"]


def test_a_failed_image_does_not_shift_the_batches_of_a_later_run():
    ids = [f"i{k:02d}" for k in range(10)]
    first = plan_batches(ids, 4)
    again = plan_batches(ids, 4, skip={"i00", "i01", "i02", "i03", "i05"})
    assert [b.name for b in again] == [b.name for b in first[1:]]
    assert again[0].ids == ("i04", "i06", "i07")


def test_tar_reads_from_many_threads_with_few_descriptors(smvs_job, monkeypatch):
    import ilias_rerank.sources.tar as tar_module

    _, folder, tars, _ = smvs_job
    monkeypatch.setattr(tar_module, "MAX_OPEN", 1)  # every read across tars evicts one
    src = TarSource(tars)
    ids = [f"ref/{i:03d}" for i in range(1, 31)] * 4
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(src.read, ids))
    assert all(g == (folder / f"{i}.jpg").read_bytes() for g, i in zip(got, ids, strict=True))
