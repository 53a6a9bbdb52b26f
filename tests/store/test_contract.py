"""The `Store` contract, run on `MemoryStore` and `SqliteStore` alike."""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, replace

import pytest

from vsm_mcp.core.access import Scope, TokenRecord, token_digest
from vsm_mcp.core.messages import (
    AlgedonicAlert,
    ApprovalRequest,
    ApprovalStatus,
    AuditFinding,
    Capability,
    DeadLetter,
    Decision,
    DemandAggregate,
    OperatorAction,
    Severity,
    Valence,
)
from vsm_mcp.core.payload import (
    CAPPED_KEY,
    MAX_STORED_PAYLOAD_BYTES,
    MAX_STORED_TEXT_CHARS,
    PREVIEW_CHARS,
    PayloadDigest,
    capped_digest,
    digest_json,
)
from vsm_mcp.core.ports import Store
from vsm_mcp.errors import RecordNotFoundError, StateError
from vsm_mcp.store import records

pytestmark = pytest.mark.anyio


def decision(at: float, subject: str = "fs", **extra: object) -> Decision:
    return Decision(
        at=at,
        system="S5",
        subject=subject,
        choice="acquire",
        rule="gap>=0.4 for 30s",
        rationale="demand for files is unmatched",
        inputs={"gap": 0.68, "window": 500, **extra},
        alternatives=[{"name": "server-filesystem", "score": 0.91}],
    )


def alert(last_at: float, kind: str = "crash_loop", first_at: float = 1.0) -> AlgedonicAlert:
    return AlgedonicAlert(
        source="unit:fs",
        kind=kind,
        valence=Valence.PAIN,
        severity=Severity.HIGH,
        count=3,
        first_at=first_at,
        last_at=last_at,
        detail="3 restarts in 10 s",
    )


def letter(at: float, tool: str = "read_file") -> DeadLetter:
    return DeadLetter(at=at, unit="fs", tool=tool, arguments={"path": "/a"}, error="timeout", attempts=3)


async def test_demand_upserts_by_summing_counts_and_matched(store: Store) -> None:
    await store.add_demand([DemandAggregate("files", 60, 3, 2), DemandAggregate("web", 60, 1, 0)])
    await store.add_demand([DemandAggregate("files", 60, 4, 4), DemandAggregate("files", 120, 5, 1)])

    assert await store.demand_since(0) == [
        DemandAggregate("files", 60, 7, 6),
        DemandAggregate("web", 60, 1, 0),
        DemandAggregate("files", 120, 5, 1),
    ]


async def test_demand_sums_duplicates_within_one_batch(store: Store) -> None:
    await store.add_demand([DemandAggregate("files", 0, 1, 1)] * 3)

    assert await store.demand_since(0) == [DemandAggregate("files", 0, 3, 3)]


async def test_demand_since_orders_by_bucket_then_category_and_filters(store: Store) -> None:
    await store.add_demand(
        [
            DemandAggregate("zeta", 120, 1, 0),
            DemandAggregate("alpha", 180, 1, 0),
            DemandAggregate("beta", 120, 2, 2),
            DemandAggregate("alpha", 60, 9, 9),
        ]
    )

    assert await store.demand_since(120) == [
        DemandAggregate("beta", 120, 2, 2),
        DemandAggregate("zeta", 120, 1, 0),
        DemandAggregate("alpha", 180, 1, 0),
    ]
    assert await store.demand_since(181) == []


async def test_demand_batch_with_an_invalid_row_writes_nothing(store: Store) -> None:
    with pytest.raises(ValueError, match="0 <= matched <= count"):
        await store.add_demand([DemandAggregate("files", 0, 1, 1), DemandAggregate("web", 0, 1, 2)])

    assert await store.demand_since(0) == []


async def test_empty_demand_batch_is_a_no_op(store: Store) -> None:
    await store.add_demand([])

    assert await store.demand_since(0) == []


async def test_capabilities_replace_per_unit_and_order_by_unit_tool_category(store: Store) -> None:
    await store.put_capabilities("web", [Capability("web", "fetch", "web", "GET a URL")])
    await store.put_capabilities(
        "fs",
        [
            Capability("fs", "write", "files"),
            Capability("fs", "read", "files", "read a file"),
            Capability("fs", "read", "archive", "read a zip"),
        ],
    )

    assert await store.capabilities() == [
        Capability("fs", "read", "archive", "read a zip"),
        Capability("fs", "read", "files", "read a file"),
        Capability("fs", "write", "files"),
        Capability("web", "fetch", "web", "GET a URL"),
    ]

    await store.put_capabilities("fs", [Capability("fs", "stat", "files")])
    assert await store.capabilities() == [
        Capability("fs", "stat", "files"),
        Capability("web", "fetch", "web", "GET a URL"),
    ]

    await store.put_capabilities("web", [])
    assert await store.capabilities() == [Capability("fs", "stat", "files")]


async def test_capability_duplicate_in_one_call_keeps_the_last(store: Store) -> None:
    await store.put_capabilities(
        "fs", [Capability("fs", "read", "files", "old"), Capability("fs", "read", "files", "new")]
    )

    assert await store.capabilities() == [Capability("fs", "read", "files", "new")]


async def test_capability_of_another_unit_is_refused_and_nothing_changes(store: Store) -> None:
    await store.put_capabilities("fs", [Capability("fs", "read", "files")])

    with pytest.raises(ValueError, match="belongs to unit 'web', not 'fs'"):
        await store.put_capabilities("fs", [Capability("web", "fetch", "web")])

    assert await store.capabilities() == [Capability("fs", "read", "files")]


async def test_decisions_get_increasing_ids_and_come_back_most_recent_first(store: Store) -> None:
    ids = [
        await store.record_decision(decision(at, subject))
        for at, subject in [(10.0, "a"), (30.0, "b"), (20.0, "c")]
    ]

    assert ids == [1, 2, 3]
    assert [d.subject for d in await store.decisions()] == ["b", "c", "a"]
    assert await store.decisions(limit=1) == [replace(decision(30.0, "b"), id=2)]
    assert await store.decisions(limit=0) == []
    assert await store.decision(3) == replace(decision(20.0, "c"), id=3)
    assert await store.decision(4) is None


async def test_decisions_at_the_same_time_come_back_latest_inserted_first(store: Store) -> None:
    for subject in ["first", "second", "third"]:
        await store.record_decision(decision(5.0, subject))

    assert [d.subject for d in await store.decisions()] == ["third", "second", "first"]


async def test_decision_json_fields_round_trip_as_json(store: Store) -> None:
    await store.record_decision(decision(1.0, pair=(1, 2), nested={"k": [None, True, 1.5, "é"]}))

    [stored] = await store.decisions()
    assert stored.inputs == {
        "gap": 0.68,
        "window": 500,
        "pair": [1, 2],
        "nested": {"k": [None, True, 1.5, "é"]},
    }
    assert stored.alternatives == [{"name": "server-filesystem", "score": 0.91}]


async def test_decision_with_nan_is_refused_and_not_stored(store: Store) -> None:
    with pytest.raises(ValueError, match="Out of range float"):
        await store.record_decision(decision(1.0, gap=math.nan))

    assert await store.decisions() == []


async def test_negative_limit_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="limit must be >= 0, got -1"):
        await store.decisions(limit=-1)
    with pytest.raises(ValueError, match="limit must be >= 0"):
        await store.alerts(limit=-1)
    with pytest.raises(ValueError, match="limit must be >= 0"):
        await store.findings(limit=-1)


async def test_alerts_round_trip_and_come_back_by_last_at_most_recent_first(store: Store) -> None:
    ids = [
        await store.record_alert(alert(50.0, "crash_loop")),
        await store.record_alert(alert(70.0, "rug_pull")),
        await store.record_alert(alert(60.0, "error_spike")),
    ]

    assert ids == [1, 2, 3]
    assert await store.alerts() == [
        replace(alert(70.0, "rug_pull"), id=2),
        replace(alert(60.0, "error_spike"), id=3),
        replace(alert(50.0, "crash_loop"), id=1),
    ]
    [latest] = await store.alerts(limit=1)
    assert latest.valence is Valence.PAIN
    assert latest.severity is Severity.HIGH


async def test_alert_ending_before_it_starts_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="ends"):
        await store.record_alert(alert(last_at=1.0, first_at=2.0))

    assert await store.alerts() == []


async def test_findings_round_trip_and_come_back_most_recent_first(store: Store) -> None:
    passed = AuditFinding(at=2.0, unit="fs", check="ping", ok=True, detail="pong", latency_ms=3.25)
    failed = AuditFinding(at=3.0, unit="fs", check="definitions", ok=False, detail="read_file changed")

    assert [await store.record_finding(passed), await store.record_finding(failed)] == [1, 2]
    assert await store.findings() == [failed, passed]
    assert await store.findings(limit=1) == [failed]


async def test_dead_letters_oldest_first_and_replay_hides_them(store: Store) -> None:
    late = await store.put_dead_letter(letter(20.0, "late"))
    early = await store.put_dead_letter(letter(10.0, "early"))

    assert [(d.id, d.tool, d.replayed_at) for d in await store.dead_letters()] == [
        (2, "early", None),
        (1, "late", None),
    ]
    assert (late, early) == (1, 2)

    await store.mark_replayed(early, 30.0)

    assert [d.tool for d in await store.dead_letters()] == ["late"]
    everything = await store.dead_letters(include_replayed=True)
    assert everything == [
        DeadLetter(
            at=10.0,
            unit="fs",
            tool="early",
            arguments={"path": "/a"},
            error="timeout",
            attempts=3,
            id=2,
            replayed_at=30.0,
        ),
        DeadLetter(
            at=20.0, unit="fs", tool="late", arguments={"path": "/a"}, error="timeout", attempts=3, id=1
        ),
    ]


async def test_replaying_again_records_the_latest_replay(store: Store) -> None:
    letter_id = await store.put_dead_letter(letter(1.0))
    await store.mark_replayed(letter_id, 5.0)
    await store.mark_replayed(letter_id, 9.0)

    [stored] = await store.dead_letters(include_replayed=True)
    assert stored.replayed_at == 9.0


async def test_dead_letter_gets_a_new_id_whatever_it_carried(store: Store) -> None:
    first = await store.put_dead_letter(letter(1.0))
    [stored] = await store.dead_letters()
    second = await store.put_dead_letter(stored)

    assert (first, second) == (1, 2)
    assert [d.id for d in await store.dead_letters()] == [1, 2]


async def test_mark_replayed_of_unknown_id_raises(store: Store) -> None:
    with pytest.raises(RecordNotFoundError, match="no dead letter with id 42"):
        await store.mark_replayed(42, 1.0)


async def test_kv_put_get_replace_and_absent(store: Store) -> None:
    assert await store.kv_get("fleet") is None

    await store.kv_put("fleet", [{"name": "fs", "command": "npx", "args": ("-y", "pkg")}])
    assert await store.kv_get("fleet") == [{"name": "fs", "command": "npx", "args": ["-y", "pkg"]}]

    await store.kv_put("fleet", {"units": []})
    await store.kv_put("mode", "auto")
    assert await store.kv_get("fleet") == {"units": []}
    assert await store.kv_get("mode") == "auto"


async def test_kv_refuses_values_json_cannot_encode(store: Store) -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        await store.kv_put("bad", {"when": object()})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="Out of range float"):
        await store.kv_put("bad", math.inf)

    assert await store.kv_get("bad") is None


async def test_closed_store_refuses_use_and_close_is_idempotent(store: Store) -> None:
    await store.close()
    await store.close()

    with pytest.raises(StateError, match="is closed"):
        await store.decisions()
    with pytest.raises(StateError, match="is closed"):
        await store.kv_put("k", 1)


async def test_secrets_set_replace_list_and_delete_without_listing_values(store: Store) -> None:
    assert await store.secret("API_KEY") is None
    assert await store.secret_names() == []

    await store.put_secret("API_KEY", "s3cret", at=10.0)
    await store.put_secret("a.token-2", "other", at=11.0)
    await store.put_secret("API_KEY", "rotated", at=12.0)

    assert await store.secret("API_KEY") == "rotated"
    assert await store.secret_names() == [("API_KEY", 12.0), ("a.token-2", 11.0)]
    assert await store.delete_secret("API_KEY") is True
    assert await store.delete_secret("API_KEY") is False
    assert await store.secret("API_KEY") is None
    assert await store.secret_names() == [("a.token-2", 11.0)]


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "${secret:X}", "ä"])
async def test_secret_names_a_reference_could_not_spell_are_refused(store: Store, name: str) -> None:
    with pytest.raises(ValueError, match="secret name"):
        await store.put_secret(name, "v", at=1.0)
    assert await store.secret_names() == []


# -- payload caps ------------------------------------------------------------------------


async def test_a_dead_letter_over_the_cap_keeps_a_digest_and_its_error_is_cut(store: Store) -> None:
    arguments = {"path": "/a", "blob": "b" * MAX_STORED_PAYLOAD_BYTES}
    text = records.encode_json(arguments)
    await store.put_dead_letter(
        replace(letter(1.0), arguments=arguments, error="e" * (MAX_STORED_TEXT_CHARS + 1))
    )

    [stored] = await store.dead_letters()
    assert stored.arguments == {CAPPED_KEY: asdict(digest_json(text))}
    assert capped_digest(stored.arguments) == PayloadDigest(
        sha256=hashlib.sha256(text.encode()).hexdigest(), size=len(text), preview=text[:PREVIEW_CHARS]
    )
    assert (
        stored.error == "e" * MAX_STORED_TEXT_CHARS + f" [cut: {MAX_STORED_TEXT_CHARS + 1} characters in all]"
    )


async def test_a_dead_letter_that_only_looks_capped_is_capped_so_it_is_never_replayed_as_is(
    store: Store,
) -> None:
    lookalike = {CAPPED_KEY: {"sha256": "0" * 64, "size": 2, "preview": "{}"}}
    await store.put_dead_letter(replace(letter(1.0), arguments=lookalike))

    [stored] = await store.dead_letters()
    assert capped_digest(stored.arguments) == digest_json(records.encode_json(lookalike))


async def test_decision_payloads_over_the_cap_keep_their_shape(store: Store) -> None:
    huge = "h" * MAX_STORED_PAYLOAD_BYTES
    await store.record_decision(replace(decision(1.0), inputs={"doc": huge}, alternatives=[{"doc": huge}]))

    [stored] = await store.decisions()
    assert capped_digest(stored.inputs) == digest_json(records.encode_json({"doc": huge}))
    assert isinstance(stored.alternatives, list)
    assert capped_digest(stored.alternatives) == digest_json(records.encode_json([{"doc": huge}]))


async def test_alert_and_finding_details_are_cut(store: Store) -> None:
    detail = "d" * (MAX_STORED_TEXT_CHARS + 10)
    await store.record_alert(replace(alert(2.0), detail=detail))
    await store.record_finding(AuditFinding(1.0, "fs", "ping", False, detail))

    cut = "d" * MAX_STORED_TEXT_CHARS + f" [cut: {MAX_STORED_TEXT_CHARS + 10} characters in all]"
    assert [a.detail for a in await store.alerts()] == [cut]
    assert [f.detail for f in await store.findings()] == [cut]


async def test_tokens_are_added_listed_rotated_used_and_deleted_by_digest_only(store: Store) -> None:
    ci = TokenRecord("ci", token_digest("value-1"), frozenset({Scope.CALL}), created_at=10.0)
    ops = TokenRecord("ops", token_digest("value-2"), frozenset(Scope), created_at=11.0)
    assert await store.add_token(ops) is True
    assert await store.add_token(ci) is True
    assert await store.add_token(replace(ci, digest=token_digest("value-3"))) is False  # name taken
    assert await store.add_token(replace(ci, name="other")) is False  # digest taken

    assert await store.tokens() == [ci, ops]
    await store.mark_tokens_used({"ci": 20.0, "nobody": 21.0})
    await store.mark_tokens_used({"ci": 15.0})  # an older use never moves it back
    assert [t.last_used_at for t in await store.tokens()] == [20.0, None]

    assert await store.rotate_token("ci", token_digest("value-4"), at=30.0) is True
    assert await store.rotate_token("nobody", token_digest("value-5"), at=30.0) is False
    rotated = (await store.tokens())[0]
    assert rotated == TokenRecord("ci", token_digest("value-4"), frozenset({Scope.CALL}), 30.0, None)

    assert await store.delete_token("ci") is True
    assert await store.delete_token("ci") is False
    assert [t.name for t in await store.tokens()] == ["ops"]


async def test_a_token_keeps_its_profile_binding_across_rotation(store: Store) -> None:
    bound = TokenRecord("ide", token_digest("v1"), frozenset({Scope.CALL}), 1.0, profile="dev.tools")
    assert await store.add_token(bound) is True
    assert await store.rotate_token("ide", token_digest("v2"), at=2.0) is True
    assert [(t.name, t.profile) for t in await store.tokens()] == [("ide", "dev.tools")]


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (TokenRecord("admin", "a" * 64, frozenset({Scope.CALL}), 1.0), "is the admin token's"),
        (TokenRecord("bad name", "a" * 64, frozenset({Scope.CALL}), 1.0), "must be 1-64 letters"),
        (TokenRecord("ci", "A" * 64, frozenset({Scope.CALL}), 1.0), "64 lowercase hex digits"),
        (TokenRecord("ci", "a" * 64, frozenset(), 1.0), "at least one scope"),
        (TokenRecord("ci", "a" * 64, frozenset({Scope.CALL}), 1.0, profile="a b"), "profile name"),
    ],
)
async def test_invalid_tokens_are_refused_before_anything_is_stored(
    store: Store, token: TokenRecord, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await store.add_token(token)
    assert await store.tokens() == []


def _asked(subject: str = "acquire:pypi:pkg@1.0", at: float = 1.0) -> ApprovalRequest:
    return ApprovalRequest("acquisition", subject, at, f"Acquire {subject}?", {"plan": {"unit": "pkg"}})


async def test_approvals_are_asked_once_per_pending_subject_and_settled_by_compare_and_set(
    store: Store,
) -> None:
    first, new = await store.ask_approval(_asked())
    assert new is True
    assert await store.ask_approval(_asked(at=2.0)) == (first, False)  # the same subject, still pending
    other, _ = await store.ask_approval(_asked("acquire:npm:x@2"))
    assert [a.id for a in await store.approvals()] == [other, first]  # newest first
    kept = await store.approval(first)
    assert (
        kept is not None
        and kept.request == {"plan": {"unit": "pkg"}}
        and kept.status is ApprovalStatus.PENDING
    )

    settle = store.settle_approval
    assert await settle(
        first, expect=ApprovalStatus.PENDING, status=ApprovalStatus.APPROVED, at=3.0, by="alice"
    )
    # Someone else's answer came first: the second one does not overwrite it.
    assert not await settle(
        first, expect=ApprovalStatus.PENDING, status=ApprovalStatus.DENIED, at=4.0, by="bob"
    )
    assert await settle(
        first, expect=ApprovalStatus.APPROVED, status=ApprovalStatus.DONE, at=5.0, outcome="unit pkg"
    )
    done = await store.approval(first)
    assert done is not None
    assert (done.status, done.decided_at, done.decided_by, done.outcome) == (
        ApprovalStatus.DONE,
        5.0,
        "alice",
        "unit pkg",
    )
    assert not await settle(99, expect=ApprovalStatus.PENDING, status=ApprovalStatus.DENIED, at=6.0)
    assert await store.approval(99) is None

    # Settled, the subject may be asked again.
    again, new = await store.ask_approval(_asked(at=7.0))
    assert new is True and again not in (first, other)
    assert [a.id for a in await store.approvals(status=ApprovalStatus.PENDING)] == [again, other]
    assert [a.id for a in await store.approvals(subject="acquire:pypi:pkg@1.0")] == [again, first]
    assert len(await store.approvals(limit=1)) == 1


async def test_an_approval_is_asked_pending_with_a_kind_and_subject(store: Store) -> None:
    with pytest.raises(ValueError, match="kind and a subject"):
        await store.ask_approval(ApprovalRequest("", "s", 1.0, "q", {}))
    with pytest.raises(ValueError, match="asked pending"):
        await store.ask_approval(replace(_asked(), status=ApprovalStatus.DONE))
    assert await store.approvals() == []


async def test_a_failed_replay_counts_one_attempt_more_with_the_new_error(store: Store) -> None:
    letter_id = await store.put_dead_letter(DeadLetter(1.0, "u", "t", {"a": 1}, "first", attempts=2))
    await store.note_failed_replay(letter_id, "the tool reported an error: no")
    [letter] = await store.dead_letters()
    assert (letter.attempts, letter.error, letter.replayed_at) == (3, "the tool reported an error: no", None)
    with pytest.raises(RecordNotFoundError):
        await store.note_failed_replay(99, "x")


async def test_the_audit_log_comes_back_newest_first_and_filters_by_actor_and_action(store: Store) -> None:
    first = await store.record_action(OperatorAction(1.0, "token 'ops'", "servers.restart", "probe", "api"))
    second = await store.record_action(
        OperatorAction(2.0, "local user root", "approval.deny", "3", "cli", detail="x" * 100_000, ok=False)
    )
    third = await store.record_action(OperatorAction(3.0, "token 'ops'", "approval.approve", "4", "page"))
    assert first < second < third
    log = await store.actions()
    assert [(a.id, a.action) for a in log] == [
        (third, "approval.approve"),
        (second, "approval.deny"),
        (first, "servers.restart"),
    ]
    assert log[1].ok is False and len(log[1].detail) < 100_000  # long details are cut, as everywhere
    assert [a.id for a in await store.actions(actor="token 'ops'")] == [third, first]
    assert [a.id for a in await store.actions(action="approval.")] == [third, second]
    assert [a.id for a in await store.actions(1)] == [third]
