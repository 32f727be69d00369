#!/usr/bin/env python
"""Benchmark GNN training: seconds per epoch and peak memory, full-batch vs neighbour-sampled.

Graphs:

* METABRIC (the real run, built from ``configs/metabric.yaml``);
* synthetic cohorts of N patients (default 100,000; generated from METABRIC by
  ``scripts/bench_build.py``'s generator, built in a child process so its memory is not
  counted here).

For each graph the training patients are 85% of the eligible patients (as in a fold), the
rest attached receive-only. Timed per graph:

* ``full_batch``: one optimiser step on the whole graph plus the validation forward pass
  (the default for cohort-sized graphs), mean of ``--epochs`` epochs after one warm-up;
  skipped above ``--full-batch-max`` patients;
* ``minibatch``: one epoch of mini-batches of ``--batch-size`` seed patients with
  ``--fanouts`` sampled neighbours per layer (``graphonc.model.sampling``), training pass
  plus validation pass.

Memory: peak RSS of this process (``ru_maxrss``; the graph tensors are loaded here, the
build is not) and, on CUDA, ``torch.cuda.max_memory_allocated``. The goal for N=100,000 is
training within 8 GB RAM on a 2-core machine. CUDA is used automatically when present
(``--device``). Prints one JSON object; progress goes to stderr. Example::

    .venv/bin/python scripts/bench_train.py --sizes 100000 --json-out bench_out/train.json
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_build as bb  # noqa: E402

from graphonc.graph.build import build_run  # noqa: E402
from graphonc.graph.run import GraphRun  # noqa: E402
from graphonc.model.data import model_graph  # noqa: E402
from graphonc.model.evaluate import eligible_patients  # noqa: E402
from graphonc.model.gnn import ModelConfig  # noqa: E402
from graphonc.model.train import Trainer, _targets, pick_device, seed_everything, split_validation  # noqa: E402

GOAL_RSS_MB = 8192.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_graph(run: GraphRun, cfg: ModelConfig, epochs: int, full_batch: bool) -> dict:
    seed_everything(cfg.seed)
    ids = eligible_patients(run)["id"].tolist()
    fit_ids, val_ids = split_validation(ids, 0.15, cfg.seed)
    t0 = time.perf_counter()
    graph = model_graph(run, fit_ids, min_patients=cfg.mutation_min_patients)
    load_s = time.perf_counter() - t0
    device = pick_device(cfg.device)
    trainer = Trainer(graph, cfg, device)
    fit_idx, val_idx = graph.patient_index(fit_ids), graph.patient_index(val_ids)
    d = graph.data
    res = {"cohort": run.cohort, "n_patients": int(d["Patient"].num_nodes), "n_train": len(fit_ids),
           "nodes": int(sum(d[t].num_nodes for t in d.node_types)),
           "edges": int(sum(d[e].edge_index.shape[1] for e in d.edge_types)),
           "parameters": int(sum(p.numel() for p in trainer.model.parameters())),
           "graph_load_seconds": round(load_s, 2), "device": str(device)}
    opt = torch.optim.AdamW(trainer.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    if full_batch:
        fit_t, val_t = _targets(graph, fit_idx), _targets(graph, val_idx)
        fit_all = torch.as_tensor(fit_idx)
        times = []
        for i in range(epochs + 1):  # the first epoch warms up allocators and caches
            _sync(device)
            t0 = time.perf_counter()
            trainer._full_batch_epoch(fit_all, fit_t, val_t, None, opt, gen)
            _sync(device)
            if i:
                times.append(time.perf_counter() - t0)
        res["full_batch"] = {"seconds_per_epoch": round(float(np.mean(times)), 3), "epochs_timed": epochs,
                             "peak_rss_mb": round(peak_rss_mb(), 1)}
        bb.log(f"{run.cohort}: full batch {res['full_batch']['seconds_per_epoch']:.2f} s/epoch")
    times = []
    for _ in range(max(1, epochs)):
        _sync(device)
        t0 = time.perf_counter()
        trainer._minibatch_pass(fit_idx, None, opt, gen)
        trainer._minibatch_pass(val_idx, None)
        _sync(device)
        times.append(time.perf_counter() - t0)
    res["minibatch"] = {"seconds_per_epoch": round(float(np.mean(times)), 3), "epochs_timed": len(times),
                        "batch_size": cfg.batch_size, "fanouts": cfg.fanouts,
                        "batches_per_epoch": int(np.ceil(len(fit_idx) / cfg.batch_size)),
                        "patients_per_second": round(len(ids) / float(np.mean(times)))}
    bb.log(f"{run.cohort}: mini-batch {res['minibatch']['seconds_per_epoch']:.2f} s/epoch")
    res["peak_rss_mb"] = round(peak_rss_mb(), 1)
    if device.type == "cuda":
        res["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return res


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000", help="synthetic patient counts, comma-separated ('' for none)")
    ap.add_argument("--no-metabric", action="store_true", help="skip METABRIC")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per mode (default 3)")
    ap.add_argument("--batch-size", type=int, default=1024, help="seed patients per mini-batch (default 1024)")
    ap.add_argument("--fanouts", default="15,10", help="sampled neighbours per layer (default 15,10)")
    ap.add_argument("--full-batch-max", type=int, default=20_000,
                    help="time full-batch epochs only up to this many patients (default 20000)")
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    ap.add_argument("--seed", type=int, default=0, help="generator and model seed (default 0)")
    ap.add_argument("--mutation-scale", type=float, default=3.0, help="see bench_build.py (default 3)")
    ap.add_argument("--workdir", type=Path, help="where to write cohorts and runs (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--data-dir", type=Path, default=bb.DATA, help=f"real data folder (default {bb.DATA})")
    ap.add_argument("--json-out", type=Path, help="also write the JSON here")
    args = ap.parse_args(argv)
    fanouts = [int(f) for f in args.fanouts.split(",")]
    cfg = ModelConfig(batch_size=args.batch_size, fanouts=fanouts, layers=len(fanouts), device=args.device,
                      seed=args.seed)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="graphonc-bench-train-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        if not args.no_metabric:
            out = workdir / "run_metabric"
            build_run(bb.METABRIC_CONFIG, out)
            results.append(bench_graph(GraphRun.open(out), cfg, args.epochs, full_batch=True))
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        if sizes:
            src = bb.Metabric(args.data_dir / "metabric")
        for n in sizes:
            facts, config = bb.generate_study(src, n, workdir, args.seed, args.mutation_scale)
            bb.log(f"N={n:,}: {facts['maf_rows']:,} MAF rows; building in a child process ...")
            bb.run_build(config, workdir / f"run_{n}")
            res = bench_graph(GraphRun.open(workdir / f"run_{n}"), cfg, args.epochs,
                              full_batch=n <= args.full_batch_max)
            res["within_8gb"] = res["peak_rss_mb"] < GOAL_RSS_MB
            results.append(res)
    finally:
        bb.finish_workdir(workdir, args)
    report = {"benchmark": "train", "model": cfg.model_dump(), "machine": bb.machine_info(),
              "torch": torch.__version__, "cuda": torch.cuda.is_available(),
              "goal": {"n_patients": 100_000, "peak_rss_mb": GOAL_RSS_MB}, "results": results}
    return bb.emit_report(report, args.json_out)


if __name__ == "__main__":
    main()
