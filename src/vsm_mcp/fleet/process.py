"""A downstream MCP server as a child process, bridged to SDK message streams.

The framing is the SDK's, read and written by the session itself through
`vsm_mcp.fleet.wire` (no pump tasks on the call path); what this module adds
over `mcp.client.stdio` is process control the gateway needs:

* the child runs in its own session and process group, and the whole group is
  killed when the unit stops (close stdin, SIGTERM after a grace period,
  SIGKILL after another; then SIGKILL to the group again for stragglers);
  a plan with a cgroup has it removed after that, which kills whatever left
  the group (a ``setsid`` inside an unsandboxed server) and frees the group;
* the child asks the kernel for SIGKILL when the gateway dies
  (``PR_SET_PDEATHSIG`` through ``prctl`` in ``preexec_fn``), so children die
  with the gateway even when it is SIGKILLed;
* stderr is kept line by line in a bounded ring, and appended to a log file
  when one is given (``vsm-mcp servers logs``), private, with lines capped and
  rotated by size (`vsm_mcp.fleet.logfile`);
* what runs is a `LaunchPlan` (argv, environment, working directory) made by
  `vsm_mcp.fleet.confinement` from the spec, sandboxed or not; the log file
  gets the plan's description (environment names only, never values);
* a stdout line that is not JSON-RPC is reported to the session as an
  exception and counted, never fatal;
* `ChildProcess.gone` is set when the server exits (a pidfd turns readable),
  its stdout reaches EOF or its stdin breaks, which is how a unit learns its
  server died.

Structured concurrency: the stderr pump and the exit watcher run in a task
group owned by the `spawn` context manager; leaving it always stops and reaps
the process.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.lowlevel
import anyio.to_thread
import mcp_types as types

from vsm_mcp.errors import SandboxError
from vsm_mcp.fleet.confinement import Confinement
from vsm_mcp.fleet.logfile import CHUNK_BYTES, CappedLines, cap_line, open_log
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.fleet.wire import LineReader, LineWriter, read_pipe
from vsm_mcp.sandbox import LaunchPlan, ServerCgroup
from vsm_mcp.sandbox.cgroups import CgroupUsage

logger = logging.getLogger(__name__)

#: After stdin closes, how long a server may take to exit on its own (spec shutdown order).
STDIN_CLOSE_GRACE_S = 0.5
#: After SIGTERM to the group, how long before SIGKILL.
TERM_GRACE_S = 1.0
#: Waiting for the kernel to report a SIGKILLed child; only an unkillable process exhausts it.
REAP_TIMEOUT_S = 2.0
#: How often a stopping unit checks whether its process has exited.
EXIT_POLL_S = 0.01
#: stderr lines kept per unit.
STDERR_LINES = 500

_PR_SET_PDEATHSIG = 1


def _die_with_parent_fn() -> Callable[[], None] | None:
    """A preexec function that makes the child receive SIGKILL when this process dies."""
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c") or "libc.so.6"
    libc = ctypes.CDLL(libc_name, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died between fork and prctl: then nobody will signal us.
        if os.getppid() != parent:
            os._exit(1)

    return preexec


@dataclass(slots=True)
class ChildProcess:
    """What the unit needs to know about its running server process."""

    pid: int
    stderr: deque[str] = field(default_factory=lambda: deque(maxlen=STDERR_LINES))
    gone: anyio.Event = field(default_factory=anyio.Event)
    exited: anyio.Event = field(default_factory=anyio.Event)
    garbage_lines: int = 0
    returncode: int | None = None
    #: The server's cgroup counters as it stopped (read just before the group is removed).
    final_usage: CgroupUsage | None = None


@asynccontextmanager
async def spawn(
    spec: ServerSpec,
    stderr_ring: deque[str] | None = None,
    stderr_log: Path | None = None,
    *,
    plan: LaunchPlan | None = None,
) -> AsyncIterator[tuple[LineReader, LineWriter, ChildProcess]]:
    """Start ``plan`` (by default: ``spec`` as a bare `Confinement` plans it, honouring the
    spec's own sandbox section) and yield the SDK stream pair and the process handle.

    Raises:
        OSError: the command cannot be started (not found, not executable).
        SandboxError: the spec's sandbox cannot be set up (see `Confinement.plan`).
    """
    assert spec.command is not None
    launch = plan if plan is not None else (await Confinement().plan(spec)).plan
    # The server's stdout is a pipe of our own, read by a `LineReader` protocol (no pump task,
    # no StreamReader): see `vsm_mcp.fleet.wire`.
    out_r, out_w = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *launch.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=out_w,
            stderr=asyncio.subprocess.PIPE,
            env=dict(launch.env),
            cwd=launch.cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent_fn(),
            limit=CHUNK_BYTES,  # stderr's buffer pauses the pipe past 2x this: a flood waits
        )
    except BaseException:
        os.close(out_r)
        raise
    finally:
        os.close(out_w)  # the child holds its own copy: EOF comes when the server's side closes
    child = ChildProcess(pid=proc.pid)
    if stderr_ring is not None:
        child.stderr = stderr_ring
    assert proc.stdin is not None

    def garbage() -> None:
        child.garbage_lines += 1

    out_transport, read = await read_pipe(
        os.fdopen(out_r, "rb", buffering=0),
        on_eof=child.gone.set,
        on_garbage=garbage,
        expects=types.JSONRPCResponse,
    )
    write = LineWriter(proc.stdin, on_broken=child.gone.set)

    async def watch_exit() -> None:
        # A pidfd turns readable when the process exits: no polling, and no waiting for a
        # grandchild that still holds the stdout pipe open to notice the server died.
        try:
            pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            await proc.wait()
        else:
            try:
                await anyio.wait_readable(pidfd)
            finally:
                os.close(pidfd)
        child.exited.set()
        child.gone.set()

    async def pump_stderr() -> None:
        # Read in chunks, not lines: a flood or an endless line costs one bounded batch per
        # wake-up (`vsm_mcp.fleet.logfile` caps lines and rotates the file by size).
        assert proc.stderr is not None
        log = open_log(stderr_log) if stderr_log is not None else None
        lines = CappedLines()
        try:
            if log is not None:
                log.write_lines([cap_line(f"--- {spec.name}: {launch.describe()} (pid {proc.pid})".encode())])
            while True:
                try:
                    chunk = await proc.stderr.read(CHUNK_BYTES)
                except (ValueError, ConnectionError):
                    chunk = b""
                batch = lines.feed(chunk) if chunk else lines.end()
                if batch:
                    kept = child.stderr.maxlen
                    recent = batch if kept is None else batch[-kept:]
                    child.stderr.extend(line.decode(errors="replace") for line in recent)
                    if log is not None:
                        log.write_lines(batch)
                if not chunk:
                    return
                await anyio.lowlevel.checkpoint()  # read() does not yield while data is buffered
        finally:
            if log is not None:
                log.close()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump_stderr)
            tg.start_soon(watch_exit)
            try:
                yield read, write, child
            finally:
                with anyio.CancelScope(shield=True):
                    await _stop(proc, child.exited)
                    child.returncode = proc.returncode
                    if launch.cgroup is not None:
                        with suppress(OSError):
                            child.final_usage = await anyio.to_thread.run_sync(launch.cgroup.usage)
                        await _release(launch.cgroup)
                tg.cancel_scope.cancel()
    finally:
        await read.aclose()
        out_transport.close()


async def _stop(proc: asyncio.subprocess.Process, exited: anyio.Event) -> None:
    """Close stdin, wait, SIGTERM the group, wait, SIGKILL the group."""
    if proc.stdin is not None:
        with suppress(Exception):
            proc.stdin.close()
    if not await _exited(proc, exited, STDIN_CLOSE_GRACE_S):
        _signal_group(proc.pid, signal.SIGTERM)
        if not await _exited(proc, exited, TERM_GRACE_S):
            _signal_group(proc.pid, signal.SIGKILL)
            await _exited(proc, exited, REAP_TIMEOUT_S)
    # Descendants that outlived the leader are still in its group: take them too.
    _signal_group(proc.pid, signal.SIGKILL)
    # The pidfd says "exited" before asyncio's child watcher has reaped the process; wait for
    # the reap, so the subprocess transport closes itself instead of leaking (and warning).
    with anyio.move_on_after(REAP_TIMEOUT_S):
        while proc.returncode is None:  # noqa: ASYNC110 - set from the watcher thread, no event
            await anyio.sleep(EXIT_POLL_S)


async def _release(cgroup: ServerCgroup) -> None:
    """Remove the server's cgroup (blocking file work, bounded: in a worker thread)."""
    try:
        await anyio.to_thread.run_sync(cgroup.remove)
    except SandboxError as exc:
        logger.warning("%s", exc)


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system) of the live processes of process group ``pgid`` (blocking: reads
    /proc). The sandbox keeps the server in the group the fleet started it in (no ``setsid``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # it exited meanwhile
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _exited(proc: asyncio.subprocess.Process, exited: anyio.Event, within_s: float) -> bool:
    # Polled, not awaited: on the cancellation path the exit watcher task is already cancelled,
    # and asyncio's own wait() also waits for pipes a surviving grandchild may hold.
    with anyio.move_on_after(within_s):
        while not exited.is_set() and proc.returncode is None:  # noqa: ASYNC110 - see above
            await anyio.sleep(EXIT_POLL_S)
        return True
    return False
