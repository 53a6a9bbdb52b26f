"""Hostile lines at a real ``vsm-mcp serve --stdio``: only JSON-RPC answers, bounded memory, still working.

Property-based (hypothesis, derandomized, no example database: CI repeats the
same frames). Each example is a batch of `FRAMES` frames from `hostile_frames`
sent down one pipe to one long-lived gateway, followed by a sentinel ping.
Every line the gateway writes must be a JSON-RPC message: each request the
SDK can parse answered exactly once (an unknown method with
``METHOD_NOT_FOUND``; before the handshake every method but ping refused),
garbage, notifications and responses never answered (the SDK's stdio
transport drops what it cannot parse), and only notifications besides.
Afterwards a line over `MAX_LINE_BYTES` is dropped whole, a failed call with
huge arguments is dead-lettered as a digest, a real tool call is answered,
the gateway's peak RSS stays under `PEAK_RSS_BOUND_BYTES`, the state
database stays small and stderr holds no traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import anyio
import mcp_types as types
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from tests.gateway.hostile_frames import CLIENT_METHODS, cancelled_ids, frames, id_key, parse

from vsm_mcp.core.payload import MAX_STORED_PAYLOAD_BYTES
from vsm_mcp.fleet.wire import MAX_LINE_BYTES
from vsm_mcp.store import SqliteStore

pytestmark = pytest.mark.slow

PROBE = Path(__file__).resolve().parents[1] / "fixtures" / "servers" / "probe_server.py"
CLI = [sys.executable, "-c", "from vsm_mcp.cli.app import main; main()"]
VERSION = "2025-11-25"
#: Frames per batch (one example); every batch goes down the pipe at once. Past ~60 an example
#: outgrows hypothesis's choice buffer, and most drawn examples are thrown away (minutes of drawing).
FRAMES = 50
#: Batches after the handshake (8,000 frames) and before it (1,000 frames).
EXAMPLES = 160
EARLY_EXAMPLES = 20
#: The gateway starts at ~100 MiB; the capability matcher (the catalog's index, the WordLlama
#: model and the catalog's vectors) adds ~95 MiB (`vsm-mcp bench match` measures it), and the oversized line fills one
#: `MAX_LINE_BYTES` buffer before it is dropped: it peaks at 300-330 MiB here (two such buffers
#: would break the bound).
PEAK_RSS_BOUND_BYTES = 384 * 1024 * 1024
#: One failed call's huge arguments must not land in the database whole.
STATE_DB_BOUND_BYTES = 2 * 1024 * 1024
#: Waiting for the next line of a busy but healthy gateway.
ANSWER_TIMEOUT_S = 30.0
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    # No shrinking: every example runs on the same process, so a failure is reported as first found.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
MESSAGE_LINE = types.jsonrpc_message_adapter
#: The codes JSON-RPC reserves (standard and implementation-defined), the only ones a refusal here uses.
JSON_RPC_CODES = (-32768, -32000)


def _rss(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of ``pid``, in bytes."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {name: int(fields[name].split()[0]) * 1024 for name in ("VmRSS", "VmHWM")}


class StdioGateway:
    """A ``vsm-mcp serve --stdio`` process; its stdout lines are collected by a thread."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.stderr_path = state / "stderr.log"
        with self.stderr_path.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [*CLI, "--state-dir", str(state), "serve", "--stdio"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        self.lines: Queue[bytes] = Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def send(self, lines: list[bytes]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"".join(line + b"\n" for line in lines))
        self.proc.stdin.flush()

    def next_line(self) -> bytes:
        try:
            return self.lines.get(timeout=ANSWER_TIMEOUT_S)
        except Empty:
            raise AssertionError(
                f"no line in {ANSWER_TIMEOUT_S} s; gateway exit code: {self.proc.poll()}"
            ) from None

    def stop(self) -> None:
        """Close stdin (the client leaving) and wait for the gateway to exit by itself."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@contextmanager
def stdio_gateway(tmp_path: Path) -> Iterator[StdioGateway]:
    state = tmp_path / "state"
    state.mkdir()
    (state / "config.toml").write_text(
        f'[sandbox]\nmode = "off"\n[servers.probe]\ncommand = {json.dumps(sys.executable)}\n'
        f"args = [{json.dumps(str(PROBE))}]\n"
    )
    gateway = StdioGateway(state)
    try:
        yield gateway
    finally:
        gateway.proc.kill()
        gateway.proc.wait(timeout=10)
        for stream in (gateway.proc.stdin, gateway.proc.stdout):
            if stream is not None:
                stream.close()


class Conversation:
    """What was sent to one gateway and what it must answer; checks every line it writes.

    ``handshaken``: False while the client has not initialized (every method but ping is refused then).
    """

    def __init__(self, gateway: StdioGateway, *, handshaken: bool) -> None:
        self.gateway = gateway
        self.handshaken = handshaken
        self.pending: Counter[tuple[str, object]] = Counter()
        self.methods: dict[tuple[str, object], set[str]] = {}
        self.frames: dict[tuple[str, object], bytes] = {}
        #: Ids a client cancelled: their answer may come, or not, now or later.
        self.optional: set[tuple[str, object]] = set()
        self.stats: Counter[str] = Counter()
        self._sentinels = 0

    def exchange(self, batch: list[bytes]) -> None:
        """Send ``batch`` and a sentinel ping; take lines until every request in it is answered."""
        lines = [frame.replace(b"\n", b" ") for frame in batch]
        for line in lines:
            self._expect(line)
        self.stats["frames"] += len(batch)
        self._sentinels += 1
        sentinel = f"sentinel-{self._sentinels}"
        self.pending[id_key(sentinel)] += 1
        self.methods[id_key(sentinel)] = {"ping"}
        self.frames[id_key(sentinel)] = b"(sentinel)"
        self.gateway.send([*lines, b'{"jsonrpc":"2.0","id":"%s","method":"ping"}' % sentinel.encode()])
        while +self.pending:
            self._take(self.gateway.next_line())

    def _expect(self, line: bytes) -> None:
        message = parse(line)
        if message is None:
            self.stats["garbage"] += 1
        elif isinstance(message, types.JSONRPCRequest):
            key = id_key(message.id)
            self.pending[key] += 1
            self.methods.setdefault(key, set()).add(message.method)
            self.frames[key] = line
            self.stats["requests"] += 1
        else:
            self.stats[type(message).__name__] += 1
            cancelled = cancelled_ids(message)
            if cancelled is not None:
                self.optional.add(cancelled)

    def _take(self, line: bytes) -> None:
        message = MESSAGE_LINE.validate_json(line, by_name=False)  # raises on anything not JSON-RPC
        if isinstance(message, types.JSONRPCNotification):
            assert message.method.startswith("notifications/"), line[:300]
            self.stats["notifications out"] += 1
            return
        assert isinstance(message, types.JSONRPCResponse | types.JSONRPCError), f"a request: {line[:300]!r}"
        assert message.id is not None, f"an answer to no request: {line[:300]!r}"
        key = id_key(message.id)
        if self.pending[key] <= 0:
            assert key in self.optional, f"an answer nobody asked for: {line[:300]!r}"
            return
        self.pending[key] -= 1
        if key[1] != f"sentinel-{self._sentinels}":
            self.stats["errors" if isinstance(message, types.JSONRPCError) else "results"] += 1
        context = f"{self.frames[key][:200]!r} -> {line[:300]!r}"
        if isinstance(message, types.JSONRPCError):
            # A JSON-RPC code, never an exception's leak (the SDK answers an unhandled one with code 0).
            assert JSON_RPC_CODES[0] <= message.error.code <= JSON_RPC_CODES[1], context
        (method, *others) = sorted(self.methods[key])
        if others:
            return  # one id for several methods in flight: which one this answers is unknowable
        if method not in CLIENT_METHODS:
            assert isinstance(message, types.JSONRPCError), context
            assert message.error.code == types.METHOD_NOT_FOUND, context
        elif method != "ping" and not self.handshaken:
            assert isinstance(message, types.JSONRPCError), context
            # Refused as the SDK refuses a request before initialize (or one this era has no such method).
            assert message.error.code in (types.INVALID_PARAMS, types.METHOD_NOT_FOUND), context
        elif key[1] == f"sentinel-{self._sentinels}":
            assert isinstance(message, types.JSONRPCResponse) and message.result == {}, context

    def request(self, request_id: str, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one request and return its answer (as a dict), checking every line before it."""
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.gateway.send([json.dumps(message).encode()])
        while True:
            line = self.gateway.next_line()
            answer = json.loads(line)
            if answer.get("id") == request_id:
                MESSAGE_LINE.validate_json(line, by_name=False)
                return dict(answer)
            self._take(line)


def _handshake(conversation: Conversation) -> None:
    answer = conversation.request(
        "init",
        "initialize",
        {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "1"}},
    )
    assert answer["result"]["protocolVersion"] == VERSION
    conversation.gateway.send([b'{"jsonrpc":"2.0","method":"notifications/initialized"}'])
    conversation.handshaken = True


def _echo(conversation: Conversation, text: str) -> dict[str, Any]:
    return conversation.request(
        f"echo-{text}", "tools/call", {"name": "probe__echo", "arguments": {"text": text}}
    )


def _leaves_the_session_uninitialized(frame: bytes) -> bool:
    """Not an ``initialize`` request, nor ``notifications/initialized`` (alone, the SDK's session
    takes that as the end of a handshake it never saw)."""
    message = parse(frame.replace(b"\n", b" "))
    if isinstance(message, types.JSONRPCRequest):
        return message.method != "initialize"
    return not (
        isinstance(message, types.JSONRPCNotification) and message.method == "notifications/initialized"
    )


def test_frames_before_the_handshake_get_refusals_and_the_handshake_still_works(tmp_path: Path) -> None:
    with stdio_gateway(tmp_path) as gateway:
        conversation = Conversation(gateway, handshaken=False)

        handshakes = 0

        @settings(FUZZ, max_examples=EARLY_EXAMPLES)
        @given(batch=st.lists(frames, min_size=FRAMES, max_size=FRAMES))
        def early(batch: list[bytes]) -> None:
            nonlocal handshakes
            kept = [frame for frame in batch if _leaves_the_session_uninitialized(frame)]
            handshakes += len(batch) - len(kept)
            conversation.exchange(kept)

        early()
        assert conversation.stats["frames"] + handshakes == EARLY_EXAMPLES * FRAMES
        _handshake(conversation)
        assert _echo(conversation, "after early frames")["result"]["structuredContent"] == {
            "result": "after early frames"
        }
        assert gateway.proc.poll() is None
        gateway.stop()
    print(f"stdio before the handshake: {dict(conversation.stats)}")
    assert "Traceback" not in gateway.stderr_path.read_text(errors="replace")


def test_hostile_frames_get_only_json_rpc_answers_and_leave_the_gateway_bounded_and_working(
    tmp_path: Path,
) -> None:
    with stdio_gateway(tmp_path) as gateway:
        conversation = Conversation(gateway, handshaken=False)
        _handshake(conversation)
        started = _rss(gateway.proc.pid)

        @FUZZ
        @given(batch=st.lists(frames, min_size=FRAMES, max_size=FRAMES))
        def hostile(batch: list[bytes]) -> None:
            conversation.exchange(batch)

        hostile()
        assert conversation.stats["frames"] == EXAMPLES * FRAMES
        after_fuzz = _rss(gateway.proc.pid)

        # A line one byte over the limit is dropped whole (no answer, not even to its id), and reading goes on.
        oversized = b'{"jsonrpc":"2.0","id":"oversized","method":"ping","params":{"x":"'
        oversized += b"a" * (MAX_LINE_BYTES + 1 - len(oversized) - 3) + b'"}}'
        assert len(oversized) == MAX_LINE_BYTES + 1
        gateway.send([oversized])
        conversation.exchange([])
        after_oversized = _rss(gateway.proc.pid)

        # A call that fails for good (the server dies mid-call) with 8 MiB of arguments is dead-lettered.
        pad = "x" * (8 << 20)
        failed = conversation.request(
            "crash", "tools/call", {"name": "probe__crash", "arguments": {"pad": pad}}
        )
        assert failed["error"]["code"] == types.INTERNAL_ERROR, str(failed)[:300]
        assert _echo(conversation, "still here")["result"]["structuredContent"] == {"result": "still here"}
        assert gateway.proc.poll() is None
        final = _rss(gateway.proc.pid)
        gateway.stop()

    print(
        f"stdio after the handshake: {dict(conversation.stats)}; RSS MiB at start {started['VmRSS'] >> 20}, "
        f"after the fuzz {after_fuzz['VmRSS'] >> 20} (peak {after_fuzz['VmHWM'] >> 20}), after the oversized "
        f"line {after_oversized['VmRSS'] >> 20} (peak {after_oversized['VmHWM'] >> 20}), at the end "
        f"{final['VmRSS'] >> 20} (peak {final['VmHWM'] >> 20})"
    )
    assert final["VmHWM"] < PEAK_RSS_BOUND_BYTES
    stderr = gateway.stderr_path.read_text(errors="replace")
    assert "Traceback" not in stderr, stderr[-3000:]
    database = gateway.state / "state.db"
    db_bytes = sum(path.stat().st_size for path in database.parent.glob("state.db*"))
    assert db_bytes < STATE_DB_BOUND_BYTES

    async def letters() -> list[Any]:
        async with SqliteStore.open(database) as store:
            return await store.dead_letters()

    (letter,) = anyio.run(letters)
    assert (letter.unit, letter.tool) == ("probe", "crash")
    kept = letter.arguments["$vsm_mcp_capped"]
    assert kept["size"] == len(json.dumps({"pad": pad}, separators=(",", ":")))
    assert len(json.dumps(letter.arguments)) < MAX_STORED_PAYLOAD_BYTES
    print(f"stdio state database: {db_bytes} bytes")
