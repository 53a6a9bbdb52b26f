"""`vsm_mcp.core.payload`: the size cap of stored payloads and what stands in for a capped one."""

from __future__ import annotations

import hashlib
import json

from vsm_mcp.core.payload import (
    CAPPED_KEY,
    MAX_STORED_PAYLOAD_BYTES,
    MAX_STORED_TEXT_CHARS,
    PREVIEW_CHARS,
    PayloadDigest,
    cap_text,
    capped,
    capped_digest,
    digest_json,
    needs_cap,
)


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def test_the_digest_is_the_sha256_and_utf8_size_of_the_json_and_its_start() -> None:
    text = _json({"text": "é" * 3_000_000})  # crosses the hashing slices, 2 bytes a character
    digest = digest_json(text)
    raw = text.encode()
    assert digest == PayloadDigest(hashlib.sha256(raw).hexdigest(), len(raw), text[:PREVIEW_CHARS])
    assert digest.describe() == f"{len(raw)} bytes of JSON, sha256 {digest.sha256[:16]}..."


def test_the_cap_counts_bytes_not_characters() -> None:
    at_cap = {"t": "a" * (MAX_STORED_PAYLOAD_BYTES - len('{"t":""}'))}
    assert not needs_cap(at_cap, _json(at_cap))
    over = {"t": "a" * (MAX_STORED_PAYLOAD_BYTES - len('{"t":""}') + 1)}
    assert needs_cap(over, _json(over))
    wide = {"t": "€" * (MAX_STORED_PAYLOAD_BYTES // 3)}  # fewer characters than the cap, 3x the bytes
    assert needs_cap(wide, _json(wide))


def test_a_capped_payload_keeps_its_shape_and_is_recognised() -> None:
    big = {"blob": "x" * 100}
    text = _json(big)
    stored = capped(big, text)
    assert stored == {
        CAPPED_KEY: {"sha256": hashlib.sha256(text.encode()).hexdigest(), "size": 111, "preview": text}
    }
    assert capped_digest(stored) == digest_json(text)
    assert capped_digest(capped([big], _json([big]))) == digest_json(_json([big]))
    assert isinstance(capped([big], _json([big])), list)


def test_something_that_looks_capped_is_capped_and_other_payloads_are_not() -> None:
    lookalike = {CAPPED_KEY: {"sha256": "0" * 64, "size": 1, "preview": ""}}
    assert needs_cap(lookalike, _json(lookalike))
    assert capped_digest({"a": 1}) is None
    assert capped_digest({CAPPED_KEY: 1, "a": 1}) is None
    assert capped_digest([{"a": 1}]) is None
    assert capped_digest("text") is None
    assert capped_digest({CAPPED_KEY: "hand-made"}) == PayloadDigest("", 0, "")


def test_text_is_cut_with_its_full_length_noted() -> None:
    assert cap_text("short") == "short"
    long = "e" * (MAX_STORED_TEXT_CHARS + 5)
    assert (
        cap_text(long)
        == "e" * MAX_STORED_TEXT_CHARS + f" [cut: {MAX_STORED_TEXT_CHARS + 5} characters in all]"
    )
