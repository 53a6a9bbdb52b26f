"""Launch pins kept per server: fixed at install or approval, checked before every start.

A `LaunchPin` (`vsm_mcp.sandbox.pin`) names every file a start runs with its
digest. The acquisition pipeline stores the pin of what it installed and
verified; a configured server is pinned at its first start (trust on first
use: the operator who added it chose that command). From then on a start
whose launch differs is refused with `LauncherChangedError` (the unit goes
FAILED and sends HIGH algedonic pain) until an operator accepts the new
launch with ``vsm-mcp servers trust NAME``.

Invariants:

* one store key per server (`pin_key`), so units starting at once never
  overwrite each other's pins;
* a stored value that is not a pin (corrupt, foreign) refuses the start as a
  change would: it is never silently replaced;
* launches without a pin (sandbox ``off``: the command runs as written) are
  not checked.
"""

from __future__ import annotations

from typing import Protocol

from vsm_mcp.core.ports import JsonValue
from vsm_mcp.errors import LauncherChangedError
from vsm_mcp.sandbox.pin import LaunchPin

#: Store keys: ``fleet.launch_pin.NAME``.
PIN_KEY_PREFIX = "fleet.launch_pin."
#: How many changed files a refusal names before "and N more".
SHOWN_CHANGES = 3


class PinBook(Protocol):
    """Where pins are kept (the `Store` implements it)."""

    async def kv_get(self, key: str) -> JsonValue: ...

    async def kv_put(self, key: str, value: JsonValue) -> None: ...


def pin_key(name: str) -> str:
    """The store key of server ``name``'s launch pin."""
    return PIN_KEY_PREFIX + name


async def check(book: PinBook, name: str, pin: LaunchPin) -> bool:
    """Compare ``pin`` with the one stored for ``name``; store it when there is none.

    Returns True when ``pin`` was recorded now (first start), False when it matched.

    Raises:
        LauncherChangedError: the stored pin differs (or is unreadable); nothing was stored.
    """
    stored = await book.kv_get(pin_key(name))
    if stored is None:
        await book.kv_put(pin_key(name), pin.to_json())
        return True
    before = LaunchPin.from_json(stored)
    changes = ["the stored pin is unreadable"] if before is None else before.changes(pin)
    if not changes:
        return False
    shown = "; ".join(changes[:SHOWN_CHANGES])
    more = f" (and {len(changes) - SHOWN_CHANGES} more)" if len(changes) > SHOWN_CHANGES else ""
    raise LauncherChangedError(
        f"server {name!r} would run files that changed since it was installed or approved: {shown}{more}; "
        f"not started (if the change is yours: vsm-mcp servers trust {name})"
    )


async def trust(book: PinBook, name: str, pin: LaunchPin) -> None:
    """Record ``pin`` as the launch of ``name`` (install, approval, or an operator's ``trust``)."""
    await book.kv_put(pin_key(name), pin.to_json())


async def forget(book: PinBook, name: str) -> None:
    """Drop the pin of ``name`` (the server was removed)."""
    await book.kv_put(pin_key(name), None)
