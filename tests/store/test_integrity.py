"""Refusing corrupt, foreign and newer databases without touching them."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from vsm_mcp.core.messages import Decision
from vsm_mcp.errors import SchemaTooNewError, StateCorruptError
from vsm_mcp.store import SqliteStore
from vsm_mcp.store.migrations import LATEST_VERSION

pytestmark = pytest.mark.anyio


class Untouched:
    """The file's bytes, mtime and its directory's listing, to compare after a refusal."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bytes = path.read_bytes()
        self.mtime_ns = path.stat().st_mtime_ns
        self.listing = sorted(os.listdir(path.parent))

    def check(self) -> None:
        assert self.path.read_bytes() == self.bytes
        assert self.path.stat().st_mtime_ns == self.mtime_ns
        assert sorted(os.listdir(self.path.parent)) == self.listing


async def real_database(path: Path, decisions: int = 0) -> None:
    async with SqliteStore.open(path) as store:
        for i in range(decisions):
            await store.record_decision(Decision(float(i), "S5", f"s{i}", "c", "r", "x" * 400))


async def assert_refused_as_corrupt(path: Path, detail: str) -> None:
    before = Untouched(path)
    with pytest.raises(StateCorruptError) as caught:
        async with SqliteStore.open(path):
            pass
    message = str(caught.value)
    assert str(path) in message
    assert detail in message
    assert "it was not modified" in message
    assert caught.value.path == path
    before.check()


async def test_random_bytes_are_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(bytes(range(256)) * 32)

    await assert_refused_as_corrupt(path, "not a SQLite database")


async def test_a_text_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_text("units:\n  - fs\n")

    await assert_refused_as_corrupt(path, "not a SQLite database: it starts with b'units:")


async def test_a_truncated_header_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    await real_database(path)
    path.write_bytes(path.read_bytes()[:40])

    await assert_refused_as_corrupt(path, "truncated SQLite header (40 bytes)")


async def test_a_truncated_real_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    await real_database(path, decisions=200)
    data = path.read_bytes()
    assert len(data) > 20 * 4096  # enough pages that half of them are missing
    path.write_bytes(data[: len(data) // 2])

    await assert_refused_as_corrupt(path, "malformed")


async def test_a_damaged_page_fails_quick_check_and_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    await real_database(path, decisions=200)
    data = bytearray(path.read_bytes())
    page = 4096
    data[10 * page : 11 * page] = bytes([0xA5]) * page
    path.write_bytes(bytes(data))

    before = Untouched(path)
    with pytest.raises(StateCorruptError, match=str(path)):
        async with SqliteStore.open(path):
            pass
    before.check()


async def test_a_foreign_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    other.commit()
    other.close()

    await assert_refused_as_corrupt(
        path, "not a VSM-MCP database: application_id=0, user_version=0, 1 schema objects"
    )


async def test_a_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    await real_database(path, decisions=1)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    before = Untouched(path)

    with pytest.raises(SchemaTooNewError) as caught:
        async with SqliteStore.open(path):
            pass

    assert (caught.value.found, caught.value.supported) == (999, LATEST_VERSION)
    assert str(caught.value) == (
        f"state database {path} has schema version 999, but this VSM-MCP supports up to "
        f"{LATEST_VERSION}; it was not modified. Upgrade vsm-mcp."
    )
    before.check()


async def test_an_empty_file_is_accepted_as_a_new_database(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.touch()

    async with SqliteStore.open(path) as store:
        await store.kv_put("k", "v")
        assert (await store.health()).schema_version == LATEST_VERSION


async def test_an_empty_sqlite_database_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    sqlite3.connect(path).execute("VACUUM").connection.close()
    assert path.stat().st_size > 0

    async with SqliteStore.open(path) as store:
        assert await store.kv_get("k") is None
