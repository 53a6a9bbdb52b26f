"""`SqliteStore`: configuration, persistence, durability under SIGKILL, concurrency."""

from __future__ import annotations

import signal
import sqlite3
import stat
import sys
from dataclasses import replace
from pathlib import Path

import anyio
import pytest
from anyio.streams.text import TextReceiveStream

from vsm_mcp.core.messages import (
    AlgedonicAlert,
    AuditFinding,
    Capability,
    DeadLetter,
    Decision,
    DemandAggregate,
    Severity,
    Valence,
)
from vsm_mcp.errors import StateError
from vsm_mcp.store import SqliteStore, StoreHealth
from vsm_mcp.store.migrations import LATEST_VERSION

pytestmark = pytest.mark.anyio

#: A fresh interpreter importing anyio and the store takes well under this.
SUBPROCESS_ACK_TIMEOUT_S = 20.0


async def test_connection_is_wal_full_sync_with_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with SqliteStore.open(path) as store:
        assert await store.health() == StoreHealth(
            path=path,
            schema_version=LATEST_VERSION,
            journal_mode="wal",
            synchronous=2,
            foreign_keys=True,
            busy_timeout_ms=5000,
        )


async def test_opening_creates_missing_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.db"
    async with SqliteStore.open(path) as store:
        await store.kv_put("k", 1)

    assert path.is_file()


async def test_only_the_owner_may_read_the_database_and_its_wal(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with SqliteStore.open(path) as store:
        await store.put_secret("TOKEN", "s3cret", at=1.0)
        for name in (path, tmp_path / "state.db-wal", tmp_path / "state.db-shm"):
            assert stat.S_IMODE(name.stat().st_mode) == 0o600, name
    path.chmod(0o644)  # written by an older version, or copied with a loose umask
    async with SqliteStore.open(path) as store:
        assert await store.secret("TOKEN") == "s3cret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_every_record_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    decision = Decision(1.5, "S5", "fs", "acquire", "gap", "why", {"gap": 0.5}, [{"n": 1}])
    alert = AlgedonicAlert("unit:fs", "crash_loop", Valence.PAIN, Severity.CRITICAL, 4, 1.0, 2.0, "x")
    finding = AuditFinding(3.0, "fs", "ping", True, "pong", 1.5)
    async with SqliteStore.open(path) as store:
        await store.add_demand([DemandAggregate("files", 60, 2, 1)])
        await store.put_capabilities("fs", [Capability("fs", "read", "files", "d")])
        await store.record_decision(decision)
        await store.record_alert(alert)
        await store.record_finding(finding)
        await store.put_dead_letter(DeadLetter(4.0, "fs", "read", {"p": 1}, "boom", 2))
        await store.kv_put("fleet", {"units": ["fs"]})

    async with SqliteStore.open(path) as store:
        assert await store.demand_since(0) == [DemandAggregate("files", 60, 2, 1)]
        assert await store.capabilities() == [Capability("fs", "read", "files", "d")]
        assert await store.decisions() == [replace(decision, id=1)]
        assert await store.alerts() == [replace(alert, id=1)]
        assert await store.findings() == [finding]
        assert await store.dead_letters() == [DeadLetter(4.0, "fs", "read", {"p": 1}, "boom", 2, id=1)]
        assert await store.kv_get("fleet") == {"units": ["fs"]}
        # Ids continue after a reopen; they are never reused.
        assert await store.record_decision(decision) == 2


async def test_a_directory_at_the_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="is not a regular file"):
        async with SqliteStore.open(tmp_path):
            pass


_WRITER = """
import sys, anyio
from vsm_mcp.core.messages import Decision, DemandAggregate
from vsm_mcp.store import SqliteStore

async def main() -> None:
    async with SqliteStore.open(sys.argv[1]) as store:
        decision_id = await store.record_decision(
            Decision(7.0, "S5", "durable", "keep", "rule", "acknowledged means committed")
        )
        await store.add_demand([DemandAggregate("files", 0, 5, 4), DemandAggregate("web", 0, 1, 0)])
        await store.kv_put("fleet", ["fs"])
        print(f"ACK {decision_id}", flush=True)
        await anyio.sleep(3600)

anyio.run(main)
"""


async def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with await anyio.open_process([sys.executable, "-c", _WRITER, str(path)]) as process:
        assert process.stdout is not None
        with anyio.fail_after(SUBPROCESS_ACK_TIMEOUT_S):
            line = ""
            async for chunk in TextReceiveStream(process.stdout):
                line += chunk
                if "\n" in line:
                    break
        process.send_signal(signal.SIGKILL)
        assert await process.wait() == -signal.SIGKILL

    assert line == "ACK 1\n"
    # The killed process never closed the database: its WAL is still there.
    assert (tmp_path / "state.db-wal").exists()
    async with SqliteStore.open(path) as store:
        assert [d.subject for d in await store.decisions()] == ["durable"]
        assert await store.demand_since(0) == [
            DemandAggregate("files", 0, 5, 4),
            DemandAggregate("web", 0, 1, 0),
        ]
        assert await store.kv_get("fleet") == ["fs"]


async def test_concurrent_writes_from_many_tasks_all_land(tmp_path: Path) -> None:
    ids: list[int] = []

    async def write(i: int) -> None:
        ids.append(await store.record_decision(Decision(float(i), "S3", f"s{i}", "c", "r", "w")))
        await store.add_demand([DemandAggregate(f"cat{i % 5}", 0, 2, 1)])
        await store.kv_put(f"k{i}", i)

    async with SqliteStore.open(tmp_path / "state.db") as store:
        async with anyio.create_task_group() as tg:
            for i in range(100):
                tg.start_soon(write, i)

        assert sorted(ids) == list(range(1, 101))
        assert len(await store.decisions(limit=1000)) == 100
        assert await store.demand_since(0) == [DemandAggregate(f"cat{c}", 0, 40, 20) for c in range(5)]
        assert [await store.kv_get(f"k{i}") for i in (0, 57, 99)] == [0, 57, 99]


async def test_a_write_waiting_on_a_lock_does_not_block_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with SqliteStore.open(path) as store:
        # Another process-like connection holds the write lock.
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        written: list[int] = []

        async def write() -> None:
            written.append(await store.record_decision(Decision(1.0, "S5", "s", "c", "r", "w")))

        with anyio.fail_after(SUBPROCESS_ACK_TIMEOUT_S):
            async with anyio.create_task_group() as tg:
                tg.start_soon(write)
                # Reached only if the loop runs while the writer waits in SQLite.
                await anyio.wait_all_tasks_blocked()
                assert written == []
                other.execute("COMMIT")
        other.close()

        assert written == [1]
