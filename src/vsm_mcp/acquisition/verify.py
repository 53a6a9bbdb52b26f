"""Verify that an installed package is a working MCP server, and pin its tool definitions.

One short-lived session, through the fleet's own process control
(`vsm_mcp.fleet.process.spawn`: own process group, killed on exit, dies with
the gateway) running the very `LaunchPlan` the fleet will run (sandboxed as
the spec's sandbox section says) and the SDK's `ClientSession`: the MCP handshake, a non-empty
``tools/list`` (every page), and a ``ping``. The tools as verified become the
server's definition pin (`vsm_mcp.fleet.definitions`: name, title, description,
input and output schema, annotations; the pipeline stores it before the fleet
starts the server), so a later listing that differs (a changed description can
carry an injected instruction, a flipped ``readOnlyHint`` buys retries)
quarantines it.

Invariants: the server process is gone when `verify` returns or raises; a
failure is an `AcquisitionError` at step ``verify`` whose reason says what
went wrong (exited before the handshake, with its last stderr lines; no
tools; no answer to ping; timeout).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types
from mcp import ClientSession
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, ConfigDict, ValidationError

from vsm_mcp.errors import AcquisitionError, SandboxError
from vsm_mcp.fleet.definitions import digest
from vsm_mcp.fleet.process import spawn
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.sandbox import LaunchPlan

#: Handshake deadline for a freshly installed server (Node and Python start in well under 10 s here;
#: the first start of a venv also compiles bytecode).
VERIFY_START_TIMEOUT_S = 60.0
#: One ping must come back within this; the fleet's S3* probe uses 5 s too.
VERIFY_PING_TIMEOUT_S = 5.0
#: After a failed check, how long to wait for the process to exit (its stderr then explains more).
EXIT_GRACE_S = 0.5
#: stderr lines quoted in the reason of a failed start.
STDERR_TAIL = 3

_CLIENT_INFO = types.Implementation(name="vsm-mcp-verify", version="0.1.0")


class _Raw(BaseModel):
    model_config = ConfigDict(extra="allow")


@dataclass(frozen=True, slots=True)
class Verification:
    """What a verified server offers, and how it answered."""

    server_name: str
    server_version: str
    protocol_version: str
    tools: tuple[dict[str, Any], ...]
    pins: Mapping[str, str]
    handshake_s: float
    ping_ms: float


def pin_tools(tools: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Tool name -> the digest of its pinned definition (`vsm_mcp.fleet.definitions.digest`)."""
    return {str(t.get("name")): digest(t) for t in tools}


def _stderr_tail(lines: deque[str]) -> str:
    kept = [line.strip() for line in lines if line.strip()][-STDERR_TAIL:]
    return (" | ".join(kept))[-400:] if kept else "no stderr output"


async def verify(
    spec: ServerSpec, plan: LaunchPlan | None = None, *, start_timeout_s: float = VERIFY_START_TIMEOUT_S
) -> Verification:
    """Start ``spec`` once (as ``plan`` when given), check it speaks MCP and has tools, pin them, stop it.

    Raises:
        AcquisitionError: (step ``verify``) the server did not start, answer, list tools or ping.
    """
    stderr: deque[str] = deque(maxlen=200)
    outcome: Verification | None = None
    failure = ""
    try:
        async with (
            spawn(spec, stderr, plan=plan) as (read, write, child),
            anyio.create_task_group() as tg,
        ):

            async def watch_exit() -> None:
                nonlocal failure
                await child.gone.wait()
                await anyio.sleep(0.05)  # let the stderr pump take the last lines
                failure = f"the server exited before answering ({_stderr_tail(stderr)})"
                tg.cancel_scope.cancel()

            async def check() -> None:
                nonlocal outcome, failure
                result = await _check(spec, read, write, start_timeout_s)
                if isinstance(result, Verification):
                    outcome = result
                    tg.cancel_scope.cancel()
                    return
                failure = result
                # A closed connection is usually the process dying: let watch_exit say why.
                with anyio.move_on_after(EXIT_GRACE_S):
                    await child.gone.wait()
                    return
                tg.cancel_scope.cancel()

            tg.start_soon(watch_exit)
            tg.start_soon(check)
    except (OSError, SandboxError) as exc:
        raise AcquisitionError("verify", f"cannot start {spec.command}: {exc}") from exc
    if outcome is None:
        raise AcquisitionError("verify", failure or "the server stopped during verification")
    return outcome


async def _check(spec: ServerSpec, read: Any, write: Any, start_timeout_s: float) -> Verification | str:
    """The checks of one session; a failure is returned as its reason (raising inside the
    session's task group would come out wrapped in an exception group)."""
    started = time.monotonic()
    async with ClientSession(read, write, client_info=_CLIENT_INFO) as session:
        try:
            with anyio.fail_after(start_timeout_s):
                init = await session.initialize()
        except TimeoutError:
            return f"no MCP handshake within {start_timeout_s:g}s: not an MCP server?"
        except (MCPError, ValidationError, RuntimeError) as exc:
            return f"MCP handshake failed: {exc}"
        handshake_s = time.monotonic() - started
        tools: list[dict[str, Any]] = []
        try:
            with anyio.fail_after(start_timeout_s):
                cursor: str | None = None
                for _ in range(100):  # a server that paginates forever cannot hang verification
                    page = await session.send_request(
                        types.Request[Any, Any](
                            method="tools/list", params={"cursor": cursor} if cursor else None
                        ),
                        _Raw,
                    )
                    extra = page.model_extra or {}
                    tools.extend(t for t in extra.get("tools", []) if isinstance(t, dict))
                    cursor = extra.get("nextCursor")
                    if not cursor:
                        break
        except (TimeoutError, MCPError, ValidationError) as exc:
            return f"tools/list failed: {exc or type(exc).__name__}"
        if not tools:
            return "the server lists no tools"
        ping_started = time.monotonic()
        try:
            with anyio.fail_after(VERIFY_PING_TIMEOUT_S):
                await session.send_ping()
        except (TimeoutError, MCPError) as exc:
            return f"no answer to ping within {VERIFY_PING_TIMEOUT_S:g}s ({exc or 'timeout'})"
        ping_ms = (time.monotonic() - ping_started) * 1000
    return Verification(
        server_name=init.server_info.name,
        server_version=init.server_info.version,
        protocol_version=str(init.protocol_version),
        tools=tuple(tools),
        pins=pin_tools(tools),
        handshake_s=handshake_s,
        ping_ms=ping_ms,
    )
