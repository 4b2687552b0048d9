"""SIFT backends, worker processes, batched (GPU-path) detection and reduced-scale JPEG
decoding: each checked against a known answer (the same features one image at a time, in
one process, from a full decode), and bad settings refused before any work."""

from __future__ import annotations

import io
import os
import sys

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

import ilias_rerank as ir
from ilias_rerank.errors import ConfigError, ExtractionError, MissingExtraError
from ilias_rerank.extractors import BACKENDS, make_extractor
from ilias_rerank.extractors.pool import _run_gpu, check_workers

pytest.importorskip("cv2")


def _same(a: ir.LocalFeatures, b: ir.LocalFeatures) -> bool:
    return (
        a.image_size == b.image_size
        and np.array_equal(a.keypoints, b.keypoints)
        and np.array_equal(a.descriptors, b.descriptors)
        and np.array_equal(a.frames, b.frames)
    )


@pytest.fixture(scope="module")
def photos():
    imgs = [skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket()]
    return [np.ascontiguousarray(i) for i in imgs]


class _KillsItsWorker:
    """A source whose unpickling ends the process that receives it (a dead worker)."""

    def __reduce__(self):
        return (os._exit, (3,))


def test_workers_give_the_features_of_one_process_in_input_order(photos):
    one = ir.extract_local(photos * 2, num_features=512, workers=1)
    two = ir.extract_local(photos * 2, num_features=512, workers=2)
    assert len(two) == 8 and all(_same(a, b) for a, b in zip(one, two, strict=True))
    assert one[0].image_size == (512, 512) and one[1].image_size == (400, 600)


def test_a_failed_image_is_named_and_the_others_are_kept_with_workers(photos):
    items = [photos[0], b"not an image", photos[1], photos[2]]
    with pytest.raises(ExtractionError) as err:
        ir.extract_local(items, num_features=256, workers=2)
    assert list(err.value.failures) == [1]
    assert "image #1" in str(err.value) and "not a readable image" in str(err.value)
    res = err.value.results
    assert res[1] is None and all(res[i] is not None for i in (0, 2, 3))
    assert _same(res[2], ir.extract_local(photos[1], num_features=256, workers=1)[0])


def test_a_dead_worker_fails_only_the_image_that_killed_it(photos):
    """Isolated workers: the image that kills its worker (twice: it is run again once in a
    fresh worker) fails, named; every other image, before and after it, is extracted and
    equals one process's result."""
    items = [*photos, _KillsItsWorker(), *photos]
    with pytest.warns(UserWarning, match="1 of 9 images failed: .*killed its worker process 2"):
        res = ir.extract_local(items, num_features=128, workers=2, isolate=True, on_error="skip")
    alone = ir.extract_local(photos, num_features=128, workers=1)
    assert res[4] is None
    assert all(_same(a, b) for a, b in zip(res[:4] + res[5:], alone * 2, strict=True))


def test_the_first_n_features_are_the_n_strongest(photos):
    """Sorted by response: the first 512 rows of a 2048-feature extraction are the
    512-feature extraction (one store serves a cheaper pass over a prefix)."""
    for img in photos[:2]:
        big = ir.extract_local(img, num_features=2048, workers=1)[0]
        small = ir.extract_local(img, num_features=512, workers=1)[0]
        n = len(small)
        assert n == 512 and len(big) > n
        same = (big.keypoints[:n] == small.keypoints).all(axis=1)
        assert same.mean() > 0.99  # ties in response at the cut may swap a row or two


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "vlfeat"}, "backend: expected one of"),
        ({"method": "aliked", "backend": "opencv"}, "backend: expected one of ('kornia',)"),
        ({"backend": "opencv", "device": "cuda"}, "runs on the CPU only"),
        ({"workers": 0}, "workers: expected an int in 1..="),
        ({"workers": 10**6}, "workers: expected an int in 1..="),
        ({"workers": 1.5}, "workers: expected an int"),
        ({"contrast_threshold": -1.0}, "contrast_threshold: expected a number in (0, 1]"),
    ],
)
def test_bad_settings_are_refused_before_any_work(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ir.extract_local([object()], **kwargs)  # the image would fail: it is never read


def test_each_backend_is_recorded_and_a_store_never_mixes_them(photos, tmp_path):
    names = {make_extractor("sift", backend=b).params()["name"] for b in BACKENDS["sift"]}
    assert names == {
        "opencv-sift-rootsift",
        "rust-sift-rootsift",
        "kornia-sift-rootsift",
        "kornia-rs-sift-rootsift",
    }
    cv = make_extractor("sift", 256, backend="opencv")
    assert cv.params()["backend"] == "opencv"
    with ir.StoreWriter(tmp_path / "s", cv.params()) as w:
        w.add("a", cv(photos[0]))
    kornia = make_extractor("sift", 256, backend="kornia")
    with pytest.raises(ir.errors.IliasRerankError, match="mixed extractors"):
        ir.StoreWriter(tmp_path / "s", kornia.params())


def test_a_missing_opencv_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(MissingExtraError, match=r"ilias-rerank\[extract\]"):
        make_extractor("sift", 333, backend="opencv")


def test_check_workers_defaults_to_the_usable_cores():
    assert check_workers(None) == len(os.sched_getaffinity(0))
    assert check_workers(3) == 3


def test_gpu_batches_give_the_features_of_one_image_at_a_time(photos):
    """The GPU path (decode threads, same-shape batches) run on the CPU: each image's
    features equal those of extracting it alone; a failed decode is named, in order."""
    ex = make_extractor("sift", 256, 256, backend="kornia")
    crops = [p[:200, :300] for p in photos]  # one shape: one batch
    items = [crops[0], b"broken", crops[1], crops[2], photos[3]]
    outcomes = list(_run_gpu(ex, items, workers=2))
    assert [o[0] for o in outcomes] == [0, 1, 2, 3, 4]
    assert outcomes[1][1] is None and "not a readable image" in outcomes[1][2][1]
    for (index, feats, failure), item in zip(outcomes, items, strict=True):
        if index == 1:
            continue
        alone = ex(item)
        assert failure is None
        assert len(feats) == len(alone)
        # Float sums in a batch differ in the last bits: keypoints move by < 0.01 px and a
        # near-tie at the budget's edge may swap.
        dist = np.linalg.norm(feats.keypoints[:, None] - alone.keypoints[None], axis=2)
        assert (dist.min(axis=1) < 0.01).mean() > 0.97


def _jpeg(img: np.ndarray, orientation: int | None = None) -> bytes:
    buf = io.BytesIO()
    pil = Image.fromarray(img)
    exif = pil.getexif()
    if orientation:
        exif[0x0112] = orientation
    pil.save(buf, "JPEG", quality=95, exif=exif)
    return buf.getvalue()


def test_large_jpegs_are_decoded_at_reduced_scale_and_mapped_back():
    from ilias_rerank.images import load_scaled

    big = np.asarray(Image.fromarray(skdata.astronaut()).resize((2400, 2400), Image.BICUBIC))
    data = _jpeg(big)
    ex = make_extractor("sift", 512, 512)
    img, full = load_scaled(data, 0, "L", None, ex.working_size)
    assert full == (2400, 2400) and img.size == (600, 600)  # 1/4 scale, >= 512
    drafted = ex(data)
    whole = ex(big)  # an array: decoded in full, then resized
    assert drafted.image_size == whole.image_size == (2400, 2400)
    v = ir.verify_pair(drafted, whole)
    assert v.num_inliers > 200
    grid = np.array([[x, y, 1.0] for x in (300, 1200, 2100) for y in (300, 1200, 2100)])
    mapped = grid @ v.transform.T
    assert np.abs(mapped[:, :2] / mapped[:, 2:] - grid[:, :2]).max() < 3.0


def test_exif_rotation_is_applied_with_reduced_scale_decoding():
    big = np.asarray(Image.fromarray(skdata.coffee()).resize((2400, 1600), Image.BICUBIC))
    upright = ir.extract_local(_jpeg(big), num_features=256, max_side=512)[0]
    turned = ir.extract_local(_jpeg(np.rot90(big), orientation=8), num_features=256, max_side=512)[
        0
    ]
    # Orientation 8 turns the stored (tall) image back to the wide one.
    assert upright.image_size == turned.image_size == (1600, 2400)
    assert ir.verify_pair(upright, turned).num_inliers > 100
