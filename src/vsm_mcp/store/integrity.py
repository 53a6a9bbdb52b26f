"""Decide whether an existing file may be opened as the state database, reading only.

`check_existing` runs before any read-write connection exists. It reads the
file's first bytes with plain ``open(..., "rb")`` and then inspects it through a
read-only SQLite connection (``mode=ro``; also ``immutable=1`` when there is no
``-wal`` beside it, so no ``-wal``/``-shm`` files are created next to a file
that may be refused).

Invariant: when it raises, the file's bytes and mtime are exactly as found and
no file was created beside it (except SQLite's shared-memory index ``-shm`` if
a ``-wal`` was already there, i.e. after a crash). Refusals are:

* `StateCorruptError`: not a SQLite file, ``PRAGMA quick_check`` fails, or a
  SQLite file that is not ours (foreign ``application_id``, or tables and no
  VSM-MCP marks);
* `SchemaTooNewError`: ours, written by a newer VSM-MCP;
* `StateError`: not a regular file, or unreadable (permissions, locked).

An empty (0-byte) file is accepted as a new database, as SQLite itself does.
"""

from __future__ import annotations

import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path

from vsm_mcp.errors import SchemaTooNewError, StateCorruptError, StateError
from vsm_mcp.store.migrations import APPLICATION_ID

SQLITE_MAGIC = b"SQLite format 3\x00"
#: Size of the SQLite database header; a shorter non-empty file is truncated.
_HEADER_SIZE = 100
#: quick_check lines quoted in an error: enough to diagnose, short enough for one line.
_QUOTED_PROBLEMS = 3


@dataclass(frozen=True, slots=True)
class DatabaseFacts:
    """What a read-only look at a SQLite file found."""

    application_id: int
    user_version: int
    schema_objects: int


def check_existing(path: Path, supported_version: int) -> None:
    """Refuse ``path`` unless it is absent, empty, or a sound VSM-MCP database.

    Raises:
        StateCorruptError: not SQLite, damaged, or not a VSM-MCP database.
        SchemaTooNewError: a VSM-MCP database newer than ``supported_version``.
        StateError: not a regular file, or it cannot be read.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StateError(f"cannot inspect state database {path}: {exc}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise StateError(f"state database {path} is not a regular file")
    if info.st_size == 0:
        return
    _check_header(path)
    facts = read_facts(path)
    if facts.application_id == APPLICATION_ID:
        if facts.user_version > supported_version:
            raise SchemaTooNewError(path, facts.user_version, supported_version)
        if facts.user_version == 0:
            raise StateCorruptError(path, "marked as VSM-MCP but has no schema version")
        return
    if facts.application_id == 0 and facts.user_version == 0 and facts.schema_objects == 0:
        return
    raise StateCorruptError(
        path,
        f"not a VSM-MCP database: application_id={facts.application_id}, "
        f"user_version={facts.user_version}, {facts.schema_objects} schema objects",
    )


def _check_header(path: Path) -> None:
    try:
        with path.open("rb") as file:
            header = file.read(_HEADER_SIZE)
    except OSError as exc:
        raise StateError(f"cannot read state database {path}: {exc}") from exc
    if not header.startswith(SQLITE_MAGIC):
        raise StateCorruptError(path, f"not a SQLite database: it starts with {header[:16]!r}")
    if len(header) < _HEADER_SIZE:
        raise StateCorruptError(path, f"truncated SQLite header ({len(header)} bytes)")


def read_facts(path: Path) -> DatabaseFacts:
    """Run ``PRAGMA quick_check`` and read the VSM-MCP marks through a read-only connection.

    Raises:
        StateCorruptError: SQLite reports damage.
        StateError: SQLite cannot open or lock the file.
    """
    wal = path.with_name(path.name + "-wal")
    # immutable=1 skips locking and the WAL, so nothing is created beside the
    # file; with a -wal present (after a crash) the WAL must be read, so plain ro.
    query = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
    uri = f"{path.resolve().as_uri()}?{query}"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise StateError(f"cannot open state database {path}: {exc}") from exc
    try:
        problems = [str(row[0]) for row in conn.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise StateCorruptError(path, "quick_check: " + "; ".join(problems[:_QUOTED_PROBLEMS]))
        return DatabaseFacts(
            application_id=int(conn.execute("PRAGMA application_id").fetchone()[0]),
            user_version=int(conn.execute("PRAGMA user_version").fetchone()[0]),
            schema_objects=int(conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]),
        )
    except sqlite3.OperationalError as exc:
        # Locked or I/O trouble: the file may be fine, so not "corrupt".
        raise StateError(f"cannot read state database {path}: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise StateCorruptError(path, str(exc)) from exc
    finally:
        conn.close()
