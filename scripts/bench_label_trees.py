#!/usr/bin/env python
"""Benchmark what the label trees (``model.label_boosting``) cost a training run, side by side.

For each run (``--runs``, built by ``graphonc build-graph``; default the real METABRIC and MSK
prostate runs under ``runs/``) the script trains the model on the same training patients
(fold 0 of 5 held back, as in an evaluation fold) twice, in this process, with the run's
``model:`` section: once with ``label_boosting: 0`` (the network alone) and once with the
default ``auto`` (six tree fits: five out-of-bag folds and the final trees), and reports for each
the wall time of :func:`graphonc.model.train.fit_model` and of predicting every patient of the
graph, and the held-back patients' AUROC and macro-F1. The network is the same in both (same
seeds); the difference is the trees. Threads: the CPUs this process may use
(:func:`graphonc.threads.set_threads`).

Prints one JSON object (and writes ``--json-out``). Example::

    .venv/bin/python scripts/bench_label_trees.py --runs runs/metabric --json-out bench_out/label_trees.json

Never run by the tests (benchmarks print figures; tests do not time things).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", default="runs/metabric,runs/prostate_msk_2024",
                    help="comma-separated run folders (missing ones are skipped)")
    ap.add_argument("--epochs", type=int, default=None, help="override the model's epochs (quicker, same cost of trees)")
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args(argv)

    from graphonc.threads import set_threads

    threads = set_threads()
    from graphonc.graph import schema as S
    from graphonc.graph.run import GraphRun
    from graphonc.model.evaluate import make_folds
    from graphonc.model.metrics import diagnosis_metrics
    from graphonc.model.stages import model_config
    from graphonc.model.train import fit_model, predict

    out = {"threads": threads, "runs": []}
    for root in [Path(r) for r in args.runs.split(",") if r]:
        if not (root / "manifest.json").exists():
            print(f"skipped {root}: not a built run", file=sys.stderr)
            continue
        run = GraphRun.open(root)
        train, test = make_folds(run, 5, 0)[0]
        row = {"run": str(root), "n_train": len(train), "n_test": len(test)}
        for name, weight in (("network_alone", 0.0), ("with_trees", "auto")):
            cfg = model_config(run, None, epochs=args.epochs, label_boosting=weight)
            t0 = time.perf_counter()
            fit = fit_model(run, train, cfg)
            t1 = time.perf_counter()
            _, proba, _ = predict(fit.model, fit.graph, fit.booster)
            t2 = time.perf_counter()
            rows = fit.graph.patient_index(test)
            y = fit.graph.data[S.PATIENT].y.numpy()[rows]
            ok = y >= 0
            m = diagnosis_metrics(y[ok], proba[rows][ok], fit.graph.label_classes)
            row[name] = {"fit_s": round(t1 - t0, 2), "predict_s": round(t2 - t1, 3),
                         "weight": fit.booster.weight if fit.booster is not None else 0.0,
                         "auroc": round(m["auroc"], 4), "macro_f1": round(m["macro_f1"], 4)}
            print(json.dumps({root.name: {name: row[name]}}), file=sys.stderr)
        row["trees_cost_s"] = round(row["with_trees"]["fit_s"] - row["network_alone"]["fit_s"], 2)
        out["runs"].append(row)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(text + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    main()
