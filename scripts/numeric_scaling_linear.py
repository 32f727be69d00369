"""Standardised or rank-gauss numeric columns? The experiment behind ``model.numeric_scaling``.

On each (repeat, fold) of a fold plan (``evaluate_cohorts.py``'s ``folds.csv``), encodes the
clinical columns every model sees twice, fitted on the training patients only
(:class:`graphonc.model.tabular.TabularFeatures` with ``numeric_scaling`` "standard" and
"rank_gauss"), and fits graphonc's linear baselines on each: penalised Cox (lifelines, L2 0.1)
for survival and, where the cohort has a label, balanced logistic regression (C 0.1). Trees are
left out: a monotone rescaling does not change them. Prints JSON: per scaling and task the mean
and sd of Harrell's C / AUROC (one-vs-rest for more than two classes) and the paired
rank-gauss-minus-standard differences.

    python scripts/numeric_scaling_linear.py --run RUN --folds-file DIR/folds.csv
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sksurv.metrics import concordance_index_censored  # noqa: E402

from graphonc.graph.run import GraphRun  # noqa: E402
from graphonc.model.baselines import CoxPHBaseline, LogisticBaseline  # noqa: E402
from graphonc.model.folds import read_plan, splits  # noqa: E402
from graphonc.model.inputs import model_inputs  # noqa: E402
from graphonc.model.tabular import (TabularFeatures, encode_labels, has_label, has_survival,  # noqa: E402
                                    label_classes, patient_rows, survival_target)

SCALINGS = ("standard", "rank_gauss")


def _kept(ids: list[str], mask) -> list[str]:
    return [i for i, m in zip(ids, mask) if m]


def score_split(run: GraphRun, train: list[str], test: list[str], scaling: str) -> dict[str, float]:
    """Harrell's C of penalised Cox and (with a label) AUROC of logistic regression on one split."""
    spec = replace(model_inputs(run), numeric_scaling=scaling)
    tf = TabularFeatures(mutations=False, inputs=spec).fit(run, train)
    d_tr, d_te = patient_rows(run, train), patient_rows(run, test)
    out = {}
    s_tr, s_te = has_survival(d_tr), has_survival(d_te)
    y_tr, y_te = survival_target(d_tr[s_tr]), survival_target(d_te[s_te])
    risk = CoxPHBaseline(0.1).fit(tf.transform(run, _kept(train, s_tr)), y_tr).predict(
        tf.transform(run, _kept(test, s_te)))
    out["cox_harrell_c"] = concordance_index_censored(y_te["event"], y_te["time"], risk)[0]
    if "label" in d_tr.columns:
        l_tr, l_te = has_label(d_tr), has_label(d_te)
        classes = label_classes(d_tr[l_tr])
        c_tr, c_te = encode_labels(d_tr[l_tr], classes), encode_labels(d_te[l_te], classes)
        proba = LogisticBaseline(C=0.1, n_classes=len(classes)).fit(
            tf.transform(run, _kept(train, l_tr)), c_tr).predict_proba(tf.transform(run, _kept(test, l_te)))
        out["logreg_auroc"] = (roc_auc_score(c_te, proba[:, 1]) if len(classes) == 2 else
                               roc_auc_score(c_te, proba, multi_class="ovr", labels=list(range(len(classes)))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--folds-file", type=Path, required=True)
    args = ap.parse_args()
    run = GraphRun.open(args.run)
    rows = []
    for split in splits(read_plan(args.folds_file, run)):
        for scaling in SCALINGS:
            for metric, value in score_split(run, split.train, split.test, scaling).items():
                rows.append({"repeat": split.repeat, "fold": split.fold, "scaling": scaling,
                             "metric": metric, "value": value})
        print(f"repeat {split.repeat} fold {split.fold}: " + ", ".join(
            f"{r['scaling']} {r['metric']} {r['value']:.3f}" for r in rows[-4:]), file=sys.stderr, flush=True)
    df = pd.DataFrame(rows)
    result = {"run": str(args.run), "splits": int(df.groupby(["repeat", "fold"]).ngroups)}
    for metric, grp in df.groupby("metric"):
        wide = grp.pivot_table(index=["repeat", "fold"], columns="scaling", values="value")
        diff = wide["rank_gauss"] - wide["standard"]
        result[metric] = {**{s: {"mean": round(float(wide[s].mean()), 4), "sd": round(float(wide[s].std()), 4)}
                             for s in SCALINGS},
                          "rank_gauss_minus_standard": {"mean": round(float(diff.mean()), 4),
                                                        "splits_better": int((diff > 0).sum())}}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
