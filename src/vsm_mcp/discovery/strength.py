"""How strongly the catalog answers a query, measured on the matcher's own output.

The matcher's scores are normalised per query (the best server scores about
the same whether it answers every word or one), so they cannot say whether
the catalog *has* what was asked. What can: the share of the query's content
terms (`text.analyze`, the matcher's own analyser: stop words out, stems in)
that the best server accounts for, through the terms the matcher says it
matched (`ServerMatch.matched_terms`) or the name and description of its best
tool (`ServerMatch.tools[0]`).

`WEAK_COVERAGE` is 0.5: a match that accounts for less than half of what was
asked is weak. The value is a plain majority rule, not fitted to any task set:
with one content term the match is strong only if it has that term; with two,
one of them suffices; with three or four, it needs two; and so on.

Invariants: the measure is pure and deterministic; it depends only on the
public `MatchResult` interface (not on how the matcher scores), so a change
of the matcher's internals does not change its meaning. A query with no
content terms (empty, or only stop words) is not weak: there is nothing a
live search could look for that the catalog lacks.
"""

from __future__ import annotations

from dataclasses import dataclass

from vsm_mcp.discovery.catalog import Catalog
from vsm_mcp.discovery.matcher import ServerMatch
from vsm_mcp.discovery.text import analyze

#: Below this share of the query's content terms, the catalog's best match is weak.
WEAK_COVERAGE = 0.5


@dataclass(frozen=True, slots=True)
class MatchStrength:
    """What share of the query's content terms the best match covers, and which ones it misses."""

    server: str | None  # the match measured; None when there was none
    coverage: float  # in [0, 1]
    covered: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def weak(self) -> bool:
        """Less than `WEAK_COVERAGE` of the query's content terms covered (never for a query with none)."""
        return bool(self.missing) and self.coverage < WEAK_COVERAGE

    def json(self) -> dict[str, object]:
        return {
            "server": self.server,
            "coverage": round(self.coverage, 3),
            "weak": self.weak,
            "covered": list(self.covered),
            "missing": list(self.missing),
        }


def match_strength(query: str, best: ServerMatch | None, catalog: Catalog | None = None) -> MatchStrength:
    """How much of ``query`` the match ``best`` covers (see the module docstring).

    ``catalog`` (the one ``best`` was ranked in) gives its best tool's description; without it,
    the tool's name alone counts.
    """
    terms = tuple(dict.fromkeys(analyze(query)))
    if not terms:
        return MatchStrength(best.name if best is not None else None, 1.0, (), ())
    if best is None:
        return MatchStrength(None, 0.0, (), terms)
    found = set(best.matched_terms)
    if best.tools:
        tool = best.tools[0].tool
        entry = catalog.get(best.name) if catalog is not None else None
        spec = next((t for t in entry.tools if t.name == tool), None) if entry is not None else None
        found.update(analyze(f"{tool} {spec.description if spec is not None else ''}"))
    covered = tuple(t for t in terms if t in found)
    missing = tuple(t for t in terms if t not in found)
    return MatchStrength(best.name, len(covered) / len(terms), covered, missing)
