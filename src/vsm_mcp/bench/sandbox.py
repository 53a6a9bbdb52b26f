"""`vsm-mcp bench sandbox`: one MCP server run plain, sandboxed, and sandboxed with egress, side by side.

Three targets, all the lean echo server (``python -m vsm_mcp.bench.echo_server``), launched the way
the gateway launches a stdio server (a `LaunchPlan` run by `vsm_mcp.fleet.process.spawn`, spoken
to by the SDK's `ClientSession`):

* ``plain``: the plan of a server whose sandbox mode is ``off`` (`Confinement` with its default
  policy): the command as written;
* ``sandboxed``: ``Sandbox(SandboxProfile(network=False), Host.detect(state)).wrap(...)``:
  bubblewrap with only a loopback of its own, the host's seccomp filter, rlimits, the server's
  cgroup where this host enforces one, and (as root) the drop to the server's own uid;
* ``egress``: the same with ``network=True``: a network namespace of its own wired to the outside
  by slirp4netns (`vsm_mcp.sandbox.egress`).

Each sandboxed prefix lies under ``<state>/servers/bench`` of a temporary state directory (hidden
from the servers, as the gateway's is); the checkout's ``src`` is a read path, since the venv's
editable install imports `vsm_mcp` from there. Every launch gets a fresh plan (a plan's cgroup
belongs to one launch).

Method (as `vsm_mcp.bench.gateway`): start-up first, ``starts`` trials, each starting every
target once (a fresh process: from before `spawn` to the first ``tools/list`` answered, after
``initialize``), in an order rotating per trial; then every target is started and warmed once
and ``rounds`` rounds each give every target a pass of ``calls`` sequential ``tools/call``, the
order rotating per round. A target's figure is the median over trials or rounds; a ratio is the
median of the ratios within a trial or round (paired: run seconds apart, so a burst of load on a
shared machine moves both sides). ``calls_ratio`` is sandboxed over plain calls/s (higher is
better), ``start_ratio`` sandboxed over plain start-up seconds (lower is better); ``egress_*``
likewise for the egress target.

Invariants: every figure is measured in this run, nothing is estimated; a target that fails
(to plan, to start, or during a pass) has its error under ``<target>_error`` and ``None`` for
its figures and ratios from then on, never a number.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from mcp.client.session import ClientSession
from mcp.shared.exceptions import MCPError
from rich.table import Table

import vsm_mcp
from vsm_mcp.errors import VsmError
from vsm_mcp.fleet.confinement import Confinement
from vsm_mcp.fleet.process import spawn
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.sandbox import Host, LaunchPlan, Sandbox, SandboxProfile

T = TypeVar("T")

TARGETS = ("plain", "sandboxed", "egress")
ECHO_MODULE = "vsm_mcp.bench.echo_server"
#: The issue's target: sandboxed calls/s at least this share of plain calls/s.
TARGET_CALLS_RATIO = 0.9
#: CPUs this process may run on, shared by the client and the server.
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
WARMUP_CALLS = 200
#: bwrap, slirp4netns and a Python start on a busy 2-core box; a start slower than this failed.
START_TIMEOUT_S = 60.0
#: Budget per call of a pass (about 100x a typical one), on top of `START_TIMEOUT_S`.
CALL_BUDGET_S = 0.1
#: Lines of a failed server's stderr quoted in its error.
STDERR_TAIL = 3
#: What a target that cannot be launched, or dies, raises (the rest are bugs and propagate).
_FAILURES = (VsmError, MCPError, OSError, TimeoutError)


def _spec(plan: LaunchPlan | None = None) -> ServerSpec:
    """The fleet's spec of the echo server; with ``plan``, the spec `spawn` runs it from."""
    if plan is None:
        return ServerSpec(name="bench", command=sys.executable, args=["-m", ECHO_MODULE])
    return ServerSpec(name="bench", command=plan.argv[0], args=list(plan.argv[1:]), env=dict(plan.env))


class _Planner:
    """Fresh launch plans of each target on one host, in one state directory."""

    def __init__(self, state: Path) -> None:
        self.state = state.resolve()
        self.host = Host.detect(self.state)
        # The editable install's .pth points the venv's python at the checkout's src.
        self.src = Path(vsm_mcp.__file__).resolve().parents[1]

    def plan(self, target: str) -> LaunchPlan:
        """Raises: SandboxError: the target cannot be launched here (no bwrap, no slirp4netns...)."""
        if target == "plain":
            return Confinement().plan_now(_spec()).plan
        profile = SandboxProfile(
            prefix=self.state / "servers" / "bench" / target,
            read_paths=(self.src,),
            network=target == "egress",
        )
        return Sandbox(profile, self.host).wrap(sys.executable, ["-m", ECHO_MODULE])


def _facts(plan: LaunchPlan) -> dict[str, Any]:
    """What the plan amounts to: the shape `LaunchPlan.describe` starts with, and its parts."""
    return {
        "sandboxed": plan.sandboxed,
        "seccomp": plan.seccomp,
        # An unsandboxed server always has the host's network, whatever the plan's field says.
        "network": plan.network if plan.sandboxed else "host",
        "cgroup": plan.cgroup is not None,
        "cgroup_problem": plan.cgroup_problem,
        "run_as": plan.run_as,
        "describe": plan.describe().split(": ", 1)[0],
    }


@asynccontextmanager
async def _session(plan: LaunchPlan, stderr: deque[str]) -> AsyncIterator[ClientSession]:
    """A session with the server of ``plan``, initialized and its tools listed once; ``stderr``
    keeps this launch's lines (an error quotes them)."""
    stderr.clear()
    async with (
        spawn(_spec(plan), stderr, plan=plan) as (read, write, _child),
        ClientSession(read, write) as session,
    ):
        with anyio.fail_after(START_TIMEOUT_S):
            await session.initialize()
            tools = await session.list_tools()
        if [t.name for t in tools.tools] != ["echo"]:
            raise MCPError(-32603, f"echo server listed {[t.name for t in tools.tools]}")
        yield session


async def _pass(session: ClientSession, calls: int) -> float:
    """Calls per second of ``calls`` sequential echo calls."""
    with anyio.fail_after(START_TIMEOUT_S + calls * CALL_BUDGET_S):
        start = time.perf_counter()
        for i in range(calls):
            await session.call_tool("echo", {"text": f"m{i}"})
        return calls / (time.perf_counter() - start)


def _rotated(names: list[str], turn: int) -> list[str]:
    shift = turn % len(names) if names else 0
    return names[shift:] + names[:shift]


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found += _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return found


class _Run:
    """One measurement: targets still standing, their errors, the stderr of their launches."""

    def __init__(self, planner: _Planner) -> None:
        self.planner = planner
        self.errors: dict[str, str] = {}
        self.stderr: dict[str, deque[str]] = {name: deque(maxlen=50) for name in TARGETS}

    @property
    def live(self) -> list[str]:
        return [name for name in TARGETS if name not in self.errors]

    async def guarded(self, target: str, phase: str, work: Callable[[], Awaitable[T]]) -> T | None:
        """``work()``, or None with the target's (first) error recorded when it fails."""
        try:
            return await work()
        except* _FAILURES as group:
            why = "; ".join(f"{type(e).__name__}: {e}" for e in _leaves(group))
            tail = " | ".join(list(self.stderr[target])[-STDERR_TAIL:])
            self.errors.setdefault(target, f"{phase}: {why}" + (f" (stderr: {tail})" if tail else ""))
        return None

    async def start(self, target: str) -> tuple[float, float]:
        """(seconds to plan, seconds from spawn to the first tools/list) of a fresh process."""
        begun = time.perf_counter()
        plan = await anyio.to_thread.run_sync(self.planner.plan, target)
        planned = time.perf_counter()
        async with _session(plan, self.stderr[target]):
            started = time.perf_counter()
        return planned - begun, started - planned


async def run(rounds: int = 7, calls: int = 1000, starts: int = 7) -> dict[str, Any]:
    """Measure everything; returns the JSON document ``bench sandbox --json`` prints."""
    with tempfile.TemporaryDirectory(prefix="vsm-bench-sandbox-") as tmp:
        planner = await anyio.to_thread.run_sync(_Planner, Path(tmp))
        measured = _Run(planner)
        result = _machine(planner.host, calls, rounds, starts)
        plans: dict[str, dict[str, Any]] = {}
        for name in TARGETS:
            planned = await measured.guarded(
                name, "plan", partial(anyio.to_thread.run_sync, planner.plan, name)
            )
            if planned is not None:
                plans[name] = _facts(planned)
                if planned.cgroup is not None:  # a sample, never launched
                    await anyio.to_thread.run_sync(planned.cgroup.remove)
        result["plans"] = plans
        sandboxed = plans.get("sandboxed", {})
        result["seccomp"], result["cgroups"] = sandboxed.get("seccomp"), sandboxed.get("cgroup")
        trials = await _starts(measured, starts)
        passes = await _rounds(measured, rounds, calls)
    result |= _summary(measured, trials, passes)
    return result


async def _starts(measured: _Run, starts: int) -> list[dict[str, Any]]:
    trials: list[dict[str, Any]] = []
    for trial in range(starts):
        row: dict[str, Any] = {"trial": trial, "order": _rotated(measured.live, trial)}
        for name in row["order"]:
            timed = await measured.guarded(name, f"start-up trial {trial}", partial(measured.start, name))
            if timed is not None:
                row[f"{name}_plan_s"], row[f"{name}_start_s"] = round(timed[0], 4), round(timed[1], 4)
        trials.append(row)
    return trials


async def _rounds(measured: _Run, rounds: int, calls: int) -> list[dict[str, Any]]:
    passes: list[dict[str, Any]] = []
    sessions: dict[str, ClientSession] = {}
    stacks: dict[str, AsyncExitStack] = {}
    try:
        for name in measured.live:  # every target started and warmed once, then all run side by side
            stack = stacks[name] = AsyncExitStack()

            async def warm(n: str = name, s: AsyncExitStack = stack) -> ClientSession:
                plan = await anyio.to_thread.run_sync(measured.planner.plan, n)
                session = await s.enter_async_context(_session(plan, measured.stderr[n]))
                await _pass(session, WARMUP_CALLS)
                return session

            session = await measured.guarded(name, "warm-up", warm)
            if session is not None:
                sessions[name] = session
        for round_ in range(rounds):
            row: dict[str, Any] = {"round": round_, "order": _rotated(measured.live, round_)}
            for name in row["order"]:
                rate = await measured.guarded(name, f"round {round_}", partial(_pass, sessions[name], calls))
                if rate is not None:
                    row[f"{name}_calls_per_s"] = round(rate, 1)
            passes.append(row)
    finally:
        # Last started, first stopped: each session's task groups must exit in reverse order.
        for name, stack in reversed(stacks.items()):
            await measured.guarded(name, "stop", stack.aclose)
    return passes


def _paired(rows: list[dict[str, Any]], mine: str, base: str, key: str, out: str) -> None:
    """Add ``row[out] = mine/base`` to every row with both."""
    for row in rows:
        if f"{mine}_{key}" in row and f"{base}_{key}" in row:
            row[out] = round(row[f"{mine}_{key}"] / row[f"{base}_{key}"], 4)


def _median(rows: list[dict[str, Any]], key: str, failed: bool) -> float | None:
    """The median of ``key`` over ``rows``; None for a target that failed (module invariants)."""
    values = [row[key] for row in rows if key in row]
    return round(statistics.median(values), 4) if values and not failed else None


def _summary(measured: _Run, trials: list[dict[str, Any]], passes: list[dict[str, Any]]) -> dict[str, Any]:
    for mine, prefix in (("sandboxed", ""), ("egress", "egress_")):
        _paired(passes, mine, "plain", "calls_per_s", f"{prefix}calls_ratio")
        _paired(trials, mine, "plain", "start_s", f"{prefix}start_ratio")
    errors = measured.errors
    out: dict[str, Any] = {}
    for name in TARGETS:
        failed = name in errors
        out[f"{name}_calls_per_s"] = _median(passes, f"{name}_calls_per_s", failed)
        out[f"{name}_start_s"] = _median(trials, f"{name}_start_s", failed)
        out[f"{name}_plan_s"] = _median(trials, f"{name}_plan_s", failed)
        if name in errors:
            out[f"{name}_error"] = errors[name]
    for mine, prefix in (("sandboxed", ""), ("egress", "egress_")):
        failed = mine in errors or "plain" in errors
        out[f"{prefix}calls_ratio"] = _median(passes, f"{prefix}calls_ratio", failed)
        out[f"{prefix}start_ratio"] = _median(trials, f"{prefix}start_ratio", failed)
    ratio = out["calls_ratio"]
    out["target_met"] = None if ratio is None else ratio >= TARGET_CALLS_RATIO
    out["rounds"] = passes
    out["starts"] = trials
    return out


def _machine(host: Host, calls: int, rounds: int, starts: int) -> dict[str, Any]:
    """The measurement's size and the machine's facts (the plans' own are under ``plans``)."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    if host.privileged:
        shape = "root gateway: bwrap, then setpriv to the server's own uid"
    else:
        shape = f"user gateway (uid {host.uid}): bwrap in a user namespace"
    return {
        "server": ECHO_MODULE,
        "calls": calls,
        "round_count": rounds,
        "start_count": starts,
        "warmup_calls": WARMUP_CALLS,
        "cores": CORES,
        "cpu_model": model,
        "kernel": os.uname().release,
        "gateway_root": host.privileged,
        "sandbox_shape": shape,
        "bwrap_problem": host.bwrap_problem,
        "seccomp_problem": host.seccomp_problem,
        "egress_problem": host.egress_problem,
        "target_calls_ratio": TARGET_CALLS_RATIO,
    }


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _fmt(value: float | None, spec: str = ".1f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def render(result: dict[str, Any]) -> list[Table]:
    """The result as tables: the targets and their ratios, each round, the machine and the plans."""
    targets = Table(
        title=(
            f"echo server, {result['calls']:,} sequential calls x {result['round_count']} rounds, "
            f"{result['start_count']} starts; medians (ratios: paired, vs plain)"
        )
    )
    for column in ("target", "calls/s", "vs plain", "start s", "vs plain", "plan ms", "plan, network"):
        targets.add_column(column, justify="left" if column in ("target", "plan, network") else "right")
    for name, prefix in (("plain", None), ("sandboxed", ""), ("egress", "egress_")):
        plan = result["plans"].get(name)
        shape = f"{plan['describe']}, {plan['network']}" if plan else ""
        if f"{name}_error" in result:
            shape = f"ERROR {result[f'{name}_error']}"
        targets.add_row(
            name,
            _fmt(result[f"{name}_calls_per_s"]),
            "" if prefix is None else _fmt(result[f"{prefix}calls_ratio"], ".3f", "x"),
            _fmt(result[f"{name}_start_s"], ".3f"),
            "" if prefix is None else _fmt(result[f"{prefix}start_ratio"], ".3f", "x"),
            _fmt(None if result[f"{name}_plan_s"] is None else result[f"{name}_plan_s"] * 1000),
            shape,
        )
    met = {None: "not measured", True: "met", False: "NOT met"}[result["target_met"]]
    targets.caption = f"target: sandboxed >= {result['target_calls_ratio']}x plain calls/s: {met}"

    rounds = Table(title="calls/s per round (order rotates)")
    rounds.add_column("round", justify="right")
    for name in TARGETS:
        rounds.add_column(name, justify="right")
    rounds.add_column("sandboxed/plain", justify="right")
    rounds.add_column("egress/plain", justify="right")
    for row in result["rounds"]:
        rounds.add_row(
            str(row["round"]),
            *(_fmt(row.get(f"{name}_calls_per_s")) for name in TARGETS),
            _fmt(row.get("calls_ratio"), ".3f"),
            _fmt(row.get("egress_calls_ratio"), ".3f"),
        )

    machine = Table(title="machine and plans")
    machine.add_column("fact")
    machine.add_column("value")
    for key in ("cores", "cpu_model", "kernel", "gateway_root", "sandbox_shape"):
        machine.add_row(key, str(result[key]))
    for name, plan in result["plans"].items():
        parts = [f"{k}={plan[k]}" for k in ("sandboxed", "seccomp", "network", "cgroup", "run_as")]
        machine.add_row(
            f"plan {name}", ", ".join(parts) + (f" [{plan['cgroup_problem']}]" * bool(plan["cgroup_problem"]))
        )
    return [targets, rounds, machine]
