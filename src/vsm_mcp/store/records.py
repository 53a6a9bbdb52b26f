"""Rules every store applies to records on the way in and out, so both behave alike.

`SqliteStore` and `MemoryStore` call these same functions, which is what makes
their behaviour identical beyond the SQL:

* JSON fields (decision inputs and alternatives, dead-letter arguments, kv
  values) are encoded with `encode_json` on write and decoded on read, so a
  tuple comes back as a list and a NaN is refused (``ValueError``) in both.
* Payloads (decision inputs and alternatives, dead-letter arguments) are
  encoded with `encode_payload`: one larger than
  ``MAX_STORED_PAYLOAD_BYTES`` is stored as its digest
  (`vsm_mcp.core.payload`), and text a server writes (a dead letter's error,
  an alert's or finding's detail) is cut by `store_text`; so no call, however
  large, grows the database by more than about that much.
* Invalid records are refused with ``ValueError`` before anything is written
  (a caller's bug, not a user error).
* Orderings (the SQL ``ORDER BY`` clauses and the in-memory sort keys both
  implement exactly these; ties between records break by insertion order):

  - ``demand_since``: bucket_start ascending, then category;
  - ``capabilities``: unit, then tool, then category;
  - ``decisions`` / ``findings``: ``at`` descending (most recent first);
  - ``alerts``: ``last_at`` descending (most recent first);
  - ``dead_letters``: ``at`` ascending (oldest first).

* ``put_capabilities`` keeps one row per (unit, tool, category); a later
  duplicate in the same call replaces the earlier one's description.
* ``add_demand`` sums count and matched into the (category, bucket_start)
  row, also across duplicates within one batch.
"""

from __future__ import annotations

import json
from typing import Any

from vsm_mcp.core import payload
from vsm_mcp.core.access import Scope, TokenRecord, check_token_name
from vsm_mcp.core.messages import (
    AlgedonicAlert,
    ApprovalRequest,
    ApprovalStatus,
    Capability,
    DemandAggregate,
)
from vsm_mcp.core.ports import JsonValue
from vsm_mcp.core.profiles import check_profile_name


def encode_json(value: Any) -> str:
    """Compact JSON text of ``value``.

    Raises:
        TypeError: ``value`` holds something JSON cannot encode.
        ValueError: ``value`` holds NaN or an infinity (not valid JSON).
    """
    return json.dumps(value, allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def encode_payload(value: Any) -> str:
    """`encode_json` of ``value``, or of its digest when that is over the payload cap.

    Raises:
        TypeError: ``value`` holds something JSON cannot encode.
        ValueError: ``value`` holds NaN or an infinity (not valid JSON).
    """
    text = encode_json(value)
    if payload.needs_cap(value, text):
        return encode_json(payload.capped(value, text))
    return text


def store_text(text: str) -> str:
    """``text`` as stored: cut at ``MAX_STORED_TEXT_CHARS`` (with a note of its length)."""
    return payload.cap_text(text)


def decode_json(text: str) -> Any:
    """The value of JSON ``text`` written by `encode_json`."""
    return json.loads(text)


def decode_kv(text: str | None) -> JsonValue:
    """A kv value, or None when the key is absent."""
    if text is None:
        return None
    value: JsonValue = json.loads(text)
    return value


def check_limit(limit: int) -> None:
    """Refuse a negative ``limit`` (SQLite would read it as "no limit", a slice otherwise)."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")


def check_demand(aggregate: DemandAggregate) -> None:
    """Counts are non-negative and ``matched <= count``."""
    if aggregate.count < 0 or not 0 <= aggregate.matched <= aggregate.count:
        raise ValueError(
            f"demand aggregate {aggregate.category!r}@{aggregate.bucket_start} needs "
            f"0 <= matched <= count, got count={aggregate.count} matched={aggregate.matched}"
        )


def check_capabilities(unit: str, capabilities: list[Capability]) -> None:
    """Every capability belongs to ``unit``."""
    for capability in capabilities:
        if capability.unit != unit:
            raise ValueError(
                f"capability {capability.tool!r} belongs to unit {capability.unit!r}, not {unit!r}"
            )


def check_alert(alert: AlgedonicAlert) -> None:
    """An alert stands for at least one signal, and ends no earlier than it starts."""
    if alert.count < 1:
        raise ValueError(f"alert {alert.key} must count at least one signal, got {alert.count}")
    if alert.last_at < alert.first_at:
        raise ValueError(f"alert {alert.key} ends ({alert.last_at}) before it starts ({alert.first_at})")


def check_token(token: TokenRecord) -> None:
    """A token has a valid name (never ``admin``: its file holds it), a SHA-256 hex digest, a scope."""
    check_token_name(token.name)
    if len(token.digest) != 64 or token.digest.strip("0123456789abcdef"):
        raise ValueError(f"token {token.name!r}: digest must be 64 lowercase hex digits")
    if not token.scopes:
        raise ValueError(f"token {token.name!r} needs at least one scope")
    if token.profile is not None:
        check_profile_name(token.profile)


def decode_scopes(text: str) -> frozenset[Scope]:
    """Stored scopes (`scopes_text`) back to a set."""
    return frozenset(Scope(word) for word in text.split())


def check_approval(request: ApprovalRequest) -> None:
    """An approval request names its kind and subject and starts pending (settling is separate)."""
    if not request.kind or not request.subject:
        raise ValueError("an approval request needs a kind and a subject")
    if request.status is not ApprovalStatus.PENDING:
        raise ValueError(f"an approval request is asked pending, not {request.status.value}")
