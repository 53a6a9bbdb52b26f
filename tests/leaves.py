"""Documents flattened to leaf paths, and the paths that hold the same value in every state.

A status, self-model or reflection field that never moves whatever the inputs is a constant
shown as a reading. `constant_fields` finds them: each document is flattened into leaf paths
(``a.b``; a list's items are one path family, ``a[].b``) with the values found there, and a
path is constant when it is present in every document with the same set of distinct values (so
a field that reads the same in every item of a list is constant however many items there are).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any


def leaves(doc: Any, prefix: str = "") -> dict[str, list[str]]:
    """Each leaf path of ``doc`` with the values found there (JSON text, in document order).

    An empty dict or list is a leaf of its own (its value ``{}`` / ``[]``), so a collection that
    is empty in one state and filled in another moves.
    """
    out: dict[str, list[str]] = defaultdict(list)

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping) and node:
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else str(key))
        elif isinstance(node, list | tuple) and node:
            for item in node:
                walk(item, f"{path}[]")
        else:
            out[path].append(json.dumps(node, sort_keys=True, default=str))

    walk(doc, prefix)
    return dict(out)


def constant_fields(docs: Iterable[Any], allowed: Iterable[str] = ()) -> list[str]:
    """The leaf paths present in every one of ``docs`` with the same distinct values, less ``allowed``."""
    flats = [{path: set(values) for path, values in leaves(d).items()} for d in docs]
    assert len(flats) >= 2, "a field moves only between two states or more"
    common = set(flats[0]).intersection(*flats[1:])
    return sorted(
        path for path in common if path not in set(allowed) and all(f[path] == flats[0][path] for f in flats)
    )


def all_paths(docs: Iterable[Any]) -> set[str]:
    """Every leaf path of any of ``docs``."""
    return {path for d in docs for path in leaves(d)}
