"""The in-process bus: one inbox per component, two bounded lanes, urgent first.

Invariants:

* Each lane (``Priority.URGENT``, ``Priority.ROUTINE``) is an anyio memory
  object stream with a fixed buffer (at least 1). `Inbox.send` waits while its
  lane is full: back-pressure reaches the sender, memory stays bounded.
* `Inbox.receive` always returns a waiting urgent message before any routine
  one, whatever order they were sent in; within a lane, order is FIFO.
* ``available`` counts messages sitting in either lane: a sender releases one
  permit after its message is in a buffer, the receiver acquires one before
  taking a message, so a receiver never busy-waits and never misses one.
* `Inbox.offer` never waits: when the lane is full the message is dropped and
  counted (``dropped``), for telemetry that must not slow its producer.
* After `Inbox.close`, sending raises `BusClosedError`; the receiver still
  gets every message already queued, then `anyio.EndOfStream`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from vsm_mcp.core.messages import Priority
from vsm_mcp.errors import BusClosedError, NoSuchInboxError

#: Routine lane size: enough to absorb a burst of reports, small enough that a
#: stuck component shows up as back-pressure within a second, not as memory.
ROUTINE_CAPACITY = 256
#: Urgent lane size: urgent traffic is already correlated (algedonic alerts).
URGENT_CAPACITY = 64


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message as delivered: what it is, who sent it, on which lane."""

    payload: object
    priority: Priority
    sender: str


@dataclass(frozen=True, slots=True)
class LaneStats:
    """Counters of one lane since the inbox was created."""

    sent: int
    received: int
    dropped: int
    queued: int
    capacity: int


@dataclass(frozen=True, slots=True)
class InboxStats:
    """Counters of both lanes of one inbox."""

    urgent: LaneStats
    routine: LaneStats


class _Lane:
    __slots__ = ("capacity", "dropped", "receive", "received", "send", "sent")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a lane needs room for at least one message")
        self.capacity = capacity
        send, receive = anyio.create_memory_object_stream[Envelope](capacity)
        self.send: MemoryObjectSendStream[Envelope] = send
        self.receive: MemoryObjectReceiveStream[Envelope] = receive
        self.sent = 0
        self.received = 0
        self.dropped = 0

    def stats(self) -> LaneStats:
        queued = self.receive.statistics().current_buffer_used
        return LaneStats(self.sent, self.received, self.dropped, queued, self.capacity)


class Inbox:
    """Where one component receives its messages."""

    def __init__(
        self, name: str, *, urgent_capacity: int = URGENT_CAPACITY, routine_capacity: int = ROUTINE_CAPACITY
    ) -> None:
        self.name = name
        self._lanes = {Priority.URGENT: _Lane(urgent_capacity), Priority.ROUTINE: _Lane(routine_capacity)}
        self._available = anyio.Semaphore(0)
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether the inbox refuses new messages."""
        return self._closed

    async def send(self, payload: object, *, priority: Priority = Priority.ROUTINE, sender: str = "") -> None:
        """Queue a message, waiting while its lane is full.

        Raises:
            BusClosedError: the inbox was closed before or while waiting.
        """
        if self._closed:
            raise BusClosedError(f"inbox {self.name!r} is closed")
        lane = self._lanes[priority]
        try:
            await lane.send.send(Envelope(payload, priority, sender))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            raise BusClosedError(f"inbox {self.name!r} closed while sending") from exc
        lane.sent += 1
        self._available.release()

    def offer(self, payload: object, *, priority: Priority = Priority.ROUTINE, sender: str = "") -> bool:
        """Queue a message if its lane has room; otherwise drop and count it.

        Raises:
            BusClosedError: the inbox is closed.
        """
        if self._closed:
            raise BusClosedError(f"inbox {self.name!r} is closed")
        lane = self._lanes[priority]
        try:
            lane.send.send_nowait(Envelope(payload, priority, sender))
        except anyio.WouldBlock:
            lane.dropped += 1
            return False
        lane.sent += 1
        self._available.release()
        return True

    async def receive(self) -> Envelope:
        """The next message: any urgent one first, else the oldest routine one.

        Raises:
            anyio.EndOfStream: the inbox is closed and empty.
        """
        await self._available.acquire()
        return self._take()

    def receive_nowait(self) -> Envelope:
        """Like `receive`, without waiting.

        Raises:
            anyio.WouldBlock: nothing is queued.
            anyio.EndOfStream: the inbox is closed and empty.
        """
        self._available.acquire_nowait()
        return self._take()

    def _take(self) -> Envelope:
        for lane in self._lanes.values():  # URGENT is first by construction
            try:
                envelope = lane.receive.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                continue
            lane.received += 1
            return envelope
        # Only close() releases a permit without a message: wake the next receiver too.
        self._available.release()
        raise anyio.EndOfStream

    async def __aiter__(self) -> AsyncIterator[Envelope]:
        while True:
            try:
                yield await self.receive()
            except anyio.EndOfStream:
                return

    def close(self) -> None:
        """Refuse new messages; the receiver drains what is queued, then sees the end."""
        if self._closed:
            return
        self._closed = True
        for lane in self._lanes.values():
            lane.send.close()
        self._available.release()

    def dispose(self) -> None:
        """Close and release both lanes, discarding anything still queued."""
        self.close()
        for lane in self._lanes.values():
            lane.receive.close()

    def stats(self) -> InboxStats:
        """Counters of both lanes."""
        return InboxStats(
            urgent=self._lanes[Priority.URGENT].stats(), routine=self._lanes[Priority.ROUTINE].stats()
        )


class Bus:
    """Named inboxes of the components of one viable system.

    An async context manager: leaving it closes and disposes every inbox.
    """

    def __init__(
        self, *, urgent_capacity: int = URGENT_CAPACITY, routine_capacity: int = ROUTINE_CAPACITY
    ) -> None:
        self._urgent_capacity = urgent_capacity
        self._routine_capacity = routine_capacity
        self._inboxes: dict[str, Inbox] = {}
        self._closed = False

    def inbox(self, name: str) -> Inbox:
        """The inbox of ``name``, created on first use.

        Raises:
            BusClosedError: the bus has shut down.
        """
        if self._closed:
            raise BusClosedError("the bus is closed")
        box = self._inboxes.get(name)
        if box is None:
            box = Inbox(name, urgent_capacity=self._urgent_capacity, routine_capacity=self._routine_capacity)
            self._inboxes[name] = box
        return box

    def _existing(self, to: str) -> Inbox:
        if self._closed:
            raise BusClosedError("the bus is closed")
        try:
            return self._inboxes[to]
        except KeyError:
            raise NoSuchInboxError(f"no component {to!r} on the bus") from None

    async def publish(
        self, to: str, payload: object, *, priority: Priority = Priority.ROUTINE, sender: str = ""
    ) -> None:
        """Send to the inbox of ``to``, waiting while its lane is full.

        Raises:
            NoSuchInboxError: nobody registered an inbox named ``to``.
            BusClosedError: the bus or that inbox has shut down.
        """
        await self._existing(to).send(payload, priority=priority, sender=sender)

    def offer(
        self, to: str, payload: object, *, priority: Priority = Priority.ROUTINE, sender: str = ""
    ) -> bool:
        """Send without waiting; a full lane drops (and counts) the message."""
        return self._existing(to).offer(payload, priority=priority, sender=sender)

    def stats(self) -> dict[str, InboxStats]:
        """Counters of every inbox, by component name."""
        return {name: box.stats() for name, box in sorted(self._inboxes.items())}

    async def __aenter__(self) -> Bus:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close and dispose every inbox; idempotent."""
        self._closed = True
        for box in self._inboxes.values():
            box.dispose()
