#!/usr/bin/env python
"""Benchmark similar-patient search: FAISS Flat vs HNSW vs IVF on synthetic embeddings.

For each size N (``--sizes``) the script draws N ``--dim``-dimensional float32 embeddings
from a seeded mixture of Gaussians (``--clusters`` centres; clustered like real patient
embeddings, unlike i.i.d. noise which is the worst case for every approximate index), plus
``--queries`` patients of the index as queries, and for each index kind (``--kinds``):

* ``build_s``: wall time to build the index (training included for IVF);
* batch search of all queries at once: ``batch_s`` and ``queries_per_s``;
* one query at a time (``--latency-queries`` of them): ``p50_ms`` / ``p99_ms`` latency;
* ``recall_at_10``: overlap of the top-10 with exact (Flat) search, self excluded.

Every figure is taken on graphonc's search path (:func:`graphonc.search.similar.neighbours_of_rows`,
what ``similar --patient`` runs: the patients' stored vectors fetched from the index, FAISS's
``Index.search``, each patient itself excluded, rows mapped to patient ids). End-to-end latency
as users feel it (HTTP, reasons, rendering) is the service benchmark's business, not this one's.

On a machine with CUDA and faiss-gpu, Flat and IVF are also run on the GPU (kinds
``flat-gpu``, ``ivf-gpu``). Prints one JSON object (and writes ``--json-out``). Example::

    .venv/bin/python scripts/bench_search.py --sizes 10000,100000,1000000 --json-out bench_out/search.json

Never run by the tests (benchmarks print figures; tests do not time things).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from graphonc.search.index import IndexParams, PatientIndex, gpu_available  # noqa: E402
from graphonc.search.similar import neighbours, neighbours_of_rows  # noqa: E402


def synthetic(n: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    """(n, dim) float32: cluster centres ~ N(0, 1), points = centre + N(0, 0.35²) noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    which = rng.integers(0, clusters, n)
    return centres[which] + 0.35 * rng.standard_normal((n, dim)).astype(np.float32)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def recall(got: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a[a >= 0]) & set(b)) / len(b) for a, b in zip(got, truth)]))


def bench_kind(kind: str, x: np.ndarray, ids: np.ndarray, qpos: np.ndarray, truth: np.ndarray, k: int,
               params: IndexParams, latency_queries: int, rounds: int) -> dict:
    device = "gpu" if kind.endswith("-gpu") else "cpu"
    base = kind.removesuffix("-gpu")
    t0 = time.perf_counter()
    idx = PatientIndex.build(x, ids, base, params, device=device)
    build_s = time.perf_counter() - t0

    def path(rows) -> np.ndarray:  # graphonc's search path, up to patient ids
        h = neighbours_of_rows(idx, qpos[rows], k)
        idx.ids_at(h.rows)
        return h.rows

    def timed(rows) -> float:
        t = time.perf_counter()
        path(rows)
        return time.perf_counter() - t

    path(slice(0, 10))  # warm-up
    batch = float(np.median([timed(slice(None)) for _ in range(rounds)]))
    lat_ms = np.array([timed(slice(i, i + 1)) for i in range(min(latency_queries, len(qpos)))]) * 1e3
    got = path(slice(None))
    return {"kind": kind, "device": idx.device, "build_s": round(build_s, 3),
            "batch_queries": len(qpos), "batch_s": round(batch, 4), "queries_per_s": round(len(qpos) / batch, 1),
            "p50_ms": round(float(np.percentile(lat_ms, 50)), 4), "p99_ms": round(float(np.percentile(lat_ms, 99)), 4),
            "recall_at_10": round(recall(got[:, :10], truth), 4), "params": idx.meta["params"]}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--kinds", default="flat,hnsw,ivf")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--latency-queries", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5, help="batch timings (median)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=80)
    ap.add_argument("--ef-search", type=int, default=128)
    ap.add_argument("--nprobe", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json-out", type=Path)
    a = ap.parse_args(argv)
    import faiss

    kinds = a.kinds.split(",")
    if gpu_available():
        kinds += [f"{kd}-gpu" for kd in kinds if kd in ("flat", "ivf")]
    params = IndexParams(hnsw_m=a.hnsw_m, ef_construction=a.ef_construction, ef_search=a.ef_search, nprobe=a.nprobe)
    out = {"benchmark": "search", "dim": a.dim, "k": a.k, "seed": a.seed, "clusters": a.clusters,
           "machine": {"cpus": os.cpu_count(), "faiss_threads": faiss.omp_get_max_threads(),
                       "platform": platform.platform(), "faiss": faiss.__version__, "gpu": gpu_available()},
           "results": []}
    for n in [int(s) for s in a.sizes.split(",")]:
        _log(f"N={n:,}: generating {n:,} × {a.dim} embeddings")
        x = synthetic(n, a.dim, a.clusters, a.seed)
        ids = np.array([f"P{i:08d}" for i in range(n)], dtype=object)
        qpos = np.sort(np.random.default_rng(a.seed + 1).choice(n, min(a.queries, n), replace=False))
        exact = PatientIndex.build(x, ids, "flat")
        truth = neighbours(exact, x[qpos], a.k, qpos).rows
        for kind in kinds:
            _log(f"N={n:,}: {kind}")
            r = bench_kind(kind, x, ids, qpos, truth, a.k, params, a.latency_queries, a.rounds)
            r["n"] = n
            out["results"].append(r)
            _log(json.dumps(r))
        del x, exact
    text = json.dumps(out, indent=2)
    print(text)
    if a.json_out:
        a.json_out.parent.mkdir(parents=True, exist_ok=True)
        a.json_out.write_text(text)
    return out


if __name__ == "__main__":
    main()
