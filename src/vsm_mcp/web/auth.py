"""Who is at the page or the API, and may they: the HTTP face's tokens, a browser's session.

An API client sends ``Authorization: Bearer <token>``, as an MCP client does
(the same `Keyring`, the same scopes). A browser logs in once with a token
(`WebSessions.open`) and gets a session cookie (`SESSION_COOKIE`: HttpOnly,
SameSite=Strict, Secure under TLS); the session keeps the token's digest, never
its value, and is checked against the keyring on every request, so a revoked
or rotated token ends its sessions within the keyring's refresh time.

Invariants:

* every route needs a verified principal (401 otherwise); a read needs any
  scope, a change the scope its route names (403 otherwise, naming it);
* a change made with a session cookie carries the session's CSRF value in
  `CSRF_HEADER` (403 otherwise); a bearer request needs none (a browser
  cannot add that header to a cross-site request);
* a token bound to a profile sees a subset of the fleet: the operator page
  and API, which show all of it, refuse it (403);
* sessions are bounded in number (`MAX_SESSIONS`, the oldest go first) and
  in time (`SESSION_TTL_S`).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request

from vsm_mcp.core.access import Principal, Scope, lacks_scope
from vsm_mcp.gateway.keyring import Keyring, principal_of_token

SESSION_COOKIE = "vsm_session"
CSRF_HEADER = "X-CSRF-Token"
#: A browser session lasts this long after login.
SESSION_TTL_S = 12 * 3600.0
#: Browser sessions kept at most; a login beyond it ends the oldest.
MAX_SESSIONS = 1024
#: Methods that change nothing (no scope beyond any, no CSRF value).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class WebSession:
    """One browser's login: whose token (by digest), its CSRF value, when it ends."""

    digest: str
    csrf: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Caller:
    """The verified principal of one request and how it proved it."""

    principal: Principal
    session: WebSession | None


class WebSessions:
    """Browser sessions of the page (module docstring)."""

    def __init__(self, keyring: Keyring, *, clock: Callable[[], float] = time.time) -> None:
        self.keyring = keyring
        self._clock = clock
        self._sessions: OrderedDict[str, WebSession] = OrderedDict()

    async def open(self, token: str) -> tuple[str, WebSession, Principal]:
        """Log in with a token value: a new session id, the session and its principal.

        Raises:
            HTTPException: 401 for an unknown token, 403 for one bound to a profile.
        """
        verified = await self.keyring.verify_token(token.strip())
        if verified is None:
            raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
        principal = _unbound(principal_of_token(verified))
        session = WebSession(
            verified.token.removeprefix("sha256:"), secrets.token_urlsafe(32), self._clock() + SESSION_TTL_S
        )
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = session
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return sid, session, principal

    def close(self, sid: str) -> None:
        """End a session (logout)."""
        self._sessions.pop(sid, None)

    async def caller(self, request: Request) -> Caller:
        """The verified caller of ``request``: its bearer token, else its session cookie.

        Raises:
            HTTPException: 401 without either (or with an expired or revoked one); 403 for a
                token bound to a profile.
        """
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            verified = await self.keyring.verify_token(value.strip())
            if verified is None:
                raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
            return Caller(_unbound(principal_of_token(verified)), None)
        sid = request.cookies.get(SESSION_COOKIE)
        session = self._sessions.get(sid) if sid else None
        if sid and session is not None and session.expires_at <= self._clock():
            self.close(sid)
            session = None
        if session is None:
            raise HTTPException(401, "log in with a token", headers={"WWW-Authenticate": "Bearer"})
        verified = await self.keyring.verify_digest(session.digest)
        if verified is None:  # revoked or rotated since the login
            self.close(sid or "")
            raise HTTPException(401, "the token of this session is no longer valid: log in again")
        return Caller(_unbound(principal_of_token(verified)), session)


def _unbound(principal: Principal) -> Principal:
    if principal.profile is not None:
        raise HTTPException(
            403,
            f"token {principal.name!r} is bound to profile {principal.profile!r}; "
            "the operator page shows the whole fleet and needs an unbound token",
        )
    return principal


def require(caller: Caller, request: Request, scope: Scope | None, what: str) -> None:
    """Refuse ``request`` unless ``caller`` holds ``scope`` (None: a read, any scope will do)
    and, for a change made with a session cookie, sent the session's CSRF value.

    Raises:
        HTTPException: 403 naming the missing scope or the missing CSRF value.
    """
    principal = caller.principal
    if scope is not None and scope not in principal.scopes:
        raise HTTPException(403, lacks_scope(principal, scope, what))
    if scope is None and not principal.scopes:
        raise HTTPException(403, f"token {principal.name!r} holds no scope")
    session = caller.session
    if request.method not in SAFE_METHODS and session is not None:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise HTTPException(403, f"missing or wrong {CSRF_HEADER} header (reload the page)")
