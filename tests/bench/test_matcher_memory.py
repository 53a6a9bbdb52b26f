from __future__ import annotations

import json
from pathlib import Path

import pytest

from vsm_mcp.bench.matcher_memory import measure_matcher_memory
from vsm_mcp.errors import CatalogError


def _catalog(path: Path, servers: int) -> Path:
    entries = [
        {
            "name": f"server-{i}",
            "description": f"Weather forecasts and alerts for region {i}",
            "tools": [{"name": f"get_forecast_{i}", "description": "Forecast for a city"}],
        }
        for i in range(servers)
    ]
    path.write_text(json.dumps(entries))
    return path


def test_the_matcher_is_measured_in_a_fresh_process_with_and_without_the_model(tmp_path: Path) -> None:
    reading = measure_matcher_memory(_catalog(tmp_path / "catalog.json", 40))
    assert (reading["servers"], reading["tools"]) == (40, 40)
    assert reading["catalog"] == str(tmp_path / "catalog.json")
    assert reading["base_mib"] > 10.0  # an interpreter with the package imported
    assert reading["model_share_mib"] > 10.0  # the embedding model's token table, at least
    assert reading["matcher_mib"] == pytest.approx(
        reading["model_share_mib"] + reading["matcher_without_model_mib"], abs=0.15
    )


def test_a_probe_that_cannot_read_its_catalog_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.json"
    with pytest.raises(CatalogError, match=r"matcher memory probe on .*nowhere.json failed \(1\)"):
        measure_matcher_memory(missing)
