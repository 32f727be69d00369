"""Radiomics → graph tables for ``build-graph`` (when the cohort config has a ``radiomics:`` section).

* ``RadiomicPhenotype`` nodes: ``id`` (``RP1`` …), ``description``, ``signature``,
  ``n_patients`` (cohort patients most likely in it), ``share``, ``method``, ``k``;
* ``Patient-HAS_PHENOTYPE->RadiomicPhenotype`` edges with ``p``, the membership probability: one
  per phenotype with p ≥ ``phenotypes.min_membership``, and always the most likely one;
* Patient columns: ``radiomics_available`` (bool), ``radiomic_phenotype`` (most likely id) and
  ``radiomic_phenotype_p``, and with ``patient_features: true`` one float column
  ``rad_<class>_<Feature>`` per selected feature: the harmonised value (imputed, log-transformed
  when skewed, batch-adjusted; not yet z-scored, so the model's encoder standardises it on
  training patients only). Patients without imaging get NaN / False / no edge.

Phenotypes are fitted here on the cohort's patients with imaging (unsupervised: no label or
outcome is read), unless ``phenotype_model`` names a saved model, whose phenotypes are then
reused without refitting. The fitted model is written into the run folder as
``radiomics/phenotype_model.json``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from graphonc.errors import InputError
from graphonc.graph import schema as S
from graphonc.graph.modalities import BuildInputs, ModalityTables
from graphonc.radiomics.features import PatientFeatures, read_feature_table
from graphonc.radiomics.phenotypes import PhenotypeModel, fit_phenotypes
from graphonc.radiomics_config import RadiomicsSpec

log = logging.getLogger("graphonc")

FEATURE_PREFIX = "rad_"
AVAILABLE = "radiomics_available"


def patient_column(feature: str) -> str:
    """``original_shape_MeshVolume`` → ``rad_shape_MeshVolume``."""
    return FEATURE_PREFIX + (feature[len("original_"):] if feature.startswith("original_") else feature)


@dataclass
class RadiomicsTables:
    nodes: pd.DataFrame
    edges: pd.DataFrame
    #: one row per cohort patient (column ``id``), the Patient columns listed in the module doc
    patient_columns: pd.DataFrame
    #: the ``rad_*`` model feature columns (empty with ``patient_features: false``)
    feature_columns: list[str]
    model: PhenotypeModel
    stats: dict = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


def radiomics_tables(spec: RadiomicsSpec, patient_ids: pd.Series) -> RadiomicsTables:
    """Phenotype nodes, membership edges and Patient columns for the cohort's ``patient_ids``.

    Raises:
        InputError: the feature table shares no patient with the cohort.
    """
    pf = read_feature_table(spec.features)
    ids = pd.Index(patient_ids.astype(str))
    known = pf.values.index.isin(ids)
    if not known.any():
        raise InputError(f"none of the {len(pf.values)} patients of the feature table is in the cohort (feature "
                         f"ids like {list(pf.values.index[:3])}, cohort ids like {list(ids[:3])}).",
                         file=pf.source, column=spec.features.patient_id,
                         hint="point radiomics.features.patient_id at the column holding the cohort's patient ids.")
    if (~known).any():
        log.warning("radiomics: %d patient(s) of the feature table are not in the cohort and are ignored",
                    int((~known).sum()))
    pf = PatientFeatures(values=pf.values.loc[known], meta=pf.meta.loc[known], source=pf.source)
    files = [pf.source]
    if spec.phenotype_model is not None:
        model = PhenotypeModel.load(spec.phenotype_model)
        assignments = model.assign(pf)
        mf = spec.phenotype_model / "phenotype_model.json" if spec.phenotype_model.is_dir() else spec.phenotype_model
        files.append(mf)
    else:
        model, assignments = fit_phenotypes(pf, spec.phenotypes)
    min_p = model.harmonizer.spec.min_membership
    long = assignments.drop(columns="p").melt(id_vars=["patient_id", "phenotype"],
                                              value_vars=[f"p_{i}" for i in model.ids], var_name="dst", value_name="p")
    long["dst"] = long["dst"].str[2:]
    long = long[(long["p"] >= min_p) | (long["dst"] == long["phenotype"])]
    edges = pd.DataFrame({S.SRC: long["patient_id"].to_numpy(dtype=object), S.DST: long["dst"].to_numpy(dtype=object),
                          "p": long["p"].to_numpy(dtype="float64")}) \
        .sort_values([S.SRC, S.DST], kind="stable").reset_index(drop=True)
    nodes = model.phenotype_table()
    counts = assignments["phenotype"].value_counts()
    nodes["n_patients"] = counts.reindex(nodes[S.ID]).fillna(0).astype("int64").to_numpy()
    nodes["share"] = nodes["n_patients"] / max(len(assignments), 1)

    cols = pd.DataFrame({S.ID: ids.to_numpy(dtype=object)})
    cols[AVAILABLE] = cols[S.ID].isin(set(pf.values.index))
    a = assignments.set_index("patient_id")
    cols["radiomic_phenotype"] = cols[S.ID].map(a["phenotype"]).astype("string")
    cols["radiomic_phenotype_p"] = cols[S.ID].map(a["p"]).astype("float64")
    feature_cols: list[str] = []
    if spec.patient_features:
        h = model.harmonizer
        batch = pf.batch(h.spec.batch_column) if h.spec.harmonization in ("per_batch", "combat") else None
        harmonised = h.harmonised(pf.values, batch)
        for f in h.selected_:
            name = patient_column(f)
            cols[name] = cols[S.ID].map(harmonised[f]).astype("float64").to_numpy()
            feature_cols.append(name)
    stats = {"patients_with_features": int(len(pf.values)), "patients_in_cohort": int(len(ids)),
             "feature_rows_not_in_cohort": int((~known).sum()), "k": model.k,
             "features_selected": len(model.harmonizer.selected_), "features_in": len(model.harmonizer.features_),
             "refit": spec.phenotype_model is None, "edges": int(len(edges))}
    return RadiomicsTables(nodes=nodes, edges=edges, patient_columns=cols, feature_columns=feature_cols, model=model,
                           stats=stats, files=files)


def modality_tables(inputs: BuildInputs) -> ModalityTables:
    """The radiomics modality of ``build-graph`` (see :mod:`graphonc.graph.modalities`)."""
    rad = radiomics_tables(inputs.cfg.radiomics, inputs.patients[S.ID])
    return ModalityTables(
        nodes={S.RADIOMIC_PHENOTYPE: rad.nodes}, edges={S.HAS_PHENOTYPE: rad.edges},
        stats={"radiomics": rad.stats}, patient_columns=rad.patient_columns, files=list(rad.files),
        patient_features={"radiomics": rad.feature_columns},
        artifacts={"radiomics/phenotype_model.json": rad.model.dumps()})
