"""PNG plots of similar-patient search: embedding maps and explanations (survival: km_svg)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from graphonc.plots.base import plt, save_figure


def embedding_map(xy: np.ndarray, labels, path: Path, title: str) -> Path:
    """Scatter of 2-D coordinates ``xy`` (n, 2) coloured by ``labels`` (n,; missing = grey)."""
    lab = pd.Series(labels, dtype=object).where(pd.notna(pd.Series(labels, dtype=object)), None)
    fig, ax = plt.subplots(figsize=(8, 7))
    missing = lab.isna().to_numpy()
    if missing.any():
        ax.scatter(xy[missing, 0], xy[missing, 1], s=5, c="lightgrey", label=f"no label (n={missing.sum()})")
    cmap = plt.get_cmap("tab10" if lab.nunique() <= 10 else "tab20")
    for i, v in enumerate(sorted(lab.dropna().unique(), key=str)):
        m = (lab == v).to_numpy()
        ax.scatter(xy[m, 0], xy[m, 1], s=6, color=cmap(i % cmap.N), label=f"{v} (n={m.sum()})")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=3, fontsize=8, loc="best")
    return save_figure(fig, path)


def attribution_bars(table: pd.DataFrame, path: Path, title: str) -> Path:
    """Horizontal bars of ``attribution`` per ``kind: name`` (positive red = raises the output)."""
    t = table.iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(t) + 1.2))
    colors = ["tab:red" if v > 0 else "tab:blue" for v in t["attribution"]]
    ax.barh([f"{k}: {n}" for k, n in zip(t["kind"], t["name"])], t["attribution"], color=colors)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("attribution (integrated gradients)")
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path)
