"""Install one pinned package into its own prefix under the state directory; never globally.

* npm: ``npm install --prefix <prefix> --ignore-scripts --no-audit --no-fund
  --prefer-offline <pkg>@<version>``; the server runs as ``<prefix>/node_modules/.bin/<bin>``.
* PyPI: a virtual environment ``<prefix>/venv`` (``uv venv`` + ``uv pip
  install <pkg>==<version>``, or ``python -m venv`` + pip when uv is absent);
  the server runs as ``<prefix>/venv/bin/<console script>``.

Invariants:

* the launch command always points into the prefix (never ``npx``/``uvx``,
  which would fetch from the network at every start);
* the marker file `MARKER` is written last, atomically: a prefix without a
  marker for exactly this package and version is a partial install and is
  removed before installing again; a prefix with it is reused (``resumed``);
* a failed install removes its prefix before raising `AcquisitionError`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Protocol

import anyio

from vsm_mcp.acquisition.vetting import Candidate
from vsm_mcp.errors import AcquisitionError

#: File written last into a complete prefix.
MARKER = ".vsm-installed.json"
#: A cold install of a server with its dependency tree takes well under a minute; five is a hung registry.
INSTALL_TIMEOUT_S = 300.0
#: How much of an installer's stderr goes into the reason of a failure.
REASON_CHARS = 400


@dataclass(frozen=True, slots=True)
class Installation:
    """A complete install: where it is and how to run it."""

    registry_type: str
    identifier: str
    version: str
    prefix: Path
    command: str
    args: tuple[str, ...] = ()
    resumed: bool = False
    seconds: float = 0.0


class Installer(Protocol):
    """Puts a package into a prefix, and takes it away again."""

    async def install(self, candidate: Candidate, prefix: Path) -> Installation:
        """Install ``candidate`` into ``prefix``.

        Raises:
            AcquisitionError: the install failed; ``prefix`` no longer exists.
        """
        ...

    async def remove(self, prefix: Path) -> None:
        """Delete ``prefix`` and everything in it."""
        ...


def read_marker(prefix: Path) -> dict[str, object] | None:
    """The marker of a complete install in ``prefix``, or None."""
    try:
        data = json.loads((prefix / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _tail(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    kept = " | ".join(lines[-4:])
    return kept[-REASON_CHARS:] if kept else "no output"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class PackageInstaller:
    """The real installer: npm and uv (or pip) in per-server prefixes."""

    def __init__(
        self,
        *,
        ignore_scripts: bool = True,
        env: Mapping[str, str] | None = None,
        timeout_s: float = INSTALL_TIMEOUT_S,
    ) -> None:
        self.ignore_scripts = ignore_scripts
        self.env = dict(env or {})
        self.timeout_s = timeout_s
        beside = Path(sys.executable).parent / "uv"
        self.uv = str(beside) if beside.exists() else shutil.which("uv")
        self.npm = shutil.which("npm")

    async def install(self, candidate: Candidate, prefix: Path) -> Installation:
        marker = read_marker(prefix)
        if marker is not None and (
            marker.get("registry_type"),
            marker.get("identifier"),
            marker.get("version"),
        ) == (candidate.registry_type, candidate.identifier, candidate.version):
            args = marker.get("args")
            return Installation(
                candidate.registry_type,
                candidate.identifier,
                candidate.version,
                prefix,
                str(marker["command"]),
                tuple(str(a) for a in args) if isinstance(args, list) else (),
                resumed=True,
            )
        if await anyio.Path(prefix).exists():
            await self.remove(prefix)  # a partial install, or another package: start clean
        started = time.monotonic()
        try:
            await anyio.Path(prefix).mkdir(parents=True)
            if candidate.registry_type == "npm":
                command = await self._npm(candidate, prefix)
            elif candidate.registry_type == "pypi":
                command = await self._pypi(candidate, prefix)
            else:
                raise AcquisitionError(
                    "install", f"no installer for registry type {candidate.registry_type!r}"
                )
            installation = Installation(
                candidate.registry_type,
                candidate.identifier,
                candidate.version,
                prefix,
                command,
                seconds=time.monotonic() - started,
            )
            self._write_marker(installation)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.remove(prefix)
            raise
        return installation

    async def remove(self, prefix: Path) -> None:
        if await anyio.Path(prefix).exists():
            await anyio.to_thread.run_sync(shutil.rmtree, prefix)

    # -- npm ---------------------------------------------------------------
    async def _npm(self, candidate: Candidate, prefix: Path) -> str:
        if self.npm is None:
            raise AcquisitionError("install", "npm is not installed (needed for npm packages)")
        spec = f"{candidate.identifier}@{candidate.version}"
        # --prefer-offline: the version is pinned, so cached metadata is as good as fresh (a warm
        # install drops from ~9 s to ~5 s here); anything missing is still fetched.
        argv = [
            self.npm,
            "install",
            "--prefix",
            str(prefix),
            "--no-audit",
            "--no-fund",
            "--prefer-offline",
            "--loglevel=error",
        ]
        if self.ignore_scripts:
            argv.append("--ignore-scripts")
        await self._run([*argv, spec], f"npm install {spec}")
        package_json = prefix / "node_modules" / candidate.identifier / "package.json"
        try:
            manifest = json.loads(package_json.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AcquisitionError("install", f"{spec} installed no readable package.json") from exc
        bare = candidate.identifier.rsplit("/", 1)[-1]
        bins = manifest.get("bin")
        if isinstance(bins, str):
            name = bare
        elif isinstance(bins, dict) and bins:
            name = bare if bare in bins else sorted(bins)[0]
        else:
            raise AcquisitionError(
                "install", f"{spec} has no executable (no 'bin' in package.json): not a runnable MCP server"
            )
        path = prefix / "node_modules" / ".bin" / name
        if not path.exists():
            raise AcquisitionError("install", f"{spec}: executable {name!r} missing after install")
        return str(path)

    # -- PyPI --------------------------------------------------------------
    async def _pypi(self, candidate: Candidate, prefix: Path) -> str:
        venv = prefix / "venv"
        spec = f"{candidate.identifier}=={candidate.version}"
        python = venv / "bin" / "python"
        if self.uv is not None:
            await self._run([self.uv, "venv", "--quiet", "--python", sys.executable, str(venv)], "uv venv")
            await self._run(
                [self.uv, "pip", "install", "--quiet", "--python", str(python), spec],
                f"uv pip install {spec}",
            )
        else:
            await self._run([sys.executable, "-m", "venv", str(venv)], "python -m venv")
            await self._run(
                [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", spec],
                f"pip install {spec}",
            )
        scripts = _console_scripts(venv, candidate.identifier)
        if not scripts:
            raise AcquisitionError("install", f"{spec} installs no console script: not a runnable MCP server")
        want = _canonical(candidate.identifier)
        name = next((s for s in scripts if _canonical(s) == want), None)
        name = name or next((s for s in scripts if "mcp" in s.lower()), scripts[0])
        return str(venv / "bin" / name)

    # -- common ------------------------------------------------------------
    async def _run(self, argv: Sequence[str], what: str) -> None:
        env = {**os.environ, **self.env}
        try:
            with anyio.fail_after(self.timeout_s):
                result = await anyio.run_process(list(argv), check=False, env=env)
        except TimeoutError:
            raise AcquisitionError("install", f"{what} took longer than {self.timeout_s:g}s") from None
        except OSError as exc:
            raise AcquisitionError("install", f"{what} could not start: {exc}") from exc
        if result.returncode != 0:
            output = result.stderr.decode(errors="replace") or result.stdout.decode(errors="replace")
            raise AcquisitionError("install", f"{what} exited {result.returncode}: {_tail(output)}")

    def _write_marker(self, installation: Installation) -> None:
        data = {
            "registry_type": installation.registry_type,
            "identifier": installation.identifier,
            "version": installation.version,
            "command": installation.command,
            "args": list(installation.args),
            "installed_at": time.time(),
        }
        tmp = installation.prefix / (MARKER + ".tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        tmp.replace(installation.prefix / MARKER)


def _console_scripts(venv: Path, identifier: str) -> list[str]:
    """Console scripts declared by distribution ``identifier`` installed in ``venv``."""
    paths = [str(p) for p in sorted(venv.glob("lib/python*/site-packages"))]
    want = _canonical(identifier)
    for dist in importlib_metadata.distributions(path=paths):
        if _canonical(dist.metadata["Name"] or "") == want:
            return sorted(ep.name for ep in dist.entry_points if ep.group == "console_scripts")
    return []
