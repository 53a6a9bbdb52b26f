"""`SqliteStore`: the durable `Store`, one SQLite file in WAL mode.

Invariants:

* Acknowledged == committed: every write runs in its own ``BEGIN IMMEDIATE``
  transaction that has committed, with ``synchronous=FULL`` (the WAL is
  fsynced at each commit), before the awaited call returns. A record whose
  write returned survives SIGKILL and power loss. A write whose caller was
  cancelled finishes in its thread (it cannot be interrupted half-way); it may
  or may not have committed, but never partly.
* Files are never overwritten on refusal: an existing file is inspected
  read-only first (`vsm_mcp.store.integrity`); a corrupt, foreign or newer
  database raises `StateCorruptError` / `SchemaTooNewError` with its bytes and
  mtime untouched. Only then is a read-write connection opened, WAL switched
  on and pending migrations applied (`vsm_mcp.store.migrations`).
* The event loop never blocks on SQLite: each operation runs in a worker
  thread (`anyio.to_thread.run_sync`), one at a time (an `anyio.Lock` around
  the single connection), so operations are applied in the order they
  acquired the lock.
* Behaviour (validation, JSON round trips, orderings) is the one in
  `vsm_mcp.store.records`, shared with `MemoryStore`.
* ``sqlite3.Error`` never escapes: it becomes `StateError` naming the file.
* The file (and its WAL and shared-memory files) is readable and writable by
  its owner only: it holds the servers' secrets.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from vsm_mcp.core.access import TokenRecord, scopes_text
from vsm_mcp.core.messages import (
    AlgedonicAlert,
    ApprovalRequest,
    ApprovalStatus,
    AuditFinding,
    Capability,
    DeadLetter,
    Decision,
    DemandAggregate,
    OperatorAction,
    Severity,
    Valence,
)
from vsm_mcp.core.ports import JsonValue
from vsm_mcp.core.secrets import check_secret_name
from vsm_mcp.errors import RecordNotFoundError, StateError
from vsm_mcp.store import records
from vsm_mcp.store.integrity import check_existing
from vsm_mcp.store.migrations import LATEST_VERSION, migrate

#: How long a write waits for another process's lock before failing. Only one
#: VSM-MCP should use a state file; this covers a `vsm-mcp status` reading it
#: meanwhile, whose reads take milliseconds.
BUSY_TIMEOUT_S = 5.0

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """How the database is configured, as SQLite reports it (for `vsm-mcp doctor`)."""

    path: Path
    schema_version: int
    journal_mode: str
    synchronous: int  # 2 = FULL
    foreign_keys: bool
    busy_timeout_ms: int


def _keep_private(path: Path) -> None:
    """The database holds secrets: only its owner may read or write it.

    A new file is created with mode 0600 (SQLite gives its WAL and shared-memory
    files the database's mode); an existing one readable by others is narrowed.

    Raises:
        OSError: the file cannot be created, or its mode changed.
    """
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = name.stat().st_mode
        except FileNotFoundError:
            continue
        if mode & 0o077:
            name.chmod(stat.S_IMODE(mode) & 0o700)


def _connect(path: Path) -> sqlite3.Connection:
    """Inspect, open read-write, configure and migrate; blocking."""
    check_existing(path, LATEST_VERSION)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _keep_private(path)
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise StateError(f"cannot open state database {path}: {exc}") from exc
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StateError(f"state database {path} cannot use WAL journal mode (got {mode!r})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn, path)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.Error):
            raise StateError(f"cannot prepare state database {path}: {exc}") from exc
        raise
    return conn


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


_APPROVAL_COLUMNS = "id, kind, subject, asked_at, question, request, status, decided_at, decided_by, outcome"


def _approval(row: Any) -> ApprovalRequest:
    approval_id, kind, subject, asked_at, question, request, status, decided_at, decided_by, outcome = row
    return ApprovalRequest(
        kind=kind,
        subject=subject,
        asked_at=asked_at,
        question=question,
        request=records.decode_json(request),
        status=ApprovalStatus(status),
        id=approval_id,
        decided_at=decided_at,
        decided_by=decided_by,
        outcome=outcome,
    )


class SqliteStore:
    """The `Store` on one SQLite file; open with ``async with SqliteStore.open(path)``."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._path = path
        self._lock = anyio.Lock()

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path | str) -> AsyncIterator[SqliteStore]:
        """Open (creating or upgrading) the database at ``path``; close it on exit.

        Raises:
            StateCorruptError: the file is damaged or not ours; left untouched.
            SchemaTooNewError: written by a newer VSM-MCP; left untouched.
            StateError: it cannot be opened, configured or migrated.
        """
        resolved = Path(path)
        conn = await anyio.to_thread.run_sync(_connect, resolved)
        store = cls(conn, resolved)
        try:
            yield store
        finally:
            with anyio.CancelScope(shield=True):
                await store.close()

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    async def health(self) -> StoreHealth:
        """The live connection's settings and schema version."""

        def read(conn: sqlite3.Connection) -> StoreHealth:
            def pragma(name: str) -> Any:
                return conn.execute(f"PRAGMA {name}").fetchone()[0]

            return StoreHealth(
                path=self._path,
                schema_version=int(pragma("user_version")),
                journal_mode=str(pragma("journal_mode")),
                synchronous=int(pragma("synchronous")),
                foreign_keys=bool(pragma("foreign_keys")),
                busy_timeout_ms=int(pragma("busy_timeout")),
            )

        return await self._run(read)

    async def _run(self, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        async with self._lock:
            conn = self._conn
            if conn is None:
                raise StateError(f"state database {self._path} is closed")
            try:
                return await anyio.to_thread.run_sync(operation, conn)
            except sqlite3.Error as exc:
                raise StateError(f"state database {self._path}: {exc}") from exc

    async def _insert(self, sql: str, params: tuple[object, ...]) -> int:
        def insert(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                rowid = conn.execute(sql, params).lastrowid
            assert rowid is not None  # an INSERT always sets it
            return rowid

        return await self._run(insert)

    async def _select(self, sql: str, params: tuple[object, ...] = ()) -> list[Any]:
        return await self._run(lambda conn: conn.execute(sql, params).fetchall())

    async def add_demand(self, aggregates: Sequence[DemandAggregate]) -> None:
        """Sum ``aggregates`` into their (category, bucket) rows, in one transaction."""
        for aggregate in aggregates:
            records.check_demand(aggregate)
        rows = [(a.category, a.bucket_start, a.count, a.matched) for a in aggregates]
        if not rows:
            return

        def upsert(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.executemany(
                    "INSERT INTO demand_aggregate (category, bucket_start, count, matched) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (category, bucket_start) DO UPDATE SET "
                    "count = count + excluded.count, matched = matched + excluded.matched",
                    rows,
                )

        await self._run(upsert)

    async def demand_since(self, bucket_start: int) -> list[DemandAggregate]:
        """Aggregates from ``bucket_start`` on, by bucket then category."""
        rows = await self._select(
            "SELECT category, bucket_start, count, matched FROM demand_aggregate "
            "WHERE bucket_start >= ? ORDER BY bucket_start, category",
            (bucket_start,),
        )
        return [DemandAggregate(str(c), int(b), int(n), int(m)) for c, b, n, m in rows]

    async def put_capabilities(self, unit: str, capabilities: Sequence[Capability]) -> None:
        """Replace the capabilities of ``unit``, in one transaction."""
        listed = list(capabilities)
        records.check_capabilities(unit, listed)
        rows = [(c.unit, c.tool, c.category, c.description) for c in listed]

        def replace(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.execute("DELETE FROM capability WHERE unit = ?", (unit,))
                conn.executemany("INSERT OR REPLACE INTO capability VALUES (?, ?, ?, ?)", rows)

        await self._run(replace)

    async def capabilities(self) -> list[Capability]:
        """Every capability, by unit, tool, category."""
        rows = await self._select(
            "SELECT unit, tool, category, description FROM capability ORDER BY unit, tool, category"
        )
        return [Capability(str(u), str(t), str(c), str(d)) for u, t, c, d in rows]

    async def record_decision(self, decision: Decision) -> int:
        """Store ``decision``; return its id once committed."""
        return await self._insert(
            "INSERT INTO decision (at, system, subject, choice, rule, rationale, inputs, alternatives) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                decision.at,
                decision.system,
                decision.subject,
                decision.choice,
                decision.rule,
                decision.rationale,
                records.encode_payload(decision.inputs),
                records.encode_payload(decision.alternatives),
            ),
        )

    async def decisions(self, limit: int = 100) -> list[Decision]:
        """The ``limit`` most recent decisions, most recent first."""
        records.check_limit(limit)
        rows = await self._select(
            f"SELECT {_DECISION_COLUMNS} FROM decision ORDER BY at DESC, id DESC LIMIT ?", (limit,)
        )
        return [_decision(row) for row in rows]

    async def decision(self, decision_id: int) -> Decision | None:
        """One decision by id, None when there is none."""
        rows = await self._select(f"SELECT {_DECISION_COLUMNS} FROM decision WHERE id = ?", (decision_id,))
        return _decision(rows[0]) if rows else None

    async def next_decision(self, subject: str, after_id: int) -> Decision | None:
        """The first decision about ``subject`` stored after decision ``after_id`` (ids only grow)."""
        rows = await self._select(
            f"SELECT {_DECISION_COLUMNS} FROM decision WHERE id > ? AND subject = ? ORDER BY id LIMIT 1",
            (after_id, subject),
        )
        return _decision(rows[0]) if rows else None

    async def record_alert(self, alert: AlgedonicAlert) -> int:
        """Store ``alert``; return its id once committed."""
        records.check_alert(alert)
        return await self._insert(
            "INSERT INTO algedonic_alert (source, kind, valence, severity, count, first_at, last_at, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                alert.source,
                alert.kind,
                alert.valence.value,
                int(alert.severity),
                alert.count,
                alert.first_at,
                alert.last_at,
                records.store_text(alert.detail),
            ),
        )

    async def alerts(self, limit: int = 100) -> list[AlgedonicAlert]:
        """The ``limit`` most recent alerts (by ``last_at``), most recent first."""
        records.check_limit(limit)
        rows = await self._select(
            "SELECT source, kind, valence, severity, count, first_at, last_at, detail, id FROM algedonic_alert "
            "ORDER BY last_at DESC, id DESC LIMIT ?",
            (limit,),
        )
        return [
            AlgedonicAlert(
                source=source,
                kind=kind,
                valence=Valence(valence),
                severity=Severity(severity),
                count=count,
                first_at=first_at,
                last_at=last_at,
                detail=detail,
                id=alert_id,
            )
            for source, kind, valence, severity, count, first_at, last_at, detail, alert_id in rows
        ]

    async def record_finding(self, finding: AuditFinding) -> int:
        """Store ``finding``; return its id once committed."""
        return await self._insert(
            "INSERT INTO audit_finding (at, unit, check_name, ok, detail, latency_ms) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                finding.at,
                finding.unit,
                finding.check,
                int(finding.ok),
                records.store_text(finding.detail),
                finding.latency_ms,
            ),
        )

    async def findings(self, limit: int = 100) -> list[AuditFinding]:
        """The ``limit`` most recent audit findings, most recent first."""
        records.check_limit(limit)
        rows = await self._select(
            "SELECT at, unit, check_name, ok, detail, latency_ms FROM audit_finding "
            "ORDER BY at DESC, id DESC LIMIT ?",
            (limit,),
        )
        return [
            AuditFinding(at=at, unit=unit, check=check, ok=bool(ok), detail=detail, latency_ms=latency_ms)
            for at, unit, check, ok, detail, latency_ms in rows
        ]

    async def record_action(self, action: OperatorAction) -> int:
        """Append ``action`` to the audit log; return its id once committed."""
        return await self._insert(
            "INSERT INTO operator_action (at, actor, action, target, via, detail, ok) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                action.at,
                action.actor,
                action.action,
                action.target,
                action.via,
                records.store_text(action.detail),
                int(action.ok),
            ),
        )

    async def actions(
        self, limit: int = 100, *, actor: str | None = None, action: str | None = None
    ) -> list[OperatorAction]:
        """The audit log, newest first; one actor's, or actions starting with ``action``, when given."""
        records.check_limit(limit)
        where: list[str] = []
        args: list[str | int] = []
        if actor is not None:
            where.append("actor = ?")
            args.append(actor)
        if action is not None:
            where.append("substr(action, 1, ?) = ?")
            args += [len(action), action]
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = await self._select(
            "SELECT id, at, actor, action, target, via, detail, ok FROM operator_action "
            f"{clause}ORDER BY at DESC, id DESC LIMIT ?",
            (*args, limit),
        )
        return [
            OperatorAction(
                float(at), str(who), str(what), str(target), str(via), str(detail), bool(ok), int(i)
            )
            for i, at, who, what, target, via, detail, ok in rows
        ]

    async def put_dead_letter(self, letter: DeadLetter) -> int:
        """Store ``letter`` under a new id (its own ``id`` is ignored); return the id."""
        return await self._insert(
            "INSERT INTO dead_letter (at, unit, tool, arguments, error, attempts, replayed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                letter.at,
                letter.unit,
                letter.tool,
                records.encode_payload(letter.arguments),
                records.store_text(letter.error),
                letter.attempts,
                letter.replayed_at,
            ),
        )

    async def dead_letters(self, *, include_replayed: bool = False) -> list[DeadLetter]:
        """Dead letters, oldest first; replayed ones only if ``include_replayed``."""
        where = "" if include_replayed else "WHERE replayed_at IS NULL "
        rows = await self._select(
            "SELECT id, at, unit, tool, arguments, error, attempts, replayed_at FROM dead_letter "
            f"{where}ORDER BY at, id"
        )
        return [
            DeadLetter(
                id=letter_id,
                at=at,
                unit=unit,
                tool=tool,
                arguments=records.decode_json(arguments),
                error=error,
                attempts=attempts,
                replayed_at=replayed_at,
            )
            for letter_id, at, unit, tool, arguments, error, attempts, replayed_at in rows
        ]

    async def mark_replayed(self, letter_id: int, at: float) -> None:
        """Set the replay time of dead letter ``letter_id`` to ``at`` (a later replay overwrites).

        Raises:
            RecordNotFoundError: no dead letter has that id.
        """

        def mark(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                return conn.execute(
                    "UPDATE dead_letter SET replayed_at = ? WHERE id = ?", (at, letter_id)
                ).rowcount

        if await self._run(mark) == 0:
            raise RecordNotFoundError(f"no dead letter with id {letter_id}")

    async def note_failed_replay(self, letter_id: int, error: str) -> None:
        """One attempt more for dead letter ``letter_id``, failing with ``error``.

        Raises:
            RecordNotFoundError: no dead letter has that id.
        """
        text = records.store_text(error)

        def note(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                return conn.execute(
                    "UPDATE dead_letter SET attempts = attempts + 1, error = ? WHERE id = ?",
                    (text, letter_id),
                ).rowcount

        if await self._run(note) == 0:
            raise RecordNotFoundError(f"no dead letter with id {letter_id}")

    async def ask_approval(self, request: ApprovalRequest) -> tuple[int, bool]:
        """Keep a pending question; an equal subject already pending comes back with False."""
        records.check_approval(request)
        row = (
            request.kind,
            request.subject,
            request.asked_at,
            records.store_text(request.question),
            records.encode_payload(request.request),
        )

        def ask(conn: sqlite3.Connection) -> tuple[int, bool]:
            with _transaction(conn):
                found = conn.execute(
                    "SELECT id FROM approval WHERE subject = ? AND status = 'pending'", (request.subject,)
                ).fetchone()
                if found is not None:
                    return int(found[0]), False
                rowid = conn.execute(
                    "INSERT INTO approval (kind, subject, asked_at, question, request, status) "
                    "VALUES (?, ?, ?, ?, ?, 'pending')",
                    row,
                ).lastrowid
            assert rowid is not None
            return rowid, True

        return await self._run(ask)

    async def approvals(
        self, *, status: ApprovalStatus | None = None, subject: str | None = None, limit: int = 100
    ) -> list[ApprovalRequest]:
        """Questions for an operator, newest first, optionally of one status or subject."""
        where, params = [], []
        if status is not None:
            where.append("status = ?")
            params.append(status.value)
        if subject is not None:
            where.append("subject = ?")
            params.append(subject)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = await self._select(
            f"SELECT {_APPROVAL_COLUMNS} FROM approval {clause}ORDER BY id DESC LIMIT ?", (*params, limit)
        )
        return [_approval(row) for row in rows]

    async def approval(self, approval_id: int) -> ApprovalRequest | None:
        """One question by id, None when there is none."""
        rows = await self._select(f"SELECT {_APPROVAL_COLUMNS} FROM approval WHERE id = ?", (approval_id,))
        return _approval(rows[0]) if rows else None

    async def settle_approval(
        self,
        approval_id: int,
        *,
        expect: ApprovalStatus,
        status: ApprovalStatus,
        at: float,
        by: str | None = None,
        outcome: str | None = None,
    ) -> bool:
        """Move question ``approval_id`` from ``expect`` to ``status``; False when it was not in ``expect``."""
        params = (status.value, at, by, None if outcome is None else records.store_text(outcome), approval_id)

        def settle(conn: sqlite3.Connection) -> bool:
            with _transaction(conn):
                return (
                    conn.execute(
                        "UPDATE approval SET status = ?, decided_at = ?, decided_by = COALESCE(?, decided_by), "
                        "outcome = ? WHERE id = ? AND status = ?",
                        (*params, expect.value),
                    ).rowcount
                    > 0
                )

        return await self._run(settle)

    async def kv_get(self, key: str) -> JsonValue:
        """The value stored under ``key``, or None when absent."""
        rows = await self._select("SELECT value FROM kv WHERE key = ?", (key,))
        return records.decode_kv(rows[0][0] if rows else None)

    async def kv_put(self, key: str, value: JsonValue) -> None:
        """Store ``value`` under ``key``, replacing any old value, once committed."""
        text = records.encode_json(value)

        def put(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.execute(
                    "INSERT INTO kv (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, text),
                )

        await self._run(put)

    async def put_secret(self, name: str, value: str, at: float) -> None:
        """Store secret ``name``, replacing any old value, once committed."""
        check_secret_name(name)

        def put(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.execute(
                    "INSERT INTO secret (name, value, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                    (name, value, at),
                )

        await self._run(put)

    async def secret(self, name: str) -> str | None:
        """The value of secret ``name``, or None when it is not set."""
        rows = await self._select("SELECT value FROM secret WHERE name = ?", (name,))
        return str(rows[0][0]) if rows else None

    async def secret_names(self) -> list[tuple[str, float]]:
        """Every secret's name and when it was set, by name; never the values."""
        rows = await self._select("SELECT name, updated_at FROM secret ORDER BY name")
        return [(str(name), float(at)) for name, at in rows]

    async def delete_secret(self, name: str) -> bool:
        """Forget secret ``name``; False when it was not set."""

        def delete(conn: sqlite3.Connection) -> bool:
            with _transaction(conn):
                return conn.execute("DELETE FROM secret WHERE name = ?", (name,)).rowcount > 0

        return await self._run(delete)

    async def add_token(self, token: TokenRecord) -> bool:
        """Store a new access token (its digest, never its value); False when the name is taken."""
        records.check_token(token)
        row = (
            token.name,
            token.digest,
            scopes_text(token.scopes),
            token.created_at,
            token.last_used_at,
            token.profile,
        )

        def insert(conn: sqlite3.Connection) -> bool:
            with _transaction(conn):
                sql = (
                    "INSERT OR IGNORE INTO token (name, digest, scopes, created_at, last_used_at, profile) "
                    "VALUES (?, ?, ?, ?, ?, ?)"
                )
                return conn.execute(sql, row).rowcount > 0

        return await self._run(insert)

    async def tokens(self) -> list[TokenRecord]:
        """Every stored access token, by name."""
        rows = await self._select(
            "SELECT name, digest, scopes, created_at, last_used_at, profile FROM token ORDER BY name"
        )
        return [
            TokenRecord(str(n), str(d), records.decode_scopes(str(s)), float(c), u, p)
            for n, d, s, c, u, p in rows
        ]

    async def rotate_token(self, name: str, digest: str, at: float) -> bool:
        """Give token ``name`` a new digest (created ``at``, never used); False when there is none."""

        def update(conn: sqlite3.Connection) -> bool:
            with _transaction(conn):
                return (
                    conn.execute(
                        "UPDATE token SET digest = ?, created_at = ?, last_used_at = NULL WHERE name = ?",
                        (digest, at, name),
                    ).rowcount
                    > 0
                )

        return await self._run(update)

    async def delete_token(self, name: str) -> bool:
        """Forget token ``name``; False when there was none."""

        def delete(conn: sqlite3.Connection) -> bool:
            with _transaction(conn):
                return conn.execute("DELETE FROM token WHERE name = ?", (name,)).rowcount > 0

        return await self._run(delete)

    async def mark_tokens_used(self, used: Mapping[str, float]) -> None:
        """Record last uses (name -> time) of stored tokens, in one transaction; never moves one back."""
        rows = [(at, name, at) for name, at in used.items()]
        if not rows:
            return

        def update(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.executemany(
                    "UPDATE token SET last_used_at = ? WHERE name = ? "
                    "AND (last_used_at IS NULL OR last_used_at < ?)",
                    rows,
                )

        await self._run(update)

    async def close(self) -> None:
        """Close the connection (checkpointing the WAL); idempotent."""
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                await anyio.to_thread.run_sync(conn.close)


_DECISION_COLUMNS = "id, at, system, subject, choice, rule, rationale, inputs, alternatives"


def _decision(row: Sequence[Any]) -> Decision:
    decision_id, at, system, subject, choice, rule, rationale, inputs, alternatives = row
    return Decision(
        at=float(at),
        system=str(system),
        subject=str(subject),
        choice=str(choice),
        rule=str(rule),
        rationale=str(rationale),
        inputs=records.decode_json(str(inputs)),
        alternatives=records.decode_json(str(alternatives)),
        id=int(decision_id),
    )
