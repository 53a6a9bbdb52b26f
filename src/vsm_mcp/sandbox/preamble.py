"""The launch preamble: what must happen *outside* the sandbox, in the server's own process,
before bubblewrap starts.

A `LaunchPlan` is argv only (no ``preexec_fn``, no file descriptors to hand
over), so any launcher can run it. Two things nevertheless have to be done by
the process that becomes the sandbox, before ``bwrap`` runs:

* join the server's cgroups (``echo 0 > DIR/cgroup.procs`` moves the writer),
  so that bwrap and every process of the server are counted and limited
  there from their first instruction, with no window between a spawn and a
  move by the gateway;
* open files bwrap reads from a descriptor (``--seccomp FD``: the compiled
  seccomp filter) onto fixed descriptor numbers.

Both are a few shell words, so the preamble is one ``/bin/sh -c SCRIPT``
stage that ends in ``exec "$@"``: the shell *becomes* bwrap (same pid, same
process group), so the fleet's stop-by-group and pdeathsig are unchanged.

Invariants:

* every path in the script is quoted with `shlex.quote`; no value of the
  server's environment ever appears in it;
* the script fails closed: a cgroup that cannot be joined or a file that
  cannot be opened stops the launch (``set -e``) with the shell's error on
  stderr, which lands in the server's log;
* an empty preamble is no stage at all (``argv`` unchanged).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: The shell that runs the preamble (POSIX sh, essential on every distribution).
SHELL = "/bin/sh"
#: ``$0`` of the preamble's shell: how it shows in ``ps`` for the instant before ``exec``.
ARGV0 = "vsm-mcp-launch"


@dataclass(frozen=True, slots=True)
class Preamble:
    """What the launching process does before it becomes ``bwrap``."""

    #: ``cgroup.procs`` files to write ``0`` into (one per cgroup v1 hierarchy, or one for v2).
    cgroup_procs: Sequence[Path] = ()
    #: ``(fd, path)``: open ``path`` read-only onto descriptor ``fd`` (3 <= fd <= 9).
    read_fds: Sequence[tuple[int, Path]] = ()

    def __bool__(self) -> bool:
        return bool(self.cgroup_procs or self.read_fds)

    def script(self) -> str:
        """The shell script (see the module docstring); it ends by exec'ing its arguments."""
        words = ["set -e"]
        words += [f"echo 0 > {shlex.quote(str(path))}" for path in self.cgroup_procs]
        for fd, path in self.read_fds:
            if fd < 3:
                raise ValueError(f"descriptor {fd} is stdin, stdout or stderr")
            if fd > 9:
                # dash reads ``10<`` as the command ``10``: POSIX sh redirects digits 0-9 only.
                raise ValueError(f"descriptor {fd}: the shell can open descriptors 3 to 9 only")
            words.append(f"exec {fd}< {shlex.quote(str(path))}")
        # The shell exports a PWD of its own; the server's environment is exactly its plan's.
        words += ["unset PWD", 'exec "$@"']
        return "; ".join(words)

    def argv(self, command: Sequence[str]) -> list[str]:
        """``command`` run after the preamble (``command`` itself when there is nothing to do)."""
        if not self:
            return list(command)
        return [SHELL, "-c", self.script(), ARGV0, *command]
