#!/usr/bin/env python
"""Benchmark ``graphonc radiomics extract`` on the IBSI soft-tissue-sarcoma CTs: serial pyradiomics
against Dask distributed, side by side in one run.

Cases: the 12 IBSI ``STS_*`` CT + GTV mask pairs in ``../shared/data/radiomics/ibsi_sts``
(``--cases`` picks how many, in id order), extracted with ``configs/radiomics.yaml`` (or
``--params``; ``--spacing`` overrides the isotropic resampling in mm). Every mode is timed in this
process with :func:`graphonc.radiomics.extract.extract_cases`, cache off unless said:

* ``serial``:     one process (``workers=1``): plain pyradiomics, the reference;
* ``serial_1thread``: the same with SimpleITK on one thread, as in a Dask worker;
* ``local_1``:    a LocalCluster of 1 worker, started before timing (``scheduler=`` its address):
                  the per-case scheduling overhead against ``serial``;
* ``local_2``:    a LocalCluster of ``--workers`` workers, started before timing: the speed-up;
* ``external_2``: a scheduler and ``--workers`` workers started as separate processes (``dask
                  scheduler`` / ``dask worker``, a "cluster" on this machine), reached by address;
* ``cold``:       ``workers=--workers`` as a user runs it: the cluster's start-up included;
* ``warm``:       every case already in the cache (the rerun).

``cpu_seconds`` is user + system time of this process and every process below it (the workers);
``cores_used`` = cpu_seconds / seconds. ``overhead_per_case`` = (mode - serial) / serial and
``speedup`` = serial / mode; the ``*_vs_1thread`` twins compare with ``serial_1thread``. ``--repeat``
lists every case several times (distinct case ids, cache off: each is extracted).

Prints one JSON object (progress to stderr)::

    {"benchmark": "radiomics-extract", "machine": {...}, "n_cases": 12, "params": {...},
     "results": {"serial": {"seconds", "cpu_seconds", "cores_used", "seconds_per_case", "cases_per_hour",
     "case_seconds": {mean, median, max}, ...}, "local_1": {..., "overhead_per_case"}, "local_2": {..., "speedup"},
     "external_2": {...}, "cold": {...}, "warm": {...}}}

Example::

    .venv/bin/python scripts/bench_radiomics.py --json-out bench_out/radiomics.json
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
                 repeat: int = 1) -> tuple[Path, Path]:
    """A manifest of the first ``n`` IBSI cases, each listed ``repeat`` times, and the params file."""
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


def run_mode(name: str, cases, params, workers: int, cache: Path | None, scheduler: str | None = None) -> dict:
    from graphonc.radiomics.extract import extract_cases

    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    res = extract_cases(cases, params, workers=workers, cache_dir=cache, use_cache=cache is not None,
                        scheduler=scheduler)
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    per = [c["seconds"] for c in res.cases if c["status"] == "extracted"]
    out = {"workers": res.workers, "seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
           "cores_used": round(cpu / wall, 2), "seconds_per_case": round(wall / len(cases), 4),
           "cases_per_hour": round(3600 * len(cases) / wall, 1), "counts": res.counts}
    if per:
        out["case_seconds"] = {"mean": round(statistics.mean(per), 4), "median": round(statistics.median(per), 4),
                               "max": round(max(per), 4)}
    log(f"{name}: {wall:.2f} s for {len(cases)} cases with {res.workers} worker(s) "
        f"({out['seconds_per_case']:.3f} s/case, {out['cases_per_hour']:,.0f} cases/h)")
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


@contextlib.contextmanager
def local_cluster(n: int):
    """The LocalCluster ``radiomics extract`` starts (``n`` single-threaded worker processes), started
    before timing; yields its address."""
    from graphonc.radiomics.cluster import extraction_client

    with extraction_client(None, n) as client:
        client.wait_for_workers(n)
        yield client.scheduler.address


@contextlib.contextmanager
def external_cluster(n: int):
    """``dask scheduler`` and ``n`` ``dask worker`` processes on 127.0.0.1; yields the address."""
    from distributed import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--dashboard-address", "127.0.0.1:0"], **quiet)]
    try:
        procs += [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                    "--host", "127.0.0.1", "--no-dashboard"], **quiet) for _ in range(n)]
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


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=12, help="number of IBSI cases (default all 12)")
    ap.add_argument("--params", type=Path, default=REPO / "configs" / "radiomics.yaml")
    ap.add_argument("--spacing", type=float, help="override the isotropic resampling (mm)")
    ap.add_argument("--repeat", type=int, default=1, help="list each case this many times (more tasks per run)")
    ap.add_argument("--workers", type=int, default=0, help="parallel workers (default 0 = every usable core)")
    ap.add_argument("--data-dir", type=Path, default=DATA, help=f"real data folder (default {DATA})")
    ap.add_argument("--json-out", type=Path, help="also write the JSON here")
    args = ap.parse_args(argv)

    from graphonc.radiomics.extract import available_cores
    from graphonc.radiomics.manifest import read_manifest
    from graphonc.radiomics_config import load_params

    workers = args.workers or available_cores()
    with tempfile.TemporaryDirectory(prefix="bench_radiomics_") as tmp:
        work = Path(tmp)
        manifest, params_path = write_inputs(work, args.data_dir, args.cases, args.params, args.spacing,
                                             args.repeat)
        cases, params = read_manifest(manifest), load_params(params_path)
        results = {"serial": run_mode("serial", cases, params, 1, None)}
        with itk_threads(1):  # what one Dask worker does: the per-case overhead's fair reference
            results["serial_1thread"] = run_mode("serial_1thread", cases, params, 1, None)
        for name, n in (("local_1", 1), ("local_2", workers)):
            with local_cluster(n) as address:
                results[name] = run_mode(name, cases, params, n, None, scheduler=address)
        with external_cluster(workers) as address:
            results["external_2"] = run_mode("external_2", cases, params, workers, None, scheduler=address)
        results["cold"] = run_mode("cold", cases, params, workers, None)
        run_mode("fill cache", cases, params, workers, work / "cache")
        results["warm"] = run_mode("warm", cases, params, workers, work / "cache")
    serial, single = results["serial"]["seconds"], results["serial_1thread"]["seconds"]
    for name, r in results.items():
        if name != "serial":
            r["speedup"] = round(serial / r["seconds"], 2)
            r["speedup_vs_1thread"] = round(single / r["seconds"], 2)
            r["overhead_per_case"] = round((r["seconds"] - serial) / serial, 4)
            r["overhead_per_case_vs_1thread"] = round((r["seconds"] - single) / single, 4)
    machine = machine_info()  # load average at the end: other jobs on the machine skew the figures
    report = {"benchmark": "radiomics-extract", "machine": machine, "n_cases": args.cases,
              "params": {"file": str(args.params), "spacing_mm": params.pyradiomics.setting.get("resampledPixelSpacing"),
                         "feature_classes": sorted((params.pyradiomics.featureClass or {}).keys())},
              "results": results}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
