"""Fair non-graph baselines for the two tasks, and a cross-validation runner.

Every estimator has the scikit-survival / scikit-learn shape: ``fit(X, y)`` then
``predict(X)`` (survival: a risk score, higher = shorter survival; diagnosis: class
indices), plus ``predict_survival(X, times)`` / ``predict_proba(X)``.

* ``X``: float array (n_patients, n_features) from :class:`graphonc.model.tabular.TabularFeatures`.
* survival ``y``: sksurv structured array (``event`` bool, ``time`` months), see
  :func:`graphonc.model.tabular.survival_target`.
* diagnosis ``y``: int class indices in ``[0, n_classes)``.

Every estimator is a scikit-learn ``BaseEstimator`` (``get_params``, ``clone``). In
cross-validation each is wrapped in :class:`graphonc.model.protocol.TabularModel`;
:func:`run_baselines` runs the registry through the one CV loop, which fits everything on the
training patients of each fold only — the feature encoder, the gene vocabulary, the model and
the Breslow baseline / censoring distribution used by the metrics — and scores the held-out
patients.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sksurv.ensemble import RandomSurvivalForest
from sksurv.util import check_y_survival

from graphonc.graph.run import GraphRun
from graphonc.model.metrics import breslow_survival
from graphonc.model.tabular import label_classes

SURVIVAL, DIAGNOSIS = "survival", "diagnosis"


# ---------------------------------------------------------------------------- validation


def _check_X(X, n_features: int | None = None) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_patients, n_features), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError("X has no rows")
    if not np.isfinite(X).all():
        raise ValueError("X contains NaN or infinite values (encode/impute first)")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features, the model was fitted on {n_features}")
    return X


def _check_survival(X, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X = _check_X(X)
    event, time_ = check_y_survival(y)
    if time_.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {time_.shape[0]}")
    if (time_ < 0).any():
        raise ValueError("survival times must be >= 0 (months)")
    return X, event.astype(bool), time_.astype(np.float64)


def _check_labels(X, y) -> tuple[np.ndarray, np.ndarray]:
    X = _check_X(X)
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must be 1-D with {X.shape[0]} class indices, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError("y must hold integer class indices (see tabular.encode_labels)")
    if (y < 0).any():
        raise ValueError("y holds negative class indices (unlabelled patients must be dropped first)")
    if np.unique(y).size < 2:
        raise ValueError("need at least two classes to fit a classifier")
    return X, y


def _fitted(model, attr: str) -> None:
    if not hasattr(model, attr):
        raise RuntimeError(f"{type(model).__name__} is not fitted yet; call fit(X, y) first")


# ---------------------------------------------------------------------------- survival


class CoxPHBaseline(BaseEstimator):
    """Penalised Cox proportional hazards (lifelines ``CoxPHFitter``), meant for clinical features.

    Args:
        penalizer: L2/elastic-net strength (lifelines' ``penalizer``; lifelines standardises
            the columns internally, so it acts on standardised coefficients).
        l1_ratio: elastic-net mixing (0 = ridge).

    ``fit(X, y)``: X (n, p) float, y sksurv structured (event, time in months). Columns that
    are constant on the training data are dropped (``kept_columns_``).
    ``predict(X)``: log partial hazard, shape (n,), higher = worse.
    ``predict_survival(X, times)``: (n, len(times)) probabilities from the Breslow baseline of
    the training data (:func:`graphonc.model.metrics.breslow_survival`).
    """

    task = SURVIVAL

    def __init__(self, penalizer: float = 0.1, l1_ratio: float = 0.0, random_state: int | None = None) -> None:
        if penalizer < 0 or not 0 <= l1_ratio <= 1:
            raise ValueError("penalizer must be >= 0 and l1_ratio in [0, 1]")
        self.penalizer = penalizer
        self.l1_ratio = l1_ratio
        self.random_state = random_state  # unused (deterministic); kept for a uniform constructor

    def fit(self, X, y) -> "CoxPHBaseline":
        X, event, time_ = _check_survival(X, y)
        if not event.any():
            raise ValueError("CoxPHBaseline.fit: no events in the training data")
        self.n_features_in_ = X.shape[1]
        self.kept_columns_ = np.flatnonzero(np.ptp(X, axis=0) > 0)
        if self.kept_columns_.size == 0:
            raise ValueError("CoxPHBaseline.fit: every column is constant")
        df = self._frame(X)
        df["_time"], df["_event"] = time_, event.astype(int)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model_ = CoxPHFitter(penalizer=self.penalizer, l1_ratio=self.l1_ratio).fit(
                df, duration_col="_time", event_col="_event")
        self.coef_ = self.model_.params_.to_numpy()
        self._train = (time_, event, self.predict(X))
        return self

    def _frame(self, X: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(X[:, self.kept_columns_], columns=[f"x{j}" for j in self.kept_columns_])

    def predict(self, X) -> np.ndarray:
        _fitted(self, "model_")
        X = _check_X(X, self.n_features_in_)
        return X[:, self.kept_columns_] @ self.coef_

    def predict_survival(self, X, times) -> np.ndarray:
        _fitted(self, "model_")
        t, e, r = self._train
        return breslow_survival(t, e, r, self.predict(X), times)


class RSFBaseline(BaseEstimator):
    """Random survival forest (scikit-survival), meant for clinical + mutation features.

    ``fit(X, y)``: X (n, p) float, y sksurv structured (event, time in months).
    ``predict(X)``: the forest's risk score (sum of the cumulative hazard over the training
    event times), shape (n,), higher = worse.
    ``predict_survival(X, times)``: ensemble survival function evaluated (right-continuous
    step function) at ``times`` months, shape (n, len(times)); 1 before the first training
    event time, held after the last.
    """

    task = SURVIVAL

    def __init__(self, n_estimators: int = 200, min_samples_leaf: int = 15, max_features: str | float = "sqrt",
                 n_jobs: int = 2, random_state: int | None = 0) -> None:
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X, y) -> "RSFBaseline":
        X, event, time_ = _check_survival(X, y)
        if not event.any():
            raise ValueError("RSFBaseline.fit: no events in the training data")
        self.n_features_in_ = X.shape[1]
        self.model_ = RandomSurvivalForest(n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf,
                                           max_features=self.max_features, n_jobs=self.n_jobs,
                                           random_state=self.random_state)
        self.model_.fit(X, np.asarray(y))
        return self

    def predict(self, X) -> np.ndarray:
        _fitted(self, "model_")
        return self.model_.predict(_check_X(X, self.n_features_in_))

    def predict_survival(self, X, times) -> np.ndarray:
        _fitted(self, "model_")
        surv = self.model_.predict_survival_function(_check_X(X, self.n_features_in_), return_array=True)
        grid = self.model_.unique_times_
        idx = np.searchsorted(grid, np.atleast_1d(np.asarray(times, dtype=np.float64)), side="right") - 1
        out = surv[:, np.clip(idx, 0, None)]
        out[:, idx < 0] = 1.0
        return out


# ---------------------------------------------------------------------------- diagnosis


class _Classifier(BaseEstimator):
    task = DIAGNOSIS

    def __init__(self, n_classes: int | None = None) -> None:
        self.n_classes = n_classes

    def _make(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, X, y) -> "_Classifier":
        """X (n, p) float; y (n,) int class indices in ``[0, n_classes)``."""
        X, y = _check_labels(X, y)
        self.n_features_in_ = X.shape[1]
        self.n_classes_ = int(self.n_classes if self.n_classes is not None else y.max() + 1)
        if y.max() >= self.n_classes_:
            raise ValueError(f"y holds class index {y.max()} but n_classes={self.n_classes_}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model_ = self._make().fit(X, y)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n, n_classes); a class absent from the training data gets 0."""
        _fitted(self, "model_")
        p = self.model_.predict_proba(_check_X(X, self.n_features_in_))
        out = np.zeros((p.shape[0], self.n_classes_))
        out[:, self.model_.classes_] = p
        return out

    def predict(self, X) -> np.ndarray:
        """Most probable class index, shape (n,)."""
        return self.predict_proba(X).argmax(axis=1)


class LogisticBaseline(_Classifier):
    """Multinomial logistic regression on standardised features, balanced class weights.

    Args:
        C: inverse L2 strength (fixed, not tuned on the test data).
        n_classes: number of classes (so ``predict_proba`` keeps all columns even when a
            fold's training data lacks one); default ``max(y) + 1``.
    """

    def __init__(self, C: float = 0.1, max_iter: int = 5000, n_classes: int | None = None,
                 random_state: int | None = 0) -> None:
        super().__init__(n_classes)
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state

    def _make(self):
        # lbfgs fits the multinomial (softmax) loss for >2 classes
        return make_pipeline(StandardScaler(), LogisticRegression(C=self.C, class_weight="balanced",
                                                                  max_iter=self.max_iter,
                                                                  random_state=self.random_state))

    @property
    def classes_(self):
        return self.model_.classes_


class GradientBoostingBaseline(_Classifier):
    """Histogram gradient-boosted trees (scikit-learn), balanced class weights, seeded."""

    def __init__(self, learning_rate: float = 0.05, max_iter: int = 200, max_leaf_nodes: int = 15,
                 min_samples_leaf: int = 20, l2_regularization: float = 1.0, n_classes: int | None = None,
                 random_state: int | None = 0) -> None:
        super().__init__(n_classes)
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.random_state = random_state

    def _make(self):
        return HistGradientBoostingClassifier(learning_rate=self.learning_rate, max_iter=self.max_iter,
                                              max_leaf_nodes=self.max_leaf_nodes,
                                              min_samples_leaf=self.min_samples_leaf,
                                              l2_regularization=self.l2_regularization, early_stopping=False,
                                              class_weight="balanced", random_state=self.random_state)


# ---------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class BaselineSpec:
    """A registry entry: estimator class, task it serves, feature set it is fed, default params."""

    cls: type
    task: str
    features: str
    params: dict[str, Any] = field(default_factory=dict)

    def make(self, seed: int | None = 0, **overrides):
        return self.cls(**{**self.params, "random_state": seed, **overrides})


BASELINES: dict[str, BaselineSpec] = {
    "coxph": BaselineSpec(CoxPHBaseline, SURVIVAL, "clinical", {"penalizer": 0.1, "l1_ratio": 0.0}),
    # the same penalised Cox with linear splines of the numeric columns (the GNN's wide part):
    # the strongest survival baseline on TCGA HNSC (docs/evaluation.md)
    "coxph_splines": BaselineSpec(CoxPHBaseline, SURVIVAL, "clinical+splines", {"penalizer": 0.1, "l1_ratio": 0.0}),
    "rsf": BaselineSpec(RSFBaseline, SURVIVAL, "clinical+mutations",
                        {"n_estimators": 200, "min_samples_leaf": 15, "max_features": "sqrt", "n_jobs": 2}),
    "logreg": BaselineSpec(LogisticBaseline, DIAGNOSIS, "clinical", {"C": 0.1}),
    "gboost": BaselineSpec(GradientBoostingBaseline, DIAGNOSIS, "clinical+mutations"),
}


# ---------------------------------------------------------------------------- cross-validation


def run_baselines(run: GraphRun, folds: Sequence[tuple[Sequence[str], Sequence[str]]], seed: int = 0, *,
                  models: Sequence[str] | None = None, params: dict[str, dict] | None = None,
                  min_patients: int = 5, progress: bool = False, cfg=None) -> pd.DataFrame:
    """Fit and score baselines on each (train_ids, test_ids) fold, through the one CV loop
    (:func:`graphonc.model.protocol.cross_validate`).

    Args:
        run: the graph run (patients, mutations).
        folds: patient-id pairs; train and test must not overlap.
        seed: random_state of every stochastic estimator.
        models: registry names (default all of :data:`BASELINES` that fit the run's targets).
        params: per-model constructor overrides, e.g. ``{"rsf": {"n_estimators": 50}}``.
        min_patients: gene-vocabulary threshold of :class:`TabularFeatures`.
        progress: show a rich progress bar.
        cfg: the model config whose input policy applies (default: at diagnosis).

    Returns:
        One row per (model, fold): ``model, task, features, repeat, fold, n_train, n_test,
        n_features, fit_seconds`` and the metrics of the model's task (survival: ``harrell_c,
        uno_c, ibs, auc_60, auc_120``; diagnosis: ``accuracy, balanced_accuracy, macro_f1,
        auroc``). Survival models skip patients without survival, diagnosis models patients
        without a label (in training and test).
    """
    from graphonc.model.evaluate import _as_splits
    from graphonc.model.protocol import TabularModel, cross_validate, prediction_scorer
    from graphonc.model_config import ModelConfig

    names = list(BASELINES) if models is None else list(models)
    unknown = [m for m in names if m not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; expected some of {list(BASELINES)}")
    if not folds:
        raise ValueError("run_baselines: no folds")
    cfg = (cfg or ModelConfig()).model_copy(update={"seed": seed})
    if not label_classes(run.nodes("Patient")):  # a cohort without a diagnosis label (e.g. HN1)
        names = [n for n in names if BASELINES[n].task != DIAGNOSIS]
    factories = {}
    for name in names:
        spec = BASELINES[name]
        est = spec.make(seed, **(params or {}).get(name, {}))
        factories[name] = (lambda n=name, e=est, sp=spec:
                           TabularModel(n, e, sp.task, sp.features, cfg, min_patients=min_patients))
    df = cross_validate(run, _as_splits(folds), factories, (prediction_scorer,), progress=progress)
    df.insert(1, "task", df["model"].map(lambda n: BASELINES[n].task))
    df.insert(2, "features", df["model"].map(lambda n: BASELINES[n].features))
    df["seed"] = seed
    return df
