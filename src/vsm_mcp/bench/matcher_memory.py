"""What the capability matcher costs in memory: `vsm-mcp bench match`'s ``memory`` figures.

Each reading runs in a fresh interpreter (the benchmark's own process has already
loaded the model and other catalogs, so it cannot tell what one matcher adds):
the interpreter imports the matcher and loads the catalog, reads its resident set
(VmRSS), builds the matcher the way the gateway does (embedding model, server and
tool vectors, both indexes, the bridges), answers one query, and reads VmRSS and
the peak (VmHWM) again. The matcher's cost is the difference; it is read once
with the embedding model and once without, so the model's share is measured, not
estimated.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from vsm_mcp.errors import CatalogError

_TIMEOUT_S = 300.0

_PROBE = """
import json, sys
from pathlib import Path

def status(field):
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise SystemExit(f"no {field} in /proc/self/status")

from vsm_mcp.discovery.catalog import load_catalog
from vsm_mcp.discovery.matcher import Matcher, MatcherConfig

catalog = load_catalog(Path(sys.argv[1]))
semantic = sys.argv[2] == "1"
before = status("VmRSS")
config = MatcherConfig() if semantic else MatcherConfig(semantic_weight=0.0)
matcher = Matcher(catalog, config)
matcher.rank("read a spreadsheet and plot a chart of it")
print(json.dumps({"servers": len(catalog), "tools": catalog.tool_count, "before": before,
                  "after": status("VmRSS"), "peak": status("VmHWM")}))
"""


def _probe(catalog: Path, semantic: bool) -> dict[str, Any]:
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, str(catalog), "1" if semantic else "0"],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CatalogError(f"matcher memory probe on {catalog}: no answer in {_TIMEOUT_S:.0f} s") from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise CatalogError(f"matcher memory probe on {catalog} failed ({done.returncode}): {last}")
    reading: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return reading


def _mib(n: int) -> float:
    return round(n / 2**20, 1)


def measure_matcher_memory(catalog: Path) -> dict[str, Any]:
    """Resident memory a matcher over ``catalog`` adds to a process, with and without the
    embedding model, in MiB (``base_mib``: the interpreter with the catalog loaded).

    Raises:
        CatalogError: a probe failed or did not answer.
    """
    full = _probe(catalog, semantic=True)
    lexical = _probe(catalog, semantic=False)
    return {
        "catalog": str(catalog),
        "servers": full["servers"],
        "tools": full["tools"],
        "base_mib": _mib(full["before"]),
        "matcher_mib": _mib(full["after"] - full["before"]),
        "peak_mib": _mib(full["peak"]),
        "matcher_without_model_mib": _mib(lexical["after"] - lexical["before"]),
        "model_share_mib": _mib((full["after"] - full["before"]) - (lexical["after"] - lexical["before"])),
    }
