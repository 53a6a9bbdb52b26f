"""The one error tree of VSM-MCP.

Every error the project raises on purpose derives from `VsmError`; foreign
errors are translated at adapter boundaries with ``raise X(...) from exc``.
The CLI prints a `VsmError` as one clear line (no traceback) and exits
non-zero; anything else is a bug and keeps its traceback.

    VsmError
    ├── ConfigError            an invalid setting; names the field
    ├── StateError             the state database or directory
    │   ├── StateCorruptError  not a database / failed integrity check
    │   ├── SchemaTooNewError  written by a newer VSM-MCP; never touched
    │   └── RecordNotFoundError  a stored record asked for by id does not exist
    ├── BusClosedError         a message sent after the bus shut down
    ├── NoSuchInboxError       a message sent to a component nobody registered
    ├── UnitError              a downstream unit (gateway layer)
    │   ├── UnitUnavailableError  not running, failed (crash loop) or breaker open
    │   ├── CallTimeoutError      a call exceeded its idle or absolute timeout
    │   └── UnknownUnitError      no unit of that name in the fleet
    ├── CatalogError           a catalog file or entry is invalid; names file and entry
    ├── SourceError            a discovery source (registry, npm, PyPI) failed or is open
    ├── AcquisitionError       an acquisition failed and was rolled back; names the step and why
    │   └── AcquisitionRefusedError  S5 policy (vetting, budget, operator) refused it; nothing installed
    └── SandboxError           a server cannot be launched as its sandbox profile demands
        ├── SandboxUnavailableError  no working bubblewrap and the profile forbids running unsandboxed
        └── LauncherChangedError     what a start would run differs from what was pinned at install/approval
"""

from __future__ import annotations

from pathlib import Path


class VsmError(Exception):
    """Root of every error VSM-MCP raises deliberately."""


class ConfigError(VsmError):
    """A setting is invalid; the message names the field and the source."""


class StateError(VsmError):
    """The state directory or database cannot be used."""


class StateCorruptError(StateError):
    """The state database is unreadable; it is left exactly as found."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(
            f"state database {path} is corrupt or not a VSM-MCP database ({detail}); "
            "it was not modified. Move it aside or pass another --state-dir."
        )
        self.path = path


class SchemaTooNewError(StateError):
    """The database schema is newer than this VSM-MCP understands."""

    def __init__(self, path: Path, found: int, supported: int) -> None:
        super().__init__(
            f"state database {path} has schema version {found}, but this VSM-MCP "
            f"supports up to {supported}; it was not modified. Upgrade vsm-mcp."
        )
        self.path = path
        self.found = found
        self.supported = supported


class RecordNotFoundError(StateError):
    """A stored record asked for by id (e.g. a dead letter to replay) does not exist."""


class BusClosedError(VsmError):
    """A message was sent to a bus or inbox that has shut down."""


class NoSuchInboxError(VsmError):
    """A message was addressed to a component that has no inbox on the bus."""


class UnitError(VsmError):
    """A downstream unit failed in a way the caller must hear about."""


class UnitUnavailableError(UnitError):
    """The unit cannot take calls now: starting, restarting, failed, or its breaker is open."""


class CallTimeoutError(UnitError):
    """A downstream call exceeded its idle timeout (no progress) or its absolute timeout."""


class UnknownUnitError(UnitError):
    """No downstream server of that name is in the fleet."""


class ListingTooLargeError(UnitError):
    """A server listed more tools, resources or prompts (or more bytes of them) than a unit keeps."""


class CatalogError(VsmError):
    """A catalog file cannot be used; the message names the file and the entry."""


class SourceError(VsmError):
    """A discovery source failed (timeout, HTTP error, bad payload) or its breaker is open."""


class AcquisitionError(VsmError):
    """Acquiring a server failed at ``step``; everything it did was rolled back."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"acquisition failed at {step}: {reason} (rolled back)")
        self.step = step
        self.reason = reason


class AcquisitionRefusedError(AcquisitionError):
    """S5 refused the acquisition (vetting rule, budget or the operator); nothing was installed."""

    def __init__(self, rule: str, reason: str) -> None:
        VsmError.__init__(self, f"acquisition refused ({rule}): {reason}")
        self.step = "vet"
        self.rule = rule
        self.reason = reason


class MissingSecretError(VsmError):
    """A server's spec refers to a secret that is not set; it is not started."""


class SandboxError(VsmError):
    """A downstream server cannot be launched as its sandbox profile demands."""


class SandboxUnavailableError(SandboxError):
    """bubblewrap cannot create sandboxes here and the profile forbids running unsandboxed."""


class LauncherChangedError(SandboxError):
    """The files a server's start would run differ from those pinned when it was installed or approved.

    Nothing is started; an operator who accepts the change re-pins it (``vsm-mcp servers trust NAME``).
    """
