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
    for mode in ("two_processes", "local_2", "local_2_chunked", "local_2_dask_defaults", "external_2", "cold"):
        assert r[mode]["counts"]["extracted"] == 2 and r[mode]["workers"] == 2, mode
    assert r["local_2_chunked"]["cases_per_task"] == 4 and r["local_2"]["cases_per_task"] == 1
    for mode in ("local_1", "local_2", "external_2"):  # workers warmed up before timing, and how long it took
        assert r[mode]["worker_warm_up_seconds"] > 0
    assert r["warm"]["counts"] == {"cases": 2, "extracted": 0, "cached": 2, "failed": 0}
    for name, mode in r.items():
        assert mode["cases_per_hour"] > 0 and mode["seconds_per_case"] > 0 and mode["cpu_seconds"] > 0
        assert len(mode["load_1min"]) == 2 and min(mode["load_1min"]) >= 0  # the machine's load next to each figure
        if name != "serial":
            assert mode["speedup"] > 0 and "overhead_per_case" in mode and "cpu_overhead_vs_1thread" in mode
    assert report["params"]["spacing_mm"] == [4.0, 4.0, 4.0] and not report["params"]["full_resolution"]


def test_bench_full_resolution_drops_the_resampling(tmp_path):
    """--full-resolution: the params file the benchmark extracts with has no resampling (each CT on
    its own 0.98 x 0.98 x 3.27 mm grid); the default keeps configs/radiomics.yaml's 2 mm grid."""
    from graphonc.radiomics_config import load_params

    bench = load_script("bench_radiomics")
    for full, spacing in ((True, None), (False, [2, 2, 2])):
        work = tmp_path / str(full)
        work.mkdir()
        manifest, params = bench.write_inputs(work, bench.DATA, 2, bench.REPO / "configs" / "radiomics.yaml", None,
                                              repeat=2, full_resolution=full)
        assert load_params(params).pyradiomics.setting.get("resampledPixelSpacing") == spacing
        assert len(manifest.read_text().splitlines()) == 1 + 2 * 2


def test_bench_overheads_are_measured(tmp_path):
    """--overheads: each per-case cost of docs/scaling.md measured alone, with its own probe."""
    from graphonc.radiomics.manifest import read_manifest
    from graphonc.radiomics_config import load_params

    bench = load_script("bench_radiomics")
    manifest, params = bench.write_inputs(tmp_path, bench.DATA, 4, bench.REPO / "configs" / "radiomics.yaml", 4.0)
    o = bench.measure_overheads(read_manifest(manifest), load_params(params), idle_seconds=1.0, n_tasks=20)
    assert set(o["idle_cluster_cores"]) == {"dask_defaults", "graphonc"}
    assert all(v >= 0 for v in o["idle_cluster_cores"].values())
    assert o["task_cpu_ms"]["client_process"] > 0 and o["task_cpu_ms"]["workers"] >= 0
    # Dask's trim variable makes pyradiomics page-fault far more, unless the allocator is tuned
    assert o["allocator"]["tuned"]["page_faults_per_case"] * 5 < o["allocator"]["plain"]["page_faults_per_case"]
    assert o["hash_ms_per_case"] > 0 and o["cache_put_ms_per_case"] > 0
