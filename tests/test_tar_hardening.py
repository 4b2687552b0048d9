"""Tar headers are data, not promises (issue 15): a member declaring more bytes than the
tar holds is that image's ImageReadError naming the tar and the member, never a
MemoryError or an anonymous ValueError; a cached index is checked on its offsets, not just
the tar's size and mtime; a name that appears twice (``tar -r``) is read as tar reads it
(the last one wins); after ``prepare()`` a pickled source carries only the job's ids."""

from __future__ import annotations

import io
import pickle
import tarfile

import numpy as np
import pytest

import ilias_rerank as ir
from ilias_rerank.sources import TarSource


def _tar(path, members):
    with tarfile.open(path, "w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _declare(path, name: str, size: int) -> None:
    """Rewrite member ``name``'s header to declare ``size`` bytes (octal or base-256)."""
    data = bytearray(path.read_bytes())
    at = data.index(name.encode())
    header = data[at : at + 512]
    if size < 8**11:
        header[124:136] = f"{size:011o}\0".encode()
    else:  # GNU base-256
        header[124:136] = bytes([0x80]) + size.to_bytes(11, "big")
    header[148:156] = b"        "
    header[148:156] = f"{sum(header):06o}\0 ".encode()
    data[at : at + 512] = header
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("size", [1 << 40, 10**25])
def test_a_member_declaring_more_than_the_tar_holds_is_named(tmp_path, size):
    tar = _tar(tmp_path / "t.tar", [("a.jpg", b"x" * 100), ("b.jpg", b"y" * 100)])
    _declare(tar, "b.jpg", size)
    src = TarSource([tar], index_dir=tmp_path / "idx")
    assert src.read("a") == b"x" * 100
    with pytest.raises(ir.ImageReadError, match=r"'b'.*t\.tar.*declares"):
        src.read("b")


def test_a_cached_index_is_checked_on_its_offsets(tmp_path):
    tar = _tar(tmp_path / "t.tar", [("a.jpg", b"x" * 100)])
    TarSource([tar], index_dir=tmp_path / "idx")
    cache = next((tmp_path / "idx").glob("*.npz"))
    with np.load(cache) as z:
        parts = dict(z)
    parts["offsets"] = parts["offsets"] + 10**9
    np.savez(cache, **parts)
    assert TarSource([tar], index_dir=tmp_path / "idx").read("a") == b"x" * 100


def test_a_name_that_appears_twice_reads_the_last_one(tmp_path):
    tar = _tar(tmp_path / "t.tar", [("a.jpg", b"old"), ("b.jpg", b"b"), ("a.jpg", b"new")])
    src = TarSource([tar], index_dir=tmp_path / "idx")
    assert src.read("a") == b"new" and src.read("b") == b"b" and len(src) == 2


def test_after_prepare_a_pickled_source_carries_only_the_jobs_ids(tmp_path):
    members = [(f"m{k:05d}.jpg", b"z") for k in range(3000)]
    tar = _tar(tmp_path / "t.tar", members)
    src = TarSource([tar], index_dir=tmp_path / "idx")
    full = len(pickle.dumps(src))
    src.prepare(["m00001", "m00002"])
    small = pickle.dumps(src)
    assert len(small) < full / 20
    assert pickle.loads(small).read("m00002") == b"z"
