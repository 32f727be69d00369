"""Radiomics extraction on Dask distributed: a local cluster gives the serial features, a worker
killed mid-run loses and duplicates nothing (with one case per task and with several), a scheduler
given by address (scheduler and workers started as processes) works, chunked and unchunked runs
give the same features and errors table, and a missing scheduler is a one-line error."""
from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import dask
import pandas as pd
import pytest
from typer.testing import CliRunner

from graphonc.cli import app
from graphonc.errors import InputError
from graphonc.radiomics.cluster import auto_cases_per_task, extraction_client
from graphonc.radiomics.extract import extract_cases
from graphonc.radiomics.manifest import read_manifest
from graphonc.radiomics_config import load_params

from conftest import load_script
from test_radiomics_extract import _ibsi_manifest, fast_ct_params

pytestmark = pytest.mark.slow

IBSI = ["STS_001", "STS_002", "STS_003", "STS_004", "STS_005", "STS_006", "STS_008", "STS_010"]


@pytest.fixture(scope="module")
def ibsi(tmp_path_factory, data_dir):
    """Eight IBSI CT cases on a coarse grid, and their serial (in-process) features."""
    tmp = tmp_path_factory.mktemp("dask")
    manifest = _ibsi_manifest(data_dir, tmp / "m.csv", IBSI)
    params_path = fast_ct_params(tmp / "params.yaml", spacing=4)
    params = load_params(params_path)
    serial = extract_cases(read_manifest(manifest), params, workers=1, use_cache=False)
    assert serial.counts["extracted"] == len(IBSI)
    return manifest, params_path, params, serial


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_local_cluster_equals_serial(ibsi):
    manifest, _, params, serial = ibsi
    res = extract_cases(read_manifest(manifest), params, workers=2, use_cache=False)
    assert res.workers == 2
    assert res.counts == {"cases": len(IBSI), "extracted": len(IBSI), "cached": 0, "failed": 0}
    pd.testing.assert_frame_equal(serial.features, res.features)


def _kill_workers_mid_run(ibsi, cache: Path, n_kill: int, cases_per_task: int | None = None,
                          allowed_failures: int = 3):
    """Extract the IBSI cases on a 2-worker LocalCluster (Dask retries a task after
    ``allowed_failures`` worker deaths) and SIGKILL ``n_kill`` workers, by process id, once the first
    case is in ``cache``. Returns the run's ExtractResult."""
    from distributed import Client, LocalCluster

    manifest, _, params, _ = ibsi
    with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address=None) as cluster, Client(cluster) as client:
        pids = sorted(client.run(os.getpid).values())
        assert len(pids) == 2
        out: dict = {}
        run = threading.Thread(target=lambda: out.update(res=extract_cases(
            read_manifest(manifest), params, scheduler=cluster.scheduler_address, cache_dir=cache,
            cases_per_task=cases_per_task)))
        run.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(cache.rglob("*.json")):
            time.sleep(0.02)
        done_at_kill = len(list(cache.rglob("*.json")))
        assert 1 <= done_at_kill < len(IBSI), "the run finished before a worker could be killed"
        for pid in pids[:n_kill]:
            os.kill(pid, signal.SIGKILL)
        run.join(timeout=300)
        assert not run.is_alive()
    return out["res"]


def test_worker_killed_mid_run(ibsi, tmp_path):
    """SIGKILL one worker (by its process id) once the first cases are done: its cases run on the
    other worker (or its restarted twin); the table equals the serial one, each case once."""
    serial, cache = ibsi[3], tmp_path / "cache"
    res = _kill_workers_mid_run(ibsi, cache, n_kill=1)
    assert res.counts == {"cases": len(IBSI), "extracted": len(IBSI), "cached": 0, "failed": 0}
    assert list(res.features["case_id"]) == sorted(IBSI)
    pd.testing.assert_frame_equal(serial.features, res.features)
    assert len(list(cache.rglob("*.json"))) == len(IBSI)


def _worker_settings(client) -> list[tuple]:
    """What each worker runs with: BLAS/OpenMP threads, Dask's profiler, and once it ran a case,
    SimpleITK's threads and whether glibc's allocator was tuned."""
    def settings():
        import SimpleITK as sitk

        from graphonc.radiomics.worker import _WORKER

        return (os.environ.get("OMP_NUM_THREADS"), dask.config.get("distributed.worker.profile.enabled"),
                sitk.ProcessObject.GetGlobalDefaultNumberOfThreads(), _WORKER.get("malloc_tuned"))
    return sorted(client.run(settings).values())


def test_scheduler_by_address(ibsi, tmp_path):
    """A scheduler and two workers started as separate processes (a cluster on this machine), with the
    benchmark's own launcher (scripts/bench_radiomics.py) and graphonc's Dask config file."""
    from distributed import Client

    manifest, params_path, _, serial = ibsi
    with load_script("bench_radiomics").external_cluster(2) as address:
        out = tmp_path / "features.parquet"
        res = CliRunner().invoke(app, ["-q", "radiomics", "extract", "--manifest", str(manifest), "--params",
                                       str(params_path), "--out", str(out), "--no-cache", "--scheduler", address,
                                       "--cases-per-task", "3"], catch_exceptions=False)
        with Client(address) as client:  # the config file reached the workers; both ran cases single-threaded
            assert _worker_settings(client) == [("1", False, 1, True)] * 2
    assert res.exit_code == 0, res.output
    pd.testing.assert_frame_equal(serial.features, pd.read_parquet(out))
    report = json.loads(out.with_name("features.extract.json").read_text())
    assert report["cases_per_task"] == 3 and report["counts"]["extracted"] == len(IBSI)


def test_chunked_equals_unchunked_with_errors(ibsi, tmp_path, data_dir):
    """IBSI cases mixed with failing ones (missing file, empty mask, not an image, absent label), one
    case per task and three: the same features (the serial ones) and the same errors table."""
    import SimpleITK as sitk

    manifest, _, params, serial = ibsi
    mask = data_dir / "radiomics" / "ibsi_sts" / "STS_001" / "CT_mask.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(mask)) * 0, str(tmp_path / "empty.nii.gz"))
    rows = pd.read_csv(manifest).to_dict("records")
    good = rows[0]
    bad = [{**good, "patient_id": "B1", "image": str(tmp_path / "no_such.nii.gz")},
           {**good, "patient_id": "B2", "mask": str(tmp_path / "empty.nii.gz")},
           {**good, "patient_id": "B3", "image": str(data_dir / "radiomics" / "ibsi_sts" / "LICENSE.md")},
           {**good, "patient_id": "B4", "label": 7}]
    mixed = rows[:2] + bad[:2] + rows[2:5] + bad[2:] + rows[5:]  # failures inside tasks of good cases
    for r in mixed:
        r.setdefault("label", None)
    path = tmp_path / "mixed.csv"
    pd.DataFrame(mixed).to_csv(path, index=False)
    cases = read_manifest(path)
    with extraction_client(None, 2) as client:
        address = client.scheduler.address
        one = extract_cases(cases, params, scheduler=address, use_cache=False, cases_per_task=1)
        three = extract_cases(cases, params, scheduler=address, use_cache=False, cases_per_task=3)
        # DASK_SETTINGS reached the workers; BLAS and ITK on one thread, allocator tuned, in each
        assert _worker_settings(client) == [("1", False, 1, True)] * 2
    assert (one.cases_per_task, three.cases_per_task) == (1, 3)
    assert auto_cases_per_task(len(cases), 2) == 1  # a dozen cases: one per task by default
    for res in (one, three):
        assert res.counts == {"cases": 12, "extracted": 8, "cached": 0, "failed": 4}
        pd.testing.assert_frame_equal(serial.features, res.features)
    pd.testing.assert_frame_equal(one.errors, three.errors)
    assert one.errors.set_index("patient_id")["reason"].to_dict() == {
        "B1": "missing_file", "B2": "empty_mask", "B3": "unreadable", "B4": "label_absent"}


def test_task_of_several_cases_killed_is_rerun_case_by_case(ibsi, tmp_path, caplog):
    """Two cases per task, no retry allowed by the scheduler (allowed-failures 0), both workers
    SIGKILLed mid-run: the tasks they held fail as a whole, their cases are rerun one per task on
    the restarted workers, and the table still equals the serial one, every case once."""
    serial, cache = ibsi[3], tmp_path / "cache"
    res = _kill_workers_mid_run(ibsi, cache, n_kill=2, cases_per_task=2, allowed_failures=0)
    assert "rerunning them one case per task" in caplog.text
    assert res.counts == {"cases": len(IBSI), "extracted": len(IBSI), "cached": 0, "failed": 0}
    assert res.cases_per_task == 2
    pd.testing.assert_frame_equal(serial.features, res.features)
    assert len(list(cache.rglob("*.json"))) == len(IBSI)


def test_missing_scheduler_is_one_line(ibsi, tmp_path):
    manifest, params_path, params, _ = ibsi
    address = f"tcp://127.0.0.1:{_free_port()}"
    with pytest.raises(InputError, match="no Dask scheduler answered"):
        extract_cases(read_manifest(manifest), params, scheduler=address, use_cache=False)
    out = tmp_path / "f.parquet"
    res = CliRunner().invoke(app, ["-q", "radiomics", "extract", "--manifest", str(manifest), "--params",
                                   str(params_path), "--out", str(out), "--scheduler", address])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and address in lines[0] and "Traceback" not in res.output
    assert not out.exists()


def test_tuned_allocator_stops_page_faults_under_dasks_trim_setting(tmp_path, data_dir):
    """A process started as Dask's nanny starts workers (MALLOC_TRIM_THRESHOLD_=65536): extracting
    IBSI cases page-faults an order of magnitude less once graphonc tuned glibc's allocator
    (graphonc.radiomics.worker.tune_malloc), the cause of Dask workers' +13-20% CPU per case."""
    import subprocess
    import sys

    manifest = _ibsi_manifest(data_dir, tmp_path / "m.csv", ["STS_002", "STS_003"])
    params = fast_ct_params(tmp_path / "p.yaml", spacing=2)
    script = f"""
import resource, sys
from graphonc.radiomics import worker
from graphonc.radiomics.extract import _job
from graphonc.radiomics.manifest import read_manifest
from graphonc.radiomics_config import load_params
jobs = [_job(c, load_params({str(params)!r})) for c in read_manifest({str(manifest)!r})]
worker._init_worker(single_thread=sys.argv[1] == "tuned")
__import__("SimpleITK").ProcessObject.SetGlobalDefaultNumberOfThreads(1)
worker._extract_one(jobs[0])
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for job in jobs:
    assert worker._extract_one(job)["ok"]
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, worker._WORKER.get("malloc_tuned"))
"""
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}
    faults = {}
    for mode in ("plain", "tuned"):
        out = subprocess.run([sys.executable, "-c", script, mode], env=env, capture_output=True, text=True,
                             check=True, cwd=Path(__file__).resolve().parents[1])
        n, tuned = out.stdout.split()
        faults[mode] = int(n)
        assert tuned == {"plain": "None", "tuned": "True"}[mode]
    assert faults["tuned"] * 10 < faults["plain"], faults
