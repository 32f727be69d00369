#!/usr/bin/env python
"""Benchmark ``graphonc serve``: a real server driven by 1, 8 and 32 concurrent clients.

For METABRIC (``configs/metabric.yaml``) and a synthetic cohort of ``--synthetic`` patients
(``scripts/bench_build.py``'s generator: real METABRIC patients bootstrapped under new ids),
the script builds the run, trains a small model (``--epochs``, not a quality claim), builds
the index (``auto``: exact below 50k patients, HNSW above), then

1. starts ``python -m graphonc.cli serve --run <both runs>`` as a child process on a free port
   (token from ``GRAPHONC_API_TOKEN``, state in the work folder) and waits for ``/api/health``;
2. for each endpoint and each concurrency level c, runs c client threads (one keep-alive
   ``httpx.Client`` each) sending ``--requests`` requests in all (fewer for the explanation),
   and records every request's latency: p50/p99 (ms) and requests/s;
3. times the CLI's answer to the same query in a fresh process (``similar -p``, ``similar
   --new-patient``, ``report --no-explain``, ``report``): what a board waited for before.

Endpoints: cohort-patient similar, new-patient similar (a real patient's model inputs and
variants as a new patient), the report page without and with the explanation.

Before/after in one run: ``--baseline DIR`` serves another source tree (``git archive COMMIT |
tar -x -C DIR``) and ``--compare-workers 2`` this tree with ``serve --workers 2``; every
measurement then runs on each server back to back, so all see the same machine load. Each
measurement records the 1-minute load average before and after it and the server's CPU time
per request (its process tree's user + system time), which other jobs on a shared machine
do not inflate the way they inflate latency.

Prints one JSON object (progress to stderr). Goals (issue #14, 2-core machine, 8 clients,
100k patients): cohort similar p99 < 50 ms, new-patient similar p99 < 250 ms, report
without explanation < 1 s, with < 5 s. Example::

    .venv/bin/python scripts/bench_serve.py --synthetic 100000 --json-out bench_out/serve.json
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
GOALS = {"n_clients": 8, "cohort_similar_p99_ms": 50, "new_similar_p99_ms": 250, "report_p99_ms": 1000,
         "report_explain_p99_ms": 5000}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(config: Path, out: Path, epochs: int, ensemble: int | None = None) -> Path:
    """Build, train (small) and index a run unless ``out`` already holds one."""
    from graphonc.graph.build import build_run
    from graphonc.model.stages import train_stage
    from graphonc.search.index import build_index

    if not (out / "manifest.json").exists():
        t0 = time.perf_counter()
        build_run(config, out)
        log(f"built {out} in {time.perf_counter() - t0:.0f} s")
    if not (out / "model" / "weights.pt").exists():
        t0 = time.perf_counter()
        extra = {"ensemble": ensemble} if ensemble else {}
        train_stage(out, hidden=32, embedding_dim=16, epochs=epochs, patience=epochs, **extra)
        log(f"trained {out} in {time.perf_counter() - t0:.0f} s")
    if not (out / "index" / "index.json").exists():
        build_index(out, "auto", device="cpu")
    return out


def new_patient_bodies(run: Path, n: int, seed: int) -> tuple[list[str], list[dict]]:
    """``n`` random cohort ids, and ``n`` request bodies: real patients' model inputs and variants."""
    import pandas as pd

    from graphonc.graph import schema as S
    from graphonc.graph.run import GraphRun

    r = GraphRun.open(run)
    enc = json.loads((run / "model" / "model.json").read_text())["encoder"]
    p = r.nodes(S.PATIENT).set_index(S.ID)
    has = r.edges(S.HAS_MUTATION)
    muts = has.groupby(S.SRC)[S.DST].agg(list)
    rng = np.random.default_rng(seed)
    ids = [str(i) for i in rng.choice(p.index.to_numpy(), size=n)]
    bodies = []
    for pid in ids:
        clinical = {c: (None if pd.isna(p.at[pid, c]) else (float(p.at[pid, c]) if c in enc["numeric"]
                                                             else str(p.at[pid, c])))
                    for c in enc["numeric"] + enc["categorical"]}
        clinical = {c: v for c, v in clinical.items() if v is not None and
                    (c in enc["numeric"] or v in enc["categories_"].get(c, []))}
        bodies.append({"clinical": clinical,
                       "mutations": [m.replace(":", " ", 1) for m in muts.get(pid, [])
                                     if len(m.split(":", 1)) == 2 and " " not in m]})
    return ids, bodies


def drive(base: str, token: str, calls: list, clients: int) -> dict:
    """Send ``calls`` ((method, path, json body)) from ``clients`` threads; latency summary."""
    import httpx

    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    todo = list(enumerate(calls))

    def worker():
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=600) as c:
            while True:
                with lock:
                    if not todo:
                        return
                    _, (method, path, body) = todo.pop()
                t0 = time.perf_counter()
                r = c.request(method, path, json=body)
                dt = time.perf_counter() - t0
                with lock:
                    lat.append(dt)
                    if r.status_code != 200:
                        errors.append(f"{r.status_code} {path}: {r.text[:200]}")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    a = np.array(lat) * 1000
    return {"clients": clients, "requests": len(a), "p50_ms": round(float(np.percentile(a, 50)), 1),
            "p99_ms": round(float(np.percentile(a, 99)), 1), "max_ms": round(float(a.max()), 1),
            "requests_per_s": round(len(a) / wall, 2), "errors": errors[:3], "n_errors": len(errors)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of process ``pid`` and its live descendants (the workers; Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(c) for c in children.read_text().split()] if children.exists() else []
    return own + sum(cpu_seconds(k) for k in kids)


def cli_seconds(args: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "graphonc.cli", "-q", *args], capture_output=True, text=True,
                          env=env, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"graphonc {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return round(time.perf_counter() - t0, 2)


def cli_times(name: str, run: Path, pid: str, body: dict, work: Path, env: dict, explain: bool = True) -> dict:
    """Wall time of the CLI for the same queries (fresh process each: imports and loading included)."""
    import pandas as pd

    enc = json.loads((run / "model" / "model.json").read_text())["encoder"]
    clin, muts = work / f"{name}_new.tsv", work / f"{name}_new_mut.tsv"
    pd.DataFrame([{"patient_id": "new", **{c: body["clinical"].get(c) for c in enc["numeric"] + enc["categorical"]}}]) \
        .to_csv(clin, sep="\t", index=False)
    pd.DataFrame([{"patient_id": "new", "gene": m.split()[0], "protein_change": m.split()[1]}
                  for m in body["mutations"]], columns=["patient_id", "gene", "protein_change"]) \
        .to_csv(muts, sep="\t", index=False)
    r = str(run)
    out = {"cohort_similar_s": cli_seconds(["similar", "--run", r, "-p", pid, "--device", "cpu"], env),
           "new_similar_s": cli_seconds(["similar", "--run", r, "--new-patient", str(clin), "--mutations", str(muts),
                                         "--device", "cpu"], env),
           "report_s": cli_seconds(["report", "--run", r, "-p", pid, "--no-explain", "--out",
                                    str(work / f"{name}_r.html")], env),
           "report_explain_s": None}
    if explain:
        out["report_explain_s"] = cli_seconds(["report", "--run", r, "-p", pid, "--out", str(work / f"{name}_re.html")],
                                              env)
    return out


def start_server(tree: Path, runs: dict[str, Path], state_dir: Path, env: dict, workers: int | None = None
                 ) -> tuple[subprocess.Popen, str]:
    """``graphonc serve`` from the source tree ``tree`` (its graphonc first on the path) on a free port."""
    port = free_port()
    cmd = [sys.executable, "-m", "graphonc.cli", "-q", "serve", "--port", str(port), "--state-dir", str(state_dir)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    for r in runs.values():
        cmd += ["--run", str(r)]
    # cwd = the tree: `python -m` puts the working directory ahead of PYTHONPATH
    # stderr to a file, never an unread pipe: a server that logs enough would block on a full pipe
    with open(state_dir.parent / f"server-{state_dir.name}.err", "w") as err:
        proc = subprocess.Popen(cmd, env={**env, "PYTHONPATH": str(tree)}, cwd=tree, stdout=subprocess.DEVNULL,
                                stderr=err, text=True)
    return proc, f"http://127.0.0.1:{port}"


def wait_up(proc: subprocess.Popen, base: str, token: str) -> None:
    import httpx

    while True:
        try:
            if httpx.get(base + "/api/health", headers={"Authorization": f"Bearer {token}"}).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError("the server exited (its stderr: server-state-*.err in the work folder)")
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--synthetic", type=int, default=100_000, help="synthetic cohort size (0 = METABRIC only)")
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--requests", type=int, default=200, help="requests per endpoint and concurrency level")
    ap.add_argument("--report-requests", type=int, default=32, help="... for the report without explanation")
    ap.add_argument("--explain-requests", type=int, default=8, help="... for the report with explanation")
    ap.add_argument("--explain-clients", default="1,8", help="concurrency levels of the report with explanation")
    ap.add_argument("--cli-explain-max", type=int, default=10_000,
                    help="time the CLI's report with explanation only for cohorts up to this size")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="another graphonc source tree (e.g. `git archive COMMIT | tar -x -C DIR`) served next to "
                         "this one: every measurement runs on both servers back to back, under the same load")
    ap.add_argument("--baseline-explain-max", type=int, default=10_000,
                    help="measure the baseline's report with explanation only for cohorts up to this size (before "
                         "the local explanation it ran over the whole graph: minutes per request at 100k)")
    ap.add_argument("--endpoints", default="cohort_similar,new_similar,report,report_explain",
                    help="which endpoints to measure (comma-separated)")
    ap.add_argument("--workers", type=int, default=1, help="server processes of this tree's server (serve --workers)")
    ap.add_argument("--compare-workers", default="",
                    help="also serve this tree with these --workers counts (comma-separated), measured side by side "
                         "as configurations current_workersN")
    ap.add_argument("--baseline-workers", type=int, default=None,
                    help="serve --workers of the baseline (default: not passed; trees before it lack the option)")
    ap.add_argument("--epochs", type=int, default=10, help="training epochs of the small models")
    ap.add_argument("--ensemble", type=int, default=None,
                    help="networks per model (default: the product default, model.ensemble)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep runs here (reused when present)")
    ap.add_argument("--no-cli", action="store_true", help="skip the CLI timings")
    ap.add_argument("--json-out", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    clients = [int(c) for c in args.clients.split(",")]
    explain_clients = [int(c) for c in args.explain_clients.split(",")]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="graphonc-bench-serve-"))
    work.mkdir(parents=True, exist_ok=True)
    runs = {"metabric": prepare(REPO / "configs" / "metabric.yaml", work / "metabric", args.epochs, args.ensemble)}
    if args.synthetic:
        from bench_build import Metabric, generate_study

        name = f"synthetic{args.synthetic}"
        if not (work / name / "manifest.json").exists():
            _, config = generate_study(Metabric(REPO.parent / "shared" / "data" / "metabric"), args.synthetic,
                                       work / f"{name}_src", args.seed, 3.0)
        else:
            config = None
        runs[name] = prepare(config, work / name, args.epochs, args.ensemble)
    token = secrets.token_urlsafe(24)
    env = {**os.environ, "GRAPHONC_API_TOKEN": token, "PYTHONPATH": str(REPO)}
    # configuration → (source tree, --workers or None)
    trees = {"current": (REPO, args.workers)}
    for w in [int(w) for w in args.compare_workers.split(",") if w]:
        trees[f"current_workers{w}"] = (REPO, w)
    if args.baseline:
        trees["baseline"] = (args.baseline.resolve(), args.baseline_workers)
    servers: dict[str, tuple[subprocess.Popen, str]] = {}
    t0 = time.perf_counter()
    start_s = {}
    try:
        for conf, (tree, workers) in trees.items():  # one at a time: start-ups at once would slow each other
            t1 = time.perf_counter()
            servers[conf] = start_server(tree, runs, work / f"state-{conf}", env, workers)
            wait_up(*servers[conf], token)
            start_s[conf] = round(time.perf_counter() - t1, 1)
            log(f"{conf} server up in {start_s[conf]:.0f} s")
        results = []
        for name, run in runs.items():
            n = max(args.requests, args.report_requests, args.explain_requests)
            ids, bodies = new_patient_bodies(run, n, args.seed)
            n_patients = _n_patients(run)
            endpoints = {
                "cohort_similar": ([("GET", f"/api/runs/{name}/patients/{i}/similar", None) for i in ids],
                                   args.requests),
                "new_similar": ([("POST", f"/api/runs/{name}/new-patient/similar", b) for b in bodies], args.requests),
                "report": ([("GET", f"/api/runs/{name}/patients/{i}/report", None) for i in ids],
                           args.report_requests),
                "report_explain": ([("GET", f"/api/runs/{name}/patients/{i}/report?explain=true", None)
                                    for i in ids], args.explain_requests),
            }
            row = {"run": name, "n_patients": n_patients, "endpoints": {}}
            for conf in servers:
                if conf != "current":
                    row[conf] = {}
            endpoints = {ep: v for ep, v in endpoints.items() if ep in args.endpoints.split(",")}
            for ep, (calls, count) in endpoints.items():
                for conf in servers:
                    (row["endpoints"] if conf == "current" else row[conf])[ep] = []
                for c in (explain_clients if ep == "report_explain" else clients):
                    m = max(count, c)
                    todo = calls[:m] if m <= len(calls) else (calls * (m // len(calls) + 1))[:m]
                    for conf, (proc, base) in servers.items():  # back to back: the same machine load
                        if ep == "report_explain" and conf == "baseline" and n_patients > args.baseline_explain_max:
                            continue
                        load0, cpu0 = os.getloadavg()[0], cpu_seconds(proc.pid)
                        stats = drive(base, token, todo, c)
                        stats["load_avg_1m"] = [round(load0, 2), round(os.getloadavg()[0], 2)]  # before, after
                        # the server's CPU time per request: what it costs, whatever else the machine runs
                        stats["server_cpu_ms_per_request"] = round(
                            1000 * (cpu_seconds(proc.pid) - cpu0) / stats["requests"], 2)
                        log(f"{name} {conf} {ep} clients={c}: p50 {stats['p50_ms']} ms, p99 {stats['p99_ms']} ms, "
                            f"{stats['requests_per_s']} req/s, server CPU {stats['server_cpu_ms_per_request']} ms/request "
                            f"(load {stats['load_avg_1m']})")
                        (row["endpoints"] if conf == "current" else row[conf])[ep].append(stats)
            if not args.no_cli:
                row["cli"] = cli_times(name, run, ids[0], bodies[0], work, env,
                                       explain=n_patients <= args.cli_explain_max)
                log(f"{name} CLI: {row['cli']}")
            results.append(row)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
        for proc, _ in servers.values():
            proc.wait(30)
    report = {"benchmark": "serve", "goals": GOALS, "server_start_s": start_s, "configurations": {
                  k: {"tree": str(tree), "workers": w} for k, (tree, w) in trees.items()},
              "machine": {"cpu_count": os.cpu_count(), "cpu_usable": len(os.sched_getaffinity(0)),
                          "load_avg_1m": os.getloadavg()[0]},
              "results": results, "goals_met": goals_met(results)}
    text = json.dumps(report, indent=1)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(text + "\n")
    print(text)
    return report


def goals_met(results: list[dict]) -> dict:
    """Per run and configuration, each goal's p99 at the goal's client count and whether it is met."""
    keys = {"cohort_similar": "cohort_similar_p99_ms", "new_similar": "new_similar_p99_ms", "report": "report_p99_ms",
            "report_explain": "report_explain_p99_ms"}
    out = {}
    for row in results:
        confs = {"current": row["endpoints"]} | {k: v for k, v in row.items() if k not in (
            "run", "n_patients", "endpoints", "cli")}
        out[row["run"]] = {}
        for conf, eps in confs.items():
            got = {}
            for ep, goal in keys.items():
                at = [s for s in eps.get(ep, []) if s["clients"] == GOALS["n_clients"]]
                if at:
                    got[ep] = {"p99_ms": at[0]["p99_ms"], "goal_ms": GOALS[goal], "met": at[0]["p99_ms"] < GOALS[goal],
                               "load_avg_1m": at[0]["load_avg_1m"]}
            out[row["run"]][conf] = got
    return out


def _n_patients(run: Path) -> int:
    return int(json.loads((run / "manifest.json").read_text())["counts"]["nodes"]["Patient"])


if __name__ == "__main__":
    main()
