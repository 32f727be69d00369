"""Leakage-free k-fold evaluation of the GNN, the MLP (same model, no graph) and the baselines.

Folds are patient-level and stratified by the diagnosis label. In each fold the GNN is
trained on a graph in which only the fold's training patients send messages; the test
patients are attached receive-only (inductive) and only then embedded and scored. Every
statistic a model sees (feature scaling, categories, mutation vocabulary, Breslow baseline)
comes from the training patients. All models share the same folds.
"""
from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from graphonc import layout as L
from graphonc.errors import GraphoncError
from graphonc.graph import schema as S
from graphonc.graph.run import GraphRun
from graphonc.model.baselines import run_baselines
from graphonc.model.gnn import ModelConfig
from graphonc.model.metrics import DIAGNOSIS_KEYS, SURVIVAL_KEYS, diagnosis_metrics, summarise, survival_metrics
from graphonc.model.train import fit_model, predict

log = logging.getLogger("graphonc")

Folds = list[tuple[list[str], list[str]]]


def eligible_patients(run: GraphRun) -> pd.DataFrame:
    """Patients with every configured target (label and/or survival)."""
    p = run.nodes(S.PATIENT)
    cols = run.patient_columns()
    ok = pd.Series(True, index=p.index)
    if cols.get("label"):
        ok &= p[L.LABEL].notna()
    if cols.get("survival"):
        ok &= p[L.OS_MONTHS].notna() & p[L.OS_EVENT].notna()
    if not cols.get("label") and not cols.get("survival"):
        raise GraphoncError("the run has neither a label nor survival: nothing to evaluate.")
    return p[ok].sort_values(S.ID).reset_index(drop=True)


def make_folds(run: GraphRun, k: int = 5, seed: int = 0) -> Folds:
    """Patient-level stratified k-fold split (by label; by event status when there is none)."""
    p = eligible_patients(run)
    strata = p[L.LABEL].astype(str) if run.patient_columns().get("label") else p[L.OS_EVENT].astype(str)
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    ids = p[S.ID].to_numpy()
    return [(sorted(ids[tr]), sorted(ids[te])) for tr, te in skf.split(ids, strata)]


def score_model(run: GraphRun, train_ids: Sequence[str], test_ids: Sequence[str], proba: np.ndarray,
                risk: np.ndarray, classes: list[str], index: Callable[[Sequence[str]], np.ndarray]) -> dict:
    """Metrics of one fold from per-patient predictions (rows addressed through ``index``)."""
    p = run.nodes(S.PATIENT).set_index(S.ID)
    tr, te = p.loc[list(train_ids)], p.loc[list(test_ids)]
    row: dict = {}
    cols = run.patient_columns()
    if cols.get("survival"):
        row |= survival_metrics(tr[L.OS_MONTHS].to_numpy(), tr[L.OS_EVENT].to_numpy(), te[L.OS_MONTHS].to_numpy(),
                                te[L.OS_EVENT].to_numpy(), risk[index(test_ids)],
                                train_risk=risk[index(train_ids)])
    if cols.get("label"):
        code = {c: i for i, c in enumerate(classes)}
        y = np.array([code.get(v, -1) for v in te[L.LABEL]])
        row |= diagnosis_metrics(y, proba[index(test_ids)], classes)
    return row


def evaluate_gnn(run: GraphRun, folds: Folds, cfg: ModelConfig, name: str = "gnn",
                 progress: bool = False) -> pd.DataFrame:
    rows = []
    for i, (train_ids, test_ids) in enumerate(folds):
        fit = fit_model(run, train_ids, cfg, progress=progress)
        _, proba, risk = predict(fit.model, fit.graph)
        row = score_model(run, train_ids, test_ids, proba, risk, fit.graph.label_classes,
                          fit.graph.patient_index)
        rows.append({"model": name, "fold": i, "best_epoch": fit.best_epoch, **row})
        log.info("%s fold %d: %s", name, i, {k: round(v, 3) for k, v in row.items() if isinstance(v, float)})
    return pd.DataFrame(rows)


def evaluate(run: GraphRun, folds: Folds, cfg: ModelConfig, *, baselines: bool = True, mlp: bool = True,
             progress: bool = False) -> pd.DataFrame:
    """One row per (model, fold): the GNN, the MLP ablation and the baselines on identical folds."""
    frames = [evaluate_gnn(run, folds, cfg, "gnn", progress)]
    if mlp:
        frames.append(evaluate_gnn(run, folds, cfg.model_copy(update={"use_graph": False}), "mlp", progress))
    if baselines:
        frames.append(run_baselines(run, folds, seed=cfg.seed, progress=progress))
    return pd.concat(frames, ignore_index=True)


def summary_table(per_fold: pd.DataFrame, keys: Sequence[str] = (*SURVIVAL_KEYS, *DIAGNOSIS_KEYS)) -> pd.DataFrame:
    """mean ± sd over folds per model and metric ``keys`` (rows: models; columns: metrics)."""
    out = {}
    for model, grp in per_fold.groupby("model", sort=False):
        stats = summarise(grp.drop(columns=["model"]).to_dict("records"))
        out[model] = {k: f"{stats[k]['mean']:.3f} ± {stats[k]['sd']:.3f}" for k in keys
                      if k in stats and not np.isnan(stats[k]["mean"])}
    return pd.DataFrame(out).T
