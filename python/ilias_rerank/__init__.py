"""ilias-rerank: fast local-descriptor re-ranking for instance-level image retrieval.

>>> import ilias_rerank as ir
>>> feats = ir.extract_local(["query.jpg", "a.jpg", "b.jpg"])
>>> result = ir.rerank(feats[0], feats[1:])
>>> result.order, result.scores, result.inliers

Importing the package needs only numpy (it loads neither torch nor Pillow): ``rerank``,
the verifiers, ``LocalFeatures``, ``RerankConfig``, the store and the evaluation work
with ``pip install ilias-rerank``; extraction and the pipeline need extras
(``ilias_rerank._extras``), and say which when they are missing.
"""

from . import _core, compact
from .api import (
    frame_hypotheses,
    rerank,
    rerank_consensus,
    verify_correspondences,
    verify_pair,
)
from .config import RerankConfig
from .errors import (
    ConfigError,
    DimensionMismatchError,
    DTypeError,
    ExtractionError,
    FailureBudgetError,
    FormatError,
    IliasRerankError,
    ImageReadError,
    InternalError,
    InvalidInputError,
    MissingExtraError,
    MissingIdError,
    NonFiniteError,
    ResourceLimitError,
    ShapeError,
    StoreLockedError,
    StoreWriteError,
)
from .extractors import extract_local
from .features import LocalFeatures
from .reranker import Reranker
from .results import PairVerification, RerankResult
from .store import FeatureStore, StoreWriter

__version__ = _core.__version__

__all__ = [
    "ConfigError",
    "DTypeError",
    "DimensionMismatchError",
    "ExtractionError",
    "FailureBudgetError",
    "FeatureStore",
    "FormatError",
    "IliasRerankError",
    "ImageReadError",
    "InternalError",
    "InvalidInputError",
    "LocalFeatures",
    "MissingExtraError",
    "MissingIdError",
    "NonFiniteError",
    "PairVerification",
    "RerankConfig",
    "RerankResult",
    "Reranker",
    "ResourceLimitError",
    "ShapeError",
    "StoreLockedError",
    "StoreWriteError",
    "StoreWriter",
    "__version__",
    "compact",
    "cpu_features",
    "extract_local",
    "frame_hypotheses",
    "rerank",
    "rerank_consensus",
    "verify_correspondences",
    "verify_pair",
]


def cpu_features() -> str:
    """The instruction set the similarity kernels use on this CPU.

    Returns
    -------
    str
        ``"avx512-amx"`` (AMX-INT8 tiles, ``ILIAS_RERANK_NO_AMX=1`` turns them off),
        ``"avx512-vnni"``, ``"avx512"``, ``"avx2"`` or ``"portable"``
        (``ILIAS_RERANK_FORCE_PORTABLE=1`` forces the last).

    Raises
    ------
    Nothing
        It only reads what the CPU detection found at import.
    """
    return _core.cpu_features()
