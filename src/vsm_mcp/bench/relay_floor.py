"""A floor for `vsm-mcp bench gateway`: the least a proxy that reads what it relays can do.

``python -m vsm_mcp.bench.relay_floor CMD ARGS...`` starts ``CMD`` and relays
newline-delimited JSON-RPC between this process's stdin/stdout and the child
with the gateway's own pipe machinery (`vsm_mcp.fleet.wire`: a `LineReader`
protocol per side whose hook takes every message, a `LineWriter` per side),
parsing every message with the SDK's types, giving requests an id of its own
(and answers back the caller's) and serialising every message again, on the
event loop the gateway uses by default. No routing, no accounting, no
timeouts, no supervision, no SDK session: whatever the gateway costs beyond
this floor is what those cost. Never used to serve anything.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import os
import sys

import mcp_types as types

from vsm_mcp.fleet.wire import LineWriter, read_pipe, write_pipe


async def relay(argv: list[str]) -> None:
    child_out, child_out_w = os.pipe()
    child = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE, stdout=child_out_w)
    os.close(child_out_w)
    assert child.stdin is not None
    to_child = LineWriter(child.stdin)
    _, to_client = await write_pipe(os.fdopen(1, "wb", buffering=0))
    callers: dict[str, types.RequestId] = {}
    ids = itertools.count(1)

    def upstream(message: types.JSONRPCMessage) -> bool:
        if isinstance(message, types.JSONRPCRequest):
            own = f"floor-{next(ids)}"
            callers[own] = message.id
            message = types.JSONRPCRequest(
                jsonrpc="2.0", id=own, method=message.method, params=message.params
            )
        to_child.send_nowait(message)
        return True

    def downstream(message: types.JSONRPCMessage) -> bool:
        if isinstance(message, types.JSONRPCResponse | types.JSONRPCError) and isinstance(message.id, str):
            caller = callers.pop(message.id, None)
            if caller is not None:
                message = message.model_copy(update={"id": caller})
        to_client.send_nowait(message)
        return True

    client_transport, from_client = await read_pipe(
        os.fdopen(0, "rb", buffering=0), expects=types.JSONRPCRequest
    )
    child_transport, from_child = await read_pipe(
        os.fdopen(child_out, "rb", buffering=0), expects=types.JSONRPCResponse
    )
    from_client.intercept = upstream
    from_child.intercept = downstream
    try:
        async for _ in from_client:  # the hook takes every message; this waits for the client's EOF
            pass
        await to_child.aclose()
        child.stdin.close()
        async for _ in from_child:
            pass
        await to_client.aclose()
        await child.wait()
    finally:
        client_transport.close()
        child_transport.close()


def main() -> None:
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        uvloop.run(relay(sys.argv[1:]))
    else:
        asyncio.run(relay(sys.argv[1:]))


if __name__ == "__main__":
    main()
