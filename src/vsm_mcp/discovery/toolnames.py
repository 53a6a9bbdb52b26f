"""What reads as a tool's name: action verbs and naming styles.

A tool is an operation, so its name usually holds a verb (``get_forecast``,
``slack-post-message``, ``searchIssues``); parameter and response-field names
are nouns, often camelCase or PascalCase (``perPage``, ``GradeDate``). The
verb list is a general vocabulary of API operation names, not drawn from any
task set.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Verbs that open an operation's name in APIs (get, list, create...). A general vocabulary of
# API naming, not drawn from any task set.
_ACTION_VERBS_TEXT = """
    abort accept access activate add aggregate analyse analyze annotate append apply approve archive ask
    assign attach audit authenticate authorize backup batch block book broadcast browse build bulk
    calculate call cancel capture change chat check checkout cherry claim classify clean clear click clone
    close commit compare compile complete compose compress compute configure confirm connect convert copy
    count crawl create debug decline decode decompile decrypt delete deploy describe detect diff disable
    disconnect dispatch download drag draw drop duplicate edit embed emit enable encode encrypt end enqueue
    enrich ensure evaluate execute expand explain explore export extract fetch fill filter find finish fix
    follow fork format forward generate geocode get go grant graph hover import index infer init
    initialize insert inspect install invite invoke join kill label launch link list load lock log login
    logout lookup manage map mark merge migrate modify monitor mount move navigate notify observe open
    optimize order parse patch pause pin ping place plan play plot post predict prepare press preview
    print process profile promote publish pull purge push put query queue read rebase reboot record
    redo refresh register reject release reload remove rename render reopen reply report request reset
    resize resolve respond restart restore resume retrieve revert review revoke rollback rotate run save
    scale scan schedule scrape screenshot scroll search seek select send set share show shutdown sign
    simulate snapshot sort split start stat stop store stream submit subscribe suggest summarize summarise
    suspend switch sync tag take test toggle trace track transcribe transfer transform transition
    translate trigger type undo unfollow uninstall unlink unlock unpin unsubscribe update upgrade upload
    upsert validate verify view visit vote wait watch write recall remember forget think answer
"""
ACTION_VERBS = frozenset(_ACTION_VERBS_TEXT.split())

_CAMEL_SPLIT = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def name_words(name: str) -> list[str]:
    """The lower-case words of an identifier (snake, kebab, dotted or camel case)."""
    return [w.lower() for part in re.split(r"[_\-.\s/:]+", name) for w in _CAMEL_SPLIT.findall(part)]


def naming_style(name: str) -> str:
    """``upper``, ``pascal``, ``camel``, ``snake``, ``kebab``, ``dotted`` or ``word`` (one lower-case word)."""
    if re.fullmatch(r"[A-Z0-9_]+", name) and re.search(r"[A-Z]", name):
        return "upper"
    if "." in name:
        return "dotted"
    if re.fullmatch(r"[A-Z][A-Za-z0-9]*", name):
        return "pascal"
    if re.fullmatch(r"[a-z][a-z0-9]*", name):
        return "word"
    if re.fullmatch(r"[a-z][A-Za-z0-9]*", name):
        return "camel"
    return "kebab" if "-" in name and "_" not in name else "snake"


def looks_like_tool_name(name: str) -> bool:
    """Whether ``name`` reads as an operation: one of its words is an action verb.

    ``get_forecast``, ``slack-post-message``, ``searchIssues`` and ``query``
    do; ``GradeDate``, ``perPage`` and ``max_rows`` do not. Servers do give
    tools noun names (``sequential_thinking``), so this check is applied to
    whole lists (`looks_like_tool_list`), never to drop a single README tool.
    """
    return naming_style(name) != "upper" and any(w in ACTION_VERBS for w in name_words(name))


def looks_like_tool_list(names: Sequence[str]) -> bool:
    """Whether a tool list reads as tools: at least half its names hold an action verb.

    A list that fails is most likely parameter or field names taken by an
    older extractor (``GradeDate``, ``Firm``, ``perPage``...).
    """
    return bool(names) and 2 * sum(looks_like_tool_name(n) for n in names) >= len(names)
