"""npm and PyPI package metadata: what exists, its exact latest version and licence.

Endpoints (documented, public, no authentication):
- npm: ``GET {registry}/{name}/latest`` (the latest version's manifest; scoped
  names are URL-encoded, ``@scope%2Fname``); its README from the full package
  document ``GET {registry}/{name}`` (field ``readme``) or, when that document
  carries none (mirrors and abbreviated documents drop it), from the
  ``README`` file inside the release tarball (``dist.tarball``); and the
  search API ``GET {registry}/-/v1/search?text=&size=`` where it is reachable;
- PyPI: ``GET {index}/pypi/{name}/json`` (``info`` of the latest release; its
  ``description`` is the README).

The README gives the tools the package lists and a plain-text summary (see
`readme`).

Invariants:
- a package that does not exist is ``None``, never an error; a transport
  failure, a timeout or an unexpected payload is a `SourceError` naming the
  package and the registry;
- an npm README that cannot be had (too large, timed out, no README in the
  tarball) is an empty README, never an error: the package is still valid;
- downloads for a README stop at `MAX_README_DOCUMENT_BYTES` /
  `MAX_TARBALL_BYTES`;
- payloads are validated with pydantic here; callers get `PackageInfo`.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import zlib
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import anyio
import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vsm_mcp.discovery.readme import summary_from_readme, tools_from_readme
from vsm_mcp.errors import SourceError

NPM_REGISTRY = "https://registry.npmjs.org"
PYPI_INDEX = "https://pypi.org"
# one metadata document is small; a registry slower than this is treated as down for this call
METADATA_TIMEOUT_S = 15.0
# a README is worth a slower download than metadata (a tarball of a few MB), not an unbounded one
README_TIMEOUT_S = 30.0
# full documents of packages with hundreds of releases run to MBs; past this the tarball is cheaper
MAX_METADATA_BYTES = 32_000_000  # a registry's JSON document of one package (all its releases)
MAX_README_DOCUMENT_BYTES = 4_000_000
# MCP server tarballs are mostly well under 1 MB; bundles with binaries are not worth reading whole
MAX_TARBALL_BYTES = 8_000_000
MAX_UNPACKED_BYTES = 64_000_000  # unpacked from one tarball at most (see `open_tarball`)
MAX_README_CHARS = 200_000  # a README longer than this lists its tools well before the end
_NO_README = "ERROR: No README data found!"  # what the npm registry stores for a package without one
_README_MEMBER = re.compile(r"[^/]+/readme(?:\.(?:md|markdown|txt))?", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class PackageInfo:
    """The latest release of a package as its registry describes it."""

    registry_type: str  # "npm" | "pypi"
    identifier: str
    version: str
    description: str
    license: str | None
    deprecated: bool
    repository: str | None
    keywords: tuple[str, ...] = ()
    readme_tools: tuple[tuple[str, str], ...] = ()  # (name, description) listed in the README
    summary: str = ""  # the README's first sections as plain text
    has_readme: bool = False  # whether a README was found at all

    @property
    def launch_command(self) -> tuple[str, tuple[str, ...]]:
        """Command and arguments that run exactly this version (npx / uvx)."""
        if self.registry_type == "npm":
            return "npx", ("-y", f"{self.identifier}@{self.version}")
        return "uvx", (f"{self.identifier}=={self.version}",)


class _NpmRepository(BaseModel):
    model_config = ConfigDict(extra="ignore")
    url: str | None = None


class _NpmDist(BaseModel):
    model_config = ConfigDict(extra="ignore")
    tarball: str | None = None


class _NpmManifest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    version: str
    dist: _NpmDist | None = None
    description: str | None = None
    license: str | dict[str, Any] | None = None
    deprecated: str | bool | None = None
    repository: str | _NpmRepository | None = None
    keywords: list[str] | str | None = None


class _PypiInfo(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    version: str
    summary: str | None = None
    description: str | None = None  # the README
    license: str | None = None
    license_expression: str | None = None
    classifiers: list[str] = Field(default_factory=list)
    project_urls: dict[str, str] | None = None
    keywords: str | None = None


class _PypiDocument(BaseModel):
    model_config = ConfigDict(extra="ignore")
    info: _PypiInfo


def _clean_repository(url: str | None) -> str | None:
    if not url:
        return None
    url = url.removeprefix("git+").removesuffix(".git")
    return url.replace("git://", "https://").replace("ssh://git@", "https://")


def _npm_info(manifest: _NpmManifest, readme: str = "") -> PackageInfo:
    license_ = manifest.license
    if isinstance(license_, dict):
        license_ = str(license_.get("type")) if license_.get("type") else None
    repository = manifest.repository
    repo_url = repository.url if isinstance(repository, _NpmRepository) else repository
    keywords = manifest.keywords if isinstance(manifest.keywords, list) else []
    return PackageInfo(
        "npm",
        manifest.name,
        manifest.version,
        (manifest.description or "").strip(),
        license_,
        bool(manifest.deprecated),
        _clean_repository(repo_url),
        tuple(str(k) for k in keywords),
        tuple(tools_from_readme(readme)),
        summary_from_readme(readme),
        bool(readme.strip()),
    )


def tarball_url(info: PackageInfo, registry: str = NPM_REGISTRY) -> str:
    """Where npm keeps the release tarball of ``info`` (the registry's documented layout)."""
    basename = info.identifier.rsplit("/", 1)[-1]
    return f"{registry}/{info.identifier}/-/{basename}-{info.version}.tgz"


async def with_npm_readme(
    client: httpx.AsyncClient, info: PackageInfo, registry: str = NPM_REGISTRY
) -> PackageInfo:
    """``info`` (an npm package found without its README, e.g. by search) with its README's tools
    and summary; unchanged when no README can be had."""
    readme = await npm_readme(client, info.identifier, tarball_url(info, registry), registry)
    if not readme.strip():
        return info
    return replace(
        info,
        readme_tools=tuple(tools_from_readme(readme)),
        summary=summary_from_readme(readme),
        has_readme=True,
    )


def _pypi_info(info: _PypiInfo) -> PackageInfo:
    license_ = info.license_expression or (info.license if info.license and len(info.license) < 60 else None)
    if license_ is None:
        license_ = next(
            (c.rsplit(" :: ", 1)[-1] for c in info.classifiers if c.startswith("License :: OSI Approved ::")),
            None,
        )
    urls = info.project_urls or {}
    repository = next(
        (
            u
            for k, u in urls.items()
            if k.lower() in {"repository", "source", "source code", "github", "code"}
        ),
        None,
    )
    inactive = any(c.startswith("Development Status :: 7") for c in info.classifiers)
    return PackageInfo(
        "pypi",
        info.name,
        info.version,
        (info.summary or "").strip(),
        license_,
        inactive,
        _clean_repository(repository),
        tuple(k.strip() for k in (info.keywords or "").replace(",", " ").split() if k.strip()),
        tuple(tools_from_readme((info.description or "")[:MAX_README_CHARS])),
        summary_from_readme((info.description or "")[:MAX_README_CHARS]),
        bool((info.description or "").strip()),
    )


async def get_json(
    client: httpx.AsyncClient,
    url: str,
    what: str,
    *,
    request_timeout_s: float = METADATA_TIMEOUT_S,
    limit: int = MAX_METADATA_BYTES,
) -> Any | None:
    """GET a registry JSON document of at most ``limit`` bytes; None on 404.

    Raises:
        SourceError: transport failure, another HTTP status, a larger body, or one that is not JSON.
    """
    try:
        async with client.stream("GET", url, timeout=request_timeout_s, follow_redirects=True) as response:
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise SourceError(f"{what}: HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    raise SourceError(f"{what}: the document is larger than {limit:,} bytes")
    except httpx.HTTPError as exc:
        raise SourceError(f"{what}: {type(exc).__name__}: {exc}") from exc
    try:
        return json.loads(body)
    except ValueError as exc:
        raise SourceError(f"{what}: response is not JSON") from exc


async def bounded_get(client: httpx.AsyncClient, url: str, limit: int) -> tuple[bytes, bool] | None:
    """Up to ``limit`` bytes of ``url`` and whether that is all of it; None unless HTTP 200."""
    chunks: list[bytes] = []
    size = 0
    async with client.stream("GET", url, timeout=README_TIMEOUT_S, follow_redirects=True) as response:
        if response.status_code != 200:
            return None
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                return b"".join(chunks)[:limit], False
    return b"".join(chunks), True


class _Unpacked(io.RawIOBase):
    """A gzip stream's bytes, up to ``limit`` of them: a tarball's members are skipped by
    unpacking them, and a few MB packed can unpack to gigabytes. A cut-off stream ends where
    the cut is, after every byte before it (as tarfile's own reading does)."""

    _INPUT_CHUNK = 16_384  # packed bytes inflated per step (at most ~16 MB out, bounded by limit)

    def __init__(self, packed: bytes, limit: int) -> None:
        super().__init__()
        self._packed = memoryview(packed)
        self._read = 0
        self._inflate = zlib.decompressobj(wbits=31)  # a gzip header and trailer
        self._pending = memoryview(b"")
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            if self._read >= len(self._packed) or self._inflate.eof:
                return 0
            chunk = self._packed[self._read : self._read + self._INPUT_CHUNK]
            self._read += len(chunk)
            self._pending = memoryview(self._inflate.decompress(chunk))
            self._left -= len(self._pending)
            if self._left < 0:
                raise OSError("the archive unpacks to more than it may")
        size = min(len(buffer), len(self._pending))
        memoryview(buffer)[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def open_tarball(data: bytes, limit: int = MAX_UNPACKED_BYTES) -> tarfile.TarFile:
    """A gzipped tarball as a stream of members, unpacking no more than ``limit`` bytes in all
    (past it, reading raises `OSError`)."""
    return tarfile.open(fileobj=io.BufferedReader(_Unpacked(data, limit)), mode="r|")


def _readme_in_tarball(data: bytes) -> str:
    """The top-level README of an npm tarball, read as a stream (a cut-off tarball still yields it
    when the README comes before the cut)."""
    try:
        with open_tarball(data) as archive:
            for member in archive:
                if member.isfile() and _README_MEMBER.fullmatch(member.name):
                    content = archive.extractfile(member)
                    return content.read(MAX_README_CHARS * 4).decode("utf-8", "replace") if content else ""
    except (tarfile.TarError, EOFError, OSError, zlib.error):
        pass  # a truncated or odd archive: no README from it
    return ""


async def npm_readme(
    client: httpx.AsyncClient, name: str, tarball: str | None, registry: str = NPM_REGISTRY
) -> str:
    """The README of npm package ``name`` (full document, else the tarball), or "" when there is none.

    Never raises for a README that cannot be had: too large, timed out, not there.
    """
    try:
        body = await bounded_get(client, f"{registry}/{quote(name, safe='@')}", MAX_README_DOCUMENT_BYTES)
        if body is not None and body[1]:
            document = json.loads(body[0])
            readme = document.get("readme") if isinstance(document, dict) else None
            if isinstance(readme, str) and readme.strip() and readme.strip() != _NO_README:
                return readme[:MAX_README_CHARS]
        if tarball:
            body = await bounded_get(client, tarball, MAX_TARBALL_BYTES)
            if body is not None:
                # unpacking and searching it is CPU work: off the event loop
                unpacked: str = await anyio.to_thread.run_sync(_readme_in_tarball, body[0])
                return unpacked[:MAX_README_CHARS]
    except (httpx.HTTPError, ValueError):
        pass  # the README is an extra: the package's metadata stands without it
    return ""


async def npm_package(
    client: httpx.AsyncClient, name: str, registry: str = NPM_REGISTRY, *, with_readme: bool = True
) -> PackageInfo | None:
    """The latest release of npm package ``name``, or None when it does not exist.

    With ``with_readme`` its README is fetched too (`npm_readme`) for tools and a summary.

    Raises:
        SourceError: the registry failed, timed out or answered something unexpected.
    """
    data = await get_json(client, f"{registry}/{quote(name, safe='@')}/latest", f"npm {name}")
    if data is None:
        return None
    try:
        manifest = _NpmManifest.model_validate(data)
    except ValidationError as exc:
        raise SourceError(f"npm {name}: unexpected manifest ({exc.error_count()} errors)") from exc
    readme = ""
    if with_readme:
        readme = await npm_readme(client, name, manifest.dist.tarball if manifest.dist else None, registry)
    return _npm_info(manifest, readme)


async def pypi_package(client: httpx.AsyncClient, name: str, index: str = PYPI_INDEX) -> PackageInfo | None:
    """The latest release of PyPI project ``name``, or None when it does not exist.

    Raises:
        SourceError: the index failed, timed out or answered something unexpected.
    """
    data = await get_json(client, f"{index}/pypi/{quote(name)}/json", f"pypi {name}")
    if data is None:
        return None
    try:
        return _pypi_info(_PypiDocument.model_validate(data).info)
    except ValidationError as exc:
        raise SourceError(f"pypi {name}: unexpected metadata ({exc.error_count()} errors)") from exc


class _NpmSearchPackage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    package: _NpmManifest


class _NpmSearch(BaseModel):
    model_config = ConfigDict(extra="ignore")
    objects: list[_NpmSearchPackage]


async def npm_search(
    client: httpx.AsyncClient, text: str, size: int = 20, registry: str = NPM_REGISTRY
) -> list[PackageInfo]:
    """Packages the npm search API finds for ``text`` (where that API is reachable).

    Raises:
        SourceError: the search API failed, timed out or answered something unexpected.
    """
    url = f"{registry}/-/v1/search?text={quote(text)}&size={size}"
    data = await get_json(client, url, f"npm search {text!r}")
    if data is None:
        return []
    try:
        return [_npm_info(hit.package) for hit in _NpmSearch.model_validate(data).objects]
    except ValidationError as exc:
        raise SourceError(f"npm search {text!r}: unexpected payload") from exc


async def package_info(client: httpx.AsyncClient, registry_type: str, name: str) -> PackageInfo | None:
    """Dispatch to `npm_package` or `pypi_package` by registry type."""
    if registry_type == "npm":
        return await npm_package(client, name)
    if registry_type == "pypi":
        return await pypi_package(client, name)
    raise SourceError(f"{registry_type} {name}: unsupported registry type")
