"""A floor for `vsm-mcp bench gateway`: the least a proxy that reads what it relays can do.

``python -m vsm_mcp.bench.relay_floor CMD ARGS...`` starts ``CMD`` and relays
newline-delimited JSON-RPC between this process's stdin/stdout and the child,
parsing every message with the SDK's types, giving requests an id of its own
(and answers back the caller's), and serialising every message again, on the
event loop the gateway uses by default. No routing, no accounting, no
timeouts, no supervision: whatever the gateway costs beyond this floor is
what those cost. Never used to serve anything.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import os
import sys

import mcp_types as types

_PARSE = types.jsonrpc_message_adapter
#: Longest line relayed (as the gateway's own limit).
MAX_LINE_BYTES = 64 * 1024 * 1024


def _line(message: types.JSONRPCMessage) -> bytes:
    return message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"


async def relay(argv: list[str]) -> None:
    loop = asyncio.get_running_loop()
    child = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=MAX_LINE_BYTES
    )
    assert child.stdin is not None and child.stdout is not None
    reader = asyncio.StreamReader(limit=MAX_LINE_BYTES)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", 0))
    out, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(1, "wb", 0))
    callers: dict[str, types.RequestId] = {}
    ids = itertools.count(1)

    async def upstream() -> None:
        assert child.stdin is not None
        while line := await reader.readline():
            message = _PARSE.validate_json(line, by_name=False)
            if isinstance(message, types.JSONRPCRequest):
                own = f"floor-{next(ids)}"
                callers[own] = message.id
                message = message.model_copy(update={"id": own})
            child.stdin.write(_line(message))
        child.stdin.close()

    async def downstream() -> None:
        assert child.stdout is not None
        while line := await child.stdout.readline():
            message = _PARSE.validate_json(line, by_name=False)
            if isinstance(message, types.JSONRPCResponse | types.JSONRPCError) and isinstance(
                message.id, str
            ):
                caller = callers.pop(message.id, None)
                if caller is not None:
                    message = message.model_copy(update={"id": caller})
            out.write(_line(message))

    await asyncio.gather(upstream(), downstream())
    await child.wait()


def main() -> None:
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        uvloop.run(relay(sys.argv[1:]))
    else:
        asyncio.run(relay(sys.argv[1:]))


if __name__ == "__main__":
    main()
