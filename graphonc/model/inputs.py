"""What a model may see: the one place that decides every model's inputs and fits their statistics.

Every model of :mod:`graphonc.model.protocol` (GNN, MLP ablation, baselines, similarity
baselines) gets its patient features, its gene vocabulary and its graph edges from here, so
the two rules of the evaluation hold for all of them at once:

* **at diagnosis** (``model.at_diagnosis``, default): no treatment (no ``RECEIVED`` edge, no
  treatment feature) and no ``clinical.after_diagnosis`` or ``clinical.expression_derived``
  column. With ``at_diagnosis: false`` treatments and after-diagnosis columns are inputs of
  every model, a treatment's status one-hot as received / not received / unknown (so missing
  is kept apart from "not received"); ``with_expression_derived`` adds the expression calls
  (a sensitivity analysis).
* **statistics from training patients only**: :func:`fit_inputs` is the only function that
  fits anything on patients (feature encoder: medians, quantiles, means, sds, categories; gene
  vocabulary: mutation counts). It takes the training ids of a fold and nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from graphonc.graph import schema as S
from graphonc.graph.hetero import PatientFeatureEncoder
from graphonc.graph.run import GraphRun
from graphonc.model_config import ModelConfig


@dataclass(frozen=True)
class ModelInputs:
    """Which clinical columns, treatments and edge types models may use (no statistics)."""

    numeric: list[str]
    categorical: list[str]
    radiomics: list[str] = field(default_factory=list)
    treatments: list[dict] = field(default_factory=list)
    received_edges: bool = False
    #: boolean "modality profiled" Patient columns (cna_profiled, sv_profiled) and rare-category pooling
    assays: list[str] = field(default_factory=list)
    pool_rare: int = 0
    gene_min_patients: int = 1
    numeric_scaling: str = "rank_gauss"

    def allows(self, edge: tuple[str, str, str]) -> bool:
        """Whether a model may see this run edge type (RECEIVED only after diagnosis)."""
        return edge != S.RECEIVED or self.received_edges


def model_inputs(run: GraphRun, cfg: ModelConfig | None = None) -> ModelInputs:
    """The input policy of ``cfg`` (default: at diagnosis) applied to the run's declared columns."""
    cfg = cfg or ModelConfig()
    cols = run.patient_columns()
    categorical = list(cols["categorical"])
    treatments: list[dict] = []
    if not cfg.at_diagnosis:
        categorical += [c for c in cols.get("after_diagnosis", []) if c not in categorical]
        treatments = list(cols.get("treatments", []))
    if cfg.with_expression_derived:
        categorical += [c for c in cols.get("expression_derived", []) if c not in categorical]
    return ModelInputs(list(cols["numeric"]), categorical, list(cols.get("radiomics", [])), treatments,
                       received_edges=not cfg.at_diagnosis, gene_min_patients=cfg.gene_min_patients,
                       assays=list(cols.get("assays", [])), pool_rare=int(cols.get("pool_rare", 0) or 0),
                       numeric_scaling=cfg.numeric_scaling)


@dataclass
class FittedInputs:
    """Statistics fitted on one set of training patients: the encoder and the gene vocabulary."""

    spec: ModelInputs
    encoder: PatientFeatureEncoder
    genes: list[str]          # sorted gene symbols a model may see mutated
    train_ids: list[str]


def gene_vocabulary(run: GraphRun, train_ids, min_patients: int, drivers: bool = True) -> list[str]:
    """Genes mutated in at least ``min_patients`` of ``train_ids``, plus (``drivers``) known drivers
    mutated in any of them (sorted). On whole-exome cohorts this drops the ~15k genes hit once by
    a passenger."""
    from graphonc.model.tabular import patient_gene_pairs

    pairs = patient_gene_pairs(run)
    pairs = pairs[pairs["patient"].isin(set(train_ids))]
    counts = pairs["gene"].value_counts()
    keep = set(counts.index[counts >= min_patients])
    if drivers and S.GENE in run.node_types():
        g = run.nodes(S.GENE)
        if "is_driver" in g.columns:
            drivers = set(g.loc[g["is_driver"].astype(bool), S.ID])
            keep |= drivers & set(counts.index)
    return sorted(keep)


def fit_inputs(run: GraphRun, train_ids, spec: ModelInputs, gene_min_patients: int | None = None,
               drivers: bool = True) -> FittedInputs:
    """Fit the feature encoder and the gene vocabulary on ``train_ids`` only (see module doc)."""
    from graphonc.model.tabular import patient_rows

    ids = sorted(dict.fromkeys(train_ids))
    if not ids:
        raise ValueError("fit_inputs: no training patients")
    enc = PatientFeatureEncoder(spec.numeric, spec.categorical, spec.radiomics, spec.assays, spec.pool_rare,
                                treatments=spec.treatments, scaling=spec.numeric_scaling)
    enc.fit(patient_rows(run, ids))
    n = spec.gene_min_patients if gene_min_patients is None else gene_min_patients
    return FittedInputs(spec, enc, gene_vocabulary(run, ids, n, drivers), ids)


def feature_frame(run: GraphRun, ids) -> pd.DataFrame:
    """Patient rows (any patients of the run) for :meth:`PatientFeatureEncoder.transform`."""
    from graphonc.model.tabular import patient_rows

    return patient_rows(run, list(ids))
