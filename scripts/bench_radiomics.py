#!/usr/bin/env python
"""Benchmark ``graphonc radiomics extract`` on the IBSI soft-tissue-sarcoma CTs.

Cases: the 12 IBSI ``STS_*`` CT + GTV mask pairs in ``../shared/data/radiomics/ibsi_sts``
(``--cases`` picks how many, in id order), extracted with ``configs/radiomics.yaml`` (or
``--params``; ``--spacing`` overrides the isotropic resampling in mm). Three modes, each timed
in this process with :func:`graphonc.radiomics.extract.extract_cases` (worker start-up and
hashing included, imports not; ``cpu_seconds`` is user + system time of this process and its
workers, ``cores_used`` = cpu_seconds / seconds):

* ``serial``:   one process (``workers=1``), cache off;
* ``parallel``: ``--workers`` processes (default: every usable core), cache off;
* ``warm``:     ``--workers`` processes with every case already in the cache (the rerun).

Prints one JSON object (progress to stderr)::

    {"benchmark": "radiomics-extract", "machine": {...}, "n_cases": 12, "params": {...},
     "results": {"serial": {"seconds", "cpu_seconds", "cores_used", "seconds_per_case", "cases_per_hour", "case_seconds": {mean, median,
     max}, ...}, "parallel": {..., "speedup"}, "warm": {...}}}

Example::

    .venv/bin/python scripts/bench_radiomics.py --json-out bench_out/radiomics.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
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


def write_inputs(workdir: Path, data_dir: Path, n: int, params: Path, spacing: float | None) -> tuple[Path, Path]:
    """A manifest of the first ``n`` IBSI cases and the params file to use."""
    root = data_dir / "radiomics" / "ibsi_sts"
    ids = sorted(p.name for p in root.glob("STS_*") if (p / "CT_image.nii.gz").exists())[:n]
    if len(ids) < n:
        raise SystemExit(f"only {len(ids)} IBSI cases in {root}, asked for {n}")
    manifest = workdir / "manifest.csv"
    pd.DataFrame([{"patient_id": i, "image": root / i / "CT_image.nii.gz", "mask": root / i / "CT_mask.nii.gz",
                   "modality": "CT"} for i in ids]).to_csv(manifest, index=False)
    raw = yaml.safe_load(params.read_text())
    if spacing is not None:
        raw["pyradiomics"]["setting"]["resampledPixelSpacing"] = [spacing] * 3
    out = workdir / "params.yaml"
    out.write_text(yaml.safe_dump(raw))
    return manifest, out


def _cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children (the worker pool)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_mode(name: str, cases, params, workers: int, cache: Path | None) -> dict:
    from graphonc.radiomics.extract import extract_cases

    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    res = extract_cases(cases, params, workers=workers, cache_dir=cache, use_cache=cache is not None)
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


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=12, help="number of IBSI cases (default all 12)")
    ap.add_argument("--params", type=Path, default=REPO / "configs" / "radiomics.yaml")
    ap.add_argument("--spacing", type=float, help="override the isotropic resampling (mm)")
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
        manifest, params_path = write_inputs(work, args.data_dir, args.cases, args.params, args.spacing)
        cases, params = read_manifest(manifest), load_params(params_path)
        results = {"serial": run_mode("serial", cases, params, 1, None),
                   "parallel": run_mode("parallel", cases, params, workers, None)}
        run_mode("fill cache", cases, params, workers, work / "cache")
        results["warm"] = run_mode("warm", cases, params, workers, work / "cache")
    results["parallel"]["speedup"] = round(results["serial"]["seconds"] / results["parallel"]["seconds"], 2)
    results["warm"]["speedup"] = round(results["serial"]["seconds"] / results["warm"]["seconds"], 2)
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
