#!/usr/bin/env python
"""Benchmark ``graphonc build-graph`` on a synthetic METABRIC-like cohort of N patients.

For each size N the script

1. generates a cBioPortal-style study folder (``data_clinical_patient.txt``,
   ``data_clinical_sample.txt``, ``data_mutations_extended.txt``, ``data_gene_panel.txt``)
   from the real METABRIC study in ``../shared/data/metabric`` (relative to the repo root):

   * every synthetic patient is a bootstrap draw (with replacement, numpy seed ``--seed``) of a
     real METABRIC patient: its clinical patient and sample rows are copied verbatim under a new
     id (``SYN-0000001``), so every clinical value, and their joint distribution, is real;
   * its number of MAF rows is the drawn patient's real row count (METABRIC's empirical
     per-patient distribution, all variant classes incl. Silent, 0 for patients without
     mutations; mean 6.88) times ``--mutation-scale`` (default 3, so N=100,000 gives ~2.07M
     rows; a non-integer product is rounded stochastically, keeping the mean);
   * each MAF row is a real METABRIC MAF row (all 45 columns, so the same gene symbols incl.
     old ones like MLL2, protein changes, variant classes, read counts) drawn uniformly with
     replacement, with ``Tumor_Sample_Barcode`` set to the synthetic sample;
   * the MAF keeps METABRIC's ``#Sequenced_Samples:`` line, the clinical files keep their
     four ``#`` header lines and line endings, and the gene panel file is rewritten line by line;

2. writes a config (``synthetic.yaml``, the keys of ``configs/metabric.yaml``) into the work
   folder, pointing at the synthetic study and, by absolute path, at the real gene and pathway
   files in ``../shared/data``;

3. runs ``python -m graphonc.cli -q build-graph`` as a child process and records its wall time
   and its own peak RSS (``os.wait4`` rusage of that child only). Generation is not timed.

Prints one JSON object to stdout (progress goes to stderr)::

    {"benchmark": "build-graph", "seed": 0, "mutation_scale": 3.0, "machine": {...},
     "limits": {...}, "results": [{"n_patients": ..., "maf_rows": ..., "seconds": ...,
     "rows_per_s": ..., "peak_rss_mb": ..., "timings_s": {...}, "counts": {...}, ...}]}

``seconds`` is the child's wall time (interpreter start-up and imports included);
``build_seconds`` is the manifest's in-process figure. Example::

    .venv/bin/python scripts/bench_build.py --sizes 1000,10000,100000 --json-out bench_out/build.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
DATA = (REPO.parent / "shared" / "data").resolve()
METABRIC_CONFIG = REPO / "configs" / "metabric.yaml"

PATIENT_FILE = "data_clinical_patient.txt"
SAMPLE_FILE = "data_clinical_sample.txt"
MAF_FILE = "data_mutations_extended.txt"
PANEL_FILE = "data_gene_panel.txt"
SEQUENCED = "#Sequenced_Samples:"

#: The issue's limits for N=100,000 (about 2M MAF rows) on a 2-core, 24 GB machine.
LIMITS = {"n_patients": 100_000, "seconds": 60.0, "peak_rss_mb": 4096.0}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- source data

def _read_lines(path: Path) -> tuple[list[str], str]:
    """Lines of a text file (any line ending) and the file's own line ending."""
    raw = path.read_bytes().decode("utf-8")
    newline = "\r\n" if "\r\n" in raw else "\r" if "\r" in raw else "\n"
    lines = raw.split(newline)
    if lines and lines[-1] == "":
        lines.pop()
    return lines, newline


def _split_table(lines: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(leading '#' lines, column names, non-blank data lines) of a cBioPortal table."""
    i = 0
    while i < len(lines) and lines[i].startswith("#"):
        i += 1
    return lines[:i], lines[i].split("\t"), [ln for ln in lines[i + 1:] if ln.strip()]


class Metabric:
    """The pieces of the real METABRIC study the generator samples from."""

    def __init__(self, study: Path) -> None:
        if not study.is_dir():
            raise SystemExit(f"METABRIC study folder {study} not found (expected ../shared/data/metabric "
                             "beside the repo; see --data-dir).")
        self.study = study
        lines, self.patient_newline = _read_lines(study / PATIENT_FILE)
        self.patient_meta, pcols, prows = _split_table(lines)
        self.patient_header = "\t".join(pcols)
        assert pcols[0] == "PATIENT_ID", pcols[:3]
        lines, self.sample_newline = _read_lines(study / SAMPLE_FILE)
        self.sample_meta, scols, srows = _split_table(lines)
        self.sample_header = "\t".join(scols)
        assert scols[:2] == ["SAMPLE_ID", "PATIENT_ID"], scols[:3]

        # first sample of each patient; the synthetic patient gets one sample with its own id
        first_sample: dict[str, tuple[str, str]] = {}
        for row in srows:
            sid, pid, rest = row.split("\t", 2)
            first_sample.setdefault(pid, (sid, rest))
        self.patient_rest: list[str] = []   # patient row after PATIENT_ID
        self.sample_rest: list[str] = []    # sample row after SAMPLE_ID, PATIENT_ID
        self.sample_ids: list[str] = []     # real sample id of each pool entry
        for row in prows:
            pid, _, rest = row.partition("\t")
            if pid in first_sample:
                sid, srest = first_sample[pid]
                self.patient_rest.append(rest)
                self.sample_rest.append(srest)
                self.sample_ids.append(sid)

        maf_lines, _ = _read_lines(study / MAF_FILE)
        maf_meta, maf_cols, maf_rows = _split_table(maf_lines)
        self.maf_meta = [ln for ln in maf_meta if not ln.startswith(SEQUENCED)]
        self.maf_header = "\t".join(maf_cols)
        bc = maf_cols.index("Tumor_Sample_Barcode")
        self.maf_before: list[str] = []    # row up to and including the tab before the barcode
        self.maf_after: list[str] = []     # the tab after the barcode and the rest of the row
        count: dict[str, int] = {}
        for row in maf_rows:
            f = row.split("\t", bc + 1)           # bc fields, the barcode, the rest of the row
            barcode = f[bc]
            self.maf_before.append("\t".join(f[:bc]) + "\t")
            self.maf_after.append("\t" + f[bc + 1] if len(f) > bc + 1 else "")
            count[barcode] = count.get(barcode, 0) + 1
        # METABRIC's empirical per-patient MAF row count (0 = sequenced, no mutation)
        self.counts = np.array([count.get(s, 0) for s in self.sample_ids], dtype=np.int64)
        listed = None
        for ln in maf_meta:
            if ln.startswith(SEQUENCED):
                listed = set(ln.split(":", 1)[1].split())
        self.sequenced = np.array([listed is None or s in listed for s in self.sample_ids])
        self.panel_lines, _ = _read_lines(study / PANEL_FILE)

    @property
    def n(self) -> int:
        return len(self.sample_ids)


# --------------------------------------------------------------------------- generator

def _write_lines(path: Path, lines, newline: str = "\n", chunk: int = 200_000) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        buf: list[str] = []
        for ln in lines:
            buf.append(ln)
            if len(buf) >= chunk:
                fh.write(newline.join(buf) + newline)
                buf.clear()
        if buf:
            fh.write(newline.join(buf) + newline)


def generate_cohort(src: Metabric, n: int, study: Path, seed: int = 0, scale: float = 3.0) -> dict:
    """Write a synthetic cBioPortal study of ``n`` patients into ``study``; returns its facts."""
    rng = np.random.default_rng(seed)
    study.mkdir(parents=True, exist_ok=True)
    width = max(7, len(str(n)))
    ids = [f"SYN-{i:0{width}d}" for i in range(1, n + 1)]
    draw = rng.integers(0, src.n, size=n)                           # which real patient each one copies
    wanted = src.counts[draw] * scale
    n_rows = np.floor(wanted + rng.random(n)).astype(np.int64)      # stochastic rounding, mean = c * scale
    n_rows[~src.sequenced[draw]] = 0
    total = int(n_rows.sum())
    maf_pick = rng.integers(0, len(src.maf_before), size=total)     # real MAF rows, uniform with replacement
    owner = np.repeat(np.arange(n), n_rows)

    _write_lines(study / PATIENT_FILE,
                 [*src.patient_meta, src.patient_header,
                  *(f"{pid}\t{src.patient_rest[j]}" for pid, j in zip(ids, draw))], src.patient_newline)
    _write_lines(study / SAMPLE_FILE,
                 [*src.sample_meta, src.sample_header,
                  *(f"{pid}\t{pid}\t{src.sample_rest[j]}" for pid, j in zip(ids, draw))], src.sample_newline)
    seq_ids = [pid for pid, j in zip(ids, draw) if src.sequenced[j]]
    before, after = src.maf_before, src.maf_after
    _write_lines(study / MAF_FILE,
                 [f"{SEQUENCED} {' '.join(seq_ids)}", *src.maf_meta, src.maf_header,
                  *(before[r] + ids[o] + after[r] for o, r in zip(owner.tolist(), maf_pick.tolist()))])
    _write_lines(study / PANEL_FILE, src.panel_lines)
    _write_lines(study / "meta_study.txt", [
        "type_of_cancer: brca", f"cancer_study_identifier: graphonc_synthetic_{n}",
        f"name: graphonc synthetic cohort ({n} patients bootstrapped from METABRIC, seed {seed})",
        "description: generated by scripts/bench_build.py for build-graph benchmarks; not real patients."])
    return {"n_patients": n, "n_samples": n, "n_sequenced": len(seq_ids), "maf_rows": total,
            "maf_rows_per_patient": round(total / n, 3),
            "maf_mb": round((study / MAF_FILE).stat().st_size / 2**20, 1)}


def write_config(study: Path, path: Path, n: int, template: Path = METABRIC_CONFIG) -> Path:
    """``configs/metabric.yaml`` pointed at the synthetic study; its data paths made absolute."""
    cfg = yaml.safe_load(template.read_text())
    base = template.resolve().parent

    def absolute(p: str) -> str:
        return str((base / p).resolve()) if not os.path.isabs(p) else p

    cfg["cohort"] = f"synthetic_{n}"
    cfg["input"]["study_dir"] = str(study.resolve())
    for key in ("gene_info", "intogen", "oncokb"):
        if cfg.get("genes", {}).get(key):
            cfg["genes"][key] = absolute(cfg["genes"][key])
    for src in cfg.get("pathways", []):
        src["path"] = absolute(src["path"])
    path.write_text(f"# synthetic cohort of {n} patients, generated by scripts/bench_build.py\n"
                    + yaml.safe_dump(cfg, sort_keys=False, width=120))
    return path


# --------------------------------------------------------------------------- timing

def run_build(config: Path, out: Path) -> dict:
    """Run build-graph in a child process; wall seconds, its peak RSS and the manifest."""
    cmd = [sys.executable, "-m", "graphonc.cli", "-q", "build-graph", "--config", str(config), "--out", str(out)]
    log_path = out.parent / f"{out.name}.log"
    with open(log_path, "wb") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            _, status, usage = os.wait4(proc.pid, 0)   # rusage of this child alone (Unix)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"build-graph failed (exit {proc.returncode}):\n{log_path.read_text()[-4000:]}")
    manifest = json.loads((out / "manifest.json").read_text())
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, "manifest": manifest}  # ru_maxrss: KiB


def machine_info() -> dict:
    import graphonc
    import psutil

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"cpu_count": os.cpu_count(), "cpu_usable": usable,
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1), "python": platform.python_version(),
            "platform": platform.platform(), "graphonc_version": graphonc.__version__}


def generate_study(src: Metabric, n: int, workdir: Path, seed: int, scale: float) -> tuple[dict, Path]:
    """``workdir/synthetic_<n>/`` (the study) and ``workdir/synthetic_<n>.yaml`` (its config): (facts, config)."""
    study = workdir / f"synthetic_{n}"
    facts = generate_cohort(src, n, study, seed=seed, scale=scale)
    return facts, write_config(study, workdir / f"synthetic_{n}.yaml", n)


def bench_one(src: Metabric, n: int, workdir: Path, seed: int, scale: float) -> dict:
    t0 = time.perf_counter()
    facts, config = generate_study(src, n, workdir, seed, scale)
    gen_s = time.perf_counter() - t0
    log(f"N={n:,}: generated {facts['maf_rows']:,} MAF rows ({facts['maf_mb']} MiB) in {gen_s:.1f} s; building ...")
    b = run_build(config, workdir / f"run_{n}")
    m = b["manifest"]
    res = {**facts, "seconds": round(b["seconds"], 3), "build_seconds": m["build_seconds"],
           "rows_per_s": round(facts["maf_rows"] / b["seconds"]), "peak_rss_mb": round(b["peak_rss_mb"], 1),
           "timings_s": m["stats"]["timings_s"], "mutation_rows": {k: v for k, v in m["stats"]["mutation_rows"].items()
                                                                  if k != "unknown_symbols"},
           "counts": m["counts"], "generate_seconds": round(gen_s, 2), "config": str(config)}
    if n >= LIMITS["n_patients"]:
        res["within_limits"] = res["seconds"] < LIMITS["seconds"] and res["peak_rss_mb"] < LIMITS["peak_rss_mb"]
    log(f"N={n:,}: build {res['seconds']:.1f} s, {res['rows_per_s']:,} rows/s, peak RSS {res['peak_rss_mb']:.0f} MB")
    return res


def finish_workdir(workdir: Path, args) -> None:
    """Remove a temporary work folder unless the user chose it or asked to keep it."""
    if args.workdir is None and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        log(f"kept {workdir}")


def emit_report(report: dict, json_out: Path | None) -> dict:
    """Print the benchmark JSON and write it to ``json_out`` when given."""
    text = json.dumps(report, indent=2)
    print(text)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(text + "\n")
    return report


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000", help="comma-separated patient counts (default 100000)")
    ap.add_argument("--seed", type=int, default=0, help="numpy seed of the generator (default 0)")
    ap.add_argument("--mutation-scale", type=float, default=3.0,
                    help="multiplies METABRIC's per-patient MAF row counts (default 3: ~20.7 rows/patient)")
    ap.add_argument("--workdir", type=Path, help="where to write cohorts, configs and runs (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (always kept with --workdir)")
    ap.add_argument("--data-dir", type=Path, default=DATA, help=f"real data folder (default {DATA})")
    ap.add_argument("--json-out", type=Path, help="also write the JSON here")
    args = ap.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    if not sizes or min(sizes) < 1:
        ap.error("--sizes needs positive integers, e.g. 1000,10000,100000")

    src = Metabric(args.data_dir / "metabric")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="graphonc-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        results = [bench_one(src, n, workdir, args.seed, args.mutation_scale) for n in sizes]
    finally:
        finish_workdir(workdir, args)
    report = {
        "benchmark": "build-graph", "seed": args.seed, "mutation_scale": args.mutation_scale,
        "source": {"study": "METABRIC (cBioPortal brca_metabric)", "patients": src.n,
                   "maf_rows": len(src.maf_before), "maf_rows_per_patient": round(float(src.counts.mean()), 3)},
        "machine": machine_info(), "limits": LIMITS, "results": results,
    }
    return emit_report(report, args.json_out)


if __name__ == "__main__":
    main()
