"""`Keyring`: the HTTP face's token verifier (the SDK's `TokenVerifier`), over the store and admin file.

The SDK's `BearerAuthBackend` hands it the value after ``Bearer``; it answers
with an `AccessToken` whose ``client_id`` is the token's name and whose
``scopes`` are its scopes, or None (the SDK's `RequireAuthMiddleware` then
answers 401 with ``WWW-Authenticate: Bearer``).

Invariants:

* a value is compared only as its digest, with `hmac.compare_digest`,
  against every known digest (no early exit), and is never kept: the
  `AccessToken` carries the digest's prefix as its ``subject``, so a session
  belongs to one value of one token (the SDK refuses a session to any other
  credential, a rotated value of the same token included);
* what is known is read again at most every `REFRESH_S`, and after a miss
  at most every `MISS_REFRESH_S` (a token created a moment ago works at
  once; a flood of wrong values costs at most that many reads), so a revoked
  or rotated token stops working within `REFRESH_S` without a restart;
* last uses are kept in memory and written every `LAST_USE_FLUSH_S` and when
  `running` ends, not once per request (each write is a committed transaction).
"""

from __future__ import annotations

import contextlib
import hmac
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from mcp.server.auth.provider import AccessToken

from vsm_mcp.core.access import ADMIN, ALL_SCOPES, Principal, Scope, token_digest
from vsm_mcp.core.ports import Store
from vsm_mcp.errors import ConfigError
from vsm_mcp.gateway.tokens import ADMIN_LAST_USED_KEY, AdminTokenFile

#: Revocations and rotations made by `vsm-mcp token ...` reach a running gateway within this.
REFRESH_S = 1.0
#: An unknown value rereads the store at most this often (new tokens work at once, floods stay cheap).
MISS_REFRESH_S = 0.1
#: `token list` shows a last use at most this stale; each flush is one transaction.
LAST_USE_FLUSH_S = 60.0
#: The ``iss`` claim of every token this gateway verifies.
ISSUER = "vsm-mcp"
#: The claim naming the profile a token is bound to (absent: unbound).
PROFILE_CLAIM = "vsm_profile"


@dataclass(frozen=True, slots=True)
class _Known:
    principal: Principal
    digest: str


def principal_of_token(token: AccessToken) -> Principal:
    """The `Principal` a verified `AccessToken` stands for."""
    known = {s.value for s in Scope}
    profile = (token.claims or {}).get(PROFILE_CLAIM)
    return Principal(
        token.client_id,
        frozenset(Scope(s) for s in token.scopes if s in known),
        profile=profile if isinstance(profile, str) else None,
    )


class Keyring:
    """Verifies bearer values against the admin file and the stored tokens (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        admin: AdminTokenFile,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.admin = admin
        self._clock = clock
        self._wall_clock = wall_clock
        self._known: list[_Known] = []
        self._loaded_at = -float("inf")
        self._lock = anyio.Lock()
        self._used: dict[str, float] = {}

    async def verify_token(self, token: str) -> AccessToken | None:
        """The `AccessToken` of a known value, else None (the SDK's `TokenVerifier` protocol)."""
        return await self.verify_digest(token_digest(token))

    async def verify_digest(self, digest: str) -> AccessToken | None:
        """`verify_token` for a value known only by its digest (a browser session keeps no value):
        a revoked or rotated token stops verifying within `REFRESH_S`."""
        await self._refresh(REFRESH_S)
        found = self._match(digest)
        if found is None:
            await self._refresh(MISS_REFRESH_S)
            found = self._match(digest)
        if found is None:
            return None
        self._used[found.principal.name] = self._wall_clock()
        return AccessToken(
            token=f"sha256:{found.digest}",
            client_id=found.principal.name,
            scopes=[s.value for s in Scope if s in found.principal.scopes],
            subject=found.digest[:16],
            claims={"iss": ISSUER}
            if found.principal.profile is None
            else {"iss": ISSUER, PROFILE_CLAIM: found.principal.profile},
        )

    def _match(self, digest: str) -> _Known | None:
        found: _Known | None = None
        for known in self._known:  # every digest is compared: the time does not say which one matched
            if hmac.compare_digest(digest, known.digest) and found is None:
                found = known
        return found

    async def _refresh(self, max_age_s: float) -> None:
        if self._clock() - self._loaded_at < max_age_s:
            return
        async with self._lock:
            if self._clock() - self._loaded_at < max_age_s:
                return  # another request reloaded while this one waited
            known: list[_Known] = []
            with contextlib.suppress(ConfigError):  # no admin file (removed by hand): named tokens only
                known.append(_Known(Principal(ADMIN, ALL_SCOPES), token_digest(self.admin.read())))
            known.extend(
                _Known(Principal(t.name, t.scopes, profile=t.profile), t.digest)
                for t in await self.store.tokens()
            )
            self._known = known
            self._loaded_at = self._clock()

    async def flush(self) -> None:
        """Write the last uses seen since the previous flush."""
        used, self._used = self._used, {}
        admin = used.pop(ADMIN, None)
        if admin is not None:
            await self.store.kv_put(ADMIN_LAST_USED_KEY, admin)
        await self.store.mark_tokens_used(used)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Keyring]:
        """Flush last uses every `LAST_USE_FLUSH_S` while inside, and once more on the way out."""
        async with anyio.create_task_group() as tg:

            async def flush_every() -> None:
                while True:
                    await anyio.sleep(LAST_USE_FLUSH_S)
                    await self.flush()

            tg.start_soon(flush_every)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    await self.flush()
