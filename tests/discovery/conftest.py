"""A real local HTTP server speaking the official MCP registry's documented ``/v0.1/servers`` format."""

from __future__ import annotations

import io
import socket
import tarfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# uvicorn starts in well under a second; the machine is shared, so allow more
SERVER_START_TIMEOUT_S = 10.0


def registry_item(
    name: str, description: str, status: str = "active", npm: str | None = None
) -> dict[str, Any]:
    server: dict[str, Any] = {
        "$schema": "https://static.modelcontextprotocol.io/schemas/2025-10-17/server.schema.json",
        "name": name,
        "description": description,
        "version": "1.0.0",
        "repository": {"url": f"https://github.com/{name.rsplit('/', maxsplit=1)[-1]}", "source": "github"},
    }
    if npm:
        server["packages"] = [
            {
                "registryType": "npm",
                "registryBaseUrl": "https://registry.npmjs.org",
                "identifier": npm,
                "version": "1.0.0",
                "transport": {"type": "stdio"},
            }
        ]
    meta = {
        "io.modelcontextprotocol.registry/official": {
            "status": status,
            "publishedAt": "2025-10-01T00:00:00Z",
            "updatedAt": "2025-10-01T00:00:00Z",
            "isLatest": True,
        }
    }
    return {"server": server, "_meta": meta}


@dataclass
class RegistryFixture:
    items: list[dict[str, Any]]
    url: str = ""
    mode: str = "ok"  # "ok" | "error" | "malformed"
    requests: list[dict[str, str]] = field(default_factory=list)

    async def servers(self, request: Request) -> Response:
        params = dict(request.query_params)
        self.requests.append(params)
        if self.mode == "error":
            return JSONResponse({"title": "Internal Server Error", "status": 500}, status_code=500)
        if self.mode == "malformed":
            return JSONResponse({"items": []})
        items = self.items
        search = params.get("search", "").lower()
        if search:
            items = [
                i
                for i in items
                if search in i["server"]["name"].lower() or search in i["server"]["description"].lower()
            ]
        start = 0
        if "cursor" in params:
            names = [i["server"]["name"] for i in items]
            start = names.index(params["cursor"]) + 1
        limit = int(params.get("limit", "30"))
        page = items[start : start + limit]
        metadata: dict[str, Any] = {"count": len(page)}
        if start + limit < len(items):
            metadata["nextCursor"] = page[-1]["server"]["name"]
        return JSONResponse({"servers": page, "metadata": metadata})


@asynccontextmanager
async def serve_registry(items: list[dict[str, Any]]) -> AsyncIterator[RegistryFixture]:
    """Serve ``items`` on a free loopback port until the block exits."""
    fixture = RegistryFixture(items)
    started = anyio.Event()

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        started.set()
        yield

    app = Starlette(routes=[Route("/v0.1/servers", fixture.servers)], lifespan=lifespan)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    fixture.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="on"))
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve, [sock])
        with anyio.fail_after(SERVER_START_TIMEOUT_S):
            await started.wait()
        try:
            yield fixture
        finally:
            server.should_exit = True
    sock.close()


def npm_tarball(files: Mapping[str, str | bytes]) -> bytes:
    """A gzipped npm-style tarball holding ``files`` under ``package/``, in the order given."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
