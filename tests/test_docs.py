"""The documents name real commands and speak of the product only."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer.main

from vsm_mcp.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", "BENCHMARKS.md", "ARCHITECTURE.md"]
#: ``vsm-mcp`` and the words after it that may name commands (a flag, a placeholder or a quote ends them).
MENTION = re.compile(r"vsm-mcp((?: [a-z][a-z0-9-]*)+)(?![a-z0-9:-])")
#: Words of a project's history, not of its product.
HISTORY = re.compile(r"\b(session \d+|sessions? \d|last session|previous session|sprint \d+)\b", re.I)


def _mentions() -> list[tuple[str, str]]:
    return sorted(
        {
            (name, " ".join(match.group(1).split()))
            for name in DOCUMENTS
            for match in MENTION.finditer((ROOT / name).read_text())
        }
    )


def _resolve(words: list[str]) -> str | None:
    """Why ``vsm-mcp WORDS…`` names no command (None: it does)."""
    command: Any = typer.main.get_command(app)
    command.load_all()  # the root group loads its commands lazily (`vsm_mcp.cli.lazy`)
    for depth, word in enumerate(words):
        commands = getattr(command, "commands", None)  # a group (typer's groups are not click.Group)
        if not isinstance(commands, dict):
            return None  # the rest are a command's arguments
        if word not in commands:
            return f"no command {' '.join(words[: depth + 1])!r}"
        command = commands[word]
    return None


@pytest.mark.parametrize(("document", "mention"), _mentions())
def test_every_command_the_documents_name_exists(document: str, mention: str) -> None:
    assert _resolve(mention.split()) is None, f"{document}: vsm-mcp {mention}"


def test_the_documents_name_commands_at_all_and_a_wrong_one_is_caught() -> None:
    assert len(_mentions()) > 20
    assert _resolve(["servers", "frobnicate"]) == "no command 'servers frobnicate'"
    assert _resolve(["stauts"]) == "no command 'stauts'"
    assert _resolve(["token", "create", "ci"]) is None


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_documents_speak_of_the_product_not_its_history(document: str) -> None:
    found = HISTORY.findall((ROOT / document).read_text())
    assert found == [], f"{document}: {found}"
