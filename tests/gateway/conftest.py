"""Two faces a test client reaches the gateway by, so a behaviour is shown on both paths a call takes.

* ``sdk``: the SDK's in-process pairing with the gateway's server (every call takes the SDK's
  full request path);
* ``stdio``: the stdio face (`serve_streams`) over real OS pipes, where plain tool calls take
  the express lane (`vsm_mcp.gateway.express`).

Fixture ``connect(gateway, **client_kwargs)`` opens an SDK `Client` on the face under test.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client

from vsm_mcp.gateway import Gateway
from vsm_mcp.gateway.stdio import pipe_streams
from vsm_mcp.gateway.transport import serve_streams

Connect = Callable[..., AbstractAsyncContextManager[Client]]


@asynccontextmanager
async def _sdk_face(gateway: Gateway, **client: Any) -> AsyncIterator[Client]:
    async with Client(gateway.server, mode="legacy", **client) as connected:
        yield connected


@asynccontextmanager
async def stdio_face(gateway: Gateway, **client: Any) -> AsyncIterator[Client]:
    """An SDK client on the gateway's stdio face over OS pipes (handshake era unless ``mode`` says)."""
    to_gateway_r, to_gateway_w = os.pipe()
    to_client_r, to_client_w = os.pipe()

    async def serve() -> None:
        async with pipe_streams(to_gateway_r, to_client_w) as (read, write):
            await serve_streams(gateway, read, write)

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        # The client's end closing is the client going away: the face then ends by itself.
        client.setdefault("mode", "legacy")
        async with Client(
            pipe_streams(to_client_r, to_gateway_w, expects=types.JSONRPCResponse), **client
        ) as connected:
            yield connected


@pytest.fixture(params=["sdk", "stdio"])
def face(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def connect(face: str) -> Connect:
    return _sdk_face if face == "sdk" else stdio_face
