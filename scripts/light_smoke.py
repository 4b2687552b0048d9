"""Smoke test of the light install (run by scripts/light_install.sh in a venv holding only
the wheel and numpy): what `pip install ilias-rerank` promises works (re-ranking, the
store, evaluation, and extraction from JPEG and PNG photos with ``backend="rust"``), and
what it does not bring says which extra to install."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

installed = sorted(d.metadata["Name"].lower() for d in importlib.metadata.distributions())
tools = ("pip", "setuptools", "wheel")  # what a fresh venv holds anyway
extra = [d for d in installed if d not in ("numpy", "ilias-rerank", "ilias_rerank", *tools)]
assert not extra, f"the light install pulled in more than numpy: {extra}"

t0 = time.perf_counter()
import numpy as np  # noqa: E402

t1 = time.perf_counter()
import ilias_rerank as ir  # noqa: E402

t2 = time.perf_counter()
heavy = [
    m for m in ("torch", "PIL", "kornia", "faiss", "h5py", "tqdm", "skimage") if m in sys.modules
]
assert not heavy, f"import ilias_rerank loaded {heavy}"
assert "site-packages" in ir.__file__, ir.__file__

# rerank(): a planted true candidate among random ones.
g = np.random.default_rng(0)
n = 400
kp = g.uniform(0, 900, (n, 2)).astype(np.float32)
desc = g.integers(0, 256, (n, 128)).astype(np.uint8)
frames = np.c_[g.uniform(2, 9, n), g.uniform(-180, 180, n)].astype(np.float32)
query = ir.LocalFeatures(kp, desc, frames, (800, 1000))
others = [
    ir.LocalFeatures(
        g.uniform(0, 900, (n, 2)), g.integers(0, 256, (n, 128)).astype(np.uint8), frames
    )
    for _ in range(5)
]
true = ir.LocalFeatures(kp + 5, desc, frames, (800, 1000))
result = ir.rerank(query, [*others[:3], true, *others[3:]], np.linspace(1, 0.5, 6))
assert result.order[0] == 3 and result.inliers[3] >= 300, result
pair = ir.verify_pair(query, true)
assert pair.num_inliers >= 300 and pair.transform is not None
given = ir.verify_correspondences(kp, kp + 5)
assert given.num_inliers == n
assert (ir.frame_hypotheses(kp, kp + 5, frames, frames) == n).all()
try:
    ir.RerankConfig(local_optimisation_rounds=10**9)
    raise AssertionError("a billion LO rounds were accepted")
except ir.ConfigError:
    pass

# Quantised matching: the vocabulary ships inside the wheel and needs numpy alone.
from ilias_rerank.codes import default_vocabulary, quantise  # noqa: E402

voc = default_vocabulary()
assert "no evaluation set" in voc.trained_on and "site-packages" in str(
    Path(sys.modules["ilias_rerank.codes"].__file__)
)
coded = ir.rerank(quantise(query, words=5), [quantise(f, words=1) for f in [*others, true]])
assert coded.order[0] == 5 and coded.inliers[5] >= 100, coded

# The store, the Reranker and the result files.
from ilias_rerank.evaluation import ilias_map, shortlist_metrics  # noqa: E402

with tempfile.TemporaryDirectory() as tmp:
    with ir.StoreWriter(Path(tmp) / "db", {"name": "smoke"}) as w:
        for i, f in enumerate([*others, true]):
            w.add(f"img{i}", f)
    store = ir.FeatureStore(Path(tmp) / "db", verify="full")
    sims = ir.Reranker(store).rerank_many({"q": query}, {"q": [f"img{i}" for i in range(6)]})
    assert next(iter(sims["q"])) == "img5"
    from ilias_rerank.reranker import load_similarities, save_similarities

    for suffix in (".json", ".npz"):
        save_similarities(Path(tmp) / f"sims{suffix}", sims)
        assert list(load_similarities(Path(tmp) / f"sims{suffix}")["q"]) == list(sims["q"])
    try:
        store["nope"]
        raise AssertionError("an unknown id was found")
    except ir.MissingIdError:
        pass
ev = ilias_map(sims, {"q": {"img5"}})
assert ev.map == 1.0 and ev.queries_evaluated == 1
assert shortlist_metrics([0, 1], [0.2, 0.9])["ap"] == 1.0

# Extraction with numpy alone: the rust backend decodes JPEG and PNG photos itself, and the
# re-ranking finds each photo's planar pair (known homographies, shared data).
photos = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "homogr_evd"
pairs = [("BostonA.jpg", "BostonB.jpg"), ("adamA.png", "adamB.png"), ("grafA.png", "grafB.png")]
extracted = "skipped: no shared data"
if photos.is_dir():
    t3 = time.perf_counter()
    a = ir.extract_local([photos / p for p, _ in pairs], backend="rust", workers=1)
    b = ir.extract_local([str(photos / p) for _, p in pairs], backend="rust", workers=1)
    b += ir.extract_local([(photos / "BostonB.jpg").read_bytes()], backend="rust", workers=1)
    assert "PIL" not in sys.modules and "cv2" not in sys.modules, "extraction imported an extra"
    assert all(len(f) >= 200 for f in a + b), [len(f) for f in a + b]
    assert np.array_equal(b[3].descriptors, b[0].descriptors)  # bytes and paths agree
    for i, query in enumerate(a):
        ranked = ir.rerank(query, b[:3], np.zeros(3, np.float32))
        assert ranked.order[0] == i and ranked.inliers[i] >= 15, (pairs[i], ranked)
    extracted = f"ok: {len(a) + len(b)} photos in {time.perf_counter() - t3:.1f} s"

# The default backend (rust) extracts with numpy alone; what needs an extra says which:
# the OpenCV backend.
rng = np.random.default_rng(0)
(plain,) = ir.extract_local([(rng.random((96, 128)) * 255).astype(np.uint8)], workers=1)
assert len(plain) > 0 and "PIL" not in sys.modules and "cv2" not in sys.modules
try:
    ir.extract_local(np.zeros((64, 64), np.uint8), backend="opencv")
    raise AssertionError("extraction with backend='opencv' worked without OpenCV and Pillow")
except ir.MissingExtraError as exc:
    assert exc.extra == "extract" and "ilias-rerank[extract]" in str(exc), exc
    assert isinstance(exc, ImportError)
with tempfile.TemporaryDirectory() as tmp:
    cli = subprocess.run(
        [str(Path(sys.executable).with_name("ilias-rerank")), "run", "--workdir", tmp],
        capture_output=True,
        text=True,
        check=False,
    )
assert cli.returncode == 2, cli
assert "pip install 'ilias-rerank[" in cli.stderr and "Traceback" not in cli.stderr, cli.stderr

print(
    json.dumps(
        {
            "light_install": "ok",
            "extract_rust": extracted,
            "packages": installed,
            "import_numpy_s": round(t1 - t0, 3),
            "import_ilias_rerank_s": round(t2 - t1, 3),
        }
    )
)
