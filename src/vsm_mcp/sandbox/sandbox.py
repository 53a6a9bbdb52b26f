"""`Sandbox`: one server's profile bound to this host; `wrap` turns its command into a plan.

The effects `plan_launch` leaves out happen here, each idempotent:

* the writable directories (prefix, its ``home``, the data dirs) exist, and
  when the gateway is root they belong to the server's own uid;
* the command is resolved to an absolute path (the sandbox's PATH first,
  then the gateway's), and every directory its interpreter chain lives in
  (a venv's python symlinked into ``~/.pyenv``, a shebang's ``node``) is
  made visible read-only when the sandbox would otherwise hide it;
* with the network on, the resolver configuration is readable: where
  ``/etc/resolv.conf`` links into a hidden place (systemd-resolved's stub in
  ``/run``), the directory it points to is made visible read-only.
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
#: Files a networked server reads to resolve names; often links into /run (hidden).
RESOLVER_FILES = (Path("/etc/resolv.conf"), Path("/etc/hosts"), Path("/etc/nsswitch.conf"))


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
            extra_read=[
                *self.runtime_paths(executable),
                *self.program_paths(args, workdir),
                *self.network_paths(),
            ],
        )

    def prepare(self) -> None:
        """Create the writable directories; as root, hand them to the server's uid."""
        try:
            for path in (*self.profile.writable, self.profile.home):
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
        """Read-only binds needed so the command's symlinks and interpreters resolve inside."""
        visible = (*self.profile.writable, *self.profile.read_paths)
        needed: list[Path] = []
        todo, seen = [executable], set[Path]()
        while todo and len(seen) < MAX_RUNTIME_HOPS:
            path = todo.pop()
            if path in seen:
                continue
            seen.add(path)
            if self._hidden(path) and not any(_within(path, v) for v in visible):
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
        visible = (*self.profile.writable, *self.profile.read_paths)
        needed: list[Path] = []
        for arg in args:
            if not arg or arg.startswith("-"):
                continue
            candidate = Path(arg) if os.path.isabs(arg) else (cwd or self.profile.prefix) / arg
            if not candidate.is_file():
                continue
            directory = self._install_root(Path(os.path.realpath(candidate)))
            if not self._hidden(directory) or any(_within(directory, v) for v in visible):
                continue
            if any(_within(directory, p) or _within(p, directory) for p in self.host.protected):
                continue
            if directory not in needed:
                needed.append(directory)
        return needed

    def network_paths(self, files: Sequence[Path] = RESOLVER_FILES) -> list[Path]:
        """Read-only binds so a networked server can resolve names (none without network)."""
        if not self.profile.network:
            return []
        visible = (*self.profile.writable, *self.profile.read_paths)
        needed: list[Path] = []
        for file in files:
            target = Path(os.path.realpath(file))
            exposed = target == file or not self._hidden(target) or any(_within(target, v) for v in visible)
            if not exposed and target.parent not in needed:
                needed.append(target.parent)
        return needed

    def _hidden(self, path: Path) -> bool:
        """Invisible inside: under a hidden place, or under a private tmp (an empty tmpfs there)."""
        return any(_within(path, hidden) for hidden in self.host.hidden) or any(
            _within(path, Path(tmp)) for tmp in self.host.private_tmp
        )

    def _install_root(self, executable: Path) -> Path:
        """``X`` for ``X/bin/exe`` (its libraries sit next to bin), the npm prefix ``X`` for
        ``X/node_modules/...`` (a package needs its dependencies beside it), unless X holds hidden things."""
        directory = executable.parent
        root = directory.parent if directory.name == "bin" else directory
        if "node_modules" in executable.parts:
            root = Path(*executable.parts[: executable.parts.index("node_modules")])
        if any(_within(hidden, root) for hidden in self.host.hidden):
            return directory
        return root


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
