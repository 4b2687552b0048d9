"""The HTML report of a re-ranking run: one self-contained page (no server, no network)
with the run's metrics and settings, every query's global and re-ranked top-k as
thumbnails, the ground truth marked, the inliers on each candidate, a click-through to the
match picture, and per-query AP before vs after. Light: numpy and Pillow, no torch.

:mod:`~ilias_rerank.report.record` is the file a run writes for it (inliers and
transforms of every candidate verified).
"""

from __future__ import annotations

from .build import write_report
from .record import read_verification, write_verification

__all__ = ["read_verification", "write_report", "write_verification"]
