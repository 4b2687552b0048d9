"""The shortlist job on Ray (issue 9): a real local Ray (``ray.init(num_cpus=2)``) and a
two-node cluster on this machine (``ray.cluster_utils.Cluster``) give byte-identical
result files to the local workers; Ray extraction writes the same features as local
extraction at the same torch thread count; an extraction actor killed mid-shard (SIGKILL)
is restarted by Ray and its batch resumes its own shard: nothing duplicated or lost.
Without Ray installed, ``--ray`` names the extra to install."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from test_scale import SPEC, smvs_job  # noqa: F401  (the fixture)

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


def test_an_actor_killed_mid_shard_loses_and_duplicates_nothing(smvs_job, local_result, tmp_path):  # noqa: F811
    base, _, _, _ = smvs_job
    store = tmp_path / "store"
    killed: list[int] = []

    def killer() -> None:
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            shards = list((store / "shards").glob("b-*/manifest.json"))
            pids = _actor_pids()
            if shards and pids:
                time.sleep(0.5)  # a few images into a batch
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.05)

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
            **SETTINGS,
        )
    finally:
        t.join()
    assert killed, "no extraction actor was found to kill"
    assert summary["failed"] == 0
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
