"""Run the official MCP conformance suite's server scenarios and read their verdicts.

The suite is `@modelcontextprotocol/conformance` on Node 22, installed into the
repository's git-ignored `.tools/` by `scripts/install-node22.sh`. One run
(`server --suite all -o DIR`) writes `DIR/server-<scenario>-<timestamp>/checks.json`
per scenario; this module turns those files into one `Verdict` per scenario.

Invariants:
- A scenario PASSES when it has at least one SUCCESS check and no FAILURE or
  WARNING; it FAILS when any check is FAILURE or when it wrote no results at
  all; anything else (only warnings/info) is NO_VERDICT. Verdicts are ordered
  FAIL < NO_VERDICT < PASS, so "at least as good" is a comparison.
- Every scenario the suite lists (`list --server`) gets a verdict, so a
  scenario that crashed cannot silently disappear from a comparison.
- Standard library only: `scripts/conformance.sh` runs this file with any
  Python 3.11, outside the project's virtualenv.

Run by hand: `python tests/conformance/suite.py --url http://127.0.0.1:PORT/mcp`.
"""

from __future__ import annotations

import argparse
import enum
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-node22.sh"
SUITE_PACKAGE = "@modelcontextprotocol/conformance"
# One full run of the 32 server scenarios takes ~2 s against a local server;
# the suite's own per-request timeouts are 10 s, so 5 minutes only trips on a hang.
SUITE_TIMEOUT_S = 300.0
# npm install of Node 22 + the suite takes ~20 s on a warm network.
INSTALL_TIMEOUT_S = 600.0
RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$")
LISTED_SCENARIO = re.compile(r"^\s+-\s+(?P<scenario>\S+)")


class Verdict(enum.IntEnum):
    FAIL = 0
    NO_VERDICT = 1
    PASS = 2


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    status: str
    message: str


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    scenario: str
    verdict: Verdict
    checks: tuple[Check, ...]

    def problems(self) -> list[str]:
        """The failed and warned checks, one line each, for reports."""
        return [f"{c.status} {c.id}: {c.message}" for c in self.checks if c.status in ("FAILURE", "WARNING")]


@dataclass(frozen=True, slots=True)
class SuiteTools:
    node: Path
    suite_js: Path
    #: The MCP Inspector's launcher (``--cli`` runs its CLI client).
    inspector_js: Path

    def command(self, *args: str) -> list[str]:
        return [str(self.node), str(self.suite_js), *args]


class SuiteUnavailable(RuntimeError):
    """Node 22 or the conformance suite is missing and could not be installed."""


def install_tools(install_script: Path = INSTALL_SCRIPT) -> SuiteTools:
    """Install (or verify) Node 22 and the pinned suite; return their paths.

    Raises:
        SuiteUnavailable: the install script failed (no npm, no registry...).
    """
    try:
        done = subprocess.run(
            ["bash", str(install_script)],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SuiteUnavailable(f"{install_script} could not run: {exc}") from exc
    if done.returncode != 0:
        raise SuiteUnavailable(f"{install_script} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    paths = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return SuiteTools(
        node=Path(paths["NODE22"]),
        suite_js=Path(paths["CONFORMANCE"]),
        inspector_js=Path(paths["INSPECTOR"]),
    )


def list_server_scenarios(tools: SuiteTools) -> list[str]:
    """Every server scenario the installed suite knows (the `all` suite), in its order."""
    listing = subprocess.run(
        tools.command("list", "--server"), capture_output=True, text=True, timeout=60, check=True
    ).stdout
    return [m.group("scenario") for line in listing.splitlines() if (m := LISTED_SCENARIO.match(line))]


def _verdict(checks: tuple[Check, ...]) -> Verdict:
    statuses = {check.status for check in checks}
    if "FAILURE" in statuses:
        return Verdict.FAIL
    if "WARNING" in statuses or "SUCCESS" not in statuses:
        return Verdict.NO_VERDICT
    return Verdict.PASS


def read_results(results_dir: Path, scenarios: list[str]) -> dict[str, ScenarioResult]:
    """Verdicts for `scenarios` from a suite output directory; missing results are FAIL."""
    found: dict[str, tuple[Check, ...]] = {}
    for checks_file in sorted(results_dir.glob("*/checks.json")):
        match = RESULT_DIR.match(checks_file.parent.name)
        if match is None:
            continue
        raw = json.loads(checks_file.read_text(encoding="utf-8"))
        found[match.group("scenario")] = tuple(
            Check(
                str(c.get("id")),
                str(c.get("status")),
                str(c.get("errorMessage") or c.get("description") or ""),
            )
            for c in raw
        )
    results: dict[str, ScenarioResult] = {}
    for scenario in scenarios:
        checks = found.get(scenario)
        if checks is None:
            missing = (Check(scenario, "FAILURE", "the suite recorded no result (scenario crashed)"),)
            results[scenario] = ScenarioResult(scenario, Verdict.FAIL, missing)
        else:
            results[scenario] = ScenarioResult(scenario, _verdict(checks), checks)
    return results


def run_suite(
    tools: SuiteTools, url: str, results_dir: Path, *, scenario: str | None = None
) -> dict[str, ScenarioResult]:
    """Run the server scenarios (all, or one) against `url`; return a verdict per scenario.

    The suite's exit status is ignored on purpose: it is 1 whenever any check
    fails, and the per-scenario files are the record.
    """
    scenarios = [scenario] if scenario else list_server_scenarios(tools)
    selection = ["--scenario", scenario] if scenario else ["--suite", "all"]
    results_dir.mkdir(parents=True, exist_ok=True)
    log = results_dir / "suite-output.txt"
    with log.open("w", encoding="utf-8") as output:
        subprocess.run(
            tools.command("server", "--url", url, *selection, "-o", str(results_dir)),
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=SUITE_TIMEOUT_S,
            check=False,
        )
    return read_results(results_dir, scenarios)


def passed(results: Mapping[str, ScenarioResult]) -> set[str]:
    return {name for name, result in results.items() if result.verdict is Verdict.PASS}


def format_summary(results: Mapping[str, ScenarioResult]) -> str:
    """One line per scenario (verdict, name, counts) plus the problems and a total."""
    lines = []
    for result in results.values():
        counts = {
            status: sum(c.status == status for c in result.checks)
            for status in ("SUCCESS", "FAILURE", "WARNING")
        }
        lines.append(
            f"{result.verdict.name:<10} {result.scenario:<32} "
            f"{counts['SUCCESS']} ok, {counts['FAILURE']} failed, {counts['WARNING']} warnings"
        )
        lines.extend(f"{'':<11}{problem[:200]}" for problem in result.problems())
    tally = {verdict: sum(r.verdict is verdict for r in results.values()) for verdict in Verdict}
    lines.append(
        f"total: {tally[Verdict.PASS]} passed, {tally[Verdict.FAIL]} failed, "
        f"{tally[Verdict.NO_VERDICT]} without verdict, of {len(results)} scenarios"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run the MCP conformance suite's server scenarios against a URL."
    )
    parser.add_argument(
        "--url", required=True, help="streamable HTTP endpoint, e.g. http://127.0.0.1:8931/mcp"
    )
    parser.add_argument("--scenario", help="run only this scenario")
    parser.add_argument("--results", type=Path, help="keep the suite's raw results in this directory")
    parser.add_argument("--json", action="store_true", help="print verdicts as JSON instead of a table")
    options = parser.parse_args(argv)
    try:
        tools = install_tools()
    except SuiteUnavailable as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mcp-conformance-") as scratch:
        results_dir = options.results or Path(scratch)
        results_dir.mkdir(parents=True, exist_ok=True)
        results = run_suite(tools, options.url, results_dir, scenario=options.scenario)
    if options.json:
        print(json.dumps({name: r.verdict.name for name, r in results.items()}, indent=2))
    else:
        print(format_summary(results))
    return 1 if any(r.verdict is Verdict.FAIL for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
