"""The shortlist job on Ray (issue 9): a real local Ray (``ray.init(num_cpus=2)``) and a
two-node cluster on this machine (``ray.cluster_utils.Cluster``) give byte-identical
result files to the local workers; Ray extraction writes the same features as local
extraction at the same torch thread count; an extraction actor killed mid-shard (SIGKILL)
is restarted by Ray and its batch resumes its own shard after its last commit: nothing
duplicated or lost. Without Ray installed, ``--ray`` names the extra to install."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_scale import COMMIT_EVERY, SPEC, smvs_job  # noqa: F401  (the fixture)

from ilias_rerank.scale import rerank_shortlists
from ilias_rerank.store import FeatureStore

ray = pytest.importorskip("ray")

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
SETTINGS = {"k": 8, "extractor": SPEC, "batch_size": 10}


@pytest.fixture(scope="module")
def local_result(smvs_job, tmp_path_factory):  # noqa: F811
    base, _, _, _ = smvs_job
    out = tmp_path_factory.mktemp("local")
    rerank_shortlists(base / "knn.json", base / "tars", out / "store", out / "r.json", **SETTINGS)
    return out


def _same_features(a: FeatureStore, b: FeatureStore) -> None:
    assert set(a) == set(b)
    for image_id in a:
        np.testing.assert_array_equal(a[image_id].keypoints, b[image_id].keypoints)
        np.testing.assert_array_equal(a[image_id].descriptors, b[image_id].descriptors)


def test_local_ray_gives_the_local_result(smvs_job, local_result, tmp_path):  # noqa: F811
    base, _, _, _ = smvs_job
    summary = rerank_shortlists(
        base / "knn.json",
        base / "tars",
        tmp_path / "store",
        tmp_path / "r.json",
        ray=True,
        workers=2,
        **SETTINGS,
    )
    assert not ray.is_initialized()  # the job shut down the Ray it started
    assert summary["backend"] == "ray" and summary["failed"] == 0
    assert (tmp_path / "r.json").read_bytes() == (local_result / "r.json").read_bytes()
    _same_features(FeatureStore(tmp_path / "store"), FeatureStore(local_result / "store"))


def test_a_two_node_cluster_gives_the_local_result(smvs_job, local_result, tmp_path):  # noqa: F811
    from ray.cluster_utils import Cluster

    base, _, _, _ = smvs_job
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        summary = rerank_shortlists(
            base / "knn.json",
            base / "tars",
            tmp_path / "store",
            tmp_path / "r.json",
            ray=True,
            ray_address=cluster.address,
            workers=2,
            **SETTINGS,
        )
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert summary["extracted"] == summary["ids_needed"]
    assert (tmp_path / "r.json").read_bytes() == (local_result / "r.json").read_bytes()


def _actor_pids() -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "_ExtractActor" in line]


def _committed(shard: Path) -> int:
    """Images committed to a shard (its manifest, the commit record); 0 if none yet."""
    try:
        return json.loads((shard / "manifest.json").read_text())["images"]
    except (OSError, ValueError, KeyError):
        return 0


def test_an_actor_killed_mid_shard_resumes_after_its_last_commit(smvs_job, local_result, tmp_path):  # noqa: F811
    """One actor, batches larger than the commit interval; the actor is SIGKILLed while its
    batch's shard holds a commit but not the whole batch (so it was busy on that batch).
    Ray restarts it, the batch resumes after its last commit (those images are reused, not
    extracted again): nothing duplicated or lost."""
    base, _, _, _ = smvs_job
    store = tmp_path / "store"
    batch_size = 24
    killed: list[tuple[int, str, int]] = []

    def killer() -> None:
        deadline = time.time() + 180
        while time.time() < deadline and not killed:
            for shard in (store / "shards").glob("b-*"):
                n = _committed(shard)
                pids = _actor_pids()
                if COMMIT_EVERY <= n < batch_size and len(pids) == 1:
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append((pids[0], shard.name, n))
                    return
            time.sleep(0.005)

    t = threading.Thread(target=killer)
    t.start()
    try:
        summary = rerank_shortlists(
            base / "knn.json",
            base / "tars",
            store,
            tmp_path / "r.json",
            ray=True,
            workers=1,
            **{**SETTINGS, "batch_size": batch_size, "merge": False},
        )
    finally:
        t.join()
    assert killed, "no extraction actor was killed mid-batch"
    assert summary["failed"] == 0
    # The store was fresh, so everything reused was committed by the killed actor's batch
    # before the kill: the actor was busy on it (after a commit, before the batch's end),
    # and the redone batch resumed after that commit instead of extracting it again.
    assert COMMIT_EVERY <= summary["reused"] < batch_size, (summary, killed)
    assert summary["extracted"] + summary["reused"] == summary["ids_needed"]
    s = FeatureStore(store, verify="full")
    assert len(s.ids) == len(set(s.ids)) == summary["ids_needed"]
    assert (tmp_path / "r.json").read_bytes() == (local_result / "r.json").read_bytes()


def test_ray_missing_names_its_extra(tmp_path):
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from ilias_rerank.cli import main\n"
        f"raise SystemExit(main(['rerank-shortlists', '--shortlists', {str(tmp_path / 'k.json')!r},"
        f" '--images', {str(tmp_path)!r}, '--store', {str(tmp_path / 's')!r},"
        f" '--out', {str(tmp_path / 'o.json')!r}, '--ray', '--no-progress']))\n"
    )
    (tmp_path / "k.json").write_text('{"q": {"a": 1.0}}')
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert "ilias-rerank[ray]" in out.stderr and "Traceback" not in out.stderr
