"""The bubblewrap command line of one server: mounts, namespaces, environment hygiene.

Pure: paths in, argv out; nothing is read from or written to the disk here.

The filesystem the server sees is an allow-list: the root is an empty tmpfs
(made read-only last), and only what is bound appears in it, in mount order
(later mounts cover earlier):

1. the system it needs to run, read-only: ``/usr`` and the library and
   binary directories (bound, or re-created as the same symlinks on a
   merged-``/usr`` system), and the needed parts of ``/etc`` (loader cache,
   name service, certificates, time zone; never ``shadow`` and the like);
2. a fresh ``/dev`` and a ``/proc`` of its own pid namespace;
3. a private writable ``/tmp``, ``/var/tmp`` and ``/dev/shm`` (tmpfs, mode 1777);
4. read paths (``--ro-bind``: the server's install tree, its interpreter,
   declared paths), writable paths (``--bind``: its home, declared data
   directories) and *hidden* paths (an empty tmpfs over a protected place,
   such as the gateway's state directory, should a bound path contain it),
   shallowest first, so a deeper mount always wins.

Nothing else of the host exists inside: not ``/opt``, ``/srv``, ``/var/lib``,
``/sys``, other users' homes, nor the state directory.

Namespaces: everything is unshared; the network namespace is shared only when
the profile allows it (an unshared one has nothing but a loopback of its own,
so even the host's 127.0.0.1 is out of reach). An egress namespace is an
unshared one that slirp4netns connects to the outside (`vsm_mcp.sandbox.egress`).

System calls: ``--seccomp FD`` loads the filter of `vsm_mcp.sandbox.seccomp`
(read from descriptor FD, which the launch preamble opened) as bwrap's last
step before it runs the command.

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
class SystemLink:
    """A symlink re-created at the sandbox's root, as the host has it (``/bin -> usr/bin``)."""

    path: Path
    target: str


@dataclass(frozen=True, slots=True)
class Mounts:
    """What the server sees in its otherwise empty root (all absolute paths)."""

    #: The system, read-only (``/usr``, libraries, the needed parts of ``/etc``).
    system: Sequence[Path] = ()
    #: Symlinks of a merged-``/usr`` system (``/bin -> usr/bin``).
    links: Sequence[SystemLink] = ()
    hidden: Sequence[Path] = ()
    read: Sequence[Path] = ()
    writable: Sequence[Path] = ()
    private_tmp: Sequence[str] = PRIVATE_TMP


def mount_args(mounts: Mounts) -> list[str]:
    """The filesystem part of the bwrap argv, in the order of the module docstring.

    Hidden, read and writable paths are mounted shallowest first (at equal
    depth: hide, then read, then write), so a deeper mount always covers a
    shallower one: a read-only bind of ``~/.local`` cannot re-expose a state
    directory hidden at ``~/.local/state/vsm-mcp``.
    """
    args: list[str] = []
    for link in mounts.links:
        args += ["--symlink", link.target, str(link.path)]
    args += ["--dev", "/dev", "--proc", "/proc"]
    made: set[Path] = set()
    for tmp in mounts.private_tmp:
        for parent in reversed(Path(tmp).parents):
            if parent not in (Path("/"), Path("/dev")) and parent not in made:
                args += ["--perms", "0755", "--dir", str(parent)]  # /var for /var/tmp
                made.add(parent)
        args += ["--perms", "1777", "--tmpfs", tmp]
    writable, read = set(mounts.writable), (set(mounts.read) | set(mounts.system)) - set(mounts.writable)
    hidden = set(mounts.hidden) - writable - read
    kinds = {**{p: 0 for p in hidden}, **{p: 1 for p in read}, **{p: 2 for p in writable}}
    # Mount points so far, True for a tmpfs (the root is one): a directory bwrap creates for a
    # mount point on a tmpfs is 0700 (measured), so the server could not walk through it.
    mounted = {Path("/"): True, **{Path(t): True for t in mounts.private_tmp}}
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
    return [*args, "--remount-ro", "/"]


def namespace_args(*, network: bool, privileged: bool, egress: Sequence[str] = ()) -> list[str]:
    """Namespaces and capabilities for the two shapes (module docstring).

    ``network``: share the host's network namespace. ``egress``: bwrap's part of an egress
    namespace (`vsm_mcp.sandbox.egress.bwrap_args`; with ``network`` False).
    """
    if not privileged:
        return ["--unshare-all", *(["--share-net"] if network else []), *egress]
    args = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if not network:
        args.append("--unshare-net")
    args += [*egress, "--cap-drop", "ALL"]
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
    seccomp_fd: int | None = None,
    egress: Sequence[str] = (),
) -> list[str]:
    """The whole bwrap command line: ``bwrap [mounts] [namespaces] ... -- command``.

    ``seccomp_fd``: the descriptor bwrap reads the seccomp filter from (None: no filter).

    ``env`` is the environment bwrap will be given; only its *names* are used
    here (to unset what a launcher might add on top of it).
    """
    unset = [name for name in LAUNCHER_ENV if name not in env]
    return [
        bwrap,
        *mount_args(mounts),
        *namespace_args(network=network, privileged=privileged, egress=egress),
        "--die-with-parent",
        *(["--seccomp", str(seccomp_fd)] if seccomp_fd is not None else []),
        *(arg for name in unset for arg in ("--unsetenv", name)),
        "--chdir",
        str(chdir),
        "--",
        *command,
    ]
