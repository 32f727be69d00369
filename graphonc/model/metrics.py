"""Leakage-free evaluation metrics for survival (Cox-style risk) and diagnosis (subtype).

Everything a metric estimates from data other than the test predictions — the censoring
distribution of the IPCW metrics (Uno's C, Brier score, time-dependent AUC) and the Breslow
baseline hazard that turns a risk score into survival probabilities — is estimated on the
**training** fold only. The computations are scikit-survival's, lifelines' and
scikit-learn's; this module only chooses safe time points and turns the edge cases those
libraries raise on (a test fold without events, no comparable pairs, a horizon beyond the
follow-up) into ``NaN``.

Conventions: times are in months; a *risk* is a score where higher = shorter survival (for
a Cox model the log partial hazard ``x @ beta``); survival probabilities are arrays of shape
``(n_patients, n_times)``.

Time points
-----------
The IPCW estimators weight test events by ``1 / G(t)``, where ``G`` is the Kaplan–Meier
estimate of the censoring distribution fitted on the training fold. sksurv refuses times
beyond the last training time (where ``G`` is undefined or 0) and Brier/AUC time points
outside ``[min, max)`` of the test follow-up. So:

* test follow-up is administratively censored at the last training time ``T_train_max``
  (``time -> min(time, T_train_max)``, and an event at or after ``T_train_max`` becomes
  censored). Every metric evaluated at ``t < T_train_max`` is unchanged by this: a patient
  followed beyond ``t`` is a survivor at ``t`` either way, and events before ``t`` keep
  their time and weight. Harrell's C uses the untouched test data.
* ``eval_times`` (integrated Brier score) default to :func:`default_eval_times`: 50 evenly
  spaced times from the 5th to the 90th percentile of the (censored-at-``T_train_max``)
  test times — past the 90th percentile the IPCW weights explode and few patients remain.
* Uno's C uses ``tau = min(90th percentile of test times, T_train_max)``: pairs are only
  compared over ``[0, tau)`` where ``G > 0`` (``P(C > tau) > 0`` as sksurv requires).
* ``auc_60``/``auc_120`` are NaN when the horizon lies outside the test follow-up or past
  ``T_train_max``, or when the test fold has no case (event before the horizon) or no
  control (still at risk after it).
"""
from __future__ import annotations

import math
import warnings
from typing import Iterable, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score
from sksurv.exceptions import NoComparablePairException
from sksurv.linear_model.coxph import BreslowEstimator
from sksurv.metrics import (concordance_index_censored, concordance_index_ipcw, cumulative_dynamic_auc,
                            integrated_brier_score)
from sksurv.util import Surv

SURVIVAL_KEYS = ("harrell_c", "uno_c", "ibs", "auc_60", "auc_120")
DIAGNOSIS_KEYS = ("accuracy", "balanced_accuracy", "macro_f1", "auroc")

#: Percentiles of the test times that bound the default Brier grid / Uno's tau.
EVAL_LOWER_PCT, EVAL_UPPER_PCT, N_EVAL_TIMES = 5.0, 90.0, 50


def _as_time_event(time, event, name: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(time, dtype=np.float64).ravel()
    e = np.asarray(event).ravel()
    if t.shape != e.shape:
        raise ValueError(f"{name}: time and event have different lengths ({t.shape[0]} vs {e.shape[0]})")
    if not np.isfinite(t).all():
        raise ValueError(f"{name}: survival times must be finite (drop patients without survival first)")
    if (t < 0).any():
        raise ValueError(f"{name}: survival times must be >= 0")
    e_num = e.astype(np.float64)
    if np.isnan(e_num).any() or not np.isin(e_num, (0.0, 1.0)).all():
        raise ValueError(f"{name}: events must be 0/1 or bool without NaN")
    return t, e_num.astype(bool)


def _as_risk(risk, n: int, name: str) -> np.ndarray:
    r = np.asarray(risk, dtype=np.float64).ravel()
    if r.shape[0] != n:
        raise ValueError(f"{name}: expected {n} values, got {r.shape[0]}")
    if not np.isfinite(r).all():
        raise ValueError(f"{name}: risk scores must be finite")
    return r


def _censor_at(time: np.ndarray, event: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Administrative censoring at ``limit`` (see module docstring)."""
    return np.minimum(time, limit), event & (time < limit)


def default_eval_times(train_time, test_time, n: int = N_EVAL_TIMES) -> np.ndarray:
    """Time grid (months) for the integrated Brier score; empty if the test follow-up is too short.

    ``n`` evenly spaced times from the 5th to the 90th percentile of the test times (after
    censoring at the last training time), kept inside sksurv's ``[min, max)`` test range.
    """
    train_time = np.asarray(train_time, dtype=np.float64)
    test_time = np.minimum(np.asarray(test_time, dtype=np.float64), train_time.max())
    lo = max(np.percentile(test_time, EVAL_LOWER_PCT), test_time.min())
    hi = min(np.percentile(test_time, EVAL_UPPER_PCT), np.nextafter(test_time.max(), -np.inf))
    if not hi > lo:
        return np.empty(0)
    return np.linspace(lo, hi, n)


def breslow_survival(train_time, train_event, train_risk, test_risk, times) -> np.ndarray:
    """Survival probabilities from a risk score via the Breslow baseline of the training fold.

    Args:
        train_time, train_event: training follow-up (months) and event indicator, shape (n_train,).
        train_risk: log partial hazard of the training patients, shape (n_train,).
        test_risk: log partial hazard of the patients to predict, shape (n_test,).
        times: time points (months), shape (n_times,).

    Returns:
        ``S(t | x) = exp(-H0(t) * exp(risk))``, shape (n_test, n_times). ``H0`` is sksurv's
        :class:`BreslowEstimator` fitted on the training fold; it is 0 before the first
        training time and held at its last value after the last one. Risks are centred on the
        training mean first (``S`` is invariant to the shift; it avoids overflow in ``exp``).
    """
    t, e = _as_time_event(train_time, train_event, "breslow_survival(train)")
    r_train = _as_risk(train_risk, t.shape[0], "train_risk")
    r_test = np.asarray(test_risk, dtype=np.float64).ravel()
    if not np.isfinite(r_test).all():
        raise ValueError("test_risk: risk scores must be finite")
    times = np.atleast_1d(np.asarray(times, dtype=np.float64))
    if not np.isfinite(times).all():
        raise ValueError("times must be finite")
    centre = r_train.mean()
    est = BreslowEstimator().fit(r_train - centre, e, t)
    step = est.cum_baseline_hazard_
    idx = np.searchsorted(step.x, times, side="right") - 1  # right-continuous step function
    h0 = np.where(idx >= 0, step.y[np.clip(idx, 0, None)], 0.0)
    with np.errstate(over="ignore"):
        surv = np.exp(-np.outer(np.exp(r_test - centre), h0))
    return surv


def _harrell(event, time, risk) -> float:
    try:
        return float(concordance_index_censored(event, time, risk)[0])
    except (ValueError, NoComparablePairException, ZeroDivisionError):
        return math.nan


def survival_metrics(train_time, train_event, test_time, test_event, test_risk, test_surv=None,
                     eval_times=None, horizons: Sequence[float] = (60.0, 120.0), train_risk=None) -> dict:
    """Discrimination and calibration of a survival model on one test fold.

    Args:
        train_time, train_event: training follow-up (months) and events, shape (n_train,);
            used for the censoring distribution (IPCW) and the Breslow baseline.
        test_time, test_event: test follow-up and events, shape (n_test,).
        test_risk: risk score of the test patients (higher = shorter survival), shape (n_test,).
        test_surv: survival probabilities of the test patients at ``eval_times``, shape
            (n_test, len(eval_times)). If None they come from :func:`breslow_survival`
            with ``train_risk`` (then required).
        eval_times: Brier time grid (months); default :func:`default_eval_times`. Must be
            given together with ``test_surv``.
        horizons: months for the time-dependent AUC; keys ``auc_<h>``.
        train_risk: risk score of the training patients, shape (n_train,).

    Returns:
        ``harrell_c``, ``uno_c``, ``ibs``, ``auc_60``, ``auc_120`` (floats; NaN where undefined,
        see the module docstring).
    """
    tr_t, tr_e = _as_time_event(train_time, train_event, "train")
    te_t, te_e = _as_time_event(test_time, test_event, "test")
    risk = _as_risk(test_risk, te_t.shape[0], "test_risk")
    if test_surv is not None and eval_times is None:
        raise ValueError("test_surv needs the eval_times it was computed at")
    if test_surv is None and train_risk is None:
        raise ValueError("pass test_surv (with eval_times) or train_risk (for a Breslow baseline)")
    if train_risk is not None:
        train_risk = _as_risk(train_risk, tr_t.shape[0], "train_risk")
    out: dict[str, float] = {"harrell_c": _harrell(te_e, te_t, risk), "uno_c": math.nan, "ibs": math.nan}
    for h in horizons:
        out[f"auc_{h:g}"] = math.nan

    t_max = tr_t.max()
    ct, ce = _censor_at(te_t, te_e, t_max)
    y_train = Surv.from_arrays(tr_e, tr_t)
    y_test = Surv.from_arrays(ce, ct)

    # Uno's C over [0, tau)
    tau = min(float(np.percentile(ct, EVAL_UPPER_PCT)), t_max)
    if ce[ct < tau].any():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out["uno_c"] = float(concordance_index_ipcw(y_train, y_test, risk, tau=tau)[0])
        except (ValueError, NoComparablePairException, ZeroDivisionError):
            pass

    # time-dependent AUC at the horizons
    for h in horizons:
        cases, controls = ce & (ct <= h), ct > h
        if not (ct.min() <= h < ct.max() and h < t_max and cases.any() and controls.any()):
            continue
        try:
            out[f"auc_{h:g}"] = float(cumulative_dynamic_auc(y_train, y_test, risk, [h])[0][0])
        except (ValueError, ZeroDivisionError):
            pass

    # integrated Brier score
    if eval_times is None:
        eval_times = default_eval_times(tr_t, te_t)
    eval_times = np.asarray(eval_times, dtype=np.float64).ravel()
    ok_times = (eval_times.size >= 2 and np.all(np.diff(eval_times) > 0) and eval_times.min() >= ct.min()
                and eval_times.max() < ct.max() and eval_times.max() < t_max)
    if test_surv is None:
        test_surv = breslow_survival(tr_t, tr_e, train_risk, risk, eval_times) if eval_times.size else None
    if test_surv is not None:
        test_surv = np.asarray(test_surv, dtype=np.float64)
        if test_surv.shape != (te_t.shape[0], eval_times.shape[0]):
            raise ValueError(f"test_surv: expected shape {(te_t.shape[0], eval_times.shape[0])}, got {test_surv.shape}")
    if ok_times and test_surv is not None and np.isfinite(test_surv).all():
        try:
            out["ibs"] = float(integrated_brier_score(y_train, y_test, test_surv, eval_times))
        except (ValueError, ZeroDivisionError):
            pass
    return out


def diagnosis_metrics(y_true, proba, classes: Sequence[str]) -> dict:
    """Multi-class diagnosis metrics.

    Args:
        y_true: class indices into ``classes``, shape (n,), ints in ``[0, k)``.
        proba: predicted class probabilities, shape (n, k); columns follow ``classes``.
            Rows are renormalised to sum to 1.
        classes: the k class names.

    Returns:
        ``accuracy``, ``balanced_accuracy`` (over the classes present in ``y_true``),
        ``macro_f1`` (over all k classes; an absent, never-predicted class scores 0),
        ``auroc`` (macro one-vs-rest; NaN if a class is absent from ``y_true``).
    """
    k = len(classes)
    y = np.asarray(y_true).ravel()
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape != (y.shape[0], k):
        raise ValueError(f"proba: expected shape {(y.shape[0], k)}, got {p.shape}")
    if y.size == 0:
        raise ValueError("diagnosis_metrics: no samples")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError("y_true must hold integer class indices")
        y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= k:
        raise ValueError(f"y_true holds class indices outside [0, {k})")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("proba must be finite and non-negative")
    s = p.sum(axis=1, keepdims=True)
    if (s <= 0).any():
        raise ValueError("proba has a row summing to 0")
    p = p / s
    pred = p.argmax(axis=1)
    labels = np.arange(k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        out = {
            "accuracy": float(accuracy_score(y, pred)),
            "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
            "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        }
    if np.unique(y).size == k and k >= 2:
        out["auroc"] = float(roc_auc_score(y, p, multi_class="ovr", average="macro", labels=labels) if k > 2
                             else roc_auc_score(y, p[:, 1]))
    else:
        out["auroc"] = math.nan
    return out


#: Numeric keys of a fold row that identify it rather than measure it.
_ID_KEYS = {"fold", "seed"}


def summarise(fold_rows: Iterable[dict]) -> dict:
    """Mean and sd over folds of every numeric (non-bool) key.

    Returns ``{key: {"mean": m, "sd": s, "n": folds_with_a_value}}``; NaN values are left
    out (``n`` counts the rest), ``sd`` is the sample sd (ddof=1; NaN with one fold).
    Identifier keys (``fold``, ``seed``) and non-numeric values are skipped.
    """
    values: dict[str, list[float]] = {}
    for row in fold_rows:
        for key, v in row.items():
            if key in _ID_KEYS or isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)):
                continue
            values.setdefault(key, []).append(float(v))
    out = {}
    for key, vs in values.items():
        a = np.asarray(vs)
        a = a[~np.isnan(a)]
        out[key] = {"mean": float(a.mean()) if a.size else math.nan,
                    "sd": float(a.std(ddof=1)) if a.size > 1 else math.nan, "n": int(a.size)}
    return out
