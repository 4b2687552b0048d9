"""Exception classes. Input problems are also ``ValueError`` (or ``TypeError`` for dtypes),
so generic handlers keep working; each has a specific class for precise handling."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DTypeError",
    "DimensionMismatchError",
    "ExtractionError",
    "FailureBudgetError",
    "FormatError",
    "IliasRerankError",
    "ImageReadError",
    "InternalError",
    "InvalidInputError",
    "MissingExtraError",
    "MissingIdError",
    "NonFiniteError",
    "ResourceLimitError",
    "ShapeError",
    "StoreLayoutError",
    "StoreLockedError",
    "StoreWriteError",
]


class IliasRerankError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidInputError(IliasRerankError, ValueError):
    """The input arrays are not what the function accepts."""


class ShapeError(InvalidInputError):
    """Wrong rank, shape, length or memory layout."""


class DTypeError(InvalidInputError, TypeError):
    """Wrong element type (or descriptor types that differ between images)."""


class DimensionMismatchError(InvalidInputError):
    """Descriptor dimensions differ between the query and a candidate."""


class StoreLayoutError(DimensionMismatchError, ShapeError, DTypeError):
    """One image's arrays disagree with the layout its store declared (descriptor dtype or
    dimension, frame width, keypoint dtype): that image's failure, never the store's."""


class NonFiniteError(InvalidInputError):
    """NaN or infinity in keypoints, descriptors, frames or scores."""


class ResourceLimitError(InvalidInputError):
    """The input exceeds a documented size bound and was refused before any work."""


class MissingIdError(IliasRerankError, KeyError):
    """Ids (shortlist entries, queries) that the store or the inputs do not have."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


class ConfigError(IliasRerankError, ValueError):
    """A configuration value is out of range or unknown."""


class FormatError(IliasRerankError, ValueError):
    """Stored or serialised data is truncated, corrupt (checksum), or of a format or version
    this package does not read. Nothing is used from it."""


class StoreWriteError(IliasRerankError, OSError):
    """A store could not be written (read-only place, disk full, ...). What was committed
    before stays readable; the writer accepts nothing more."""


class StoreLockedError(StoreWriteError):
    """Another writer (a :class:`~ilias_rerank.store.StoreWriter`, a ``rerank-shortlists``
    job, ``store repair`` or ``store merge``) holds the store directory's writer lock. A
    second writer does not wait unless given a timeout: it gets this error at once (or when
    the timeout ends), and the store is left as the first writer makes it."""


class FailureBudgetError(IliasRerankError):
    """More images failed than the job's failure budget (``max_failed``) allows. The
    result file and the failure list were written; ``summary`` holds the job's summary
    (the ``message`` says how many failed against which budget)."""

    def __init__(self, message: str, summary: dict) -> None:
        super().__init__(message)
        self.summary = summary


class ImageReadError(IliasRerankError, OSError):
    """An image file is missing or cannot be decoded; the message names the file."""


class ExtractionError(IliasRerankError):
    """Some images of a batch failed. ``message`` names them, ``results`` holds every
    image's features (``None`` for the failed ones), ``failures`` maps batch index ->
    (source, reason)."""

    def __init__(self, message: str, results: list, failures: dict[int, tuple[str, str]]):
        super().__init__(message)
        self.results = results
        self.failures = failures


class MissingExtraError(IliasRerankError, ImportError):
    """A feature needs an optional dependency that is not installed; the message names the
    extra to install (``pip install 'ilias-rerank[<extra>]'``), ``extra`` holds its name."""

    def __init__(self, message: str, extra: str, name: str | None = None) -> None:
        super().__init__(message, name=name)
        self.extra = extra


class InternalError(IliasRerankError, RuntimeError):
    """A bug inside the package (a caught panic). Please report it."""
