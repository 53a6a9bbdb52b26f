"""Recursion: how a VSM-MCP marks its own tools and how a gateway above it tells them apart.

A VSM-MCP behind another is a unit of the outer system and a viable system of
its own (Beer's recursion). The outer gateway must neither re-export the inner
one's own tools (``vsm_status``, ``vsm_search_tools``, ...) as capability nor
list its ``vsm://`` resources beside its own. The inner gateway says which
items are its own with one ``_meta`` key (`OWN_META_KEY`); a unit that lists
the `STATUS_URI` resource marked so is viable, and the outer reads that resource
for the unit's own S1..S5 (`bridge.nesting`).

Invariants:

* the ``vsm://`` scheme is reserved: no downstream resource or template under it
  is ever routed, viable unit or not (`is_reserved_uri`);
* only items marked with `OWN_META_KEY` are dropped from a viable unit; its
  other tools are capability like any server's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: The ``_meta`` key a VSM-MCP puts on each of its own tools and resources (value ``True``).
OWN_META_KEY = "vsm-mcp/own"
#: The reserved URI scheme of a gateway's own resources.
RESERVED_SCHEME = "vsm://"
#: The resource with a VSM-MCP's recursive status (a JSON document whose ``vsm`` key holds it).
STATUS_URI = "vsm://status"


def mark_own(item: Mapping[str, Any]) -> dict[str, Any]:
    """``item`` (a tool or resource definition) with the own-item mark added to its ``_meta``."""
    meta = item.get("_meta")
    return {**item, "_meta": {**(meta if isinstance(meta, Mapping) else {}), OWN_META_KEY: True}}


def is_own(item: Mapping[str, Any]) -> bool:
    """Whether a listed item carries the own-item mark."""
    meta = item.get("_meta")
    return isinstance(meta, Mapping) and meta.get(OWN_META_KEY) is True


def is_reserved_uri(uri: str) -> bool:
    """Whether ``uri`` (a resource URI or template) is under the reserved ``vsm://`` scheme."""
    return uri.lower().startswith(RESERVED_SCHEME)


def is_viable(resources: Iterable[Mapping[str, Any]]) -> bool:
    """Whether a server that lists ``resources`` is a VSM-MCP: its status resource, marked own."""
    return any(str(r.get("uri", "")) == STATUS_URI and is_own(r) for r in resources)
