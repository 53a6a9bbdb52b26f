"""The client's model as a reranker: the prompt, the strict reading of its answer, every way it fails,
and an acquisition that installs the candidate the model chose (probe server, no network)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from vsm_mcp.acquisition.candidates import summarize
from vsm_mcp.acquisition.launch import SandboxLauncher
from vsm_mcp.acquisition.mcp_tools import CapabilityTools
from vsm_mcp.acquisition.pipeline import Acquirer
from vsm_mcp.acquisition.rerank import (
    MAX_TOKENS,
    PROMPT_MAX_CHARS,
    SYSTEM_PROMPT,
    ClientModel,
    Reply,
    RerankPolicy,
    Summary,
    build_prompt,
    parse_choice,
    rerank,
)
from vsm_mcp.acquisition.service import CapabilityService
from vsm_mcp.acquisition.vetting import Candidate, VettingPolicy
from vsm_mcp.discovery.catalog import Catalog, PackageRef, ServerEntry, ToolSpec
from vsm_mcp.discovery.matcher import Matcher
from vsm_mcp.errors import ConfigError
from vsm_mcp.fleet.registry import FleetRegistry
from vsm_mcp.settings import load_settings
from vsm_mcp.store import MemoryStore

from .conftest import ProbeInstaller, stub_metadata

pytestmark = pytest.mark.anyio

NAMES = ["alpha-server", "beta-server", "gamma-server", "delta-server", "epsilon-server", "zeta-server"]
CANDIDATES = [Candidate(n, "pypi", n, "1.0.0", score=1.0 - i / 10) for i, n in enumerate(NAMES)]


def _summary(candidate: Candidate) -> Summary:
    return Summary(candidate.server, f"what {candidate.server} does", ("first_tool", "second_tool"))


class ScriptedModel:
    """A client model that answers every request with ``reply`` and keeps what it was asked."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.asked: list[tuple[str, str, int]] = []

    async def sample(self, system: str, prompt: str, max_tokens: int) -> Reply:
        self.asked.append((system, prompt, max_tokens))
        return self.reply


async def _rank(reply: Reply, policy: RerankPolicy | None = None) -> tuple[list[str], dict[str, object], int]:
    model = ScriptedModel(reply)
    ranking = await rerank(
        "find a thing", CANDIDATES, ClientModel(model.sample), policy or RerankPolicy(), _summary
    )
    return [c.server for c in ranking.candidates], ranking.json(), len(model.asked)


def test_the_prompt_names_every_shown_candidate_and_stays_bounded() -> None:
    summaries = [_summary(c) for c in CANDIDATES[:3]]
    assert build_prompt("send a slack message", summaries) == (
        "Need: send a slack message\n\nCandidates:\n"
        "1. alpha-server: what alpha-server does (tools: first_tool, second_tool)\n"
        "2. beta-server: what beta-server does (tools: first_tool, second_tool)\n"
        "3. gamma-server: what gamma-server does (tools: first_tool, second_tool)\n\n"
        "Which candidate fits the need best? Answer with its number (1-3) only."
    )
    huge = [Summary("n" * 500, "d\n" * 2000, tuple("t" * 300 for _ in range(50))) for _ in range(9)]
    prompt = build_prompt("q " * 5000, huge)
    assert len(prompt) <= PROMPT_MAX_CHARS
    assert len(prompt.splitlines()) == 10  # five candidates, one line each, whatever the input held
    assert "(1-5)" in prompt


def test_an_answer_is_a_number_in_range_or_an_exact_name() -> None:
    names = NAMES[:5]
    assert parse_choice("3", names) == 2
    assert parse_choice(" 3.\n", names) == 2
    assert parse_choice("beta-server", names) == 1
    for garbage in ("6", "0", "three", "3 because it sends mail", "Beta-Server", "beta", "", "1, 2", "-1"):
        assert parse_choice(garbage, names) is None, garbage


async def test_the_chosen_candidate_moves_first_and_says_by_whom() -> None:
    order, provenance, asked = await _rank(Reply("3", "scripted-model"))
    assert order == [
        "gamma-server",
        "alpha-server",
        "beta-server",
        "delta-server",
        "epsilon-server",
        "zeta-server",
    ]
    assert provenance == {
        "reranked_by": "client-sampling",
        "rerank": {
            "model": "scripted-model",
            "chosen": 3,
            "reason": "the client's model chose candidate 3 of 5",
        },
    }
    assert asked == 1
    # By name, among the top max_candidates only.
    order, provenance, _ = await _rank(Reply("beta-server", "m"), RerankPolicy(max_candidates=2))
    assert order[:3] == ["beta-server", "alpha-server", "gamma-server"]
    assert provenance["rerank"] == {
        "model": "m",
        "chosen": 2,
        "reason": "the client's model chose candidate 2 of 2",
    }
    order, provenance, _ = await _rank(Reply("3", "m"), RerankPolicy(max_candidates=2))
    assert order == NAMES
    assert provenance["reranked_by"] == "offline"


async def test_the_choice_is_kept_in_the_candidates_reasons() -> None:
    model = ScriptedModel(Reply("2", "scripted-model"))
    ranking = await rerank("q", CANDIDATES, ClientModel(model.sample), RerankPolicy(), _summary)
    assert ranking.candidates[0].reasons == (
        "chosen by the client's model (scripted-model) among the top 5, offline rank 2",
    )
    assert [c.reasons for c in ranking.candidates[1:]] == [()] * 5


async def test_every_failure_leaves_the_offline_order_with_its_reason() -> None:
    cases = {
        Reply("I would pick the second"): "the client's model (unnamed) answered 'I would pick the second', "
        "not a candidate's number from 1 to 5 or its exact name",
        Reply(
            "9", "m"
        ): "the client's model (m) answered '9', not a candidate's number from 1 to 5 or its exact name",
        Reply(failure="the client did not sample (User rejected sampling request)"): (
            "the client did not sample (User rejected sampling request)"
        ),
    }
    for reply, reason in cases.items():
        order, provenance, asked = await _rank(reply)
        assert order == NAMES
        assert provenance == {"reranked_by": "offline", "rerank": {"reason": reason}}
        assert asked == 1


async def test_nothing_is_asked_when_off_without_a_client_or_with_one_candidate() -> None:
    model = ScriptedModel(Reply("2", "m"))
    off = await rerank("q", CANDIDATES, ClientModel(model.sample), RerankPolicy(enabled=False), _summary)
    one = await rerank("q", CANDIDATES[:1], ClientModel(model.sample), RerankPolicy(), _summary)
    nobody = await rerank("q", CANDIDATES, None, RerankPolicy(), _summary)
    cannot = await rerank("q", CANDIDATES, ClientModel(None, "no sampling here"), RerankPolicy(), _summary)
    assert model.asked == []
    assert [r.json()["rerank"]["reason"] for r in (off, one, nobody, cannot)] == [
        "reranking by the client's model is off ([acquisition] rerank_with_client)",
        "fewer than two candidates: nothing to choose",
        "no MCP client is calling",
        "no sampling here",
    ]
    assert [[c.server for c in r.candidates] for r in (off, nobody, cannot)] == [NAMES] * 3
    assert {r.by for r in (off, one, nobody, cannot)} == {"offline"}


async def test_a_model_that_never_answers_gives_the_offline_order_at_the_deadline() -> None:
    asked = anyio.Event()
    cancelled = anyio.Event()

    async def silent(system: str, prompt: str, max_tokens: int) -> Reply:
        asked.set()
        try:
            await anyio.Event().wait()  # nobody ever answers
        finally:
            cancelled.set()
        raise AssertionError("unreachable")

    with anyio.fail_after(5):
        ranking = await rerank("q", CANDIDATES, ClientModel(silent), RerankPolicy(deadline_s=0.05), _summary)
    assert asked.is_set() and cancelled.is_set()
    assert [c.server for c in ranking.candidates] == NAMES
    assert ranking.json() == {
        "reranked_by": "offline",
        "rerank": {"reason": "the client's model did not answer within 0.05 s"},
    }


def test_a_summary_shows_the_description_and_the_tools_that_matched() -> None:
    catalog = Catalog(
        (
            ServerEntry(
                "mailer",
                "Send and read email",
                tools=(ToolSpec("read_inbox", "Read mail"), ToolSpec("send_mail", "Send mail")),
                packages=(PackageRef("pypi", "mailer", "1.0.0"),),
            ),
        )
    )
    matched = Candidate("mailer", "pypi", "mailer", "1.0.0", reasons=("matches 'send'", "tools send_mail"))
    plain = Candidate("mailer", "pypi", "mailer", "1.0.0")
    unknown = Candidate("elsewhere", "npm", "elsewhere", "2.0.0", reasons=("found by npm search",))
    assert summarize(matched, catalog) == Summary("mailer", "Send and read email", ("send_mail",))
    assert summarize(plain, catalog) == Summary("mailer", "Send and read email", ("read_inbox", "send_mail"))
    assert summarize(unknown, catalog) == Summary("elsewhere")


PROBES = Catalog(
    tuple(
        ServerEntry(
            f"probe-{n}",
            f"Echo text back and add integers ({n})",
            tools=(ToolSpec("echo", "Return the text unchanged"), ToolSpec("add", "Add two integers")),
            packages=(PackageRef("pypi", f"mcp-probe-{n}", "1.0.0"),),
            license="MIT",
        )
        for n in ("one", "two", "three")
    )
)


@pytest.mark.slow
async def test_an_acquisition_installs_the_candidate_the_model_chose(tmp_path: Path) -> None:
    async with MemoryStore.open() as store:
        installer = ProbeInstaller()
        acquirer = Acquirer(
            store=store,
            registry=FleetRegistry(store),
            installer=installer,
            metadata=stub_metadata(),
            known_names={e.name for e in PROBES},
            state_dir=tmp_path,
            policy=VettingPolicy(auto_approve=True),
            launcher=SandboxLauncher(tmp_path, mode="off"),
        )
        tools = CapabilityTools(CapabilityService(acquirer, Matcher(PROBES), registry_types=("pypi",)))
        found = await tools.call("vsm_find_capability", {"query": "add two integers"})
        offline = [c["server"] for c in found["candidates"]]
        assert sorted(offline) == ["probe-one", "probe-three", "probe-two"]
        assert found["reranked_by"] == "offline"
        assert found["rerank"] == {"reason": "no MCP client is calling"}

        model = ScriptedModel(Reply("2", "scripted-model"))
        with anyio.fail_after(60):
            done = await tools.call(
                "vsm_acquire_capability", {"query": "add two integers"}, model=ClientModel(model.sample)
            )
        assert len(model.asked) == 1
        system, prompt, max_tokens = model.asked[0]
        assert (system, max_tokens) == (SYSTEM_PROMPT, MAX_TOKENS)
        assert prompt.startswith("Need: add two integers\n")
        assert [line.split(":")[0] for line in prompt.splitlines()[3:6]] == [
            f"{i}. {name}" for i, name in enumerate(offline, start=1)
        ]
        second = offline[1]
        package = f"pypi:mcp-probe-{second.removeprefix('probe-')}@1.0.0"
        assert installer.installs == [package]
        assert done["package"] == package
        assert done["reranked_by"] == "client-sampling"
        assert done["rerank"] == {
            "model": "scripted-model",
            "chosen": 2,
            "reason": "the client's model chose candidate 2 of 3",
        }
        decision = (await store.decisions())[0]
        assert decision.choice == "acquired"
        assert decision.inputs["candidate"]["package"] == package
        assert decision.inputs["candidate"]["reasons"][-1] == (
            "chosen by the client's model (scripted-model) among the top 3, offline rank 2"
        )

        # A named server is the caller's choice: the model is not asked.
        named = await tools.plan(
            {"query": "add two integers", "server": offline[2]}, model=ClientModel(model.sample)
        )
        assert named[0].candidate.server == offline[2]
        assert named[1].json() == {
            "reranked_by": "offline",
            "rerank": {"reason": "the caller named the server"},
        }
        assert len(model.asked) == 1


def test_the_settings_give_the_policy_and_bound_the_candidates(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[acquisition]\nrerank_candidates = 3\nrerank_deadline_s = 7.5\n")
    assert load_settings(config, state_dir=tmp_path).acquisition.rerank_policy() == RerankPolicy(
        enabled=True, max_candidates=3, deadline_s=7.5, max_tokens=MAX_TOKENS
    )
    assert load_settings(state_dir=tmp_path / "none").acquisition.rerank_policy() == RerankPolicy()
    config.write_text("[acquisition]\nrerank_candidates = 6\n")
    with pytest.raises(
        ConfigError, match=r"acquisition\.rerank_candidates: Input should be less than or equal to 5"
    ):
        load_settings(config, state_dir=tmp_path)
