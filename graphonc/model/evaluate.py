"""Leakage-free (repeated) k-fold evaluation of the GNN, the MLP (same model, no graph) and the baselines.

Folds are patient-level and stratified by the diagnosis label (:mod:`graphonc.model.folds`).
Every model goes through the one CV loop, :func:`graphonc.model.protocol.cross_validate`: in
each fold it is fitted on the training patients only (the GNN on a graph in which only they
send messages; test patients are attached receive-only) and every statistic a model sees
(feature scaling, categories, gene and mutation vocabularies, Breslow baseline) comes from the
training patients. All models share the same folds.

Comparisons (:func:`compare_to_best_baseline`): for each task metric, the best baseline is the
one with the highest mean; each other model's per-fold paired difference to it gets a 95%
interval from the corrected resampled t-test of Nadeau & Bengio (2003): the folds of repeated
CV share training patients, so their differences are correlated and the plain t-interval is
too narrow; the correction inflates the variance from ``s²/J`` to ``s² (1/J + n_test/n_train)``.
"""
from __future__ import annotations

import logging
import math
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from graphonc import layout as L
from graphonc.errors import GraphoncError
from graphonc.graph import schema as S
from graphonc.graph.run import GraphRun
from graphonc.model.folds import Split, eligible_patients, make_plan, splits
from graphonc.model.metrics import (DIAGNOSIS_KEYS, SURVIVAL_KEYS, default_eval_times, diagnosis_metrics, summarise,
                                    survival_metrics)
from graphonc.model_config import ModelConfig

log = logging.getLogger("graphonc")

Folds = list[tuple[list[str], list[str]]]

__all__ = ["eligible_patients", "make_folds", "score_model", "evaluate", "evaluate_gnn", "summary_table",
           "compare_to_best_baseline", "COMPARED_METRICS"]

#: Metrics compared against the best baseline (all: higher is better).
COMPARED_METRICS = ("harrell_c", "uno_c", "macro_f1", "balanced_accuracy", "auroc", "precision_at_k", "c_index")
#: Models that are not baselines (compared against the best baseline).
OWN_MODELS = ("gnn", "mlp")


def make_folds(run: GraphRun, k: int = 5, seed: int = 0) -> Folds:
    """Patient-level stratified k-fold split, as (train ids, test ids) pairs (one repeat)."""
    return [(s.train, s.test) for s in splits(make_plan(run, k, 1, seed))]


def score_model(run: GraphRun, train_ids: Sequence[str], test_ids: Sequence[str], proba: np.ndarray,
                risk: np.ndarray, classes: list[str], index: Callable[[Sequence[str]], np.ndarray],
                survival: bool = True, diagnosis: bool = True, survival_function=None) -> dict:
    """Metrics of one fold from per-patient predictions (rows addressed through ``index``).

    ``survival_function(ids, times)`` → (n, len(times)): a model's own survival curves (e.g. a
    random survival forest's) for the Brier score; without it the risk goes through the
    training fold's Breslow baseline.
    """
    p = run.nodes(S.PATIENT).set_index(S.ID)
    tr, te = p.loc[list(train_ids)], p.loc[list(test_ids)]
    row: dict = {}
    cols = run.patient_columns()
    if cols.get("survival") and survival:
        mtr = tr[L.OS_MONTHS].notna().to_numpy() & tr[L.OS_EVENT].notna().to_numpy()
        mte = te[L.OS_MONTHS].notna().to_numpy() & te[L.OS_EVENT].notna().to_numpy()
        tr_ids, te_ids = np.asarray(train_ids, dtype=object)[mtr], np.asarray(test_ids, dtype=object)[mte]
        t_tr, t_te = tr[L.OS_MONTHS].to_numpy()[mtr], te[L.OS_MONTHS].to_numpy()[mte]
        extra = {}
        if survival_function is not None:
            times = default_eval_times(t_tr, t_te)
            if times.size:
                extra = {"test_surv": survival_function(te_ids, times), "eval_times": times}
        row |= survival_metrics(t_tr, tr[L.OS_EVENT].to_numpy()[mtr], t_te, te[L.OS_EVENT].to_numpy()[mte],
                                risk[index(te_ids)], train_risk=risk[index(tr_ids)], **extra)
    if cols.get("label") and diagnosis and classes:
        code = {c: i for i, c in enumerate(classes)}
        y = np.array([code.get(v, -1) for v in te[L.LABEL]])
        ok = y >= 0
        row |= diagnosis_metrics(y[ok], proba[index(np.asarray(test_ids, dtype=object)[ok])], classes)
    return row


def evaluate(run: GraphRun, folds: Folds | Sequence[Split], cfg: ModelConfig, *, baselines: bool = True,
             mlp: bool = True, tune: bool = False, progress: bool = False,
             baseline_params: dict[str, dict] | None = None, keep=None) -> pd.DataFrame:
    """One row per (model, repeat, fold): the GNN, the MLP ablation and the baselines on identical folds."""
    from graphonc.model.protocol import cross_validate, prediction_scorer, standard_models

    split_list = _as_splits(folds)
    models = standard_models(run, cfg, baselines=baselines, mlp=mlp, tune=tune, baseline_params=baseline_params)
    return cross_validate(run, split_list, models, (prediction_scorer,), progress=progress, keep=keep)


def evaluate_gnn(run: GraphRun, folds: Folds, cfg: ModelConfig, name: str = "gnn",
                 progress: bool = False) -> pd.DataFrame:
    """The GNN alone (``use_graph=False``: the MLP) through the same CV loop."""
    from graphonc.model.protocol import GNNModel, cross_validate, prediction_scorer

    return cross_validate(run, _as_splits(folds), {name: lambda: GNNModel(cfg, name)}, (prediction_scorer,),
                          progress=progress)


def _as_splits(folds) -> list[Split]:
    return [f if isinstance(f, Split) else Split(0, i, list(f[0]), list(f[1])) for i, f in enumerate(folds)]


def summary_table(per_fold: pd.DataFrame, keys: Sequence[str] = (*SURVIVAL_KEYS, *DIAGNOSIS_KEYS)) -> pd.DataFrame:
    """mean ± sd over folds (× repeats) per model and metric ``keys`` (rows: models; columns: metrics)."""
    out = {}
    for model, grp in per_fold.groupby("model", sort=False):
        st = summarise(grp.drop(columns=["model"]).to_dict("records"))
        out[model] = {k: f"{st[k]['mean']:.3f} ± {st[k]['sd']:.3f}" for k in keys
                      if k in st and not np.isnan(st[k]["mean"])}
    return pd.DataFrame(out).T


def paired_interval(diff: np.ndarray, test_train_ratio: float, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Nadeau–Bengio corrected resampled t-interval of paired fold differences."""
    d = np.asarray(diff, dtype=float)
    d = d[~np.isnan(d)]
    j = d.size
    if j < 2:
        return (float(d.mean()) if j else math.nan), math.nan, math.nan
    var = d.var(ddof=1) * (1.0 / j + test_train_ratio)
    half = stats.t.ppf(0.5 + level / 2, j - 1) * math.sqrt(var)
    m = float(d.mean())
    return m, m - half, m + half


def compare_to_best_baseline(per_fold: pd.DataFrame, metrics: Sequence[str] = COMPARED_METRICS,
                             own: Sequence[str] = OWN_MODELS) -> pd.DataFrame:
    """Each own model vs the best baseline per metric (see module doc).

    Returns one row per (metric, model): ``best_baseline, model_mean, baseline_mean, diff,
    low, high, n_pairs, verdict`` (``better`` / ``worse`` when the 95% interval excludes 0,
    ``tie`` when it holds 0, ``n/a`` with fewer than two pairs).
    """
    rows = []
    key = ["repeat", "fold"] if "repeat" in per_fold.columns else ["fold"]
    for metric in metrics:
        if metric not in per_fold.columns:
            continue
        have = per_fold[per_fold[metric].notna()]
        means = have.groupby("model")[metric].mean()
        base = means[[m for m in means.index if m not in own]]
        if base.empty:
            continue
        best = base.idxmax()
        b = have[have["model"] == best].set_index(key)[metric]
        for m in own:
            if m not in means.index:
                continue
            a = have[have["model"] == m].set_index(key)[metric]
            both = a.index.intersection(b.index)
            if len(both) == 0:
                continue
            sub = have[have["model"] == m].set_index(key).loc[both]
            ratio = float((sub["n_test"] / sub["n_train"]).mean()) if {"n_test", "n_train"} <= set(sub.columns) else 0.25
            mean, lo, hi = paired_interval((a.loc[both] - b.loc[both]).to_numpy(), ratio)
            verdict = ("n/a" if math.isnan(lo) else "better" if lo > 0 else "worse" if hi < 0 else "tie")
            rows.append({"metric": metric, "model": m, "best_baseline": best, "model_mean": float(a.mean()),
                         "baseline_mean": float(b.mean()), "diff": mean, "low": lo, "high": hi,
                         "n_pairs": int(len(both)), "verdict": verdict})
    return pd.DataFrame(rows)
