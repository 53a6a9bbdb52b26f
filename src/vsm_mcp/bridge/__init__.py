"""Between the operational layers (fleet, gateway, acquisition) and the VSM systems.

What the running parts report and how the systems hear it: the fleet's call
observers (`bridge.observers`). The composition root (`vsm_mcp.runtime`)
builds and wires these; it holds no logic of its own about them.
"""
