"""The one extraction pool (issue 21): nothing asked of the caller's script, threads from
the usable cores, the libraries' thread settings restored, one failure rule (an image that
raises, gives nothing or kills its process costs only itself, within a run and across
runs through the journal), the job's failure budget, and signals."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_no_survivors, descendants
from PIL import Image

import ilias_rerank as ir
from ilias_rerank.extractors import make_extractor
from ilias_rerank.extractors.pool import run_images, usable_cores
from ilias_rerank.reranker import save_similarities
from ilias_rerank.scale import rerank_shortlists
from ilias_rerank.scale.extraction import ExtractorSpec
from ilias_rerank.scale.journal import JOURNAL_FILE, Journal
from ilias_rerank.sources import ImageSource
from ilias_rerank.store import FeatureStore, check_store

pytest.importorskip("cv2")

PYTHON_PATH = str(Path(ir.__file__).parents[1])
SPEC = ExtractorSpec("sift", num_features=64, max_side=128)
N_IMAGES = 24


def _png(seed: int) -> bytes:
    """A 128 x 128 PNG of smooth random texture (SIFT finds corners in it)."""
    g = np.random.default_rng(seed)
    big = np.kron(g.uniform(0, 255, (16, 16)), np.ones((8, 8))) + g.normal(0, 8, (128, 128))
    buf = io.BytesIO()
    Image.fromarray(np.clip(big, 0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> tuple[Path, Path]:
    """(image folder, shortlist file): 4 queries x 12 candidates over 24 images."""
    base = tmp_path_factory.mktemp("pool_job")
    (base / "img").mkdir()
    for k in range(N_IMAGES):
        (base / f"img/{k:03d}.png").write_bytes(_png(k))
    g = np.random.default_rng(0)
    ids = [f"img/{k:03d}" for k in range(N_IMAGES)]
    knn = {}
    for q in range(4):
        cands = [ids[c] for c in g.choice(N_IMAGES, 12, replace=False)]
        knn[ids[q]] = dict(zip(cands, np.linspace(0.9, 0.1, 12).tolist(), strict=True))
    save_similarities(base / "knn.json", knn)
    return base, base / "knn.json"


def _needed(knn: Path, k: int = 12) -> list[str]:
    lists = json.loads(knn.read_text())
    return sorted(set(lists) | {d for v in lists.values() for d in list(v)[:k]})


def _run(code: str, *args: str, timeout: float = 300, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=PYTHON_PATH)
    return subprocess.run(
        [sys.executable, *args] if not code else [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )


# --- nothing asked of the caller --------------------------------------------------------------


def test_a_plain_script_without_a_main_guard_extracts_over_workers(job, tmp_path):
    """The README's situation: a ten-line script, no ``__main__`` guard, every core (and
    isolated processes too): every image is extracted, and the script runs once."""
    base, _ = job
    script = tmp_path / "example.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import glob, sys
            import ilias_rerank as ir
            print("script ran", flush=True)
            paths = sorted(glob.glob({str(base / "img" / "*.png")!r}))[:8]
            a = ir.extract_local(paths, num_features=64, progress=False)
            b = ir.extract_local(paths, num_features=64, workers=2, isolate=True, progress=False)
            assert all(len(f) > 0 for f in a)
            assert all((x.descriptors == y.descriptors).all() for x, y in zip(a, b))
            print("ok", len(a))
            """
        )
    )
    out = _run("", str(script), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split("\n")[:2] == ["script ran", "ok 8"]
    # python -c, the same.
    code = (
        "import glob, ilias_rerank as ir; "
        f"print(len(ir.extract_local(sorted(glob.glob({str(base / 'img' / '*.png')!r}))[:6], "
        "num_features=64, workers=2, progress=False)))"
    )
    out = _run(code)
    assert out.returncode == 0 and out.stdout.strip() == "6", out.stderr[-3000:]


def test_threads_come_from_the_usable_cores_and_opencv_settings_are_restored(job):
    import cv2

    code = "import os; os.sched_setaffinity(0, {0}); from ilias_rerank.extractors.pool "
    code += "import usable_cores, check_workers; print(usable_cores(), check_workers(None))"
    out = _run(code)
    assert out.returncode == 0 and out.stdout.split() == ["1", "1"], out.stderr
    assert usable_cores() <= len(os.sched_getaffinity(0))
    # A cgroup quota of one core bounds it too (the machine's count never counts).
    import ilias_rerank.extractors.pool as pool

    real = pool._cgroup_cores
    try:
        pool._cgroup_cores = lambda: 1.0
        assert usable_cores() == 1
    finally:
        pool._cgroup_cores = real
    base, _ = job
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(3)
        photo = sorted((base / "img").glob("*.png"))[0]
        make_extractor("sift", 77, backend="opencv")(photo)  # builds this thread's detector
        assert cv2.getNumThreads() == 3
        ir.extract_local(sorted((base / "img").glob("*.png"))[:4], num_features=77, workers=2)
        assert cv2.getNumThreads() == 3
    finally:
        cv2.setNumThreads(before)


def test_memoryview_images_with_workers_give_the_bytes_features(job):
    base, _ = job
    data = [p.read_bytes() for p in sorted((base / "img").glob("*.png"))[:4]]
    ref = ir.extract_local(data, num_features=64, workers=1)
    for isolate in (False, True):
        got = ir.extract_local(
            [memoryview(d) for d in data], num_features=64, workers=2, isolate=isolate
        )
        assert all(
            np.array_equal(a.descriptors, b.descriptors) for a, b in zip(ref, got, strict=True)
        )


# --- the failure rule -----------------------------------------------------------------------


class _Exits:
    """An image whose unpickling ends the (isolated) process that receives it."""

    def __reduce__(self):
        return (os._exit, (7,))


def test_many_dead_workers_fail_only_their_images_never_untried_ones(job):
    """17 images that kill their worker (more than the 16 restarts the old pool allowed,
    after which it failed every remaining image untried): each fails alone, named; every
    other image is extracted."""
    base, _ = job
    good = [p.read_bytes() for p in sorted((base / "img").glob("*.png"))[:6]]
    items: list = []
    for k in range(17):
        items += [_Exits(), good[k % 6]]
    with pytest.raises(ir.ExtractionError) as err:
        ir.extract_local(items, num_features=64, workers=2, isolate=True, progress=False)
    failures = err.value.failures
    assert sorted(failures) == list(range(0, 34, 2))
    assert all(
        "killed its worker process 2 times (exit status 7" in r for _, r in failures.values()
    )
    assert all(err.value.results[k] is not None for k in range(1, 34, 2))


def test_an_extractor_that_returns_nothing_fails_that_image():
    class Nothing:
        device = "cpu"
        requires = ("PIL",)

        def __call__(self, source, name=None):
            return None if source == "b" else ir.LocalFeatures(np.zeros((0, 2)), np.zeros((0, 8)))

    out = list(run_images(Nothing(), ["a", "b", "c"], 2))
    assert [o[0] for o in out] == [0, 1, 2]
    assert out[1][1] is None and "returned NoneType" in out[1][2][1]
    assert out[0][2] is None and out[2][2] is None


def test_a_bug_stops_the_call():
    class Buggy:
        device = "cpu"
        requires = ("PIL",)
        spec = ()

        def __call__(self, source, name=None):
            raise TypeError("a bug")

    with pytest.raises(TypeError, match="a bug"):
        list(run_images(Buggy(), ["a", "b"], 2))


def test_the_journal_fails_an_image_in_flight_at_two_crashes(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path) as j:
        j.start("a")
        j.start("b")
        j.end("b", True)  # b finished; a was in flight when the process "died"
    j = Journal(path)
    assert j.suspect("a") and not j.suspect("b") and j.failed("a") is None
    j.start("a")
    j.close()  # killed again with a in flight
    j = Journal(path)
    assert "in flight at 2 crashes" in j.failed("a")
    j.close()
    with Journal(path) as j:
        j.start("c")
        j.end("c", True)
    with Journal(path) as j:  # stored later: cleared
        assert j.failed("a") and not j.suspect("c")
        j.start("a")
        j.end("a", True)
    assert not Journal(path).suspect("a")
    # A line cut by a crash mid-write is skipped.
    with open(path, "a") as f:
        f.write('["start", "d')
    assert not Journal(path).suspect("d")


# --- an image that kills its process, through the job -----------------------------------------

_KILLER_JOB = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from ilias_rerank.cli import main
    from ilias_rerank.sources import ImageSource
    import ilias_rerank.scale.job as job_module

    folder, victim = Path(sys.argv[1]), sys.argv[2]

    class Killer(ImageSource):
        def __contains__(self, image_id):
            return True
        def prepare(self, ids):
            pass
        def read(self, image_id):
            if image_id == victim:
                os.kill(os.getpid(), 9)  # a decoder crash: the whole process goes
            return (folder / f"{image_id}.png").read_bytes()

    real = job_module.open_source
    job_module.open_source = lambda images, **kw: Killer()
    sys.exit(main(sys.argv[3:]))
    """
)


def test_an_image_that_kills_the_process_makes_the_job_finishable(job, tmp_path):
    """Threads (the default): the victim kills the whole job; the next run re-runs it
    alone (it kills again); the third fails it untried, names it, and completes within
    the budget (exit 4: incomplete). Nothing else is lost; the store stays healthy."""
    base, knn = job
    victim = _needed(knn)[5]
    store, out = tmp_path / "store", tmp_path / "out.json"
    args = ["rerank-shortlists", "--shortlists", str(knn), "--images", str(base)]
    args += ["--store", str(store), "--out", str(out), "-k", "12", "--workers", "2"]
    args += ["--features", "64", "--max-side", "128", "--no-progress", "--max-failed", "1"]
    codes = [_run(_KILLER_JOB, str(base), victim, *args).returncode for _ in range(3)]
    assert codes == [-9, -9, 4], codes
    failures = (tmp_path / "out.json.failures.tsv").read_text()
    assert victim in failures and "in flight at 2 crashes" in failures
    held = FeatureStore(store)
    assert sorted(held.ids) == sorted(set(_needed(knn)) - {victim})
    held.close()
    assert check_store(store).ok
    # The journal says which: delete it to try the image again.
    assert (store / JOURNAL_FILE).exists()


class KillAlways(ImageSource):
    """Kills the (isolated worker) process that reads ``victim``."""

    def __init__(self, folder: Path, victim: str) -> None:
        self.folder, self.victim = folder, victim

    def __contains__(self, image_id) -> bool:
        return True

    def prepare(self, ids) -> None:
        pass

    def read(self, image_id: str) -> bytes:
        if image_id == self.victim:
            os.kill(os.getpid(), signal.SIGKILL)
        return (self.folder / f"{image_id}.png").read_bytes()


def test_isolated_workers_finish_a_job_with_an_image_that_kills_them(job, tmp_path):
    """``isolate=True``: the victim kills its worker twice and fails; the job completes in
    one run (before: "3 work items failed after 3 restarts" on every run)."""
    base, knn = job
    victim = _needed(knn)[3]
    summary = rerank_shortlists(
        knn,
        KillAlways(base, victim),
        tmp_path / "s",
        tmp_path / "o.json",
        k=12,
        extractor=SPEC,
        workers=2,
        isolate=True,
        max_failed=1,
        batch_size=7,
    )
    assert summary["failed"] == 1 and not summary["complete"]
    assert summary["extracted"] == summary["ids_needed"] - 1
    assert (
        "killed its worker process 2 times (signal SIGKILL"
        in (tmp_path / "o.json.failures.tsv").read_text()
    )


# --- the failure budget is the job's ------------------------------------------------------------


def test_the_failure_budget_is_the_jobs_so_resumed_and_fresh_runs_agree(job, tmp_path):
    """One corrupt image of the job's 24 with ``max_failed=0.05`` (one image): a fresh run
    and a resumed run (only the corrupt image is left to try) give the same exit status,
    4 (done within the budget, incomplete). Before, the resumed run's budget was 5% of one
    image, and it exited 3."""
    from ilias_rerank.cli import main

    base, knn = job
    images = tmp_path / "images"
    (images / "img").mkdir(parents=True)
    for p in (base / "img").glob("*.png"):
        (images / "img" / p.name).write_bytes(p.read_bytes())
    corrupt = _needed(knn)[2]
    (images / f"{corrupt}.png").write_bytes(b"\x89PNG truncated")
    args = ["rerank-shortlists", "--shortlists", str(knn), "--images", str(images)]
    args += ["-k", "12", "--features", "64", "--max-side", "128", "--no-progress"]
    args += ["--max-failed", "0.05"]
    store = ["--store", str(tmp_path / "s")]
    assert len(_needed(knn)) >= 20
    fresh = main([*args, *store, "--out", str(tmp_path / "a.json")])
    resumed = main([*args, *store, "--out", str(tmp_path / "b.json")])
    assert fresh == resumed == 4
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    (images / f"{corrupt}.png").write_bytes((base / f"{corrupt}.png").read_bytes())
    assert main([*args, *store, "--out", str(tmp_path / "c.json")]) == 0  # complete now


@pytest.mark.parametrize(
    ("lists", "message"),
    [
        ({"q": {"a": 1e39, "b": 0.5}}, "expected finite float32 scores"),
        ({"q": {"a\nb": 1.0}}, "expected ids without line breaks"),
        ({"q\r": {"a": 1.0}}, "expected ids without line breaks"),
    ],
)
def test_shortlists_the_job_could_not_finish_are_refused_up_front(tmp_path, lists, message):
    path = tmp_path / "knn.json"
    path.write_text(json.dumps(lists))
    with pytest.raises(ir.InvalidInputError, match=message):
        rerank_shortlists(path, tmp_path, tmp_path / "s", tmp_path / "o.json", extractor=SPEC)
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").glob("shards/*"))


# --- signals ----------------------------------------------------------------------------------


def _slow_job(base: Path, knn: Path, tmp_path: Path, *extra: str) -> subprocess.Popen:
    code = "import sys; from ilias_rerank.cli import main; sys.exit(main(sys.argv[1:]))"
    args = ["rerank-shortlists", "--shortlists", str(knn), "--images", str(base)]
    args += ["--store", str(tmp_path / "s"), "--out", str(tmp_path / "o.json"), "-k", "12"]
    args += ["--features", "2048", "--max-side", "1024", "--no-progress", "--batch-size", "2"]
    args += ["--workers", "2", *extra]
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=dict(os.environ, PYTHONPATH=PYTHON_PATH),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def big_job(job, tmp_path_factory) -> tuple[Path, Path]:
    """The job's images at 1024 px (a few seconds to extract on two cores)."""
    base, knn = job
    big = tmp_path_factory.mktemp("big")
    (big / "img").mkdir()
    for p in (base / "img").glob("*.png"):
        with Image.open(p) as img:
            img.resize((1024, 1024), Image.Resampling.BICUBIC).save(big / "img" / p.name)
    return big, knn


def _wait_for_shards(store: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until the job has finished a few batches (the journal says so; they are registered
    only every 10 s, or on the way out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        journal = store / JOURNAL_FILE
        if journal.exists() and journal.read_text().count('"end"') >= 6:
            return
        time.sleep(0.02)
    raise AssertionError(f"no image finished (exit {proc.poll()}): {proc.stderr.read()}")


@pytest.mark.parametrize("isolate", [False, True])
def test_sigterm_runs_the_cleanup_and_exits_non_zero(big_job, tmp_path, isolate):
    """SIGTERM mid-extraction: the pool is shut down, finished shards are registered, the
    lock released, exit 143; no process of ours is left; the next run completes."""
    base, knn = big_job
    proc = _slow_job(base, knn, tmp_path, *(["--isolate"] if isolate else []))
    _wait_for_shards(tmp_path / "s", proc)
    ours = descendants(proc.pid)
    assert len(ours) == (2 if isolate else 0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143, proc.stderr.read()[-3000:]
    assert "stopped by SIGTERM" in proc.stderr.read()
    assert_no_survivors(ours)
    assert check_store(tmp_path / "s").ok
    registered = len(FeatureStore(tmp_path / "s"))
    assert 0 < registered < len(_needed(knn))
    assert not (tmp_path / "o.json").exists()  # not done: no output claims to be
    rest = _slow_job(base, knn, tmp_path)
    assert rest.wait(timeout=300) == 0, rest.stderr.read()[-3000:]


def test_isolated_workers_do_not_outlive_a_sigkilled_parent(big_job, tmp_path):
    base, knn = big_job
    proc = _slow_job(base, knn, tmp_path, "--isolate")
    _wait_for_shards(tmp_path / "s", proc)
    ours = descendants(proc.pid)
    assert len(ours) == 2
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert_no_survivors(ours, within=5.0)
