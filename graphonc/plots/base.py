"""What every graphonc plot shares: headless matplotlib, PNG writing, Kaplan–Meier axes.

Titles, legends and tick labels carry data (patient ids, labels, treatment names), so text is
never interpreted: mathtext (``$…$``) and TeX are off for every figure of the process. The other
plot modules take ``plt`` from here.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers and in CI
# an id like MB$\foo$X would otherwise be parsed as mathtext, and crash the plot
matplotlib.rcParams.update({"text.parse_math": False, "text.usetex": False})
import matplotlib.pyplot as plt  # noqa: E402
from lifelines.plotting import add_at_risk_counts  # noqa: E402

__all__ = ["finish_km_axes", "plt", "save_figure"]


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` as a PNG (parents created) and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")  # temp files may not end in .png
    plt.close(fig)
    return path


def finish_km_axes(ax, fitters: list) -> None:
    """Axis labels, limits, legend and the number-at-risk table under Kaplan–Meier curves (months)."""
    ax.set_xlabel("months")
    ax.set_ylabel("survival probability")
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower left")
    add_at_risk_counts(*fitters, ax=ax)
