"""The evaluation protocol of docs/evaluation.md on one cohort, split by split, resumable.

For each (repeat, fold) of a fold plan it runs ``evaluate``'s models (GNN, MLP, baselines) and
``evaluate-similarity``'s methods — the similarity scores of the GNN and MLP come from the very
fold models just trained — and appends the rows to ``<out>/per_fold.csv`` and
``<out>/similarity.csv``, so a long run that is stopped still leaves every finished split.
``--summarise`` prints (JSON) the mean ± sd tables and the comparisons with the best baseline.

``--reuse DIR --fit NAMES`` trains only the named models and takes every other model's rows
from an earlier output on the same fold plan (a changed GNN against unchanged baselines, or a
new baseline against unchanged models); ``--baselines-from DIR`` is ``--reuse DIR --fit gnn,mlp``.

    python scripts/evaluate_cohorts.py --run RUN --out DIR [--folds 5 --repeats 3] [--epochs 80]
    python scripts/evaluate_cohorts.py --run RUN --out NEW --folds-file OLD/folds.csv --reuse OLD --fit coxph_splines
    python scripts/evaluate_cohorts.py --out DIR --summarise
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402
import pydantic  # noqa: E402
import yaml  # noqa: E402
import torch  # noqa: E402

from graphonc.graph.run import GraphRun  # noqa: E402
from graphonc.model.evaluate import compare_to_best_baseline, summary_table  # noqa: E402
from graphonc.model.folds import make_plan, read_plan, splits, write_plan  # noqa: E402
from graphonc.model.protocol import cross_validate, prediction_scorer, standard_models  # noqa: E402
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


#: The similarity baselines of ``evaluate-similarity`` (the GNN's and MLP's come from their fold models).
SIMILARITY_BASELINES = ("knn_features", "jaccard_genes", "snf", "random")


def models_to_fit(fit: str | None, known: list[str]) -> set[str]:
    """``--fit`` (comma-separated model names) as a set; every known model when not given."""
    if fit is None:
        return set(known)
    names = {n.strip() for n in fit.split(",") if n.strip()}
    unknown = sorted(names - set(known))
    if unknown or not names:
        raise SystemExit(f"--fit {fit!r}: unknown model(s) {unknown or '(none given)'}; expected some of "
                         f"{', '.join(known)}")
    return names


def append_rows(f: Path, df: pd.DataFrame) -> None:
    """Add ``df``'s rows to the CSV ``f`` (created if absent); columns are aligned by name, so a
    split whose models differ from the earlier splits' never lands under the wrong header."""
    if f.exists():
        df = pd.concat([pd.read_csv(f), df], ignore_index=True)
    tmp = f.with_suffix(".csv.tmp")
    df.to_csv(tmp, index=False)
    tmp.replace(f)  # a stopped run leaves the old file or the new one, never half of one


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--folds-file", type=Path)
    ap.add_argument("--plan-seed", type=int,
                    help="seed of the fold plan (default: the run's config seed); another seed is an untouched "
                         "plan to confirm results on (docs/evaluation.md, session 12)")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--patience", type=int)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--threads", type=int, help="torch threads (default: the CPUs this process may use, at most 2)")
    ap.add_argument("--reuse", type=Path,
                    help="an earlier output folder of this script on the same fold plan: the rows of every model "
                         "not named by --fit are taken from it")
    ap.add_argument("--fit", metavar="NAMES",
                    help="comma-separated models to train (default: all: gnn, mlp, the baselines and the "
                         "similarity methods), e.g. --fit coxph_splines with --reuse")
    ap.add_argument("--baselines-from", type=Path,
                    help="shorthand for --reuse DIR --fit gnn,mlp: a changed model against the stored baseline "
                         "rows of the same fold plan")
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
    if args.baselines_from:
        if args.reuse or args.fit:
            raise SystemExit("--baselines-from is --reuse DIR --fit gnn,mlp: give either it or --reuse/--fit")
        args.reuse, args.fit = args.baselines_from, "gnn" if args.no_mlp else "gnn,mlp"
    run = GraphRun.open(args.run)
    flags = {"epochs": args.epochs, "patience": args.patience, "tune_budget_s": args.tune_budget,
             "with_expression_derived": args.with_expression_derived or None}
    options = {**model_options(args.model_option), **{k: v for k, v in flags.items() if v is not None}}
    try:
        cfg = model_config(run, None, **options)
    except pydantic.ValidationError as e:
        err = e.errors()[0]
        raise SystemExit(f"--model-option {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    rsf = {"rsf": {"n_estimators": 100, "n_jobs": 1}}
    own = standard_models(run, cfg, mlp=not args.no_mlp, tune=args.tune, baseline_params=rsf)
    fit = models_to_fit(args.fit, [*own, *SIMILARITY_BASELINES])
    if args.reuse and args.fit is None:
        raise SystemExit("--reuse needs --fit NAMES: the models to train (every other model's rows are reused)")
    if fit != set(own) | set(SIMILARITY_BASELINES) and not args.reuse:
        raise SystemExit("--fit without --reuse would leave the other models' rows out: give --reuse DIR")
    if args.folds_file and args.plan_seed is not None:
        raise SystemExit("--plan-seed makes a plan and --folds-file reads one: give one of them")
    plan = (read_plan(args.folds_file, run) if args.folds_file else
            make_plan(run, args.folds, args.repeats, cfg.seed if args.plan_seed is None else args.plan_seed))
    stored = None
    if args.reuse:  # checked before anything is written
        with tempfile.TemporaryDirectory() as tmp:
            write_plan(plan, Path(tmp) / "folds.csv")
            if not pd.read_csv(args.reuse / "folds.csv").equals(pd.read_csv(Path(tmp) / "folds.csv")):
                raise SystemExit(f"{args.reuse}/folds.csv is another fold plan: its rows do not apply")
        stored = {name: (df := pd.read_csv(args.reuse / f"{name}.csv"))[~df["model"].isin(fit)]
                  for name in ("per_fold", "similarity")}
        missing = sorted((set(own) - fit - set(stored["per_fold"]["model"]))
                         | (set(SIMILARITY_BASELINES) - fit - set(stored["similarity"]["model"])))
        if missing:
            raise SystemExit(f"{args.reuse} has no rows of {', '.join(missing)}: add them to --fit")
    args.out.mkdir(parents=True, exist_ok=True)
    write_plan(plan, args.out / "folds.csv")
    done = set()
    if (args.out / "per_fold.csv").exists():
        done = set(map(tuple, pd.read_csv(args.out / "per_fold.csv")[["repeat", "fold"]].drop_duplicates().values))
    for split in splits(plan):
        if (split.repeat, split.fold) in done:
            continue
        kept = []
        rows = cross_validate(run, [split], {n: make for n, make in own.items() if n in fit}, (prediction_scorer,),
                              keep=lambda n, s, p: kept.append(pd.DataFrame(
                                  {"model": n, "repeat": s.repeat, "fold": s.fold, "id": p.ids,
                                   "embedding": list(p.embedding)})) if n in ("gnn", "mlp") else None)
        emb = pd.concat(kept, ignore_index=True) if kept else pd.DataFrame(columns=["model"])
        methods = {m: (lambda m=m: Q.StoredEmbeddings(m, emb[emb["model"] == m]).for_split(split))
                   for m in ("gnn", "mlp") if m in set(emb["model"])}
        methods |= {m: make for m, make in {
            "knn_features": lambda: Q.FeatureSpace(cfg), "jaccard_genes": Q.GeneSets, "snf": lambda: Q.SNF(cfg),
            "random": lambda: Q.RandomNeighbours(cfg.seed + 100 * split.repeat + split.fold)}.items() if m in fit}
        sim = cross_validate(run, [split], methods, (Q.NeighbourScorer(run, args.k),))
        if stored is not None:
            this = {name: df[(df["repeat"] == split.repeat) & (df["fold"] == split.fold)]
                    for name, df in stored.items()}
            rows = pd.concat([rows, this["per_fold"]], ignore_index=True)
            sim = pd.concat([sim, this["similarity"]], ignore_index=True)
        for df, name in ((rows, "per_fold"), (sim, "similarity")):
            append_rows(args.out / f"{name}.csv", df)
    print(json.dumps(summarise(args.out), indent=1, default=str))


if __name__ == "__main__":
    main()
