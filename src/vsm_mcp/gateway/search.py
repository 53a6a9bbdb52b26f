"""Tool search across the whole fleet (an attenuator: a client asks, it is not flooded).

BM25 over each tool's public name (counted twice: names are dense), title and
description, tokenised by `vsm_mcp.discovery.text.analyze` (identifier
splitting, stemming, stop words). Invariants: the index is rebuilt from the
routing table (pure); a query with no term in common with any tool has no
match, and so does one whose best score is under ``min_score`` — that is
what the gateway records as unmatched demand.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from vsm_mcp.discovery.text import analyze
from vsm_mcp.fleet.routing import Route

#: BM25 parameters (the usual defaults).
_K1 = 1.2
_B = 0.75
#: Below this score a hit is noise, not a match (one rare term in a description scores ~1).
MIN_SCORE = 0.5


@dataclass(frozen=True, slots=True)
class ToolHit:
    """One search result."""

    name: str
    unit: str
    description: str
    score: float
    #: What the tool's calls taught, in [-1, 1] (`ports.LearnedRouting`); None: not weighed.
    reliability: float | None = None


class ToolIndex:
    """An inverted index of the fleet's tools."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._docs: list[tuple[Route, Counter[str], int]] = []
        df: Counter[str] = Counter()
        for route in routes:
            title = str(route.definition.get("title") or "")
            terms = Counter(analyze(f"{route.public} {route.name} {title} {route.description}"))
            terms.update(analyze(route.name))
            length = sum(terms.values())
            self._docs.append((route, terms, length))
            df.update(terms.keys())
        n = len(self._docs)
        self._avg = sum(d[2] for d in self._docs) / n if n else 0.0
        self._idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    def __len__(self) -> int:
        return len(self._docs)

    def search(self, query: str, limit: int = 10, min_score: float = MIN_SCORE) -> list[ToolHit]:
        """The best ``limit`` tools for ``query``, best first; empty when nothing matches."""
        q = [t for t in set(analyze(query)) if t in self._idf]
        if not q:
            return []
        hits: list[ToolHit] = []
        for route, terms, length in self._docs:
            score = 0.0
            norm = _K1 * (1 - _B + _B * length / self._avg) if self._avg else _K1
            for term in q:
                tf = terms.get(term, 0)
                if tf:
                    score += self._idf[term] * tf * (_K1 + 1) / (tf + norm)
            if score >= min_score:
                hits.append(ToolHit(route.public, route.unit, route.description, round(score, 4)))
        hits.sort(key=lambda h: (-h.score, h.name))
        return hits[:limit]
