"""BM25F over fielded documents, with postings precomputed as numpy arrays.

Scoring follows Robertson & Zaragoza's BM25F: per field, term frequency is
length-normalised (``tf_f / (1 - b_f + b_f * len_f / avglen_f)``) and
weighted, the weighted sum is saturated once with ``k1``, and multiplied by
``idf = ln(1 + (N - df + 0.5) / (df + 0.5))``. With one field of weight 1
this is plain BM25.

Invariants:
- everything query-independent (idf, normalisation, saturation) is computed
  at build time; a query costs one ``bincount`` over the postings of its terms.
- postings of a term are sorted by document id, so contributions of any
  subset of documents are found with ``searchsorted``.
- the index is immutable once built.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A document field: its weight in the sum and its length-normalisation ``b``."""

    name: str
    weight: float = 1.0
    b: float = 0.75


class Bm25Index:
    """An immutable BM25F index over ``docs`` (each a mapping field -> terms)."""

    __slots__ = ("_postings", "k1", "n_docs")

    def __init__(
        self, docs: Sequence[Mapping[str, Sequence[str]]], fields: Sequence[FieldSpec], k1: float = 1.5
    ) -> None:
        self.k1 = k1
        self.n_docs = len(docs)
        avg_len: dict[str, float] = {}
        for spec in fields:
            total = sum(len(doc.get(spec.name, ())) for doc in docs)
            avg_len[spec.name] = total / self.n_docs if self.n_docs and total else 1.0
        ids: defaultdict[str, list[int]] = defaultdict(list)
        tfs: defaultdict[str, list[float]] = defaultdict(list)
        for doc_id, doc in enumerate(docs):
            pseudo_tf: defaultdict[str, float] = defaultdict(float)
            for spec in fields:
                terms = doc.get(spec.name, ())
                if not terms or spec.weight == 0.0:
                    continue
                norm = 1.0 - spec.b + spec.b * len(terms) / avg_len[spec.name]
                for term, count in Counter(terms).items():
                    pseudo_tf[term] += spec.weight * count / norm
            for term, frequency in pseudo_tf.items():
                ids[term].append(doc_id)
                tfs[term].append(frequency)
        self._postings: dict[str, tuple[IntArray, FloatArray]] = {}
        for term, doc_ids in ids.items():
            df = len(doc_ids)
            idf = math.log(1.0 + (self.n_docs - df + 0.5) / (df + 0.5))
            tf: FloatArray = np.asarray(tfs[term], dtype=np.float64)
            weights: FloatArray = idf * tf * (k1 + 1.0) / (tf + k1)
            self._postings[term] = (np.asarray(doc_ids, dtype=np.int64), weights)

    def __contains__(self, term: str) -> bool:
        return term in self._postings

    def document_frequency(self, term: str) -> int:
        posting = self._postings.get(term)
        return 0 if posting is None else len(posting[0])

    def idf(self, term: str) -> float:
        df = self.document_frequency(term)
        return math.log(1.0 + (self.n_docs - df + 0.5) / (df + 0.5))

    def score(self, query: Mapping[str, float]) -> FloatArray:
        """Scores of every document for ``query`` (term -> query weight)."""
        id_parts: list[IntArray] = []
        weight_parts: list[FloatArray] = []
        for term, qweight in query.items():
            posting = self._postings.get(term)
            if posting is None or qweight == 0.0:
                continue
            id_parts.append(posting[0])
            weight_parts.append(posting[1] * qweight if qweight != 1.0 else posting[1])
        if not id_parts:
            return np.zeros(self.n_docs, dtype=np.float64)
        return np.bincount(
            np.concatenate(id_parts), weights=np.concatenate(weight_parts), minlength=self.n_docs
        ).astype(np.float64, copy=False)

    def contributions(self, terms: Sequence[str], doc_ids: IntArray) -> FloatArray:
        """Matrix ``[len(doc_ids), len(terms)]`` of each term's unweighted score in each document."""
        out = np.zeros((len(doc_ids), len(terms)), dtype=np.float64)
        for column, term in enumerate(terms):
            posting = self._postings.get(term)
            if posting is None:
                continue
            ids, weights = posting
            where = np.searchsorted(ids, doc_ids)
            where_clipped = np.minimum(where, len(ids) - 1)
            hit = ids[where_clipped] == doc_ids
            out[hit, column] = weights[where_clipped[hit]]
        return out
