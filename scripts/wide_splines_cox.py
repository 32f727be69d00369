"""Does a bend per numeric column help a linear risk? The experiment behind ``model.wide_knots``.

On each (repeat, fold) of a fold plan (``evaluate_cohorts.py``'s ``folds.csv``), fits graphonc's
penalised Cox baseline (lifelines, L2 0.1) on the training patients' clinical features
(:class:`graphonc.model.tabular.TabularFeatures`, fitted on training patients only), once as
they are and once with the wide part's hinges max(z - knot, 0) of every standardised numeric
column (the ``clinical+splines`` feature set: the ``coxph_splines`` baseline), and a random
survival forest on the same columns for reference; prints JSON: Harrell's C per model (mean, sd) and the
hinged-minus-straight paired differences.

    python scripts/wide_splines_cox.py --run RUN --folds-file DIR/folds.csv [--knots -1,-0.5,0,0.5,1]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402
from sksurv.metrics import concordance_index_censored  # noqa: E402

from graphonc.graph.run import GraphRun  # noqa: E402
from graphonc.model.baselines import CoxPHBaseline, RSFBaseline  # noqa: E402
from graphonc.model.folds import read_plan, splits  # noqa: E402
from graphonc.model.tabular import TabularFeatures, has_survival, patient_rows, survival_target  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--folds-file", type=Path, required=True)
    ap.add_argument("--knots", default="-1,-0.5,0,0.5,1")
    args = ap.parse_args()
    knots = [float(k) for k in args.knots.split(",")]
    run = GraphRun.open(args.run)
    rows = []
    for split in splits(read_plan(args.folds_file, run)):
        ids = {}
        for part, pids in (("train", split.train), ("test", split.test)):
            df = patient_rows(run, pids)
            ok = has_survival(df)
            ids[part] = ([i for i, m in zip(pids, ok) if m], survival_target(df[ok]))
        (tr, y_tr), (te, y_te) = ids["train"], ids["test"]
        straight = TabularFeatures.for_feature_set("clinical").fit(run, tr)
        hinged = TabularFeatures.for_feature_set("clinical+splines", knots=knots).fit(run, tr)
        designs = {"cox": (CoxPHBaseline(0.1), straight), "cox_hinges": (CoxPHBaseline(0.1), hinged),
                   "rsf": (RSFBaseline(100, n_jobs=1, random_state=0), straight)}
        for name, (model, tf) in designs.items():
            risk = model.fit(tf.transform(run, tr), y_tr).predict(tf.transform(run, te))
            rows.append({"repeat": split.repeat, "fold": split.fold, "model": name,
                         "harrell_c": concordance_index_censored(y_te["event"], y_te["time"], risk)[0]})
        print(f"repeat {split.repeat} fold {split.fold}: " + ", ".join(
            f"{r['model']} {r['harrell_c']:.3f}" for r in rows[-3:]), file=sys.stderr, flush=True)
    df = pd.DataFrame(rows)
    wide = df.pivot_table(index=["repeat", "fold"], columns="model", values="harrell_c")
    diff = wide["cox_hinges"] - wide["cox"]
    print(json.dumps({"run": str(args.run), "splits": len(wide), "knots": knots,
                      "harrell_c": {m: {"mean": round(float(wide[m].mean()), 4), "sd": round(float(wide[m].std()), 4)}
                                    for m in wide.columns},
                      "hinges_minus_straight": {"mean": round(float(diff.mean()), 4),
                                                "splits_better": int((diff > 0).sum())}}, indent=1))


if __name__ == "__main__":
    main()
