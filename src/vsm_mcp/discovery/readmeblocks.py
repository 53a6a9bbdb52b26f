"""The blocks of a README that `readme` reads: lines, fenced code, HTML <details> sections.

Invariants:
- `units` yields every line outside fenced code (markdown escapes undone)
  and each code block whole, in order; a README wrapped in a ```markdown
  fence is read as markdown;
- `with_summaries` turns a <details> block into a section: its <summary> a
  heading (a `SummaryHeading`), its ``</details>`` an empty heading of the
  same level; other lines are unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


@dataclass(frozen=True, slots=True)
class CodeBlock:
    """A fenced code block's text."""

    text: str


def units(markdown: str) -> Iterable[str | CodeBlock]:
    """Lines outside fenced code (markdown escapes undone) and, in place, each code block whole.

    A README wrapped whole in a ```markdown fence is read as markdown; a code
    block inside it opens with a language and closes with a bare fence.
    """
    stack: list[str] = []  # open fences: "markdown" or "code"
    block: list[str] = []
    for line in markdown.splitlines():
        fence = FENCE.match(line)
        if fence:
            language = line.strip()[3:].strip().lower()
            if stack and not language:
                if stack.pop() == "code" and "code" not in stack:
                    yield CodeBlock("\n".join(block))
            else:
                stack.append("markdown" if language in {"markdown", "md"} else "code")
                block = []
            continue
        if "code" in stack:
            block.append(line)
        else:
            unlisted = re.sub(r"^\s*[-*+]\s+(?=#{1,6}\s)", "", line)  # "- ### company_search": a heading
            yield re.sub(r"\\([_\-*`.#|])", r"\1", unlisted)


def lines(markdown: str) -> Iterable[str]:
    """Lines outside fenced code, markdown escapes undone (see `units`)."""
    return (unit for unit in units(markdown) if isinstance(unit, str))


_SUMMARY = re.compile(r"<summary>(.*?)</summary>", re.IGNORECASE)


class SummaryHeading(str):
    """A heading made of an HTML <summary>: it names a tool only in code ("<code>search</code>");
    "<summary>core</summary>" names a group of tools."""

    __slots__ = ()


def _summary_text(html: str) -> str:
    """A <summary>'s text with <code> kept as code marks: "`generate_image` parameters"."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", re.sub(r"</?code>", "`", html))).strip()


def with_summaries(units: list[str | CodeBlock], names_tools: Callable[[str], bool]) -> list[str | CodeBlock]:
    """``units`` with each HTML <details> block read as a section: its <summary> a heading, its
    ``</details>`` the end of that section (an empty heading of the same level).

    The summary's level sits above the headings inside the block, or below the heading the block
    is under when it holds none. A block whose headings leave no room under the heading it is
    under is a section of its own only when its summary names tools ("<summary>Tools</summary>")
    and that heading does not (else the block is read as part of that tools section).
    """
    result = list(units)
    under, under_text = 1, ""  # the heading the current line is under (outside any <details> block)
    open_levels: list[tuple[int | None, int, str]] = []  # per open <details>: its summary's level, under
    for index, unit in enumerate(units):
        if isinstance(unit, CodeBlock):
            continue
        if (heading := HEADING.match(unit)) is not None:
            under, under_text = len(heading.group(1)), heading.group(2)
            continue
        if re.search(r"<details\b", unit, re.IGNORECASE):
            open_levels.append((None, under, under_text))
        summary = _SUMMARY.search(unit)
        if summary is not None and open_levels and open_levels[-1][0] is None:
            inner = _inner_heading_levels(units, index + 1)
            level = min(under + 1, 6) if not inner else min(inner) - 1
            text = _summary_text(summary.group(1))
            crowded = inner and level <= under  # no room under the heading: a section of its own, or none
            if level >= 1 and not (crowded and (not names_tools(text) or names_tools(under_text))):
                open_levels[-1] = (level, under, under_text)
                result[index] = SummaryHeading(f"{'#' * level} {text}")
        if re.search(r"</details>", unit, re.IGNORECASE) and open_levels:
            closed, under, under_text = open_levels.pop()
            if closed is not None:
                result[index] = f"{'#' * closed} "
    return result


def _inner_heading_levels(units: list[str | CodeBlock], start: int) -> list[int]:
    """Levels of the headings from ``start`` up to the </details> that closes the open block."""
    depth, levels = 1, []
    for unit in units[start:]:
        if isinstance(unit, CodeBlock):
            continue
        depth += len(re.findall(r"<details\b", unit, re.IGNORECASE))
        depth -= len(re.findall(r"</details>", unit, re.IGNORECASE))
        if depth <= 0:
            break
        if (heading := HEADING.match(unit)) is not None:
            levels.append(len(heading.group(1)))
    return levels
