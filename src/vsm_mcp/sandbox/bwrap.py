"""The bubblewrap command line of one server: mounts, namespaces, environment hygiene.

Pure: paths in, argv out; nothing is read from or written to the disk here.

The filesystem the server sees, in mount order (later mounts cover earlier):

1. the host root, read-only (``--ro-bind / /``);
2. a fresh ``/dev`` and a ``/proc`` of its own pid namespace;
3. a private writable ``/tmp``, ``/var/tmp`` and ``/dev/shm`` (tmpfs, mode 1777);
4. every *hidden* path (home directories, ``/run``, the gateway's state
   directory, ...) covered by an empty tmpfs that is made read-only once the
   binds below are in place, so secrets, the database and other servers'
   prefixes are invisible and nothing can be written there;
5. read paths (``--ro-bind``) and writable paths (``--bind``), interleaved
   with the hidden ones shallowest first, so a deeper mount always wins.

Namespaces: everything is unshared; the network namespace is shared only when
the profile allows it (an unshared one has nothing but a loopback of its own,
so even the host's 127.0.0.1 is out of reach).

Two shapes, by who runs the gateway:

* unprivileged (the usual case): ``--unshare-all`` creates a user namespace;
  the server keeps the gateway's uid, without any capability;
* root: no user namespace (it would map the server to host uid 0, for which
  the kernel does not enforce RLIMIT_NPROC); bwrap keeps only the three
  capabilities ``setpriv`` needs to drop to the server's own uid, and
  ``setpriv`` drops them with the uid.

``--new-session`` is deliberately absent: the fleet starts bwrap in a new
session and process group, and stops a server by signalling that group. A
second ``setsid`` inside would take the server out of the group (so SIGTERM
would never reach it). Without a controlling terminal there is no TIOCSTI to
defend against. ``--die-with-parent`` plus the pid namespace make every
sandboxed process die with bwrap.

Secrets travel in bwrap's environment, never in its argv (which any local
user can read in ``/proc/PID/cmdline``); ``--unsetenv`` strips what a launcher
adds on its own (the SDK's stdio client merges HOME, LOGNAME, PATH, SHELL,
TERM, USER into every child environment).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Variables a launcher may add by itself (``mcp.client.stdio.get_default_environment``).
LAUNCHER_ENV = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER")
#: Capabilities bwrap keeps for the root shape, all dropped by setpriv before the server runs.
DROP_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")
#: Private, writable, world-sticky scratch directories.
PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm")


@dataclass(frozen=True, slots=True)
class Mounts:
    """What the server sees besides the read-only root (all absolute paths)."""

    hidden: Sequence[Path]
    read: Sequence[Path]
    writable: Sequence[Path]
    private_tmp: Sequence[str] = PRIVATE_TMP


def mount_args(mounts: Mounts) -> list[str]:
    """The filesystem part of the bwrap argv, in the order of the module docstring.

    Hidden, read and writable paths are mounted shallowest first (at equal
    depth: hide, then read, then write), so a deeper mount always covers a
    shallower one: a read-only bind of ``~/.local`` cannot re-expose a state
    directory hidden at ``~/.local/state/vsm-mcp``.
    """
    args = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for tmp in mounts.private_tmp:
        args += ["--perms", "1777", "--tmpfs", tmp]
    writable, read = set(mounts.writable), set(mounts.read) - set(mounts.writable)
    hidden = set(mounts.hidden) - writable - read
    kinds = {**{p: 0 for p in hidden}, **{p: 1 for p in read}, **{p: 2 for p in writable}}
    # Mount points so far, True for a tmpfs: a directory bwrap creates for a mount
    # point on a tmpfs is 0700 (measured), so the server could not walk through it.
    mounted = {Path(t): True for t in mounts.private_tmp}
    made: set[Path] = set()
    for path in sorted(kinds, key=lambda p: (len(p.parts), kinds[p], str(p))):
        if kinds[path] == 0:
            args += ["--perms", "0755", "--tmpfs", str(path)]
            mounted[path] = True
            continue
        for parent in reversed(path.parents):
            covering = [m for m in mounted if m in parent.parents]
            if parent in mounted or parent in made or not covering:
                continue
            if mounted[max(covering, key=lambda m: len(m.parts))]:
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        args += ["--bind" if kinds[path] == 2 else "--ro-bind", str(path), str(path)]
        mounted[path] = False
    for path in sorted(hidden, key=lambda p: (len(p.parts), str(p))):
        args += ["--remount-ro", str(path)]
    return args


def namespace_args(*, network: bool, privileged: bool) -> list[str]:
    """Namespaces and capabilities for the two shapes (module docstring)."""
    if not privileged:
        return ["--unshare-all", *(["--share-net"] if network else [])]
    args = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if not network:
        args.append("--unshare-net")
    args += ["--cap-drop", "ALL"]
    for cap in DROP_CAPS:
        args += ["--cap-add", cap]
    return args


def bwrap_argv(
    bwrap: str,
    mounts: Mounts,
    *,
    network: bool,
    privileged: bool,
    chdir: Path,
    env: Mapping[str, str],
    command: Sequence[str],
) -> list[str]:
    """The whole bwrap command line: ``bwrap [mounts] [namespaces] ... -- command``.

    ``env`` is the environment bwrap will be given; only its *names* are used
    here (to unset what a launcher might add on top of it).
    """
    unset = [name for name in LAUNCHER_ENV if name not in env]
    return [
        bwrap,
        *mount_args(mounts),
        *namespace_args(network=network, privileged=privileged),
        "--die-with-parent",
        *(arg for name in unset for arg in ("--unsetenv", name)),
        "--chdir",
        str(chdir),
        "--",
        *command,
    ]
