"""Process-level guarantees: re-ranking works in a child after ``fork()`` (as in a PyTorch
DataLoader worker) without deadlock, also through a multiprocessing fork pool; the thread
count set by ``ILIAS_RERANK_NUM_THREADS`` does not change results; and the portable
kernels (``ILIAS_RERANK_FORCE_PORTABLE=1``) agree with the SIMD ones: exactly for uint8
descriptors, the same ranking for float32. Each scenario runs in a fresh interpreter with
a timeout, so a deadlock fails the test instead of hanging the suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SETUP = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import ilias_rerank as ir
    g = np.random.default_rng(0)
    def feats(dtype, n=400):
        d = g.normal(size=(n, 64)).astype(np.float32)
        if dtype == "uint8":
            d = np.clip((d + 3) * 40, 0, 255).astype(np.uint8)
        fr = np.c_[g.uniform(2, 9, n), g.uniform(-180, 180, n)]
        return ir.LocalFeatures(g.uniform(0, 900, (n, 2)), d, fr, (800, 1000))
    def result(dtype, use_frames=True):
        q = feats(dtype)
        cands = [feats(dtype) for _ in range(6)]
        # Plant the query among the candidates, shifted: a verifiable true match.
        cands[3] = ir.LocalFeatures(q.keypoints + 7, q.descriptors, q.frames, (800, 1000))
        r = ir.rerank(q, cands, config={"use_frames": use_frames})
        order, scores, inliers = r.order.tolist(), r.scores.tolist(), r.inliers.tolist()
        return {"order": order, "scores": scores, "inliers": inliers}
    """
)


def run(code: str, env: dict | None = None, timeout: float = 120) -> dict:
    full_env = {**os.environ, **(env or {})}
    out = subprocess.run(
        [sys.executable, "-c", SETUP + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_rerank_works_in_a_forked_child():
    got = run(
        """
        parent = result("float32")
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            g = np.random.default_rng(0)  # same inputs as the parent's first call
            os.write(w, json.dumps(result("float32")).encode())
            os._exit(0)
        os.close(w)
        child = json.loads(os.read(r, 1 << 20).decode())
        os.waitpid(pid, 0)
        print(json.dumps({"parent": parent, "child": child}))
        """
    )
    assert got["child"] == got["parent"]
    assert got["child"]["order"][0] == 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_rerank_works_in_a_multiprocessing_fork_pool():
    got = run(
        """
        import multiprocessing as mp
        result("uint8")  # the parent's pools exist before the fork
        def work(_):
            return result("uint8")["order"][0]
        with mp.get_context("fork").Pool(2) as pool:
            firsts = pool.map(work, range(4))
        print(json.dumps({"firsts": firsts}))
        """
    )
    assert got["firsts"] == [3, 3, 3, 3]


@pytest.mark.parametrize("use_frames", [True, False])  # frame hypotheses, seeded RANSAC
def test_thread_count_from_the_environment_does_not_change_results(use_frames):
    code = f'print(json.dumps(result("float32", use_frames={use_frames})))'
    one = run(code, {"ILIAS_RERANK_NUM_THREADS": "1"})
    many = run(code, {"ILIAS_RERANK_NUM_THREADS": "5"})
    assert one == many
    assert one["order"][0] == 3 and one["inliers"][3] >= 300


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_portable_kernels_agree_with_simd(dtype):
    code = f'print(json.dumps({{"isa": ir.cpu_features(), **result("{dtype}")}}))'
    simd = run(code)
    portable = run(code, {"ILIAS_RERANK_FORCE_PORTABLE": "1"})
    assert portable["isa"] == "portable"
    assert portable["order"][0] == simd["order"][0] == 3
    if dtype == "uint8":
        assert portable == {**simd, "isa": "portable"}
        # Where the AMX kernel runs, the VNNI kernel gives the same result too.
        vnni = run(code, {"ILIAS_RERANK_NO_AMX": "1"})
        assert vnni["isa"] != "avx512-amx"
        assert vnni == {**simd, "isa": vnni["isa"]}
    else:
        assert portable["inliers"] == simd["inliers"]
