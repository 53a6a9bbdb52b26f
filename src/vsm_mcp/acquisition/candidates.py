"""From a demand to ranked, installable candidates: discovery's matcher over the shipped catalog.

How a demand category becomes a catalog query (the gateway's categories):

* ``search:<words>`` (a `vsm_search_tools` query nothing answered) -> ``<words>``;
* any other category is a tool name a client called that no unit has, e.g.
  ``get_current_time`` or ``weather__forecast``: its identifier parts
  (``get current time``, ``weather forecast``) are the query; the matcher's
  analyser splits and stems them like catalog text.

Only catalog entries with a package of an allowed registry type and an exact
version are candidates; the first such package of an entry is used. Reasons
name the query terms the entry matched and its best tools, so a person (or an
MCP client through ``vsm_find_capability``) can see why it ranks there.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

from vsm_mcp.acquisition.rerank import Summary
from vsm_mcp.acquisition.vetting import Candidate
from vsm_mcp.discovery.catalog import Catalog, ServerEntry
from vsm_mcp.discovery.matcher import Matcher
from vsm_mcp.discovery.sources import CATALOG_ORIGIN

SEARCH_PREFIX = "search:"
#: How a candidate's reasons name the tools that matched the query, best first.
TOOLS_REASON = "tools "
#: Servers the matcher returns before filtering to installable ones.
RANK_POOL = 25
#: A candidate from the catalog is of origin `CATALOG_ORIGIN`; one a live source found is named by
#: that source (`live_reason`); one given as ``REGISTRY:NAME@VERSION`` outside the catalog, ``named``.
NAMED_ORIGIN = "named"
_FOUND_BY, _NOT_LISTED = "found by ", ", not in the catalog"


def live_reason(origin: str) -> str:
    """The first reason of a candidate the live source ``origin`` found (kept with it, as stored)."""
    return f"{_FOUND_BY}{origin}{_NOT_LISTED}"


def candidate_origin(candidate: Candidate) -> str:
    """Where ``candidate`` came from: ``catalog``, the live source that found it, or ``named``."""
    if candidate.in_catalog:
        return CATALOG_ORIGIN
    first = candidate.reasons[0] if candidate.reasons else ""
    if first.startswith(_FOUND_BY) and first.endswith(_NOT_LISTED):
        return first.removeprefix(_FOUND_BY).removesuffix(_NOT_LISTED)
    return NAMED_ORIGIN


def category_query(category: str) -> str:
    """The catalog query for a demand category (see the module docstring)."""
    if category.startswith(SEARCH_PREFIX):
        return category.removeprefix(SEARCH_PREFIX).strip()
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", category)
    return " ".join(w for w in re.split(r"[\W_]+", words) if w)


def known_names(catalog: Catalog) -> frozenset[str]:
    """Well-known names for the typosquat check: catalog names and their package identifiers."""
    names = {entry.name for entry in catalog}
    names.update(p.identifier for entry in catalog for p in entry.packages)
    return frozenset(names)


def entry_candidate(
    entry: ServerEntry, registry_types: Collection[str], score: float = 0.0, reasons: Iterable[str] = ()
) -> Candidate | None:
    """The installable package of ``entry`` (first one of an allowed type with a version), or None."""
    for package in entry.packages:
        if package.registry_type in registry_types and package.version and package.transport == "stdio":
            return Candidate(
                server=entry.name,
                registry_type=package.registry_type,
                identifier=package.identifier,
                version=package.version,
                score=score,
                reasons=tuple(reasons),
                in_catalog=True,
            )
    return None


def rank_candidates(
    matcher: Matcher,
    query: str,
    *,
    registry_types: Collection[str] = ("npm", "pypi"),
    top_k: int = 5,
    category: str | None = None,
) -> list[Candidate]:
    """The ``top_k`` best installable catalog servers for ``query``, best first, with reasons."""
    result = matcher.match(query, top_k=RANK_POOL, category=category)
    out: list[Candidate] = []
    for match in result.servers:
        if match.score <= 0.0:
            continue
        entry = matcher.catalog.get(match.name)
        if entry is None:
            continue
        reasons = []
        if match.matched_terms:
            reasons.append("matches " + ", ".join(repr(t) for t in match.matched_terms))
        if match.tools:
            reasons.append(TOOLS_REASON + ", ".join(t.tool for t in match.tools))
        if entry.license:
            reasons.append(f"licence {entry.license}")
        candidate = entry_candidate(entry, registry_types, round(match.score, 4), reasons)
        if candidate is not None:
            out.append(candidate)
        if len(out) >= top_k:
            break
    return out


def summarize(candidate: Candidate, catalog: Catalog) -> Summary:
    """What the client's model is shown of ``candidate``: its catalog description and its best
    tools (those that matched the query, else the entry's first ones)."""
    entry = catalog.get(candidate.server)
    matched = next(
        (r.removeprefix(TOOLS_REASON) for r in candidate.reasons if r.startswith(TOOLS_REASON)), ""
    )
    tools = tuple(t for t in matched.split(", ") if t) or (
        tuple(t.name for t in entry.tools) if entry is not None else ()
    )
    return Summary(candidate.server, entry.description if entry is not None else "", tools)


_REF = re.compile(r"^(?P<registry>npm|pypi|[a-z]+):(?P<name>@?[^@\s]+)@(?P<version>\S+)$")


def parse_ref(ref: str, catalog: Catalog | None = None) -> Candidate:
    """``npm:NAME@VERSION`` or ``pypi:NAME@VERSION`` as an explicit candidate.

    Raises:
        ValueError: not of that form.
    """
    m = _REF.match(ref.strip())
    if m is None:
        raise ValueError(
            f"package {ref!r} must be REGISTRY:NAME@VERSION, e.g. pypi:mcp-server-time@2026.10.19"
        )
    name = m["name"]
    listed = catalog is not None and any(
        p.identifier == name and p.registry_type == m["registry"] for e in catalog for p in e.packages
    )
    return Candidate(
        server=name,
        registry_type=m["registry"],
        identifier=name,
        version=m["version"],
        reasons=("named explicitly",),
        in_catalog=listed,
    )
