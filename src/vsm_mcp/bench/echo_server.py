"""The downstream server of `vsm-mcp bench gateway`: one ``echo`` tool on the SDK's low-level Server.

Deliberately lean (no schema inference, no argument models), so the benchmark
measures the proxies, not the server. Run: ``python -m vsm_mcp.bench.echo_server [--extra-tools N]``.
"""

from __future__ import annotations

import sys
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

ECHO_TOOL: dict[str, Any] = {
    "name": "echo",
    "description": "Return the text unchanged.",
    "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    "annotations": {"readOnlyHint": True},
}


def build(extra_tools: int = 0) -> Server[Any]:
    """The echo server; ``extra_tools`` more tools (``echo_1``...) that echo too, to weigh a catalog."""
    tools = [ECHO_TOOL] + [{**ECHO_TOOL, "name": f"echo_{i}"} for i in range(1, extra_tools + 1)]

    async def list_tools(ctx: ServerRequestContext[Any, Any], params: Any) -> dict[str, Any]:
        return {"tools": tools}

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> dict[str, Any]:
        text = str((params.arguments or {}).get("text", ""))
        return {"content": [{"type": "text", "text": text}], "isError": False}

    server: Server[Any] = Server("bench-echo", version="1")
    server.add_request_handler("tools/list", types.PaginatedRequestParams, list_tools)
    server.add_request_handler("tools/call", types.CallToolRequestParams, call_tool)
    return server


async def main() -> None:
    extra = int(sys.argv[sys.argv.index("--extra-tools") + 1]) if "--extra-tools" in sys.argv else 0
    server = build(extra)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
