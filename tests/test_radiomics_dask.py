"""Radiomics extraction on Dask distributed: a local cluster gives the serial features, a worker
killed mid-run loses and duplicates nothing, a scheduler given by address (scheduler and workers
started as processes) works, and a missing scheduler is a one-line error."""
from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pandas as pd
import pytest
from typer.testing import CliRunner

from graphonc.cli import app
from graphonc.errors import InputError
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


def test_worker_killed_mid_run(ibsi, tmp_path):
    """SIGKILL one worker (by its process id) once the first cases are done: its cases run on the
    other worker (or its restarted twin); the table equals the serial one, each case once."""
    from distributed import Client, LocalCluster

    manifest, _, params, serial = ibsi
    cache = tmp_path / "cache"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        pids = sorted(client.run(os.getpid).values())
        assert len(pids) == 2
        out: dict = {}
        run = threading.Thread(target=lambda: out.update(res=extract_cases(
            read_manifest(manifest), params, scheduler=cluster.scheduler_address, cache_dir=cache)))
        run.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(cache.rglob("*.json")):
            time.sleep(0.02)
        done_at_kill = len(list(cache.rglob("*.json")))
        assert 1 <= done_at_kill < len(IBSI), "the run finished before a worker could be killed"
        os.kill(pids[0], signal.SIGKILL)
        run.join(timeout=300)
        assert not run.is_alive()
    res = out["res"]
    assert res.counts == {"cases": len(IBSI), "extracted": len(IBSI), "cached": 0, "failed": 0}
    assert list(res.features["case_id"]) == sorted(IBSI)
    pd.testing.assert_frame_equal(serial.features, res.features)
    assert len(list(cache.rglob("*.json"))) == len(IBSI)


def test_scheduler_by_address(ibsi, tmp_path):
    """A scheduler and two workers started as separate processes (a cluster on this machine), with the
    benchmark's own launcher (scripts/bench_radiomics.py)."""
    manifest, params_path, _, serial = ibsi
    with load_script("bench_radiomics").external_cluster(2) as address:
        out = tmp_path / "features.parquet"
        res = CliRunner().invoke(app, ["-q", "radiomics", "extract", "--manifest", str(manifest), "--params",
                                       str(params_path), "--out", str(out), "--no-cache", "--scheduler", address],
                                 catch_exceptions=False)
    assert res.exit_code == 0, res.output
    pd.testing.assert_frame_equal(serial.features, pd.read_parquet(out))


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
