"""The part of the host every sandboxed server sees: an allow-list, read off this machine once.

A server needs the system to run (the dynamic loader and its libraries, the
interpreters under ``/usr``) and a few configuration files (name service,
certificates, the time zone); it gets exactly those, read-only, and nothing
else of the host. What is *not* listed here stays invisible: ``/opt``,
``/srv``, ``/var`` (``/var/tmp`` is a private tmpfs), ``/sys``, ``/home``,
``/root``, ``/run``, ``/mnt``, ``/media`` and the gateway's state directory.
A server that needs more declares it (``read_paths``, ``data_dirs``).

Invariants:

* every entry exists on this host when `SystemView.detect` returns (an absent
  one is left out, never bound: bwrap would fail on it);
* a top-level directory that is a symlink on the host (merged ``/usr``:
  ``/bin -> usr/bin``) is re-created as the same symlink, not bound;
* nothing in ``/etc`` is listed that holds credentials (``shadow``,
  ``gshadow``, ``sudoers``, ssh host keys, ``machine-id``...); listed files
  are world-readable configuration on every distribution.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vsm_mcp.sandbox.bwrap import SystemLink

#: Top-level system directories: bound read-only, or re-created as symlinks where the host has links.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")

#: The parts of ``/etc`` a program may need to run, each with why.
ETC_ENTRIES = (
    # the dynamic loader's configuration and cache (every dynamically linked program)
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    # user and group names (getpwuid: Python's getpass, node's os.userInfo); no passwords in them
    "passwd",
    "group",
    # name resolution (getaddrinfo) and service/protocol names
    "nsswitch.conf",
    "hosts",
    "host.conf",
    "resolv.conf",
    "gai.conf",
    "services",
    "protocols",
    # TLS: certificate stores and OpenSSL's configuration
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "pki",
    "crypto-policies",
    # time zone, character sets, MIME types
    "localtime",
    "timezone",
    "mime.types",
    # Debian's alternatives (``/usr/bin/x -> /etc/alternatives/x -> /usr/...``)
    "alternatives",
    # what the system is (platform checks in installers and runtimes)
    "os-release",
    "debian_version",
    "lsb-release",
)
#: ``/etc`` entries matched by prefix: the distribution Python's site configuration (``python3.11``).
ETC_PREFIXES = ("python3",)


@dataclass(frozen=True, slots=True)
class SystemView:
    """The read-only system every server sees."""

    #: Bound read-only at the same path.
    binds: tuple[Path, ...]
    #: Re-created as symlinks.
    links: tuple[SystemLink, ...]

    @property
    def roots(self) -> tuple[Path, ...]:
        """Every place visible inside (a symlink counts as the path it is)."""
        return (*self.binds, *(link.path for link in self.links))

    @classmethod
    def detect(
        cls, *, root: Path = Path("/"), dirs: Sequence[str] = SYSTEM_DIRS, etc: Sequence[str] = ETC_ENTRIES
    ) -> SystemView:
        """Read the allow-list off this host (``root`` only for tests: paths inside stay absolute)."""
        binds: list[Path] = []
        links: list[SystemLink] = []
        for name in dirs:
            host_path = root / name.lstrip("/")
            if host_path.is_symlink():
                links.append(SystemLink(Path(name), os.readlink(host_path)))
            elif host_path.is_dir():
                binds.append(Path(name))
        etc_dir = root / "etc"
        names = list(etc)
        with contextlib.suppress(OSError):
            names += sorted(n for n in os.listdir(etc_dir) if n.startswith(ETC_PREFIXES))
        # A dangling link (resolv.conf into an absent /run) is left out.
        binds += [Path("/etc") / name for name in dict.fromkeys(names) if (etc_dir / name).exists()]
        return cls(tuple(binds), tuple(links))
