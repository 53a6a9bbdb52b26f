"""Fixtures for acquisition tests: an installer that "installs" the probe server, a stub registry."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import anyio
import pytest

from vsm_mcp.acquisition.installer import MARKER, Installation
from vsm_mcp.acquisition.vetting import Candidate, ReleaseMetadata

PROBE = Path(__file__).resolve().parents[1] / "fixtures" / "servers" / "probe_server.py"


class ProbeInstaller:
    """Writes a launcher for the probe server into the prefix (flags per identifier), then a marker.

    The real install/verify/rollback logic sees a real prefix with real files and a real server.
    """

    def __init__(self, flags: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self.flags = dict(flags or {})
        self.installs: list[str] = []
        self.removed: list[Path] = []

    async def install(self, candidate: Candidate, prefix: Path) -> Installation:
        self.installs.append(candidate.ref)
        await anyio.Path(prefix / "bin").mkdir(parents=True, exist_ok=True)
        launcher = prefix / "bin" / "server"
        # The server's program lives in its prefix, as a real install's would: visible inside the
        # sandbox wherever the checkout is (a checkout under /tmp is hidden there).
        program = prefix / "lib" / PROBE.name
        await anyio.Path(program.parent).mkdir(parents=True, exist_ok=True)
        await anyio.Path(program).write_text(await anyio.Path(PROBE).read_text())
        argv = [sys.executable, str(program), *self.flags.get(candidate.identifier, ())]
        # A Python shebang (not /bin/sh): the sandbox follows a command's interpreter chain to
        # make it visible, so this venv's interpreter runs even when it lives in a hidden home.
        await anyio.Path(launcher).write_text(
            f"#!{sys.executable}\nimport os\nos.execv({sys.executable!r}, {argv!r})\n"
        )
        os.chmod(launcher, 0o755)
        await anyio.Path(prefix / MARKER).write_text(json.dumps({"identifier": candidate.identifier}))
        return Installation(
            candidate.registry_type, candidate.identifier, candidate.version, prefix, str(launcher)
        )

    async def remove(self, prefix: Path) -> None:
        self.removed.append(prefix)
        if await anyio.Path(prefix).exists():
            import shutil

            await anyio.to_thread.run_sync(shutil.rmtree, prefix)


def stub_metadata(
    known: Mapping[str, ReleaseMetadata | None] | None = None,
) -> Callable[[str, str, str], object]:
    """A metadata fetch answering from a dict (default: every package exists, MIT)."""

    async def fetch(registry_type: str, name: str, version: str) -> ReleaseMetadata | None:
        if known is not None and name in known:
            return known[name]
        return ReleaseMetadata(registry_type, name, version, version_exists=True, license="MIT")

    return fetch


@pytest.fixture
def probe_installer() -> Callable[..., ProbeInstaller]:
    return ProbeInstaller


def children_running(marker: str) -> list[int]:
    """Pids of live processes whose command line mentions ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if marker in cmdline and state != "Z" and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found
