"""S5 vetting rules, pure."""

from __future__ import annotations

import pytest

from vsm_mcp.acquisition.vetting import (
    Candidate,
    Outcome,
    ReleaseMetadata,
    VettingPolicy,
    damerau_levenshtein,
    is_exact_version,
    typosquat_of,
    vet,
)

KNOWN = frozenset(
    {"mcp-server-time", "@modelcontextprotocol/server-everything", "time-mcp", "mcp-server-git"}
)


def _candidate(identifier: str = "mcp-server-time", version: str = "2026.10.19", **kw: object) -> Candidate:
    fields: dict[str, object] = {"registry_type": "pypi", "in_catalog": True} | kw
    return Candidate(identifier, identifier=identifier, version=version, **fields)  # type: ignore[arg-type]


def _meta(identifier: str = "mcp-server-time", version: str = "2026.10.19", **kw: object) -> ReleaseMetadata:
    fields: dict[str, object] = {"version_exists": True, "license": "MIT"} | kw
    return ReleaseMetadata("pypi", identifier, version, **fields)  # type: ignore[arg-type]


def test_damerau_levenshtein_counts_a_transposition_as_one_edit() -> None:
    assert damerau_levenshtein("mcp-server-time", "mcp-server-tiem") == 1
    assert damerau_levenshtein("mcp-server-time", "mcp-server-tme") == 1
    assert damerau_levenshtein("kitten", "sitting") == 3
    assert damerau_levenshtein("", "abc") == 3
    assert damerau_levenshtein("same", "same") == 0


@pytest.mark.parametrize(
    "version", ["1.2.3", "2026.10.19", "0.6.2", "1.0.0-beta.1", "2.0.0rc1", "1.2.3+local"]
)
def test_exact_versions_are_accepted(version: str) -> None:
    assert is_exact_version(version)


@pytest.mark.parametrize(
    "version", ["^1.2.3", "~1.2", ">=1.0", "1.x", "*", "latest", "", "1.2 || 2.0", "1.2.*"]
)
def test_ranges_and_tags_are_not_exact(version: str) -> None:
    assert not is_exact_version(version)


def test_a_clean_catalog_candidate_is_asked_unless_auto_approve() -> None:
    verdict = vet(_candidate(), _meta(), KNOWN, VettingPolicy())
    assert (verdict.outcome, verdict.rule) == (Outcome.ASK, "operator")
    assert "auto-approve is off" in verdict.rationale
    verdict = vet(_candidate(), _meta(), KNOWN, VettingPolicy(auto_approve=True))
    assert (verdict.outcome, verdict.rule) == (Outcome.APPROVE, "auto_approve")
    assert verdict.notes == ("licence MIT",)


def test_auto_approve_covers_only_catalog_packages_by_default() -> None:
    candidate = _candidate("pyjokes", "0.8.3", in_catalog=False)
    verdict = vet(candidate, _meta("pyjokes", "0.8.3"), KNOWN, VettingPolicy(auto_approve=True))
    assert (verdict.outcome, verdict.rule) == (Outcome.ASK, "operator")
    policy = VettingPolicy(auto_approve=True, auto_approve_unlisted=True)
    assert vet(candidate, _meta("pyjokes", "0.8.3"), KNOWN, policy).outcome is Outcome.APPROVE


def test_a_typosquatted_name_is_refused_naming_the_imitated_package() -> None:
    verdict = vet(
        _candidate("mcp-server-tme", "1.0.0"), _meta("mcp-server-tme", "1.0.0"), KNOWN, VettingPolicy()
    )
    assert verdict.outcome is Outcome.REFUSE
    assert verdict.rule == "typosquat"
    assert verdict.rationale == (
        "'mcp-server-tme' is 1 edit(s) from the well-known 'mcp-server-time': possible typosquat"
    )
    asked = vet(
        _candidate("mcp-server-tme", "1.0.0"),
        _meta("mcp-server-tme", "1.0.0"),
        KNOWN,
        VettingPolicy(typosquat_action="ask"),
    )
    assert asked.outcome is Outcome.ASK


def test_typosquat_check_spares_well_known_names_and_flags_foreign_scopes() -> None:
    assert typosquat_of("mcp-server-time", KNOWN, 2) is None
    assert typosquat_of("MCP-Server-Time", KNOWN, 2) is None
    assert typosquat_of("@evil/server-everything", KNOWN, 2) == "@modelcontextprotocol/server-everything"
    assert typosquat_of("mcp-server-gti", KNOWN, 2) == "mcp-server-git"
    assert typosquat_of("left-pad", KNOWN, 2) is None
    assert typosquat_of("mcp-server-tme", KNOWN, 0) is None


def test_rules_refuse_in_order() -> None:
    policy = VettingPolicy(deny=frozenset({"mcp-server-time"}))
    assert vet(_candidate(registry_type="oci"), _meta(), KNOWN, VettingPolicy()).rule == "registry_type"
    assert vet(_candidate(), _meta(), KNOWN, policy).rule == "deny_list"
    assert vet(_candidate(version="^1.0"), _meta(), KNOWN, VettingPolicy()).rule == "exact_version"
    missing = vet(_candidate("no-such-pkg-zz"), None, KNOWN, VettingPolicy())
    assert (missing.outcome, missing.rule) == (Outcome.REFUSE, "exists")
    assert missing.rationale == "pypi package 'no-such-pkg-zz' does not exist"
    no_version = vet(
        _candidate(version="1999.1.1"),
        _meta(version="1999.1.1", version_exists=False, versions_known=40),
        KNOWN,
        VettingPolicy(),
    )
    assert no_version.rationale == "mcp-server-time has no version 1999.1.1 on pypi (40 versions published)"
    assert vet(_candidate(), _meta(deprecated=True), KNOWN, VettingPolicy()).rule == "not_deprecated"
    assert vet(_candidate(), _meta(yanked=True), KNOWN, VettingPolicy()).rule == "not_yanked"


def test_a_missing_licence_asks_refuses_or_is_noted_by_policy() -> None:
    unlicensed = _meta(license=None)
    assert vet(_candidate(), unlicensed, KNOWN, VettingPolicy(auto_approve=True)).rule == "license"
    assert vet(_candidate(), unlicensed, KNOWN, VettingPolicy(missing_license_action="refuse")).outcome is (
        Outcome.REFUSE
    )
    allowed = vet(
        _candidate(), unlicensed, KNOWN, VettingPolicy(missing_license_action="allow", auto_approve=True)
    )
    assert allowed.outcome is Outcome.APPROVE
    assert "no licence recorded" in allowed.notes


def test_npm_install_scripts_are_noted_as_disabled() -> None:
    meta = ReleaseMetadata(
        "npm", "x-mcp", "1.0.0", version_exists=True, license="MIT", install_scripts=("postinstall",)
    )
    verdict = vet(
        Candidate("x-mcp", "npm", "x-mcp", "1.0.0", in_catalog=True),
        meta,
        KNOWN,
        VettingPolicy(auto_approve=True),
    )
    assert verdict.notes[0] == "install scripts (postinstall) are disabled"
