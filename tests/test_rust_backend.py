"""The rust backend (``extract_local(backend="rust")``, ``extractors/sift_rust.py``) and
the core's decoding behind it: the working image equals the Python path's (Pillow), 16-bit
PNGs are scaled, EXIF orientation is applied, bad bytes, empty images and bombs fail alone
with a clear error, and the batch entry gives the same features on any thread count."""

from __future__ import annotations

import base64
import hashlib
import io
import resource
import struct
import zlib

import numpy as np
import pytest
from conftest import shared_dataset
from hypothesis import given, settings
from hypothesis import strategies as st

import ilias_rerank as ir
from ilias_rerank import _core
from ilias_rerank.errors import ConfigError, ImageReadError
from ilias_rerank.extractors import make_extractor, resolve_backend

#: Adam7 passes: (first row, first column, row step, column step).
ADAM7 = (
    (0, 0, 8, 8),
    (0, 4, 8, 8),
    (4, 0, 8, 4),
    (0, 2, 4, 4),
    (2, 0, 4, 2),
    (0, 1, 2, 2),
    (1, 0, 2, 1),
)


def png_bytes(pixels: np.ndarray, *, exif: bytes | None = None, interlace: bool = False) -> bytes:
    """A PNG written with numpy and zlib alone: (H, W) grey, (H, W, 3) RGB or (H, W, 4)
    RGBA, uint8 or uint16 (big-endian samples), optionally with an eXIf chunk or Adam7
    interlaced."""
    arr = np.asarray(pixels)
    depth = 16 if arr.dtype == np.uint16 else 8
    colour = 0 if arr.ndim == 2 else {3: 2, 4: 6}[arr.shape[2]]
    h, w = arr.shape[:2]
    typed = arr.astype(">u2" if depth == 16 else np.uint8)
    passes = ADAM7 if interlace else ((0, 0, 1, 1),)
    rows = b""
    for y0, x0, dy, dx in passes:
        sub = typed[y0::dy, x0::dx]
        if sub.size:
            raw = np.ascontiguousarray(sub).reshape(sub.shape[0], -1).view(np.uint8)
            rows += b"".join(b"\0" + raw[y].tobytes() for y in range(sub.shape[0]))

    header = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, int(interlace))
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
    if exif is not None:
        out += _chunk(b"eXIf", exif)
    return out + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def _streamed_png(w: int, h: int, depth: int, colour: int, idat: bytes) -> bytes:
    """A PNG of an already compressed ``idat`` (images too large to hold as arrays)."""
    header = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )


def exif_orientation(o: int) -> bytes:
    """A little-endian TIFF block whose IFD0 holds the orientation ``o``."""
    entry = struct.pack("<HHIHH", 0x0112, 3, 1, o, 0)
    return b"II*\0" + struct.pack("<IH", 8, 1) + entry + b"\0" * 4


def declared_jpeg(width: int, height: int) -> bytes:
    """A JPEG that declares ``width x height`` in its frame header and holds no data."""
    dqt = b"\xff\xdb\x00\x43\x00" + b"\x01" * 64
    sof = b"\xff\xc0\x00\x0b\x08" + struct.pack(">HH", height, width) + b"\x01\x01\x11\x00"
    return b"\xff\xd8" + dqt + sof + b"\xff\xd9"


def pillow_working(data: bytes, max_side: int = 768) -> tuple[np.ndarray, tuple[int, int]]:
    pytest.importorskip("PIL")
    return make_extractor("sift", 1024, max_side, backend="opencv").prepare(data)


@pytest.fixture(scope="module")
def rust():
    return make_extractor("sift", 1024, 768, backend="rust")


# --- decoding: the Python path's working image ---------------------------------------------


def test_png_working_images_equal_pillows_bit_for_bit():
    g = np.random.default_rng(3)
    smooth = np.cumsum(np.cumsum(g.normal(0, 3, (900, 1300, 3)), 0), 1)
    rgb = np.clip(smooth - smooth.min(), 0, 255).astype(np.uint8)
    for arr in (rgb, rgb[..., 1], rgb[:300, :400], rgb[:50, :70, 0]):
        data = png_bytes(arr)
        want, want_size = pillow_working(data)
        got, got_size = _core.working_image(data, 768)
        assert got_size == want_size
        np.testing.assert_array_equal(got, want)


#: A 48 x 40 colour JPEG (4:2:0, quality 80, written by Pillow 13 / libjpeg-turbo 3.2).
EMBEDDED_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAYEBQYFBAYGBQYHBwYIChAKCgkJChQODwwQFxQYGBcUFhYaHSUfGhsj"
    "HBYWICwgIyYnKSopGR8tMC0oMCUoKSj/2wBDAQcHBwoIChMKChMoGhYaKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo"
    "KCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCj/wAARCAAoADADASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAA"
    "AAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAk"
    "M2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKT"
    "lJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QA"
    "HwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdh"
    "cRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hp"
    "anN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk"
    "5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDxK00+IIAwBIHTPOfpmtWGzxleNuTyPp15+n4Vv+LdFg0y4txa"
    "lvLuN42t82wggYB445wOO1ULK3eVhsKgHsB7du/9OtfV57xNF01Rwj3MJuWBryw+IVpRt576/qFvZmUjaAQCAcjp"
    "kdf1rpdH0gMTwQ38Iz79BS6TYY4Cb0Jz3GOf8a6uxgYAEZ56Y/kK8LLMtcn9YxPqerSzaC0SGWenrEC20Z9ByB9O"
    "1aUVmhX5ByM59M8df50kKycYZEzxhR7Zxjpn/GtS1t2lYIAT+PX3B/CvF4h4iaX1bDM93BZhDdnkt19q1W5Et0V2"
    "qMIqcKv5nv657e1b2jaKSgB2FeuCc5/z/WtQ+HbnSp0hu0IyTtIbKtjuPp7/AI9a3LCBFQEAknJPHXpj8efwrtyr"
    "AqUfrNXY/HsRmU3XksTf2l9b3v8A1/SIbXTViyVQHbwAc9vWrgshsPzYbP6emP8APerkJXBwm4+m3rzz79qv2VuJ"
    "FBOSc5JI7nH/ANf868niHiRr/ZsMergsTSauyrZaY7sCUHuo784z0rrNM0fhsD5DgnA69uvTtVGbV9H0DLanfwW5"
    "CbxE5BcgnaCE5YjIx07e1YmpfF7TrPfFothLcuN6CaY7F3D7jbRksOpwdp6e+OLJeHsXif8AaakG132X3vQ+uwFG"
    "vjdMPBtd9l970LfiGa31P7OIIpDFb7gXcD5yccgdhgDrjr0FczrOs6NocRGqahb2zhQ4TcC5UttyEGWYZyOB2PpR"
    "RX0mZSlT5MLTdo+Xr/wT8kyu+e5kp4t6zte2nlpv0RxmqfFG0RpE0fT5rqRg6+dcN5abs4VgoySDnJB2nAA+mRN4"
    "t8Ta1IC1+1pESJBFZ/ugpAx97O4+pBJH5CiiuzhzIsEqntJQ5pd3r+f6H7LgsjwOCinTppvu9fz0+4hsNNIOdpYA"
    "fwj/ACOKuxW7bSBFkcAnb93Pr60UV6XFOYVqFJxpuyPtcBFS3P/Z"
)

#: SHA-1 of Pillow's working image of EMBEDDED_JPEG (the OpenCV backend's ``prepare``,
#: Pillow 13.0 / libjpeg-turbo 3.2.0) by ``(max_side, upsample)``: 16 decodes at 1/2 DCT
#: scale straight to grey, 40 decodes in full and shrinks, 48 is the image as decoded, 96
#: doubles it (BICUBIC).
EMBEDDED_PILLOW_SHA1 = {
    (16, False): "2dcff18c57464d4e26ed6419b2aa8dec14db4135",
    (40, False): "648a9d7dfb6e364cf8877cced38574b2b334b3c3",
    (48, False): "974ca9501fb7fa9eafaa40580dc112ce2a6e1440",
    (96, True): "b777f7679323eb7fc25395ac92ef5d35e6af9a42",
}


@pytest.mark.parametrize(("side", "upsample"), sorted(EMBEDDED_PILLOW_SHA1))
def test_an_embedded_jpeg_gives_pillows_pixels_without_pillow(side, upsample):
    """Runs everywhere, the light install included: libjpeg-turbo's decode in the core,
    full and reduced scale, then Pillow's resize, give Pillow's working image exactly."""
    got, size = _core.working_image(EMBEDDED_JPEG, side, upsample)
    assert size == (48, 40)
    assert hashlib.sha1(got.tobytes()).hexdigest() == EMBEDDED_PILLOW_SHA1[(side, upsample)]


def _textured(h: int, w: int, seed: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    smooth = np.cumsum(np.cumsum(g.normal(0, 2, (h, w, 3)), 0), 1)
    noisy = smooth - smooth.min() + g.normal(0, 20, (h, w, 3))
    return np.clip(noisy * (255 / max(float(noisy.max()), 1.0)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("shape", "options"),
    [
        ((1300, 1700), {"subsampling": 2}),  # 1/2 DCT scale
        ((2500, 3300), {"subsampling": 1, "progressive": True}),  # 1/4, 4:2:2
        ((700, 1000), {"subsampling": 0}),  # in full, 4:4:4, shrunk
        ((1024, 486), {"subsampling": 2}),  # Pillow's vertical-first resize
        ((300, 500), {"subsampling": 2, "progressive": True}),  # as decoded
        ((1300, 1700), {"grey": True}),
        ((900, 1300), {"cmyk": True}),
        ((1600, 1200), {"exif": 6}),  # rotated, 1/2 scale of the displayed size
    ],
)
def test_jpeg_working_images_equal_pillows_bit_for_bit(shape, options):
    """libjpeg-turbo's decoder as Pillow drives it (islow IDCT, fancy upsampling, scaled
    IDCT straight to grey under draft): the working image is Pillow's to the bit."""
    image_module = pytest.importorskip("PIL.Image")
    h, w = shape
    rgb = _textured(h, w, seed=h + w)
    opts = dict(options)
    if opts.pop("grey", False):
        img = image_module.fromarray(rgb[..., 1])
    elif opts.pop("cmyk", False):
        img = image_module.fromarray(rgb).convert("CMYK")
    else:
        img = image_module.fromarray(rgb)
    exif = opts.pop("exif", None)
    if exif is not None:
        ex = image_module.Exif()
        ex[0x0112] = exif
        opts["exif"] = ex.tobytes()
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85, **opts)
    data = buf.getvalue()
    want, want_size = pillow_working(data)
    got, got_size = _core.working_image(data, 768)
    assert got_size == want_size
    np.testing.assert_array_equal(got, want)


def test_shared_jpegs_equal_pillows_bit_for_bit():
    """Real photos of every shared dataset (full-scale and reduced-scale decodes, EXIF,
    portrait and landscape): the rust backend's working image is Pillow's, bit for bit."""
    photos = sorted(shared_dataset("homogr_evd").glob("*.jpg"))
    for name in ("roxford_rparis_pixel_subset", "smvs_dvd_covers"):
        photos += sorted(shared_dataset(name).rglob("*.jpg"))[::25]
    assert len(photos) >= 20
    for p in photos:
        data = p.read_bytes()
        want, want_size = pillow_working(data)
        got, got_size = _core.working_image(data, 768)
        assert got_size == want_size, p
        np.testing.assert_array_equal(got, want, err_msg=str(p))


def test_16_bit_png_is_scaled_not_clipped():
    ramp = np.linspace(0, 65535, 64 * 64).astype(np.uint16).reshape(64, 64)
    got, size = _core.working_image(png_bytes(ramp), 768)
    assert size == (64, 64)
    np.testing.assert_array_equal(got, ((ramp.astype(np.uint32) + 128) // 257).astype(np.uint8))
    assert got.max() == 255 and got.min() == 0 and len(np.unique(got)) > 200
    rgb16 = np.stack([ramp, ramp // 2, 65535 - ramp], -1)
    got, _ = _core.working_image(png_bytes(rgb16), 768)
    rgb8 = ((rgb16.astype(np.uint32) + 128) // 257).astype(np.uint32)
    want = (rgb8 @ np.array([19595, 38470, 7471], np.uint32) + 0x8000) >> 16
    np.testing.assert_array_equal(got, want.astype(np.uint8))


def test_16_bit_arrays_are_scaled_as_the_pillow_path_scales_them():
    """A ``uint16`` array of a photo gives the features of its 8-bit version (it was
    clipped to white: no features)."""
    from skimage import data as skdata

    photo = skdata.camera()
    eight, sixteen = ir.extract_local(
        [photo, photo.astype(np.uint16) * 257], backend="rust", num_features=256
    )
    assert len(eight) == 256
    np.testing.assert_array_equal(eight.keypoints, sixteen.keypoints)
    np.testing.assert_array_equal(eight.descriptors, sixteen.descriptors)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_does(orientation):
    PIL = pytest.importorskip("PIL")
    from PIL import Image

    g = np.random.default_rng(orientation)
    arr = g.integers(0, 256, (30, 50), dtype=np.uint8)
    data = png_bytes(arr, exif=exif_orientation(orientation))
    got, size = _core.working_image(data, 768)
    want, want_size = pillow_working(data)
    assert size == want_size == ((30, 50) if orientation >= 5 else (50, 30))
    np.testing.assert_array_equal(got, want)
    # JPEG: Pillow writes the orientation, both paths read it
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(arr).save(buf, "JPEG", quality=95, exif=exif)
    got, size = _core.working_image(buf.getvalue(), 768)
    want, want_size = pillow_working(buf.getvalue())
    assert size == want_size and got.shape == want.shape, PIL.__version__
    assert np.abs(got.astype(int) - want.astype(int)).mean() < 1.0


# --- failures: each image alone, with a clear error -----------------------------------------


def test_bad_bytes_fail_alone_with_their_name(rust):
    ok = png_bytes(np.full((40, 40), 128, np.uint8))
    truncated = png_bytes(np.full((40, 40), 128, np.uint8))[:60]
    items = [ok, b"", b"not an image at all", b"\xff\xd8\xff\xe0broken", truncated, ok]
    out = rust.extract_many(items)
    assert isinstance(out[0], ir.LocalFeatures) and isinstance(out[5], ir.LocalFeatures)
    for i in range(1, 5):
        assert isinstance(out[i], ImageReadError), out[i]
        assert f"image #{i} (bytes)" in str(out[i])
    assert "0 bytes" in str(out[1]) and "expected JPEG or PNG" in str(out[2])
    assert "cannot decode JPEG" in str(out[3]) and "cannot decode PNG" in str(out[4])
    with pytest.raises(ir.ExtractionError, match="image #1"):
        ir.extract_local([ok, b"junk"], backend="rust", workers=1)


def test_missing_files_and_wrong_types_are_errors(rust, tmp_path):
    out = rust.extract_many([str(tmp_path / "nope.jpg"), object()])
    assert "nope.jpg: no such file" in str(out[0])
    assert "expected a path, encoded bytes" in str(out[1])


def test_empty_and_tiny_images(rust):
    out = rust.extract_many([np.zeros((0, 5), np.uint8), np.zeros((1, 1), np.uint8)])
    assert isinstance(out[0], ImageReadError) and "empty image" in str(out[0])
    assert isinstance(out[1], ir.LocalFeatures) and len(out[1]) == 0
    assert out[1].image_size == (1, 1) and out[1].keypoints.shape == (0, 2)
    assert out[1].frames.shape == (0, 2)


@pytest.mark.parametrize("side", [60_000, 20_000])
def test_a_declared_bomb_is_refused_before_allocation(rust, side):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    (out,) = rust.extract_many([declared_jpeg(side, side)])
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert isinstance(out, ImageReadError) and "too large" in str(out), out
    assert f"{side} x {side}" in str(out)
    assert grown_mib < 64, f"{grown_mib:.0f} MiB allocated for a refused image"


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([b"", b"\xff\xd8", b"\x89PNG\r\n\x1a\n"]))
def test_arbitrary_bytes_never_break_the_batch(data, head):
    out = make_extractor("sift", 64, 64, backend="rust").extract_many([head + data, head + data])
    assert len(out) == 2
    for one in out:
        assert isinstance(one, (ImageReadError, ir.LocalFeatures))


# --- settings and contract ------------------------------------------------------------------


def test_settings_are_checked_and_recorded():
    ex = make_extractor("sift", 512, 640, backend="rust", contrast_threshold=0.03)
    assert ex.params() == {
        "name": "rust-sift-rootsift",
        "num_features": 512,
        "max_side": 640,
        "descriptor_dtype": "uint8",
        "backend": "rust",
        "contrast_threshold": 0.03,
        "decoder": "libjpeg-turbo",
    }
    with pytest.raises(ConfigError, match="contrast_threshold"):
        make_extractor("sift", backend="rust", contrast_threshold=0)
    with pytest.raises(ConfigError, match="threads"):
        make_extractor("sift", backend="rust", threads=-1)
    with pytest.raises(ConfigError, match="draft"):
        make_extractor("sift", backend="rust", draft=False)
    with pytest.raises(ConfigError, match="max_side"):
        _core.extract_sift([], max_side=8)
    with pytest.raises(ConfigError, match="max_features"):
        _core.extract_sift([], num_features=0)


def test_a_gpu_device_keeps_the_cpu_default_without_a_recorded_gpu_run():
    assert resolve_backend("sift", None, "cuda") == resolve_backend("sift", None, "cpu")
    assert resolve_backend("aliked", None, "cuda") == "kornia"  # its only backend


def _photo_features(threads: int, **kwargs):
    data_dir = shared_dataset("homogr_evd")
    paths = [str(data_dir / n) for n in ("BostonA.jpg", "adamA.png", "grafA.png")]
    return make_extractor("sift", 1024, 768, backend="rust", **kwargs).extract_many(
        paths, threads=threads
    )


def test_features_are_the_same_on_any_thread_count_and_strongest_first():
    one, two = _photo_features(1), _photo_features(2)
    for a, b in zip(one, two, strict=True):
        assert isinstance(a, ir.LocalFeatures), a
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
        np.testing.assert_array_equal(a.descriptors, b.descriptors)
        np.testing.assert_array_equal(a.frames, b.frames)
    boston = one[0]
    assert 500 <= len(boston) <= 1024, len(boston)
    h, w = boston.image_size
    assert (h, w) == (1368, 1712)
    # keypoints in original pixels (the image is 1712 px wide, the detector saw 768)
    assert boston.keypoints[:, 0].max() > 768 and boston.keypoints[:, 0].max() < w
    assert boston.keypoints[:, 1].max() < h and boston.keypoints.min() > -1
    assert (boston.frames[:, 0] > 0).all() and np.abs(boston.frames[:, 1]).max() <= 360


def _blobs(seed: int = 3, shape=(480, 640)) -> np.ndarray:
    """A grey image of random blurred discs and bars: hundreds of SIFT keypoints."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    img = np.zeros(shape, np.float32)
    for _ in range(600):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        r = rng.uniform(1.5, 12)
        img += rng.uniform(-1, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    img += 0.3 * np.sin(xx / 7.0) * (yy > shape[0] / 2)
    img -= img.min()
    return (255 * img / img.max()).astype(np.uint8)


@pytest.mark.parametrize("threads", [0, 2, 3])
def test_one_image_on_several_threads_gives_the_same_features(threads):
    # A single image (a query) uses the extractor's threads inside itself; the features
    # are those of one thread.
    img = _blobs()
    one = make_extractor("sift", 1024, 768, backend="rust")(img)
    many = make_extractor("sift", 1024, 768, backend="rust", threads=threads)(img)
    assert len(one) > 200, len(one)
    np.testing.assert_array_equal(one.keypoints, many.keypoints)
    np.testing.assert_array_equal(one.descriptors, many.descriptors)
    np.testing.assert_array_equal(one.frames, many.frames)


@pytest.mark.parametrize("fmt", ["TIFF", "WEBP", "BMP", "GIF"])
def test_other_formats_are_read_by_pillow_as_the_opencv_backend_reads_them(fmt, tmp_path):
    # The default backend decodes JPEG and PNG itself; other formats go through Pillow
    # (where it is installed) and give the features of Pillow's grey pixels.
    Image = pytest.importorskip("PIL.Image")
    img = _blobs(seed=5)
    path = tmp_path / f"photo.{fmt.lower()}"
    Image.fromarray(img).save(path, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    rust = make_extractor("sift", 1024, 768, backend="rust")
    want = rust(img)
    assert len(want) > 200
    for source in (path, str(path), path.read_bytes()):
        got = rust(source)
        np.testing.assert_array_equal(got.keypoints, want.keypoints)
        np.testing.assert_array_equal(got.descriptors, want.descriptors)
    broken = tmp_path / "broken.tif"
    broken.write_bytes(path.read_bytes()[:8] + b"\0" * 8)
    (a, b) = rust.extract_many([broken, path])
    assert isinstance(a, ImageReadError) and str(a).count(str(broken)) == 1, a
    with pytest.raises(ImageReadError) as err:
        rust.prepare(broken)
    assert str(err.value).count(str(broken)) == 1, err.value
    np.testing.assert_array_equal(b.keypoints, want.keypoints)


def test_float32_descriptors_are_the_uint8_ones_over_512():
    (u8,) = _photo_features(1)[:1]
    (f32,) = _photo_features(1, descriptor_dtype="float32")[:1]
    assert f32.descriptors.dtype == np.float32
    np.testing.assert_allclose(f32.descriptors, u8.descriptors / 512.0, atol=0)


def test_detect_on_a_working_image_neither_resizes_nor_doubles_it():
    """``_detect`` (what a batched path calls on already prepared images) sees the image
    as given: the features of ``prepare`` + ``_detect`` + ``finish`` are those of a call."""
    data_dir = shared_dataset("homogr_evd")
    for upsample in (False, True):
        # cityA is 329 px: doubled once to 658 by prepare, and never again (4 x 329 <= 1400)
        ex = make_extractor("sift", 512, 1400, backend="rust", upsample=upsample)
        for name in ("cityA.png", "BostonA.jpg"):
            arr, original = ex.prepare(data_dir / name)
            whole = ex(data_dir / name)
            parts = ex.finish(ex._detect(arr), (arr.shape[1], arr.shape[0]), original)
            np.testing.assert_allclose(parts.keypoints, whole.keypoints, atol=1e-3)
            np.testing.assert_array_equal(parts.descriptors, whole.descriptors)


# --- review findings (each failed before its fix) -------------------------------------------


def _smooth_rgb(h: int, w: int, seed: int = 5) -> np.ndarray:
    g = np.random.default_rng(seed)
    smooth = np.cumsum(np.cumsum(g.normal(0, 3, (h, w, 3)), 0), 1)
    return np.clip(smooth - smooth.min(), 0, 255).astype(np.uint8)


def test_a_jpeg_of_too_many_scans_is_refused():
    """Each scan of a progressive JPEG walks every block: a file of thousands of scans is
    refused after 1000 (Pillow reads them all) instead of decoding for minutes."""
    image_module = pytest.importorskip("PIL.Image")
    g = np.random.default_rng(0)
    buf = io.BytesIO()
    pixels = g.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    image_module.fromarray(pixels).save(buf, "JPEG", progressive=True, quality=90)
    data = buf.getvalue()
    sos, eoi = data.rindex(b"\xff\xda"), data.rindex(b"\xff\xd9")

    def repeated(n: int) -> bytes:  # the last scan again n times (libjpeg only warns)
        return data[:eoi] + data[sos:eoi] * n + data[eoi:]

    got, _ = _core.working_image(repeated(900), 768)
    assert got.shape == (64, 64)
    with pytest.raises(ImageReadError, match="expected at most 1000 scans"):
        _core.working_image(repeated(1100), 768)


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_a_truncated_jpeg_is_an_error_not_a_grey_half(progressive, mode):
    """The first half of a 600 x 400 JPEG decoded "successfully" with a grey bottom half
    (libjpeg fills a cut scan and only warns); Pillow refuses it, so does the core — at
    full scale and at a reduced DCT scale (``max_side=128``)."""
    Image = pytest.importorskip("PIL.Image")
    buf = io.BytesIO()
    Image.fromarray(_smooth_rgb(400, 600)).convert(mode).save(
        buf, format="JPEG", quality=90, progressive=progressive
    )
    whole = buf.getvalue()
    for max_side in (768, 128):
        ok = _core.working_image(whole, max_side)
        assert ok[1] == (600, 400)
        # Data after the end-of-image marker (a phone's appended video, a vendor trailer),
        # even with start-of-scan bytes in it, is not read: the same image.
        for tail in (b"\0" * 16, b"ftypmp4\xff\xda" + bytes(range(256)) * 4 + b"\xff\xda"):
            got = _core.working_image(whole + tail, max_side)
            assert got[1] == (600, 400)
            np.testing.assert_array_equal(got[0], ok[0])
        for cut in (whole[: len(whole) // 2], whole[:-2]):
            with pytest.raises(ImageReadError, match="truncated"):
                _core.working_image(cut, max_side)
            (out,) = make_extractor("sift", 256, max_side, backend="rust").extract_many([cut])
            assert isinstance(out, ImageReadError) and "truncated" in str(out), out


def test_max_side_beyond_the_sift_octave_is_refused_at_construction():
    """``max_side=3000`` was accepted and then failed every real photo (a 3000 x 2250
    working image doubled is over the core's 2^24-pixel first octave)."""
    from ilias_rerank.extractors.sift_rust import MAX_RUST_SIDE

    assert MAX_RUST_SIDE == 2048 and (2 * MAX_RUST_SIDE) ** 2 <= 1 << 24
    for side in (3000, MAX_RUST_SIDE + 1):
        for upsample in (False, True):
            with pytest.raises(ConfigError, match=r"max_side: expected an int in 16\.\.=2048"):
                make_extractor("sift", 256, side, backend="rust", upsample=upsample)
    # The default backend says where larger working sizes are taken.
    with pytest.raises(ConfigError, match=r"backend='opencv' takes larger"):
        make_extractor("sift", 256, 3000)
    assert make_extractor("sift", 256, MAX_RUST_SIDE, backend="rust").max_side == 2048
    # The largest allowed side works on an image of that side (square: the worst case).
    wide = np.tile(np.linspace(0, 255, 2048, dtype=np.uint8), (64, 1))
    (out,) = make_extractor("sift", 16, MAX_RUST_SIDE, backend="rust").extract_many([wide])
    assert isinstance(out, ir.LocalFeatures), out


def test_16_bit_pil_images_are_scaled_not_clipped():
    """A PIL ``I;16`` image went through ``convert("L")`` (clipped: a handful of features
    instead of the 8-bit photo's)."""
    Image = pytest.importorskip("PIL.Image")
    from skimage import data as skdata

    photo = skdata.camera()
    rust = make_extractor("sift", 256, 768, backend="rust")
    eight = rust(photo)
    pil16 = Image.fromarray(photo.astype(np.uint16) * 257)
    assert pil16.mode.startswith("I;16")
    for got in (rust(pil16), rust.extract_many([pil16])[0]):
        assert len(eight) == 256
        np.testing.assert_array_equal(eight.keypoints, got.keypoints)
        np.testing.assert_array_equal(eight.descriptors, got.descriptors)


def test_a_non_utf8_file_name_is_read_and_conversion_errors_stay_per_item(tmp_path):
    """A name of bytes that are not UTF-8 (``os.fsdecode`` gives surrogates) failed the
    whole ``extract_many`` call with UnicodeEncodeError; now it reads, and a source the
    bindings cannot convert is that item's failure."""
    import os

    data = png_bytes(_smooth_rgb(120, 160)[..., 0])
    odd = tmp_path / os.fsdecode(b"caf\xe9.png")
    odd.write_bytes(data)
    plain = tmp_path / "plain.png"
    plain.write_bytes(data)
    rust = make_extractor("sift", 128, 768, backend="rust")
    a, b = rust.extract_many([odd, plain])
    assert isinstance(a, ir.LocalFeatures), a
    np.testing.assert_array_equal(a.descriptors, b.descriptors)
    assert len(rust(odd)) == len(b)
    (one,) = ir.extract_local([odd], backend="rust", num_features=128)
    assert len(one) == len(b)
    # Straight to the core: a non-contiguous array and a foreign type fail alone.
    grey = np.zeros((40, 40), np.uint8)
    out = _core.extract_sift([grey[:, ::2], 3.5, data, grey], num_features=16)
    assert isinstance(out[0], str) and "C-contiguous" in out[0], out[0]
    assert isinstance(out[1], str) and "expected bytes" in out[1], out[1]
    assert isinstance(out[2], tuple) and isinstance(out[3], tuple)


_PNG_MEMORY = """
import resource, sys
from ilias_rerank import _core
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
image, size = _core.working_image(data, 768)
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
assert size == (4000, 4000) and image.shape == (768, 768), (size, image.shape)
print(round(grown))
"""


def test_a_16_bit_rgba_png_is_decoded_in_grey_rows_not_a_whole_frame(tmp_path):
    """The pixel limit let a whole frame of up to 8 bytes a pixel be allocated: a 4000 x
    4000 RGBA16 PNG of a few hundred KB took 128 MB; decoded row by row into grey it
    takes its 16 MB grey image."""
    import subprocess
    import sys

    w = h = 4000
    row = b"\0" + np.tile(np.array([1000, 30000, 60000, 65535], ">u2"), w).tobytes()
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(h)) + z.flush()

    data = _streamed_png(w, h, 16, 6, idat)
    path = tmp_path / "rgba16.png"
    path.write_bytes(data)
    run = subprocess.run(
        [sys.executable, "-c", _PNG_MEMORY, str(path)], capture_output=True, text=True, check=True
    )
    grown_mib = int(run.stdout.split()[-1])
    assert grown_mib < 64, f"{grown_mib} MiB for a 4000 x 4000 image (16 MB of grey)"


def test_interlaced_pngs_equal_pillows_bit_for_bit():
    """Adam7 rows are expanded into the grey image as they come (the row-by-row decode)."""
    rgb = _smooth_rgb(203, 301, seed=9)
    rgba16 = np.concatenate([rgb, rgb[..., :1]], -1).astype(np.uint16) * 257 + 3
    for arr in (rgb, rgb[..., 0], rgb[:5, :3], rgb[:1, :1, 0], rgba16):
        data = png_bytes(arr, interlace=True)
        got, got_size = _core.working_image(data, 768)
        np.testing.assert_array_equal(got, _core.working_image(png_bytes(arr), 768)[0])
        if arr.dtype == np.uint8:  # (Pillow reads 16-bit RGB(A) PNGs by their high byte)
            want, want_size = pillow_working(data)
            assert got_size == want_size
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(("w", "h"), [(40_000_000, 1), (1, 3_000_000), (5000, 2)])
def test_a_too_thin_image_is_refused_before_resizing(w, h):
    """A 40,000,000 x 1 PNG took 393 MB of resize coefficients; an aspect ratio over
    1000:1 that needs resizing is now that image's error."""
    row = b"\0" + bytes(w)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(h)) + z.flush()

    data = _streamed_png(w, h, 8, 0, idat)
    with pytest.raises(ImageReadError, match=r"too thin.*at most 1000:1"):
        _core.working_image(data, 768)
    (out,) = make_extractor("sift", 16, 768, backend="rust").extract_many([data])
    assert isinstance(out, ImageReadError) and f"{w} x {h}" in str(out), out
    # Refused from the header, before decoding: a few bytes of data declaring w x h.
    with pytest.raises(ImageReadError, match="too thin"):
        _core.working_image(_streamed_png(w, h, 8, 0, zlib.compress(b"\0" * 10)), 768)
    # An array likewise; a thin image that needs no resize is read as it is.
    (out,) = make_extractor("sift", 16, 768, backend="rust").extract_many(
        [np.zeros((2, 5000), np.uint8), np.zeros((1, 700), np.uint8)]
    )[:1]
    assert isinstance(out, ImageReadError) and "too thin" in str(out), out
    assert len(make_extractor("sift", 16, 768, backend="rust")(np.zeros((1, 700), np.uint8))) == 0
