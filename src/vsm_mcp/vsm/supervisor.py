"""One-for-one supervision with restart intensity, escalating to S5 as algedonic pain.

Invariants:

* Every child runs in the supervisor's task group, in its own cancel scope;
  a child that raises is restarted alone (one-for-one), after ``backoff_s``.
  A child that returns normally is ``stopped`` and not restarted.
* Restart intensity: a child may fail at most ``max_restarts`` + 1 times in
  any ``within_s`` seconds (the first run plus ``max_restarts`` restarts). The
  next failure inside that span marks it ``failed``, stops restarting it, and
  emits exactly one PAIN signal of severity CRITICAL, kind
  ``restart_intensity_exceeded``, source ``"<supervisor>/<child>"``.
* ``except Exception`` lives here and only here; it logs the traceback.
  Cancellation is never caught, so leaving the context manager stops
  every child promptly.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType

import anyio
from anyio.abc import TaskGroup

from vsm_mcp.core.intensity import RestartIntensity
from vsm_mcp.core.messages import AlgedonicSignal, Severity, Valence
from vsm_mcp.errors import VsmError
from vsm_mcp.vsm.algedonic import SignalSink

logger = logging.getLogger(__name__)

#: Pause before a restart: long enough that a crash loop does not pin a core,
#: short enough that a transient failure costs the user nothing noticeable.
RESTART_BACKOFF_S = 0.05
#: Default restart intensity: 3 restarts in 5 s (Erlang/OTP's default is 1 in 5 s;
#: downstream MCP servers fail transiently more often than OTP processes).
MAX_RESTARTS = 3
WITHIN_S = 5.0
RESTART_INTENSITY_KIND = "restart_intensity_exceeded"


class ChildState(enum.StrEnum):
    """Where a supervised child is in its life."""

    RUNNING = "running"
    RESTARTING = "restarting"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class ChildStatus:
    """What the supervisor knows about one child."""

    name: str
    state: ChildState
    starts: int
    restarts: int
    last_error: str | None
    last_error_at: float | None


class _Child:
    __slots__ = (
        "failures",
        "last_error",
        "last_error_at",
        "name",
        "restarts",
        "run",
        "scope",
        "settled",
        "starts",
        "state",
    )

    def __init__(self, name: str, run: Callable[[], Awaitable[None]], failures: RestartIntensity) -> None:
        self.name = name
        self.run = run
        self.state = ChildState.RUNNING
        self.starts = 0
        self.restarts = 0
        self.failures = failures
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.scope = anyio.CancelScope()
        self.settled = anyio.Event()

    def status(self) -> ChildStatus:
        return ChildStatus(
            self.name, self.state, self.starts, self.restarts, self.last_error, self.last_error_at
        )


class Supervisor:
    """Runs children one-for-one; an async context manager that owns their task group."""

    def __init__(
        self,
        name: str,
        sink: SignalSink,
        *,
        max_restarts: int = MAX_RESTARTS,
        within_s: float = WITHIN_S,
        backoff_s: float = RESTART_BACKOFF_S,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if max_restarts < 0 or within_s <= 0 or backoff_s < 0:
            raise ValueError("need max_restarts >= 0, within_s > 0 and backoff_s >= 0")
        self.name = name
        self._sink = sink
        self._max_restarts = max_restarts
        self._within_s = within_s
        self._backoff_s = backoff_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._children: dict[str, _Child] = {}
        self._tg: TaskGroup | None = None

    async def __aenter__(self) -> Supervisor:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        try:
            return await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            self._tg = None

    def start(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Start supervising ``run`` under ``name`` (again, if a previous one settled).

        Raises:
            VsmError: the supervisor is not entered, or ``name`` is still alive.
        """
        if self._tg is None:
            raise VsmError(f"supervisor {self.name!r} is not running")
        old = self._children.get(name)
        if old is not None and not old.settled.is_set():
            raise VsmError(f"child {name!r} of supervisor {self.name!r} is already running")
        # The first run plus max_restarts restarts: the next failure in the window is one too many.
        child = _Child(name, run, RestartIntensity(self._max_restarts + 1, self._within_s, clock=self._clock))
        self._children[name] = child
        self._tg.start_soon(self._supervise, child, name=f"{self.name}/{name}")

    async def stop(self, name: str) -> ChildStatus:
        """Cancel a child and wait until it has stopped; returns its final status."""
        child = self._children[name]
        child.scope.cancel()
        await child.settled.wait()
        return child.status()

    async def wait_settled(self, name: str) -> ChildStatus:
        """Wait until a child has stopped or failed for good; returns its final status."""
        child = self._children[name]
        await child.settled.wait()
        return child.status()

    def status(self) -> dict[str, ChildStatus]:
        """Per-child status, by name."""
        return {name: child.status() for name, child in sorted(self._children.items())}

    async def _supervise(self, child: _Child) -> None:
        try:
            with child.scope:
                await self._run_child(child)
        finally:
            if child.state in (ChildState.RUNNING, ChildState.RESTARTING):
                child.state = ChildState.STOPPED
            child.settled.set()

    async def _run_child(self, child: _Child) -> None:
        while True:
            child.state = ChildState.RUNNING
            child.starts += 1
            try:
                await child.run()
            except Exception as exc:
                logger.exception("%s/%s crashed (start %d)", self.name, child.name, child.starts)
                child.last_error = f"{type(exc).__name__}: {exc}"
                child.last_error_at = self._wall_clock()
            else:
                child.state = ChildState.STOPPED
                return
            if child.failures.record():
                child.state = ChildState.FAILED
                self._escalate(child, child.failures.recent)
                return
            child.state = ChildState.RESTARTING
            child.restarts += 1
            await anyio.sleep(self._backoff_s)

    def _escalate(self, child: _Child, failures: int) -> None:
        detail = (
            f"{child.name} failed {failures} times within {self._within_s:g}s "
            f"(limit {self._max_restarts} restarts); not restarting. Last error: {child.last_error}"
        )
        self._sink.emit(
            AlgedonicSignal(
                source=f"{self.name}/{child.name}",
                kind=RESTART_INTENSITY_KIND,
                valence=Valence.PAIN,
                severity=Severity.CRITICAL,
                detail=detail,
                at=self._wall_clock(),
            )
        )
