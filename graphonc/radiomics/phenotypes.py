"""Radiomic phenotypes: clusters of patients in harmonised feature space, with descriptions.

:func:`fit_phenotypes` harmonises the features (:class:`~graphonc.radiomics.harmonize.Harmonizer`),
optionally projects them on principal components, and fits a Gaussian mixture (membership
probabilities) or k-means (hard membership, p = 1) for every k in ``k_min..k_max``, choosing k
by the lowest BIC (mixture) or the highest silhouette. Everything is seeded.

Phenotypes are numbered by size (``RP1`` the largest; ties by first member). Each gets a
**profile** (the membership-weighted mean z-score of every selected feature) and a readable
**description** from the features that distinguish it most, e.g. ``large, heterogeneous,
high-entropy`` with the **signature** ``MeshVolume +1.8 sd; Variance +1.2 sd; Entropy +1.0 sd``.

The fitted :class:`PhenotypeModel` is JSON (no pickles): :meth:`PhenotypeModel.assign` puts new
patients into the existing phenotypes without refitting.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

import graphonc
from graphonc.errors import GraphoncError, InputError
from graphonc.radiomics.features import PatientFeatures
from graphonc.radiomics.harmonize import Harmonizer
from graphonc.radiomics_config import PhenotypeSpec

log = logging.getLogger("graphonc")

MODEL_FILE = "phenotype_model.json"
ID_PREFIX = "RP"

#: Words for high / low values of pyradiomics features (key: name without ``<image>_<class>_``).
#: A config's ``phenotypes.descriptors`` overrides or extends them; other features read
#: "high <Feature>" / "low <Feature>".
DESCRIPTORS: dict[str, tuple[str, str]] = {
    # shape (mm, mm², mm³)
    "MeshVolume": ("large", "small"), "VoxelVolume": ("large", "small"),
    "SurfaceArea": ("large-surface", "small-surface"),
    "Maximum3DDiameter": ("long", "short"), "Maximum2DDiameterSlice": ("wide", "narrow"),
    "Maximum2DDiameterRow": ("wide", "narrow"), "Maximum2DDiameterColumn": ("wide", "narrow"),
    "MajorAxisLength": ("long", "short"), "MinorAxisLength": ("thick", "thin"),
    "LeastAxisLength": ("thick", "thin"),
    "Sphericity": ("spherical", "irregular"), "SurfaceVolumeRatio": ("irregular-surface", "compact"),
    "Elongation": ("round", "elongated"), "Flatness": ("plump", "flat"),
    # first order (image units, e.g. HU)
    "Mean": ("dense", "low-density"), "Median": ("dense", "low-density"),
    "RootMeanSquared": ("bright", "dim"), "10Percentile": ("high-floor", "low-floor"),
    "90Percentile": ("high-peak", "low-peak"), "Maximum": ("high-maximum", "low-maximum"),
    "Minimum": ("high-minimum", "low-minimum"),
    "Entropy": ("high-entropy", "low-entropy"), "Uniformity": ("uniform", "non-uniform"),
    "Variance": ("heterogeneous", "homogeneous"), "MeanAbsoluteDeviation": ("heterogeneous", "homogeneous"),
    "RobustMeanAbsoluteDeviation": ("heterogeneous", "homogeneous"),
    "InterquartileRange": ("heterogeneous", "homogeneous"), "Range": ("wide-range", "narrow-range"),
    "Skewness": ("right-skewed", "left-skewed"), "Kurtosis": ("heavy-tailed", "light-tailed"),
    "Energy": ("high-energy", "low-energy"), "TotalEnergy": ("high-energy", "low-energy"),
    # texture
    "Contrast": ("high-contrast", "low-contrast"), "JointEntropy": ("complex-textured", "simple-textured"),
    "Idm": ("smooth-textured", "rough-textured"), "Idmn": ("smooth-textured", "rough-textured"),
    "Id": ("smooth-textured", "rough-textured"), "Idn": ("smooth-textured", "rough-textured"),
    "JointEnergy": ("orderly-textured", "disorderly-textured"), "Correlation": ("correlated-texture", "uncorrelated-texture"),
    "ClusterShade": ("asymmetric-texture", "symmetric-texture"), "ClusterProminence": ("prominent-clusters", "flat-clusters"),
    "ZoneEntropy": ("heterogeneous-zones", "homogeneous-zones"), "LargeAreaEmphasis": ("large-zones", "small-zones"),
    "SmallAreaEmphasis": ("fine-zones", "coarse-zones"), "RunEntropy": ("varied-runs", "regular-runs"),
    "LongRunEmphasis": ("long-runs", "short-runs"), "ShortRunEmphasis": ("short-runs", "long-runs"),
    "DependenceEntropy": ("heterogeneous-dependence", "homogeneous-dependence"),
    "Coarseness": ("coarse", "fine"), "Busyness": ("busy", "calm"), "Complexity": ("complex", "simple"),
    "Strength": ("strong-texture", "weak-texture"),
}


def short_name(feature: str) -> str:
    """``original_shape_MeshVolume`` → ``MeshVolume`` (other names unchanged)."""
    parts = feature.split("_", 2)
    return parts[2] if len(parts) == 3 else feature


def describe(profile: pd.Series, top: int, descriptors: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """(description, signature) from a profile (feature → mean z-score of the phenotype).

    Features are taken by decreasing |z|; a word already used is skipped, so ``top`` distinct
    words are named (fewer when |z| < 0.25 for the rest: "average" when none stands out).
    """
    words, sig = [], []
    words_map = {**DESCRIPTORS, **descriptors}
    order = profile.abs().sort_values(ascending=False, kind="stable").index
    for f in order:
        z = float(profile[f])
        if abs(z) < 0.25 or len(words) >= top:
            break
        name = short_name(f)
        hi, lo = words_map.get(name, (f"high {name}", f"low {name}"))
        word = hi if z > 0 else lo
        if word in words:
            continue
        words.append(word)
        sig.append(f"{name} {z:+.1f} sd")
    return (", ".join(words) if words else "average"), "; ".join(sig)


@dataclass
class PhenotypeModel:
    """A fitted harmonisation + clustering; JSON-serialisable (see :meth:`save`)."""

    harmonizer: Harmonizer
    method: str
    ids: list[str]
    params: dict  # gmm: weights, means, covariances, precisions_cholesky, covariance_type; kmeans: centers
    pca: dict | None  # components (n_comp, n_features), mean (n_features,)
    descriptions: list[str]
    signatures: list[str]
    profiles: dict[str, dict[str, float]]  # phenotype → feature → mean z-score
    selection: list[dict] = field(default_factory=list)  # per k: bic, silhouette
    n_fit: int = 0
    sizes: list[int] = field(default_factory=list)

    @property
    def k(self) -> int:
        return len(self.ids)

    def embed(self, z: np.ndarray) -> np.ndarray:
        """z-scores (n, n_selected) → the clustering space (principal components or z itself)."""
        if self.pca is None:
            return z
        return (z - np.asarray(self.pca["mean"])) @ np.asarray(self.pca["components"]).T

    def _proba(self, x: np.ndarray) -> np.ndarray:
        if self.method == "kmeans":
            centers = np.asarray(self.params["centers"])
            d = ((x[:, None, :] - centers[None]) ** 2).sum(-1)
            out = np.zeros((len(x), len(centers)))
            out[np.arange(len(x)), d.argmin(1)] = 1.0
            return out
        from sklearn.mixture import GaussianMixture

        gm = GaussianMixture(n_components=self.k, covariance_type=self.params["covariance_type"])
        gm.weights_ = np.asarray(self.params["weights"])
        gm.means_ = np.asarray(self.params["means"])
        gm.covariances_ = np.asarray(self.params["covariances"])
        gm.precisions_cholesky_ = np.asarray(self.params["precisions_cholesky"])
        return gm.predict_proba(x)

    def assign(self, pf: PatientFeatures) -> pd.DataFrame:
        """Membership of each patient of ``pf`` (no refitting).

        Returns one row per patient: ``patient_id``, ``phenotype`` (most likely id), ``p`` (its
        probability), ``p_<id>`` for every phenotype.
        """
        batch = pf.batch(self.harmonizer.spec.batch_column) if self.harmonizer.spec.harmonization in (
            "per_batch", "combat") else None
        z = self.harmonizer.transform(pf.values, batch)
        return self._table(pf.values.index, self._proba(self.embed(z.to_numpy())))

    def _table(self, index: pd.Index, proba: np.ndarray) -> pd.DataFrame:
        best = proba.argmax(1)
        df = pd.DataFrame({"patient_id": np.asarray(index, dtype=object),
                           "phenotype": np.asarray(self.ids, dtype=object)[best],
                           "p": proba[np.arange(len(best)), best].astype("float64")})
        for j, pid in enumerate(self.ids):
            df[f"p_{pid}"] = proba[:, j].astype("float64")
        return df

    def phenotype_table(self) -> pd.DataFrame:
        """One row per phenotype: ``id``, ``description``, ``signature``, ``n_patients`` (fit
        patients most likely in it), ``share``, ``method``, ``k``."""
        return pd.DataFrame({
            "id": np.asarray(self.ids, dtype=object), "description": np.asarray(self.descriptions, dtype=object),
            "signature": np.asarray(self.signatures, dtype=object), "n_patients": np.asarray(self.sizes, dtype=np.int64),
            "share": np.asarray(self.sizes, dtype=np.float64) / max(self.n_fit, 1),
            "method": np.asarray([self.method] * self.k, dtype=object), "k": np.full(self.k, self.k, dtype=np.int64)})

    # -- persistence ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"graphonc_version": graphonc.__version__, "harmonizer": self.harmonizer.to_dict(),
                "method": self.method, "ids": self.ids, "params": self.params, "pca": self.pca,
                "descriptions": self.descriptions, "signatures": self.signatures, "profiles": self.profiles,
                "selection": self.selection, "n_fit": self.n_fit, "sizes": self.sizes}

    @classmethod
    def from_dict(cls, d: dict) -> "PhenotypeModel":
        return cls(harmonizer=Harmonizer.from_dict(d["harmonizer"]), method=d["method"], ids=d["ids"],
                   params=d["params"], pca=d["pca"], descriptions=d["descriptions"], signatures=d["signatures"],
                   profiles=d["profiles"], selection=d.get("selection", []), n_fit=d.get("n_fit", 0),
                   sizes=d.get("sizes", []))

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def load(cls, path: str | Path) -> "PhenotypeModel":
        """From a folder written by ``graphonc radiomics phenotype`` (or its ``phenotype_model.json``)."""
        path = Path(path)
        f = path / MODEL_FILE if path.is_dir() else path
        if not f.exists():
            raise GraphoncError(f"{path}: no {MODEL_FILE}. Fix: give a folder written by "
                                "`graphonc radiomics phenotype --out DIR`.")
        return cls.from_dict(json.loads(f.read_text(encoding="utf-8")))


def _tolist(a) -> list:
    return np.asarray(a, dtype=np.float64).tolist()


def _cluster(x: np.ndarray, k: int, spec: PhenotypeSpec) -> tuple[np.ndarray, dict, float]:
    """(membership probabilities (n, k), parameters, BIC or nan) for one k."""
    if spec.method == "kmeans":
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=k, n_init=spec.n_init, random_state=spec.seed).fit(x)
        proba = np.zeros((len(x), k))
        proba[np.arange(len(x)), km.labels_] = 1.0
        return proba, {"centers": km.cluster_centers_}, float("nan")
    from sklearn.mixture import GaussianMixture

    gm = GaussianMixture(n_components=k, covariance_type=spec.covariance_type, n_init=spec.n_init,
                         random_state=spec.seed, reg_covar=1e-4, max_iter=500).fit(x)
    params = {"weights": gm.weights_, "means": gm.means_, "covariances": gm.covariances_,
              "precisions_cholesky": gm.precisions_cholesky_}
    return gm.predict_proba(x), params, float(gm.bic(x))


def _silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import silhouette_score

    n_labels = len(np.unique(labels))
    return float(silhouette_score(x, labels)) if 2 <= n_labels < len(x) else float("nan")


def fit_phenotypes(pf: PatientFeatures, spec: PhenotypeSpec) -> tuple[PhenotypeModel, pd.DataFrame]:
    """Fit harmonisation + clustering on the patients of ``pf``.

    Returns (model, assignments of those patients as :meth:`PhenotypeModel.assign` gives them).

    Raises:
        InputError: too few patients for the k range.
    """
    n = len(pf.values)
    if n < max(3, spec.k_min + 1):
        raise InputError(f"only {n} patient(s) with radiomic features; phenotypes need at least "
                         f"{max(3, spec.k_min + 1)}.", file=pf.source,
                         hint="add patients, or lower phenotypes.k_min.")
    batch = pf.batch(spec.batch_column) if spec.harmonization in ("per_batch", "combat") else None
    harm = Harmonizer(spec).fit(pf.values, batch)
    z = harm.transform(pf.values, batch)
    zv = z.to_numpy()
    pca = None
    if spec.pca_variance is not None and zv.shape[1] > 1:
        from sklearn.decomposition import PCA

        p = PCA(n_components=spec.pca_variance, svd_solver="full", random_state=spec.seed).fit(zv)
        pca = {"components": p.components_.tolist(), "mean": p.mean_.tolist(),
               "explained_variance_ratio": p.explained_variance_ratio_.tolist()}
    model_stub = PhenotypeModel(harm, spec.method, [], {}, pca, [], [], {})
    x = model_stub.embed(zv)
    k_hi = min(spec.k_max, n - 1)
    if k_hi < spec.k_min:
        raise InputError(f"{n} patients cannot form {spec.k_min} or more phenotypes.", file=pf.source,
                         hint="lower phenotypes.k_min.")
    fits = []
    for k in range(spec.k_min, k_hi + 1):
        proba, params, bic = _cluster(x, k, spec)
        fits.append({"k": k, "bic": bic, "silhouette": _silhouette(x, proba.argmax(1)), "proba": proba,
                     "params": params})
    if spec.selection == "bic":
        best = min(fits, key=lambda f: (f["bic"], f["k"]))
    else:
        best = max(fits, key=lambda f: (np.nan_to_num(f["silhouette"], nan=-2.0), -f["k"]))
    proba, params, k = best["proba"], best["params"], best["k"]
    # number phenotypes by size (largest first; ties: the one whose first member comes first)
    hard = proba.argmax(1)
    sizes = np.bincount(hard, minlength=k)
    first = np.array([np.flatnonzero(hard == j)[0] if sizes[j] else n for j in range(k)])
    order = sorted(range(k), key=lambda j: (-sizes[j], first[j], j))
    proba = proba[:, order]
    if spec.method == "kmeans":
        params = {"centers": _tolist(np.asarray(params["centers"])[order])}
    else:
        params = {"covariance_type": spec.covariance_type,
                  "weights": _tolist(np.asarray(params["weights"])[order]),
                  "means": _tolist(np.asarray(params["means"])[order]),
                  "covariances": _tolist(params["covariances"] if spec.covariance_type == "tied"
                                         else np.asarray(params["covariances"])[order]),
                  "precisions_cholesky": _tolist(params["precisions_cholesky"] if spec.covariance_type == "tied"
                                                 else np.asarray(params["precisions_cholesky"])[order])}
    ids = [f"{ID_PREFIX}{i + 1}" for i in range(k)]
    weights = proba / np.maximum(proba.sum(0, keepdims=True), 1e-12)
    prof = pd.DataFrame(weights.T @ zv, index=ids, columns=z.columns)
    descs, sigs = zip(*(describe(prof.loc[i], spec.describe_top, dict(spec.descriptors)) for i in ids))
    model = PhenotypeModel(
        harmonizer=harm, method=spec.method, ids=ids, params=params, pca=pca, descriptions=list(descs),
        signatures=list(sigs), profiles={i: {c: round(float(v), 6) for c, v in prof.loc[i].items()} for i in ids},
        selection=[{"k": f["k"], "bic": None if np.isnan(f["bic"]) else round(f["bic"], 4),
                    "silhouette": None if np.isnan(f["silhouette"]) else round(f["silhouette"], 6)} for f in fits],
        n_fit=n, sizes=[int(s) for s in sizes[order]])
    log.info("radiomics: %d phenotypes (%s, k chosen by %s from %d..%d) over %d patients", k, spec.method,
             spec.selection, spec.k_min, k_hi, n)
    return model, model._table(pf.values.index, model._proba(x))
