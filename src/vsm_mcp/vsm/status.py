"""Recursive status: the whole and each unit report the same S1..S5 shape.

A `ViableStatus` holds one `SystemStatus` per system (S1, S2, S3, S3*, S4,
S5, algedonic) and the statuses of its units, each a `ViableStatus` again;
a unit that is itself a VSM-MCP contributes its own units (gateway of
gateways). `to_dict` and `from_dict` round-trip exactly through JSON types.

Invariant: every metric is a measured count, duration or state from real
events; nothing here computes or invents a figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Metric = int | float | str | bool | None

#: The systems every viable status reports, in display order.
SYSTEMS = ("s1", "s2", "s3", "s3_star", "s4", "s5", "algedonic")


@dataclass(frozen=True, slots=True)
class SystemStatus:
    """One system's state word (``ok``, ``degraded``, ``failed``, ``idle``...) and metrics."""

    state: str
    metrics: Mapping[str, Metric] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"state": self.state, "metrics": dict(self.metrics)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SystemStatus:
        """Inverse of `to_dict`.

        Raises:
            ValueError: a field is missing or of the wrong type.
        """
        state = data.get("state")
        metrics = data.get("metrics", {})
        if not isinstance(state, str) or not isinstance(metrics, Mapping):
            raise ValueError(f"not a system status: {data!r}")
        return cls(state=state, metrics=dict(metrics))


_IDLE = SystemStatus("idle")


@dataclass(frozen=True, slots=True)
class ViableStatus:
    """A viable system's status; its units are viable systems too."""

    name: str
    s1: SystemStatus = _IDLE
    s2: SystemStatus = _IDLE
    s3: SystemStatus = _IDLE
    s3_star: SystemStatus = _IDLE
    s4: SystemStatus = _IDLE
    s5: SystemStatus = _IDLE
    algedonic: SystemStatus = _IDLE
    units: tuple[ViableStatus, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, recursively."""
        out: dict[str, Any] = {"name": self.name}
        for system in SYSTEMS:
            status: SystemStatus = getattr(self, system)
            out[system] = status.to_dict()
        out["units"] = [unit.to_dict() for unit in self.units]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ViableStatus:
        """Inverse of `to_dict` (e.g. a downstream VSM-MCP's status resource).

        Raises:
            ValueError: the document is not a viable status.
        """
        name = data.get("name")
        units = data.get("units", [])
        if not isinstance(name, str) or not isinstance(units, list):
            raise ValueError(f"not a viable status: {str(data)[:200]}")
        systems = {s: SystemStatus.from_dict(data[s]) for s in SYSTEMS if s in data}
        return cls(name=name, units=tuple(cls.from_dict(u) for u in units), **systems)

    def depth(self) -> int:
        """Levels of recursion: 1 for a system without units."""
        return 1 + max((unit.depth() for unit in self.units), default=0)

    def unit(self, name: str) -> ViableStatus:
        """The direct unit called ``name``.

        Raises:
            KeyError: there is no such unit.
        """
        for unit in self.units:
            if unit.name == name:
                return unit
        raise KeyError(name)
