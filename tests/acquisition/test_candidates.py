"""Where a candidate came from, read back from what it carries (also once stored with a request)."""

from __future__ import annotations

from vsm_mcp.acquisition.approvals import candidate_of, candidate_record
from vsm_mcp.acquisition.candidates import candidate_origin, live_reason, parse_ref
from vsm_mcp.acquisition.vetting import Candidate
from vsm_mcp.discovery.catalog import Catalog, PackageRef, ServerEntry


def test_origin_of_catalog_live_and_named_candidates() -> None:
    listed = Candidate(
        "time", "pypi", "mcp-server-time", "1.0.0", reasons=("matches 'time'",), in_catalog=True
    )
    live = Candidate("pdf-forge", "npm", "pdf-forge", "1.0.0", reasons=(live_reason("npm"), "matches 'pdf'"))
    catalog = Catalog((ServerEntry("time", "", packages=(PackageRef("pypi", "mcp-server-time", "1.0.0"),)),))
    assert live.reasons[0] == "found by npm, not in the catalog"
    assert [candidate_origin(c) for c in (listed, live)] == ["catalog", "npm"]
    assert candidate_origin(parse_ref("npm:left-pad@1.0.0", catalog)) == "named"
    assert candidate_origin(parse_ref("pypi:mcp-server-time@1.0.0", catalog)) == "catalog"
    # A request kept for an operator keeps the reasons, so the origin survives the store.
    assert candidate_origin(candidate_of(candidate_record(live))) == "npm"
