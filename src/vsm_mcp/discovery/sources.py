"""One protocol, several sources of candidate servers, failing independently.

Sources: the offline catalog (always works), the official MCP registry,
npm search (whose hits come with their READMEs' tools and summary, so the
matcher ranks them on the same kind of text as catalog entries). Each live
source is wrapped in a `GuardedSource`: a deadline, a circuit breaker and a
TTL cache in the store. `gather` asks sources at once and merges their
answers; `discover` also ranks the union with the matcher; `beside_catalog`
puts live answers beside a pool of catalog entries (acquisition does this
when the catalog's best match is weak, `strength`).

PyPI offers no search API (its XML-RPC search is disabled, and the simple
index is only a list of every name), and npm's search is not reachable from
every network while its per-package documents are. `NameProbeSource` asks
each of them for the names MCP servers are conventionally published under
(``mcp-server-<word>``, ``<word>-mcp``, ...) for the need's telling words:
a bounded number of per-package lookups, each answered by the package's own
metadata and README. PyPI packages also arrive through the official
registry, whose entries name their ``pypi`` packages.

Invariants:
- a source's failure (timeout, HTTP error, open breaker) is recorded in the
  result's ``errors`` and never hides the other sources' candidates;
- a cached answer younger than its TTL is used without calling the source;
- candidates are merged by server name, the first source listed winning
  (the offline catalog first: it knows tool names); beside the catalog, a
  live answer that is a catalog entry (same name or same package) is that
  entry, of origin ``catalog``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import anyio
import httpx

from vsm_mcp.discovery.catalog import (
    Catalog,
    ServerEntry,
    ToolSpec,
    ToolsSource,
    entry_to_json,
    parse_catalog,
)
from vsm_mcp.discovery.matcher import Matcher, ServerMatch
from vsm_mcp.discovery.packages import PackageInfo, npm_package, npm_search, pypi_package, with_npm_readme
from vsm_mcp.discovery.refresh import entry_from_package
from vsm_mcp.discovery.registry import OFFICIAL_REGISTRY, list_servers
from vsm_mcp.discovery.resilience import SourceBreaker, TtlCache
from vsm_mcp.discovery.text import STOP_WORDS, words
from vsm_mcp.errors import CatalogError, SourceError

T = TypeVar("T")

SOURCE_DEADLINE_S = 20.0  # a discovery round must not hang on one slow registry
#: The origin of a candidate the offline catalog holds (live ones are named by their source).
CATALOG_ORIGIN = "catalog"


class CandidateSource(Protocol):
    """Anything that can propose servers for a query."""

    @property
    def name(self) -> str: ...

    async def candidates(self, query: str, limit: int) -> list[ServerEntry]: ...


@dataclass(slots=True)
class CatalogSource:
    """The offline catalog, ranked by the matcher."""

    catalog: Catalog
    name: str = CATALOG_ORIGIN
    _matcher: Matcher | None = None

    async def candidates(self, query: str, limit: int) -> list[ServerEntry]:
        if self._matcher is None:
            self._matcher = Matcher(self.catalog)
        result = self._matcher.match(query, top_k=limit)
        return [entry for m in result.servers if (entry := self.catalog.get(m.name)) is not None]


REGISTRY_SEARCH_WORDS = 3  # the registry matches substrings, so ask for a few telling words


def search_words(query: str, count: int = REGISTRY_SEARCH_WORDS) -> list[str]:
    """The longest distinct content words of ``query`` (a proxy for the most specific)."""
    distinct = dict.fromkeys(w for w in words(query) if len(w) >= 3 and w not in STOP_WORDS)
    return sorted(distinct, key=len, reverse=True)[:count]


@dataclass(slots=True)
class RegistrySource:
    """The official MCP registry's ``/v0.1/servers?search=``, one search per telling word."""

    client: httpx.AsyncClient
    base_url: str = OFFICIAL_REGISTRY
    name: str = "mcp-registry"

    async def candidates(self, query: str, limit: int) -> list[ServerEntry]:
        terms = search_words(query)

        async def search(term: str) -> list[ServerEntry]:
            return await list_servers(self.client, self.base_url, search=term, max_pages=1)

        found = await _each(search, terms)
        merged = {entry.name: entry for entries in found if entries for entry in entries}
        return list(merged.values())[: limit * len(terms)]


async def _each(ask: Callable[[str], Awaitable[T]], keys: Sequence[str]) -> list[T | None]:
    """``ask`` for every key concurrently: each answer, None where it failed.

    Raises:
        SourceError: every call failed (the source is down: its breaker should count it).
    """
    found: list[T | None] = [None] * len(keys)
    failures: list[SourceError] = []

    async def one(index: int, key: str) -> None:
        try:
            found[index] = await ask(key)
        except SourceError as exc:
            failures.append(exc)

    async with anyio.create_task_group() as group:
        for index, key in enumerate(keys):
            group.start_soon(one, index, key)
    if keys and len(failures) == len(keys):
        raise failures[0]
    return found


@dataclass(slots=True)
class NpmSearchSource:
    """npm's search API, restricted to MCP packages (where the API is reachable).

    Each hit's README is fetched (concurrently, each bounded as in `packages`)
    for its tools and summary; a hit whose README cannot be had is still a
    candidate, described by its package description alone.
    """

    client: httpx.AsyncClient
    name: str = "npm"
    readmes: bool = True

    async def candidates(self, query: str, limit: int) -> list[ServerEntry]:
        found = await npm_search(self.client, f"{query} keywords:mcp", size=limit)
        if self.readmes:
            found = await self._with_readmes(found)
        return [_entry_of(info) for info in found]

    async def _with_readmes(self, found: list[PackageInfo]) -> list[PackageInfo]:
        filled = list(found)

        async def fill(index: int, info: PackageInfo) -> None:
            filled[index] = await with_npm_readme(self.client, info)

        async with anyio.create_task_group() as group:
            for index, info in enumerate(found):
                group.start_soon(fill, index, info)
        return filled


#: The names MCP servers are conventionally published under, ``{}`` one word of the need
#: (the same on PyPI and npm: unscoped names, lower case, words joined by hyphens).
PROBE_PATTERNS: tuple[str, ...] = ("mcp-server-{}", "{}-mcp", "{}-mcp-server", "mcp-{}")
PROBE_WORDS = 3  # telling words probed: 3 words x 4 patterns = 12 lookups per registry and need


def probe_names(
    query: str, words_probed: int = PROBE_WORDS, rarity: Callable[[str], float] | None = None
) -> list[str]:
    """The package names `NameProbeSource` looks up for ``query``, in order: the conventional
    names of its most telling words, the rarest first by ``rarity`` (in [0, 1], e.g. the share
    of catalog servers without the word: a word every server has names no server), then the
    longest."""
    distinct = dict.fromkeys(
        w for w in words(query) if len(w) >= 3 and w not in STOP_WORDS and w.isascii() and w.isalnum()
    )
    ordered = sorted(distinct, key=lambda w: (-(rarity(w) if rarity else 0.0), -len(w)))
    return [pattern.format(word) for word in ordered[:words_probed] for pattern in PROBE_PATTERNS]


@dataclass(slots=True)
class NameProbeSource:
    """Packages of one registry (``pypi`` or ``npm``) published under the conventional names of
    an MCP server for the need's telling words (`probe_names`), each with its README's tools.

    For a registry without a reachable search: the lookups are per-package metadata documents
    (PyPI's JSON API, npm's package document), concurrent, each bounded as in `packages`. A
    name nobody published is a 404, not a failure; the source fails only when every lookup did.
    """

    client: httpx.AsyncClient
    registry_type: str
    name: str = ""
    rarity: Callable[[str], float] | None = None  # how telling a word is (`probe_names`)

    def __post_init__(self) -> None:
        if self.registry_type not in {"pypi", "npm"}:
            raise ValueError(f"no name probe for registry type {self.registry_type!r}")
        self.name = self.name or f"{self.registry_type}-names"

    async def candidates(self, query: str, limit: int) -> list[ServerEntry]:
        async def look_up(package: str) -> PackageInfo | None:
            if self.registry_type == "pypi":
                return await pypi_package(self.client, package)
            return await npm_package(self.client, package)

        found = await _each(look_up, probe_names(query, rarity=self.rarity))
        # one project can answer to two names (PyPI normalises them), and a withdrawn one is no candidate
        unique = {
            info.identifier.lower(): info for info in found if info is not None and not _withdrawn(info)
        }
        return [_entry_of(info) for info in unique.values()][:limit]


def _withdrawn(info: PackageInfo) -> bool:
    """Deprecated by its registry's flag, or by its own description's first word."""
    return info.deprecated or info.description.lstrip(" *[(").lower().startswith("deprecated")


def _entry_of(info: PackageInfo) -> ServerEntry:
    tools = tuple(ToolSpec(name, description) for name, description in info.readme_tools)
    return entry_from_package(info, tools, ToolsSource.README if tools else ToolsSource.NONE)


@dataclass(slots=True)
class GuardedSource:
    """A source behind a deadline, a circuit breaker and a TTL cache."""

    inner: CandidateSource
    cache: TtlCache | None = None
    deadline_s: float = SOURCE_DEADLINE_S
    breaker: SourceBreaker = field(init=False)

    def __post_init__(self) -> None:
        self.breaker = SourceBreaker(self.inner.name)

    @property
    def name(self) -> str:
        return self.inner.name

    async def candidates(self, query: str, limit: int) -> list[ServerEntry]:
        key = f"discovery:{self.name}:{limit}:{query.strip().lower()}"
        if self.cache is not None:
            cached = await self.cache.get(key)
            if isinstance(cached, list):
                try:
                    return list(parse_catalog(cached, f"cache {self.name}").entries)
                except CatalogError:
                    pass  # a cache written by an older format is just a miss
        entries = await self.breaker.call(lambda: self._fetch(query, limit))
        if self.cache is not None:
            await self.cache.put(key, [entry_to_json(e) for e in entries])
        return entries

    async def _fetch(self, query: str, limit: int) -> list[ServerEntry]:
        try:
            with anyio.fail_after(self.deadline_s):
                return await self.inner.candidates(query, limit)
        except TimeoutError as exc:
            raise SourceError(f"{self.name}: no answer within {self.deadline_s:.0f} s") from exc


@dataclass(frozen=True, slots=True)
class Gathered:
    """What a round of sources proposed, merged by name (the first source listed wins)."""

    entries: dict[str, ServerEntry]
    origin: dict[str, str]  # server name -> source name
    errors: dict[str, str]  # source name -> what went wrong


async def gather(sources: Sequence[CandidateSource], query: str, limit: int = 10) -> Gathered:
    """Ask every source concurrently; a source's failure is in ``errors``, the others' answers stay."""
    answers: list[list[ServerEntry]] = [[] for _ in sources]
    errors: dict[str, str] = {}

    async def ask(index: int, source: CandidateSource) -> None:
        try:
            answers[index] = await source.candidates(query, limit)
        except SourceError as exc:
            errors[source.name] = str(exc)

    async with anyio.create_task_group() as group:
        for index, source in enumerate(sources):
            group.start_soon(ask, index, source)
    merged: dict[str, ServerEntry] = {}
    origin: dict[str, str] = {}
    for source, entries in zip(sources, answers, strict=True):
        for entry in entries:
            if entry.name not in merged:
                merged[entry.name] = entry
                origin[entry.name] = source.name
    return Gathered(merged, origin, errors)


def beside_catalog(catalog: Catalog, pool: Sequence[ServerEntry], found: Gathered) -> Gathered:
    """``pool`` (catalog entries, origin ``catalog``) first, then what the live sources ``found``.

    A live entry named like a catalog entry, or offering a package a catalog entry offers, is
    that catalog entry (it knows more: curated tools, launch details, and vetting treats it as
    listed), so the same server is never proposed twice under two origins.
    """
    by_package = {(p.registry_type, p.identifier): entry for entry in catalog for p in entry.packages}
    entries = {entry.name: entry for entry in pool}
    origin = dict.fromkeys(entries, CATALOG_ORIGIN)
    for name, entry in found.entries.items():
        listed = catalog.get(name) or next(
            (
                by_package[key]
                for p in entry.packages
                if (key := (p.registry_type, p.identifier)) in by_package
            ),
            None,
        )
        if listed is not None:
            if listed.name not in entries:
                entries[listed.name] = listed
                origin[listed.name] = CATALOG_ORIGIN
        elif name not in entries:
            entries[name] = entry
            origin[name] = found.origin.get(name, "a live source")
    return Gathered(entries, origin, dict(found.errors))


@dataclass(frozen=True, slots=True)
class DiscoveryResult:
    matches: tuple[ServerMatch, ...]
    entries: dict[str, ServerEntry]
    origin: dict[str, str]  # server name -> source name
    errors: dict[str, str]  # source name -> what went wrong


async def discover(sources: Sequence[CandidateSource], query: str, limit: int = 10) -> DiscoveryResult:
    """Ask every source concurrently, merge by name, rank the union for ``query``."""
    found = await gather(sources, query, limit)
    if not found.entries:
        return DiscoveryResult((), {}, {}, found.errors)
    ranked = Matcher(Catalog(tuple(found.entries.values()), "<discovered>")).match(query, top_k=limit)
    return DiscoveryResult(ranked.servers, found.entries, found.origin, found.errors)
