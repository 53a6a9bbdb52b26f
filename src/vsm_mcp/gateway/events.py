"""SSE resumability for the gateway's HTTP face (SEP-1699): a bounded in-memory event store.

The SDK's streamable HTTP transport stores every event it sends on an SSE
stream in an `EventStore` and, when a client reconnects with
``Last-Event-ID``, asks the store to replay what came after. The SDK keys
events by stream id only, and stream ids are request ids (or ``_GET_stream``),
which repeat across sessions; so one store shared by every session would
replay one client's events to another. `EventLog` therefore holds the events,
and each session gets its own `SessionEvents` view, whose stream ids are
prefixed with a scope of its own.

Invariants:

* event ids are decimal strings, increasing by one per stored event across
  all sessions (so they order the log);
* at most `MAX_EVENTS_PER_STREAM` events per stream, and `MAX_EVENTS` and
  `MAX_EVENT_BYTES` (messages as JSON) in all, are kept; the oldest go first,
  so memory stays bounded however long the gateway runs and however large the
  servers' answers (an event larger than the whole budget is not kept, nor
  are the older events of its stream: no replay may skip an event unseen);
* a replay sends only events of the stream the given id belongs to, after
  it, in order, without priming events (they carry no message); it returns
  None for an id that was evicted, never stored, or belongs to another
  session, and then nothing is sent.
"""

from __future__ import annotations

import itertools
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass

from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp_types import JSONRPCMessage

#: A client resumes a stream it lost seconds ago; a long call's progress and log events fit in this.
MAX_EVENTS_PER_STREAM = 256
#: All sessions together, in events ...
MAX_EVENTS = 4096
#: ... and in bytes of the messages as JSON (a few large results must not hold gigabytes).
MAX_EVENT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event as the SDK stored it; ``message`` is None for a priming event."""

    stream: str
    message: JSONRPCMessage | None
    size: int


class EventLog:
    """The events of every session, bounded per stream and in total (see the module invariants)."""

    def __init__(
        self,
        *,
        per_stream: int = MAX_EVENTS_PER_STREAM,
        total: int = MAX_EVENTS,
        total_bytes: int = MAX_EVENT_BYTES,
    ) -> None:
        if per_stream < 1 or total < 1 or total_bytes < 1:
            raise ValueError("event limits must be positive")
        self.per_stream = per_stream
        self.total = total
        self.total_bytes = total_bytes
        #: Bytes of the kept messages, as JSON.
        self.bytes = 0
        self._ids = itertools.count(1)
        self._events: OrderedDict[int, StoredEvent] = OrderedDict()
        self._streams: dict[str, deque[int]] = {}

    def __len__(self) -> int:
        return len(self._events)

    @property
    def streams(self) -> int:
        """Streams with at least one kept event."""
        return len(self._streams)

    def append(self, stream: str, message: JSONRPCMessage | None) -> int:
        """Keep one event of ``stream``; returns its id."""
        event_id = next(self._ids)
        size = len(message.model_dump_json(by_alias=True, exclude_unset=True)) if message is not None else 0
        if size > self.total_bytes:
            # Not kept; nor are its stream's older events, or a replay from one of them would
            # skip it unseen. The other streams keep theirs.
            for older in self._streams.pop(stream, ()):
                self.bytes -= self._events.pop(older).size
            return event_id
        ids = self._streams.setdefault(stream, deque())
        if len(ids) >= self.per_stream:
            self.bytes -= self._events.pop(ids.popleft()).size
        ids.append(event_id)
        self._events[event_id] = StoredEvent(stream, message, size)
        self.bytes += size
        while len(self._events) > self.total or self.bytes > self.total_bytes:
            _, event = self._events.popitem(last=False)
            self.bytes -= event.size
            kept = self._streams[event.stream]
            kept.popleft()  # ids leave a stream in order, so its oldest is the log's oldest
            if not kept:
                del self._streams[event.stream]
        return event_id

    def after(self, event_id: int) -> tuple[str, list[tuple[int, JSONRPCMessage]]] | None:
        """The stream of ``event_id`` and its kept messages after it, oldest first (None: not kept)."""
        anchor = self._events.get(event_id)
        if anchor is None:
            return None
        later = [
            (i, m)
            for i in self._streams[anchor.stream]
            if i > event_id and (m := self._events[i].message) is not None
        ]
        return anchor.stream, later

    def session(self) -> SessionEvents:
        """A view for one new session, with a stream namespace of its own."""
        return SessionEvents(self, uuid.uuid4().hex)


class SessionEvents(EventStore):
    """The SDK's `EventStore` for one session: its streams are ``SCOPE/STREAM`` in the shared log."""

    def __init__(self, log: EventLog, scope: str) -> None:
        self._log = log
        self._prefix = f"{scope}/"

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        return str(self._log.append(self._prefix + stream_id, message))

    async def replay_events_after(
        self, last_event_id: EventId, send_callback: EventCallback
    ) -> StreamId | None:
        if not last_event_id.isdecimal():
            return None
        found = self._log.after(int(last_event_id))
        if found is None or not found[0].startswith(self._prefix):
            return None
        stream, events = found
        for event_id, message in events:
            await send_callback(EventMessage(message, str(event_id)))
        return stream.removeprefix(self._prefix)
