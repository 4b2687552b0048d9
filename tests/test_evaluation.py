"""Evaluation protocols against hand-computed cases (ILIAS mAP@k with ties, missing queries
and truncation; revisitop E/M/H with junk; INQUIRE-style shortlist metrics)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ilias_rerank.evaluation import (
    average_precision,
    average_precision_tied,
    ilias_instance,
    ilias_map,
    revisitop_map,
    shortlist_metrics,
)


def test_tied_ap_hand_cases():
    assert average_precision_tied([1, 0, 1], [0.9, 0.8, 0.7]) == pytest.approx(5 / 6)
    # Tied scores enter together: one threshold, precision 1/2 at recall 1.
    assert average_precision_tied([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert average_precision_tied([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    assert average_precision_tied([0, 1, 1], [0.9, 0.5, 0.5]) == pytest.approx(2 / 3)
    assert math.isnan(average_precision_tied([0, 0], [0.2, 0.1]))


@given(st.lists(st.booleans(), min_size=1, max_size=40))
def test_tied_ap_equals_plain_ap_when_scores_differ(labels):
    scores = np.arange(len(labels), 0, -1, dtype=float)
    if not any(labels):
        return
    assert average_precision_tied(labels, scores) == pytest.approx(average_precision(labels))


def test_ilias_map_hand_case_with_truncation_and_missing_queries():
    gt = {"obj/q/1": {"obj/pos/a", "obj/pos/b", "obj/pos/c"}, "obj/q/2": {"obj/pos/a"}}
    sims = {"obj/q/1": {"obj/pos/a": 0.9, "yfcc/x": 0.8, "obj/pos/b": 0.7}}
    full = ilias_map(sims, gt)
    # AP over the list = (1 + 2/3) / 2, times 2 found / min(1000, 3 positives).
    assert full.map == pytest.approx(5 / 6 * 2 / 3)
    assert full.queries_evaluated == 1 and full.queries_missing == ["obj/q/2"]
    top2 = ilias_map(sims, gt, k=2)
    assert top2.aps["obj/q/1"] == pytest.approx(1.0 * 1 / 2)
    none = ilias_map({"obj/q/2": {"yfcc/x": 1.0}}, gt)
    assert none.aps["obj/q/2"] == 0.0
    assert ilias_instance("obj/q/1") == "obj"


def test_ilias_map_groups_ties_and_refuses_unknown_queries():
    gt = {"q": {"p"}}
    assert ilias_map({"q": {"n": 1.0, "p": 1.0}}, gt).map == pytest.approx(0.5)
    with pytest.raises(KeyError, match="without ground truth"):
        ilias_map({"other": {"p": 1.0}}, gt)


def test_revisitop_hand_case():
    rankings = [[5, 3, 7, 1]]
    gnd = [{"easy": [3], "hard": [1], "junk": [7]}]
    res = revisitop_map(rankings, gnd, ks=(1, 5))
    # Medium: junk 7 dropped -> positives at 0-based ranks 1, 2 of [5, 3, 1].
    medium = (0 + 1 / 2) / 2 / 2 + (1 / 2 + 2 / 3) / 2 / 2
    assert res["medium"]["map"] == pytest.approx(medium)
    assert res["easy"]["map"] == pytest.approx(0.25)  # hard image 1 is junk for Easy
    assert res["hard"]["map"] == pytest.approx(0.25)  # easy image 3 is junk for Hard
    assert res["medium"]["mp@1"] == 0.0
    assert res["medium"]["mp@5"] == pytest.approx(2 / 3)  # revisitop's min(max pos, k)


def test_revisitop_skips_queries_without_positives():
    res = revisitop_map([[0, 1], [1, 0]], [{"easy": [0]}, {"hard": [0]}])
    assert res["easy"]["queries"] == 1 and res["easy"]["map"] == 1.0
    assert res["medium"]["queries"] == 2
    assert res["medium"]["map"] == pytest.approx((1.0 + 0.25) / 2)


def test_shortlist_metrics_hand_case():
    m = shortlist_metrics([0, 1, 1, 0])
    assert m["ap"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    ideal = 1 + 1 / math.log2(3)
    assert m["ndcg"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / ideal)
    assert m["mrr"] == 0.5 and m["top1"] == 0.0 and m["p@5"] == pytest.approx(0.4)
    assert shortlist_metrics([0, 0])["ap"] == 0.0
