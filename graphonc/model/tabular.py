"""Flat patient features shared by the baselines (and a tabular MLP): clinical + mutated genes.

Columns, in order:

* the clinical encoding of :class:`graphonc.graph.hetero.PatientFeatureEncoder` (scaled
  numerics + missing flags, one-hot categoricals + missing flags, ``mutations_assayed``),
  fitted on the training patients only;
* with ``mutations=True``, one 0/1 column ``gene:<SYMBOL>`` per gene of the vocabulary: 1 if
  the patient has at least one (kept) mutation in the gene. The vocabulary is the genes
  mutated in at least ``min_patients`` **training** patients, sorted by symbol, so a gene seen
  only in test patients never becomes a column.
* with ``mutations=True`` and where the run has them, the other alterations the GNN sees, as
  0/1 columns: ``amp:<SYMBOL>`` / ``homdel:<SYMBOL>`` (copy number, HAS_CNA edges) and
  ``fusion:<A::B>`` (structural variants, HAS_FUSION edges), each kept when at least
  ``min_patients`` training patients carry it. So a baseline sees what the graph holds, and
  "the GNN beats the baselines" never means "the GNN saw the copy number and they did not"
  (the ``cna_profiled`` / ``sv_profiled`` flags come with the clinical encoding).

* with ``knots`` (the ``clinical+splines`` feature set), after the clinical encoding, the
  hinges max(z - knot, 0) of every scaled numeric column z for every knot: the linear splines
  of the GNN's wide part (``model.wide_knots``), so penalised Cox can bend an effect too.

Gene panels: a patient whose panel does not cover a gene, or who was not sequenced at all,
gets 0 for it — the same value as "covered and wild-type". No per-gene "assayed" indicator
is added (on single-panel cohorts such as METABRIC it would be constant); only the
cohort-level ``mutations_assayed`` flag from the encoder tells unsequenced patients apart.
Multi-panel cohorts should keep this in mind when reading gene coefficients.

Everything is vectorised (pandas indexers + one NumPy scatter), so 100k patients take
well under a second beyond reading the Parquet tables.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
import pandas as pd
from sksurv.util import Surv

from graphonc import layout as L
from graphonc.graph import schema as S
from graphonc.graph.hetero import spline_columns
from graphonc.graph.run import GraphRun
from graphonc.model.inputs import ModelInputs, fit_inputs, model_inputs
from graphonc.model_config import ModelConfig

#: Feature sets understood by :class:`TabularFeatures` / the baseline registry.
FEATURE_SETS = ("clinical", "clinical+mutations", "clinical+splines")
GENE_PREFIX = "gene:"
#: Alteration columns beyond mutated genes: (edge type, column prefix, edge attribute filter).
ALTERATIONS = ((S.HAS_CNA, "amp:", ("call", "AMP")), (S.HAS_CNA, "homdel:", ("call", "HOMDEL")),
               (S.HAS_FUSION, "fusion:", None))


def patient_rows(run: GraphRun, patient_ids, patients: pd.DataFrame | None = None) -> pd.DataFrame:
    """The Patient table rows for ``patient_ids``, in that order (duplicates allowed).

    Raises ``KeyError`` naming (up to 5 of) the ids that are not in the run.
    """
    p = run.nodes(S.PATIENT) if patients is None else patients
    ids = pd.Index(p[S.ID])
    want = pd.Index(list(patient_ids), dtype=object)
    pos = ids.get_indexer(want)
    if (pos < 0).any():
        missing = want[pos < 0].unique().tolist()
        raise KeyError(f"{len(missing)} patient id(s) not in run {run.root}: {missing[:5]}")
    return p.iloc[pos].reset_index(drop=True)


def patient_alteration_pairs(run: GraphRun) -> pd.DataFrame:
    """Distinct (patient, column name) pairs of the copy-number and fusion columns (see module doc);
    empty where the run has neither."""
    frames = []
    have = set(map(tuple, run.edge_types()))
    for edge, prefix, keep in ALTERATIONS:
        if tuple(edge) not in have:
            continue
        df = run.edges(edge)
        if keep is not None:
            df = df[df[keep[0]] == keep[1]]
        frames.append(pd.DataFrame({"patient": df[S.SRC].to_numpy(), "gene": prefix + df[S.DST].astype(str)}))
    if not frames:
        return pd.DataFrame({"patient": [], "gene": []}, dtype=object)
    return pd.concat(frames, ignore_index=True).drop_duplicates(ignore_index=True)


def patient_gene_pairs(run: GraphRun) -> pd.DataFrame:
    """Distinct (patient, gene) pairs with at least one mutation: columns ``patient``, ``gene``."""
    has = run.edges(S.HAS_MUTATION)[[S.SRC, S.DST]]
    in_gene = run.edges(S.IN_GENE)[[S.SRC, S.DST]]
    gene_of = pd.Series(in_gene[S.DST].to_numpy(), index=pd.Index(in_gene[S.SRC].to_numpy()))
    gene_of = gene_of[~gene_of.index.duplicated()]
    genes = gene_of.reindex(has[S.DST].to_numpy()).to_numpy()
    ok = pd.notna(genes)
    pairs = pd.DataFrame({"patient": has[S.SRC].to_numpy()[ok], "gene": genes[ok]})
    return pairs.drop_duplicates(ignore_index=True)


class TabularFeatures:
    """Clinical encoding (+ mutated-gene indicators), fitted on training patients only.

    Args:
        numeric, categorical: clinical columns; default the run manifest's
            ``patient_columns`` (leakage columns are never in those lists).
        mutations: add the per-gene 0/1 columns.
        min_patients: a gene enters the vocabulary when at least this many *training*
            patients carry a mutation in it.

    Attributes (after ``fit``): ``encoder_`` (the fitted :class:`PatientFeatureEncoder`),
    ``genes_`` (the gene vocabulary), ``feature_names_``, ``n_clinical_``.
    """

    def __init__(self, numeric: list[str] | None = None, categorical: list[str] | None = None, *,
                 mutations: bool = True, min_patients: int = 5, inputs: ModelInputs | None = None,
                 knots: Sequence[float] = ()) -> None:
        if min_patients < 1:
            raise ValueError("min_patients must be >= 1")
        self.numeric = numeric
        self.categorical = categorical
        self.mutations = mutations
        self.min_patients = int(min_patients)
        self.inputs = inputs
        self.knots = [float(k) for k in knots]

    @classmethod
    def for_feature_set(cls, name: str, knots: Sequence[float] | None = None, **kwargs) -> "TabularFeatures":
        """``"clinical"``, ``"clinical+mutations"`` or ``"clinical+splines"`` (clinical columns
        and their hinges at ``knots``, default ``model.wide_knots``'s default)."""
        if name not in FEATURE_SETS:
            raise ValueError(f"unknown feature set {name!r}; expected one of {FEATURE_SETS}")
        if name == "clinical+splines":
            kwargs["knots"] = ModelConfig().wide_knots if knots is None else knots
        return cls(mutations=name == "clinical+mutations", **kwargs)

    def fit(self, run: GraphRun, patient_ids) -> "TabularFeatures":
        """Fit the clinical encoder and the gene vocabulary on ``patient_ids`` (the training fold),
        through :func:`graphonc.model.inputs.fit_inputs` (the one place that fits statistics)."""
        ids = list(dict.fromkeys(patient_ids))
        if not ids:
            raise ValueError("TabularFeatures.fit: no training patients")
        spec = self.inputs or model_inputs(run)
        if self.numeric is not None or self.categorical is not None:
            spec = replace(spec, numeric=list(spec.numeric if self.numeric is None else self.numeric),
                           categorical=list(spec.categorical if self.categorical is None else self.categorical))
        fitted = fit_inputs(run, ids, spec, gene_min_patients=self.min_patients, drivers=False)
        self.encoder_ = fitted.encoder
        names = self.encoder_.feature_names_
        self.spline_columns_ = spline_columns(names, self.encoder_.numeric) if self.knots else []
        names = names + [f"{names[c]}>{k:g}" for c in self.spline_columns_ for k in self.knots]
        self.n_clinical_ = len(names)
        self.genes_: list[str] = fitted.genes if self.mutations else []
        self.alterations_: list[str] = []
        if self.mutations:
            alt = patient_alteration_pairs(run)
            counts = alt[alt["patient"].isin(set(ids))]["gene"].value_counts()
            self.alterations_ = sorted(counts.index[counts >= self.min_patients])
        self.feature_names_ = names + [GENE_PREFIX + g for g in self.genes_] + self.alterations_
        return self

    def transform(self, run: GraphRun, patient_ids) -> np.ndarray:
        """Features of ``patient_ids`` (any patients of the run), shape (n, len(feature_names_)), float32."""
        if not hasattr(self, "encoder_"):
            raise RuntimeError("TabularFeatures.transform called before fit")
        ids = list(patient_ids)
        rows = patient_rows(run, ids)
        clinical = self.encoder_.transform(rows)
        if self.spline_columns_:
            clinical = hinges(clinical, self.spline_columns_, self.knots)
        if not self.genes_ and not self.alterations_:
            return clinical
        return np.hstack([clinical, _indicators(ids, patient_gene_pairs(run), self.genes_),
                          _indicators(ids, patient_alteration_pairs(run), self.alterations_)])

    def fit_transform(self, run: GraphRun, patient_ids) -> np.ndarray:
        return self.fit(run, patient_ids).transform(run, patient_ids)


def hinges(x: np.ndarray, columns: list[int], knots: Sequence[float]) -> np.ndarray:
    """(n, F) → (n, F + C·T): the features, then for each of the C ``columns`` and T ``knots``
    the hinge max(x - knot, 0) (column-major: a column's hinges side by side), as
    :meth:`graphonc.model.gnn.PatientGNN.wide_inputs` builds the wide part's input."""
    z = x[:, columns, None] - np.asarray(knots, dtype=x.dtype)
    return np.hstack([x, np.maximum(z, 0.0).reshape(len(x), -1)]).astype(x.dtype, copy=False)


def _indicators(ids: list, pairs: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """(len(ids), len(columns)) 0/1: 1 where (patient, column) is a row of ``pairs`` (columns patient, gene)."""
    out = np.zeros((len(ids), len(columns)), np.float32)
    if not columns or pairs.empty:
        return out
    col = pd.Index(columns).get_indexer(pairs["gene"])
    pairs = pairs[col >= 0].assign(col=col[col >= 0])
    # patient id -> every row position it occupies in `ids` (duplicates allowed)
    hit = pd.DataFrame({"patient": ids, "row": np.arange(len(ids))}).merge(pairs, on="patient", how="inner")
    out[hit["row"].to_numpy(), hit["col"].to_numpy()] = 1.0
    return out


# ---------------------------------------------------------------------------- targets


def has_survival(df: pd.DataFrame) -> np.ndarray:
    """Bool mask of patients with a known overall-survival time and event."""
    return (df[L.OS_MONTHS].notna() & df[L.OS_EVENT].notna()).to_numpy(dtype=bool)


def survival_target(df: pd.DataFrame) -> np.ndarray:
    """sksurv structured array (``event`` bool, ``time`` float months) from a Patient table.

    Raises ``ValueError`` if a patient has no survival — select with :func:`has_survival` first.
    """
    ok = has_survival(df)
    if not ok.all():
        raise ValueError(f"{int((~ok).sum())} patient(s) without survival; filter with has_survival(df) first")
    time = df[L.OS_MONTHS].to_numpy(np.float64)
    event = df[L.OS_EVENT].to_numpy(np.float64)
    if (time < 0).any() or not np.isin(event, (0.0, 1.0)).all():
        raise ValueError("os_months must be >= 0 and os_event 0/1")
    return Surv.from_arrays(event=event.astype(bool), time=time, name_event="event", name_time="time")


def label_classes(df: pd.DataFrame) -> list[str]:
    """Sorted diagnosis labels present in the table (same order as ``to_hetero``'s ``label_classes``);
    empty for a cohort without a label column."""
    if L.LABEL not in df.columns:
        return []
    return sorted(df[L.LABEL].dropna().astype(str).unique().tolist())


def has_label(df: pd.DataFrame) -> np.ndarray:
    """Bool mask of patients with a diagnosis label."""
    return df[L.LABEL].notna().to_numpy(dtype=bool)


def encode_labels(df: pd.DataFrame, classes: list[str]) -> np.ndarray:
    """Class index per patient (int64), -1 where the label is missing or not in ``classes``."""
    lab = df[L.LABEL].astype("string").astype(object).where(df[L.LABEL].notna(), None)
    return pd.Categorical(lab, categories=list(classes)).codes.astype(np.int64)
