"""Settings: command-line flags > environment (``VSM_MCP_*``) > TOML file > defaults.

The TOML file is ``--config FILE`` or, when absent, ``<state_dir>/config.toml``
if that exists. Nested fields use ``__`` in the environment, e.g.
``VSM_MCP_VARIETY__MAX_EVENTS=5000``. Any invalid value raises `ConfigError`
naming the field (dotted path) and the file when one was read.
"""

from __future__ import annotations

import contextvars
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from vsm_mcp.acquisition.rerank import RerankPolicy
from vsm_mcp.acquisition.vetting import VettingPolicy
from vsm_mcp.core.hysteresis import HysteresisPolicy
from vsm_mcp.errors import ConfigError
from vsm_mcp.fleet.confinement import SandboxPolicy
from vsm_mcp.fleet.spec import SandboxMode, ServerSpec, namespace_clash
from vsm_mcp.paths import default_state_dir, read_toml, settings_file

if TYPE_CHECKING:
    from vsm_mcp.core.drift import DriftPolicy
    from vsm_mcp.vsm.control import Budget

_FILE_DATA: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "vsm_mcp_file_data", default=None
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VarietySettings(_Section):
    """The demand window and the hysteresis of gap detection."""

    max_events: int = Field(10_000, gt=0, le=10_000_000)
    max_age_s: float | None = Field(3600.0, gt=0)
    gap_upper: float = Field(0.5, ge=0, le=2)
    gap_lower: float = Field(0.2, ge=0, le=2)
    #: A gap above ``gap_upper`` is acted on once it has lasted this many demand events *and*
    #: this many seconds (0 s: events only).
    persist_events: int = Field(5, gt=0)
    persist_s: float = Field(30.0, ge=0)

    @model_validator(mode="after")
    def _lower_below_upper(self) -> VarietySettings:
        if self.gap_lower >= self.gap_upper:
            raise ValueError("gap_lower must be below gap_upper")
        return self

    def hysteresis(self) -> HysteresisPolicy:
        """The detector policy these settings describe."""
        return HysteresisPolicy(
            upper=self.gap_upper,
            lower=self.gap_lower,
            persist_events=self.persist_events,
            persist_s=self.persist_s,
        )


class AlgedonicSettings(_Section):
    """Correlation and rate limiting of pain/pleasure signals."""

    window_s: float = Field(5.0, gt=0)
    max_alerts_per_s: float = Field(10.0, gt=0)


class SupervisionSettings(_Section):
    """Restart intensity: at most ``max_restarts`` in ``within_s`` seconds."""

    max_restarts: int = Field(5, ge=0)
    within_s: float = Field(60.0, gt=0)


class BudgetSettings(_Section):
    """S3's budget for the servers it runs: over it, S3 parks the longest-idle ones (their tools
    stay listed; a call starts one again). None: no limit."""

    max_units: int | None = Field(None, ge=1)
    max_rss_mib: float | None = Field(None, gt=0)

    def budget(self) -> Budget:
        """The budget these settings describe."""
        from vsm_mcp.vsm.control import Budget  # the VSM layer: not needed to read settings

        return Budget(
            max_units=self.max_units,
            max_rss_bytes=int(self.max_rss_mib * 2**20) if self.max_rss_mib is not None else None,
        )


class AuditSettings(_Section):
    """S3*: every ``interval_s`` each unit is probed with ``probability``."""

    interval_s: float = Field(30.0, gt=0)
    probability: float = Field(0.3, ge=0, le=1)


class AcquisitionSettings(_Section):
    """S5's policy for acquiring servers (vetting, budgets, sandbox) and whether `up` acquires by itself."""

    registries: tuple[Literal["npm", "pypi"], ...] = ("npm", "pypi")
    deny: tuple[str, ...] = ()
    typosquat_distance: int = Field(2, ge=0)
    typosquat_action: Literal["refuse", "ask"] = "refuse"
    missing_license_action: Literal["ask", "refuse", "allow"] = "ask"
    allow_deprecated: bool = False
    auto_approve: bool = False
    npm_ignore_scripts: bool = True
    #: Build source distributions (runs the package's build code, in the install sandbox); off: wheels only.
    source_builds: bool = False
    max_units: int = Field(20, ge=0)
    max_installs_per_hour: int = Field(10, ge=0)
    #: Acquired servers (and their installs) run in bubblewrap or not at all, unless set otherwise.
    sandbox: Literal["require", "prefer", "off"] = "require"
    network: bool = False
    autonomous: bool = True
    #: Ask the official MCP registry and npm search beside the catalog when its best match is weak.
    live_sources: bool = True
    #: How long one live source may take to answer before it counts as failed.
    live_deadline_s: float = Field(10.0, gt=0, le=120)
    #: Let the calling client's model choose among the top candidates of ``vsm_find_capability`` (and
    #: of ``vsm_acquire_capability`` without a server or package) when it declared MCP sampling: one
    #: short ``sampling/createMessage`` per call; off, or on any failure, the offline ranking stands.
    rerank_with_client: bool = True
    #: How many of the top candidates the client's model is shown (2 to 5).
    rerank_candidates: int = Field(5, ge=2, le=5)
    #: How long the client's model may take to answer before the offline ranking is used.
    rerank_deadline_s: float = Field(20.0, gt=0, le=120)

    def policy(self, **overrides: Any) -> VettingPolicy:
        """The vetting rules these settings describe (``overrides`` from command-line flags)."""
        values: dict[str, Any] = {
            "allowed_registries": frozenset(self.registries),
            "deny": frozenset(self.deny),
            "typosquat_distance": self.typosquat_distance,
            "typosquat_action": self.typosquat_action,
            "missing_license_action": self.missing_license_action,
            "allow_deprecated": self.allow_deprecated,
            "auto_approve": self.auto_approve,
            "npm_ignore_scripts": self.npm_ignore_scripts,
            "max_units": self.max_units,
            "max_installs_per_hour": self.max_installs_per_hour,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return VettingPolicy(**values)

    def rerank_policy(self) -> RerankPolicy:
        """Whether and how the calling client's model may rerank capability candidates."""
        return RerankPolicy(
            enabled=self.rerank_with_client,
            max_candidates=self.rerank_candidates,
            deadline_s=self.rerank_deadline_s,
        )


class SandboxSettings(_Section):
    """The sandbox of stdio servers whose spec leaves the choice open (``[servers.NAME.sandbox]``).

    ``prefer`` (default): bubblewrap when it works here, otherwise run with
    resource limits and a scrubbed environment only, flagged UNSANDBOXED.
    ``require``: never run unsandboxed (the unit fails, with algedonic pain).
    ``off``: run commands as written. ``network`` defaults to on because
    hand-configured launchers (``uvx``, ``npx -y``) download at first start
    and most servers call remote APIs; turn it off here or per server.
    Acquired servers carry their own choice from ``[acquisition]``.
    """

    mode: SandboxMode = "prefer"
    network: bool = True

    def policy(self, state_dir: Path) -> SandboxPolicy:
        """The fleet's policy: these defaults, prefixes in ``<state>/servers``, the state dir hidden."""
        return SandboxPolicy(
            mode=self.mode, network=self.network, servers_dir=state_dir / "servers", state_dir=state_dir
        )


class DriftSettings(_Section):
    """S1's change detection per unit and tool (Page's CUSUM, `core.drift`).

    Each stream learns its baseline from its first ``warmup`` calls. An error rate
    ``error_ratio`` times the baseline's is what the error detector looks for,
    a latency ``latency_shift`` standard deviations (of log latency) higher what
    the latency detector does; ``error_h`` and ``latency_h`` are their thresholds
    (higher: fewer false alarms, later detection).
    """

    enabled: bool = True
    warmup: int = Field(200, ge=2)
    error_ratio: float = Field(3.0, gt=1)
    error_h: float = Field(10.0, gt=0)
    min_error_rate: float = Field(0.01, gt=0, lt=1)
    latency_shift: float = Field(1.0, gt=0)
    latency_h: float = Field(10.0, gt=0)

    def policy(self) -> DriftPolicy | None:
        """The detectors' policy, or None when off."""
        from vsm_mcp.core.drift import DriftPolicy

        if not self.enabled:
            return None
        return DriftPolicy(
            warmup=self.warmup,
            error_ratio=self.error_ratio,
            error_h=self.error_h,
            min_error_rate=self.min_error_rate,
            latency_shift=self.latency_shift,
            latency_h=self.latency_h,
        )


class ReflectionSettings(_Section):
    """S5's periodic reflection (`bridge.reflection`): how often it is computed and stored as a decision."""

    every_s: float = Field(3600.0, ge=1)


class TelemetrySettings(_Section):
    """Traces of each call through the gateway to its unit, exported over OTLP/HTTP.

    ``otlp_endpoint``: the collector's base URL (``http://127.0.0.1:4318``; ``/v1/traces`` is
    added when it has no path) or the full traces URL; unset: no traces (and no cost). Needs
    the ``otel`` extra (``pip install 'vsm-mcp[otel]'``).
    """

    otlp_endpoint: str | None = None
    service_name: str = Field("vsm-mcp", min_length=1)


class _FileSource(PydanticBaseSettingsSource):
    """Values read from the TOML file by `load_settings` (lowest priority but defaults)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return (_FILE_DATA.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_DATA.get() or {})


class Settings(BaseSettings):
    """Everything VSM-MCP can be told, validated."""

    model_config = SettingsConfigDict(
        env_prefix="VSM_MCP_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    state_dir: Path = Field(default_factory=default_state_dir)
    variety: VarietySettings = VarietySettings()
    algedonic: AlgedonicSettings = AlgedonicSettings()
    supervision: SupervisionSettings = SupervisionSettings()
    audit: AuditSettings = AuditSettings()
    budget: BudgetSettings = BudgetSettings()
    acquisition: AcquisitionSettings = AcquisitionSettings()
    sandbox: SandboxSettings = SandboxSettings()
    drift: DriftSettings = DriftSettings()
    reflection: ReflectionSettings = ReflectionSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    servers: dict[str, ServerSpec] = Field(default_factory=dict)

    @field_validator("servers", mode="before")
    @classmethod
    def _name_servers(cls, value: Any) -> Any:
        # `[servers.NAME]` tables carry their name in the key, not in the table.
        if isinstance(value, dict):
            return {
                key: {"name": key, **spec} if isinstance(spec, dict) else spec for key, spec in value.items()
            }
        return value

    @field_validator("servers", mode="after")
    @classmethod
    def _distinct_namespaces(cls, value: dict[str, ServerSpec]) -> dict[str, ServerSpec]:
        for spec in value.values():
            clash = namespace_clash(spec, value.values())
            if clash is not None:
                raise ValueError(clash)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FileSource(settings_cls))

    def sandbox_policy(self) -> SandboxPolicy:
        """How the fleet sandboxes the servers of this state directory (``[sandbox]``)."""
        return self.sandbox.policy(self.state_dir)

    @property
    def database_path(self) -> Path:
        """The SQLite state database."""
        return self.state_dir / "state.db"


def _describe(exc: ValidationError, source: str) -> str:
    parts = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"]) or "(settings)"
        parts.append(f"{field}: {error['msg']} (got {error.get('input')!r})")
    return f"invalid setting{'s' if len(parts) > 1 else ''} {source}: " + "; ".join(parts)


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from flags (``overrides``), environment and TOML file.

    Raises:
        ConfigError: the file is unreadable or not TOML, or a value is invalid;
            the message names the field.
    """
    flags = {k: v for k, v in overrides.items() if v is not None}
    path = settings_file(config, flags.get("state_dir"), os.environ)
    data = read_toml(path) if path is not None else {}
    source = f"(file {path}, environment VSM_MCP_*, flags)" if path else "(environment VSM_MCP_*, flags)"
    token = _FILE_DATA.set(data)
    try:
        return Settings(**flags)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from exc
    finally:
        _FILE_DATA.reset(token)
