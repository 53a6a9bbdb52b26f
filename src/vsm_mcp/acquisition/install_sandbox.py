"""Installers (npm, uv, pip) run in a bubblewrap profile of their own, never as the gateway.

Installing a package runs code from the registry: npm lifecycle scripts
(kept off with ``--ignore-scripts``), a source distribution's ``setup.py``
or build backend (refused by default: wheels only), and the package
manager itself parsing what the registry sent. So every installer command
runs sandboxed, as a server does (`vsm_mcp.sandbox`):

* writable: only the install prefix (and declared cache directories); the
  prefix's ``home`` is the installer's HOME, so its caches stay inside;
* visible: the system allow-list, the installer's own runtime (the uv
  binary, npm and node, the Python the venv is made from), nothing of the
  gateway's home, state directory or secrets;
* network: outbound, for the registries (the profile's ``network``);
* environment: the sandbox's own variables plus, when set, the proxy and
  certificate variables a registry behind a proxy needs (`INSTALL_ENV_PASS`);
  never the gateway's other variables;
* a root gateway runs the install as the server's own uid, then hands the
  install tree back to itself (`seal`), so the running server, which has that
  uid, cannot rewrite its own code even where it would run unsandboxed.

Modes follow the sandbox's: ``require`` (the default for acquisitions)
refuses to install without a working bubblewrap; ``prefer`` installs with
limits and a scrubbed environment only, and says so; ``off`` runs the
installer as the gateway (tests of pipeline logic only).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from vsm_mcp.errors import AcquisitionError, SandboxError, SandboxUnavailableError
from vsm_mcp.fleet.spec import SandboxMode
from vsm_mcp.sandbox import Host, LaunchPlan, Rlimits, Sandbox, SandboxProfile

#: Gateway variables an installer may need to reach a registry (passed only when set).
INSTALL_ENV_PASS = (
    *("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"),
    *("http_proxy", "https_proxy", "no_proxy", "all_proxy"),
    *("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"),
    *("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "npm_config_registry"),
)
#: Declared variables naming cache directories the installer may write (a shared warm cache).
CACHE_VARIABLES = ("UV_CACHE_DIR", "npm_config_cache", "PIP_CACHE_DIR")
#: An install is a download and an unpack: ten CPU minutes is a runaway, 4 GiB of data a bomb.
INSTALL_LIMITS = Rlimits(cpu_seconds=600, data_bytes=4 * 1024**3, nproc=512, fsize_bytes=2 * 1024**3)


class InstallSandbox:
    """Plans installer commands in their own sandbox profile (module docstring)."""

    def __init__(
        self,
        mode: SandboxMode = "require",
        *,
        host: Host | None = None,
        state_dir: Path | None = None,
        network: bool = True,
        read_paths: Sequence[Path] = (),
    ) -> None:
        """``host``: this machine's sandbox facilities if known (else probed on first use);
        ``read_paths``: places installers may read besides the system (a local wheelhouse or
        ``--find-links`` directory)."""
        self.mode: SandboxMode = mode
        self.network = network
        self.read_paths = tuple(Path(os.path.abspath(p)) for p in read_paths)
        self._host = host
        self._state_dir = state_dir
        self._lock = threading.Lock()

    def host(self) -> Host:
        """This machine's sandbox facilities, probed once (blocking)."""
        with self._lock:
            if self._host is None:
                self._host = Host.detect(self._state_dir)
            return self._host

    def profile(self, prefix: Path, env: Mapping[str, str]) -> SandboxProfile:
        """The install profile of ``prefix``: it and the declared caches writable, network on."""
        caches = [Path(env[name]) for name in CACHE_VARIABLES if os.path.isabs(env.get(name, ""))]
        return SandboxProfile(
            prefix=prefix,
            data_dirs=(prefix, *caches),
            read_paths=self.read_paths,
            network=self.network,
            env_pass=INSTALL_ENV_PASS,
            limits=INSTALL_LIMITS,
            unsandboxed_allowed=self.mode == "prefer",
        )

    def plan(self, argv: Sequence[str], prefix: Path, env: Mapping[str, str] | None = None) -> LaunchPlan:
        """The launch of one installer command working on ``prefix`` (blocking: may probe the host).

        Raises:
            AcquisitionError: (step ``install``) it cannot run as the mode demands.
        """
        declared = dict(env or {})
        if self.mode == "off":
            # Off (tests of pipeline logic): the installer runs as the gateway, with its environment.
            return LaunchPlan(tuple(argv), {**os.environ, **declared}, str(prefix), sandboxed=False)
        for cache in self.profile(prefix, declared).data_dirs[1:]:
            cache.mkdir(parents=True, exist_ok=True)
        try:
            return Sandbox(self.profile(prefix, declared), self.host()).wrap(
                argv[0], argv[1:], declared, cwd=prefix
            )
        except SandboxUnavailableError as exc:
            raise AcquisitionError(
                "install",
                f"installs run in a sandbox ([acquisition] sandbox = {self.mode!r}) and bubblewrap is "
                f"unusable here ({self.host().bwrap_problem or exc}): apt-get install bubblewrap",
            ) from exc
        except SandboxError as exc:
            raise AcquisitionError("install", f"cannot sandbox the installer: {exc}") from exc

    def seal(self, prefix: Path) -> None:
        """Hand the install tree back to the gateway: its files, not the server's (module docstring).

        Only a root gateway has anything to do: the installer ran as the server's uid.
        """
        if os.geteuid() != 0 or self.mode == "off":
            return
        home = SandboxProfile(prefix=prefix).home
        uid, gid = os.geteuid(), os.getegid()
        for directory, dirs, files in os.walk(prefix):
            dirs[:] = [d for d in dirs if Path(directory, d) != home]
            for name in (directory, *(os.path.join(directory, n) for n in (*dirs, *files))):
                info = os.lstat(name)
                if info.st_uid != uid or info.st_gid != gid:
                    os.lchown(name, uid, gid)
                if not os.path.islink(name) and info.st_mode & 0o022:
                    os.chmod(name, info.st_mode & ~0o022 & 0o7777)


def installer_tool(name: str, beside: Path) -> str | None:
    """An installer program: the one beside ``beside`` (this environment's uv), else on PATH."""
    local = beside / name
    return str(local) if local.exists() else shutil.which(name)
