"""A small, hand-written expansion lexicon of generic computing vocabulary.

Each group lists words that name the same kind of thing or action a user may
ask for (file formats and the applications that open them, common service
domains, everyday verbs of tool use). A query term in a group adds the other
members of the group to the query with a reduced weight, so "spreadsheet"
finds a server that only says "xlsx", and "/root/report.md" finds "markdown".

Invariants:
- written from general knowledge of software vocabulary, never from a
  benchmark's gold labels, and not per task; only broad families (formats,
  media, everyday domains) belong here: a group that names one server's niche
  is fitting, and vocabulary beyond these families comes from the catalog's
  own co-occurrences (`bridges`) or the embedding model (`embed`);
- groups carry common Chinese equivalents, so English queries reach servers
  described only in Chinese (and back);
- groups are symmetric; words are stemmed with the same analyzer as documents,
  so the lexicon and the index always agree.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

from vsm_mcp.discovery.text import analyze

SYNONYM_GROUPS: tuple[str, ...] = (
    # documents and office formats
    "pdf document report 文档 报告",
    "docx doc word document",
    "pptx ppt powerpoint slide slides presentation deck",
    "xlsx xls csv excel spreadsheet workbook worksheet sheet table 表格",
    "md markdown",
    "txt text plaintext",
    "html webpage web page website site",
    "json yaml yml xml structured data",
    # media
    "png jpg jpeg gif svg webp image picture photo icon 图片 图像",
    "wav mp3 flac ogg audio sound music song 音乐 音频",
    "mp4 mov video clip film 视频",
    "draw drawing paint canvas sketch",
    "chart graph plot visualization visualize diagram 图表",
    # web and information
    "search find lookup query discover 搜索 查询",
    "fetch download retrieve crawl scrape",
    "browser browse navigate click screenshot automation",
    "url link address",
    "wiki wikipedia encyclopedia",
    # files and systems
    "file files directory folder path filesystem 文件",
    "save write create store",
    "edit modify update change",
    "git commit branch repository repo",
    "docker container image compose",
    "npm package library dependency module",
    "command shell terminal process execute run",
    "code programming snippet source",
    "doc docs documentation api reference",
    # everyday domains
    "weather forecast temperature climate rain 天气 气温",
    "map maps location geocode address coordinates place places poi nearby 地图 位置 地点",
    "route routing directions navigation distance drive driving travel trip",
    "flight airline airport",
    "hotel lodging accommodation rental listing stay",
    "restaurant food recipe cook cooking meal dish 菜谱 做菜 美食",
    "time timezone clock date datetime 时间 日期",
    "calculate calculator math arithmetic compute computation 计算",
    "stock stocks ticker equity share shares market 股票 股市",
    "finance financial investment investor portfolio",
    "crypto cryptocurrency bitcoin btc ethereum eth token coin blockchain web3",
    "currency exchange rate forex convert conversion",
    "price prices quote",
    "game games gaming play 游戏",
    "task tasks todo plan planning",
)

EXPANSION_WEIGHT = 0.35  # a synonym counts about a third as much as the word the user wrote


@lru_cache(maxsize=1)
def expansion_table() -> dict[str, tuple[str, ...]]:
    """Stemmed term -> the other stemmed terms of every group it belongs to, sorted (so an expanded
    query's order, and the floating-point sums of its scores, do not depend on hash seeds)."""
    table: defaultdict[str, set[str]] = defaultdict(set)
    for group in SYNONYM_GROUPS:
        terms = set(analyze(group))
        for term in terms:
            table[term] |= terms - {term}
    return {term: tuple(sorted(related)) for term, related in table.items()}


def expand(terms: dict[str, float], weight: float = EXPANSION_WEIGHT) -> dict[str, float]:
    """``terms`` plus their synonyms at ``weight`` times the original weight (max, not sum)."""
    table = expansion_table()
    out = dict(terms)
    for term, qweight in terms.items():
        for related in table.get(term, ()):
            if out.get(related, 0.0) < qweight * weight:
                out[related] = qweight * weight
    return out
