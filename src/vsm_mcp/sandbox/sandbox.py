"""`Sandbox`: one server's profile bound to this host; `wrap` turns its command into a plan.

The effects `plan_launch` leaves out happen here, each idempotent:

* the server's directories exist: its prefix (the install tree, read-only
  inside), its ``home`` and the data dirs (writable); when the gateway is
  root, the writable ones belong to the server's own uid, the prefix stays
  the gateway's;
* the command is resolved to an absolute path (the sandbox's PATH first,
  then the gateway's), and every directory its interpreter chain lives in
  (a venv's python symlinked into ``~/.pyenv``, a shebang's ``node``) is
  made visible read-only when the sandbox would otherwise not show it.

Trusted data only: the chain is read (symlinks, ``#!`` lines) to decide what
to bind, so no file of it may lie where the server can write (its home, its
data dirs, a temporary directory): such a launch is refused, as the server
could otherwise name any host directory to be bound at its next start.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from vsm_mcp.errors import SandboxError
from vsm_mcp.sandbox.launch import Host, LaunchPlan, plan_launch, server_env
from vsm_mcp.sandbox.limits import derived_uid
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
    ) -> LaunchPlan:
        """Prepare the server's directories and plan its launch.

        ``env`` is the server's declared environment, secrets included; it is
        the only part of the environment besides the sandbox's own variables.

        Raises:
            SandboxError: the command is not found, or a path cannot be prepared.
            SandboxUnavailableError: no working bwrap and the profile forbids unsandboxed runs.
        """
        declared = dict(env or {})
        self.prepare()
        workdir = Path(os.path.abspath(cwd)) if cwd is not None else None
        executable = self.resolve(command, declared, workdir)
        return plan_launch(
            str(executable),
            args,
            declared,
            self.profile,
            self.host,
            cwd=workdir,
            extra_read=[*self.runtime_paths(executable), *self.program_paths(args, workdir)],
        )

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
        """The absolute path of ``command``: as given, on the sandbox's PATH, or the gateway's."""
        if "/" in command:
            path = (cwd or self.profile.prefix) / command
            if os.access(path, os.X_OK):
                return Path(os.path.abspath(path))
            raise SandboxError(f"command {str(path)!r} does not exist or is not executable")
        sandbox_path = server_env(self.profile, self.host, declared, self.profile.prefix / "bin")["PATH"]
        for search in (sandbox_path, self.host.environ.get("PATH", "")):
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
        todo, seen = [executable], set[Path]()
        while todo and len(seen) < MAX_RUNTIME_HOPS:
            path = todo.pop()
            if path in seen:
                continue
            seen.add(path)
            writable = self.writable_by_server(path)
            if writable is not None:
                raise SandboxError(
                    f"the launcher {path} lies in {writable}, which the server can write: "
                    "it cannot decide what the sandbox shows (install the server elsewhere)"
                )
            if self._invisible(path):
                root = self._install_root(path)
                if root not in needed:
                    needed.append(root)
            if path.is_symlink():
                todo.append(Path(os.path.normpath(path.parent / os.readlink(path))))
            elif (interpreter := _shebang(path)) is not None:
                todo.append(interpreter)
        return needed

    def program_paths(self, args: Sequence[str], cwd: Path | None) -> list[Path]:
        """Read-only binds of the directories of the files the command is given to run
        (``python /some/checkout/server.py``) when they would be hidden: the server must be
        able to read its own program. Never a protected place (the state dir)."""
        needed: list[Path] = []
        for arg in args:
            if not arg or arg.startswith("-"):
                continue
            candidate = Path(arg) if os.path.isabs(arg) else (cwd or self.profile.prefix) / arg
            if not candidate.is_file():
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
