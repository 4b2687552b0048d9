"""The hostile-images battery (issue 21): images a user may hold, each through
``extract_local``, ``ilias-rerank extract`` and ``rerank-shortlists``.

- hostile files: blank, uniform, 1 x 1, a declared 20,000 x 20,000 PNG (a decompression
  bomb), a truncated JPEG, a zero-byte file, a text file named ``.jpg`` (and, through the
  pool's isolated processes, an image that kills its process: ``tests/test_pool.py``);
- real photos (scikit-image's, always present; one of ``../shared/data`` when present) in
  every encoding: CMYK JPEG, 16-bit PNG and TIFF, ``uint16`` arrays, palette and
  animated GIF, alpha PNG, EXIF-rotated JPEG.

Every photo gives the features of its 8-bit version (exactly where the encoding is
lossless, within a tolerance where it is not); every broken file is named as a failure and
costs only itself; a featureless image is stored with no features; the store stays
healthy (``store check``) and the next run extends it.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image
from skimage import data as skdata

import ilias_rerank as ir
from ilias_rerank.reranker import save_similarities
from ilias_rerank.store import FeatureStore, check_store

pytest.importorskip("cv2")

FEATURES = 256
#: Files that cannot be read: each must be a named failure.
BROKEN = ("bomb.png", "truncated.jpg", "empty.jpg", "text.jpg")
#: Images with nothing to detect: stored with no features.
FEATURELESS = ("blank.png", "uniform.png", "one_pixel.png")


def _png_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _bomb() -> bytes:
    """A PNG whose header declares 20,000 x 20,000 pixels (400 MP; a few bytes of data)."""
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _photos() -> dict[str, np.ndarray]:
    """RGB uint8 photos: scikit-image's, and one of the shared set when present."""
    photos = {"astronaut": skdata.astronaut(), "coffee": skdata.coffee()}
    shared = sorted((SHARED_DATA / "roxford_rparis_pixel_subset").glob("*/*/*.jpg"))
    if shared:
        with Image.open(shared[0]) as img:
            photos["shared"] = np.asarray(img.convert("RGB"))
    return photos


def _encodings(rgb: np.ndarray) -> dict[str, tuple[bytes | np.ndarray, str]]:
    """Every encoding of one photo: name -> (file bytes or array, how it compares with the
    8-bit greyscale PNG: "exact" or "close")."""
    img = Image.fromarray(rgb)
    grey = img.convert("L")
    g16 = np.asarray(grey).astype(np.uint16) * 257
    out: dict[str, tuple[bytes | np.ndarray, str]] = {}
    out["png16.png"] = (_png_bytes(Image.fromarray(g16)), "exact")
    buf = io.BytesIO()
    Image.fromarray(g16).save(buf, format="TIFF")
    out["tiff16.tif"] = (buf.getvalue(), "exact")
    out["array16"] = (g16, "exact")
    out["alpha.png"] = (_png_bytes(grey.convert("LA")), "exact")
    out["rgba.png"] = (_png_bytes(img.convert("RGBA")), "close")
    buf = io.BytesIO()
    img.convert("CMYK").save(buf, format="JPEG", quality=95)
    out["cmyk.jpg"] = (buf.getvalue(), "close")
    palette = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    buf = io.BytesIO()
    palette.save(buf, format="GIF")
    out["palette.gif"] = (buf.getvalue(), "close")
    buf = io.BytesIO()
    second = Image.fromarray(255 - rgb).convert("P", palette=Image.Palette.ADAPTIVE)
    palette.save(buf, format="GIF", save_all=True, append_images=[second], duration=100)
    out["animated.gif"] = (buf.getvalue(), "close")  # the first frame is the image
    # Stored rotated a quarter turn, with the EXIF orientation that turns it back.
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed = stored rotated 90 degrees clockwise
    buf = io.BytesIO()
    img.transpose(Image.Transpose.ROTATE_90).save(buf, format="JPEG", quality=95, exif=exif)
    out["exif_rotated.jpg"] = (buf.getvalue(), "close")
    return out


def _close(ref: ir.LocalFeatures, got: ir.LocalFeatures) -> float:
    """Fraction of the reference's keypoints with a keypoint of ``got`` within 2 px."""
    if len(ref) == 0 or len(got) == 0:
        return 0.0
    d = np.linalg.norm(ref.keypoints[:, None, :] - got.keypoints[None, :, :], axis=2)
    return float((d.min(axis=1) <= 2.0).mean())


def _same(a: ir.LocalFeatures, b: ir.LocalFeatures) -> bool:
    return (
        a.image_size == b.image_size
        and np.array_equal(a.keypoints, b.keypoints)
        and np.array_equal(a.descriptors, b.descriptors)
    )


@pytest.fixture(scope="module")
def battery(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A folder of every hostile file and every encoding of every photo; returns it and
    ``{file name: "broken" | "featureless" | "exact:<ref>" | "close:<ref>" | "ref"}``."""
    folder = tmp_path_factory.mktemp("hostile")
    kinds: dict[str, str] = {}
    Image.fromarray(np.zeros((256, 256), np.uint8)).save(folder / "blank.png")
    Image.fromarray(np.full((256, 256), 128, np.uint8)).save(folder / "uniform.png")
    Image.fromarray(np.full((1, 1), 200, np.uint8)).save(folder / "one_pixel.png")
    (folder / "bomb.png").write_bytes(_bomb())
    buf = io.BytesIO()
    Image.fromarray(skdata.astronaut()).save(buf, format="JPEG", quality=90)
    (folder / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not an image\n")
    kinds.update({n: "broken" for n in BROKEN})
    kinds.update({n: "featureless" for n in FEATURELESS})
    for name, rgb in _photos().items():
        ref = f"{name}_ref.png"
        Image.fromarray(rgb).convert("L").save(folder / ref)
        kinds[ref] = "ref"
        for enc, (data, how) in _encodings(rgb).items():
            if isinstance(data, np.ndarray):
                continue  # arrays: extract_local only
            (folder / f"{name}_{enc}").write_bytes(data)
            kinds[f"{name}_{enc}"] = f"{how}:{ref}"
    return folder, kinds


def _check_features(features: dict[str, ir.LocalFeatures | None], kinds: dict[str, str]) -> None:
    for name, kind in kinds.items():
        got = features.get(name)
        if kind == "featureless":
            assert got is not None and len(got) == 0, name
        elif kind.startswith(("exact:", "close:")):
            how, ref = kind.split(":")
            assert got is not None and features[ref] is not None, name
            if how == "exact":
                assert _same(features[ref], got), name
            else:  # lossy or re-quantised encodings: most keypoints in the same places
                assert abs(len(got) - len(features[ref])) <= 0.2 * len(features[ref]), name
                assert _close(features[ref], got) >= 0.6, (name, _close(features[ref], got))
        elif kind == "ref":
            assert got is not None and len(got) >= FEATURES // 2, name


@pytest.mark.parametrize("backend", [None, "opencv"])
def test_extract_local_names_every_broken_file_and_reads_every_encoding(battery, backend):
    # None: the default, the rust backend (JPEG and PNG decoded by the core, GIF and TIFF
    # by Pillow as the OpenCV backend reads them).
    folder, kinds = battery
    names = sorted(kinds)
    broken = set(BROKEN)
    with pytest.raises(ir.ExtractionError) as err:
        ir.extract_local(
            [folder / n for n in names], num_features=FEATURES, workers=2, backend=backend
        )
    failed = {names[i] for i in err.value.failures}
    assert failed == broken, failed
    message = str(err.value)
    bomb = "decompression bomb" if backend == "opencv" else "image too large"
    assert "bomb.png" in message and bomb in message.lower()
    for n in broken:
        assert str(folder / n) in message
    _check_features(dict(zip(names, err.value.results, strict=True)), kinds)
    # Arrays: uint16 is scaled like a 16-bit file, never clipped (a white image before).
    for name, rgb in _photos().items():
        g16 = _encodings(rgb)["array16"][0]
        ref = ir.extract_local(folder / f"{name}_ref.png", num_features=FEATURES, backend=backend)
        got = ir.extract_local(g16, num_features=FEATURES, backend=backend)
        assert _same(ref[0], got[0]), name


def test_isolated_workers_give_the_same_battery_results(battery):
    folder, kinds = battery
    names = sorted(kinds)
    with pytest.raises(ir.ExtractionError) as err:
        ir.extract_local(
            [folder / n for n in names], num_features=FEATURES, workers=2, isolate=True
        )
    assert {names[i] for i in err.value.failures} == set(BROKEN)
    _check_features(dict(zip(names, err.value.results, strict=True)), kinds)


def _shortlists(path: Path, names: list[str], queries: list[str]) -> None:
    """Every query's shortlist: every other file (ids without the extension)."""
    ids = [n.rsplit(".", 1)[0] if "." in n else n for n in names]
    knn = {}
    for q in queries:
        qid = q.rsplit(".", 1)[0]
        cands = [i for i in ids if i != qid]
        knn[qid] = {c: 1.0 - k / len(cands) for k, c in enumerate(cands)}
    save_similarities(path, knn)


def test_rerank_shortlists_names_the_culprits_and_keeps_a_healthy_extendable_store(
    battery, tmp_path
):
    """The job over the battery: exit 4 (done within ``--max-failed 100%``, incomplete),
    the broken files (only) in the failures file, a clean ``store check``; a second job
    with a new image extends the store."""
    from ilias_rerank.cli import main

    folder, kinds = battery
    # rerank-shortlists reads ids as file names without the extension: one encoding per
    # id, so the battery's files are linked under distinct stems.
    images = tmp_path / "images"
    images.mkdir()
    for name in kinds:
        stem, ext = name.rsplit(".", 1)
        (images / f"{stem}-{ext}.{ext}").symlink_to(folder / name)
    names = sorted(p.name for p in images.iterdir())
    photos = [n for n in names if n.endswith("_ref-png.png")]
    knn = tmp_path / "knn.json"
    _shortlists(knn, names, photos)
    store = tmp_path / "store"
    args = ["rerank-shortlists", "--shortlists", str(knn), "--images", str(images)]
    args += ["--store", str(store), "-k", "100", "--features", str(FEATURES)]
    args += ["--no-progress", "--max-failed", "100%", "--workers", "2"]
    assert main([*args, "--out", str(tmp_path / "a.json")]) == 4
    failures = (tmp_path / "a.json.failures.tsv").read_text().splitlines()[1:]
    failed = {line.split("\t")[0] for line in failures}
    broken = {f"{n.rsplit('.', 1)[0]}-{n.rsplit('.', 1)[1]}" for n in BROKEN}
    featureless = {f"{n.rsplit('.', 1)[0]}-{n.rsplit('.', 1)[1]}" for n in FEATURELESS}
    assert failed == broken, sorted(failed)
    assert check_store(store).ok, str(check_store(store))
    held = FeatureStore(store)
    assert all(len(held[i]) == 0 for i in featureless)
    assert len(held) == len(names) - len(broken)
    held.close()
    # Extendable: a new photo and the same job again.
    Image.fromarray(skdata.chelsea()).convert("L").save(images / "new_ref-png.png")
    names.append("new_ref-png.png")
    _shortlists(knn, names, [*photos, "new_ref-png.png"])
    assert main([*args, "--out", str(tmp_path / "b.json")]) == 4
    assert check_store(store).ok
    assert "new_ref-png" in FeatureStore(store)
    assert json.loads((tmp_path / "b.json").read_text())["new_ref-png"]


def test_ilias_rerank_extract_names_the_culprits_and_the_next_run_extends(battery, tmp_path):
    """``ilias-rerank extract`` over a folder dataset of the battery: exit 2 naming every
    broken file (after storing every other image); the next run extracts only what is
    new."""
    from ilias_rerank.cli import main

    folder, kinds = battery
    names = sorted(kinds)
    photos = [n for n in names if kinds[n] == "ref"]
    gt = tmp_path / "gt.tsv"
    rows = [f"{q}\t{n}\t0" for q in photos for n in names if n != q]
    gt.write_text("query\timage\tpositive\n" + "\n".join(rows) + "\n")
    args = ["extract", "--dataset", "folder", "--root", str(folder), "--gt", str(gt)]
    args += ["--workdir", str(tmp_path / "w"), "--features", str(FEATURES), "--no-progress"]
    assert main(args) == 2
    db = FeatureStore(tmp_path / "w" / "database")
    assert set(db.ids) == {n for n in names if n not in BROKEN}
    db.close()
    # The next run: one new image; only it is extracted, the broken ones named again.
    Image.fromarray(skdata.chelsea()).convert("L").save(folder / "zz_new.png")
    gt.write_text(gt.read_text() + f"{photos[0]}\tzz_new.png\t0\n")
    assert main(args) == 2
    db = FeatureStore(tmp_path / "w" / "database")
    assert set(db.ids) == {n for n in names if n not in BROKEN} | {"zz_new.png"}
    db.close()
