"""State layer: `SqliteStore` (durable, the real one) and `MemoryStore` (tests).

Both implement `vsm_mcp.core.ports.Store` with identical behaviour; see
`vsm_mcp.store.records` for the shared rules and `vsm_mcp.store.migrations`
for how the schema evolves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vsm_mcp.store.memory import MemoryStore
from vsm_mcp.store.sqlite import SqliteStore, StoreHealth

__all__ = ["MemoryStore", "SqliteStore", "StoreHealth"]

if TYPE_CHECKING:
    from vsm_mcp.core.ports import Store

    def _implement_store(sqlite: SqliteStore, memory: MemoryStore) -> tuple[Store, Store]:
        """Never called: the type checker proves here that both are a `Store`."""
        return sqlite, memory
