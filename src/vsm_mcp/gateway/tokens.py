"""The HTTP face's access tokens: the admin token's file and the named tokens in the store.

`AdminTokenFile` is ``<state>/admin.token`` (`ADMIN_TOKEN_FILE`), mode 0600,
created on the first start of ``serve --http`` / ``up`` (`AdminTokenFile.ensure`)
or by ``vsm-mcp token rotate``. `TokenBook` is what ``vsm-mcp token ...`` does:
named tokens with scopes, stored as digests (`vsm_mcp.core.access`).

Invariants:

* a value is shown once, to whoever created or rotated it (and the admin
  value to ``token show``, which reads the owner-only file); nothing here
  logs one, and listings carry names, scopes and times only;
* the admin file is written whole and atomically (a private temporary file,
  then a hard link or rename), so a reader sees the old value or the new one,
  never a part; two first starts racing create one value;
* a running gateway notices a rotation or revocation within
  `vsm_mcp.gateway.keyring.REFRESH_S`, with no restart.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from vsm_mcp.core.access import (
    ADMIN,
    ALL_SCOPES,
    Scope,
    TokenRecord,
    check_token_name,
    token_digest,
)
from vsm_mcp.core.ports import Store
from vsm_mcp.errors import ConfigError
from vsm_mcp.gateway.profiles import ProfileBook

ADMIN_TOKEN_FILE = "admin.token"
#: kv key of the admin token's last use (the named tokens keep theirs in their rows).
ADMIN_LAST_USED_KEY = "access.admin.last_used"
#: 32 random bytes: 256 bits, beyond guessing; the prefix lets secret scanners recognise a leak.
TOKEN_PREFIX = "vsm_"
_TOKEN_BYTES = 32


def new_token_value() -> str:
    """A fresh token value: ``vsm_`` and 43 URL-safe characters (256 random bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


@dataclass(frozen=True, slots=True)
class AdminTokenFile:
    """The admin token's owner-only file in the state directory."""

    path: Path

    @classmethod
    def in_state(cls, state_dir: Path) -> AdminTokenFile:
        return cls(state_dir / ADMIN_TOKEN_FILE)

    def ensure(self) -> bool:
        """Create the file with a new value unless it exists; True when created.

        Raises:
            ConfigError: the file cannot be created or read.
        """
        try:
            self._write(new_token_value(), replace=False)
        except FileExistsError:
            self.read()  # exists: it must hold a value, and is narrowed to 0600 if it was wider
            return False
        return True

    def read(self) -> str:
        """The admin token's value.

        Raises:
            ConfigError: there is no file (yet), or it is empty or unreadable.
        """
        try:
            mode = self.path.stat().st_mode
            if mode & 0o077:
                self.path.chmod(stat.S_IMODE(mode) & 0o700)
            value = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise ConfigError(
                f"no admin token yet ({self.path}): the first `vsm-mcp serve --http` or `vsm-mcp up` "
                "creates it, or `vsm-mcp token rotate` now"
            ) from None
        except OSError as exc:
            raise ConfigError(f"admin token {self.path}: {exc.strerror}") from exc
        if not value:
            raise ConfigError(f"admin token file {self.path} is empty; renew it with `vsm-mcp token rotate`")
        return value

    def rotate(self) -> str:
        """Replace the value (creating the file if need be); returns the new value.

        Raises:
            ConfigError: the file cannot be written.
        """
        value = new_token_value()
        self._write(value, replace=True)
        return value

    def created_at(self) -> float | None:
        """When the current value was written (the file's mtime), None when there is none."""
        try:
            return self.path.stat().st_mtime
        except FileNotFoundError:
            return None

    def _write(self, value: str, *, replace: bool) -> None:
        """Write ``value`` to a private temporary file, then link (new) or rename (replace) it in place.

        Raises:
            FileExistsError: ``replace`` is false and the file exists.
            ConfigError: anything else failed.
        """
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(value + "\n")
                out.flush()
                os.fsync(out.fileno())
            if replace:
                os.replace(temporary, self.path)
            else:
                os.link(temporary, self.path)  # fails if it exists: one first start wins
        except FileExistsError:
            raise
        except OSError as exc:
            raise ConfigError(f"cannot write admin token {self.path}: {exc.strerror}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()


@dataclass(frozen=True, slots=True)
class TokenView:
    """A token as ``token list`` shows it: never its value."""

    name: str
    scopes: frozenset[Scope]
    created_at: float | None
    last_used_at: float | None
    profile: str | None = None


class TokenBook:
    """Create, list, revoke and rotate tokens (``vsm-mcp token ...``) over the store and the admin file."""

    def __init__(
        self, store: Store, admin: AdminTokenFile, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.admin = admin
        self._wall_clock = wall_clock

    async def create(self, name: str, scopes: Iterable[Scope], *, profile: str | None = None) -> str:
        """A new token ``name`` with ``scopes``, bound to ``profile`` when given; returns its value
        (shown once, stored as a digest).

        Raises:
            ConfigError: a bad or taken name, no scope, or no such profile.
        """
        held = frozenset(scopes)
        try:
            check_token_name(name)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if not held:
            raise ConfigError("a token needs at least one scope (--scope call, manage or approve)")
        if profile is not None:
            await ProfileBook(self.store).get(profile)  # it exists
        value = new_token_value()
        record = TokenRecord(name, token_digest(value), held, self._wall_clock(), profile=profile)
        if not await self.store.add_token(record):
            raise ConfigError(f"a token named {name!r} exists; `vsm-mcp token rotate {name}` renews it")
        return value

    async def list(self) -> list[TokenView]:
        """The admin token (when its file exists), then every named token by name."""
        views: list[TokenView] = []
        created = self.admin.created_at()
        if created is not None:
            used = await self.store.kv_get(ADMIN_LAST_USED_KEY)
            views.append(
                TokenView(ADMIN, ALL_SCOPES, created, float(used) if isinstance(used, int | float) else None)
            )
        views.extend(
            TokenView(t.name, t.scopes, t.created_at, t.last_used_at, t.profile)
            for t in await self.store.tokens()
        )
        return views

    async def revoke(self, name: str) -> None:
        """Forget token ``name``: a running gateway refuses it within a second.

        Raises:
            ConfigError: no such token, or ``admin`` (it can be rotated, not revoked).
        """
        if name == ADMIN:
            raise ConfigError("the admin token cannot be revoked; `vsm-mcp token rotate` replaces its value")
        if not await self.store.delete_token(name):
            raise ConfigError(f"no token named {name!r} (see `vsm-mcp token list`)")

    async def rotate(self, name: str = ADMIN) -> str:
        """A new value for token ``name`` (the admin token by default); the old one stops working.

        Raises:
            ConfigError: no such token, or the admin file cannot be written.
        """
        if name == ADMIN:
            return self.admin.rotate()
        value = new_token_value()
        if not await self.store.rotate_token(name, token_digest(value), self._wall_clock()):
            raise ConfigError(f"no token named {name!r} (see `vsm-mcp token list`)")
        return value
