"""A tool search is demand, answered only when the client goes on to call what it found: `PendingSearches`.

A search (``vsm_search_tools``, or an own tool called with a ``query``) is
demand in its query's category: the best hit's category, else the unmatched
``search:<words>`` category. Whether the gateway answered it shows only in
what the client does next, so a search with hits is kept *pending* for its
client session (`client_key`), with the names the client was
shown. Invariants:

* a pending search is *answered* when the same client session calls one of
  those tools (by the name it was shown) within its window. It then adds no
  demand event of its own: the call is already matched demand
  (`Gateway.note_call`), and a need asked for and then served counts once.
  So searches never raise coverage;
* its window ends after `ANSWER_WINDOW_S`, after `ANSWER_CALLS` further calls
  of other fleet tools by that session, or when the session ends. An
  unanswered search is then one *unmatched* event in its category, so a
  search with no follow-up call lowers coverage;
* a search with no hit is unmatched at once: nothing it returned can answer it;
* memory is bounded: at most `MAX_PENDING_PER_CLIENT` pending searches per
  session and `MAX_PENDING` in all. Past either bound, the oldest is settled
  unmatched, exactly as if its window had ended;
* settling happens on the gateway's own activity (every search, call and
  status read) and in `run`'s sweep. A miss reaches the demand sink at most
  `SWEEP_S` after its window ends, and it enters the demand window then.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

import anyio

#: An agent calls what it searched for within its next turn or two (seconds to a minute); five minutes
#: also covers a person approving the call in between, and bounds how late a miss reaches S4.
ANSWER_WINDOW_S = 300.0
#: An agent may act on two searches in turn, or make a call it had planned first. Once it has called
#: three other fleet tools it has moved on. Own tools (status, another search) do not count.
ANSWER_CALLS = 3
#: A client with more searches in the air than this is probing, not working: its oldest is settled.
MAX_PENDING_PER_CLIENT = 16
#: Pending searches of every client together (each holds at most 50 names: well under 2 MB of references).
MAX_PENDING = 4096
#: How often `run` settles the searches whose window has ended.
SWEEP_S = 1.0

#: ``record(category, matched)``: where settled searches go (the gateway's demand sink).
Record = Callable[[str, bool], None]
#: The key of the stdio face's one client (and of an in-process client).
STDIO_CLIENT = "stdio"


def client_key(request: object, principal_name: str) -> Hashable:
    """Which client session a request belongs to: the HTTP session (``Mcp-Session-Id``), a stateless
    HTTP client's token, or the stdio client (``request`` None)."""
    headers = getattr(request, "headers", None)
    if headers is None:
        return STDIO_CLIENT
    session = headers.get("mcp-session-id")
    return ("session", session) if session else ("token", principal_name)


@dataclass(slots=True)
class _Pending:
    client: Hashable
    category: str
    names: frozenset[str]
    deadline: float
    calls_left: int


class PendingSearches:
    """Searches waiting for the call that answers them, per client session (module docstring)."""

    def __init__(
        self,
        record: Record,
        *,
        window_s: float = ANSWER_WINDOW_S,
        calls: int = ANSWER_CALLS,
        per_client: int = MAX_PENDING_PER_CLIENT,
        total: int = MAX_PENDING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._record = record
        self._window_s = window_s
        self._calls = calls
        self._per_client = per_client
        self._total = total
        self._clock = clock
        self._ids = itertools.count()
        #: Every pending search by id, oldest first. One window for all, so also the earliest deadline first.
        self._all: dict[int, _Pending] = {}
        #: The ids of each client's pending searches, oldest first.
        self._by_client: dict[Hashable, dict[int, None]] = {}
        #: Searches settled so far, by how.
        self.answered = 0
        self.unanswered = 0

    def __len__(self) -> int:
        return len(self._all)

    def pending(self, client: Hashable) -> int:
        """How many of ``client``'s searches are pending."""
        return len(self._by_client.get(client, ()))

    def searched(self, client: Hashable, category: str, names: Iterable[str]) -> None:
        """``client`` searched and was shown ``names`` (best first); ``category``: the query's category."""
        self.expire()
        shown = frozenset(names)
        if not shown:
            self._settle_unmatched(category)
            return
        mine = self._by_client.setdefault(client, {})
        if len(mine) >= self._per_client:
            self._drop(next(iter(mine)), answered=False)
            mine = self._by_client.setdefault(client, {})
        if len(self._all) >= self._total:
            self._drop(next(iter(self._all)), answered=False)
            mine = self._by_client.setdefault(client, {})
        key = next(self._ids)
        self._all[key] = _Pending(client, category, shown, self._clock() + self._window_s, self._calls)
        mine[key] = None

    def called(self, client: Hashable, name: str) -> None:
        """``client`` called fleet tool ``name`` (as it was shown): answer, or use up, its pending searches."""
        self.expire()
        mine = self._by_client.get(client)
        if not mine:
            return
        for key in list(mine):
            pending = self._all[key]
            if name in pending.names:
                self._drop(key, answered=True)
            else:
                pending.calls_left -= 1
                if pending.calls_left <= 0:
                    self._drop(key, answered=False)

    def ended(self, client: Hashable) -> None:
        """``client``'s session ended: it can no longer answer its pending searches."""
        for key in list(self._by_client.get(client, ())):
            self._drop(key, answered=False)

    def expire(self) -> int:
        """Settle every search whose window has ended as unmatched; returns how many."""
        if not self._all:
            return 0
        now = self._clock()
        settled = 0
        while self._all:
            key, oldest = next(iter(self._all.items()))
            if oldest.deadline > now:
                break
            self._drop(key, answered=False)
            settled += 1
        return settled

    def summary(self) -> dict[str, int]:
        """What ``vsm_status`` shows under ``gateway.searches``."""
        return {"pending": len(self._all), "answered": self.answered, "unanswered": self.unanswered}

    async def run(self) -> None:
        """Settle ended windows every `SWEEP_S` until cancelled, so a miss reaches S4 when idle too."""
        while True:
            await anyio.sleep(SWEEP_S)
            self.expire()

    def _drop(self, key: int, *, answered: bool) -> None:
        pending = self._all.pop(key)
        mine = self._by_client[pending.client]
        del mine[key]
        if not mine:
            del self._by_client[pending.client]
        if answered:
            self.answered += 1
        else:
            self._settle_unmatched(pending.category)

    def _settle_unmatched(self, category: str) -> None:
        self.unanswered += 1
        self._record(category, False)
