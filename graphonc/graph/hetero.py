"""Run folder → ``torch_geometric.data.HeteroData``.

Shaped like PyG's ``examples/hetero/load_csv.py``: a node table becomes ``(x, id → index)``,
an edge table is mapped through the two node id maps. Patient features come from a
:class:`PatientFeatureEncoder` (scikit-learn style ``fit``/``transform``) so a training
fold can fit it on its own patients and apply it unchanged to held-out or new patients.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from scipy.special import ndtri
from torch_geometric.data import HeteroData

from graphonc import layout as L
from graphonc.graph import schema as S
from graphonc.graph.run import GraphRun
from graphonc.ingest.gene_roles import ROLES

#: MAF variant classes (anything else → "other").
VARIANT_CLASSES = ("Missense_Mutation", "Nonsense_Mutation", "Frame_Shift_Del", "Frame_Shift_Ins", "Splice_Site",
                   "In_Frame_Del", "In_Frame_Ins", "Nonstop_Mutation", "Translation_Start_Site", "Silent",
                   "Splice_Region", "Intron", "3'UTR", "5'UTR", "3'Flank", "5'Flank")
#: The pooled category of rare (or unseen) values of a categorical feature.
OTHER = "__other__"
#: cBioPortal structural-variant classes (anything else → "other").
SV_CLASSES = ("DELETION", "DUPLICATION", "INSERTION", "INVERSION", "TRANSLOCATION")


@dataclass
class PatientFeatureEncoder:
    """Clinical columns → a dense float32 matrix.

    Numeric columns are imputed with the training median, scaled (``scaling``) and get a 0/1
    missing indicator. ``"rank_gauss"`` (default) maps a value to the normal score of its rank
    among the training values (:func:`rank_gauss`: the training median → 0, a value beyond the
    training range → a bounded end score), so a skewed column (tumour mutational
    burden, MSI score, lymph nodes) is spread evenly and one outlier cannot dominate a linear
    term; ``"standard"`` subtracts the training mean and divides by the training sd (the
    encoding of models saved before the option existed). Categorical columns are one-hot over the
    categories seen in training plus a missing indicator (unseen categories → all zeros).
    A ``mutations_assayed`` flag marks patients whose mutation modality is present.
    ``radiomics`` columns (``rad_*``, the harmonised radiomic feature vector) are standardised
    with the mean/sd of training patients *with imaging*; a patient without imaging gets 0 (the
    mean) in each and ``radiomics_available = 0``, so the imaging modality can be missing.
    ``assays`` are boolean Patient columns saying a modality was profiled (``cna_profiled``,
    ``sv_profiled``), given as 0/1 so "no edge" reads differently when nothing was measured.
    With ``pool_rare = n``, categories seen in fewer than n training patients share one
    ``<column>=__other__`` column (as do categories first seen after fitting).
    ``treatments`` (``{"name", "column", "received_values"}`` entries; only for models of patients
    after diagnosis) give ``treated:<name>`` (1 received, 0 not) and ``treated:<name>__missing``
    (status unknown), so a missing treatment status is never read as "not received".
    """

    numeric: list[str]
    categorical: list[str]
    radiomics: list[str] = field(default_factory=list)
    assays: list[str] = field(default_factory=list)
    pool_rare: int = 0
    treatments: list[dict] = field(default_factory=list)
    scaling: str = "rank_gauss"
    median_: dict[str, float] = field(default_factory=dict)
    mean_: dict[str, float] = field(default_factory=dict)
    scale_: dict[str, float] = field(default_factory=dict)
    categories_: dict[str, list[str]] = field(default_factory=dict)
    quantiles_: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scaling not in SCALINGS:
            raise ValueError(f"numeric scaling {self.scaling!r} is not one of {SCALINGS}")

    def _check(self, df: pd.DataFrame) -> None:
        missing = [c for c in self.numeric + self.categorical + self.radiomics + [t["column"] for t in self.treatments]
                   if c not in df.columns]
        if missing:
            raise ValueError(f"patient table lacks feature columns {missing}")

    def fit(self, df: pd.DataFrame) -> "PatientFeatureEncoder":
        """Learn imputation, scaling and categories from ``df`` (training patients only)."""
        self._check(df)
        for c in self.numeric:
            v = pd.to_numeric(df[c], errors="coerce").astype("float64")
            med = float(v.median()) if v.notna().any() else 0.0
            sd = float(v.std(ddof=0)) if v.notna().sum() > 1 else 0.0
            self.median_[c], self.mean_[c] = med, float(v.mean()) if v.notna().any() else 0.0
            self.scale_[c] = sd if sd > 0 else 1.0
            if self.scaling == "rank_gauss":
                self.quantiles_[c] = training_quantiles(v.dropna().to_numpy())
        for c in self.categorical:
            counts = df[c].dropna().astype(str).value_counts()
            kept = sorted(counts[counts >= self.pool_rare].index.tolist())
            self.categories_[c] = kept + ([OTHER] if len(kept) < len(counts) else [])
        for c in self.radiomics:
            v = pd.to_numeric(df[c], errors="coerce").astype("float64")
            sd = float(v.std(ddof=0)) if v.notna().sum() > 1 else 0.0
            self.mean_[c] = float(v.mean()) if v.notna().any() else 0.0
            self.scale_[c] = sd if sd > 0 else 1.0
        return self

    @property
    def feature_names_(self) -> list[str]:
        names = []
        for c in self.numeric:
            names += [c, f"{c}__missing"]
        for c in self.categorical:
            names += [f"{c}={v}" for v in self.categories_[c]] + [f"{c}__missing"]
        names += list(self.radiomics) + (["radiomics_available"] if self.radiomics else [])
        for t in self.treatments:
            names += [f"treated:{t['name']}", f"treated:{t['name']}__missing"]
        return names + list(self.assays) + ["mutations_assayed"]  # last: modality dropout zeroes it

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """Shape (n_patients, len(feature_names_)), float32."""
        if not self.median_ and self.numeric or not self.categories_ and self.categorical \
                or self.radiomics and not all(c in self.mean_ for c in self.radiomics):
            raise RuntimeError("PatientFeatureEncoder.transform called before fit")
        self._check(df)
        cols = []
        for c in self.numeric:
            v = pd.to_numeric(df[c], errors="coerce").astype("float64").to_numpy()
            miss = np.isnan(v)
            v = np.where(miss, self.median_[c], v)
            z = rank_gauss(v, self.quantiles_[c]) if self.scaling == "rank_gauss" \
                else (v - self.mean_[c]) / self.scale_[c]
            cols += [z, miss.astype(np.float64)]
        for c in self.categorical:
            s = df[c].astype("string")
            known = [v for v in self.categories_[c] if v != OTHER]
            for val in self.categories_[c]:
                hit = (s.notna() & ~s.isin(known)) if val == OTHER else (s == val)
                cols.append(hit.fillna(False).to_numpy(dtype=np.float64))
            cols.append(s.isna().to_numpy(dtype=np.float64))
        if self.radiomics:
            rad = np.column_stack([pd.to_numeric(df[c], errors="coerce").astype("float64").to_numpy()
                                   for c in self.radiomics])
            has = ~np.isnan(rad).all(1)
            rad = (rad - np.array([self.mean_[c] for c in self.radiomics])) / \
                np.array([self.scale_[c] for c in self.radiomics])
            cols += list(np.nan_to_num(rad, nan=0.0).T) + [has.astype(np.float64)]
        for t in self.treatments:
            v = df[t["column"]].astype("string")
            cols += [v.isin(t["received_values"]).fillna(False).to_numpy(dtype=np.float64),
                     v.isna().to_numpy(dtype=np.float64)]
        # an assay column absent (new patients read without that data type) = not profiled
        cols += [df[c].fillna(False).to_numpy(dtype=np.float64) if c in df.columns else np.zeros(len(df))
                 for c in self.assays]
        assayed = df["sequenced"].to_numpy(dtype=np.float64) if "sequenced" in df.columns else np.ones(len(df))
        cols.append(assayed)  # last, like its name (modality dropout zeroes the last column)
        return np.column_stack(cols).astype(np.float32) if cols else np.zeros((len(df), 0), np.float32)

    def fit_transform(self, df: pd.DataFrame) -> np.ndarray:
        return self.fit(df).transform(df)

    def to_dict(self) -> dict:
        return {"numeric": self.numeric, "categorical": self.categorical, "radiomics": self.radiomics,
                "assays": self.assays, "pool_rare": self.pool_rare, "treatments": self.treatments,
                "scaling": self.scaling, "median_": self.median_, "mean_": self.mean_, "scale_": self.scale_,
                "categories_": self.categories_, "quantiles_": self.quantiles_}

    @classmethod
    def from_dict(cls, d: dict) -> "PatientFeatureEncoder":
        # an encoder saved before ``scaling`` existed standardised its numeric columns
        return cls(**{"scaling": "standard", **d})


def spline_columns(feature_names: list[str], numeric: list[str]) -> list[int]:
    """Positions of the scaled numeric columns among the patient features: the columns the
    GNN's wide part (and the ``coxph_splines`` baseline) bend with linear-spline hinges; their
    missing flags and one-hot columns stay straight."""
    numeric = set(numeric)
    return [i for i, name in enumerate(feature_names) if name in numeric]


#: Numeric-column scalings of :class:`PatientFeatureEncoder`.
SCALINGS = ("rank_gauss", "standard")
#: Most quantiles a rank-gauss column keeps (a percentile grid, fine for any cohort size).
MAX_QUANTILES = 201


def training_quantiles(values: np.ndarray) -> list[float]:
    """The quantile grid :func:`rank_gauss` maps through: ``min(n, MAX_QUANTILES)`` evenly spaced
    quantiles of the training values (empty for a column without any)."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return []
    return np.quantile(values, np.linspace(0, 1, min(len(values), MAX_QUANTILES))).tolist()


def rank_gauss(values: np.ndarray, quantiles: list[float]) -> np.ndarray:
    """Normal scores of ``values`` (n,) by their rank among the training values, given as the grid
    of :func:`training_quantiles` (m,). Rank u in [0, 1] is interpolated on the grid, averaged over
    both directions so tied training values (a discrete score, many zeros) share the middle rank
    of their run; u is kept within [1/2m, 1 - 1/2m], so a value at or beyond either end of the
    training range gets a bounded score (about ±2.8 for m = 201), never an unbounded one. No quantiles
    (a column never observed in training) → 0."""
    v = np.asarray(values, dtype=np.float64)
    q = np.asarray(quantiles, dtype=np.float64)
    if len(q) < 2 or q[0] == q[-1]:
        return np.zeros_like(v)
    p = np.linspace(0, 1, len(q))
    u = 0.5 * (np.interp(v, q, p) - np.interp(-v, -q[::-1], -p[::-1]))
    lo = 0.5 / len(q)
    return ndtri(np.clip(u, lo, 1 - lo))


def _one_hot(values: pd.Series, vocab: list[str] | tuple[str, ...], other: bool = True) -> np.ndarray:
    vocab = list(vocab)
    idx = {v: i for i, v in enumerate(vocab)}
    n = len(vocab) + (1 if other else 0)
    out = np.zeros((len(values), n), np.float32)
    for row, v in enumerate(values.astype(str)):
        j = idx.get(v, len(vocab) if other else None)
        if j is not None:
            out[row, j] = 1.0
    return out


def node_features(label: str, df: pd.DataFrame) -> np.ndarray:
    """Features of the non-patient node types (documented per type)."""
    if label == S.GENE:  # role one-hot + driver flag
        return np.hstack([_one_hot(df["role"], ROLES, other=False),
                          df["is_driver"].to_numpy(np.float32)[:, None]])
    if label == S.MUTATION:  # variant class one-hot (+ other)
        return _one_hot(df["variant_class"], VARIANT_CLASSES)
    if label == S.PATHWAY:  # source one-hot + log pathway size
        return np.hstack([_one_hot(df["source"], sorted(df["source"].unique()), other=False),
                          (np.log1p(df["n_genes"].to_numpy(np.float32)) / 10.0)[:, None]])
    if label == S.FUSION:  # structural-variant class one-hot (+ other) + intragenic flag
        return np.hstack([_one_hot(df["sv_class"], SV_CLASSES), df["intragenic"].to_numpy(np.float32)[:, None]])
    if label == S.GENE_PANEL:
        return np.column_stack([np.log1p(df["n_genes"].to_numpy(np.float32)) / 10.0,
                                df["inferred"].to_numpy(np.float32)])
    return np.eye(len(df), dtype=np.float32)  # Treatment, RadiomicPhenotype (one per phenotype): identity


def split_edges(edge: S.EdgeType, df: pd.DataFrame) -> list[tuple[S.EdgeType, pd.DataFrame]]:
    """An edge table as model edge types: one per value of its ``S.EDGE_SUBTYPE`` column, if any
    (``HAS_CNA`` → ``HAS_CNA_AMP`` and ``HAS_CNA_HOMDEL``), else itself."""
    if S.EDGE_SUBTYPE not in df.columns:
        return [(edge, df)]
    sub = df[S.EDGE_SUBTYPE].astype(str)
    return [((edge[0], f"{edge[1]}_{re.sub(r'[^A-Za-z0-9_]', '_', v)}", edge[2]), df[(sub == v).to_numpy()])
            for v in sorted(sub.unique())]


@dataclass
class HeteroGraph:
    """A ``HeteroData`` plus what is needed to map back to ids and labels."""

    data: HeteroData
    ids: dict[str, pd.Index]
    encoder: PatientFeatureEncoder
    label_classes: list[str]
    feature_names: dict[str, list[str]]


def to_hetero(run: GraphRun, encoder: PatientFeatureEncoder | None = None,
              fit_patients: list[str] | None = None, skip_edges: frozenset = frozenset()) -> HeteroGraph:
    """Load a run into PyG.

    Args:
        run: the run folder.
        encoder: a fitted encoder to reuse (held-out/new patients); None = fit a new one.
        fit_patients: ids to fit a new encoder on (default all patients). Pass the training
            fold so no statistics of test patients leak into the features.

    Patient targets: ``y`` (class index, -1 = unknown), ``time`` (months), ``event`` (0/1)
    and ``has_survival`` (bool).
    """
    cols = run.patient_columns()
    data = HeteroData()
    ids: dict[str, pd.Index] = {}
    names: dict[str, list[str]] = {}
    patients = run.nodes(S.PATIENT)
    if encoder is None:
        encoder = PatientFeatureEncoder(cols["numeric"], cols["categorical"], cols.get("radiomics", []),
                                        cols.get("assays", []), cols.get("pool_rare", 0))
        fit_df = patients if fit_patients is None else patients[patients[S.ID].isin(set(fit_patients))]
        encoder.fit(fit_df)
    data[S.PATIENT].x = torch.from_numpy(encoder.transform(patients))
    names[S.PATIENT] = encoder.feature_names_
    ids[S.PATIENT] = pd.Index(patients[S.ID])
    classes: list[str] = []
    if cols.get("label"):
        lab = patients[L.LABEL].astype("string")
        classes = sorted(lab.dropna().unique().tolist())
        code = {c: i for i, c in enumerate(classes)}
        data[S.PATIENT].y = torch.tensor([code.get(v, -1) if v is not pd.NA else -1 for v in lab], dtype=torch.long)
    if cols.get("survival"):
        t = patients[L.OS_MONTHS].to_numpy(np.float64)
        e = patients[L.OS_EVENT].to_numpy(np.float64)
        ok = ~(np.isnan(t) | np.isnan(e))
        data[S.PATIENT].time = torch.tensor(np.nan_to_num(t), dtype=torch.float32)
        data[S.PATIENT].event = torch.tensor(np.nan_to_num(e), dtype=torch.float32)
        data[S.PATIENT].has_survival = torch.from_numpy(ok)
    for label in run.node_types():
        if label == S.PATIENT:
            continue
        df = run.nodes(label)
        if df.empty:
            continue
        data[label].x = torch.from_numpy(node_features(label, df))
        ids[label] = pd.Index(df[S.ID])
    for edge in run.edge_types():
        src, _, dst = edge
        if src not in ids or dst not in ids or edge in skip_edges:
            continue
        for model_edge, df in split_edges(edge, run.edges(edge)):
            if df.empty:
                continue
            si = ids[src].get_indexer(df[S.SRC])
            di = ids[dst].get_indexer(df[S.DST])
            if (si < 0).any() or (di < 0).any():
                raise ValueError(f"{S.edge_name(edge)}: edge endpoints missing from node tables (corrupt run?)")
            data[model_edge].edge_index = torch.from_numpy(np.vstack([si, di]).astype(np.int64))
    return HeteroGraph(data, ids, encoder, classes, names)
