"""Hostile frames for the gateway's faces, and what the SDK makes of each (the fuzz tests' oracle).

A frame is bytes: one stdio line or one HTTP body. `frames` draws them from
every kind a hostile or broken client sends: random bytes and text, invalid
JSON and UTF-8, byte-level mutations of good messages, wrong types, huge and
odd ids, unknown methods, notifications carrying ids, responses sent as
requests, batches (JSON arrays), deep nesting, long frames (up to
`LONG_FRAME_BYTES`), and tool calls with hostile params.

`parse` is the oracle: the SDK's own JSON-RPC union
(``mcp_types.jsonrpc_message_adapter``). A frame it refuses is garbage
(silence on stdio, HTTP 400 with a JSON-RPC error); a request must be
answered exactly once, with ``METHOD_NOT_FOUND`` when its method is not one a
client may send (`CLIENT_METHODS`); anything else gets no answer.
Generated request ids never start with `CANCEL_PREFIX` and stay within
±2**70, so a generated ``notifications/cancelled`` never names one of them.
"""

from __future__ import annotations

import json
import typing
from typing import Any

import mcp_types as types
from hypothesis import strategies as st
from pydantic import ValidationError

#: Every request method a client may send (the SDK's `ClientRequest` union, tasks included).
CLIENT_METHODS: frozenset[str] = frozenset(
    method
    for request in (
        *typing.get_args(types.ClientRequest),
        types.CancelTaskRequest,
        types.GetTaskRequest,
        types.ListTasksRequest,
        types.GetTaskPayloadRequest,
    )
    for method in typing.get_args(request.model_fields["method"].annotation)
)
NOTIFICATION_METHODS = (
    "notifications/cancelled",
    "notifications/initialized",
    "notifications/progress",
    "notifications/roots/list_changed",
    "notifications/message",
)
#: Tools a fuzzed call may name: real ones (the probe's quick tools, the gateway's own) and unknown ones.
#: The probe's slow, hanging and crashing tools are never named by the fuzz.
TOOL_NAMES = ("probe__echo", "probe__add", "vsm_status", "vsm_search_tools", "vsm_call_tool", "nope", "")
CANCEL_PREFIX = "cancel-"
#: The longest frame the fuzz draws (oversized ones are sent on purpose, apart).
LONG_FRAME_BYTES = 200_000
MAX_NESTING = 20_000

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=16)
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
request_ids = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=30).filter(lambda s: not s.startswith(CANCEL_PREFIX)),
    st.integers(min_value=1, max_value=20_000).map(lambda n: "i" * n),  # long string ids
)
#: Ids a request cannot carry: null, floats, booleans, arrays, objects.
_bad_ids = st.one_of(
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_unknown_methods = st.one_of(
    st.text(max_size=24).filter(lambda m: "/" not in m and m not in CLIENT_METHODS),
    st.text(max_size=24).map(lambda m: "x-unknown/" + m),
)
methods = st.one_of(
    st.sampled_from(sorted(CLIENT_METHODS - {"initialize"})),
    _unknown_methods,
    st.sampled_from(NOTIFICATION_METHODS),
)
_cancel_ids = st.one_of(
    st.text(max_size=20).map(lambda s: CANCEL_PREFIX + s),
    st.integers(min_value=2**71, max_value=2**72),
)


def _requests(method: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"jsonrpc": st.just("2.0"), "id": request_ids, "method": method},
        optional={"params": _objects},
    )


_wrong_types = st.fixed_dictionaries(
    {
        "jsonrpc": st.sampled_from(["2.0", "1.0", "", 2.0, 2, None, True]),
        "method": st.one_of(methods, st.integers(), st.none(), st.lists(st.text(max_size=4), max_size=2)),
    },
    optional={
        "id": request_ids | _bad_ids,
        "params": json_values,
        "result": json_values,
        "error": json_values,
    },
)
_notifications_with_ids = st.fixed_dictionaries(
    {
        "jsonrpc": st.just("2.0"),
        "id": request_ids | _bad_ids,
        "method": st.sampled_from(NOTIFICATION_METHODS),
    },
    optional={"params": _objects},
)
_cancels = st.fixed_dictionaries(
    {
        "jsonrpc": st.just("2.0"),
        "method": st.just("notifications/cancelled"),
        "params": st.fixed_dictionaries({"requestId": _cancel_ids}, optional={"reason": json_values}),
    }
)
_error_objects = st.fixed_dictionaries(
    {"code": st.integers(), "message": st.text(max_size=20)}, optional={"data": json_values}
)
_responses = st.one_of(
    st.fixed_dictionaries({"jsonrpc": st.just("2.0"), "id": request_ids | _bad_ids, "result": json_values}),
    st.fixed_dictionaries({"jsonrpc": st.just("2.0"), "id": request_ids | _bad_ids, "error": _error_objects}),
    st.fixed_dictionaries(
        {"jsonrpc": st.just("2.0"), "id": request_ids, "method": methods},
        optional={"result": json_values, "error": _error_objects},
    ),
)
_tool_calls = st.fixed_dictionaries(
    {
        "jsonrpc": st.just("2.0"),
        "id": request_ids,
        "method": st.just("tools/call"),
        "params": st.fixed_dictionaries(
            {"name": st.sampled_from(TOOL_NAMES) | st.text(max_size=12)},
            optional={
                "arguments": _objects | json_values,
                "_meta": st.fixed_dictionaries({"progressToken": request_ids | _bad_ids}) | json_values,
                "task": json_values,
            },
        ),
    }
)
#: A handshake again (or, over HTTP without a session, a new session): odd versions, capabilities, clients.
_initializes = st.fixed_dictionaries(
    {
        "jsonrpc": st.just("2.0"),
        "id": request_ids,
        "method": st.just("initialize"),
        "params": st.fixed_dictionaries(
            {
                "protocolVersion": st.sampled_from(
                    ["2024-11-05", "2025-06-18", "2025-11-25", "2026-07-28", "1.0"]
                )
                | json_values,
                "capabilities": _objects,
                "clientInfo": st.fixed_dictionaries(
                    {"name": st.text(max_size=8), "version": st.text(max_size=8)}
                )
                | json_values,
            }
        ),
    }
)
messages = st.one_of(
    _requests(methods),
    _initializes,
    _requests(_unknown_methods),
    _wrong_types,
    _notifications_with_ids,
    _cancels,
    _responses,
    _tool_calls,
)


def dump(message: object) -> bytes:
    return json.dumps(message).encode()


def nested(depth: int, opener: str) -> bytes:
    """A ping whose params hold ``depth`` levels of arrays or objects."""
    inner = "[" * depth + "]" * depth if opener == "[" else '{"a":' * depth + "1" + "}" * depth
    return b'{"jsonrpc":"2.0","id":"deep","method":"ping","params":{"x":' + inner.encode() + b"}}"


def _long(size: int) -> bytes:
    return dump({"jsonrpc": "2.0", "id": "long", "method": "tools/list", "params": {"pad": "a" * size}})


def _mutate(frame: bytes, at: int, patch: bytes, how: str) -> bytes:
    at %= len(frame) + 1
    if how == "insert":
        return frame[:at] + patch + frame[at:]
    if how == "replace":
        return frame[:at] + patch + frame[at + len(patch) :]
    return frame[:at]  # truncated


_INVALID_UTF8 = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82", b"\x80")
_ODDITIES = (
    b"",
    b"   ",
    b"null",
    b"true",
    b"0",
    b'"ping"',
    b"{}",
    b"[]",
    b"[[]]",
    b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]',
    b'{"jsonrpc":"2.0","id":NaN,"method":"ping"}',
    b'{"jsonrpc":"2.0","id":Infinity,"method":"ping"}',
    b'{"jsonrpc":"2.0","id":1e999,"method":"ping"}',
    b'{"jsonrpc":"2.0","id":' + b"9" * 400 + b',"method":"ping"}',
    b'{"jsonrpc":"2.0","id":-0,"method":"ping"}',
    b'\xef\xbb\xbf{"jsonrpc":"2.0","id":"bom","method":"ping"}',
    b'{"jsonrpc":"2.0","id":"dup","id":"dup2","method":"ping","method":"x-unknown/dup"}',
    b'{"jsonrpc":"2.0","id":"trail","method":"ping"} trailing',
    b'{"jsonrpc":"2.0","id":"trail2","method":"ping"}{"jsonrpc":"2.0","id":"trail3","method":"ping"}',
    b'{"jsonrpc":"2.0","id":"\\ud800","method":"ping"}',
    b'{"jsonrpc":"2.0","id":"nul","method":"ping\\u0000"}',
    b'{"jsonrpc":"2.0","id":"ctl","method":"pi\x01ng"}',
    b'{"jsonrpc":"2.0","id":"open","method":"ping"',
    b'{"jsonrpc":"2.0","method":"ping","params":{"_meta":{"progressToken":'
    + b"[" * 300
    + b"]" * 300
    + b"}}}",
    b"\x00" * 64,
)
frames = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=80).map(str.encode),
    messages.map(dump),
    messages.map(dump),
    st.lists(messages, max_size=5).map(dump),  # batches
    st.tuples(
        messages.map(dump),
        st.integers(min_value=0),
        st.binary(min_size=1, max_size=4),
        st.sampled_from(["insert", "replace", "truncate"]),
    ).map(lambda t: _mutate(*t)),
    st.tuples(
        messages.map(dump),
        st.integers(min_value=0),
        st.sampled_from(_INVALID_UTF8),
        st.sampled_from(["insert", "replace"]),
    ).map(lambda t: _mutate(*t)),
    st.tuples(st.integers(min_value=1, max_value=MAX_NESTING), st.sampled_from("[{")).map(
        lambda t: nested(*t)
    ),
    st.integers(min_value=0, max_value=LONG_FRAME_BYTES).map(_long),
    st.sampled_from(_ODDITIES),
)


def parse(frame: bytes) -> types.JSONRPCMessage | None:
    """What the SDK makes of ``frame``: a JSON-RPC message, or None for garbage."""
    try:
        return types.jsonrpc_message_adapter.validate_json(frame, by_name=False)
    except ValidationError:
        return None


def id_key(request_id: object) -> tuple[str, object]:
    """A request id as a dict key (1 and "1" are different ids; True is no id at all)."""
    return (type(request_id).__name__, request_id)


def cancelled_ids(message: types.JSONRPCMessage) -> tuple[str, object] | None:
    """The id a ``notifications/cancelled`` names, if ``message`` is one that names a valid id."""
    if isinstance(message, types.JSONRPCNotification) and message.method == "notifications/cancelled":
        request_id = (message.params or {}).get("requestId")
        if isinstance(request_id, str | int) and not isinstance(request_id, bool):
            return id_key(request_id)
    return None
