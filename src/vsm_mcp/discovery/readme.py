"""Tool names (and one-line descriptions) from a package README's "Tools" section.

MCP server READMEs usually list their tools under a heading such as
"## Tools" or "### Available Tools", as sub-headings (``### `read_file` ``),
list items (``- `read_file`: Read a file``, ``- **read_file** - ...``) or
table rows (``| `read_file` | Read a file |``).

Invariants:
- only lines inside a heading whose text contains the word "tool(s)" are
  read, up to the next heading of the same or a higher level;
- a name must look like an identifier (letters, digits, ``_ - .``, 3-64
  characters) and be written as code or bold, or contain ``_``/``-``;
- at most `MAX_TOOLS` names, in order of appearance, without duplicates.
"""

from __future__ import annotations

import re

MAX_TOOLS = 100
MAX_DESCRIPTION = 200

_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_TOOLS_HEADING = re.compile(r"\btools?\b", re.IGNORECASE)
_IDENT = r"[A-Za-z][A-Za-z0-9_.\-]{2,63}"
_MARKED = re.compile(rf"^(?:\d+\.\s*)?(?:`({_IDENT})`|\*\*`?({_IDENT})`?\*\*)(.*)$")
_BARE = re.compile(rf"^(?:\d+\.\s*)?({_IDENT})(.*)$")
_PARAMETER = re.compile(  # "(string): ...", "string, optional) ...", "(JSON): ..." - a parameter, not a tool
    r"^\s*\(?\s*(?:string|number|integer|int|float|boolean|bool|array|object|list|dict|json|optional|required)"
    r"\b\s*[),:]",
    re.IGNORECASE,
)
_CODE_NAME = re.compile(rf"`({_IDENT})`")
_LIST = re.compile(r"^\s*(?:[-*+]|\d+\.)\s+(.*)$")
_TABLE = re.compile(r"^\s*\|(.+?)\|(.*)$")


def _candidates(text: str) -> list[tuple[str, str]]:
    """One (name, description) for a tool line; several for "**Group**: `a`, `b`" lines; none for parameters."""
    single = _candidate(text)
    if single is None:
        return []
    listed = _CODE_NAME.findall(single[1])
    if len(listed) >= 2:
        return [(name, "") for name in listed]
    if _PARAMETER.match(single[1]):
        return []
    return [single]


def _candidate(text: str) -> tuple[str, str] | None:
    text = text.strip()
    marked = _MARKED.match(text)
    if marked:
        name = marked.group(1) or marked.group(2)
        rest = marked.group(3)
    else:
        bare = _BARE.match(text)
        if (
            not bare
            or not re.search(r"[_\-]", bare.group(1))
            or not re.match(r"^\s*(?:[:(\-\u2013\u2014]|$)", bare.group(2))
        ):
            return None
        name, rest = bare.group(1), bare.group(2)
    name = name.rstrip(".")
    description = re.sub(r"^[\s:\-\u2013\u2014|*]+", "", rest).strip(" |")
    return name, description


def tools_from_readme(markdown: str) -> list[tuple[str, str]]:
    """(name, description) pairs listed under the README's tools heading(s)."""
    found: dict[str, str] = {}
    section_level: int | None = None
    for line in markdown.splitlines():
        heading = _HEADING.match(line)
        if heading:
            level = len(heading.group(1))
            if section_level is not None and level <= section_level:
                section_level = None
            if section_level is None:
                if _TOOLS_HEADING.search(heading.group(2)):
                    section_level = level
                continue
            candidates = _candidates(heading.group(2))
        elif section_level is None:
            continue
        elif (item := _LIST.match(line)) is not None:
            candidates = _candidates(item.group(1))
        elif (row := _TABLE.match(line)) is not None and not set(row.group(1).strip()) <= set("-: "):
            second = row.group(2).split("|")[0]
            listed = _CODE_NAME.findall(second)
            if len(listed) >= 2:  # "| Group | `tool_a`, `tool_b` |"
                candidates = [(name, "") for name in listed]
            else:
                candidates = [(n, d or second) for n, d in _candidates(row.group(1))]
        else:
            continue
        for name, description in candidates:
            if name not in found and name.lower() not in {"name", "tool", "tools"}:
                found[name] = re.sub(r"[`*]", "", description).strip()[:MAX_DESCRIPTION]
        if len(found) >= MAX_TOOLS:
            break
    return list(found.items())[:MAX_TOOLS]
