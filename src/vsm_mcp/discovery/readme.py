"""Tool names (with one-line descriptions) and a plain-text summary from a package README.

MCP server READMEs list their tools under a heading such as "## Tools",
"### Available Tools", "## Available MCP Commands" or the same in another
language ("## Outils disponibles", "## 可用工具"), in a few common shapes:
sub-headings (``### `read_file` ``, ``### Read a file (`read_file`)``,
``### `read_pdf` Tool``), list items (``- `read_file`: Read a file``,
``1. **read_file** - ...``, ``- **Read File** (`read_file`) - ...``, group
items whose nested items are the tools), paragraphs (``**`read_file`** - ...``),
table rows (``| `read_file` | Read a file |``), HTML ``<details>`` blocks (the
``<summary>`` read as a heading, `readmeblocks`) and, under a sub-heading that
names no tool, a code example that calls the tool (`readmecode`). A table whose header has
a "Tool" column lists tools under any heading but an installation or
configuration one.

Beside the tools, a README documents their *parameters* in the same
shapes; those are never taken. A line is a parameter, not a tool, when it is

- nested under a tool's list item, or under a tool's sub-heading;
- after an "Inputs:" / "Parameters:" / "Args" / "Returns:" label (a list
  item, a paragraph or a sub-heading), until the next tool;
- typed, as in ``- `path` (string): ...`` or ``- `path`: string``;
- a row of a table whose header names parameters (Parameter, Argument,
  Field, Type, Required...);
- a name in a naming style the server's tools do not use (``userId`` among
  ``push_text_message``, ``get_profile``) that holds no action verb, or an
  UPPER_CASE name (environment variables).

Invariants:
- only lines inside a heading whose text names tools are read (or a table
  with a "Tool" column), up to the next heading of the same or a higher
  level; a heading about changes ("Removed tools", "Tool migration") names
  none; fenced code is read only through `readmecode`'s shapes;
- at most `MAX_TOOLS` names, in order of appearance, without duplicates;
  descriptions are one line of plain text, at most `MAX_DESCRIPTION`
  characters.

`summary_from_readme` gives the README's first descriptive sections as plain
text (badges, images, HTML and code dropped, links reduced to their text,
installation/configuration/licence sections skipped), at most
`MAX_SUMMARY` characters.

What reads as a tool name (an action verb, a naming style) is `toolnames`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vsm_mcp.discovery.readmeblocks import HEADING as _HEADING
from vsm_mcp.discovery.readmeblocks import CodeBlock, SummaryHeading, units, with_summaries
from vsm_mcp.discovery.readmeblocks import lines as _lines
from vsm_mcp.discovery.readmecode import tools_in_code
from vsm_mcp.discovery.toolnames import looks_like_tool_list, looks_like_tool_name, naming_style

MAX_TOOLS = 100
MAX_DESCRIPTION = 200
MAX_SUMMARY = 600

# "tools" in English and in the other languages READMEs are written in ("## Outils disponibles",
# "## 可用工具"); "MCP commands" names the tools too, where plain "commands" are a CLI's
_TOOLS_WORDS = (
    r"\btools?\b|\bmcp\s+commands\b|\b(?:outils?|herramientas?|ferramentas?|werkzeuge|strumenti|инструменты)\b"
    r"|工具|ツール|도구"
)
_TOOLS_HEADING = re.compile(_TOOLS_WORDS, re.IGNORECASE)
# read only when no "tools" section lists any: "## Available Actions", "## Capabilities"
_CAPABILITIES_HEADING = re.compile(
    rf"{_TOOLS_WORDS}|\b(?:functions|actions|capabilities|operations|features|funcionalidades"
    r"|fonctionnalités|funktionen|возможности)\b|功能",
    re.IGNORECASE,
)
_TOOLS_INTRO = re.compile(  # "The server exposes a single tool:", "Available tools:", "Default tools are:"
    r"^(?=.*\b(?:following|available|provides?|exposes?|offers?|includes?|these|supported|registers?|default"
    r"|two|three|four|five|six|seven|eight|nine|ten)\b)"
    r"[^|#>\-*+\s`][^|`]{0,100}\btools?\b[\w ,()]{0,25}(?:\[[^\]]{1,60}\]\([^)\s]{1,100}\))?:\s*$",
    re.IGNORECASE,
)
_NAMED_IN_PROSE = re.compile(
    r"\b(?:a|an|one|single)\s+`([A-Za-z][\w\-]{1,63})`\s+tool\b"
)  # "provides a `send` tool"
_DONE_WITH = re.compile(  # "Get logs with `kubectl_logs`": what the tool does, then its name
    r"^([A-Z][^`:]{2,100}?)\s+(?:with|using|via)\s+`([A-Za-z][\w\-]{1,63})`(?:\s*\([^)]*\))?\.?\s*$"
)
_IDENT = r"[A-Za-z][A-Za-z0-9_.\-]{1,63}"
_SIGNATURE = r"(?:\([^`)]{0,80}\))?"  # `resolve_song(id, media)`
_MARKED = re.compile(
    rf"^(?:\d+[.)]\s*)?(?:`({_IDENT}){_SIGNATURE}`|\*\*`?({_IDENT}){_SIGNATURE}`?\*\*|\[`?({_IDENT})`?\](?:\([^)]*\))?)(.*)$"
)
_BARE = re.compile(rf"^(?:\d+[.)]\s*)?({_IDENT})(?:\(\))?(.*)$")
_TITLED = re.compile(rf"^[^`]*\(\s*`({_IDENT})`\s*\)\s*$")  # "Web Search (`brave_web_search`)"
_BOLD_TITLED = re.compile(  # "**Weather Forecast** (`weather_forecast`) - Forecasts up to 16 days"
    rf"^(?:\d+[.)]\s*)?\*\*([^*`]{{1,60}})\*\*\s*\(\s*`({_IDENT})`\s*\)(.*)$"
)
_TYPES = (
    r"string|str|text|number|num|integer|int|float|double|decimal|boolean|bool|array|list|object|dict|map"
    r"|json|any|enum|date|datetime|timestamp|uuid|null|optional|required|string\[\]|number\[\]"
)
_TYPED = re.compile(  # "(string): ...", "(optional number)", ": string", "(string?)" - a parameter
    rf"^\s*(?:\((?![^()`]*(?:/|\.(?:ts|js|py)\b))[^()`]{{1,30}}\)\s*:|\(\s*(?:optional\s+|required\s+)?(?:{_TYPES})\b|[:\-\u2013\u2014]\s*(?:{_TYPES})\s*(?:[,)|\-?]|$))",
    re.IGNORECASE,
)
_LABEL = re.compile(  # "Inputs:", "**Parameters**:", "Args", "Returns: ..."
    r"^[*_`\s]*(?:(?:optional|required|tool|query|request|input)\s+)?(?:inputs?|input\s+schema|parameters?|params|arguments?|args|options|returns?|outputs?"
    r"|response|example(?:\s+\w+)?|usage|schema|properties|fields|required|optional"
    r"|param[eè]tros?|paramètres|parámetros|argumentos|entrées|retour|exemples?|ejemplos?|exemplos?"
    r"|参数(?:说明)?|返回值?|输入|输出|示例|用法|パラメータ|引数|戻り値)\b[*_`\s]*(?::|\uff1a|$)",
    re.IGNORECASE,
)
_LABEL_HEADING = re.compile(
    r"\b(?:parameters?|arguments?|args|inputs?|options|configuration|config|environment|permissions?|scopes?"
    r"|settings|variables|schema|response|outputs?|returns?|examples?|usage|install\w*|setup)\b",
    re.IGNORECASE,
)
_PARAMETERS_HEADING = re.compile(  # "### Tool Parameters" documents parameters, "### Schema Tools" is a group
    r"\b(?:parameters?|arguments?|args|inputs?|options|outputs?|returns?|variables|permissions?|scopes?)\b",
    re.IGNORECASE,
)
_CHANGES_HEADING = re.compile(
    r"\b(?:removed|deprecated|renamed|changes?|changelog|migrat\w*|differences?|breaking)\b|差异|变更|迁移|移除|重命名",
    re.IGNORECASE,
)
_BUILD_SECTION = re.compile(
    r"install|setup|set up|develop|build|test|prerequisit|requirement|contribut|getting started",
    re.IGNORECASE,
)
_DESCRIPTION_LABEL = re.compile(
    r"^[*_`\s]*(?:description|功能|描述|说明)[*_`\s]*[:\uff1a][*_\s]*", re.IGNORECASE
)
_CODE_NAME = re.compile(rf"`({_IDENT})`")
_LIST = re.compile(r"^(\s*)(?:[-*+]|\d+[.)])\s+(.*)$")
_TABLE = re.compile(r"^\s*\|(.*)\|\s*$")
_PARAMETER_COLUMN = re.compile(
    r"^(?:param|argument|arg\b|field|option|property|variable|env|key|setting|input|column|type|attribute)",
    re.IGNORECASE,
)
_NAME_COLUMN = re.compile(
    r"^(?:mcp\s+)?(?:tool|name|function|command|method|operation|endpoint)", re.IGNORECASE
)
_DESCRIPTION_COLUMN = re.compile(
    r"description|descripción|descrição|описание|描述|说明|用途|purpose", re.IGNORECASE
)
_TOOL_COLUMN = re.compile(r"(?:mcp\s+)?tools?(?:\s+name)?|工具(?:名称)?", re.IGNORECASE)
_NOT_NAMES = frozenset(
    {"name", "tool", "tools", "description", "input", "inputs", "output", "outputs", "parameters", "returns"}
    | {"example", "examples", "none", "true", "false", "null", "note", "notes", "usage", "yes", "no"}
)
_FILE_SUFFIX = re.compile(r"\.(?:md|json|ya?ml|toml|js|ts|py|txt|env|sh|html|csv)$", re.IGNORECASE)

# -- tools ---------------------------------------------------------------------------------------


def _plain(text: str) -> str:
    """One line of text without markdown emphasis, code marks, links or HTML."""
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"[`*]|(?<!\w)_|_(?!\w)", "", text)
    return re.sub(r"\s+", " ", text).strip(" |:-\u2013\u2014")


def _valid_name(name: str) -> bool:
    name = name.rstrip(".")
    return (
        2 <= len(name) <= 64
        and name.lower() not in _NOT_NAMES
        and naming_style(name) != "upper"
        and not _FILE_SUFFIX.search(name)
        and not re.search(r"\.[A-Za-z]*[A-Z]", name)  # message.contents.type, structuredContent.request
    )


def _candidate(text: str, *, bare: bool = True) -> tuple[str, str] | None:
    """(name, description) of a line naming one tool, or None."""
    text = text.strip()
    if (done := _DONE_WITH.match(text)) is not None:
        return (done.group(2), done.group(1)) if _valid_name(done.group(2)) else None
    if (titled := _BOLD_TITLED.match(text)) is not None:
        name, rest = titled.group(2), titled.group(3)
        if _TYPED.match(rest) or not _valid_name(name):
            return None
        return name, _plain(rest) or _plain(titled.group(1))
    marked = _MARKED.match(text)
    if marked:
        name, rest = marked.group(1) or marked.group(2) or marked.group(3), marked.group(4)
        if not marked.group(1) and re.fullmatch(r"[A-Z][a-z]+(?:-[A-Za-z]+)*", name):
            return None  # "**Features**:", "**Add-ons**": a bold word, not a tool
        if marked.group(3) and not re.search(r"[_\-]|[a-z]Tool$", name):
            return None  # "[ChatGPT](#chatgpt)": a link to a product; "[ListIndexTool](...)" is a tool
    elif (titled := _TITLED.match(text)) is not None:
        return titled.group(1), ""
    else:
        plain = _BARE.match(text)
        if (
            not bare
            or not plain
            or not re.search(r"[_\-]", plain.group(1))
            or not re.match(r"^\s*(?:[:(\-\u2013\u2014]|$)", plain.group(2))
        ):
            return None
        name, rest = plain.group(1), plain.group(2)
        if name[0].isupper() and "_" not in name:
            return None  # "Add-ons", "Read-Only Mode": words, not an identifier
    name = name.rstrip(".")
    if _TYPED.match(rest) or not _valid_name(name):
        return None
    return name, _plain(re.sub(r"^\s*\((?:[\w.\-]+/)+[\w.\-]+\)", "", rest))  # "(tools/echo.ts): ..."


def _candidates(text: str, *, bare: bool = True) -> list[tuple[str, str]]:
    """Tools a line names: one, several ("**Files**: `read_file`, `write_file`"), or none."""
    if _LABEL.match(text):
        return []
    single = _candidate(text, bare=bare)
    if single is None:
        labelled = re.match(r"^(?:\*\*[^*`]{1,40}\*\*|[^`*:]{1,40}):?\s*(.*)$", text)
        if labelled and _group(labelled.group(1)):  # "**Content:** `bm_write`, `bm_read`"
            return [(n, "") for n in _CODE_NAME.findall(labelled.group(1)) if _valid_name(n)]
        return []
    listed = [n for n in _CODE_NAME.findall(single[1]) if _valid_name(n)]
    if len(listed) >= 2 and not re.search(r"[a-z]{3,}\s+[a-z]{3,}", _CODE_NAME.sub("", single[1])):
        return [(name, "") for name in listed]
    return [single]


def _tools_heading(text: str, pattern: re.Pattern[str] = _TOOLS_HEADING) -> bool:
    """A heading about the tools ("Available Tools", "Tool Suite (33 Domain Tools)"), not a sentence
    that mentions them ("Works with the tools you already use") nor a list of changes to them
    ("Removed tools", "Tool changes in 2.0")."""
    return (
        bool(pattern.search(text))
        and len(re.sub(r"\([^)]*\)", "", text).split()) <= 5
        and not _CHANGES_HEADING.search(text)
    )


def _group(cell: str) -> bool:
    """Whether a table cell lists several tools as code and nothing else."""
    return len(_CODE_NAME.findall(cell)) >= 2 and not re.search(r"[A-Za-z]{3,}", _CODE_NAME.sub("", cell))


def _heading_tool(text: str) -> tuple[str, str] | None:
    """The tool a sub-heading names (``### `read_file` ``, ``### 1. read_file``, ``### Title (`name`)``,
    ``### Tool: `read_file` ``); not ``### Resource `files` ``, a group."""
    found = _candidates(text)
    if len(found) == 1:
        name, rest = found[0]
        return name, "" if re.fullmatch(
            r"(?:tool\s*)?(?:parameters|arguments|inputs)?|tool", rest, re.I
        ) else rest
    word = re.sub(r"^\d+[.)]\s*", "", text)
    if re.fullmatch(r"[a-z][a-z0-9]{1,30}", word) and _valid_name(word) and not _LABEL.match(word):
        return word, ""  # "### search", "### 1. query": a one-word tool
    codes = [n for n in _CODE_NAME.findall(text) if _valid_name(n)]
    rest = _CODE_NAME.sub("", text).lower()
    if len(codes) == 1 and re.fullmatch(
        r"[\W\d]*(?:tool)?[\W\d]*|[\W\d]*(?:tool|(?:tool\s+)?(?:parameters|arguments|inputs))\W*", rest
    ):
        return codes[0], ""
    return None


@dataclass(slots=True)
class _Section:
    """Reading state inside one tools section."""

    level: int
    tool_heading: int | None = None  # level of the heading that named the current tool
    label_heading: int | None = None  # level of a "#### Parameters" heading being skipped
    tool_indent: int | None = None  # indent of list items that are tools in this block
    label_indent: int | None = None  # items deeper than this follow an "Inputs:" label
    last: str | None = None  # the current tool, whose description may come later
    intro: bool = False  # opened by a sentence, not a heading: ends at the first heading not a tool
    table_only: bool = False  # opened by a table with a "Tool" column: ends with the table
    pending: str = ""  # the first paragraph under a heading that named no tool, for a tool its code shows
    table: str | None = None  # "tools" | "params" for the table being read
    columns: tuple[int, int] = (0, 1)  # the tools table's name and description columns


def _indent(spaces: str) -> int:
    return len(spaces.replace("\t", "    "))


def _tool_column(cells: list[str]) -> bool:
    """Whether a table's header row names a column of tools ("Tool", "MCP Tool", "Tool name")."""
    return any(_TOOL_COLUMN.fullmatch(_plain(cell)) for cell in cells)


def _table_kind(cells: list[str]) -> tuple[str, tuple[int, int]]:
    """("tools" | "params", (name column, description column)) from a table's header row."""
    headers = [_plain(c).lower() for c in cells]
    name_at = next((i for i, h in enumerate(headers) if _NAME_COLUMN.match(h)), 0)
    if _PARAMETER_COLUMN.match(headers[name_at]) or (
        name_at == 0 and not _NAME_COLUMN.match(headers[0]) and {"type", "required", "default"} & set(headers)
    ):
        return "params", (0, 1)
    text_at = next((i for i, h in enumerate(headers) if _DESCRIPTION_COLUMN.match(h)), name_at + 1)
    if text_at >= len(headers) and name_at > 0 and re.match(r"capabilit|feature|purpose|what", headers[0]):
        text_at = 0  # "| Capability | MCP Tool |": the first column says what the tool does
    return "tools", (name_at, text_at if text_at != name_at else name_at + 1)


def _keep_style(found: dict[str, str]) -> dict[str, str]:
    """Drop names in a naming style the list's own tools do not use, unless they hold a verb.

    One-word names (``search``, ``id``) fit any style; they too are dropped when
    they hold no verb and most of the list shares one multi-word style.
    """
    styles = [naming_style(n) for n in found]
    counts = {s: styles.count(s) for s in set(styles) - {"word"}}
    if not counts:
        return found
    main = max(counts, key=lambda s: counts[s])
    if counts[main] < 3 or 2 * counts[main] < len(found):
        return found
    return {
        n: d
        for n, d, s in zip(found, found.values(), styles, strict=True)
        if s == main or looks_like_tool_name(n)
    }


def tools_from_readme(markdown: str) -> list[tuple[str, str]]:
    """(name, description) pairs of the tools the README lists (see module doc).

    Sections headed "tools" are read; only when they list none are sections
    headed "functions", "actions", "capabilities", "operations" or "features",
    and what those list is kept only when it reads as operations
    (`looks_like_tool_list`).
    """
    found = _read_tools(markdown, _TOOLS_HEADING)
    if found:
        return found
    found = _read_tools(markdown, _CAPABILITIES_HEADING)
    # a features section is more often prose than a tool list: its names must read as operations
    return found if looks_like_tool_list([name for name, _ in found]) else []


def _read_tools(markdown: str, headings: re.Pattern[str]) -> list[tuple[str, str]]:
    found: dict[str, str] = {}
    section: _Section | None = None

    def take(candidates: list[tuple[str, str]]) -> None:
        for name, description in candidates:
            if name not in found:
                found[name] = description[:MAX_DESCRIPTION]
        if candidates:
            assert section is not None
            section.last = candidates[-1][0]

    def describe(text: str) -> None:
        assert section is not None
        if section.last is None and section.tool_heading is None and not section.pending:
            section.pending = _plain(text)[:MAX_DESCRIPTION]  # a tool that a code block shows may follow
        if section.last is not None and not found.get(section.last):
            text = _plain(_DESCRIPTION_LABEL.sub("", text))
            if text and not _LABEL.match(text) and not _TYPED.match(text):
                found[section.last] = text[:MAX_DESCRIPTION]

    first_heading = True
    current_level, current_text = 0, ""  # of the last heading read
    for line in with_summaries(list(units(markdown)), _tools_heading):
        if len(found) >= MAX_TOOLS:
            break
        if isinstance(line, CodeBlock):
            if (
                section is not None
                and section.label_heading is None
                and section.label_indent is None
                and section.tool_heading is None
                and not section.table_only
            ):
                shown = tools_in_code(line.text)
                if len(shown) == 1:  # the one tool of the sub-heading it is under: that text describes it
                    shown = [(shown[0][0], shown[0][1] or section.pending)]
                    if shown[0][0] in found and not found[shown[0][0]]:
                        found[shown[0][0]] = shown[0][1][:MAX_DESCRIPTION]  # listed before, undescribed
                take(shown)
            continue
        heading = _HEADING.match(line)
        if heading:
            level, text = len(heading.group(1)), heading.group(2)
            tool = _heading_tool(text) if not isinstance(line, SummaryHeading) or "`" in text else None
            title, first_heading = first_heading and level == 1, False
            current_level, current_text = level, text
            if section is not None and (level <= section.level or section.table_only):
                section = None
            if section is None:
                if _tools_heading(text, headings) and not title:  # "# Gemini MCP Tool" names the project
                    section = _Section(level)
                    if tool is not None and re.search(r"\btool\b", text, re.IGNORECASE):
                        section.tool_heading = level  # "### `read_pdf` Tool": a section about one tool
                        take([tool])
                continue
            section.table = section.tool_indent = section.label_indent = None
            section.pending = ""
            if headings.search(text) and tool is None and not _PARAMETERS_HEADING.search(text):
                section.label_heading = section.tool_heading = section.last = None  # "### Schema Tools"
                continue
            if section.label_heading is not None and level > section.label_heading:
                continue
            section.label_heading = None
            if section.tool_heading is not None and level > section.tool_heading:
                continue  # a sub-heading inside one tool's documentation
            if tool is None and section.intro:
                section = None
                continue
            summary = isinstance(line, SummaryHeading)  # "<summary>config</summary>": a group, not a label
            if tool is None and (_LABEL.match(_plain(text)) or (not summary and _LABEL_HEADING.search(text))):
                section.label_heading = level
                continue
            section.tool_heading = level if tool else None
            section.last = None
            if tool:
                take([tool])
            continue
        if (
            section is None
            and current_level > 1
            and _TOOLS_INTRO.match(line)
            and not _BUILD_SECTION.search(current_text)  # "## Development": build tools
        ):
            section = _Section(current_level, intro=True)  # "The server exposes these tools:"
            continue
        row = _TABLE.match(line)
        if (
            section is None
            and row is not None
            and _tool_column(row.group(1).split("|"))
            and not _BUILD_SECTION.search(current_text)
            and not _LABEL_HEADING.search(current_text)
        ):
            section = _Section(current_level, intro=True, table_only=True)  # "| Tool | Description |"
        if section is not None and section.table_only and row is None:
            section = None
        if section is None or section.label_heading is not None:
            continue
        if row is not None:
            cells = row.group(1).split("|")
            if set(row.group(1)) <= set("-:| "):
                continue
            if section.table is None:
                section.table, section.columns = _table_kind(cells)
                continue  # the header row
            name_at, text_at = section.columns
            if section.table == "params" or section.tool_heading is not None or len(cells) <= name_at:
                continue
            named = _candidates(cells[name_at])
            group = cells[name_at] if _group(cells[name_at]) else None
            if not named and name_at + 1 < len(cells) and _group(cells[name_at + 1]):
                group = cells[name_at + 1]  # "| Sheets | `create_sheet`, `delete_sheet` |"
            if group is not None:
                take([(n, "") for n in _CODE_NAME.findall(group) if _valid_name(n)])
            else:
                text = _plain(cells[text_at]) if text_at < len(cells) else ""
                # "`ha_list_files` *(beta)*": a note beside the name, the description column says more
                take([(n, text if text and re.fullmatch(r"\([^()]*\)|", d) else d) for n, d in named])
            continue
        section.table = None
        if not line.strip():
            continue
        item = _LIST.match(line)
        if item is None:  # a paragraph line
            text = line.strip()
            if (
                section.intro
                and section.tool_heading is None
                and text.endswith(":")
                and not _TOOLS_INTRO.match(text)
                and not _LABEL.match(text)
            ):
                section = (
                    None  # "Label settings include:" - what follows is not the tools the intro announced
                )
                continue
            if _LABEL.match(text):
                section.label_indent = -1
            elif section.tool_heading is not None or section.label_indent is not None:
                describe(text)
            elif (candidates := _candidates(text, bare=False)) and text.startswith(("`", "**")):
                take(candidates)
            elif (prose := _NAMED_IN_PROSE.search(text)) is not None and _valid_name(prose.group(1)):
                take([(prose.group(1), "")])
            else:
                describe(text)
            continue
        indent, text = _indent(item.group(1)), item.group(2)
        if section.label_indent is not None:
            if indent > section.label_indent:
                continue
            section.label_indent = None
        if _LABEL.match(text):
            section.label_indent = indent
            continue
        if section.tool_heading is not None:
            describe(text)  # a list under a tool's heading documents that tool
            continue
        if section.tool_indent is not None and indent > section.tool_indent + 1:
            describe(text)  # nested under a tool item: its description or its parameters
            continue
        candidates = _candidates(text)
        if candidates:
            section.tool_indent = indent
            take(candidates)
        elif section.tool_indent is not None and indent <= section.tool_indent:
            section.last = None
    kept = _keep_style(found)
    styles = [naming_style(n) for n in kept]
    if 2 * sum(s in {"camel", "pascal"} for s in styles) > len(kept) and not looks_like_tool_list(list(kept)):
        return []  # camelCase nouns: the fields of a response or a parameter object, not tools
    return list(kept.items())[:MAX_TOOLS]


# -- summary -------------------------------------------------------------------------------------

_SKIPPED_SECTION = re.compile(
    r"install|setup|set up|configur|prerequisit|requirement|getting started|quick ?start|usage|licen[cs]e"
    r"|contribut|contents|development|building|testing|docker|changelog|release|credit|acknowledg|support"
    r"|security|troubleshoot|environment|deploy|authentication|api key|faq|star history|sponsor|author"
    r"|running|debug|claude desktop|cursor|vs ?code|client",
    re.IGNORECASE,
)
_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+])\1{2,}\s*$")


def summary_from_readme(markdown: str, limit: int = MAX_SUMMARY) -> str:
    """The README's first descriptive sections as plain text, at most ``limit`` characters.

    Kept: paragraphs and list items of the introduction and of sections such
    as "Overview", "Features" or "Tools", in order. Dropped: code blocks,
    tables, HTML, images and badges, headings themselves, and sections about
    installing, configuring, licensing or contributing. The text is cut at a
    word boundary.
    """
    parts: list[str] = []
    skip_level: int | None = None
    label_indent: int | None = None  # items deeper than this follow an "Inputs:" label
    size = 0
    lines = list(_lines(markdown))
    for index, line in enumerate(lines):
        following = lines[index + 1] if index + 1 < len(lines) else ""
        heading = _HEADING.match(line)
        if heading is None and line.strip() and _RST_UNDERLINE.match(following) and not _LIST.match(line):
            heading = re.match(r"^(#{2})?\s*(.*)$", line)  # reStructuredText "Title\n====="
        if heading is not None:
            level = len(heading.group(1) or "##")
            if skip_level is not None and level > skip_level:
                continue
            skip_level = level if _SKIPPED_SECTION.search(_plain(heading.group(2))) else None
            continue
        if skip_level is not None or _RST_UNDERLINE.match(line) or _TABLE.match(line):
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith((".. ", ":", "<!--")) or re.match(r"^\s{4,}\S", line):
            continue
        item = _LIST.match(line)
        if item is not None:
            indent = _indent(item.group(1))
            if label_indent is not None and indent > label_indent:
                continue  # the items of an "Inputs:" label
            label_indent = None
            marked = _MARKED.match(item.group(2))
            if _LABEL.match(item.group(2)):
                label_indent = indent
                continue
            if indent > 4 or (marked is not None and _TYPED.match(marked.group(4))):
                continue  # deeply nested, or a typed parameter
        raw = re.sub(r"^>\s*", "", item.group(2) if item else stripped)
        text = _plain(raw) + (":" if raw.rstrip().endswith(":") else "")
        text = re.sub(r"https?://\S+", "", text).strip()
        if len(re.findall(r"[A-Za-z]{2,}", text)) < 2:
            continue  # a badge row, a lone link or an emoji line
        parts.append(text if re.search(r"[.!?:;]$", text) else text + ".")
        size += len(text) + 1
        if size > limit:
            break
    summary = " ".join(parts)
    if len(summary) <= limit:
        return summary
    cut = summary[: limit + 1].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…" if len(cut) < len(summary) else cut
