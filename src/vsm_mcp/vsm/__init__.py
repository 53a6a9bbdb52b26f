"""The running viable system: bus, supervisor, S1..S5, S3* and the algedonic channel.

`ViableSystem` assembles them; each part is usable alone (and tested alone).
"""

from __future__ import annotations

from vsm_mcp.vsm.algedonic import AlgedonicChannel, SignalSink
from vsm_mcp.vsm.audit import AuditScheduler, Probe, ProbeResult
from vsm_mcp.vsm.bus import Bus, Envelope, Inbox
from vsm_mcp.vsm.control import Budget, Control
from vsm_mcp.vsm.coordination import Coordination
from vsm_mcp.vsm.events import (
    AcquisitionProposal,
    CallCompleted,
    CallsCompleted,
    ControlReport,
    DemandObserved,
    GapClosed,
    UnitState,
    UnitStateChanged,
)
from vsm_mcp.vsm.intelligence import Intelligence
from vsm_mcp.vsm.operations import Operations
from vsm_mcp.vsm.policy import Policy, PolicyRules
from vsm_mcp.vsm.status import SystemStatus, ViableStatus
from vsm_mcp.vsm.supervisor import ChildState, ChildStatus, Supervisor
from vsm_mcp.vsm.viable import ViableConfig, ViableSystem

__all__ = [
    "AcquisitionProposal",
    "AlgedonicChannel",
    "AuditScheduler",
    "Budget",
    "Bus",
    "CallCompleted",
    "CallsCompleted",
    "ChildState",
    "ChildStatus",
    "Control",
    "ControlReport",
    "Coordination",
    "DemandObserved",
    "Envelope",
    "GapClosed",
    "Inbox",
    "Intelligence",
    "Operations",
    "Policy",
    "PolicyRules",
    "Probe",
    "ProbeResult",
    "SignalSink",
    "Supervisor",
    "SystemStatus",
    "UnitState",
    "UnitStateChanged",
    "ViableConfig",
    "ViableStatus",
    "ViableSystem",
]
