"""The layout of a store: what every image's arrays look like, declared by the extractor
when the writer is created (``Extractor.store_layout()``), recorded in the manifest, and
checked for every image added, an empty one included.

A layout is a small JSON object::

    {"kind": "local", "descriptor_dtype": "uint8", "descriptor_dim": 128,
     "frame_width": 2, "keypoint_dtype": "float32", ...}

- ``kind``: what the descriptors are (``"local"``: one descriptor row per keypoint). A new
  kind of descriptor is a new value here, stored the same way.
- ``descriptor_dtype``: ``float32``, ``float16``, ``uint8`` or ``binary64`` (uint64 words
  compared by Hamming distance); ``descriptor_dim``: columns per row (words for
  ``binary64``).
- ``frame_width``: 0 (no frames), 2 (``(scale, orientation)``) or 6 (``(2, 3)`` local affine
  frames); ``keypoint_dtype``: ``float32``.
- any further key (a vocabulary id a kind depends on, say) is kept as it is and must be
  equal for two layouts to be equal.

An image whose arrays disagree with its store's layout is refused with a
:class:`~ilias_rerank.errors.StoreLayoutError` naming the image: that image's failure,
never the store's. A store without a declared layout (a ``StoreWriter`` given none) takes
it from its first image *with features*; featureless images before it are stored without
fixing it (they have no feature bytes), so a blank image can never fix a store's layout.

Stores written before layouts were declared (manifest without ``layout``) read theirs from
the manifest's ``descriptors`` and ``frame_width``; one whose images are all featureless
has no layout yet (its recorded one came from an empty image, and is not kept).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import FormatError, StoreLayoutError

__all__ = ["CODES", "DESCRIPTOR_DTYPES", "LOCAL", "StoreLayout", "codes_layout", "frame_width_of"]

#: Descriptor dtypes a store holds, by name: the little-endian numpy type of each.
DESCRIPTOR_DTYPES = {"float32": "<f4", "float16": "<f2", "uint8": "u1", "binary64": "<u8"}
#: Keypoint dtypes a store holds.
KEYPOINT_DTYPES = {"float32": "<f4", "uint16": "<u2"}
FRAME_WIDTHS = (0, 2, 6)
#: The kind of the stores of local features (keypoints, frames, one descriptor each).
LOCAL = "local"
#: The kind of the stores of codes (:mod:`ilias_rerank.codes`): keypoints as 16 bits over
#: the image, one uint8 row a feature (``codes.record.to_rows``: word ids, signature, the
#: quantised frame), no frame file; extra keys ``vocabulary`` (its id, hex), ``words``,
#: ``signature_words`` and ``frames``.
CODES = "codes"
_NAMED = ("kind", "descriptor_dtype", "descriptor_dim", "frame_width", "keypoint_dtype")
_DTYPE_NAMES = {np.dtype(code): name for name, code in DESCRIPTOR_DTYPES.items()}


def descriptor_dtype_name(dtype: np.dtype) -> str | None:
    """The layout's name of a descriptor array's dtype (``None``: not storable)."""
    return _DTYPE_NAMES.get(np.dtype(dtype))


def frame_width_of(frames: np.ndarray | None) -> int:
    """Floats per keypoint of ``frames``: 0 (``None``), 2 or 6 (``(N, 2, 3)`` LAFs)."""
    if frames is None:
        return 0
    return 2 if frames.ndim == 2 else 6


@dataclass(frozen=True)
class StoreLayout:
    """What every image of a store looks like (module docstring). ``extra``: further keys
    of the layout, compared like the named ones."""

    descriptor_dtype: str
    descriptor_dim: int
    frame_width: int
    keypoint_dtype: str = "float32"
    kind: str = LOCAL
    extra: tuple[tuple[str, Any], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.descriptor_dtype not in DESCRIPTOR_DTYPES:
            raise ValueError(
                f"layout descriptor_dtype: expected one of {sorted(DESCRIPTOR_DTYPES)}, "
                f"got {self.descriptor_dtype!r}"
            )
        dim = self.descriptor_dim
        if isinstance(dim, bool) or not isinstance(dim, int) or not 0 <= dim <= 1 << 16:
            raise ValueError(f"layout descriptor_dim: expected an int in 0..=65536, got {dim!r}")
        if self.frame_width not in FRAME_WIDTHS or isinstance(self.frame_width, bool):
            raise ValueError(
                f"layout frame_width: expected one of {FRAME_WIDTHS}, got {self.frame_width!r}"
            )
        if self.keypoint_dtype not in KEYPOINT_DTYPES:
            raise ValueError(
                f"layout keypoint_dtype: expected one of {sorted(KEYPOINT_DTYPES)}, "
                f"got {self.keypoint_dtype!r}"
            )
        if not isinstance(self.kind, str) or not self.kind:
            raise ValueError(f"layout kind: expected a non-empty string, got {self.kind!r}")
        for key, _ in self.extra:
            if key in _NAMED or not isinstance(key, str):
                raise ValueError(f"layout extra key: expected a new name, got {key!r}")
        if self.kind == CODES:
            extra = dict(self.extra)
            want = ("frames", "signature_words", "vocabulary", "words")
            try:
                int(extra["vocabulary"], 16)
                ok = (
                    self.keypoint_dtype == "uint16"
                    and self.frame_width == 0
                    and 1 <= int(extra["words"]) <= 16
                    and 1 <= int(extra["signature_words"]) <= 4
                    and isinstance(extra["frames"], bool)
                )
            except (KeyError, TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(
                    f"codes layout: expected keys {list(want)} (vocabulary a hex id, words "
                    f"1..16, signature_words 1..4), uint16 keypoints and no frame file, got "
                    f"{self.as_dict()}"
                )

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> StoreLayout:
        """The layout a manifest records (``as_dict``); anything else is a ``ValueError``."""
        if not isinstance(value, Mapping):
            raise ValueError(f"layout: expected an object, got {value!r}")
        missing = [k for k in _NAMED[1:4] if k not in value]
        if missing:
            raise ValueError(f"layout: expected keys {list(_NAMED)}, {missing} missing")
        extra = tuple(sorted((k, v) for k, v in value.items() if k not in _NAMED))
        json.dumps(dict(extra))  # extra values must be JSON
        return cls(
            descriptor_dtype=value["descriptor_dtype"],
            descriptor_dim=value["descriptor_dim"],
            frame_width=value["frame_width"],
            keypoint_dtype=value.get("keypoint_dtype", "float32"),
            kind=value.get("kind", LOCAL),
            extra=extra,
        )

    @classmethod
    def of_features(cls, features: Any) -> StoreLayout:
        """The layout of one image's arrays (a :class:`~ilias_rerank.LocalFeatures`, or a
        :class:`~ilias_rerank.codes.QuantisedFeatures`: a store of codes)."""
        if getattr(features, "words", None) is not None:
            return codes_layout(
                features.vocabulary_id,
                features.words.shape[1],
                features.signatures.shape[1],
                features.frames is not None,
            )
        if not hasattr(features, "descriptors"):
            raise StoreLayoutError(
                f"features: expected LocalFeatures or QuantisedFeatures, got {type(features)}"
            )
        name = descriptor_dtype_name(features.descriptors.dtype)
        if name is None:
            raise StoreLayoutError(
                "descriptors: expected float32, float16, uint8 or uint64, got "
                f"{features.descriptors.dtype}"
            )
        return cls(name, int(features.descriptors.shape[1]), frame_width_of(features.frames))

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "descriptor_dtype": self.descriptor_dtype,
            "descriptor_dim": self.descriptor_dim,
            "frame_width": self.frame_width,
            "keypoint_dtype": self.keypoint_dtype,
            **dict(self.extra),
        }

    @property
    def keypoint_numpy(self) -> str:
        """The little-endian numpy dtype of the stored keypoints."""
        return KEYPOINT_DTYPES[self.keypoint_dtype]

    @property
    def descriptor_numpy(self) -> str:
        """The little-endian numpy dtype of the stored descriptors."""
        return DESCRIPTOR_DTYPES[self.descriptor_dtype]

    @property
    def feature_bytes(self) -> tuple[int, int, int]:
        """Bytes per feature of the keypoint, frame and descriptor files."""
        return (
            2 * np.dtype(KEYPOINT_DTYPES[self.keypoint_dtype]).itemsize,
            4 * self.frame_width,
            self.descriptor_dim * np.dtype(self.descriptor_numpy).itemsize,
        )

    def check(self, image_id: str, features: Any) -> None:
        """A :class:`~ilias_rerank.errors.StoreLayoutError` naming ``image_id`` unless its
        arrays are of this layout (an empty image too: ``(0, D)`` descriptors, and frames
        of the layout's width, ``None`` only for width 0)."""
        got = self.of_features(features)
        if got.kind != self.kind:
            raise StoreLayoutError(
                f"{image_id}: expected {self.kind} features (this store), got {got.kind} "
                "features (a store never mixes kinds: write another store)"
            )
        if self.kind == CODES and got.extra != self.extra:
            mine, theirs = dict(self.extra), dict(got.extra)
            if mine.get("vocabulary") != theirs.get("vocabulary"):
                raise StoreLayoutError(
                    f"{image_id}: expected codes of vocabulary {mine.get('vocabulary')} (this "
                    f"store), got codes of vocabulary {theirs.get('vocabulary')}"
                )
            raise StoreLayoutError(f"{image_id}: expected codes of layout {self}, got {got}")
        if (got.descriptor_dtype, got.descriptor_dim) != (
            self.descriptor_dtype,
            self.descriptor_dim,
        ):
            raise StoreLayoutError(
                f"{image_id}: expected {self.descriptor_dtype} descriptors of dimension "
                f"{self.descriptor_dim} (this store), got {got.descriptor_dtype} of "
                f"dimension {got.descriptor_dim}"
            )
        if got.frame_width != self.frame_width:
            raise StoreLayoutError(
                f"{image_id}: expected frames of width {self.frame_width} (this store), got "
                f"{got.frame_width}" + (" (frames=None)" if features.frames is None else "")
            )

    def __str__(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)


def codes_layout(vocabulary_id: int, words: int, signature_words: int, frames: bool) -> StoreLayout:
    """The layout of a store of codes of vocabulary ``vocabulary_id`` (``words`` per feature,
    ``signature_words`` uint64 signature words, quantised frames or none): stores of two
    vocabularies have unequal layouts, so one never takes the other's codes."""
    from ..codes.record import row_bytes

    return StoreLayout(
        "uint8",
        row_bytes(words, signature_words, frames),
        0,
        "uint16",
        CODES,
        extra=(
            ("frames", bool(frames)),
            ("signature_words", int(signature_words)),
            ("vocabulary", f"{int(vocabulary_id):016x}"),
            ("words", int(words)),
        ),
    )


def descriptors_of(layout: StoreLayout | None) -> tuple[str, int]:
    """``(descriptor dtype, dimension)`` of a layout; ``("uint8", 0)`` while none is fixed
    (what the manifest's ``descriptors`` records for older readers)."""
    return (layout.descriptor_dtype, layout.descriptor_dim) if layout else ("uint8", 0)


class LaidOut:
    """What a store reads from its ``layout`` (``StoreLayout | None``), for the classes that
    hold one (a store directory, the sharded reader)."""

    layout: StoreLayout | None

    @property
    def descriptor_dtype(self) -> str:
        """The layout's descriptor dtype (``uint8`` while no layout is fixed)."""
        return descriptors_of(self.layout)[0]

    @property
    def dim(self) -> int:
        """The layout's descriptor dimension (0 while no layout is fixed)."""
        return descriptors_of(self.layout)[1]


def layout_of_manifest(manifest: Mapping[str, Any], where: Any) -> StoreLayout | None:
    """The layout a store manifest records: its ``layout`` (``None``: not fixed yet), or,
    for a manifest written before layouts were declared, the one its ``descriptors`` and
    ``frame_width`` give (``None`` when the store has no feature: an old store whose first
    image was featureless recorded a layout that image made up)."""
    try:
        if "layout" in manifest:
            value = manifest["layout"]
            return None if value is None else StoreLayout.from_dict(value)
        if not manifest.get("features"):
            return None
        desc = manifest["descriptors"]
        return StoreLayout(desc["dtype"], int(desc["dim"]), manifest["frame_width"])
    except (ValueError, TypeError, KeyError) as exc:
        raise FormatError(f"{where}: unreadable layout ({exc})") from None
