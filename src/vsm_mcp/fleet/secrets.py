"""A server's spec with its secret references filled in, just before a launch or a connect.

Specs hold ``${secret:NAME}`` references in ``env`` and ``headers`` values
(`vsm_mcp.core.secrets`); `resolve` returns a copy with the values from a
`SecretSource` (the store). Invariants:

* the resolved copy is only handed to the launch (process environment) or the
  HTTP client (headers); the unit keeps, shows and stores the spec with its
  references, and logs name only the variables, never their values;
* a reference to a secret that is not set refuses the start with
  `MissingSecretError`, naming every missing secret and how to set it;
* a spec without references is returned as it is, without asking the source.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from vsm_mcp.core.secrets import SECRET_REFERENCE, references
from vsm_mcp.errors import MissingSecretError
from vsm_mcp.fleet.spec import ServerSpec


class SecretSource(Protocol):
    """Where secret values come from (the `Store` implements it)."""

    async def secret(self, name: str) -> str | None: ...


def referenced(spec: ServerSpec) -> list[str]:
    """The secret names ``spec`` refers to, each once, in order of appearance."""
    names = [name for value in (*spec.env.values(), *spec.headers.values()) for name in references(value)]
    return list(dict.fromkeys(names))


def secret_users(specs: Iterable[ServerSpec]) -> dict[str, list[str]]:
    """Secret name -> the servers among ``specs`` that refer to it, in the specs' order."""
    users: dict[str, list[str]] = {}
    for spec in specs:
        for name in referenced(spec):
            users.setdefault(name, []).append(spec.name)
    return users


async def resolve(spec: ServerSpec, source: SecretSource | None) -> ServerSpec:
    """``spec`` with every ``${secret:NAME}`` in its env and headers values replaced by the value.

    Raises:
        MissingSecretError: a referenced secret is not set (or there is no source to ask).
    """
    names = referenced(spec)
    if not names:
        return spec
    values = {name: await source.secret(name) if source is not None else None for name in names}
    missing = [name for name, value in values.items() if value is None]
    if missing:
        listed = ", ".join(repr(name) for name in missing)
        raise MissingSecretError(
            f"server {spec.name!r} refers to secret{'s' if len(missing) > 1 else ''} {listed}, "
            f"not set: vsm-mcp secrets set {missing[0]} (then vsm-mcp servers restart {spec.name})"
        )

    def fill(value: str) -> str:
        return SECRET_REFERENCE.sub(lambda match: values[match.group(1)] or "", value)

    return spec.model_copy(
        update={
            "env": {key: fill(value) for key, value in spec.env.items()},
            "headers": {key: fill(value) for key, value in spec.headers.items()},
        }
    )
