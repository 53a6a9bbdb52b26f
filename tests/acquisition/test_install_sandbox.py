"""Installers run sandboxed: an sdist's build code is refused by default, and contained when allowed.

The package is a real source distribution built here, found by uv through a
``--find-links`` directory (``UV_FIND_LINKS``); its ``setup.py`` tries what the
issue's attacker did: read a 0600 file in the gateway user's home and write
outside its prefix. Evidence of what it saw is written into its own prefix
(the one place it may write), so the test can read it back.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from vsm_mcp.acquisition.install_sandbox import InstallSandbox
from vsm_mcp.acquisition.installer import INSTALL_LOG, PackageInstaller
from vsm_mcp.acquisition.vetting import Candidate
from vsm_mcp.errors import AcquisitionError
from vsm_mcp.sandbox import Host

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.external]

NAME = "vsm-mcp-canary-sdist"
VERSION = "1.0"
CANDIDATE = Candidate(NAME, "pypi", NAME, VERSION)
#: A venv, setuptools fetched for the isolated build, one tiny package: well under a minute.
INSTALL_S = 240

SETUP = """
import os
from setuptools import setup

def attempt(path, mode):
    try:
        with open(path, mode) as fh:
            if mode == "r":
                return "READ " + fh.read().strip()
            fh.write("escaped")
            return "WROTE"
    except OSError as exc:
        return f"errno {{exc.errno}}"

report = "\\n".join([
    "canary: " + attempt({canary!r}, "r"),
    "outside: " + attempt({outside!r}, "w"),
    "uid: " + str(os.getuid()),
    "home: " + os.environ.get("HOME", ""),
    "secret env: " + os.environ.get("VSM_TEST_GATEWAY_SECRET", "absent"),
])
prefix = os.environ.get("VSM_EVIDENCE_DIR")
with open(os.path.join({evidence_dir!r}, "evidence.txt"), "w") as fh:
    fh.write(report)
setup(
    name={name!r},
    version={version!r},
    py_modules=["vsm_mcp_canary_sdist"],
    entry_points={{"console_scripts": ["vsm-mcp-canary-sdist=vsm_mcp_canary_sdist:main"]}},
)
"""


def _sdist(directory: Path, *, canary: Path, outside: Path, evidence_dir: Path) -> Path:
    """A source distribution whose setup.py attempts the escape (module docstring)."""
    base = f"{NAME.replace('-', '_')}-{VERSION}"
    files = {
        "setup.py": SETUP.format(
            canary=str(canary),
            outside=str(outside),
            evidence_dir=str(evidence_dir),
            name=NAME,
            version=VERSION,
        ),
        "vsm_mcp_canary_sdist.py": "def main():\n    print('canary')\n",
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n",
    }
    path = directory / f"{base}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{base}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def canary() -> Iterator[Path]:
    """A 0600 secret in the gateway user's home, as in the attack."""
    path = Path.home() / f".vsm-canary-{uuid.uuid4().hex}"
    path.write_text("the gateway user's credentials\n")
    path.chmod(0o600)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    links = tmp_path / "links"
    links.mkdir()
    links.chmod(0o755)
    return links


def _installer(links: Path, *, source_builds: bool) -> PackageInstaller:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    return PackageInstaller(
        source_builds=source_builds,
        env={"UV_FIND_LINKS": str(links)},
        sandbox=InstallSandbox("require", read_paths=(links,)),
    )


async def test_a_source_distribution_is_refused_by_default(
    tmp_path: Path, canary: Path, wheelhouse: Path
) -> None:
    prefix = tmp_path / "servers" / "canary"
    outside = tmp_path / "outside.txt"
    _sdist(wheelhouse, canary=canary, outside=outside, evidence_dir=prefix)
    with anyio.fail_after(INSTALL_S), pytest.raises(AcquisitionError) as info:
        await _installer(wheelhouse, source_builds=False).install(CANDIDATE, prefix)
    assert info.value.step == "install"
    assert info.value.reason == (
        "uv pip install vsm-mcp-canary-sdist==1.0: the package has no wheel for this platform and building "
        "from source (which runs the package's own code) is off: acquire --allow-source-build, or "
        "[acquisition] source_builds = true, builds it in the install sandbox"
    )
    assert not prefix.exists()  # nothing of it is left
    assert not outside.exists()


async def test_an_allowed_source_build_runs_sandboxed_and_the_canary_stays_unread(
    tmp_path: Path, canary: Path, wheelhouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VSM_TEST_GATEWAY_SECRET", "must not leak")
    prefix = tmp_path / "servers" / "canary"
    outside = tmp_path / "outside.txt"
    _sdist(wheelhouse, canary=canary, outside=outside, evidence_dir=prefix)
    installer = _installer(wheelhouse, source_builds=True)
    with anyio.fail_after(INSTALL_S):
        installation = await installer.install(CANDIDATE, prefix)
    _assert_contained(prefix, outside, canary, installation.command)
    assert installation.sandbox == "bubblewrap"


def _assert_contained(prefix: Path, outside: Path, canary: Path, command: str) -> None:
    """What the sdist's setup.py saw and left (module docstring)."""
    evidence = dict(line.split(": ", 1) for line in (prefix / "evidence.txt").read_text().splitlines())
    assert evidence["canary"] == "errno 2"  # the gateway's home does not exist in the sandbox
    assert evidence["outside"] in ("errno 2", "errno 13", "errno 30")  # nothing lands on the host
    assert not outside.exists()
    assert evidence["secret env"] == "absent"  # the gateway's environment is not the installer's
    assert evidence["home"] == str(prefix / "home")
    if os.geteuid() == 0:
        assert evidence["uid"] != "0"  # a root gateway installs as the server's uid
        # ...and takes the install tree back: the server cannot rewrite its own code
        assert Path(command).resolve().stat().st_uid == 0
        assert (prefix / "venv").stat().st_uid == 0
    assert (prefix / INSTALL_LOG).stat().st_mode & 0o777 == 0o600
    assert canary.read_text() == "the gateway user's credentials\n"


async def test_without_bubblewrap_a_required_install_sandbox_refuses_before_running_anything(
    tmp_path: Path,
) -> None:
    host = replace(
        Host.detect(tmp_path / "state"),
        bwrap=None,
        bwrap_problem="bwrap not found (apt-get install bubblewrap)",
    )
    installer = PackageInstaller(sandbox=InstallSandbox("require", host=host))
    prefix = tmp_path / "servers" / "time"
    with pytest.raises(AcquisitionError) as info:
        await installer.install(Candidate("t", "pypi", "mcp-server-time", "2026.10.19"), prefix)
    assert info.value.reason == (
        "installs run in a sandbox ([acquisition] sandbox = 'require') and bubblewrap is unusable here "
        "(bwrap not found (apt-get install bubblewrap)): apt-get install bubblewrap"
    )
    assert not prefix.exists()
