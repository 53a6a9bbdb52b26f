"""What lasts one start of a unit: its process or HTTP connection, its SDK session, its lane.

`vsm_mcp.fleet.unit.Unit` is what lasts across restarts (spec, sandbox
policy, breaker, back-off, crash loop, counters, catalog, quarantine); each
start opens one `Connection` with `connect` and drops it when the server goes
away. Invariants:

* a connection is opened fully (transport, dispatcher, SDK session, MCP
  handshake within the spec's start timeout) or not at all: leaving
  `connect`, by any way, closes all of it (a stdio server's process group is
  killed);
* a stdio connection keeps its line framing (`wire`), on which the unit opens
  its express lane once the server's tools are reviewed; an HTTP connection
  has neither;
* nothing here outlives the start, so nothing of one start can leak into the
  next (a lane's calls, a dead session, a cgroup's counters).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp import ClientSession
from mcp.client.session import MessageHandlerFnT
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
from mcp.shared.message import SessionMessage

from vsm_mcp.fleet.express import ExpressLane
from vsm_mcp.fleet.process import ChildProcess, spawn
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.fleet.wire import LineReader, LineWriter
from vsm_mcp.sandbox.launch import LaunchPlan

_CLIENT_INFO = types.Implementation(name="vsm-mcp", version="0.1.0")


@dataclass(frozen=True, slots=True)
class SessionHandlers:
    """The unit's answers to what its server sends (None: the SDK's defaults)."""

    message: MessageHandlerFnT
    sampling: Any = None
    elicitation: Any = None
    roots: Any = None


@dataclass(eq=False)
class Connection:
    """One start's connection to a server (module docstring)."""

    session: ClientSession
    #: Forwarded requests go through it as wire dicts; the session owns handshake, pings, callbacks.
    dispatcher: JSONRPCDispatcher[Any]
    #: Set when the server's process has exited (stdio); an HTTP connection never sets it.
    gone: anyio.Event
    child: ChildProcess | None = None
    #: The stdio pipe's line framing (None over HTTP).
    wire: tuple[LineReader, LineWriter] | None = None
    #: The express lane, opened on `wire` once the server's tools are reviewed.
    lane: ExpressLane | None = None
    #: (OOM kills, refused forks) of this launch's cgroup already reported (a cgroup per launch).
    limits_seen: tuple[int, int] = field(default=(0, 0))


@asynccontextmanager
async def connect(
    spec: ServerSpec,
    handlers: SessionHandlers,
    *,
    plan: LaunchPlan | None,
    stderr: deque[str],
    log_path: Path | None,
) -> AsyncIterator[Connection]:
    """Open ``spec`` (its secrets filled in) and shake hands; a stdio server launched as ``plan``
    says, its stderr kept in ``stderr`` and ``log_path``.

    Raises:
        OSError, SandboxError: the server could not be launched.
        MCPError, TimeoutError: it did not complete the MCP handshake in time.
    """
    async with AsyncExitStack() as stack:
        read: ReadStream[SessionMessage | Exception]
        write: WriteStream[SessionMessage]
        child: ChildProcess | None = None
        wire: tuple[LineReader, LineWriter] | None = None
        if spec.transport == "stdio":
            assert plan is not None
            line_read, line_write, process = await stack.enter_async_context(
                spawn(spec, stderr, log_path, plan=plan)
            )
            read, write, wire, child = line_read, line_write, (line_read, line_write), process
            gone = process.gone
        else:
            assert spec.url is not None
            http = await stack.enter_async_context(create_mcp_http_client(headers=spec.headers or None))
            read, write = await stack.enter_async_context(streamable_http_client(spec.url, http_client=http))
            gone = anyio.Event()
        dispatcher: JSONRPCDispatcher[Any] = JSONRPCDispatcher(read, write)
        session = await stack.enter_async_context(
            ClientSession(
                dispatcher=dispatcher,
                client_info=_CLIENT_INFO,
                message_handler=handlers.message,
                sampling_callback=handlers.sampling,
                elicitation_callback=handlers.elicitation,
                list_roots_callback=handlers.roots,
            )
        )
        with anyio.fail_after(spec.start_timeout_s):
            await session.initialize()
        yield Connection(session, dispatcher, gone, child, wire)
