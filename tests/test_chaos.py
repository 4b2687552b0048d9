"""The shortlist job survives what happens at ILIAS scale (issue 15), on small synthetic
images so that each round takes seconds:

- a run interrupted mid-batch, then runs with another ``-k`` / ``--batch-size``: the
  store keeps opening, and no id is held twice;
- every image failing is a non-zero exit (failure budget); a programming error is not an
  image failure;
- chaos: runs again and again on one store with changing ``-k``, ``--batch-size`` and
  shortlist file, SIGKILLed at random moments (also inside a commit: the process kills
  itself between writing a manifest's temporary file and renaming it), two jobs at once;
  then one clean run: the store opens, ``store check`` is clean, no id is held twice,
  nothing extracted is lost, and the output is byte-identical to a clean run on a fresh
  store;
- a store of 5,000 shards is opened and re-ranked under ``ulimit -n 1024``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_no_survivors, descendants

import ilias_rerank as ir
from ilias_rerank.reranker import save_similarities
from ilias_rerank.scale import rerank_shortlists
from ilias_rerank.scale.extraction import ExtractorSpec
from ilias_rerank.sources import ImageSource
from ilias_rerank.store import FeatureStore, check_store

PYTHON_PATH = str(Path(ir.__file__).parents[1])
SPEC = ExtractorSpec("sift", num_features=64, max_side=128, torch_threads=1)
N_IMAGES = 40


def _image(seed: int) -> bytes:
    """A 128 x 128 PNG of smooth random texture (SIFT finds corners in it)."""
    import io

    from PIL import Image

    g = np.random.default_rng(seed)
    small = g.uniform(0, 255, (16, 16))
    big = np.kron(small, np.ones((8, 8)))
    big += g.normal(0, 8, big.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(big, 0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


#: Hostile files among the chaos test's images (tests/test_hostile_images.py has them all):
#: each is a named failure of every run, never a reason for a run to fail or differ.
HOSTILE = {
    "img/h_truncated": lambda: _image(99)[:200],
    "img/h_empty": lambda: b"",
    "img/h_text": lambda: b"this is not an image\n",
}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("chaos_images")
    (folder / "img").mkdir()
    for k in range(N_IMAGES):
        (folder / f"img/{k:03d}.png").write_bytes(_image(k))
    for name, make in HOSTILE.items():
        (folder / f"{name}.png").write_bytes(make())
    return folder


def _shortlists(
    path: Path, seed: int, queries: int = 6, length: int = 12, hostile: bool = False
) -> Path:
    """Random shortlists over the images; ``hostile``: the first query's shortlist starts
    with the hostile files."""
    g = np.random.default_rng(seed)
    ids = [f"img/{k:03d}" for k in range(N_IMAGES)]
    knn = {}
    for q in g.choice(N_IMAGES, queries, replace=False):
        cands = [ids[c] for c in g.choice(N_IMAGES, length, replace=False)]
        scores = np.sort(g.uniform(0.1, 0.9, length))[::-1]
        knn[ids[q]] = dict(zip(cands, scores.tolist(), strict=True))
    if hostile:
        first = next(iter(knn))
        knn[first] = {**{h: 0.99 - k / 100 for k, h in enumerate(HOSTILE)}, **knn[first]}
    save_similarities(path, knn)
    return path


class Interrupt(ImageSource):
    """Reads the folder; raises KeyboardInterrupt at the ``stop``-th read (Ctrl-C)."""

    def __init__(self, folder: Path, stop: int) -> None:
        self.folder, self.stop, self.reads = folder, stop, 0

    def __contains__(self, image_id) -> bool:
        return True

    def prepare(self, ids) -> None:
        pass

    def read(self, image_id: str) -> bytes:
        self.reads += 1
        if self.reads == self.stop:
            raise KeyboardInterrupt
        return (self.folder / f"{image_id}.png").read_bytes()


def _no_duplicates(store_path: Path) -> FeatureStore:
    store = FeatureStore(store_path)
    assert len(store.ids) == len(set(store.ids))
    return store


def test_an_interrupted_run_then_other_plans_never_duplicate_an_id(images, tmp_path):
    knn = _shortlists(tmp_path / "knn.json", 1, queries=8)
    store = tmp_path / "s"
    with pytest.raises(KeyboardInterrupt):
        rerank_shortlists(
            knn,
            Interrupt(images, 21),
            store,
            tmp_path / "1.json",
            k=8,
            batch_size=40,
            extractor=SPEC,
        )
    # The interrupted run registered what its batch had committed on the way out.
    kept = _store_ids(store)
    assert len(kept) >= 16
    second = rerank_shortlists(knn, images, store, tmp_path / "2.json", k=4, extractor=SPEC)
    assert not second["adopted"] and kept <= _store_ids(store)
    _no_duplicates(store)
    for k, batch in ((8, 40), (8, 7), (6, 3)):
        rerank_shortlists(
            knn,
            images,
            store,
            tmp_path / f"{k}-{batch}.json",
            k=k,
            batch_size=batch,
            extractor=SPEC,
        )
        _no_duplicates(store)
    assert check_store(store).ok
    fresh = rerank_shortlists(
        knn, images, tmp_path / "fresh", tmp_path / "f.json", k=6, batch_size=3, extractor=SPEC
    )
    assert fresh["failed"] == 0
    assert (tmp_path / "f.json").read_bytes() == (tmp_path / "6-3.json").read_bytes()


class FailOnce(ImageSource):
    """Reads the folder; the first read of ``victim`` fails (a transient read error)."""

    def __init__(self, folder: Path, victim: str) -> None:
        self.folder, self.victim, self.failed = folder, victim, False

    def __contains__(self, image_id) -> bool:
        return True

    def prepare(self, ids) -> None:
        pass

    def read(self, image_id: str) -> bytes:
        if image_id == self.victim and not self.failed:
            self.failed = True
            raise ir.ImageReadError(f"{image_id}: transient")
        return (self.folder / f"{image_id}.png").read_bytes()


def test_retrying_a_failed_image_never_writes_a_registered_shard(images, tmp_path):
    knn = _shortlists(tmp_path / "knn.json", 3)
    store = tmp_path / "s"
    victim = sorted(json.loads(knn.read_text()))[0]
    source = FailOnce(images, victim)
    settings = {"k": 8, "batch_size": 50, "extractor": SPEC, "merge": False, "max_failed": 1}
    first = rerank_shortlists(knn, source, store, tmp_path / "1.json", **settings)
    assert first["failed"] == 1
    shards = {p.name: (p / "manifest.json").read_bytes() for p in (store / "shards").iterdir()}
    second = rerank_shortlists(knn, source, store, tmp_path / "2.json", **settings)
    assert second["extracted"] == 1 and second["failed"] == 0
    for name, manifest in shards.items():  # untouched: the retry wrote a new shard
        assert (store / "shards" / name / "manifest.json").read_bytes() == manifest
    assert victim in _no_duplicates(store) and check_store(store).ok


class Broken(ImageSource):
    def __init__(self, error: BaseException | None) -> None:
        self.error = error

    def __contains__(self, image_id) -> bool:
        return True

    def prepare(self, ids) -> None:
        pass

    def read(self, image_id: str) -> bytes:
        if self.error is not None:
            raise self.error
        return b"not an image"


def test_a_job_beyond_its_failure_budget_fails_and_a_bug_is_not_an_image_failure(images, tmp_path):
    from ilias_rerank.cli import main

    knn = _shortlists(tmp_path / "knn.json", 2)
    with pytest.raises(ir.FailureBudgetError, match="images failed, expected at most 0") as err:
        rerank_shortlists(knn, Broken(None), tmp_path / "s", tmp_path / "o.json", extractor=SPEC)
    assert err.value.summary["failed"] > 0 and (tmp_path / "o.json").exists()
    ok = rerank_shortlists(
        knn, Broken(None), tmp_path / "s", tmp_path / "o.json", extractor=SPEC, max_failed=1.0
    )
    assert ok["failed"] == ok["ids_needed"]
    with pytest.raises(RuntimeError, match="a bug"):
        rerank_shortlists(
            knn,
            Broken(RuntimeError("a bug")),
            tmp_path / "s2",
            tmp_path / "o.json",
            extractor=SPEC,
            max_failed=1.0,
        )
    with pytest.raises(ir.ConfigError, match="max_failed"):
        rerank_shortlists(knn, images, tmp_path / "s3", tmp_path / "o.json", max_failed=2.5)
    junk = tmp_path / "junk"
    (junk / "img").mkdir(parents=True)
    for k in range(N_IMAGES):
        (junk / f"img/{k:03d}.png").write_bytes(b"not a png")
    args = ["rerank-shortlists", "--shortlists", str(knn), "--images", str(junk)]
    args += ["--store", str(tmp_path / "s4"), "--out", str(tmp_path / "c.json")]
    args += ["--features", "64", "--max-side", "128", "--no-progress"]
    assert main(args) == 3
    # Within the budget but incomplete: status 4, not 0 (the output lacks those images).
    assert main([*args, "--max-failed", "100%"]) == 4


# --- chaos -------------------------------------------------------------------------------

_RUNNER = textwrap.dedent(
    """
    import os, random, sys
    sys.path.insert(0, {path!r})
    kill_at = int(os.environ.get("CHAOS_KILL_AT_WRITE", "0"))
    if kill_at:
        # Die inside a commit: after the temporary file is complete, before the rename.
        import ilias_rerank._io as io_mod
        real_replace, calls = os.replace, [0]

        def replace(src, dst):
            if str(src).endswith(".tmp"):
                calls[0] += 1
                if calls[0] == kill_at:
                    os.kill(os.getpid(), 9)
            return real_replace(src, dst)

        io_mod.os.replace = replace
    from ilias_rerank.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def _job_args(images: Path, knn: Path, store: Path, out: Path, k: int, batch: int) -> list[str]:
    return [
        "rerank-shortlists", "--shortlists", str(knn), "--images", str(images),
        "--store", str(store), "--out", str(out), "-k", str(k), "--batch-size", str(batch),
        "--features", "64", "--max-side", "128", "--no-progress", "--lock-timeout", "120",
        "--max-failed", "100%",
    ]  # fmt: skip


def _start(args: list[str], kill_at_write: int = 0) -> subprocess.Popen:
    env = dict(os.environ, CHAOS_KILL_AT_WRITE=str(kill_at_write), OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-c", _RUNNER.format(path=PYTHON_PATH), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _store_ids(store: Path) -> set[str]:
    if not (store / "shards.json").exists():
        return set()
    return set(_no_duplicates(store).ids)


def test_chaos_kills_and_concurrent_jobs_leave_a_sound_store(images, tmp_path):
    rnd = random.Random(15)
    lists = [_shortlists(tmp_path / f"knn{v}.json", 10 + v, hostile=True) for v in range(3)]
    store = tmp_path / "store"
    seen: set[str] = set()
    outcomes = []
    for r in range(9):
        knn = lists[rnd.randrange(3)]
        k, batch = rnd.choice([4, 6, 8]), rnd.choice([2, 3, 5, 7])
        args = _job_args(images, knn, store, tmp_path / f"r{r}.json", k, batch)
        if r % 3 == 2:  # two jobs at once: the second waits for the first's lock
            other = _job_args(images, lists[(r + 1) % 3], store, tmp_path / f"o{r}.json", 6, 3)
            procs = [_start(args), _start(other)]
            codes = [p.wait(timeout=240) for p in procs]
            errors = [p.stderr.read()[-2000:] for p in procs]
            assert codes == [4, 4], errors  # done; the hostile files failed, named
            outcomes.append("pair")
        elif r % 3 == 1:  # killed inside a commit (a manifest or shards.json rename)
            proc = _start(args, kill_at_write=rnd.randint(1, 12))
            outcomes.append(proc.wait(timeout=240))
        else:  # SIGKILLed from outside at a random moment
            proc = _start(args)
            time.sleep(rnd.uniform(2.0, 6.0))
            ours = descendants(proc.pid)
            proc.send_signal(signal.SIGKILL)
            outcomes.append(proc.wait(timeout=240))
            assert_no_survivors(ours)
        now = _store_ids(store)
        assert seen <= now, f"round {r}: lost {sorted(seen - now)[:5]}"
        seen = now
    assert -9 in outcomes, outcomes  # some rounds were really killed
    final = _job_args(images, lists[0], store, tmp_path / "final.json", 6, 5)
    proc = _start(final)
    assert proc.wait(timeout=240) == 4, proc.stderr.read()[-2000:]
    failures = (tmp_path / "final.json.failures.tsv").read_text()
    assert all(h in failures for h in HOSTILE) and len(failures.splitlines()) == 1 + len(HOSTILE)
    assert seen <= _store_ids(store)
    report = check_store(store)
    assert report.ok, str(report)
    fresh = _job_args(images, lists[0], tmp_path / "fresh", tmp_path / "fresh.json", 6, 5)
    proc = _start(fresh)
    assert proc.wait(timeout=240) == 4, proc.stderr.read()[-2000:]
    assert (tmp_path / "final.json").read_bytes() == (tmp_path / "fresh.json").read_bytes()


# --- many shards -------------------------------------------------------------------------


def _tiny_shards(root: Path, count: int) -> None:
    """``count`` one-image shards written by hand (the StoreWriter's layout, no fsync)."""
    from ilias_rerank.store import StoreWriter, register_shards
    from ilias_rerank.store.sharded import _crc, _manifest_crc
    from ilias_rerank.store.single import _manifest_crc as store_crc

    template = root / "template"
    g = np.random.default_rng(0)
    with StoreWriter(template, {"name": "tiny"}) as w:
        w.add(
            "t",
            ir.LocalFeatures(
                g.uniform(0, 100, (12, 2)), g.integers(0, 256, (12, 16)).astype(np.uint8)
            ),
        )
    files = {p.name: p.read_bytes() for p in template.iterdir() if p.suffix == ".bin"}
    manifest = json.loads((template / "manifest.json").read_text())
    entries = []
    for k in range(count):
        name = f"s{k:05d}"
        path = root / "shards" / name
        path.mkdir(parents=True)
        for fname, data in files.items():
            (path / fname).write_bytes(data)
        ids = f"i{k:05d}\n".encode()
        (path / "ids.txt").write_bytes(ids)
        m = dict(manifest, ids_crc=zlib.crc32(ids), bytes=dict(manifest["bytes"]))
        m["bytes"]["ids.txt"] = len(ids)
        m["checksum"] = store_crc(m)
        (path / "manifest.json").write_text(json.dumps(m, indent=1))
        entries.append(
            {"name": name, "images": 1, "features": 12, "manifest_crc": _manifest_crc(path)}
        )
    register_shards(root, [])
    listing = json.loads((root / "shards.json").read_text())
    listing["layout"] = {
        key: manifest[key] for key in ("extractor", "descriptors", "frame_width", "global_dim")
    }
    listing["shards"] = entries
    listing["checksum"] = _crc(listing)
    (root / "shards.json").write_text(json.dumps(listing))


def test_a_store_of_5000_shards_is_reranked_under_ulimit_1024(tmp_path):
    root = tmp_path / "many"
    _tiny_shards(root, 5000)
    code = textwrap.dedent(
        f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
        sys.path.insert(0, {PYTHON_PATH!r})
        from ilias_rerank import Reranker
        from ilias_rerank.store import FeatureStore
        store = FeatureStore({str(root)!r})
        assert len(store) == 5000 and not store.broken
        ids = store.ids
        shortlists = {{ids[q]: {{ids[(q * 100 + c) % 5000]: 1.0 - c / 100 for c in range(100)}}
                      for q in range(50)}}
        found = Reranker(store).rerank_many({{q: store[q] for q in shortlists}}, shortlists)
        assert len(found) == 50
        import os
        print(len(os.listdir("/proc/self/fd")), store.mapped_shards)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    fds, mapped = map(int, out.stdout.split())
    assert fds < 1024 and mapped <= 64
