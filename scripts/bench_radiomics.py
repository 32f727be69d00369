#!/usr/bin/env python
"""Benchmark ``graphonc radiomics extract`` on the IBSI soft-tissue-sarcoma CTs: serial pyradiomics
against Dask distributed, side by side in one run.

Cases: the 12 IBSI ``STS_*`` CT + GTV mask pairs in ``../shared/data/radiomics/ibsi_sts``
(``--cases`` picks how many, in id order), extracted with ``configs/radiomics.yaml`` (or
``--params``; ``--spacing`` overrides the isotropic resampling in mm; ``--full-resolution`` drops
the resampling, so the cases are extracted on their own 0.98 x 0.98 x 3.27 mm grid: about 2.5x
the voxels and twice the time of the 2 mm grid). Every mode is timed in this process with
:func:`graphonc.radiomics.extract.extract_cases`, cache off unless said:

* ``serial``:     one process (``workers=1``): plain pyradiomics, SimpleITK threaded: the reference;
* ``serial_1thread``: the same with SimpleITK on one thread, as in a Dask worker;
* ``local_1``:    the LocalCluster ``radiomics extract`` starts, 1 worker, started and warmed up
                  (pyradiomics imported, extractor built) before timing: the per-case overhead;
* ``local_2``:    the same with ``--workers`` workers: the speed-up;
* ``local_2_chunked``: the same, ``--chunk`` cases per task (the others use the automatic choice,
                  one case per task for a few dozen cases);
* ``local_2_dask_defaults``: ``local_2`` with Dask's default settings instead of
                  :data:`graphonc.radiomics.cluster.DASK_SETTINGS` (profiler on, 20 ms event-loop
                  ticks), what they change (the allocator tuning each worker does itself,
                  :func:`graphonc.radiomics.worker.tune_malloc`, is in every Dask mode);
* ``two_processes``: no Dask: ``--workers`` plain processes set up as a worker is (one thread,
                  allocator tuned, extractor built before timing), each extracting a fixed share
                  of the cases (balanced by serial_1thread's per-case times): what this machine
                  gives for that many parallel extractions, the ceiling of the Dask modes;
* ``external_2``: a scheduler and ``--workers`` workers started as separate processes (``dask
                  scheduler`` / ``dask worker`` with graphonc's Dask config file, a "cluster" on this
                  machine), reached by address, warmed up;
* ``cold``:       ``workers=--workers`` as a user runs it: the cluster's start-up included;
* ``warm``:       every case already in the cache (the rerun).

Each mode records the 1-minute load average before and after it (``load_1min``): the machine may
be shared, and other jobs skew wall times. ``cpu_seconds`` is user + system time of this process and
every process below it (the workers), ``cores_used`` = cpu_seconds / seconds; CPU time is far less
sensitive to other jobs than wall time. ``speedup`` = serial / mode and ``overhead_per_case`` =
(mode - serial) / serial, in wall time; the ``*_vs_1thread`` twins compare with ``serial_1thread``;
``cpu_overhead_vs_1thread`` = (cpu_seconds - serial_1thread's) / serial_1thread's is the work Dask
adds per case. ``--repeat`` lists every case several times (distinct case ids, cache off: each is
extracted); ``--rounds`` runs the timed modes that many times, interleaved, and keeps each mode's
fastest round (``seconds_all`` lists every round). ``--overheads`` adds ``overheads``: the per-case costs
of docs/scaling.md measured one by one (:func:`measure_overheads`).

Prints one JSON object (progress to stderr)::

    {"benchmark": "radiomics-extract", "machine": {...}, "n_cases": 12, "n_tasks": 36, "params": {...},
     "results": {"serial": {"seconds", "cpu_seconds", "cores_used", "seconds_per_case", "cases_per_hour",
     "case_seconds": {mean, median, max}, "load_1min": [before, after], ...}, "local_1": {..., "overhead_per_case"},
     "local_2": {..., "speedup"}, "external_2": {...}, "cold": {...}, "warm": {...}}}

Example::

    .venv/bin/python scripts/bench_radiomics.py --full-resolution --repeat 2 --json-out bench_out/radiomics.json
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
DATA = (REPO.parent / "shared" / "data").resolve()


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def machine_info() -> dict:
    import graphonc
    import psutil

    from graphonc.radiomics.extract import available_cores, pyradiomics_version

    return {"cpu_count": os.cpu_count(), "cpu_usable": available_cores(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1), "python": platform.python_version(),
            "platform": platform.platform(), "graphonc_version": graphonc.__version__,
            "pyradiomics": pyradiomics_version(), "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]}


def write_inputs(workdir: Path, data_dir: Path, n: int, params: Path, spacing: float | None,
                 repeat: int = 1, full_resolution: bool = False) -> tuple[Path, Path]:
    """A manifest of the first ``n`` IBSI cases, each listed ``repeat`` times, and the params file
    (``spacing``: isotropic resampling in mm; ``full_resolution``: no resampling)."""
    root = data_dir / "radiomics" / "ibsi_sts"
    ids = sorted(p.name for p in root.glob("STS_*") if (p / "CT_image.nii.gz").exists())[:n]
    if len(ids) < n:
        raise SystemExit(f"only {len(ids)} IBSI cases in {root}, asked for {n}")
    manifest = workdir / "manifest.csv"
    pd.DataFrame([{"case_id": f"{i}#{r}", "patient_id": i, "image": root / i / "CT_image.nii.gz",
                   "mask": root / i / "CT_mask.nii.gz", "modality": "CT"}
                  for r in range(repeat) for i in ids]).to_csv(manifest, index=False)
    raw = yaml.safe_load(params.read_text())
    if spacing is not None:
        raw["pyradiomics"]["setting"]["resampledPixelSpacing"] = [spacing] * 3
    if full_resolution:
        raw["pyradiomics"]["setting"].pop("resampledPixelSpacing", None)
    out = workdir / "params.yaml"
    out.write_text(yaml.safe_dump(raw))
    return manifest, out


def _cpu_seconds() -> float:
    """User + system CPU time of this process, its live descendants (Dask workers) and its reaped children."""
    import psutil

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    for child in psutil.Process().children(recursive=True):
        try:
            t = child.cpu_times()
            total += t.user + t.system
        except psutil.Error:  # exited meanwhile: counted in RUSAGE_CHILDREN once reaped
            pass
    return total


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def run_mode(name: str, cases, params, workers: int, cache: Path | None, scheduler: str | None = None,
             cases_per_task: int | None = None) -> dict:
    from graphonc.radiomics.extract import extract_cases

    load0 = _load()
    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    res = extract_cases(cases, params, workers=workers, cache_dir=cache, use_cache=cache is not None,
                        scheduler=scheduler, cases_per_task=cases_per_task)
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    per = [c["seconds"] for c in res.cases if c["status"] == "extracted"]
    out = {"per_case": res.cases, "workers": res.workers, "cases_per_task": res.cases_per_task,
           "seconds": round(wall, 3),
           "cpu_seconds": round(cpu, 3), "cores_used": round(cpu / wall, 2),
           "seconds_per_case": round(wall / len(cases), 4), "cases_per_hour": round(3600 * len(cases) / wall, 1),
           "counts": res.counts, "load_1min": [load0, _load()]}
    if per:
        out["case_seconds"] = {"mean": round(statistics.mean(per), 4), "median": round(statistics.median(per), 4),
                               "max": round(max(per), 4)}
    log(f"{name}: {wall:.2f} s ({cpu:.2f} s CPU) for {len(cases)} cases with {res.workers} worker(s), "
        f"{res.cases_per_task} case(s) per task ({out['seconds_per_case']:.3f} s/case, "
        f"{out['cases_per_hour']:,.0f} cases/h; load {load0} -> {out['load_1min'][1]})")
    if res.counts["failed"]:
        raise SystemExit(f"{name}: {res.counts['failed']} case(s) failed: {res.errors.to_dict('records')[:2]}")
    return out


@contextlib.contextmanager
def itk_threads(n: int):
    """SimpleITK's global thread count set to ``n`` for the block."""
    import SimpleITK as sitk

    old = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(n)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(old)


def warm_workers(address: str, job: dict) -> float:
    """Import pyradiomics and build the extractor on every worker at ``address`` (the one-off
    start-up a first case pays); returns the slowest worker's seconds."""
    from distributed import Client

    from graphonc.radiomics.cluster import warm_up

    with Client(address, timeout=60) as client:
        return round(max(client.run(warm_up, job).values()), 3)


@contextlib.contextmanager
def local_cluster(n: int, dask_defaults: bool = False):
    """The LocalCluster ``radiomics extract`` starts (``n`` single-threaded worker processes), started
    before timing; yields its address. ``dask_defaults``: with Dask's own settings instead of
    graphonc's (:data:`graphonc.radiomics.cluster.DASK_SETTINGS`)."""
    from graphonc.radiomics.cluster import DASK_SETTINGS, extraction_client

    with extraction_client(None, n, settings={} if dask_defaults else DASK_SETTINGS) as client:
        client.wait_for_workers(n)
        yield client.scheduler.address


@contextlib.contextmanager
def external_cluster(n: int):
    """``dask scheduler`` and ``n`` ``dask worker`` processes on 127.0.0.1, with graphonc's Dask config
    file (:func:`graphonc.radiomics.cluster.dask_config_yaml`, named by ``DASK_CONFIG``); yields the address."""
    from distributed import Client

    from graphonc.radiomics.cluster import dask_config_yaml

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="graphonc_dask_") as tmp:
        config = Path(tmp) / "graphonc.yaml"
        config.write_text(dask_config_yaml())
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               "DASK_CONFIG": str(config), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1"}
        env.pop("MALLOC_TRIM_THRESHOLD_", None)
        quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                   "--port", str(port), "--dashboard-address", "127.0.0.1:0"], **quiet)]
        try:
            procs += [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads",
                                        "1", "--host", "127.0.0.1", "--no-dashboard"], **quiet) for _ in range(n)]
            with Client(address, timeout=60) as client:
                client.wait_for_workers(n, timeout=120)
            yield address
        finally:
            for p in procs[::-1]:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:  # a worker still trying to reach its stopped scheduler
                    p.kill()
                    p.wait()


#: A ``two_processes`` child: reads its jobs (JSON) and sets up, says "ready", waits for "go",
#: extracts, prints its CPU seconds.
_CHILD = """
import json, sys, time
from graphonc.radiomics import worker
from graphonc.radiomics_config import ExtractionSettings
jobs = json.loads(sys.stdin.readline())
worker._init_worker(single_thread=True)
worker._extractor(ExtractionSettings.model_validate(jobs[0]["params"]))
print("ready", flush=True)
sys.stdin.readline()
cpu = time.process_time()
for job in jobs:
    assert worker._extract_one(job)["ok"], job["image"]
print(time.process_time() - cpu, flush=True)
"""


def run_processes(cases, params, n: int, case_seconds: dict[str, float]) -> dict:
    """The ``two_processes`` mode: ``n`` plain processes, started and set up before timing, the
    cases split by longest-first greedy on ``case_seconds`` (case id -> seconds)."""
    from graphonc.radiomics.extract import _job

    bins: list[list] = [[] for _ in range(n)]
    loads = [0.0] * n
    for case in sorted(cases, key=lambda c: -case_seconds.get(c.case_id, 0.0)):
        i = loads.index(min(loads))
        bins[i].append(_job(case, params))
        loads[i] += case_seconds.get(case.case_id, 0.0)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env, cwd=REPO) for b in bins if b]
    try:
        for p, jobs in zip(procs, [b for b in bins if b]):
            p.stdin.write(json.dumps(jobs) + "\n")
            p.stdin.flush()
        for p in procs:
            if p.stdout.readline().strip() != "ready":
                raise SystemExit("two_processes: a child failed to start")
        load0 = _load()
        t0 = time.perf_counter()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        cpu = sum(float(p.stdout.readline()) for p in procs)
        wall = time.perf_counter() - t0
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=60)
    out = {"workers": len(procs), "cases_per_task": None, "seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
           "cores_used": round(cpu / wall, 2), "seconds_per_case": round(wall / len(cases), 4),
           "cases_per_hour": round(3600 * len(cases) / wall, 1),
           "counts": {"cases": len(cases), "extracted": len(cases), "cached": 0, "failed": 0},
           "load_1min": [load0, _load()]}
    log(f"two_processes: {wall:.2f} s ({cpu:.2f} s CPU in the extractions) for {len(cases)} cases in {len(procs)} "
        f"processes (load {load0} -> {out['load_1min'][1]})")
    return out


#: An ``overheads`` child: extracts the jobs (JSON on stdin) set up as a Dask worker or not (argv[1]
#: "tuned" / "plain"); prints the minor page faults and CPU seconds of the extractions after the first.
_FAULTS = """
import json, resource, sys, time
from graphonc.radiomics import worker
jobs = json.loads(sys.stdin.readline())
import SimpleITK as sitk
worker._init_worker(single_thread=sys.argv[1] == "tuned")
sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
assert worker._extract_one(jobs[0])["ok"]
faults, cpu = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time()
for job in jobs[1:]:
    assert worker._extract_one(job)["ok"]
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults, time.process_time() - cpu)
"""


def measure_overheads(cases, params, idle_seconds: float = 5.0, n_tasks: int = 500) -> dict:
    """The per-case costs docs/scaling.md lists, each measured alone (CPU time, so other jobs on the
    machine matter little):

    * ``idle_cluster_cores``: cores a started, idle 2-worker LocalCluster uses (client process with
      its scheduler and nannies, plus the workers) with Dask's defaults and with graphonc's settings;
    * ``task_cpu_ms``: CPU per task of ``n_tasks`` tasks that only return a 107-feature dict (submit,
      scheduler, worker, pickling), client process and workers;
    * ``allocator``: minor page faults and CPU per case of a process started as Dask's nanny starts
      workers (``MALLOC_TRIM_THRESHOLD_=65536``), with and without graphonc's allocator tuning;
    * ``hash_ms_per_case``, ``cache_put_ms_per_case``: the client's cache key and cache write.
    """
    import psutil

    from graphonc.radiomics.cache import ResultCache, content_hash
    from graphonc.radiomics.cluster import DASK_SETTINGS, extraction_client
    from graphonc.radiomics.extract import _job

    def cpu_of(procs) -> float:
        return sum(t.user + t.system for t in (p.cpu_times() for p in procs))

    features = {f"original_glcm_F{i}": 0.1 * i for i in range(107)}
    out: dict = {"idle_cluster_cores": {}, "task_cpu_ms": {}}
    for name, settings in (("dask_defaults", {}), ("graphonc", DASK_SETTINGS)):
        with extraction_client(None, 2, settings=settings) as client:
            client.wait_for_workers(2)
            procs = [psutil.Process()] + [psutil.Process(pid) for pid in client.run(os.getpid).values()]
            time.sleep(1.0)
            before = cpu_of(procs)
            time.sleep(idle_seconds)
            out["idle_cluster_cores"][name] = round((cpu_of(procs) - before) / idle_seconds, 4)
            if name == "graphonc":
                before, own = cpu_of(procs[1:]), cpu_of(procs[:1])
                futures = [client.submit(dict, features, pure=False) for _ in range(n_tasks)]
                client.gather(futures)
                out["task_cpu_ms"] = {"client_process": round(1000 * (cpu_of(procs[:1]) - own) / n_tasks, 2),
                                      "workers": round(1000 * (cpu_of(procs[1:]) - before) / n_tasks, 2)}
    jobs = [_job(c, params) for c in cases[:4]]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "MALLOC_TRIM_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    out["allocator"] = {}
    for mode in ("plain", "tuned"):
        res = subprocess.run([sys.executable, "-c", _FAULTS, mode], input=json.dumps(jobs) + "\n", text=True,
                             capture_output=True, env=env, cwd=REPO, check=True)
        faults, cpu = res.stdout.split()
        out["allocator"][mode] = {"page_faults_per_case": round(int(faults) / (len(jobs) - 1)),
                                  "cpu_seconds_per_case": round(float(cpu) / (len(jobs) - 1), 4)}
    files = [f for c in cases for f in (c.image, c.mask)]
    t = time.process_time()
    for f in files:
        content_hash(f)
    out["hash_ms_per_case"] = round(1000 * (time.process_time() - t) / len(cases), 3)
    with tempfile.TemporaryDirectory() as tmp:
        cache, t = ResultCache(Path(tmp)), time.process_time()
        for i in range(200):
            cache.put(f"{i:064x}", {"features": features, "label": 1, "notes": [], "seconds": 0.2})
        out["cache_put_ms_per_case"] = round(1000 * (time.process_time() - t) / 200, 3)
    log(f"overheads: {out}")
    return out


def _fastest(rounds: list[dict]) -> dict:
    best = dict(min(rounds, key=lambda r: r["seconds"]))
    if len(rounds) > 1:
        best["seconds_all"] = [r["seconds"] for r in rounds]
        best["load_1min_all"] = [r["load_1min"] for r in rounds]
    return best


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=12, help="number of IBSI cases (default all 12)")
    ap.add_argument("--params", type=Path, default=REPO / "configs" / "radiomics.yaml")
    grid = ap.add_mutually_exclusive_group()
    grid.add_argument("--spacing", type=float, help="override the isotropic resampling (mm)")
    grid.add_argument("--full-resolution", action="store_true",
                      help="no resampling: each CT on its own grid (about 2x the time per case of the 2 mm grid)")
    ap.add_argument("--repeat", type=int, default=1, help="list each case this many times (more tasks per run)")
    ap.add_argument("--rounds", type=int, default=1, help="time the modes this many times, keep each one's fastest")
    ap.add_argument("--workers", type=int, default=0, help="parallel workers (default 0 = every usable core)")
    ap.add_argument("--chunk", type=int, default=4, help="cases per task of the local_2_chunked mode (default 4)")
    ap.add_argument("--overheads", action="store_true", help="also measure the per-case costs one by one "
                    "(idle cluster, per task, allocator, hashing, cache writes; about 30 s)")
    ap.add_argument("--data-dir", type=Path, default=DATA, help=f"real data folder (default {DATA})")
    ap.add_argument("--json-out", type=Path, help="also write the JSON here")
    args = ap.parse_args(argv)

    from graphonc.radiomics.cluster import DASK_SETTINGS
    from graphonc.radiomics.extract import _job, available_cores
    from graphonc.radiomics.manifest import read_manifest
    from graphonc.radiomics_config import load_params

    workers = args.workers or available_cores()
    load_start = [round(x, 2) for x in os.getloadavg()]
    rounds: dict[str, list[dict]] = {}
    warm_up: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_radiomics_") as tmp:
        work = Path(tmp)
        manifest, params_path = write_inputs(work, args.data_dir, args.cases, args.params, args.spacing,
                                             args.repeat, args.full_resolution)
        cases, params = read_manifest(manifest), load_params(params_path)
        job = _job(cases[0], params)
        clusters = {"local_1": (lambda: local_cluster(1), 1, None),
                    "local_2": (lambda: local_cluster(workers), workers, None),
                    "local_2_chunked": (lambda: local_cluster(workers), workers, args.chunk),
                    "local_2_dask_defaults": (lambda: local_cluster(workers, dask_defaults=True), workers, 1),
                    "external_2": (lambda: external_cluster(workers), workers, None)}
        for r in range(args.rounds):
            if args.rounds > 1:
                log(f"round {r + 1} of {args.rounds}")
            rounds.setdefault("serial", []).append(run_mode("serial", cases, params, 1, None))
            with itk_threads(1):  # what one Dask worker does: the per-case overhead's fair reference
                rounds.setdefault("serial_1thread", []).append(run_mode("serial_1thread", cases, params, 1, None))
            per_case = {c["case_id"]: c["seconds"] for c in rounds["serial_1thread"][-1].pop("per_case")}
            rounds.setdefault("two_processes", []).append(run_processes(cases, params, workers, per_case))
            for name, (start, n, per_task) in clusters.items():
                with start() as address:
                    warm_up.setdefault(name, []).append(warm_workers(address, job))
                    rounds.setdefault(name, []).append(run_mode(name, cases, params, n, None, scheduler=address,
                                                                cases_per_task=per_task))
            rounds.setdefault("cold", []).append(run_mode("cold", cases, params, workers, None))
        overheads = measure_overheads(cases, params) if args.overheads else None
        run_mode("fill cache", cases, params, workers, work / "cache")
        rounds["warm"] = [run_mode("warm", cases, params, workers, work / "cache")]
    for rs in rounds.values():
        for r in rs:
            r.pop("per_case", None)
    results = {name: _fastest(rs) for name, rs in rounds.items()}
    for name, secs in warm_up.items():
        results[name]["worker_warm_up_seconds"] = max(secs)  # not in "seconds": a worker's one-off start-up
    serial, single = results["serial"], results["serial_1thread"]
    for name, r in results.items():
        if name != "serial":
            r["speedup"] = round(serial["seconds"] / r["seconds"], 2)
            r["speedup_vs_1thread"] = round(single["seconds"] / r["seconds"], 2)
            r["overhead_per_case"] = round((r["seconds"] - serial["seconds"]) / serial["seconds"], 4)
            r["overhead_per_case_vs_1thread"] = round((r["seconds"] - single["seconds"]) / single["seconds"], 4)
            r["cpu_overhead_vs_1thread"] = round((r["cpu_seconds"] - single["cpu_seconds"]) / single["cpu_seconds"], 4)
    machine = machine_info()  # load average at the end too: other jobs on the machine skew the figures
    machine["load_average_1_5_15_at_start"] = load_start
    report = {"benchmark": "radiomics-extract", "machine": machine, "n_cases": args.cases, "n_tasks": len(cases),
              "rounds": args.rounds,
              "params": {"file": str(args.params), "full_resolution": args.full_resolution,
                         "spacing_mm": params.pyradiomics.setting.get("resampledPixelSpacing"),
                         "feature_classes": sorted((params.pyradiomics.featureClass or {}).keys())},
              "dask_settings": {k: v for k, v in DASK_SETTINGS.items()},
              "results": results, **({"overheads": overheads} if overheads else {})}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
