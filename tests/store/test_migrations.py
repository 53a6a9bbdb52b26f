"""The migration runner: fresh databases, upgrades, atomic steps, refusal of newer schemas."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from vsm_mcp.errors import SchemaTooNewError
from vsm_mcp.store.migrations import (
    APPLICATION_ID,
    LATEST_VERSION,
    MIGRATIONS,
    Migration,
    migrate,
    schema_version,
    validate,
)

V1 = MIGRATIONS[0]


def add_tags(conn: sqlite3.Connection) -> None:
    """A Python step: a new column plus a backfill."""
    conn.execute("ALTER TABLE capability ADD COLUMN tags TEXT NOT NULL DEFAULT '[]'")
    conn.execute("UPDATE capability SET tags = json_array(category)")


V2 = Migration(2, "capability tags", add_tags)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    yield connection
    connection.close()


def tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    return {row[0] for row in rows}


def test_fresh_database_reaches_the_latest_version_with_every_table(conn: sqlite3.Connection) -> None:
    assert migrate(conn, Path("state.db")) == LATEST_VERSION

    assert schema_version(conn) == LATEST_VERSION == 6
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert tables(conn) == {
        "demand_aggregate",
        "capability",
        "decision",
        "algedonic_alert",
        "audit_finding",
        "dead_letter",
        "kv",
        "secret",
        "token",
        "approval",
        "operator_action",
    }


def test_version_3_tokens_survive_the_profile_column_unbound(conn: sqlite3.Connection) -> None:
    migrate(conn, Path("state.db"), MIGRATIONS[:3])
    conn.execute("INSERT INTO token VALUES ('ci', ?, 'call', 1.0, NULL)", ("a" * 64,))

    assert migrate(conn, Path("state.db"), MIGRATIONS[:4]) == 4

    assert conn.execute("SELECT name, scopes, profile FROM token").fetchall() == [("ci", "call", None)]
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE token SET profile = '' WHERE name = 'ci'")


def test_version_5_databases_get_an_empty_audit_log_and_keep_their_approvals(
    conn: sqlite3.Connection,
) -> None:
    migrate(conn, Path("state.db"), MIGRATIONS[:5])
    conn.execute(
        "INSERT INTO approval (kind, subject, asked_at, question, request, status) "
        "VALUES ('acquisition', 's', 1.0, 'q?', '{}', 'pending')"
    )

    assert migrate(conn, Path("state.db"), MIGRATIONS[:6]) == 6

    assert conn.execute("SELECT subject, status FROM approval").fetchall() == [("s", "pending")]
    assert conn.execute("SELECT count(*) FROM operator_action").fetchone() == (0,)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO operator_action (at, actor, action, target, via, detail, ok) VALUES (1, '', 'a', 't', 'cli', '', 1)"
        )


def test_migrating_an_up_to_date_database_changes_nothing(conn: sqlite3.Connection) -> None:
    migrate(conn, Path("state.db"))
    conn.execute("INSERT INTO kv VALUES ('k', '1')")

    assert migrate(conn, Path("state.db")) == LATEST_VERSION
    assert conn.execute("SELECT value FROM kv").fetchall() == [("1",)]


def test_a_version_1_database_is_upgraded_by_a_later_migration_keeping_its_data(
    conn: sqlite3.Connection,
) -> None:
    migrate(conn, Path("state.db"), [V1])
    conn.execute("INSERT INTO capability VALUES ('fs', 'read', 'files', '')")

    assert migrate(conn, Path("state.db"), [V1, V2]) == 2

    assert conn.execute("SELECT unit, tool, tags FROM capability").fetchall() == [("fs", "read", '["files"]')]


def test_a_failing_migration_leaves_the_old_version_and_schema(conn: sqlite3.Connection) -> None:
    migrate(conn, Path("state.db"), [V1])
    broken = Migration(2, "half-way", "CREATE TABLE half (x);\nINSERT INTO no_such_table VALUES (1);")

    with pytest.raises(sqlite3.OperationalError, match="no such table: no_such_table"):
        migrate(conn, Path("state.db"), [V1, broken])

    assert schema_version(conn) == 1
    assert "half" not in tables(conn)
    assert not conn.in_transaction


def test_a_database_newer_than_the_migrations_is_refused_unchanged(conn: sqlite3.Connection) -> None:
    migrate(conn, Path("state.db"), [V1, V2])

    with pytest.raises(SchemaTooNewError, match="has schema version 2, but this VSM-MCP supports up to 1"):
        migrate(conn, Path("state.db"), [V1])

    assert schema_version(conn) == 2


def test_scripts_may_hold_triggers_strings_and_several_statements_per_line(conn: sqlite3.Connection) -> None:
    script = """
    CREATE TABLE log (msg TEXT); CREATE TABLE item (name TEXT);
    -- a comment; with a semicolon
    CREATE TRIGGER item_logged AFTER INSERT ON item BEGIN
        INSERT INTO log VALUES ('added; ' || new.name);
    END;
    INSERT INTO item VALUES ('a;b');
    """

    migrate(conn, Path("state.db"), [Migration(1, "triggers", script)])

    assert conn.execute("SELECT msg FROM log").fetchall() == [("added; a;b",)]


def test_an_unterminated_statement_is_refused_and_rolled_back(conn: sqlite3.Connection) -> None:
    with pytest.raises(
        ValueError, match="incomplete SQL statement at the end of a migration: 'CREATE TABLE b"
    ):
        migrate(conn, Path("state.db"), [Migration(1, "bad", "CREATE TABLE a (x);\nCREATE TABLE b (x)")])

    assert schema_version(conn) == 0
    assert tables(conn) == set()


def test_migration_numbering_must_be_1_2_3() -> None:
    with pytest.raises(ValueError, match="migration #2 has version 3, expected 2"):
        validate([V1, Migration(3, "skips 2", "SELECT 1;")])

    validate(MIGRATIONS)


def test_a_version_1_database_gains_the_secret_table_and_keeps_its_data(conn: sqlite3.Connection) -> None:
    migrate(conn, Path("state.db"), MIGRATIONS[:1])
    conn.execute("INSERT INTO kv VALUES ('k', '1')")

    assert migrate(conn, Path("state.db"), MIGRATIONS[:2]) == 2

    assert conn.execute("SELECT value FROM kv").fetchall() == [("1",)]
    assert conn.execute("SELECT count(*) FROM secret").fetchone() == (0,)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO secret VALUES ('', 'v', 0)")  # a name is never empty


def test_a_version_2_database_gains_the_token_table_and_keeps_its_data(conn: sqlite3.Connection) -> None:
    migrate(conn, Path("state.db"), MIGRATIONS[:2])
    conn.execute("INSERT INTO secret VALUES ('API_KEY', 'v', 1.0)")

    assert migrate(conn, Path("state.db"), MIGRATIONS[:3]) == 3

    assert conn.execute("SELECT name, value FROM secret").fetchall() == [("API_KEY", "v")]
    digest = "a" * 64
    conn.execute("INSERT INTO token VALUES ('ci', ?, 'call', 1.0, NULL)", (digest,))
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO token VALUES ('ci2', ?, 'call', 1.0, NULL)", (digest,))  # digests unique
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO token VALUES ('ops', 'short', 'call', 1.0, NULL)")  # a SHA-256 hex
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO token VALUES ('ops', ?, '', 1.0, NULL)", ("b" * 64,))  # a scope at least
