"""The MCP face of VSM-MCP: one server upstream, the fleet downstream."""

from __future__ import annotations

from vsm_mcp.gateway.ports import DemandSink, StatusSource, WindowDemand
from vsm_mcp.gateway.server import Gateway

__all__ = ["DemandSink", "Gateway", "StatusSource", "WindowDemand"]
