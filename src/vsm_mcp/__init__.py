"""VSM-MCP: a self-governing MCP gateway built on Stafford Beer's Viable System Model."""

from __future__ import annotations

__version__ = "0.1.0"
