"""`Sandbox`: one server's profile bound to this host; `wrap` turns its command into a plan.

The effects `plan_launch` leaves out happen here, each idempotent:

* the server's directories exist: its prefix (the install tree, read-only
  inside), its ``home`` and the data dirs (writable); when the gateway is
  root, the writable ones belong to the server's own uid, the prefix stays
  the gateway's;
* the command is resolved to an absolute path (the sandbox's PATH first,
  then the gateway's), and every directory its interpreter chain lives in
  (a venv's python symlinked into ``~/.pyenv``, a shebang's ``node``) is
  made visible read-only when the sandbox would otherwise not show it;
* where the host enforces cgroup limits, the launch's cgroup exists with the
  profile's `CgroupLimits` written (`vsm_mcp.sandbox.cgroups`); it is made
  last, so a refused launch leaves none, and removed by whoever runs the plan.

Trusted data only: the chain is read (symlinks, ``#!`` lines) to decide what
to bind, so no file of it may lie where the server can write (its home, its
data dirs, a temporary directory): such a launch is refused, as the server
could otherwise name any host directory to be bound at its next start.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from vsm_mcp.errors import SandboxError, SandboxUnavailableError
from vsm_mcp.sandbox.cgroups import ServerCgroup
from vsm_mcp.sandbox.launch import Host, LaunchPlan, plan_launch, server_env, trust_store_paths
from vsm_mcp.sandbox.limits import derived_uid
from vsm_mcp.sandbox.pin import LaunchPin
from vsm_mcp.sandbox.preamble import Preamble
from vsm_mcp.sandbox.profile import SandboxProfile

#: Symlink hops and shebang interpreters followed when looking for a command's runtime.
MAX_RUNTIME_HOPS = 16


def _within(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


class Sandbox:
    """The sandbox of one downstream server on this host."""

    def __init__(self, profile: SandboxProfile, host: Host) -> None:
        self.profile = profile
        self.host = host

    @property
    def run_as(self) -> int | None:
        """The uid the server runs as when the gateway is root (None: the gateway's own)."""
        if not self.host.privileged:
            return None
        return self.profile.run_as_uid or derived_uid(self.profile.prefix)

    def wrap(
        self,
        command: str,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        *,
        preamble: Preamble | None = None,
    ) -> LaunchPlan:
        """Prepare the server's directories and plan its launch.

        ``env`` is the server's declared environment, secrets included; it is
        the only part of the environment besides the sandbox's own variables.

        Raises:
            SandboxError: the command is not found, a path or the cgroup cannot be prepared.
            SandboxUnavailableError: no working bwrap and the profile forbids unsandboxed runs.
        """
        declared = dict(env or {})
        self.prepare()
        workdir = Path(os.path.abspath(cwd)) if cwd is not None else None
        executable = self.resolve(command, declared, workdir)
        plan = plan_launch(
            str(executable),
            args,
            declared,
            self.profile,
            self.host,
            cwd=workdir,
            extra_read=[
                *self.runtime_paths(executable),
                *self.program_paths(args, workdir),
                *(p for p in trust_store_paths(self.host.environ) if not self._protected(p)),
            ],
            preamble=preamble,
            cgroup=(group := self.cgroup()),
        )
        files = [*self.chain(executable), *self.program_files(args, workdir)]
        if not plan.sandboxed and plan.run_as is not None:
            # A root gateway without bwrap runs the server as its own uid on the host's files: it
            # starts only if its files are already open to that uid (nothing is opened for it).
            # (Not the working directory: the launcher enters it, as root, before the drop.)
            closed = _closed_to(plan.run_as, files)
            if closed is not None:
                raise SandboxUnavailableError(
                    f"cannot run {executable} unsandboxed as uid {plan.run_as}: {closed}; "
                    "install bubblewrap (apt-get install bubblewrap), which shows a server its own files "
                    "without opening them to anyone else"
                )
        plan = replace(plan, pin=LaunchPin.of(files))
        if group is not None:
            group.create(self.profile.cgroup)
        return plan

    def cgroup(self) -> ServerCgroup | None:
        """A new cgroup for one launch (not made yet), when the host enforces any cgroup limit
        for the gateway's uid."""
        backend = self.host.cgroups.for_uid(self.host.uid)
        return backend.server_group(self.profile.prefix.name) if backend.enforced else None

    def prepare(self) -> None:
        """Create the server's directories; as root, hand the writable ones to the server's uid."""
        try:
            self.profile.prefix.mkdir(parents=True, exist_ok=True)
            for path in self.profile.writable:
                path.mkdir(parents=True, exist_ok=True)
            uid = self.run_as
            if uid is not None:
                for path in self.profile.writable:
                    _chown_tree(path, uid)
        except OSError as exc:
            raise SandboxError(f"cannot prepare sandbox directory {exc.filename}: {exc.strerror}") from exc

    def resolve(self, command: str, declared: Mapping[str, str], cwd: Path | None) -> Path:
        """The absolute path of ``command``: as given, on the sandbox's PATH, the gateway's, or beside
        the gateway's own interpreter (its environment's ``uvx``, even when that is not on PATH)."""
        if "/" in command:
            path = (cwd or self.profile.prefix) / command
            if os.access(path, os.X_OK):
                return Path(os.path.abspath(path))
            raise SandboxError(f"command {str(path)!r} does not exist or is not executable")
        sandbox_path = server_env(self.profile, self.host, declared, self.profile.prefix / "bin")["PATH"]
        for search in (sandbox_path, self.host.environ.get("PATH", ""), os.path.dirname(sys.executable)):
            found = shutil.which(command, path=search)
            if found is not None:
                return Path(os.path.abspath(found))
        raise SandboxError(f"command {command!r} not found on the sandbox's PATH ({sandbox_path})")

    def runtime_paths(self, executable: Path) -> list[Path]:
        """Read-only binds needed so the command's symlinks and interpreters resolve inside.

        Raises:
            SandboxError: a file of the chain lies where the server can write (module docstring).
        """
        needed: list[Path] = []
        for path in self.chain(executable):
            if self._invisible(path):
                root = self._install_root(path)
                if root not in needed:
                    needed.append(root)
        return needed

    def chain(self, executable: Path) -> list[Path]:
        """``executable``, then each symlink hop and ``#!`` interpreter it leads to, in order.

        Raises:
            SandboxError: a file of the chain lies where the server can write (module docstring).
        """
        chain: list[Path] = []
        todo = [executable]
        while todo and len(chain) < MAX_RUNTIME_HOPS:
            path = todo.pop()
            if path in chain:
                continue
            writable = self.writable_by_server(path)
            if writable is not None:
                raise SandboxError(
                    f"the launcher {path} lies in {writable}, which the server can write: "
                    "it cannot decide what the sandbox shows (install the server elsewhere)"
                )
            chain.append(path)
            if path.is_symlink():
                todo.append(Path(os.path.normpath(path.parent / os.readlink(path))))
            elif (interpreter := _shebang(path)) is not None:
                todo.append(interpreter)
        return chain

    def program_files(self, args: Sequence[str], cwd: Path | None) -> list[Path]:
        """The files the command line names (``python server.py``): part of what the launch runs."""
        files: list[Path] = []
        for arg in args:
            if not arg or arg.startswith("-"):
                continue
            candidate = Path(arg) if os.path.isabs(arg) else (cwd or self.profile.home) / arg
            own = _within(candidate, self.profile.prefix)  # its own tree lies in the protected state dir
            if _is_file(candidate) and (own or not any(_within(candidate, p) for p in self.host.protected)):
                files.append(Path(os.path.abspath(candidate)))
        return files

    def program_paths(self, args: Sequence[str], cwd: Path | None) -> list[Path]:
        """Read-only binds of the directories of the files the command is given to run
        (``python /some/checkout/server.py``) when they would be hidden: the server must be
        able to read its own program. Never a protected place (the state dir)."""
        needed: list[Path] = []
        for arg in args:
            if not arg or arg.startswith("-"):
                continue
            candidate = Path(arg) if os.path.isabs(arg) else (cwd or self.profile.home) / arg
            if not _is_file(candidate):
                continue
            real = Path(os.path.realpath(candidate))
            directory = self._install_root(real)
            if directory == real or not self._invisible(directory):
                continue  # a file in a top-level directory (``/etc/shadow``) is never a program tree
            if any(_within(directory, p) or _within(p, directory) for p in self.host.protected):
                continue
            if directory not in needed:
                needed.append(directory)
        return needed

    def writable_by_server(self, path: Path) -> Path | None:
        """The server-writable place ``path`` lies in (its home or a data dir), or None.

        The host's ``/tmp`` is not one: a sandboxed server has a private one."""
        places = self.profile.writable
        real = Path(os.path.realpath(path))
        return next((w for w in places if _within(path, w) or _within(real, w)), None)

    def _protected(self, path: Path) -> bool:
        return any(_within(path, p) or _within(p, path) for p in self.host.protected)

    def _invisible(self, path: Path) -> bool:
        """Not shown inside unless bound: outside the system view, the prefix and the declared paths."""
        shown = (
            *self.host.system.roots,
            self.profile.prefix,
            *self.profile.writable,
            *self.profile.read_paths,
        )
        return not any(_within(path, v) for v in shown) or any(_within(path, p) for p in self.host.protected)

    def _install_root(self, executable: Path) -> Path:
        """``X`` for ``X/bin/exe`` (its libraries sit next to bin), the npm prefix ``X`` for
        ``X/node_modules/...`` (a package needs its dependencies beside it); the directory itself
        (or the file) where X is a top-level directory or holds a protected place."""
        directory = executable.parent
        root = directory.parent if directory.name == "bin" else directory
        if "node_modules" in executable.parts:
            root = Path(*executable.parts[: executable.parts.index("node_modules")])
        for candidate in (root, directory):
            # Never a top-level directory (``/opt``, ``/home``) nor one that holds a protected place.
            if len(candidate.parts) > 2 and not any(_within(p, candidate) for p in self.host.protected):
                return candidate
        return executable


def _shebang(path: Path) -> Path | None:
    """The interpreter of a ``#!`` script (``/usr/bin/env NAME`` resolved on PATH), if any."""
    try:
        with path.open("rb") as fh:
            line = fh.readline(256)
    except OSError:
        return None
    if not line.startswith(b"#!"):
        return None
    words = line[2:].decode(errors="replace").split()
    if not words:
        return None
    if Path(words[0]).name == "env" and len(words) > 1:
        found = shutil.which(words[-1])
        return Path(found) if found else None
    return Path(words[0])


def _chown_tree(root: Path, uid: int) -> None:
    """Give ``root`` and everything below it to ``uid`` (group ``uid``); symlinks themselves only."""
    for directory, dirs, files in os.walk(root):
        for name in (directory, *(os.path.join(directory, n) for n in (*dirs, *files))):
            st = os.lstat(name)
            if st.st_uid != uid or st.st_gid != uid:
                os.lchown(name, uid, uid)


def _closed_to(uid: int, paths: Sequence[Path]) -> str | None:
    """Why ``uid`` (no supplementary groups) cannot reach one of ``paths`` (each directory on
    the way searchable, the path itself readable), or None when it can reach them all."""
    for path in paths:
        target = Path(os.path.abspath(path))
        for step in (*reversed(target.parents), target):
            try:
                info = os.stat(step)
            except OSError as exc:
                return f"{step}: {exc.strerror}"
            need = 0o1 if step != target or stat.S_ISDIR(info.st_mode) else 0o4
            if not _allows(info, uid, need):
                return f"{step} (mode {info.st_mode & 0o7777:04o}, owner uid {info.st_uid}) is closed to it"
    return None


def _allows(info: os.stat_result, uid: int, bit: int) -> bool:
    """Whether ``uid`` has permission ``bit`` (4 read, 1 search/execute) on ``info``."""
    if info.st_uid == uid:
        return bool(info.st_mode & (bit << 6))
    if info.st_gid == uid:  # setpriv gives the server the group of its uid's number
        return bool(info.st_mode & (bit << 3))
    return bool(info.st_mode & bit)


def _is_file(path: Path) -> bool:
    """``path.is_file()``, false for an argument that cannot be a path (``node -e <a long script>``)."""
    try:
        return path.is_file()
    except OSError:
        return False
