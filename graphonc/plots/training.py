"""PNG plots of training and evaluation (matplotlib, headless).

Titles, legends and tick labels carry data (patient ids, labels, treatment names), so text is
never interpreted: mathtext (``$…$``) and TeX are off for every figure of the process. The
other plot modules take ``plt`` from here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test

from graphonc.plots.base import finish_km_axes, plt, save_figure


def loss_curves(history: list[dict], path: Path, best_epoch: int | None = None) -> Path:
    h = pd.DataFrame(history)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, key, title in zip(axes, ("loss", "ce", "cox"), ("total loss", "diagnosis (cross-entropy)",
                                                            "survival (Cox partial likelihood)")):
        ax.plot(h["epoch"], h[f"train_{key}"], label="train")
        ax.plot(h["epoch"], h[f"val_{key}"], label="validation")
        if best_epoch:
            ax.axvline(best_epoch, color="grey", ls=":", label=f"best epoch {best_epoch}")
        ax.set_title(title)
        ax.set_xlabel("epoch")
    axes[0].legend()
    return save_figure(fig, path)


def km_by_risk_group(time_months: np.ndarray, event: np.ndarray, risk: np.ndarray, path: Path,
                     title: str = "Overall survival by predicted risk tertile") -> Path:
    """Kaplan-Meier curves of patients split into risk tertiles, with numbers at risk and log-rank p."""
    ok = ~(np.isnan(time_months) | np.isnan(event) | np.isnan(risk))
    t, e, r = time_months[ok], event[ok], risk[ok]
    groups = pd.qcut(r, 3, labels=["low", "medium", "high"])
    fig, ax = plt.subplots(figsize=(8, 7.5))
    fitters = []
    for g in ("low", "medium", "high"):
        m = np.asarray(groups == g)
        kmf = KaplanMeierFitter(label=f"{g} risk (n={m.sum()})").fit(t[m], e[m])
        kmf.plot_survival_function(ax=ax, ci_show=True)
        fitters.append(kmf)
    p = multivariate_logrank_test(t, np.asarray(groups), e).p_value
    ax.set_title(f"{title}\nlog-rank p = {p:.2g}")
    finish_km_axes(ax, fitters)
    return save_figure(fig, path)


def calibration(y_true: np.ndarray, proba: np.ndarray, path: Path, bins: int = 10) -> Path:
    """Reliability diagram of the predicted class: confidence vs. accuracy."""
    ok = y_true >= 0
    conf = proba[ok].max(1)
    correct = (proba[ok].argmax(1) == y_true[ok]).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges) - 1, 0, bins - 1)
    xs, ys, ns = [], [], []
    for b in range(bins):
        m = which == b
        if m.any():
            xs.append(conf[m].mean())
            ys.append(correct[m].mean())
            ns.append(int(m.sum()))
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="perfect calibration")
    ax.plot(xs, ys, marker="o", label="model")
    for x, y, n in zip(xs, ys, ns):
        ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlabel("predicted probability of the predicted class")
    ax.set_ylabel("observed accuracy")
    ax.set_title("Diagnosis calibration")
    ax.legend()
    return save_figure(fig, path)
