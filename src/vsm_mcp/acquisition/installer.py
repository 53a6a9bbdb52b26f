"""Install one pinned package into its own prefix under the state directory; never globally.

* npm: ``npm install --prefix <prefix> --ignore-scripts --no-audit --no-fund
  --prefer-offline <pkg>@<version>``; the server runs as ``<prefix>/node_modules/.bin/<bin>``.
* PyPI: a virtual environment ``<prefix>/venv`` (``uv venv`` + ``uv pip
  install --only-binary :all: <pkg>==<version>``, or ``python -m venv`` + pip
  when uv is absent); the server runs as ``<prefix>/venv/bin/<console script>``.

Invariants:

* every installer command runs in its own sandbox (`InstallSandbox`): only
  the prefix writable, no home, no state dir, no secrets, a scrubbed
  environment; a root gateway's install tree is handed back to the gateway
  afterwards, so the server cannot rewrite its own code;
* wheels only by default: building a source distribution runs the
  package's code at install time, so it is a per-server policy choice
  (``source_builds``), and when allowed it runs in the same sandbox;
* the launch command always points into the prefix (never ``npx``/``uvx``,
  which would fetch from the network at every start);
* every installer's output is kept, bounded (`INSTALL_LOG_BYTES`), in
  ``<prefix>/install.log`` (0600) and its tail in `Installation.log_tail`;
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

from vsm_mcp.acquisition.install_sandbox import InstallSandbox, installer_tool
from vsm_mcp.acquisition.vetting import Candidate
from vsm_mcp.errors import AcquisitionError

#: File written last into a complete prefix.
MARKER = ".vsm-installed.json"
#: A cold install of a server with its dependency tree takes well under a minute; five is a hung registry.
INSTALL_TIMEOUT_S = 300.0
#: How much of an installer's stderr goes into the reason of a failure.
REASON_CHARS = 400
#: How much installer output is kept in ``<prefix>/install.log`` (the tail; the rest is dropped).
INSTALL_LOG_BYTES = 64 * 1024
#: How much of it travels with the installation into the stored decision.
LOG_TAIL_CHARS = 2000
#: What uv and pip say when only a source distribution would do and building from source is off.
NO_WHEEL_SIGNS = ("no usable wheels", "building from source is disabled", "--only-binary")
#: The install log's name inside the prefix.
INSTALL_LOG = "install.log"


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
    #: How the installer ran: ``bubblewrap``, ``UNSANDBOXED (...)`` or ``off``.
    sandbox: str = ""
    #: The end of the installers' output (the whole, bounded, is in ``<prefix>/install.log``).
    log_tail: str = ""


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
    """The real installer: npm and uv (or pip) in per-server prefixes, each command sandboxed."""

    def __init__(
        self,
        *,
        ignore_scripts: bool = True,
        source_builds: bool = False,
        env: Mapping[str, str] | None = None,
        timeout_s: float = INSTALL_TIMEOUT_S,
        sandbox: InstallSandbox | None = None,
    ) -> None:
        """``env``: declared variables of every installer command (e.g. shared cache directories);
        ``sandbox``: how installers are confined (default: ``require``, the host probed on first use)."""
        self.ignore_scripts = ignore_scripts
        self.source_builds = source_builds
        self.env = dict(env or {})
        self.timeout_s = timeout_s
        self.sandbox = sandbox or InstallSandbox()
        self.uv = installer_tool("uv", Path(sys.executable).parent)
        self.npm = shutil.which("npm")
        self._log: list[bytes] = []
        self._shape = ""

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
        self._log, self._shape = [], ""
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
                sandbox=self._shape,
                log_tail=self._keep_log(prefix)[-LOG_TAIL_CHARS:],
            )
            await anyio.to_thread.run_sync(self.sandbox.seal, prefix)
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
        await self._run([*argv, spec], f"npm install {spec}", prefix)
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
        # A source distribution runs the package's own build code: only where the policy allows it.
        binary = [] if self.source_builds else ["--only-binary", ":all:"]
        if self.uv is not None:
            await self._run(
                [self.uv, "venv", "--quiet", "--python", sys.executable, str(venv)], "uv venv", prefix
            )
            await self._run(
                [self.uv, "pip", "install", "--quiet", *binary, "--python", str(python), spec],
                f"uv pip install {spec}",
                prefix,
            )
        else:
            await self._run([sys.executable, "-m", "venv", str(venv)], "python -m venv", prefix)
            # The gateway's pip installs into the venv (--python): the venv's own files, which
            # the installer can write, never decide what the sandbox runs.
            await self._run(
                [
                    *(sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"),
                    *("--disable-pip-version-check", *binary, spec),
                ],
                f"pip install {spec}",
                prefix,
            )
        scripts = _console_scripts(venv, candidate.identifier)
        if not scripts:
            raise AcquisitionError("install", f"{spec} installs no console script: not a runnable MCP server")
        want = _canonical(candidate.identifier)
        name = next((s for s in scripts if _canonical(s) == want), None)
        name = name or next((s for s in scripts if "mcp" in s.lower()), scripts[0])
        return str(venv / "bin" / name)

    # -- common ------------------------------------------------------------
    async def _run(self, argv: Sequence[str], what: str, prefix: Path) -> None:
        plan = await anyio.to_thread.run_sync(self.sandbox.plan, argv, prefix, self.env)
        self._shape = (
            "off" if self.sandbox.mode == "off" else "bubblewrap" if plan.sandboxed else "UNSANDBOXED"
        )
        try:
            with anyio.fail_after(self.timeout_s):
                result = await anyio.run_process(
                    list(plan.argv), check=False, env=dict(plan.env), cwd=plan.cwd, start_new_session=True
                )
        except TimeoutError:
            raise AcquisitionError("install", f"{what} took longer than {self.timeout_s:g}s") from None
        except OSError as exc:
            raise AcquisitionError("install", f"{what} could not start: {exc}") from exc
        self._log.append(
            f"$ {what}\n".encode() + result.stdout[-INSTALL_LOG_BYTES:] + result.stderr[-INSTALL_LOG_BYTES:]
        )
        if result.returncode != 0:
            output = result.stderr.decode(errors="replace") or result.stdout.decode(errors="replace")
            if not self.source_builds and any(sign in output for sign in NO_WHEEL_SIGNS):
                raise AcquisitionError(
                    "install",
                    f"{what}: the package has no wheel for this platform and building from source "
                    "(which runs the package's own code) is off: acquire --allow-source-build, or "
                    "[acquisition] source_builds = true, builds it in the install sandbox",
                )
            raise AcquisitionError("install", f"{what} exited {result.returncode}: {_tail(output)}")

    def _keep_log(self, prefix: Path) -> str:
        """Write the installers' output (its last `INSTALL_LOG_BYTES`) to the prefix; return it."""
        data = b"".join(self._log)[-INSTALL_LOG_BYTES:]
        fd = os.open(prefix / INSTALL_LOG, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return data.decode(errors="replace")

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
