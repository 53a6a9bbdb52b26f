"""Vocabulary bridges mined from a catalog's own text: which terms go together.

A user asks for a "forecast"; the server that gives one may say "weather" in
its description and "forecast" only in one tool. Terms that keep appearing in
the same *unit* of the catalog (one tool: its name and description; one
server: its name, description and README summary) name the same capability,
so a query term is bridged to the terms it co-occurs with most strongly.

Strength is normalised pointwise mutual information over units,
``npmi(a, b) = ln(p(a, b) / (p(a) p(b))) / -ln p(a, b)``, in ``(0, 1]`` for
terms that attract each other. A bridge needs ``MIN_COOCCURRENCE`` units in
common (one shared unit is chance) and ``npmi >= MIN_NPMI``; a term keeps its
``TOP_BRIDGES`` strongest. Terms found in more than ``MAX_DF_SHARE`` of the
units are not bridged: they are generic ("get", "data") and already match.

Invariants:
- mined only from the catalog it is built on (nothing hand-written), so it
  carries to any catalog; deterministic (ties broken by term);
- bridges are computed lazily per query term and cached; the cost of one term
  is bounded by ``MAX_DF_SHARE`` of the units' postings, so a query stays fast
  on a catalog of 10,000 servers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from vsm_mcp.discovery.bm25 import IntArray

MIN_COOCCURRENCE = 2  # units two terms must share before their association is more than chance
MIN_NPMI = 0.3  # weaker associations are topical noise (shared boilerplate of a category)
TOP_BRIDGES = 4  # a term's strongest associations; more drift from its meaning
MAX_DF_SHARE = 0.05  # terms in more units than this are generic: they need no bridge
_CACHE_LIMIT = 4096


class Bridges:
    """Term-to-term associations over the units (bags of terms) of one catalog."""

    __slots__ = ("_cache", "_df", "_ids", "_indptr", "_postings", "_terms", "_unit_terms", "n_units")

    def __init__(self, units: Iterable[Iterable[str]]) -> None:
        vocabulary: dict[str, int] = {}
        postings: list[list[int]] = []
        indptr = [0]
        unit_terms: list[int] = []
        for unit_id, unit in enumerate(units):
            for term in sorted(set(unit)):
                term_id = vocabulary.setdefault(term, len(vocabulary))
                if term_id == len(postings):
                    postings.append([])
                postings[term_id].append(unit_id)
                unit_terms.append(term_id)
            indptr.append(len(unit_terms))
        self.n_units = len(indptr) - 1
        self._ids = vocabulary
        self._terms = sorted(vocabulary, key=vocabulary.__getitem__)
        self._postings: list[IntArray] = [np.asarray(p, dtype=np.int64) for p in postings]
        self._df: IntArray = np.asarray([len(p) for p in postings], dtype=np.int64)
        self._indptr: IntArray = np.asarray(indptr, dtype=np.int64)
        self._unit_terms: IntArray = np.asarray(unit_terms, dtype=np.int64)
        self._cache: dict[str, tuple[tuple[str, float], ...]] = {}

    def related(self, term: str) -> tuple[tuple[str, float], ...]:
        """The terms ``term`` is bridged to, strongest first, each with its strength in (0, 1]."""
        cached = self._cache.get(term)
        if cached is None:
            cached = self._mine(term)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[term] = cached
        return cached

    def _mine(self, term: str) -> tuple[tuple[str, float], ...]:
        term_id = self._ids.get(term)
        if term_id is None:
            return ()
        df = int(self._df[term_id])
        if df < MIN_COOCCURRENCE or df > MAX_DF_SHARE * self.n_units:
            return ()
        units = self._postings[term_id]
        starts, ends = self._indptr[units], self._indptr[units + 1]
        lengths = ends - starts
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
        together = np.bincount(self._unit_terms[offsets], minlength=len(self._terms))
        together[term_id] = 0
        candidates = np.flatnonzero(together >= MIN_COOCCURRENCE)
        if not candidates.size:
            return ()
        n = float(self.n_units)
        joint = together[candidates] / n
        pmi = np.log(joint / ((df / n) * (self._df[candidates] / n)))
        npmi = pmi / -np.log(joint)
        keep = npmi >= MIN_NPMI
        found = sorted(
            ((self._terms[int(c)], float(s)) for c, s in zip(candidates[keep], npmi[keep], strict=True)),
            key=lambda pair: (-pair[1], pair[0]),
        )
        return tuple((name, min(1.0, strength)) for name, strength in found[:TOP_BRIDGES])

    def expand(self, terms: dict[str, float], weight: float) -> dict[str, float]:
        """``terms`` plus their bridges at ``weight`` x strength x the term's weight (max, not sum)."""
        out = dict(terms)
        if weight <= 0.0:
            return out
        for term, qweight in terms.items():
            for related, strength in self.related(term):
                added = qweight * weight * strength
                if math.isfinite(added) and out.get(related, 0.0) < added:
                    out[related] = added
        return out
