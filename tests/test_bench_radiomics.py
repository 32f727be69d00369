"""scripts/bench_radiomics.py runs end to end on two IBSI cases (no timing checks)."""
from __future__ import annotations

import json

import pytest

from conftest import load_script

pytestmark = pytest.mark.slow  # runs the radiomics benchmark (pyradiomics on CT images)


@pytest.mark.slow
def test_bench_radiomics_reports_every_mode(tmp_path, capsys):
    bench = load_script("bench_radiomics")
    report = bench.main(["--cases", "2", "--spacing", "4", "--workers", "2", "--json-out", str(tmp_path / "b.json")])
    assert json.loads(capsys.readouterr().out) == report == json.loads((tmp_path / "b.json").read_text())
    r = report["results"]
    assert r["serial"]["counts"]["extracted"] == 2 and r["serial"]["workers"] == 1
    assert r["local_1"]["workers"] == 1
    for mode in ("local_2", "external_2", "cold"):
        assert r[mode]["counts"]["extracted"] == 2 and r[mode]["workers"] == 2, mode
    assert r["warm"]["counts"] == {"cases": 2, "extracted": 0, "cached": 2, "failed": 0}
    for name, mode in r.items():
        assert mode["cases_per_hour"] > 0 and mode["seconds_per_case"] > 0 and mode["cpu_seconds"] > 0
        if name != "serial":
            assert mode["speedup"] > 0 and "overhead_per_case" in mode
