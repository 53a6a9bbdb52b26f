"""The operator API's shapes: pydantic models, from which FastAPI generates ``/api/openapi.json``.

Records the store keeps (decisions, alerts, audit findings, dead letters,
approval questions) are served as their own dataclasses, which pydantic
validates and describes as they are; what the API assembles has a model here.
The live status has the shape of ``vsm-mcp status --json``'s ``live`` part.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class SystemModel(BaseModel):
    """One system's state word and measured metrics (`vsm.status.SystemStatus`)."""

    state: str
    metrics: dict[str, Any] = Field(default_factory=dict)


class ViableModel(BaseModel):
    """A viable system's status; its units are viable systems too (`vsm.status.ViableStatus`)."""

    name: str
    s1: SystemModel
    s2: SystemModel
    s3: SystemModel
    s3_star: SystemModel
    s4: SystemModel
    s5: SystemModel
    algedonic: SystemModel
    units: list[ViableModel] = Field(default_factory=list)


class UnitRow(BaseModel):
    """One downstream server as the fleet measures it (`Fleet.status`)."""

    name: str
    state: str
    transport: str
    target: str
    pid: int | None
    sandbox: str
    limits: str
    tools: int
    calls: int
    errors: int
    timeouts: int
    restarts: int
    held: bool
    holds: int
    retries: int
    breaker: str
    mean_latency_ms: float | None
    #: S1's latency quantiles, interpolated in its histogram's buckets (`vsm.operations.CallStats`).
    p50_ms: float | None = None
    p99_ms: float | None = None
    #: How many tool definitions are pinned for it, and by what (first use, the pipeline, an operator).
    pinned_tools: int | None = None
    pinned_by: str | None = None
    last_ping_ms: float | None
    last_error: str
    quarantine: str | None
    door: dict[str, Any] | None = None


class StatusOut(BaseModel):
    """The gateway, its fleet and its viable system now."""

    at: float
    gateway: dict[str, Any]
    units: list[UnitRow]
    vsm: ViableModel
    demand: dict[str, int]


class VarietyPoint(BaseModel):
    """One stored hour of demand, read as variety (`report.variety_history`)."""

    at: int
    events: int
    categories: int
    demand_variety_bits: float
    answered_variety_bits: float
    coverage: float
    gap: float


class VarietyOut(BaseModel):
    """The reading now, the detector, its thresholds, and the stored hours before it."""

    now: dict[str, Any]
    detector: str
    gap_upper: float
    gap_lower: float
    unmatched_categories: dict[str, int]
    history: list[VarietyPoint]


class SessionOut(BaseModel):
    """Who is logged in, what they may do, and (for a browser session) its CSRF value."""

    name: str
    scopes: list[str]
    csrf: str | None = None


class LoginIn(BaseModel):
    """A token value to log in with."""

    token: str = Field(min_length=1, max_length=512)


class DenyIn(BaseModel):
    """Why an approval is denied (optional)."""

    reason: str = Field(default="", max_length=2000)


class ActionOut(BaseModel):
    """What an action did, in words."""

    ok: bool
    detail: str


class FieldChange(BaseModel):
    """One field of one tool: as pinned, and as the quarantined server lists it now (None: absent)."""

    tool: str
    field: str
    old: Any = None
    new: Any = None


class QuarantineOut(BaseModel):
    """A server whose tool definitions changed: what changed, and the digest of what is shown
    (approving pins exactly that; a listing that changed again since is refused)."""

    unit: str
    reason: str
    since: float
    pinned_at: float
    pinned_by: str
    changes: list[FieldChange]
    shown_digest: str


class ApproveDefinitionsIn(BaseModel):
    """The digest of the definitions the operator was shown (`QuarantineOut.shown_digest`)."""

    shown_digest: str = Field(min_length=64, max_length=64)


ApprovalFilter = Literal["pending", "all"]
