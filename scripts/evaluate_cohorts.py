"""The evaluation protocol of docs/evaluation.md on one cohort, split by split, resumable.

For each (repeat, fold) of a fold plan it runs ``evaluate``'s models (GNN, MLP, baselines) and
``evaluate-similarity``'s methods — the similarity scores of the GNN and MLP come from the very
fold models just trained — and appends the rows to ``<out>/per_fold.csv`` and
``<out>/similarity.csv``, so a long run that is stopped still leaves every finished split.
``--summarise`` prints (JSON) the mean ± sd tables and the comparisons with the best baseline.

    python scripts/evaluate_cohorts.py --run RUN --out DIR [--folds 5 --repeats 3] [--epochs 80]
    python scripts/evaluate_cohorts.py --out DIR --summarise
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402
import pydantic  # noqa: E402
import yaml  # noqa: E402
import torch  # noqa: E402

from graphonc.graph.run import GraphRun  # noqa: E402
from graphonc.model.evaluate import compare_to_best_baseline, evaluate, summary_table  # noqa: E402
from graphonc.model.folds import make_plan, read_plan, splits, write_plan  # noqa: E402
from graphonc.model.protocol import cross_validate  # noqa: E402
from graphonc.model.stages import model_config  # noqa: E402
from graphonc.search import quality as Q  # noqa: E402


def summarise(out: Path) -> dict:
    res = {}
    for name, metrics in (("per_fold", None), ("similarity", Q.METRICS)):
        f = out / f"{name}.csv"
        if not f.exists():
            continue
        df = pd.read_csv(f)
        table = summary_table(df, metrics) if metrics else summary_table(df)
        cmp = compare_to_best_baseline(df, metrics) if metrics else compare_to_best_baseline(df)
        res[name] = {"splits": int(df.groupby(["repeat", "fold"]).ngroups), "summary": table.to_dict("index"),
                     "comparison": cmp.round(4).to_dict("records")}
    return res


def markdown(out: Path) -> str:
    """The summary and comparison tables of one cohort's protocol run, as Markdown."""
    from graphonc.model.stages import comparison_markdown, markdown_table

    parts = []
    for name, metrics in (("per_fold", None), ("similarity", Q.METRICS)):
        f = out / f"{name}.csv"
        if not f.exists():
            continue
        df = pd.read_csv(f)
        n = df.groupby(["repeat", "fold"]).ngroups
        keys = metrics or ("harrell_c", "uno_c", "ibs", "macro_f1", "balanced_accuracy", "auroc")
        parts.append(f"*{'evaluate' if metrics is None else 'evaluate-similarity'}: {n} split(s)*\n")
        parts.append(markdown_table(summary_table(df, keys)))
        cmp = compare_to_best_baseline(df, metrics) if metrics else compare_to_best_baseline(df)
        parts.append(comparison_markdown(cmp))
    return "\n".join(parts)


def model_options(items: list[str]) -> dict:
    """``--model-option KEY=VALUE`` items as a dict of model: overrides (values read as YAML)."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--model-option {item!r}: expected KEY=VALUE, e.g. dropout=0.5")
        options[key.strip()] = yaml.safe_load(value)
    return options


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--folds-file", type=Path)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--patience", type=int)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--threads", type=int, help="torch threads (default: the CPUs this process may use, at most 2)")
    ap.add_argument("--baselines-from", type=Path,
                    help="an earlier output folder of this script on the same fold plan: its baseline rows are "
                         "reused and only the GNN and the MLP are trained (a changed model, unchanged baselines)")
    ap.add_argument("--tune", action="store_true",
                    help="choose the GNN's (and MLP's) hyper-parameters by nested CV inside every training fold")
    ap.add_argument("--tune-budget", type=float, help="seconds per tuning (default: the config's tune_budget_s)")
    ap.add_argument("--no-mlp", action="store_true", help="skip the MLP ablation")
    ap.add_argument("--with-expression-derived", action="store_true",
                    help="the sensitivity row: every model also sees the config's clinical.expression_derived columns")
    ap.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                    help="override one key of the run's model: section (YAML value), e.g. "
                         "member_validation=shared, dropout=0.5, aggr=attention; repeatable")
    ap.add_argument("--summarise", action="store_true")
    ap.add_argument("--markdown", action="store_true", help="with --summarise: Markdown tables instead of JSON")
    args = ap.parse_args()
    if args.summarise:
        print(markdown(args.out) if args.markdown else json.dumps(summarise(args.out), indent=1, default=str))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from graphonc.threads import set_threads

    set_threads(args.threads)
    run = GraphRun.open(args.run)
    flags = {"epochs": args.epochs, "patience": args.patience, "tune_budget_s": args.tune_budget,
             "with_expression_derived": args.with_expression_derived or None}
    options = {**model_options(args.model_option), **{k: v for k, v in flags.items() if v is not None}}
    try:
        cfg = model_config(run, None, **options)
    except pydantic.ValidationError as e:
        err = e.errors()[0]
        raise SystemExit(f"--model-option {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    args.out.mkdir(parents=True, exist_ok=True)
    plan = read_plan(args.folds_file, run) if args.folds_file else make_plan(run, args.folds, args.repeats, cfg.seed)
    write_plan(plan, args.out / "folds.csv")
    stored_baselines = None
    if args.baselines_from:
        if not pd.read_csv(args.baselines_from / "folds.csv").equals(pd.read_csv(args.out / "folds.csv")):
            raise SystemExit(f"{args.baselines_from}/folds.csv is another fold plan: its baseline rows do not apply")
        stored_baselines = {}
        for name in ("per_fold", "similarity"):
            df = pd.read_csv(args.baselines_from / f"{name}.csv")
            stored_baselines[name] = df[~df["model"].isin(["gnn", "mlp"])]
    done = set()
    if (args.out / "per_fold.csv").exists():
        done = set(map(tuple, pd.read_csv(args.out / "per_fold.csv")[["repeat", "fold"]].drop_duplicates().values))
    rsf = {"rsf": {"n_estimators": 100, "n_jobs": 1}}
    for split in splits(plan):
        if (split.repeat, split.fold) in done:
            continue
        stored = []
        rows = evaluate(run, [split], cfg, baseline_params=rsf, baselines=stored_baselines is None,
                        tune=args.tune, mlp=not args.no_mlp,
                        keep=lambda n, s, p: stored.append(pd.DataFrame(
                            {"model": n, "repeat": s.repeat, "fold": s.fold, "id": p.ids,
                             "embedding": list(p.embedding)})) if n in ("gnn", "mlp") else None)
        emb = pd.concat(stored, ignore_index=True)
        methods = {m: (lambda m=m: Q.StoredEmbeddings(m, emb[emb["model"] == m]).for_split(split))
                   for m in ("gnn", "mlp") if m in set(emb["model"])}
        if stored_baselines is None:
            methods |= {"knn_features": lambda: Q.FeatureSpace(cfg), "jaccard_genes": Q.GeneSets,
                        "snf": lambda: Q.SNF(cfg),
                        "random": lambda: Q.RandomNeighbours(cfg.seed + 100 * split.repeat + split.fold)}
        sim = cross_validate(run, [split], methods, (Q.NeighbourScorer(run, args.k),))
        if stored_baselines is not None:
            this = {name: df[(df["repeat"] == split.repeat) & (df["fold"] == split.fold)]
                    for name, df in stored_baselines.items()}
            rows, sim = pd.concat([rows, this["per_fold"]], ignore_index=True), \
                pd.concat([sim, this["similarity"]], ignore_index=True)
        for df, name in ((rows, "per_fold"), (sim, "similarity")):
            f = args.out / f"{name}.csv"
            df.to_csv(f, mode="a", header=not f.exists(), index=False)
    print(json.dumps(summarise(args.out), indent=1, default=str))


if __name__ == "__main__":
    main()
