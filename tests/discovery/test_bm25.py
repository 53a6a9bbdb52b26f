from __future__ import annotations

import math

import numpy as np
import pytest

from vsm_mcp.discovery.bm25 import Bm25Index, FieldSpec

DOCS = [{"t": ["apple", "pie"]}, {"t": ["apple", "apple", "tart", "crust"]}, {"t": ["banana"]}]


def test_plain_bm25_matches_the_formula() -> None:
    index = Bm25Index(DOCS, (FieldSpec("t", 1.0, 0.75),), k1=1.5)
    avg = 7 / 3
    idf_apple = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))

    def term(tf: int, length: int) -> float:
        norm_tf = tf / (1 - 0.75 + 0.75 * length / avg)
        return idf_apple * norm_tf * 2.5 / (norm_tf + 1.5)

    scores = index.score({"apple": 1.0})
    assert scores == pytest.approx([term(1, 2), term(2, 4), 0.0])
    assert index.document_frequency("apple") == 2
    assert index.score({"unknown": 1.0}).tolist() == [0.0, 0.0, 0.0]


def test_query_weights_scale_and_contributions_agree() -> None:
    index = Bm25Index(DOCS, (FieldSpec("t"),))
    both = index.score({"apple": 2.0, "banana": 1.0})
    matrix = index.contributions(["apple", "banana"], np.asarray([0, 1, 2]))
    assert both == pytest.approx(matrix @ np.asarray([2.0, 1.0]))


def test_field_weight_counts() -> None:
    docs = [{"name": ["chart"], "body": ["x"]}, {"name": ["x"], "body": ["chart"]}]
    index = Bm25Index(docs, (FieldSpec("name", 3.0, 0.0), FieldSpec("body", 1.0, 0.0)))
    scores = index.score({"chart": 1.0})
    assert scores[0] > scores[1] > 0.0
