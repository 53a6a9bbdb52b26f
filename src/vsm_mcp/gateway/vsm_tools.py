"""The gateway's own tools and resources: the VSM seen through MCP.

Only tools whose behaviour is real are listed. Names are reserved: a
downstream tool can never take one (the routing table falls back). Every own
tool and resource carries `core.nesting.OWN_META_KEY`, so a gateway above this
one knows them for the VSM's and not for capability.
"""

from __future__ import annotations

from typing import Any

from vsm_mcp.core.nesting import STATUS_URI, mark_own

VSM_STATUS = "vsm_status"
VSM_VARIETY = "vsm_variety"
VSM_SEARCH_TOOLS = "vsm_search_tools"
VSM_CALL_TOOL = "vsm_call_tool"

RESOURCE_STATUS = STATUS_URI
RESOURCE_VARIETY = "vsm://variety"
RESOURCE_FLEET = "vsm://fleet"
RESOURCE_SELF = "vsm://self"
RESOURCE_DECISIONS = "vsm://decisions"
#: One stored decision by its number (`RESOURCE_DECISION.format(id=7)`).
RESOURCE_DECISION = "vsm://decisions/{id}"
#: How many decisions `RESOURCE_DECISIONS` lists, newest first.
DECISIONS_LISTED = 50

_READ_ONLY = {"readOnlyHint": True, "openWorldHint": False}

_VSM_TOOLS: list[dict[str, Any]] = [
    {
        "name": VSM_STATUS,
        "title": "VSM status",
        "description": "State of the viable system: every downstream server (unit) with its state, "
        "calls, errors, restarts, breaker and latency, plus demand counters.",
        "inputSchema": {"type": "object", "properties": {}, "additionalProperties": False},
        "annotations": _READ_ONLY,
    },
    {
        "name": VSM_VARIETY,
        "title": "VSM variety",
        "description": "Requisite variety now: entropy of recent demand, system variety, coverage, "
        "the gap, and the most requested categories nothing answers.",
        "inputSchema": {"type": "object", "properties": {}, "additionalProperties": False},
        "annotations": _READ_ONLY,
    },
    {
        "name": VSM_SEARCH_TOOLS,
        "title": "Search tools",
        "description": "Search every tool of every server behind this gateway by what it does; "
        "returns names to call (directly or with vsm_call_tool) and their input schemas.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "what you want to do, in words"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        "annotations": _READ_ONLY,
    },
    {
        "name": VSM_CALL_TOOL,
        "title": "Call a tool",
        "description": "Call any tool behind this gateway by name (as vsm_search_tools returns it). "
        "A stable entry point for clients that do not refresh their tool list.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "arguments": {"type": "object", "default": {}},
            },
            "required": ["name"],
            "additionalProperties": False,
        },
    },
]

VSM_TOOLS = [mark_own(t) for t in _VSM_TOOLS]
VSM_TOOL_NAMES = frozenset(t["name"] for t in VSM_TOOLS)

_VSM_RESOURCES: list[dict[str, Any]] = [
    {
        "uri": RESOURCE_STATUS,
        "name": "status",
        "title": "VSM status",
        "mimeType": "application/json",
        "description": "the same as the vsm_status tool",
    },
    {
        "uri": RESOURCE_VARIETY,
        "name": "variety",
        "title": "VSM variety",
        "mimeType": "application/json",
        "description": "the same as the vsm_variety tool",
    },
    {
        "uri": RESOURCE_FLEET,
        "name": "fleet",
        "title": "Fleet",
        "mimeType": "application/json",
        "description": "downstream servers and the public names of their tools",
    },
    {
        "uri": RESOURCE_SELF,
        "name": "self",
        "title": "Self-model",
        "mimeType": "application/json",
        "description": "what this gateway can do (with confidence from observed outcomes), what it cannot, "
        "its limits, its health and its recent changes, computed now",
    },
    {
        "uri": RESOURCE_DECISIONS,
        "name": "decisions",
        "title": "Decisions",
        "mimeType": "application/json",
        "description": f"the system's {DECISIONS_LISTED} latest stored decisions (S3, S4, S5, the gateway), "
        "each with its rule, rationale and inputs; one by number at vsm://decisions/{id}",
    },
]
VSM_RESOURCES = [mark_own(r) for r in _VSM_RESOURCES]
VSM_TEMPLATES = [
    mark_own(
        {
            "uriTemplate": RESOURCE_DECISION,
            "name": "decision",
            "title": "One decision",
            "mimeType": "application/json",
            "description": "one stored decision by its number (as vsm://decisions lists them)",
        }
    )
]

VSM_SELF_BRIEF = "vsm_self_brief"
VSM_PROMPTS = [
    mark_own(
        {
            "name": VSM_SELF_BRIEF,
            "title": "What this gateway can do",
            "description": "A few hundred words, computed now, on what the tools behind this gateway can and "
            "cannot do, how reliable they have been, and the gateway's limits and health.",
            "arguments": [],
        }
    )
]
