"""Feature filtering and harmonisation, fitted once and applied unchanged to new patients.

:class:`Harmonizer` (scikit-learn style ``fit`` / ``transform``), in this order:

1. keep the configured features (names or shell patterns, minus ``exclude``);
2. drop features missing in more than ``max_missing_share`` of patients; impute the others
   with the fitted median;
3. drop **near-constant** features (the most frequent value covers ``near_constant_share`` of
   patients, or zero variance);
4. signed ``log1p`` of **skewed** features (|skewness| > ``skew_threshold``): volumes, energies
   and the like are log-normal-ish and would otherwise dominate distances;
5. **batch harmonisation** by site/scanner: ``per_batch`` z-scores each batch on its own;
   ``combat`` fits neuroCombat (parametric empirical Bayes location/scale, Johnson et al. 2007;
   Fortin et al. 2018) and stores its estimates so new patients of a known batch are adjusted
   with the same ones;
6. drop **highly correlated** features: while some pair has |Spearman rho| >
   ``max_correlation``, the member with the larger mean |rho| to all others goes (ties: the
   later name), except that a feature matching ``prefer`` (volume, sphericity, mean, entropy,
   variance by default: words a clinician reads) is kept over one that does not — deterministic;
7. z-score with the fitted mean/sd (``harmonization: none`` skips steps 5 and 7).

All statistics are over the patients given to ``fit``. Values are float64 arrays of shape
(n_patients, n_features); units are those of the features until the final z-score.
"""
from __future__ import annotations

import contextlib
import fnmatch
import io
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from graphonc.errors import GraphoncError, InputError
from graphonc.radiomics_config import PhenotypeSpec

log = logging.getLogger("graphonc")


def _matches(name: str, patterns: list[str]) -> bool:
    short = name.split("_", 2)[-1]
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(short, p) for p in patterns)


def signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def _skew(x: np.ndarray) -> float:
    sd = x.std()
    return float(((x - x.mean()) ** 3).mean() / sd ** 3) if sd > 0 else 0.0


def drop_correlated(df: pd.DataFrame, threshold: float, prefer: list[str] | None = None
                    ) -> tuple[list[str], dict[str, str]]:
    """Greedy removal of highly correlated features (see module doc, step 6); of a pair where
    only one feature matches ``prefer``, the other goes.

    Returns (kept columns in input order, {dropped: reason}).
    """
    cols = list(df.columns)
    if len(cols) < 2:
        return cols, {}
    rho = df.rank().corr().abs().to_numpy()  # Spearman = Pearson on ranks
    rho = np.nan_to_num(rho, nan=0.0)
    np.fill_diagonal(rho, 0.0)
    alive = np.ones(len(cols), dtype=bool)
    dropped = {}
    while True:
        sub = np.where(alive[:, None] & alive[None, :], rho, 0.0)
        i, j = np.unravel_index(int(np.argmax(sub)), sub.shape)
        if sub[i, j] <= threshold:
            break
        mean_i = sub[i, alive].sum() / max(alive.sum() - 1, 1)
        mean_j = sub[j, alive].sum() / max(alive.sum() - 1, 1)
        pi, pj = _matches(cols[i], prefer or []), _matches(cols[j], prefer or [])
        if pi != pj:
            drop, keep = (j, i) if pi else (i, j)
        elif np.isclose(mean_i, mean_j):
            drop, keep = (i, j) if cols[i] > cols[j] else (j, i)
        else:
            drop, keep = (i, j) if mean_i > mean_j else (j, i)
        alive[drop] = False
        dropped[cols[drop]] = f"|Spearman rho| {sub[i, j]:.2f} with {cols[keep]}"
    return [c for c, a in zip(cols, alive) if a], dropped


def combat_fit(x: np.ndarray, batch: np.ndarray) -> tuple[np.ndarray, dict]:
    """neuroCombat on ``x`` (n_patients, n_features) with one batch label per patient.

    Returns (harmonised x, estimates needed by :func:`combat_apply`).
    """
    from neuroCombat import neuroCombat

    covars = pd.DataFrame({"batch": batch.astype(str)})
    with contextlib.redirect_stdout(io.StringIO()):  # neuroCombat prints its progress
        out = neuroCombat(dat=x.T.astype(np.float64), covars=covars, batch_col="batch", eb=True, parametric=True)
    est = out["estimates"]
    estimates = {
        "batches": [str(b) for b in est["batches"]],
        "gamma_star": np.asarray(est["gamma.star"], dtype=np.float64),  # (n_batches, n_features)
        "delta_star": np.asarray(est["delta.star"], dtype=np.float64),
        "var_pooled": np.asarray(est["var.pooled"], dtype=np.float64).ravel(),  # (n_features,)
        "stand_mean": np.asarray(est["stand.mean"], dtype=np.float64)[:, 0],
    }
    return np.asarray(out["data"], dtype=np.float64).T, estimates


def combat_apply(x: np.ndarray, batch: np.ndarray, est: dict) -> np.ndarray:
    """Adjust ``x`` (n, p) with fitted ComBat estimates; rows of unknown batches are unchanged."""
    sd = np.sqrt(est["var_pooled"])
    sd = np.where(sd > 0, sd, 1.0)
    out = x.copy()
    index = {b: i for i, b in enumerate(est["batches"])}
    for b in np.unique(batch):
        rows = batch == b
        if b not in index:
            continue
        k = index[b]
        s = (x[rows] - est["stand_mean"]) / sd
        out[rows] = (s - est["gamma_star"][k]) / np.sqrt(est["delta_star"][k]) * sd + est["stand_mean"]
    return out


@dataclass
class Harmonizer:
    spec: PhenotypeSpec
    features_: list[str] = field(default_factory=list)   # after include/exclude (input order)
    dropped_: dict[str, str] = field(default_factory=dict)
    median_: dict[str, float] = field(default_factory=dict)
    log_: list[str] = field(default_factory=list)
    batch_stats_: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # per_batch
    combat_: dict | None = None
    selected_: list[str] = field(default_factory=list)
    mean_: list[float] = field(default_factory=list)
    scale_: list[float] = field(default_factory=list)

    # -- fit ------------------------------------------------------------------------------
    def fit(self, values: pd.DataFrame, batch: pd.Series | None = None) -> "Harmonizer":
        """Learn every step from ``values`` (patients × features, float) and ``batch``.

        Raises:
            InputError: no usable feature, or a batch with fewer than 2 patients (ComBat).
        """
        spec = self.spec
        self.dropped_ = {}
        cols = [c for c in values.columns
                if (spec.features is None or _matches(c, spec.features)) and not _matches(c, spec.exclude)]
        if not cols:
            raise InputError(f"no feature matches phenotypes.features {spec.features} (minus exclude {spec.exclude}).",
                             hint="check the feature names (e.g. original_shape_* or bare MeshVolume).")
        self.features_ = cols
        x = values[cols].astype("float64")
        kept = []
        n = len(x)
        for c in cols:
            v = x[c].to_numpy()
            miss = np.isnan(v)
            if miss.mean() > spec.max_missing_share:
                self.dropped_[c] = f"missing in {miss.mean():.0%} of patients"
                continue
            med = float(np.median(v[~miss]))
            v = np.where(miss, med, v)
            share = pd.Series(v).value_counts().iloc[0] / n
            if share >= spec.near_constant_share or np.std(v) <= 1e-12 * max(1.0, abs(np.mean(v))):
                self.dropped_[c] = f"near-constant (one value in {share:.0%} of patients)"
                continue
            self.median_[c] = med
            kept.append(c)
        if not kept:
            raise InputError("every feature is missing or near-constant across these patients.",
                             hint="give more patients, or relax phenotypes.near_constant_share / max_missing_share.")
        self.log_ = []
        if spec.log_transform == "skewed":
            imputed = self._impute(x[kept])
            self.log_ = [c for c in kept if abs(_skew(imputed[c].to_numpy())) > spec.skew_threshold]
        h = self._log(self._impute(x[kept]))
        h = self._fit_batch(h, batch)
        selected, dropped = drop_correlated(h, spec.max_correlation, spec.prefer)
        self.dropped_.update(dropped)
        self.selected_ = selected
        if self.combat_ is not None:
            pos = [kept.index(c) for c in selected]
            for key in ("gamma_star", "delta_star"):
                self.combat_[key] = self.combat_[key][:, pos]
            for key in ("var_pooled", "stand_mean"):
                self.combat_[key] = self.combat_[key][pos]
        self.batch_stats_ = {b: {"mean": [s["mean"][kept.index(c)] for c in selected],
                                 "sd": [s["sd"][kept.index(c)] for c in selected]}
                             for b, s in self.batch_stats_.items()}
        self.median_ = {c: self.median_[c] for c in selected}
        self.log_ = [c for c in self.log_ if c in selected]
        hv = h[selected].to_numpy()
        mean, sd = hv.mean(0), hv.std(0)
        if spec.harmonization == "none":  # no scaling at all: features keep their (log) units
            mean, sd = np.zeros(len(selected)), np.ones(len(selected))
        self.mean_, self.scale_ = mean.tolist(), np.where(sd > 0, sd, 1.0).tolist()
        log.info("radiomics: %d of %d features kept (%d dropped: near-constant, missing or correlated)",
                 len(selected), len(cols), len(cols) - len(selected))
        return self

    def _impute(self, x: pd.DataFrame) -> pd.DataFrame:
        return x.fillna({c: self.median_[c] for c in x.columns})

    def _log(self, x: pd.DataFrame) -> pd.DataFrame:
        x = x.copy()
        for c in self.log_:
            if c in x.columns:
                x[c] = signed_log1p(x[c].to_numpy())
        return x

    def _fit_batch(self, h: pd.DataFrame, batch: pd.Series | None) -> pd.DataFrame:
        mode = self.spec.harmonization
        self.batch_stats_, self.combat_ = {}, None
        if mode not in ("per_batch", "combat"):
            return h
        b = self._batch_array(h, batch)
        counts = pd.Series(b).value_counts()
        if mode == "combat" and (counts < 2).any():
            small = counts[counts < 2].index[0]
            raise InputError(f"batch {small!r} of column {self.spec.batch_column!r} has only {int(counts[small])} "
                             "patient; ComBat needs at least 2 per batch.", column=self.spec.batch_column,
                             hint="merge small sites/scanners into one batch, or use harmonization: per_batch/zscore.")
        x = h.to_numpy()
        if mode == "per_batch":
            for level in sorted(counts.index):
                rows = b == level
                mean, sd = x[rows].mean(0), x[rows].std(0)
                self.batch_stats_[level] = {"mean": mean.tolist(), "sd": np.where(sd > 0, sd, 1.0).tolist()}
            return pd.DataFrame(self._per_batch(x, b), index=h.index, columns=h.columns)
        out, est = combat_fit(x, b)
        if not np.isfinite(out).all():
            bad = h.columns[~np.isfinite(out).all(0)][0]
            raise GraphoncError(f"ComBat produced non-finite values for feature {bad!r} (constant within a batch?). "
                                "Fix: exclude it (phenotypes.exclude) or use harmonization: per_batch.")
        self.combat_ = est
        return pd.DataFrame(out, index=h.index, columns=h.columns)

    def _batch_array(self, h: pd.DataFrame, batch: pd.Series | None) -> np.ndarray:
        if batch is None:
            raise InputError(f"harmonization {self.spec.harmonization!r} needs the batch column "
                             f"{self.spec.batch_column!r}, which was not given.", column=self.spec.batch_column,
                             hint="add the site/scanner column to the manifest or feature table.")
        return batch.reindex(h.index).astype(str).to_numpy()

    def _per_batch(self, x: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = x.copy()
        for level, st in self.batch_stats_.items():
            rows = b == level
            out[rows] = (x[rows] - np.asarray(st["mean"])) / np.asarray(st["sd"])
        return out

    # -- transform ------------------------------------------------------------------------
    def harmonised(self, values: pd.DataFrame, batch: pd.Series | None = None) -> pd.DataFrame:
        """Selected features after imputation, log and batch steps (before the z-score):
        patients × ``selected_``, float64."""
        missing = [c for c in self.selected_ if c not in values.columns]
        if missing:
            raise InputError(f"the feature table lacks {len(missing)} feature(s) the phenotype model uses, e.g. "
                             f"{missing[:3]}.", hint="extract with the same params file as the model was fitted on.")
        h = self._log(self._impute(values[self.selected_].astype("float64")))
        mode = self.spec.harmonization
        if mode in ("per_batch", "combat"):
            b = self._batch_array(h, batch)
            known = set(self.batch_stats_) if mode == "per_batch" else set(self.combat_["batches"])
            unseen = sorted(set(b) - known)
            if unseen:
                log.warning("radiomics: batch(es) %s were not seen when the phenotypes were fitted; their features "
                            "are not batch-adjusted", unseen[:5])
            x = h.to_numpy()
            x = self._per_batch(x, b) if mode == "per_batch" else combat_apply(x, b, self.combat_)
            h = pd.DataFrame(x, index=h.index, columns=h.columns)
        return h

    def transform(self, values: pd.DataFrame, batch: pd.Series | None = None) -> pd.DataFrame:
        """Standardised selected features: patients × ``selected_`` (z-scores, float64)."""
        h = self.harmonised(values, batch)
        return (h - np.asarray(self.mean_)) / np.asarray(self.scale_)

    def fit_transform(self, values: pd.DataFrame, batch: pd.Series | None = None) -> pd.DataFrame:
        return self.fit(values, batch).transform(values, batch)

    # -- persistence ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        combat = None if self.combat_ is None else {
            k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.combat_.items()}
        return {"spec": self.spec.model_dump(mode="json"), "features": self.features_, "dropped": self.dropped_,
                "median": self.median_, "log": self.log_, "batch_stats": self.batch_stats_, "combat": combat,
                "selected": self.selected_, "mean": self.mean_, "scale": self.scale_}

    @classmethod
    def from_dict(cls, d: dict) -> "Harmonizer":
        combat = None if d["combat"] is None else {
            k: (v if k == "batches" else np.asarray(v, dtype=np.float64)) for k, v in d["combat"].items()}
        return cls(spec=PhenotypeSpec.model_validate(d["spec"]), features_=d["features"], dropped_=d["dropped"],
                   median_=d["median"], log_=d["log"], batch_stats_=d["batch_stats"], combat_=combat,
                   selected_=d["selected"], mean_=d["mean"], scale_=d["scale"])
