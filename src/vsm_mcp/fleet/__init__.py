"""The downstream fleet: S1 units (one supervised MCP session each), routing, resilience.

Import what you use from its modules (`vsm_mcp.fleet.fleet`, `.unit`, `.spec`, ...): the package
itself imports nothing, so a light module of it (`.spec`, `.logfile`) does not pull in the MCP SDK.
"""
