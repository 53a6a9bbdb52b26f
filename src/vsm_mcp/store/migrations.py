"""Versioned schema of the state database, applied one transaction per version.

The schema version lives in the database header (``PRAGMA user_version``) and
the file is marked as ours with ``PRAGMA application_id`` (`APPLICATION_ID`),
so a SQLite file written by another program is recognised and refused.

Adding a schema change (any layer may need one later):

1. Append a `Migration` to `MIGRATIONS` with the next version number. Its
   ``step`` is either an SQL script (several statements, triggers allowed) or
   a function ``(sqlite3.Connection) -> None`` for changes that need Python
   (backfills, data reshaping); a function runs its statements with
   ``conn.execute``/``executemany``.
2. Never edit or reorder a migration that has shipped: databases in the field
   are at its version already. Write a new one instead.
3. Add a test in ``tests/store/test_migrations.py`` that opens a database at the
   previous version and checks the data after the upgrade.

Invariants:

* Versions are exactly ``1..len(MIGRATIONS)`` in order (`validate` checks it).
* Each migration, together with the ``user_version`` bump, runs in one
  ``BEGIN IMMEDIATE`` transaction: after a crash or an error the database is
  at the old version with the old schema, never half-way. A step must
  therefore not contain ``BEGIN``/``COMMIT``/``ROLLBACK`` nor change
  ``journal_mode`` (which cannot run inside a transaction).
* The version is re-read inside that transaction, so two processes upgrading
  the same file at once apply each migration once.
* A database newer than `LATEST_VERSION` is refused with `SchemaTooNewError`
  before anything is written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vsm_mcp.errors import SchemaTooNewError

#: ``PRAGMA application_id`` of a VSM-MCP state database: the bytes "VSMM".
APPLICATION_ID = int.from_bytes(b"VSMM", "big")

MigrationStep = str | Callable[[sqlite3.Connection], None]


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema version: what it changes (``summary``) and how (``step``)."""

    version: int
    summary: str
    step: MigrationStep


_V1_SCRIPT = f"""
CREATE TABLE demand_aggregate (
    category     TEXT    NOT NULL,
    bucket_start INTEGER NOT NULL,
    count        INTEGER NOT NULL CHECK (count >= 0),
    matched      INTEGER NOT NULL CHECK (matched >= 0),
    PRIMARY KEY (category, bucket_start)
) WITHOUT ROWID;
CREATE INDEX demand_aggregate_by_bucket ON demand_aggregate (bucket_start, category);

CREATE TABLE capability (
    unit        TEXT NOT NULL,
    tool        TEXT NOT NULL,
    category    TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (unit, tool, category)
) WITHOUT ROWID;

CREATE TABLE decision (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           REAL NOT NULL,
    system       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    choice       TEXT NOT NULL,
    rule         TEXT NOT NULL,
    rationale    TEXT NOT NULL,
    inputs       TEXT NOT NULL CHECK (json_valid(inputs)),
    alternatives TEXT NOT NULL CHECK (json_valid(alternatives))
);
CREATE INDEX decision_by_at ON decision (at, id);

CREATE TABLE algedonic_alert (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    source   TEXT    NOT NULL,
    kind     TEXT    NOT NULL,
    valence  TEXT    NOT NULL CHECK (valence IN ('pain', 'pleasure')),
    severity INTEGER NOT NULL CHECK (severity BETWEEN 1 AND 4),
    count    INTEGER NOT NULL CHECK (count >= 1),
    first_at REAL    NOT NULL,
    last_at  REAL    NOT NULL,
    detail   TEXT    NOT NULL
);
CREATE INDEX algedonic_alert_by_last_at ON algedonic_alert (last_at, id);

CREATE TABLE audit_finding (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         REAL    NOT NULL,
    unit       TEXT    NOT NULL,
    check_name TEXT    NOT NULL,
    ok         INTEGER NOT NULL CHECK (ok IN (0, 1)),
    detail     TEXT    NOT NULL,
    latency_ms REAL
);
CREATE INDEX audit_finding_by_at ON audit_finding (at, id);

CREATE TABLE dead_letter (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          REAL    NOT NULL,
    unit        TEXT    NOT NULL,
    tool        TEXT    NOT NULL,
    arguments   TEXT    NOT NULL CHECK (json_valid(arguments)),
    error       TEXT    NOT NULL,
    attempts    INTEGER NOT NULL,
    replayed_at REAL
);
CREATE INDEX dead_letter_by_at ON dead_letter (at, id);

CREATE TABLE kv (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL CHECK (json_valid(value))
) WITHOUT ROWID;

PRAGMA application_id = {APPLICATION_ID};
"""

#: Every schema version, oldest first. Append only (see the module docstring).
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "demand aggregates, capabilities, decisions, algedonic alerts, audit findings, "
        "dead letters, kv settings",
        _V1_SCRIPT,
    ),
    Migration(
        2,
        "secrets of the downstream servers (values never leave the store but to a launch)",
        """
CREATE TABLE secret (
    name       TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    value      TEXT NOT NULL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
""",
    ),
    Migration(
        3,
        "access tokens of the HTTP face: name, scopes and the SHA-256 of the value (never the value)",
        """
CREATE TABLE token (
    name         TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    digest       TEXT NOT NULL UNIQUE CHECK (length(digest) = 64),
    scopes       TEXT NOT NULL CHECK (length(scopes) > 0),
    created_at   REAL NOT NULL,
    last_used_at REAL
) WITHOUT ROWID;
""",
    ),
    Migration(
        4,
        "a token may be bound to a profile (a named subset of servers and tools)",
        """
ALTER TABLE token ADD COLUMN profile TEXT CHECK (profile IS NULL OR length(profile) BETWEEN 1 AND 64);
""",
    ),
    Migration(
        5,
        "questions S5 keeps for an operator (approvals): what was asked, the answer, what came of it",
        """
CREATE TABLE approval (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (length(kind) > 0),
    subject    TEXT NOT NULL CHECK (length(subject) > 0),
    asked_at   REAL NOT NULL,
    question   TEXT NOT NULL,
    request    TEXT NOT NULL CHECK (json_valid(request)),
    status     TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'done', 'failed')),
    decided_at REAL,
    decided_by TEXT,
    outcome    TEXT
);
CREATE UNIQUE INDEX approval_pending_subject ON approval (subject) WHERE status = 'pending';
CREATE INDEX approval_by_subject ON approval (subject, id);
""",
    ),
    Migration(
        6,
        "the audit log: who (a token's name or the local user) did what to what, through which face",
        """
CREATE TABLE operator_action (
    id     INTEGER PRIMARY KEY,
    at     REAL NOT NULL,
    actor  TEXT NOT NULL CHECK (length(actor) > 0),
    action TEXT NOT NULL CHECK (length(action) > 0),
    target TEXT NOT NULL,
    via    TEXT NOT NULL,
    detail TEXT NOT NULL,
    ok     INTEGER NOT NULL CHECK (ok IN (0, 1))
);
CREATE INDEX operator_action_by_actor ON operator_action (actor, at);
""",
    ),
)

LATEST_VERSION = len(MIGRATIONS)


def validate(migrations: Sequence[Migration]) -> None:
    """Check that ``migrations`` are numbered 1, 2, 3... in order.

    Raises:
        ValueError: a gap, a duplicate or a wrong order (a programming error).
    """
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise ValueError(f"migration #{expected} has version {migration.version}, expected {expected}")


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version stored in the database header (0 for a new file)."""
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(
    conn: sqlite3.Connection,
    path: Path,
    migrations: Sequence[Migration] = MIGRATIONS,
) -> int:
    """Bring the database up to the last of ``migrations``; return the version reached.

    ``conn`` must be in autocommit mode (``isolation_level=None``) with no open
    transaction. ``path`` only names the file in errors.

    Raises:
        SchemaTooNewError: the database is newer than ``migrations``; nothing written.
        sqlite3.Error: a step failed; its transaction was rolled back.
    """
    validate(migrations)
    latest = len(migrations)
    found = schema_version(conn)
    if found > latest:
        raise SchemaTooNewError(path, found, latest)
    for migration in migrations[found:]:
        _apply(conn, path, migration, latest)
    return schema_version(conn)


def _apply(conn: sqlite3.Connection, path: Path, migration: Migration, latest: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have upgraded the file since we last looked.
        current = schema_version(conn)
        if current > latest:
            raise SchemaTooNewError(path, current, latest)
        if current >= migration.version:
            conn.execute("ROLLBACK")
            return
        if isinstance(migration.step, str):
            _run_script(conn, migration.step)
        else:
            migration.step(conn)
        # user_version lives in page 1, so the bump commits with the step.
        conn.execute(f"PRAGMA user_version = {int(migration.version)}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run ``script`` statement by statement inside the caller's transaction.

    ``executescript`` would commit the open transaction first, so the script is
    cut at each ``;`` that `sqlite3.complete_statement` says ends a statement
    (it understands strings, comments and trigger bodies).
    """
    *pieces, tail = script.split(";")
    statement = ""
    for piece in pieces:
        statement += piece + ";"
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""
    rest = statement + tail
    if rest.strip():
        raise ValueError(f"incomplete SQL statement at the end of a migration: {rest.strip()!r}")
