"""Tool names that a README shows only inside a fenced code example.

Some READMEs name a tool nowhere but in the code that calls it. Four shapes
say unambiguously that a name is a tool:

- an MCP ``tools/call`` payload: ``{"name": "search", "arguments": {...}}``
  (the block must hold an ``"arguments"`` key);
- a client helper's tool argument: ``use_mcp_tool({tool_name: "search"})``,
  ``toolName: 'search'``;
- the tool's Python signature with its docstring, at the top level of the
  block: ``def get_packages() -> str:`` and a docstring ``Get all packages.`` (a
  method, a private ``_name`` or a function without a docstring is not read);
- a block that is one call of a multi-word name: ``searchFlightsByDepArr({...})``
  (``fetch(...)``, ``print(...)`` or ``client.call(...)`` are not read).

Invariants:
- what a block configures (``"mcpServers"``, ``"args"``, ``"env"``), its
  parameter names and shell commands are never read;
- `tools_in_code` does not decide where a block counts: `readme` reads
  blocks only inside a tools section, under no parameters or example label.
"""

from __future__ import annotations

import re

_NAME = r"[A-Za-z][A-Za-z0-9_\-]{1,63}"
_PAYLOAD_NAME = re.compile(rf'"name"\s*:\s*"({_NAME})"')
_PAYLOAD_ARGUMENTS = re.compile(r'"arguments"\s*:')
_TOOL_ARGUMENT = re.compile(rf"""\btool_?name["']?\s*[:=]\s*["']({_NAME})["']""", re.IGNORECASE)
_DEF = re.compile(r"^(?:async\s+)?def\s+([a-z][a-z0-9_]{1,63})\s*\(([^)]*)")
_DOCSTRING = re.compile(r'^\s*(?:[rb]?"""|\'\'\')\s*(.*?)\s*(?:"""|\'\'\')?\s*$')
_CALL = re.compile(r"^(?:await\s+)?([a-z][a-z0-9]*(?:_[a-z0-9]+|[A-Z][a-z0-9]*)+)\s*\(")
_COMMENT = re.compile(r"^\s*(?:#|//|/\*|\*)")
_CONTINUED = re.compile(r"^(?:\s+\S|[)}\]]+[);,]*\s*$)")  # an argument line, or the call's closing


def _signatures(lines: list[str]) -> list[tuple[str, str]]:
    """Top-level ``def name(...)`` with a docstring: (name, its first line)."""
    found: list[tuple[str, str]] = []
    for index, line in enumerate(lines):
        signature = _DEF.match(line)
        if signature is None or re.match(r"\s*(?:self|cls)\b", signature.group(2)):
            continue
        body = [text for text in lines[index + 1 : index + 12] if text.strip()]
        # the docstring follows the signature, which may run over several lines
        opening = next((i for i, text in enumerate(body[:6]) if _DOCSTRING.match(text)), None)
        if opening is None or any(re.match(r"^[^\s)]", text) for text in body[:opening]):
            continue
        first = _DOCSTRING.match(body[opening])
        description = first.group(1) if first else ""
        if not description and opening + 1 < len(body):
            description = body[opening + 1].strip().strip("\"'")
        found.append((signature.group(1), description))
    return found


def tools_in_code(code: str) -> list[tuple[str, str]]:
    """(name, description) of the tools a code block calls or defines (see module doc).

    Descriptions come only from a signature's docstring; other shapes give "".
    """
    lines = code.splitlines()
    if _PAYLOAD_ARGUMENTS.search(code):
        named = _PAYLOAD_NAME.findall(code)
        if named:
            return [(name, "") for name in dict.fromkeys(named)]
    argued = _TOOL_ARGUMENT.findall(code)
    if argued:
        return [(name, "") for name in dict.fromkeys(argued)]
    signatures = _signatures(lines)
    if signatures:
        return signatures
    statements = [line for line in lines if line.strip() and not _COMMENT.match(line)]
    call = _CALL.match(statements[0].strip()) if statements else None
    if call is not None and all(_CONTINUED.match(line) for line in statements[1:]):
        return [(call.group(1), "")]
    return []
