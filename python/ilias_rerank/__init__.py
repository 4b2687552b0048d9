"""ilias-rerank: fast local-descriptor re-ranking for instance-level image retrieval.

>>> import ilias_rerank as ir
>>> feats = ir.extract_local(["query.jpg", "a.jpg", "b.jpg"])
>>> result = ir.rerank(feats[0], feats[1:])
>>> result.order, result.scores, result.inliers
"""

from . import _core, compact
from .api import rerank, verify_correspondences, verify_pair
from .config import RerankConfig
from .errors import (
    ConfigError,
    DimensionMismatchError,
    DTypeError,
    ExtractionError,
    FormatError,
    IliasRerankError,
    ImageReadError,
    InternalError,
    InvalidInputError,
    MissingIdError,
    NonFiniteError,
    ResourceLimitError,
    ShapeError,
    StoreWriteError,
)
from .extract import extract_local
from .features import LocalFeatures
from .results import PairVerification, RerankResult

__version__ = _core.__version__

__all__ = [
    "ConfigError",
    "DTypeError",
    "DimensionMismatchError",
    "ExtractionError",
    "FormatError",
    "IliasRerankError",
    "ImageReadError",
    "InternalError",
    "InvalidInputError",
    "LocalFeatures",
    "MissingIdError",
    "NonFiniteError",
    "PairVerification",
    "RerankConfig",
    "RerankResult",
    "ResourceLimitError",
    "ShapeError",
    "StoreWriteError",
    "__version__",
    "compact",
    "cpu_features",
    "extract_local",
    "rerank",
    "verify_correspondences",
    "verify_pair",
]


def cpu_features() -> str:
    """The instruction set the similarity kernels use here (``avx512``, ``avx2``, ``portable``)."""
    return _core.cpu_features()
