"""Regenerate the offline catalog from live npm and PyPI metadata.

Input is a seed list of real MCP server packages (``data/seeds.json``:
``[{"registry": "npm"|"pypi", "name": ...}]``). For each seed the registry is
asked for the latest release and its README; packages that do not exist are
dropped, and each kept one becomes a catalog entry with the exact version,
description, licence, deprecation flag, stdio transport, a pinned launch
command (``npx -y pkg@ver`` / ``uvx pkg==ver``), the README's summary and its
tools, with where they came from (``tools_source``):

- ``readme``: the tools its own README lists, with their one-line descriptions;
  for an npm package whose README lists none, the tools of the document its
  README points to (or one named for its tools) in the same release tarball
  (`tooldocs`);
- ``catalog``: else the tool *names* known for that package from the previous
  catalog or other catalogs given, matched by package identifier (their
  descriptions are not copied), when they read as tools (`looks_like_tool_list`);
- ``none``: else no tools. Known names that read as parameter or field names
  are dropped and reported, never shipped.

Invariants:
- seeds are fetched concurrently, at most ``FETCH_CONCURRENCY`` at a time;
  one failing package never stops the others: it is reported, and its entry
  in the previous catalog (if any) is kept as it was;
- the result is ordered like the seeds, so a refresh diff shows real changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import anyio
import httpx
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from vsm_mcp.discovery.catalog import Catalog, Launch, PackageRef, ServerEntry, ToolSpec, ToolsSource
from vsm_mcp.discovery.packages import PackageInfo, package_info, tarball_url
from vsm_mcp.discovery.tooldocs import tools_from_tarball
from vsm_mcp.discovery.toolnames import looks_like_tool_list
from vsm_mcp.errors import CatalogError, SourceError

FETCH_CONCURRENCY = 8  # polite to the public registries, still ~20 s for 400 packages


class Seed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    registry: str
    name: str


def load_seeds(path: Path | None = None) -> list[Seed]:
    """The shipped seed list, or ``path``.

    Raises:
        CatalogError: the file is unreadable or not a list of seeds.
    """
    source = path or Path(str(resources.files("vsm_mcp.discovery") / "data" / "seeds.json"))
    try:
        return TypeAdapter(list[Seed]).validate_json(source.read_bytes())
    except (OSError, ValidationError) as exc:
        raise CatalogError(f"seeds {source}: {exc}") from exc


def package_of_launch(launch: Launch | None) -> tuple[str, str] | None:
    """(registry type, package name) that a ``npx``/``uvx`` launch runs, if it names one."""
    if launch is None:
        return None
    args = list(launch.args)
    if launch.command == "npx":
        registry = "npm"
    elif launch.command == "uvx" or (
        launch.command == "uv" and args[:2] in (["tool", "run"], ["run", "--with"])
    ):
        registry = "pypi"
        if launch.command == "uv":
            args = args[2:] if args[0] == "tool" else args[2:3]
        if "--from" in args:
            args = args[args.index("--from") + 1 :]
    else:
        return None
    name = next((a for a in args if not a.startswith("-")), None)
    if not name or name.startswith(("git+", "github:", "http")):
        return None
    if registry == "npm":
        at = name.find("@", 1)
        name = name[:at] if at > 0 else name
    else:
        name = name.split("==")[0].split("@")[0]
    return registry, name.lower()


def _package_keys(entry: ServerEntry) -> list[tuple[str, str]]:
    keys = [(p.registry_type, p.identifier.lower()) for p in entry.packages]
    launched = package_of_launch(entry.launch)
    if launched:
        keys.append(launched)
    return keys


def tools_by_package(catalogs: Iterable[Catalog]) -> dict[tuple[str, str], tuple[ToolSpec, ...]]:
    """Known tool lists keyed by (registry type, lower-case package name)."""
    known: dict[tuple[str, str], tuple[ToolSpec, ...]] = {}
    for catalog in catalogs:
        for entry in catalog:
            for key in _package_keys(entry):
                if entry.tools and key not in known:
                    known[key] = tuple(ToolSpec(t.name) for t in entry.tools)
    return known


def entries_by_package(catalog: Catalog) -> dict[tuple[str, str], ServerEntry]:
    """A catalog's entries keyed by (registry type, lower-case package name)."""
    return {key: entry for entry in catalog for key in _package_keys(entry)}


def entry_from_package(
    info: PackageInfo, tools: Sequence[ToolSpec], source: ToolsSource = ToolsSource.CATALOG
) -> ServerEntry:
    """The catalog entry of a package's latest release with ``tools`` from ``source``."""
    command, args = info.launch_command
    return ServerEntry(
        name=info.identifier,
        description=info.description,
        tools=tuple(tools),
        repository=info.repository,
        launch=Launch(command, args),
        packages=(PackageRef(info.registry_type, info.identifier, info.version, "stdio"),),
        license=info.license,
        deprecated=info.deprecated,
        tools_source=source,
        summary=info.summary,
    )


@dataclass(slots=True)
class RefreshReport:
    """What a refresh built, and everything it could not do, by seed label (``registry:name``)."""

    entries: list[ServerEntry] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # the registry has no such package
    failed: dict[str, str] = field(default_factory=dict)  # seed label -> what went wrong
    kept: list[str] = field(default_factory=list)  # failed, its previous entry shipped unchanged
    unfilled: dict[str, str] = field(default_factory=dict)  # entry shipped without tools -> why
    dropped: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> known names not shipped

    def by_source(self) -> dict[str, int]:
        """How many entries have their tools from each source."""
        counts = {source.value: 0 for source in ToolsSource}
        for entry in self.entries:
            counts[entry.tools_source.value] += 1
        return counts


def choose_tools(
    info: PackageInfo, known: tuple[ToolSpec, ...]
) -> tuple[tuple[ToolSpec, ...], ToolsSource, tuple[str, ...]]:
    """(tools, their source, known names dropped) for a package (see module doc)."""
    if info.readme_tools:
        return tuple(ToolSpec(n, d) for n, d in info.readme_tools), ToolsSource.README, ()
    names = tuple(t.name for t in known)
    if known and looks_like_tool_list(names):
        return known, ToolsSource.CATALOG, ()
    return (), ToolsSource.NONE, names


async def refresh_catalog(
    seeds: Sequence[Seed],
    known_tools: dict[tuple[str, str], tuple[ToolSpec, ...]],
    client: httpx.AsyncClient,
    on_progress: Callable[[str], None] | None = None,
    previous: Mapping[tuple[str, str], ServerEntry] | None = None,
) -> RefreshReport:
    """Fetch every seed's latest metadata and README and build catalog entries (see module doc).

    ``previous`` (by `entries_by_package`) supplies the entry kept for a seed whose fetch failed.
    """
    results: list[PackageInfo | str | None] = [None] * len(seeds)
    limiter = anyio.CapacityLimiter(FETCH_CONCURRENCY)

    async def fetch(index: int, seed: Seed) -> None:
        async with limiter:
            try:
                info = await package_info(client, seed.registry, seed.name)
            except SourceError as exc:
                results[index] = str(exc)
            else:
                if info is not None and info.registry_type == "npm" and not info.readme_tools:
                    documented = await tools_from_tarball(client, tarball_url(info))
                    info = replace(info, readme_tools=tuple(documented))
                results[index] = info
        if on_progress is not None:
            on_progress(seed.name)

    async with anyio.create_task_group() as group:
        for index, seed in enumerate(seeds):
            group.start_soon(fetch, index, seed)
    report = RefreshReport()
    seen: set[str] = set()
    for seed, result in zip(seeds, results, strict=True):
        label = f"{seed.registry}:{seed.name}"
        if isinstance(result, str):
            report.failed[label] = result
            old = (previous or {}).get((seed.registry, seed.name.lower()))
            if old is not None and old.name not in seen:
                seen.add(old.name)
                report.kept.append(label)
                report.entries.append(old)
        elif result is None:
            report.missing.append(label)
        elif result.identifier not in seen:
            seen.add(result.identifier)
            known = known_tools.get((seed.registry, result.identifier.lower()), ())
            tools, source, dropped = choose_tools(result, known)
            if dropped:
                report.dropped[result.identifier] = dropped
            if source is ToolsSource.NONE:
                report.unfilled[result.identifier] = (
                    "README lists no tools" if result.has_readme else "no README found"
                )
            report.entries.append(entry_from_package(result, tools, source))
    return report
