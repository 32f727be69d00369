"""The ``radiomics phenotype`` and ``radiomics assign`` stages (plain functions the CLI calls).

``phenotype`` writes a folder (atomically: temp folder + rename)::

    <out>/
      phenotype_model.json   the fitted harmonisation + clustering (JSON; reused by assign / build-graph)
      phenotypes.parquet     id, description, signature, n_patients, share, method, k
      assignments.parquet    patient_id, phenotype, p, p_RP1 … p_RPk
      features_z.parquet     patient_id + the selected features as z-scores
      report.json            features kept/dropped (with reasons), log-transformed, k selection scores
      lineage.json           marks the folder as a phenotype output (a later --out may replace it)
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from graphonc.config import load_config
from graphonc.errors import ConfigError
from graphonc.graph import lineage
from graphonc.graph.outputs import claim_dir, claim_file
from graphonc.graph.run import atomic_dir, atomic_file, write_parquet
from graphonc.radiomics.features import PatientFeatures, read_feature_table
from graphonc.radiomics.phenotypes import MODEL_FILE, PhenotypeModel, fit_phenotypes
from graphonc.radiomics_config import FeatureTableSpec, PhenotypeSpec, RadiomicsSpec, load_params, read_yaml


def load_phenotype_settings(path: str | Path) -> tuple[PhenotypeSpec, RadiomicsSpec | None]:
    """Phenotype settings from either a radiomics params file (top-level ``phenotypes:``) or a
    cohort config (``radiomics.phenotypes``; its feature-table mapping is returned too)."""
    path = Path(path)
    raw = read_yaml(path, "config")
    if "cohort" in raw:
        cfg = load_config(path)
        if cfg.radiomics is None:
            raise ConfigError(f"{path}: the config has no 'radiomics' section. Fix: add one (see configs/hn1.yaml).")
        return cfg.radiomics.phenotypes, cfg.radiomics
    return load_params(path).phenotypes, None


#: The stage name in a phenotype folder's lineage.json.
PHENOTYPE_STAGE = "radiomics phenotype"


def feature_spec(features: Path, template: FeatureTableSpec | None) -> FeatureTableSpec:
    """The mapping for ``features``: the defaults (``patient_id`` column, pyradiomics names) for a
    Parquet file (the layout ``radiomics extract`` writes), else a cohort config's (path replaced)."""
    if template is None or Path(features).suffix.lower() == ".parquet":
        return FeatureTableSpec(path=features)
    return template.model_copy(update={"path": Path(features)})


def phenotype_run(features: PatientFeatures, spec: PhenotypeSpec, out: Path) -> tuple[PhenotypeModel, pd.DataFrame]:
    """Fit phenotypes on ``features`` and write the folder described in the module doc; ``out``
    must be new, empty or an earlier phenotype folder."""
    claim_dir(Path(out), PHENOTYPE_STAGE)
    source = Path(features.source)
    consumed = lineage.fingerprint(None, source) if source.is_file() else {}
    model, assignments = fit_phenotypes(features, spec)
    batch = features.batch(spec.batch_column) if spec.harmonization in ("per_batch", "combat") else None
    z = model.harmonizer.transform(features.values, batch)
    with atomic_dir(Path(out), PHENOTYPE_STAGE) as tmp:
        (tmp / MODEL_FILE).write_text(model.dumps(), encoding="utf-8")
        write_parquet(model.phenotype_table(), tmp / "phenotypes.parquet")
        write_parquet(assignments, tmp / "assignments.parquet")
        write_parquet(pd.concat([pd.DataFrame({"patient_id": z.index.to_numpy(dtype=object)}),
                                 z.reset_index(drop=True)], axis=1), tmp / "features_z.parquet")
        h = model.harmonizer
        report = {"features_source": str(features.source), "n_patients": int(len(features.values)),
                  "features_in": len(h.features_), "features_kept": h.selected_, "dropped": h.dropped_,
                  "log_transformed": h.log_, "harmonization": spec.harmonization, "batch_column": spec.batch_column,
                  "method": spec.method, "selection_by": spec.selection, "selection": model.selection, "k": model.k,
                  "phenotypes": model.phenotype_table().to_dict("records")}
        (tmp / "report.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
        lineage.record(tmp, PHENOTYPE_STAGE, consumed, rerun="graphonc radiomics phenotype ...")
    return model, assignments


def assign_run(model_dir: Path, features: FeatureTableSpec, out: Path) -> pd.DataFrame:
    """Assign the patients of a feature table to an existing phenotype model; write Parquet."""
    claim_file(Path(out))
    model = PhenotypeModel.load(model_dir)
    table = model.assign(read_feature_table(features))
    with atomic_file(Path(out), claim=True) as tmp:
        write_parquet(table, tmp)
    return table
