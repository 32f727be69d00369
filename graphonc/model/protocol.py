"""One model protocol and one cross-validation loop for ``evaluate`` and ``evaluate-similarity``.

Every model — the GNN, its MLP ablation, each baseline, each similarity baseline — is a
:class:`PatientModel`: ``fit(run, train_ids)`` on a fold's training patients, then
``predict(run, ids)`` → :class:`Prediction` (risk (n,), class probabilities (n, K) and an
embedding (n, D) for any patients; a model fills what it can). Baselines wrap scikit-learn /
scikit-survival estimators (``BaseEstimator``: ``get_params``/``clone`` work) in
:class:`TabularModel`.

:func:`cross_validate` is the only CV loop: for each (repeat, fold) of a fold plan it fits a
fresh copy of every model on the training ids only (inputs fitted by
:func:`graphonc.model.inputs.fit_inputs`, which sees nothing else), predicts every patient
of the fold and hands the predictions to scorers — :func:`prediction_scorer` (``evaluate``:
C-index, IBS, macro-F1, …) and :func:`graphonc.search.quality.neighbour_scorer`
(``evaluate-similarity``: precision@k, C-index of the neighbour-based risk). Every model sees
the same folds.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np
import pandas as pd
from sklearn.base import clone

from graphonc import layout as L
from graphonc.graph import schema as S
from graphonc.graph.run import GraphRun
from graphonc.model.baselines import DIAGNOSIS, SURVIVAL
from graphonc.model.boosted import MIN_PATIENTS
from graphonc.model.folds import Split
from graphonc.model_config import ModelConfig
from graphonc.progress import make_progress

log = logging.getLogger("graphonc")



@dataclass
class Prediction:
    """Per-patient outputs, rows in the order of ``ids``; None where a model has no such output."""

    ids: list[str]
    risk: np.ndarray | None = None        # (n,) higher = shorter survival
    proba: np.ndarray | None = None       # (n, K) columns follow ``classes``
    embedding: np.ndarray | None = None   # (n, D)
    classes: list[str] = field(default_factory=list)

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        idx = pd.Index(self.ids).get_indexer(list(ids))
        if (idx < 0).any():
            raise KeyError(f"patients not predicted: {[i for i, j in zip(ids, idx) if j < 0][:5]}")
        return idx


class PatientModel(Protocol):
    """What every model implements (see module doc)."""

    name: str
    tasks: tuple[str, ...]

    def fit(self, run: GraphRun, train_ids: Sequence[str]) -> "PatientModel": ...

    def predict(self, run: GraphRun, ids: Sequence[str]) -> Prediction: ...


# ---------------------------------------------------------------------------- the GNN and the MLP


class GNNModel:
    """The heterogeneous GNN (``use_graph=False``: the MLP ablation) behind the protocol.

    ``tune=True`` chooses hyper-parameters by nested CV inside the training ids first
    (:func:`graphonc.model.tune.tune`, within ``cfg.tune_budget_s``). ``quiet=True`` does not log
    a head at chance (tuning's inner fits: :func:`~graphonc.model.tune.tune` counts them instead).
    """

    tasks = (SURVIVAL, DIAGNOSIS)

    def __init__(self, cfg: ModelConfig, name: str = "gnn", tune: bool = False, quiet: bool = False) -> None:
        self.cfg, self.name, self.tune, self.quiet = cfg, name, tune, quiet

    def fit(self, run: GraphRun, train_ids: Sequence[str]) -> "GNNModel":
        from graphonc.model.train import fit_model

        cfg = self.cfg
        self.trials_ = self.tuning_ = None
        if self.tune:
            from graphonc.model.tune import tuned

            cfg, self.trials_, self.tuning_ = tuned(run, list(train_ids), cfg)
        self.fit_ = fit_model(run, list(train_ids), cfg, warn_chance=not self.quiet)
        return self

    def predict(self, run: GraphRun, ids: Sequence[str]) -> Prediction:
        from graphonc.model.train import predict

        g = self.fit_.graph
        z, proba, risk = predict(self.fit_.model, g, self.fit_.booster)
        rows = g.patient_index(ids)
        return Prediction(list(ids), risk[rows], proba[rows] if g.label_classes else None, z[rows],
                          list(g.label_classes))

    def info(self) -> dict:
        """Per-fit facts for the fold row (best epoch, heads at chance)."""
        f = self.fit_
        out = {"best_epoch": f.best_epoch, "at_chance": ",".join(f.at_chance),
               "linear_risk": f.member_risk.count("linear"),
               "n_genes": len(f.graph.genes) if f.graph.genes is not None else np.nan,
               # weight of the label trees in the class probabilities (model.label_boosting; 0 = the network alone)
               "label_weight": f.booster.weight if f.booster is not None else 0.0}
        if self.tuning_ is not None:  # what tuning changed in this fold ("" = the config's values won)
            out["tuned"] = ";".join(f"{k}={v}" for k, v in self.tuning_["changed"].items())
        return out


# ---------------------------------------------------------------------------- tabular baselines


class TabularModel:
    """A scikit-learn / scikit-survival estimator on the flat features of
    :class:`graphonc.model.tabular.TabularFeatures` (same input policy as the GNN).

    A survival estimator predicts ``risk``; a classifier ``proba``. The embedding is the
    scaled feature vector (what a feature-space kNN compares).
    """

    def __init__(self, name: str, estimator, task: str, features: str, cfg: ModelConfig,
                 min_patients: int = MIN_PATIENTS) -> None:
        self.name, self.estimator, self.task, self.features = name, estimator, task, features
        self.tasks = (task,)
        self.cfg, self.min_patients = cfg, min_patients

    def fit(self, run: GraphRun, train_ids: Sequence[str]) -> "TabularModel":
        from graphonc.model.inputs import model_inputs
        from graphonc.model.tabular import (TabularFeatures, encode_labels, has_survival, label_classes,
                                            patient_rows, survival_target)

        ids = list(train_ids)
        self.tf_ = TabularFeatures.for_feature_set(self.features, knots=self.cfg.wide_knots,
                                                   min_patients=self.min_patients,
                                                   inputs=model_inputs(run, self.cfg)).fit(run, ids)
        X = self.tf_.transform(run, ids)
        rows = patient_rows(run, ids)
        self.classes_ = label_classes(run.nodes(S.PATIENT)) if self.task == DIAGNOSIS else []
        self.model_ = clone(self.estimator)
        t0 = time.perf_counter()
        if self.task == SURVIVAL:
            m = has_survival(rows)
            self.train_ = (rows.loc[m, L.OS_MONTHS].to_numpy(float), rows.loc[m, L.OS_EVENT].to_numpy(float))
            self.model_.fit(X[m], survival_target(rows[m]))
        else:
            y = encode_labels(rows, self.classes_)
            if "n_classes" in self.model_.get_params():
                self.model_.set_params(n_classes=len(self.classes_))
            self.model_.fit(X[y >= 0], y[y >= 0])
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def predict(self, run: GraphRun, ids: Sequence[str]) -> Prediction:
        X = self.tf_.transform(run, list(ids))
        if self.task == SURVIVAL:
            return Prediction(list(ids), risk=self.model_.predict(X), embedding=X)
        return Prediction(list(ids), proba=self.model_.predict_proba(X), embedding=X, classes=self.classes_)

    def survival_function(self, run: GraphRun, ids: Sequence[str], times: np.ndarray) -> np.ndarray:
        """The estimator's own survival curves at ``times`` (n, len(times)), for the Brier score."""
        return self.model_.predict_survival(self.tf_.transform(run, list(ids)), times)

    def info(self) -> dict:
        return {"n_features": len(self.tf_.feature_names_), "fit_seconds": round(self.fit_seconds_, 3)}


def baseline_models(run: GraphRun, cfg: ModelConfig, names: Sequence[str] | None = None,
                    params: dict[str, dict] | None = None) -> dict[str, Callable[[], PatientModel]]:
    """Factories of the registry's baselines (:data:`graphonc.model.baselines.BASELINES`) that fit the run."""
    from graphonc.model.baselines import BASELINES

    has_label = bool(run.patient_columns().get("label"))
    has_surv = bool(run.patient_columns().get("survival"))
    out = {}
    for name in (names or list(BASELINES)):
        spec = BASELINES[name]
        if (spec.task == DIAGNOSIS and not has_label) or (spec.task == SURVIVAL and not has_surv):
            continue
        est = spec.make(cfg.seed, **(params or {}).get(name, {}))
        out[name] = (lambda n=name, e=est, s=spec: TabularModel(n, e, s.task, s.features, cfg))
    return out


def standard_models(run: GraphRun, cfg: ModelConfig, *, baselines: bool = True, mlp: bool = True,
                    tune: bool = False, baseline_params: dict[str, dict] | None = None
                    ) -> dict[str, Callable[[], PatientModel]]:
    """GNN, MLP ablation and the baselines, all under the same ``cfg`` input policy."""
    models: dict[str, Callable[[], PatientModel]] = {"gnn": lambda: GNNModel(cfg, "gnn", tune)}
    if mlp:
        models["mlp"] = lambda: GNNModel(cfg.model_copy(update={"use_graph": False}), "mlp", tune)
    if baselines:
        models |= baseline_models(run, cfg, params=baseline_params)
    return models


# ---------------------------------------------------------------------------- the CV loop

#: A scorer gets (run, split, model, prediction of every patient of the split) and returns metrics.
Scorer = Callable[[GraphRun, Split, PatientModel, Prediction], dict]


def prediction_scorer(run: GraphRun, split: Split, model: PatientModel, pred: Prediction) -> dict:
    """``evaluate``'s metrics of one model on one fold (survival and/or diagnosis)."""
    from graphonc.model.evaluate import score_model

    classes = pred.classes
    proba = pred.proba if pred.proba is not None else np.zeros((len(pred.ids), len(classes)))
    risk = pred.risk if pred.risk is not None else np.zeros(len(pred.ids))
    surv_fn = getattr(model, "survival_function", None)
    row = score_model(run, split.train, split.test, proba, risk, classes, pred.rows,
                      survival=pred.risk is not None, diagnosis=pred.proba is not None,
                      survival_function=(lambda ids, times: surv_fn(run, ids, times)) if surv_fn else None)
    return row


def cross_validate(run: GraphRun, splits: Sequence[Split], models: dict[str, Callable[[], PatientModel]],
                   scorers: Sequence[Scorer] = (prediction_scorer,), *, progress: bool = False,
                   keep: Callable[[str, Split, Prediction], None] | None = None) -> pd.DataFrame:
    """One row per (model, repeat, fold): fit on ``split.train`` only, predict train + test, score.

    Args:
        splits: from :func:`graphonc.model.folds.splits`; every model sees exactly these.
        models: name → factory of a fresh, unfitted model.
        scorers: each adds its metrics to the row.
        keep: called with (model name, split, prediction) — e.g. to store fold embeddings.
    """
    rows = []
    with make_progress(progress) as bar:
        task = bar.add_task("cross-validation", total=len(splits) * len(models))
        for split in splits:
            overlap = set(split.train) & set(split.test)
            if overlap:
                raise ValueError(f"repeat {split.repeat} fold {split.fold}: {len(overlap)} patient(s) in both "
                                 f"train and test, e.g. {sorted(overlap)[:3]}")
            for name, make in models.items():
                bar.update(task, description=f"repeat {split.repeat} fold {split.fold}: {name}")
                t0 = time.perf_counter()
                model = make().fit(run, split.train)
                pred = model.predict(run, list(split.train) + list(split.test))
                row = {"model": name, "repeat": split.repeat, "fold": split.fold, "n_train": len(split.train),
                       "n_test": len(split.test)}
                if hasattr(model, "info"):
                    row |= model.info()
                for score in scorers:
                    row |= score(run, split, model, pred)
                row["seconds"] = round(time.perf_counter() - t0, 2)
                rows.append(row)
                if keep is not None:
                    keep(name, split, pred)
                log.info("%s repeat %d fold %d: %s", name, split.repeat, split.fold,
                         {k: round(v, 3) for k, v in row.items() if isinstance(v, float) and k != "seconds"})
                bar.advance(task)
    return pd.DataFrame(rows)
