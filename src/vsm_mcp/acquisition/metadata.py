"""Registry metadata of one exact release, for vetting (npm and PyPI, public JSON APIs).

Endpoints:

* npm: ``GET {registry}/{name}/{version}`` is that version's manifest; when it
  is 404, ``GET {registry}/{name}/latest`` tells whether the package exists.
* PyPI: ``GET {index}/pypi/{name}/json`` lists every release (``releases``,
  with per-file ``yanked``) and describes the latest; the licence and the
  "Inactive" status come from there (PyPI's per-version document is not
  served by every mirror).

Invariants: a package that does not exist is ``None``; a version that does
not exist is ``ReleaseMetadata(version_exists=False)``; any transport failure
or unexpected payload is a `SourceError` naming the package.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from vsm_mcp.acquisition.vetting import ReleaseMetadata
from vsm_mcp.discovery.packages import NPM_REGISTRY, PYPI_INDEX, get_json
from vsm_mcp.errors import SourceError

#: One metadata document; a registry slower than this is treated as down for this acquisition.
METADATA_TIMEOUT_S = 20.0
#: npm lifecycle scripts that run during `npm install` (disabled with --ignore-scripts).
NPM_INSTALL_SCRIPTS = ("preinstall", "install", "postinstall", "prepare")


async def _get(client: httpx.AsyncClient, url: str, what: str) -> Any | None:
    data = await get_json(client, url, what, request_timeout_s=METADATA_TIMEOUT_S)
    if data is not None and not isinstance(data, dict):
        raise SourceError(f"{what}: expected a JSON object")
    return data


def _npm_license(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("type")
    return str(value) if value else None


async def npm_release(
    client: httpx.AsyncClient, name: str, version: str, registry: str = NPM_REGISTRY
) -> ReleaseMetadata | None:
    """Metadata of ``name@version`` on npm (None when the package does not exist).

    Raises:
        SourceError: the registry failed or answered something unexpected.
    """
    base = f"{registry}/{quote(name, safe='@')}"
    what = f"npm {name}@{version}"
    manifest = await _get(client, f"{base}/{quote(version)}", what)
    if manifest is None:
        if await _get(client, f"{base}/latest", f"npm {name}") is None:
            return None
        return ReleaseMetadata("npm", name, version, version_exists=False)
    scripts = manifest.get("scripts")
    present = tuple(s for s in NPM_INSTALL_SCRIPTS if isinstance(scripts, dict) and s in scripts)
    return ReleaseMetadata(
        "npm",
        name,
        version,
        version_exists=str(manifest.get("version")) == version,
        deprecated=bool(manifest.get("deprecated")),
        license=_npm_license(manifest.get("license")),
        install_scripts=present,
    )


async def pypi_release(
    client: httpx.AsyncClient, name: str, version: str, index: str = PYPI_INDEX
) -> ReleaseMetadata | None:
    """Metadata of ``name==version`` on PyPI (None when the project does not exist).

    Raises:
        SourceError: the index failed or answered something unexpected.
    """
    data = await _get(client, f"{index}/pypi/{quote(name)}/json", f"pypi {name}")
    if data is None:
        return None
    info = data.get("info")
    releases = data.get("releases")
    if not isinstance(info, dict) or not isinstance(releases, dict):
        raise SourceError(f"pypi {name}: metadata without info/releases")
    files = releases.get(version)
    exists = isinstance(files, list) and len(files) > 0
    yanked = (
        isinstance(files, list) and exists and all(isinstance(f, dict) and f.get("yanked") for f in files)
    )
    classifiers = [str(c) for c in info.get("classifiers") or []]
    license_ = info.get("license_expression") or info.get("license")
    if not license_ or len(str(license_)) > 80:  # some projects paste the whole licence text there
        license_ = next(
            (c.rsplit(" :: ", 1)[-1] for c in classifiers if c.startswith("License :: OSI Approved ::")),
            None,
        )
    return ReleaseMetadata(
        "pypi",
        name,
        version,
        version_exists=exists,
        deprecated=any(c.startswith("Development Status :: 7") for c in classifiers),
        yanked=yanked,
        license=str(license_) if license_ else None,
        versions_known=len(releases),
    )


async def release_metadata(
    client: httpx.AsyncClient, registry_type: str, name: str, version: str
) -> ReleaseMetadata | None:
    """Dispatch by registry type; an unsupported type has no metadata (vetting refuses it first)."""
    if registry_type == "npm":
        return await npm_release(client, name, version)
    if registry_type == "pypi":
        return await pypi_release(client, name, version)
    return None
