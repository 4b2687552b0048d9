"""Type stubs of the Rust extension ``ilias_rerank._core`` (hand-written; the public API is
in ``ilias_rerank.api``, which wraps these functions with conversions and result objects).

Feature arguments are any objects with the attributes ``keypoints`` ((N, 2) float32),
``descriptors`` ((N, D) float32 or uint8), ``frames`` (None, (N, 2) or (N, 2, 3) float32)
and ``image_size`` (None or (height, width)), all C-contiguous. ``config`` is a dict of
``RerankConfig`` fields (missing keys keep their defaults; unknown keys are refused).
Errors are raised as the classes of ``ilias_rerank.errors``.
"""

from collections.abc import Sequence
from typing import Any, Protocol, TypedDict

import numpy as np
import numpy.typing as npt

__version__: str

class _Features(Protocol):
    keypoints: npt.NDArray[np.float32]
    descriptors: npt.NDArray[np.float32] | npt.NDArray[np.uint8]
    frames: npt.NDArray[np.float32] | None
    image_size: tuple[int, int] | None

class _RerankOut(TypedDict):
    order: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float64]
    inliers: npt.NDArray[np.int64]
    num_matches: npt.NDArray[np.int64]
    transforms: npt.NDArray[np.float64]
    models: list[str | None]
    support: npt.NDArray[np.int64]
    expansion: npt.NDArray[np.int64]
    refined: npt.NDArray[np.int64]

class _PairOut(TypedDict):
    matches: npt.NDArray[np.int64]
    distances: npt.NDArray[np.float32]
    inlier_mask: npt.NDArray[np.bool_]
    transform: npt.NDArray[np.float64] | None
    model: str | None
    num_inliers: int

class _CorrespondenceOut(TypedDict):
    inlier_mask: npt.NDArray[np.bool_]
    transform: npt.NDArray[np.float64] | None
    model: str | None
    num_inliers: int

def rerank(
    query: _Features,
    candidates: Sequence[_Features],
    global_scores: npt.NDArray[np.float32] | None = None,
    config: dict[str, Any] | None = None,
) -> _RerankOut: ...
def rerank_consensus(
    candidates: Sequence[_Features],
    global_scores: npt.NDArray[np.float32] | None = None,
    pseudo_queries: int = 5,
    config: dict[str, Any] | None = None,
) -> _RerankOut: ...
def verify_pair(
    query: _Features, candidate: _Features, config: dict[str, Any] | None = None
) -> _PairOut: ...
def verify_correspondences(
    query_points: npt.NDArray[np.float32],
    candidate_points: npt.NDArray[np.float32],
    query_frames: npt.NDArray[np.float32] | None = None,
    candidate_frames: npt.NDArray[np.float32] | None = None,
    candidate_size: tuple[int, int] | None = None,
    config: dict[str, Any] | None = None,
) -> _CorrespondenceOut: ...
def frame_hypothesis_support(
    query_points: npt.NDArray[np.float32],
    candidate_points: npt.NDArray[np.float32],
    query_frames: npt.NDArray[np.float32],
    candidate_frames: npt.NDArray[np.float32],
    candidate_size: tuple[int, int] | None = None,
    config: dict[str, Any] | None = None,
) -> npt.NDArray[np.uint32]: ...
def fuse(
    inliers: npt.NDArray[np.uint32],
    global_scores: npt.NDArray[np.float32] | None = None,
    config: dict[str, Any] | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]: ...
def default_config() -> dict[str, Any]: ...
def validate_config(config: dict[str, Any]) -> None: ...
def cpu_features() -> str: ...
def kernel_throughput(
    n: int, m: int, dim: int, uint8: bool = False, repeats: int = 64, threads: int = 0
) -> float: ...
def extract_sift(
    sources: Sequence[bytes | str | np.ndarray],
    num_features: int = 1024,
    max_side: int = 768,
    upsample: bool = False,
    contrast_threshold: float = 0.02,
    threads: int = 0,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int], tuple[int, int]] | str]: ...
def working_image(
    source: bytes | str | np.ndarray, max_side: int = 768, upsample: bool = False
) -> tuple[np.ndarray, tuple[int, int]]: ...
