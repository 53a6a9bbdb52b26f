"""What a quarantined unit means to its callers (`vsm_mcp.fleet.definitions` decides when it is one).

Invariants: a quarantined unit takes no call through the fleet (`admitted`), and every
refusal names the server, what changed and the one command that lifts it (`quarantined`).
"""

from __future__ import annotations

from vsm_mcp.errors import UnitUnavailableError
from vsm_mcp.fleet.spec import NAMESPACE_SEPARATOR
from vsm_mcp.fleet.unit import Unit


def quarantined(unit: Unit) -> str:
    """Why ``unit`` takes no calls, and the command that lifts its quarantine."""
    assert unit.quarantine is not None
    return (
        f"server {unit.name!r} is quarantined: {unit.quarantine.reason}; an operator who accepts the change "
        f"lifts it with: vsm-mcp servers approve {unit.name}"
    )


def admitted(unit: Unit) -> Unit:
    """``unit``, when it may be called.

    Raises:
        UnitUnavailableError: it is quarantined.
    """
    if unit.quarantine is not None:
        raise UnitUnavailableError(quarantined(unit))
    return unit


def publishes(unit: Unit, public_name: str) -> bool:
    """Whether ``public_name`` is (or would be) one of ``unit``'s tools: its namespace, its own
    ``NAME__`` fallback, or a bare name it lists."""
    own = {unit.spec.prefix, unit.name} - {""}
    if any(public_name.startswith(p + NAMESPACE_SEPARATOR) for p in own):
        return True
    return any(str(t.get("name")) == public_name for t in unit.catalog.tools)
