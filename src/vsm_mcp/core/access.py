"""Who may do what on the gateway's faces: scopes, principals and stored token records.

A client of the HTTP face is a *principal*: the named token it presented and
the scopes that token holds. On stdio the principal is the local user who
started the gateway (they hold every scope: they could run ``vsm-mcp acquire``
themselves). Scopes:

* ``call``: list and call tools, read resources and prompts, status;
* ``manage``: change the fleet (add, remove, restart servers) through any
  tool or route that does;
* ``approve``: acquire capabilities and answer S5's approval questions.

The admin token holds all three. Invariants:

* a stored token is its name, its scopes and the SHA-256 of its value
  (`token_digest`), never the value. The values are 256-bit random strings
  the gateway generated, not passwords a person chose: nobody can guess one
  from its digest, so a slow KDF (which protects low-entropy secrets) would
  only add milliseconds to every request;
* a token has at least one scope; names are 1-64 letters, digits, ``_``, ``-``
  or ``.``, and ``admin`` is the admin token's alone (`ADMIN`);
* the refusal text is one sentence naming the token, the scope and what it
  guards (`lacks_scope`), the same on every face and in stored decisions.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass


class Scope(enum.StrEnum):
    """What a token allows (see the module docstring)."""

    CALL = "call"
    MANAGE = "manage"
    APPROVE = "approve"


ALL_SCOPES = frozenset(Scope)
#: The admin token's name; `token create` refuses it.
ADMIN = "admin"
TOKEN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def token_digest(value: str) -> str:
    """The stored form of a token value: SHA-256, hex (see the module docstring for why no KDF)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def check_token_name(name: str, *, allow_admin: bool = False) -> None:
    """Refuse a name a token cannot have.

    Raises:
        ValueError: not 1-64 letters, digits, ``_``, ``-`` or ``.``; or ``admin`` when not allowed.
    """
    if not TOKEN_NAME.fullmatch(name):
        raise ValueError(f"token name {name!r} must be 1-64 letters, digits, '_', '-' or '.'")
    if name == ADMIN and not allow_admin:
        raise ValueError(f"token name {ADMIN!r} is the admin token's (`vsm-mcp token rotate` renews it)")


def parse_scopes(words: Iterable[str]) -> frozenset[Scope]:
    """Scopes from words (``call``, ``manage``, ``approve``; commas or spaces between them).

    Raises:
        ValueError: an unknown scope, or none at all.
    """
    found: set[Scope] = set()
    for word in words:
        for part in re.split(r"[\s,]+", word.strip()):
            if not part:
                continue
            try:
                found.add(Scope(part.lower()))
            except ValueError:
                known = ", ".join(s.value for s in Scope)
                raise ValueError(f"unknown scope {part!r} (known: {known})") from None
    if not found:
        raise ValueError("a token needs at least one scope (call, manage, approve)")
    return frozenset(found)


def scopes_text(scopes: Iterable[Scope]) -> str:
    """Scopes as stored and shown: their values in `Scope` order, space-separated."""
    held = set(scopes)
    return " ".join(s.value for s in Scope if s in held)


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored token: never its value (see the module docstring)."""

    name: str
    digest: str
    scopes: frozenset[Scope]
    created_at: float
    last_used_at: float | None = None
    #: The profile the token is bound to (`vsm_mcp.core.profiles`): it sees that subset only.
    profile: str | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who sent a request: a named token with its scopes, or the local user on stdio."""

    name: str
    scopes: frozenset[Scope]
    local: bool = False
    #: The profile a bound token sees everywhere (None: every tool, or the path's profile).
    profile: str | None = None

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes

    @property
    def label(self) -> str:
        """How decisions and messages name it: ``token 'ci'`` or ``local user alice (stdio)``."""
        return f"local user {self.name} (stdio)" if self.local else f"token {self.name!r}"


def lacks_scope(principal: Principal, scope: Scope, what: str) -> str:
    """The refusal: ``token 'ci' lacks scope 'approve' needed for vsm_acquire_capability``."""
    return f"{principal.label} lacks scope {scope.value!r} needed for {what}"
