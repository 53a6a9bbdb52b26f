"""A client of the gateway's HTTP face that sends its bearer token: `bearer_client`.

The SDK's `Client` takes a URL or a transport; the token rides on the
transport's HTTP client as ``Authorization: Bearer <token>`` on every request
(the POSTs, the SSE GET streams, the DELETE that ends the session).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def bearer_headers(token: str) -> dict[str, str]:
    """The one header the HTTP face requires."""
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def bearer_client(url: str, token: str, **options: Any) -> AsyncIterator[Client]:
    """An SDK `Client` of ``url`` presenting ``token``; ``options`` are `Client`'s (mode, callbacks...)."""
    http = create_mcp_http_client(headers=bearer_headers(token))
    async with http, Client(streamable_http_client(url, http_client=http), **options) as client:
        yield client
