"""``ilias-rerank vocabulary train``: a vocabulary from a store, its record naming the
store; a store of non-RootSIFT descriptors is refused with a clear error."""

from __future__ import annotations

import json

import numpy as np

import ilias_rerank as ir
from ilias_rerank.cli import main
from ilias_rerank.codes import Vocabulary
from ilias_rerank.store import StoreWriter


def _store(path, dim=128, images=6, n=300):
    rng = np.random.default_rng(0)
    with StoreWriter(path) as w:
        for i in range(images):
            d = (rng.random((n, dim)) * 255).astype(np.uint8)
            kp = (rng.random((n, 2)) * 100).astype(np.float32)
            w.add(f"img{i}", ir.LocalFeatures(kp, d, None, (100, 100)))


def test_trains_from_a_store_and_records_it(tmp_path, capsys):
    _store(tmp_path / "s")
    out = tmp_path / "v.npz"
    assert (
        main(["vocabulary", "train", str(tmp_path / "s"), "--out", str(out), "--no-progress"]) == 0
    )
    voc = Vocabulary.load(out)
    record = json.loads(voc.trained_on)
    assert record["images"] == 6 and record["descriptors"] == 1800
    assert str(tmp_path / "s") in record["source"]
    assert json.loads(capsys.readouterr().out)["vocabulary"] == voc.name


def test_refuses_descriptors_that_are_not_rootsift(tmp_path, capsys):
    _store(tmp_path / "s", dim=64)
    code = main(["vocabulary", "train", str(tmp_path / "s"), "--out", str(tmp_path / "v.npz")])
    assert code == 2
    assert "expected (128,)-dimensional" in capsys.readouterr().err
    assert not (tmp_path / "v.npz").exists()
