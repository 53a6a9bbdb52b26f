"""Stored payloads have a size cap; past it only a digest of the payload is kept.

A dead letter keeps the arguments of a failed call, a decision its inputs and
alternatives; a client or a server chooses those, and may make them huge. The
store (`vsm_mcp.store.records`) keeps a payload whose compact JSON is at most
`MAX_STORED_PAYLOAD_BYTES` as it is; a larger one becomes its `PayloadDigest`
(sha256 and size of that JSON, and its first `PREVIEW_CHARS` characters) under
the key `CAPPED_KEY`. Invariants:

* `capped_digest` finds a digest exactly in what `cap_payload` made one of:
  a payload that already looks like a capped one is capped too, so a stored
  value with the marker is never the original payload;
* the capped form keeps the payload's shape where callers rely on it: a list
  stays a list (of one marker object), anything else becomes a marker object;
* text fields are cut at `MAX_STORED_TEXT_CHARS` with a marker saying how
  long they were (`cap_text`).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

#: Largest payload kept whole, in bytes of compact UTF-8 JSON. Real tool arguments and
#: decision inputs are a few KiB; 64 KiB leaves room for a pasted document while two
#: 50 MB calls can no longer grow the database by 100 MB.
MAX_STORED_PAYLOAD_BYTES = 64 * 1024
#: How much of a capped payload's JSON is kept to show what it was.
PREVIEW_CHARS = 512
#: Longest stored text (an error message, an alert's detail): a server writes these.
MAX_STORED_TEXT_CHARS = 8 * 1024
#: The key a capped payload's digest is stored under.
CAPPED_KEY = "$vsm_mcp_capped"
#: How many characters of JSON text are hashed at a time (bounds the UTF-8 copy).
_HASH_SLICE_CHARS = 1024 * 1024


@dataclass(frozen=True, slots=True)
class PayloadDigest:
    """What is kept of a payload too large to store: enough to recognise it, not to replay it."""

    sha256: str
    size: int
    preview: str

    def describe(self) -> str:
        """``"123456789 bytes of JSON, sha256 ab12cd34ef56..."``."""
        return f"{self.size} bytes of JSON, sha256 {self.sha256[:16]}..."


def digest_json(text: str) -> PayloadDigest:
    """The digest of JSON ``text`` (sha256 and size of its UTF-8 bytes, and a preview)."""
    hasher = hashlib.sha256()
    size = 0
    for start in range(0, len(text), _HASH_SLICE_CHARS):
        piece = text[start : start + _HASH_SLICE_CHARS].encode()
        hasher.update(piece)
        size += len(piece)
    return PayloadDigest(sha256=hasher.hexdigest(), size=size, preview=text[:PREVIEW_CHARS])


def needs_cap(value: Any, text: str, limit: int = MAX_STORED_PAYLOAD_BYTES) -> bool:
    """Whether ``value`` (whose JSON is ``text``) must be stored as a digest."""
    # Each character is 1 to 4 bytes of UTF-8: test the length before paying for an encode.
    if len(text) > limit or capped_digest(value) is not None:
        return True
    return len(text) * 4 > limit and len(text.encode()) > limit


def capped(value: Any, text: str) -> Any:
    """The stored form of ``value``, whose JSON ``text`` is too large: its digest, in its shape."""
    marker = {CAPPED_KEY: asdict(digest_json(text))}
    return [marker] if isinstance(value, list) else marker


def capped_digest(value: Any) -> PayloadDigest | None:
    """The digest that ``value`` stands for, when it is a capped payload; else None."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, dict) or set(value) != {CAPPED_KEY}:
        return None
    fields = value[CAPPED_KEY]
    if not isinstance(fields, dict):
        return PayloadDigest(sha256="", size=0, preview="")
    return PayloadDigest(
        sha256=str(fields.get("sha256", "")),
        size=int(fields.get("size", 0)) if isinstance(fields.get("size"), int) else 0,
        preview=str(fields.get("preview", "")),
    )


def cap_text(text: str, limit: int = MAX_STORED_TEXT_CHARS) -> str:
    """``text``, or its first ``limit`` characters and a note of its full length."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]} [cut: {len(text)} characters in all]"
