"""Issue 15, item 10 (the smaller findings): inputs that escaped the package's error
classes, unbounded work in the raw bindings, a store of other features used silently, two
copies of the head-and-tail logic, the consensus support of pseudo-queries."""

from __future__ import annotations

import numpy as np
import pytest

import ilias_rerank as ir
from ilias_rerank import _core
from ilias_rerank.reranker import load_similarities


@pytest.mark.parametrize("score", ["null", "1" + "0" * 400, '"x"', "[1]", "true"])
def test_json_scores_that_are_not_finite_numbers_are_format_errors(tmp_path, score):
    path = tmp_path / "s.json"
    path.write_text('{"q": {"a": ' + score + "}}")
    with pytest.raises(ir.FormatError, match=r"expected .*number.* got"):
        load_similarities(path)


def test_a_0d_query_ids_array_in_an_npz_is_a_format_error(tmp_path):
    path = tmp_path / "s.npz"
    np.savez(
        path,
        query_ids=np.array("q"),
        db_ids=np.array(["a", "b"]),
        sims=np.zeros((1, 2), np.float32),
        ranks=np.zeros((1, 2), np.int64),
    )
    with pytest.raises(ir.FormatError, match="query_ids: expected a 1-d array"):
        load_similarities(path)


def test_unknown_config_keys_and_bools_for_ints_are_config_errors():
    with pytest.raises(ir.ConfigError, match=r"bogus.*expected one of"):
        ir.RerankConfig(**{"bogus": 1})
    with pytest.raises(ir.ConfigError, match="bogus"):
        ir.verify_pair(
            ir.LocalFeatures(np.zeros((0, 2)), np.zeros((0, 8), np.float32)),
            ir.LocalFeatures(np.zeros((0, 2)), np.zeros((0, 8), np.float32)),
            config={"bogus": 1},
        )
    with pytest.raises(ir.ConfigError, match=r"config.expansion: expected an int, got True"):
        ir.RerankConfig(expansion=True)
    assert ir.RerankConfig(expansion=2).expansion == 2
    assert ir.RerankConfig(mutual=False).mutual is False


def test_kernel_throughput_sizes_are_bounded_without_overflow():
    with pytest.raises(ir.ConfigError, match="kernel_throughput: expected"):
        _core.kernel_throughput(2**62, 1, 4)
    with pytest.raises(ir.ConfigError, match="kernel_throughput: expected"):
        _core.kernel_throughput(1, 2**62, 4)
    assert _core.kernel_throughput(8, 8, 4, repeats=1) > 0


def test_given_correspondences_are_bounded():
    k = (1 << 15) + 1
    pts = np.zeros((k, 2), np.float32)
    frames = np.ones((k, 2), np.float32)
    with pytest.raises(ir.ShapeError, match="expected at most 32768 given correspondences"):
        ir.verify_correspondences(pts, pts)
    with pytest.raises(ir.ShapeError, match="expected at most 32768 given correspondences"):
        ir.frame_hypotheses(pts, pts, frames, frames)


def _obj(g, n):
    return (
        g.uniform(0, 800, (n, 2)).astype(np.float32),
        g.integers(0, 256, (n, 64)).astype(np.uint8),
        np.c_[g.uniform(2, 9, n), g.uniform(-180, 180, n)].astype(np.float32),
    )


def _img(*parts, shift=(0.0, 0.0)):
    return ir.LocalFeatures(
        np.concatenate([p[0] for p in parts]) + np.float32(shift),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
        (800, 1000),
    )


def test_consensus_with_one_pseudo_query_keeps_it_with_what_it_verifies():
    """With one pseudo-query, the top candidate is scored by its strongest link, not 0:
    it stays level with the candidate it verifies, above the unverified ones."""
    g = np.random.default_rng(3)
    a = _obj(g, 200)
    cands = [_img(a), _img(_obj(g, 200)), _img(a, shift=(9, -4)), _img(_obj(g, 200))]
    r = ir.rerank_consensus(cands, np.array([0.9, 0.8, 0.7, 0.6], np.float32), pseudo_queries=1)
    assert list(r.expansion) == [0]
    assert list(r.order[:2]) == [0, 2], r.support
    assert r.support[0] == r.support[2] >= 150


def _tar(path, ids):
    import io
    import tarfile

    with tarfile.open(path, "w") as tf:
        for i in ids:
            data = f"bytes of {i}".encode()
            info = tarfile.TarInfo(f"{i}.jpg")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_images_given_as_several_globs_or_a_tar_and_a_glob(tmp_path):
    from ilias_rerank.sources import open_source

    for sub, ids in (("a", ["a1", "a2"]), ("b", ["b1"]), ("c", ["c1"])):
        (tmp_path / sub).mkdir()
        _tar(tmp_path / sub / "part.tar", ids)
    for spec in (
        [str(tmp_path / "a" / "*.tar"), str(tmp_path / "b" / "*.tar")],
        [str(tmp_path / "c" / "part.tar"), str(tmp_path / "[ab]" / "*.tar")],
    ):
        source = open_source(spec, index_dir=tmp_path / "index")
        source.prepare(["a1", "b1"])
        assert source.read("a1") == b"bytes of a1" and source.read("b1") == b"bytes of b1"
    with pytest.raises(ir.ImageReadError, match="no file matches"):
        open_source([str(tmp_path / "a" / "*.tar"), str(tmp_path / "z*.tar")])


def test_a_store_of_other_features_is_refused_even_when_nothing_is_missing(tmp_path):
    from ilias_rerank.reranker import save_similarities
    from ilias_rerank.scale import rerank_shortlists
    from ilias_rerank.scale.extraction import ExtractorSpec
    from ilias_rerank.store import StoreWriter, register_shards, shard_path

    g = np.random.default_rng(0)
    sift = ExtractorSpec("sift", num_features=64, max_side=256)
    params = {"name": sift.manifest_name(), "num_features": 64, "max_side": 256}
    with StoreWriter(shard_path(tmp_path / "s", "b-0"), params) as w:
        for i in ("q", "a", "b"):
            w.add(
                i,
                ir.LocalFeatures(
                    g.uniform(0, 200, (20, 2)).astype(np.float32),
                    g.normal(size=(20, 8)).astype(np.float32),
                    image_size=(256, 256),
                ),
            )
    register_shards(tmp_path / "s", ["b-0"])
    save_similarities(tmp_path / "k.json", {"q": {"a": 0.9, "b": 0.5}})
    run = dict(k=2, merge=False, progress=False)
    out = rerank_shortlists(
        tmp_path / "k.json", tmp_path, tmp_path / "s", tmp_path / "o.json", extractor=sift, **run
    )
    assert out["extracted"] == 0
    # The message says how to ask for the store's extractor (here the default SIFT's).
    hint = "--method sift --backend rust"
    with pytest.raises(ir.ConfigError, match=rf"expected features of 'kornia-aliked'.*{hint}"):
        rerank_shortlists(
            tmp_path / "k.json",
            tmp_path,
            tmp_path / "s",
            tmp_path / "o.json",
            extractor=ExtractorSpec("aliked", device="cpu"),
            **run,
        )


def test_a_job_without_an_extractor_reranks_any_store_and_extracts_nothing(tmp_path, capsys):
    """``extractor=None`` (``--method store``): features some other tool made are
    re-ranked as they are; an id the store lacks is an error before any work."""
    from ilias_rerank.reranker import load_similarities, save_similarities
    from ilias_rerank.scale import rerank_shortlists
    from ilias_rerank.store import StoreWriter, register_shards, shard_path

    g = np.random.default_rng(1)
    base = g.uniform(0, 200, (40, 2)).astype(np.float32)
    desc = g.integers(0, 255, (40, 128), dtype=np.uint8)

    def shot(shift, same):
        d = desc if same else g.integers(0, 255, (40, 128), dtype=np.uint8)
        return ir.LocalFeatures(base + shift, d, image_size=(256, 256))

    with StoreWriter(shard_path(tmp_path / "s", "b-0"), {"name": "my-own-features"}) as w:
        w.add("q", shot(0, True))
        w.add("same", shot(5, True))
        w.add("other", shot(0, False))
    register_shards(tmp_path / "s", ["b-0"])
    save_similarities(tmp_path / "k.json", {"q": {"other": 0.9, "same": 0.5}})
    run = dict(k=2, merge=False, progress=False, extractor=None)
    out = rerank_shortlists(
        tmp_path / "k.json", tmp_path / "no-images", tmp_path / "s", tmp_path / "o.json", **run
    )
    assert out["extracted"] == 0
    assert next(iter(load_similarities(tmp_path / "o.json")["q"])) == "same"  # verified first
    save_similarities(tmp_path / "k2.json", {"q": {"same": 0.9, "absent": 0.5}})
    with pytest.raises(ir.InvalidInputError, match=r"lacks 1 of the 3 ids.*extracts nothing"):
        rerank_shortlists(
            tmp_path / "k2.json", tmp_path, tmp_path / "s", tmp_path / "o2.json", **run
        )
    assert not (tmp_path / "o2.json").exists()
    # The CLI: --method store needs no --images; any other method does.
    from ilias_rerank.cli import main

    cli = ["rerank-shortlists", "--shortlists", str(tmp_path / "k.json"), "--store"]
    cli += [str(tmp_path / "s"), "--out", str(tmp_path / "o3.json"), "-k", "2", "--no-progress"]
    assert main([*cli, "--method", "store", "--no-merge"]) == 0
    assert next(iter(load_similarities(tmp_path / "o3.json")["q"])) == "same"
    assert main(cli) != 0  # sift, no --images: refused before any work
    assert "expected --images" in capsys.readouterr().err


def test_pca_whitening_fit_makes_nothing_n_by_d_in_float64():
    import tracemalloc

    from ilias_rerank.global_features import PcaWhitening

    n, dim = 4000, 256  # the covariance branch (dim <= n)
    x = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    tracemalloc.start()
    try:
        PcaWhitening(16).fit(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < n * dim * 8, f"peak {peak / 1e6:.1f} MB"


def test_the_pipeline_reranks_the_head_by_score_not_by_the_mapping_order(tmp_path):
    from ilias_rerank.pipeline import Workspace

    g = np.random.default_rng(1)
    obj = _obj(g, 100)
    feats = {"q": _img(obj), "good": _img(obj, shift=(5, 5))}
    feats |= {f"x{i}": _img(_obj(g, 100)) for i in range(3)}
    p = object.__new__(Workspace)
    p.k, p.config, p.workdir, p.progress, p.timing = 2, None, tmp_path, False, {}
    p.extract = lambda: (feats, feats)
    # In the mapping's order "good" is third, by score it is second: in the head (k=2).
    sims = {"q": {"x0": 0.9, "x1": 0.1, "good": 0.8, "x2": 0.5}}
    reranked, _ = p.rerank(sims)
    assert list(reranked["q"]) == ["good", "x0", "x2", "x1"]


def test_a_gpu_job_on_ray_is_checked_in_the_driver_without_a_gpu():
    """Issue 15 item 7: a driver without a GPU plans a `--device cuda --ray ADDRESS` job
    (its workers have the GPU): the device's spelling is checked here, its presence where
    the extractor runs; a local GPU job still needs a GPU here."""
    pytest.importorskip("torch")
    import torch

    from ilias_rerank.errors import ConfigError
    from ilias_rerank.scale.extraction import ExtractorSpec

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the driver-side check would pass anyway")
    # No recorded GPU run: a GPU device keeps the CPU default (issue 23), the rust backend
    assert ExtractorSpec(device="cuda", num_features=256).params(remote=True)["name"] == (
        "rust-sift-rootsift"
    )
    spec = ExtractorSpec(device="cuda", num_features=256, backend="kornia")
    params = spec.params(remote=True)
    assert params["name"] == "kornia-sift-rootsift"
    with pytest.raises(ConfigError, match="no CUDA device here"):
        spec.params(remote=False)
    with pytest.raises(ConfigError, match="device: expected 'cpu', 'cuda'"):
        ExtractorSpec(device="gpu0").params(remote=True)
