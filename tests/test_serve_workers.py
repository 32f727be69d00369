"""`graphonc serve --workers 2`: two server processes on one port, one token, one audit log (real METABRIC)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from conftest import indexed_copy
from graphonc.search.similar import similar_patients


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _workers(pid: int) -> list[int]:
    """Child processes of ``pid`` started by multiprocessing's spawn (not its resource tracker)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(c) for c in path.read_text().split()] if path.exists() else []
    return [k for k in kids if b"spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes()]


@pytest.mark.slow  # two processes each load the run
def test_two_workers_share_port_token_and_audit_log(metabric_trained, tmp_path):
    run = indexed_copy(metabric_trained[0], tmp_path / "runs")
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if k != "GRAPHONC_API_TOKEN"}
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "graphonc.cli", "serve", "--run", str(run.root), "--port",
                             str(port), "--state-dir", str(state), "--workers", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    ids = ["MB-0010", "MB-0035", "MB-0046", "MB-0062"]
    try:
        line, out = "", []
        deadline = time.time() + 240
        while "Generated API token" not in line and time.time() < deadline:
            line = proc.stdout.readline()
            out.append(line)
        token = line.rsplit(": ", 1)[1].strip()
        headers = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{port}"
        while time.time() < deadline:
            try:
                if httpx.get(base + "/api/health", headers=headers).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert len(_workers(proc.pid)) == 2  # the supervisor's two workers

        def ask(pid):
            with httpx.Client(base_url=base, headers=headers, timeout=120) as c:
                return pid, c.get(f"/api/runs/metabric/patients/{pid}/similar").json()

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, ids * 5))
        assert httpx.get(base + "/api/health").status_code == 401  # every worker wants the token
    finally:
        proc.terminate()
        rest, _ = proc.communicate(timeout=60)
    want = {r.query.id: [n.id for n in r.neighbours] for r in similar_patients(run.root, ids, 10)}
    for pid, got in answers:
        assert [n["id"] for n in got["neighbours"]] == want[pid]
    assert (state / "api_token").read_text().strip() == token
    assert ("".join(out) + rest).count(token) == 1
    lines = (state / "audit.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]  # whole lines from both processes, none torn
    asked = [r for r in records if r["endpoint"] == "/api/runs/{run}/patients/{patient_id}/similar"]
    assert len(asked) == 20 and {r["patient_ids"][0] for r in asked} == set(ids)
