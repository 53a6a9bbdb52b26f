"""The downstream fleet: S1 units (one supervised MCP session each), routing, resilience."""

from __future__ import annotations

from vsm_mcp.fleet.fleet import DeadLetterSink, Fleet, FleetListener
from vsm_mcp.fleet.routing import Route, RoutingTable
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.fleet.unit import Unit, UnitCatalog, UnitState

__all__ = [
    "DeadLetterSink",
    "Fleet",
    "FleetListener",
    "Route",
    "RoutingTable",
    "ServerSpec",
    "Unit",
    "UnitCatalog",
    "UnitState",
]
