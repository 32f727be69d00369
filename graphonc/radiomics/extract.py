"""``graphonc radiomics extract``: pyradiomics features for every case of a manifest.

* **Parallel** over cases as tasks of a Dask distributed cluster (:mod:`graphonc.radiomics.cluster`):
  a ``LocalCluster`` of single-threaded worker processes sized to this machine by default, or an
  existing cluster given by its scheduler address (``--scheduler tcp://host:8786``) to go past one
  machine. Workers read the images by path (a shared file system). A worker that dies mid-run
  has its cases rerun elsewhere by Dask; results come back to this process, which alone writes
  the cache and the outputs. ``workers=1`` without a scheduler runs in this process.
* **Cached and resumable**: each finished case is stored under its content hash (see
  :mod:`graphonc.radiomics.cache`) the moment it completes; a rerun only extracts new or
  changed cases, and a crashed run picks up where it stopped.
* **Failures are data**: a case that cannot be extracted (missing or unreadable file, empty
  mask, absent label, geometry mismatch, pyradiomics error) becomes a row of the errors table
  with its reason, and every other case still finishes.

Outputs (each written atomically: temp file + rename):

``<out>`` (Parquet)
    one row per extracted case, sorted by ``case_id``: ``case_id``, ``patient_id``, ``label``
    (the mask value used), the manifest's other columns (text), then one float64 column per
    feature, named as pyradiomics names them (``original_firstorder_Mean``; units those of the
    image: HU for CT, mm / mm² / mm³ for shape), sorted by name.
``<out stem>.errors.csv``
    ``case_id, patient_id, manifest_line, reason, message`` for every failed case (header only
    when none failed).
``<out stem>.extract.json``
    counts, wall time, workers, per-case status and seconds, pyradiomics version, parameters.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

import graphonc
from graphonc.errors import GraphoncError
from graphonc.graph.outputs import claim_file, listed_in
from graphonc.graph.run import atomic_file, write_parquet
from graphonc.progress import make_progress
from graphonc.radiomics.cache import ResultCache, case_key, content_hash, default_cache_dir
from graphonc.radiomics.manifest import Case, read_manifest
from graphonc.radiomics_config import GeometrySpec, RadiomicsParams, load_params
from graphonc.radiomics.worker import _extract_one, _init_worker, make_extractor, pyradiomics_version
from graphonc.threads import usable_cpus

log = logging.getLogger("graphonc")

ERROR_COLUMNS = ["case_id", "patient_id", "manifest_line", "reason", "message"]
META_COLUMNS = ("case_id", "patient_id", "label")


def available_cores() -> int:
    """Worker processes to start by default: the CPUs this process may use (graphonc.threads)."""
    return usable_cpus()


# ---------------------------------------------------------------- the batch


@dataclass
class ExtractResult:
    """Features and errors of a batch (also the return value of :func:`extract_run`)."""

    features: pd.DataFrame
    errors: pd.DataFrame
    cases: list[dict] = field(default_factory=list)  # case_id, status (extracted/cached/failed), seconds
    seconds: float = 0.0
    workers: int = 1
    cases_per_task: int = 1  # cases per Dask task (1 in this process)

    @property
    def counts(self) -> dict[str, int]:
        out = {"cases": len(self.cases), "extracted": 0, "cached": 0, "failed": 0}
        for c in self.cases:
            out[c["status"]] += 1
        return out


def _job(case: Case, params: RadiomicsParams, settings: dict | None = None, geometry: dict | None = None) -> dict:
    """What a worker needs for one case. ``settings``/``geometry``: the dumped parameters, shared by
    the jobs of a batch (pickled once per task)."""
    return {"image": str(case.image), "mask": str(case.mask), "label": case.label,
            "params": settings if settings is not None else params.pyradiomics.model_dump(),
            "geometry": geometry if geometry is not None else params.geometry.model_dump()}


def extract_cases(cases: list[Case], params: RadiomicsParams, *, workers: int | None = None,
                  cache_dir: Path | None = None, use_cache: bool = True, progress: bool = False,
                  scheduler: str | None = None, cases_per_task: int | None = None) -> ExtractResult:
    """Extract every case (see module doc); nothing is written except cache entries.

    Args:
        workers: worker processes of the local cluster; None = ``params.workers`` (0 = all
            available cores); 1 = in this process. Ignored with ``scheduler``.
        cache_dir: cache folder (default :func:`~graphonc.radiomics.cache.default_cache_dir`).
        use_cache: False = neither read nor write the cache.
        scheduler: address of an existing Dask scheduler (``tcp://host:8786``); its workers
            extract the cases.
        cases_per_task: cases a Dask task extracts one after the other; None = automatic from
            the number of cases and worker threads
            (:func:`~graphonc.radiomics.cluster.auto_cases_per_task`: 1 for small batches).

    Raises:
        InputError: the scheduler cannot be reached.
        GraphoncError: ``cases_per_task`` below 1.
    """
    if cases_per_task is not None and cases_per_task < 1:
        raise GraphoncError(f"--cases-per-task {cases_per_task}: give at least 1, or leave it out for the "
                            "automatic choice.")
    t0 = time.perf_counter()
    make_extractor(params.pyradiomics, params.source_path)  # fail fast on bad parameters, in this process
    version = pyradiomics_version()
    cache = ResultCache((cache_dir or default_cache_dir()) if use_cache else None)
    canon_params = params.pyradiomics.canonical()
    canon_geom = json.dumps(params.geometry.model_dump(), sort_keys=True)
    want = workers if workers is not None else params.workers
    n_workers = want if want and want > 0 else available_cores()

    per_task = 1
    results: dict[str, dict] = {}
    status: dict[str, str] = {}
    pending: list[tuple[Case, str | None]] = []
    with make_progress(progress) as bar:
        task = bar.add_task("radiomics extract", total=len(cases))
        for case in cases:
            key = None
            if use_cache and case.image.exists() and case.mask.exists():  # no cache: no need to hash the files
                key = case_key(content_hash(case.image), content_hash(case.mask), canon_params, canon_geom,
                               case.label, version)
                hit = cache.get(key)
                if hit is not None:
                    results[case.case_id], status[case.case_id] = {**hit, "ok": True, "seconds": 0.0}, "cached"
                    bar.advance(task)
                    continue
            pending.append((case, key))

        def done(case: Case, key: str | None, res: dict) -> None:
            results[case.case_id] = res
            status[case.case_id] = "extracted" if res["ok"] else "failed"
            if res["ok"] and key is not None:
                cache.put(key, {"features": res["features"], "label": res["label"], "notes": res["notes"],
                                "seconds": res["seconds"]})
            bar.advance(task)

        n_workers = max(1, min(n_workers, len(pending)))
        if scheduler is None and n_workers == 1:
            _init_worker(single_thread=False)
            for case, key in pending:
                done(case, key, _extract_one(_job(case, params)))
        elif pending:
            from graphonc.radiomics.cluster import auto_cases_per_task, extraction_client, run_jobs, worker_threads

            with extraction_client(scheduler, n_workers) as client:
                n_workers = len(client.scheduler_info().get("workers", {})) or n_workers
                per_task = cases_per_task or auto_cases_per_task(len(pending), worker_threads(client))
                geometry, settings = params.geometry.model_dump(), params.pyradiomics.model_dump()
                jobs = {c.case_id: _job(c, params, settings, geometry) for c, _ in pending}
                by_id = {c.case_id: (c, k) for c, k in pending}
                for case_id, res in run_jobs(client, jobs, per_task):
                    done(*by_id[case_id], res)
    result = _assemble(cases, results, status, time.perf_counter() - t0, n_workers)
    result.cases_per_task = per_task
    return result


def _assemble(cases: list[Case], results: dict[str, dict], status: dict[str, str], seconds: float,
              workers: int) -> ExtractResult:
    rows, errors, summary = [], [], []
    meta_cols: list[str] = []
    for case in cases:
        for c in case.meta:
            if c not in meta_cols:
                meta_cols.append(c)
    for case in sorted(cases, key=lambda c: c.case_id):
        res = results[case.case_id]
        summary.append({"case_id": case.case_id, "status": status[case.case_id],
                        "seconds": round(float(res.get("seconds", 0.0)), 4)})
        if not res["ok"]:
            errors.append({"case_id": case.case_id, "patient_id": case.patient_id, "manifest_line": case.line,
                           "reason": res["reason"], "message": res["message"]})
            log.debug("case %s: %s", case.case_id, res["message"])
            continue
        for note in res.get("notes", []):
            log.info("case %s: %s", case.case_id, note)
        rows.append({"case_id": case.case_id, "patient_id": case.patient_id, "label": int(res["label"]),
                     **{c: case.meta.get(c) for c in meta_cols}, **res["features"]})
    feats = pd.DataFrame(rows)
    if feats.empty:
        feats = pd.DataFrame(columns=[*META_COLUMNS, *meta_cols])
    names = sorted(c for c in feats.columns if c not in META_COLUMNS and c not in meta_cols)
    feats = feats[[*META_COLUMNS, *meta_cols, *names]]
    for c in names:
        feats[c] = feats[c].astype("float64")
    feats["label"] = feats["label"].astype("int64")
    for c in ("case_id", "patient_id", *meta_cols):
        feats[c] = feats[c].astype(object)
    err = pd.DataFrame(errors, columns=ERROR_COLUMNS)
    if errors:
        log.warning("radiomics extract: %d of %d case(s) failed (%s); the others are in the feature table",
                    len(errors), len(cases), ", ".join(sorted(err["case_id"])[:5]) + (" …" if len(errors) > 5 else ""))
    return ExtractResult(features=feats.reset_index(drop=True), errors=err, cases=summary,
                         seconds=round(seconds, 3), workers=workers)


def feature_columns(df: pd.DataFrame) -> list[str]:
    """The feature columns of a feature table (float columns other than the meta columns)."""
    return [c for c in df.columns if c not in META_COLUMNS and pd.api.types.is_float_dtype(df[c])]


def side_paths(out: Path) -> tuple[Path, Path]:
    """The errors table and the report written beside ``out``."""
    out = Path(out)
    stem = out.name[: -len(out.suffix)] if out.suffix else out.name
    return out.with_name(f"{stem}.errors.csv"), out.with_name(f"{stem}.extract.json")


def claim_outputs(out: Path) -> None:
    """Refuse ``out`` or a file beside it that graphonc did not write (before any work)."""
    err_path, report_path = side_paths(out)
    claim_file(out)
    claim_file(report_path)
    claim_file(err_path, ours=listed_in(report_path, "errors_table"))  # a CSV: ours when our report names it


def write_outputs(result: ExtractResult, out: Path, extra: dict | None = None) -> dict:
    """Write features, errors table and report (each atomically). Returns the report."""
    out = Path(out)
    err_path, report_path = side_paths(out)
    claim_outputs(out)
    with atomic_file(out, claim=True) as tmp:
        write_parquet(result.features, tmp)
    with atomic_file(err_path) as tmp:  # claimed above, with the report that vouches for it
        result.errors.to_csv(tmp, index=False)
    report = {"graphonc_version": graphonc.__version__, "counts": result.counts, "seconds": result.seconds, "workers": result.workers,
              "cases_per_task": result.cases_per_task,
              "features": len(feature_columns(result.features)), "out": str(out),
              "errors_table": str(err_path), "cases": result.cases, **(extra or {})}
    with atomic_file(report_path, claim=True) as tmp:
        tmp.write_text(json.dumps(report, indent=2, sort_keys=True, default=str), encoding="utf-8")
    return report


def extract_run(manifest: str | Path, params_path: str | Path, out: str | Path, *, workers: int | None = None,
                cache_dir: Path | None = None, use_cache: bool = True, geometry: GeometrySpec | None = None,
                progress: bool = False, scheduler: str | None = None,
                cases_per_task: int | None = None) -> tuple[ExtractResult, dict]:
    """The ``radiomics extract`` stage: manifest + params file → features, errors table, report.

    Args:
        geometry: overrides the params file's ``geometry`` section.
        scheduler: an existing Dask scheduler's address (see :func:`extract_cases`).
        cases_per_task: cases per Dask task (see :func:`extract_cases`).

    Raises:
        InputError: an unusable manifest (missing column, duplicate case id …).
        ConfigError: a bad params file.
    """
    claim_outputs(Path(out))  # before hours of extraction
    params = load_params(params_path)
    if geometry is not None:
        params = params.model_copy(update={"geometry": geometry})
    cases = read_manifest(manifest)
    result = extract_cases(cases, params, workers=workers, cache_dir=cache_dir, use_cache=use_cache,
                           progress=progress, scheduler=scheduler, cases_per_task=cases_per_task)
    report = write_outputs(result, Path(out), {"manifest": str(manifest), "params": str(params_path),
                                               "pyradiomics": pyradiomics_version(),
                                               "pyradiomics_params": params.pyradiomics.as_params(),
                                               "geometry": params.geometry.model_dump()})
    return result, report
