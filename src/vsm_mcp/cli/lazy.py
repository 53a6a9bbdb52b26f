"""The root command's subcommands, imported only when one is run: `LazyGroup`.

``vsm-mcp --help`` and ``vsm-mcp status`` must start fast, and most commands
pull in the MCP SDK, the fleet or the catalog. So the root group knows each
subcommand by name and one-line help (`COMMANDS`) and imports its module only
when that subcommand is resolved (run, completed, or asked for its own help).
Invariants:

* the root help lists every command with the help its own module gives it (a
  test loads them all and compares, so `COMMANDS` cannot drift);
* a resolved command is the module's real one: options, help, completion and
  errors are exactly typer's.

Typer 0.29 coerces every option value through a pydantic ``TypeAdapter`` (importing
pydantic costs 0.1 s, more than the rest of ``vsm-mcp status``). `plain_coercion`
gives the options that need no validation (flags, plain strings and paths) typer's own
result without pydantic, and hands every other value to typer's adapter.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import typer
import typer.main
from typer._coercion import RuntimeParam, build_runtime_param, resolve_type_descriptor
from typer._param_types import coerce_cli_path
from typer.core import TyperCommand, TyperGroup

#: name -> (module, attribute, one-line help). The attribute is a `typer.Typer` (a group of
#: commands), or a ``register(root)`` function that adds the command to a root app.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "up": (
        "vsm_mcp.cli.up",
        "register",
        "Run VSM-MCP: gateway over streamable HTTP with S1-S5, S3* and the algedonic channel live.",
    ),
    "serve": (
        "vsm_mcp.cli.serve",
        "register",
        "Run the MCP gateway in front of the configured servers (HTTP: bearer tokens, `vsm-mcp token`).",
    ),
    "status": (
        "vsm_mcp.cli.inspect",
        "register",
        "The viable system at a glance: units, variety, alerts, decisions, audit.",
    ),
    "variety": (
        "vsm_mcp.cli.inspect",
        "register",
        "Environmental vs system variety, coverage and the gap, per demand category.",
    ),
    "doctor": (
        "vsm_mcp.cli.inspect",
        "register",
        "Check Python, node/npx, uv/pip, bubblewrap, the state dir and the servers' secrets; say how to fix each.",
    ),
    "match": (
        "vsm_mcp.cli.match",
        "register",
        "Rank the servers and tools of a catalog for QUERY (no LLM, no network).",
    ),
    "acquire": (
        "vsm_mcp.cli.acquire",
        "register",
        "Acquire a server for a need: rank, vet, install, verify, register.",
    ),
    "bench": (
        "vsm_mcp.cli.bench",
        "app",
        "Benchmarks that print measured ratios (compare, don't quote absolute times).",
    ),
    "catalog": (
        "vsm_mcp.cli.catalog",
        "app",
        "Search, show and regenerate the offline catalog of MCP servers.",
    ),
    "servers": ("vsm_mcp.cli.servers", "app", "Downstream MCP servers (System 1 units)."),
    "dlq": ("vsm_mcp.cli.servers", "dlq_app", "Failed calls kept for inspection and replay."),
    "secrets": (
        "vsm_mcp.cli.secrets",
        "app",
        "Secrets of the servers, referred to as ${secret:NAME} in their env or headers.",
    ),
    "token": (
        "vsm_mcp.cli.token",
        "app",
        "Bearer tokens of the HTTP face: every request needs `Authorization: Bearer <token>`.",
    ),
    "profiles": (
        "vsm_mcp.cli.profiles",
        "app",
        "Profiles: named subsets of servers and tools, served at /mcp/p/NAME and bindable to a token.",
    ),
    "client": ("vsm_mcp.cli.client", "app", "Set up an MCP client to use this gateway."),
    "alerts": ("vsm_mcp.cli.alerts", "app", "Algedonic alerts: list them, acknowledge the escalated ones."),
    "self": (
        "vsm_mcp.cli.self_cmd",
        "register",
        "What the system can and cannot do, its limits, health and recent changes (computed by it).",
    ),
    "reflect": (
        "vsm_mcp.cli.reflect",
        "register",
        "Predicted against observed outcomes (Brier score, reliability), contradictions, suggestions.",
    ),
    "decisions": (
        "vsm_mcp.cli.decisions",
        "app",
        "What the systems decided: list the stored decisions, show one whole.",
    ),
    "audit": (
        "vsm_mcp.cli.audit",
        "register",
        "The audit log: who (token or local user) did what, through which face; newest first.",
    ),
    "approvals": (
        "vsm_mcp.cli.approvals",
        "app",
        "Questions S5 keeps for an operator (acquisitions vetting asks about): list, show, approve, deny.",
    ),
}


def load(name: str) -> Any:
    """The real command ``name`` (importing its module).

    Raises:
        KeyError: no such command.
    """
    module_name, attribute, _ = COMMANDS[name]
    found: Any = getattr(importlib.import_module(module_name), attribute)
    command: Any
    if isinstance(found, typer.Typer):
        command = typer.main.get_group(found)  # a group as `add_typer` makes it (no completion options)
    else:
        holder = typer.Typer()
        found(holder)
        command = typer.main.get_group(holder).commands[name]
    command.name = name
    _plain(command)
    return command


def _plain(command: Any) -> None:
    """Plain help and errors for ``command`` and everything below it, as for the root (typer's rich
    formatter imports a Markdown renderer before the first line shows); options coerced by
    `plain_coercion`."""
    command.rich_markup_mode = None
    plain_coercion(command)
    for sub in (getattr(command, "commands", None) or {}).values():
        _plain(sub)


def plain_coercion(command: Any) -> None:
    """Give every typer parameter ``command`` parses (its help option too, made on first use) a
    coercion that needs no pydantic for plain values (`plain_param`)."""
    get_params = command.get_params

    def plain_params(ctx: Any) -> Any:
        params = get_params(ctx)
        for param in params:
            plain_param(param)
        return params

    command.get_params = plain_params


def plain_param(param: Any) -> None:
    """Give the typer parameter ``param`` `PlainRuntimeParam` in its lazily built coercion slot,
    unless typer built one already; a typer without that slot (another version) keeps its own
    coercion, only slower."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or getattr(param, "_runtime_param", "absent") is not None:
        return
    param._runtime_param = PlainRuntimeParam(
        parameter_info=descriptor.parameter_info, annotation=descriptor.annotation
    )


class PlainRuntimeParam(RuntimeParam):
    """Typer's result for a flag's bool, a plain ``str`` and a ``Path`` (with typer's own path
    checks); anything else goes through typer's pydantic adapter, built on first need."""

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        annotation: Any = self.annotation
        info = self.parameter_info
        if info.parser is None:
            if annotation is bool and isinstance(value, bool):
                return value
            if annotation is str and isinstance(value, str):
                return value
            if (
                isinstance(annotation, type)
                and issubclass(annotation, Path)
                and info.path_type is None
                and isinstance(value, str | Path)
            ):
                return coerce_cli_path(annotation(value), info, path_type=annotation, param=param, ctx=ctx)
        return self._typer()._coerce_value(value, param, ctx)

    def _typer(self) -> RuntimeParam:
        """Typer's own coercion for this parameter (built once)."""
        built: RuntimeParam | None = self.__dict__.get("_built")
        if built is None:
            descriptor = resolve_type_descriptor(
                annotation=self.annotation, parameter_info=self.parameter_info
            )
            built = build_runtime_param(descriptor)
            object.__setattr__(self, "_built", built)  # a frozen dataclass: the cache is not a field
        return built


class LazyGroup(TyperGroup):
    """A typer group whose subcommands are `COMMANDS`, each loaded when resolved (module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name, (_, _, short) in COMMANDS.items():
            if name not in self.commands:
                self.commands[name] = TyperCommand(name, help=short, short_help=short)
        self._loaded: set[str] = set()

    def get_params(self, ctx: Any) -> Any:
        """The root's parameters, coerced as `plain_param` says."""
        params = super().get_params(ctx)
        for param in params:
            plain_param(param)
        return params

    def _real(self, name: str) -> Any:
        if name in COMMANDS and name not in self._loaded:
            self.commands[name] = load(name)
            self._loaded.add(name)
        return self.commands.get(name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        """Load the command ``args`` names (typer's click is its own: its types stay ``Any`` here)."""
        if args:
            self._real(str(args[0]))
        return super().resolve_command(ctx, args)

    def load_all(self) -> None:
        """Load every command (the docs test walks the real tree)."""
        for name in COMMANDS:
            self._real(name)
