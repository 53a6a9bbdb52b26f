"""No phrase of an evaluation task is in the matcher's rules or data (the catalog aside, whose text is
the servers' own): the matcher must not be written from the tasks it is scored on.

Every task file of `../shared/bench` is read; each task's query is cut into runs of four words
(case and punctuation aside), and none of them may occur in the code or the data files of the
discovery package. Four words: shorter runs are everyday English ("a list of"), longer ones
would let a paraphrase of a task slip through.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT.parent / "shared" / "bench"
DISCOVERY = ROOT / "src" / "vsm_mcp" / "discovery"
#: The servers' own text: matching against it is the point.
CATALOGS = {"catalog.json"}
RUN = 4

_WORD = re.compile(r"[a-z0-9]+|[\u4e00-\u9fff]")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _queries() -> list[str]:
    found: list[str] = []
    for path in sorted(BENCH.rglob("tasks*.json")):
        tasks = json.loads(path.read_text())
        found.extend(str(t["query"]) for t in tasks if isinstance(t, dict) and "query" in t)
    return found


def _rules_and_data() -> dict[str, str]:
    files = [*DISCOVERY.glob("*.py"), *(p for p in (DISCOVERY / "data").glob("*") if p.name not in CATALOGS)]
    return {str(p.relative_to(ROOT)): " ".join(_words(p.read_text(encoding="utf-8"))) for p in files}


def test_no_run_of_four_words_from_an_evaluation_task_is_in_the_matchers_rules_or_data() -> None:
    queries = _queries()
    if not queries:
        pytest.skip(
            f"no evaluation tasks under {BENCH} (the shared benchmark data is beside the checkout in CI)"
        )
    haystacks = _rules_and_data()
    found: set[tuple[str, str]] = set()
    for query in queries:
        words = _words(query)
        for i in range(len(words) - RUN + 1):
            run = " ".join(words[i : i + RUN])
            found.update((run, name) for name, text in haystacks.items() if f" {run} " in f" {text} ")
    assert not found, f"evaluation task text in the matcher: {sorted(found)}"


def test_the_check_finds_a_task_phrase_where_one_is() -> None:
    text = " ".join(_words("An example: save it to /root/notes/cv.md, as a task might say."))
    assert " save it to root " in f" {text} "  # what the check above looks for, found here
