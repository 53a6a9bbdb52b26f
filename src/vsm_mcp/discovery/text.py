"""Text analysis for matching: one tokenizer for queries, servers and tools.

Invariants:
- ``analyze`` is deterministic and pure; the same text always gives the same
  terms, in order of appearance (duplicates kept: term frequency matters).
- identifiers are split the way people read them: ``getWeatherForecast``,
  ``get_weather-forecast`` and ``get weather forecast`` give the same terms.
- Latin words are lower-cased and Snowball-stemmed (English); runs of CJK
  characters become overlapping character bigrams, so Chinese and Japanese
  text matches without a dictionary.
- stop words (English function words and catalog boilerplate such as "mcp",
  "server", "protocol") never become terms: every catalog entry has them.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

import snowballstemmer

_CAMEL_LOWER_UPPER = re.compile(r"([a-z0-9])([A-Z])")
_CAMEL_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_TOKEN = re.compile(r"[a-z0-9]+|[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]+")
_ENCODED = re.compile(r"[A-Za-z0-9+/=]{32,}")
_DIGIT = re.compile(r"[0-9]")
_LETTER = re.compile(r"[A-Za-z]")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")

STOP_WORDS: frozenset[str] = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "either",
        "etc",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "let",
        "lets",
        "like",
        "may",
        "me",
        "might",
        "more",
        "most",
        "must",
        "my",
        "myself",
        "need",
        "needs",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "per",
        "please",
        "same",
        "shall",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "upon",
        "us",
        "very",
        "via",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "whether",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "within",
        "without",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "i'm",
        "im",
        "s",
        "t",
        "d",
        "ll",
        "re",
        "ve",
        "mcp",
        "server",
        "servers",
        "model",
        "context",
        "protocol",
        "modelcontextprotocol",
        "official",
        "simple",
        "powerful",
        "implementation",
        "provides",
        "provide",
        "providing",
        "allows",
        "allow",
        "enables",
        "enable",
        "lets",
        "based",
        "support",
        "supports",
        "help",
        "helps",
    ]
)

# A Snowball stemmer keeps state while it stems, so it is not thread-safe: one per thread
# (the catalog can be indexed in a worker thread while the event loop stems a tool search).
_stemmers = threading.local()


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Snowball (English) stem of a lower-case word; CJK and digits unchanged."""
    if word.isdigit() or _CJK.match(word):
        return word
    stemmer = getattr(_stemmers, "english", None)
    if stemmer is None:
        stemmer = _stemmers.english = snowballstemmer.stemmer("english")
    return str(stemmer.stemWord(word))


def split_identifiers(text: str) -> str:
    """Insert spaces at camelCase boundaries (``getHTTPResponse`` -> ``get HTTP Response``)."""
    return _CAMEL_LOWER_UPPER.sub(r"\1 \2", _CAMEL_ACRONYM.sub(r"\1 \2", text))


def _drop_encoded(match: re.Match[str]) -> str:
    run = match.group()
    return " " if _DIGIT.search(run) and _LETTER.search(run) else run


def words(text: str) -> list[str]:
    """Lower-case word tokens and CJK runs, identifiers split, stop words kept; encoded data
    pasted into a text (base64, hashes, keys: long runs mixing letters and digits) is dropped,
    or its camel-case splitting would turn it into dozens of random short words."""
    return _TOKEN.findall(split_identifiers(_ENCODED.sub(_drop_encoded, text)).lower())


def _cjk_bigrams(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def analyze(text: str) -> list[str]:
    """Index/query terms of ``text``: words minus stop words, stemmed; CJK as bigrams."""
    terms: list[str] = []
    for token in words(text):
        if _CJK.match(token):
            terms.extend(_cjk_bigrams(token))
        elif len(token) > 1 and token not in STOP_WORDS:
            stemmed = stem(token)
            if stemmed not in STOP_WORDS:
                terms.append(stemmed)
    return terms


def content_words(text: str) -> str:
    """``text`` reduced to its content words, in order (`words` without the stop words);
    ``text`` itself when nothing is left.

    What an averaging embedding model is given: its vector is the mean of its tokens', so
    function words ("help me", "I want to") would pull every text towards the same point.
    """
    kept = [w for w in words(text) if w not in STOP_WORDS]
    return " ".join(kept) if kept else text


def analyze_plain(text: str) -> list[str]:
    """The floor's tokenizer: lower-case word tokens, no stemming, no stop words removed."""
    terms: list[str] = []
    for token in _TOKEN.findall(text.lower()):
        terms.extend(_cjk_bigrams(token) if _CJK.match(token) else [token])
    return terms
