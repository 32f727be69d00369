"""Real cohorts rewritten with hostile names: headers, ids and values a hospital table could carry.

Each writer copies real data from ../shared/data into a temp folder as plain tables (nothing is
invented but the names), renames what it is told to, and writes a config that refers to the
columns by their (hostile) names, as a user would.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

#: Column names that end a backtick-quoted identifier, open comments, break lines or differ only
#: by such characters. ``\\u0060`` is the six characters Neo4j decodes to a backtick.
HOSTILE_HEADERS = [
    "AGE` = 1 WITH n MATCH (m) DETACH DELETE m //",
    "AGE\\u0060 = 1 WITH n MATCH (m) DETACH DELETE m //",
    "NPI */ MATCH (m) DETACH DELETE m /*",
    "NPI // DETACH DELETE",
    "TUMOR SIZE",
    "TUMOR\nSIZE",
    "GRADE`",
    "5yr grade",
    "âge_ménopause",
    "ER`IHC",
    "ER\\u0060IHC",
]


def _clinical_metabric(data: Path) -> pd.DataFrame:
    return pd.read_csv(data / "metabric" / "data_clinical_patient.txt", sep="\t", comment="#", dtype=str,
                       keep_default_na=False)


def write_metabric_tables(data: Path, out: Path, n: int = 400, columns: dict[str, str] | None = None,
                          ids: dict[str, str] | None = None, labels: dict[str, str] | None = None,
                          mutation_headers: dict[str, str] | None = None, cohort: str = "hostile_metabric",
                          extra_survival: str = "dss") -> Path:
    """The first ``n`` METABRIC patients with survival as plain tables + a config; returns the config.

    ``columns``: clinical column → new header; ``ids``: patient id → new id (also in the mutation
    table); ``labels``: patient id → a new CLAUDIN_SUBTYPE value; ``mutation_headers``: the long
    mutation table's headers (patient_id, gene, protein_change, variant_class, vaf) → new header;
    ``extra_survival``: the config's name of the disease-specific endpoint.
    """
    out.mkdir(parents=True, exist_ok=True)
    columns, ids, labels, mh = columns or {}, ids or {}, labels or {}, mutation_headers or {}
    clin = _clinical_metabric(data)
    clin = clin[(clin["OS_MONTHS"] != "") & (clin["OS_STATUS"] != "")].head(n).copy()
    for pid, lab in labels.items():
        clin.loc[clin["PATIENT_ID"] == pid, "CLAUDIN_SUBTYPE"] = lab
    keep = set(clin["PATIENT_ID"])
    clin["PATIENT_ID"] = clin["PATIENT_ID"].map(lambda p: ids.get(p, p))
    samples = pd.read_csv(data / "metabric" / "data_clinical_sample.txt", sep="\t", comment="#", dtype=str,
                          keep_default_na=False)
    clin = clin.merge(samples[["PATIENT_ID", "GRADE", "TUMOR_SIZE", "ER_STATUS"]]
                      .assign(PATIENT_ID=lambda d: d["PATIENT_ID"].map(lambda p: ids.get(p, p))), on="PATIENT_ID",
                      how="left")
    clin = clin.rename(columns=columns)
    clin.to_csv(out / "clinical.tsv", sep="\t", index=False, quoting=0)
    maf = pd.read_csv(data / "metabric" / "data_mutations_extended.txt", sep="\t", comment="#", dtype=str,
                      keep_default_na=False, usecols=["Hugo_Symbol", "HGVSp_Short", "Variant_Classification",
                                                      "Tumor_Sample_Barcode", "t_alt_count", "t_ref_count"])
    maf = maf[maf["Tumor_Sample_Barcode"].isin(keep)]
    alt, ref = pd.to_numeric(maf["t_alt_count"], errors="coerce"), pd.to_numeric(maf["t_ref_count"], errors="coerce")
    muts = pd.DataFrame({"patient_id": maf["Tumor_Sample_Barcode"].map(lambda p: ids.get(p, p)),
                         "gene": maf["Hugo_Symbol"], "protein_change": maf["HGVSp_Short"].str.replace("p.", "", n=1),
                         "variant_class": maf["Variant_Classification"], "vaf": (alt / (alt + ref)).round(4)})
    muts = muts.rename(columns=mh)
    muts.to_csv(out / "mutations.tsv", sep="\t", index=False, quoting=0)
    c = lambda name: columns.get(name, name)  # noqa: E731 - the name the config must use
    cfg = {
        "cohort": cohort,
        "input": {"kind": "tables", "clinical": str(out / "clinical.tsv"), "mutations": str(out / "mutations.tsv"),
                  "patient_id_column": c("PATIENT_ID")},
        "clinical": {
            "numeric": [c("AGE_AT_DIAGNOSIS"), c("NPI"), c("TUMOR_SIZE"), c("GRADE")],
            "categorical": [c("ER_IHC"), c("HER2_SNP6"), c("INFERRED_MENOPAUSAL_STATE"), c("CELLULARITY"),
                            c("ER_STATUS")],
            "display": [c("COHORT"), c("VITAL_STATUS")],
            "label": {"column": c("CLAUDIN_SUBTYPE"), "missing_values": ["NC"]},
            "survival": {"time": c("OS_MONTHS"), "event": c("OS_STATUS")},
            "extra_survival": {extra_survival: {"time": c("OS_MONTHS"), "event": c("VITAL_STATUS"),
                                                "event_values": ["Died of Disease"],
                                                "censored_values": ["Living", "Died of Other Causes"]}},
        },
        "treatments": [{"name": "chemotherapy", "column": c("CHEMOTHERAPY")},
                       {"name": "radiotherapy", "column": c("RADIO_THERAPY")}],
        "mutations": {"exclude_variant_classes": ["Silent", "Intron", "3'UTR", "5'UTR", "3'Flank", "5'Flank", "IGR",
                                                  "RNA", "Splice_Region"],
                      "columns": {k: mh.get(k, k) for k in ("patient_id", "gene", "protein_change", "variant_class",
                                                            "vaf")}},
        "genes": {"intogen": str(data / "genes" / "IntOGen_Compendium_Cancer_Genes_2020-02-02.tsv")},
        "model": {"hidden": 16, "embedding_dim": 8, "epochs": 8, "patience": 8, "seed": 0, "ensemble": 1},
    }
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def write_hn1_tables(data: Path, out: Path, columns: dict[str, str], features: dict[str, str],
                     endpoint: str, cohort: str = "hostile_hn1") -> Path:
    """HN1 (clinical + published radiomic features) with renamed clinical ``columns`` and radiomic
    ``features`` headers and the recurrence endpoint named ``endpoint``; returns the config."""
    out.mkdir(parents=True, exist_ok=True)
    src = data / "radiomics" / "hn1"
    clin = pd.read_csv(src / "HN_ClinicalData.csv", dtype=str, keep_default_na=False).rename(columns=columns)
    clin.to_csv(out / "clinical.csv", index=False)
    rad = pd.read_csv(src / "HN_Radiomics.csv", dtype=str, keep_default_na=False).rename(columns=features)
    rad.to_csv(out / "radiomics.csv", index=False)
    c = lambda name: columns.get(name, name)  # noqa: E731
    cfg = {
        "cohort": cohort,
        "input": {"kind": "tables", "clinical": str(out / "clinical.csv"), "patient_id_column": "id"},
        "clinical": {
            "numeric": [c("age_at_diagnosis"), c("performance_status_ecog"), c("clin_t"), c("clin_n"),
                        c("pretreat_hb_in_mmolperlitre")],
            "categorical": [c("index_tumour_location"), c("biological_sex"), c("overall_hpv_p16_status")],
            "display": [c("dataset"), c("chemotherapy_given")],
            "survival": {"time": c("overall_survival_in_days"), "event": c("event_overall_survival"), "unit": "days"},
            "extra_survival": {endpoint: {"time": c("recurrence_metastatic_free_survival_in_days"),
                                          "event": c("event_recurrence_metastatic_free_survival"), "unit": "days"}},
        },
        "treatments": [{"name": "chemotherapy", "column": c("chemotherapy_given"),
                        "received_values": ["concomitant", "concurrent"]}],
        "radiomics": {
            "features": {"path": str(out / "radiomics.csv"), "patient_id": "id", "roi_column": "Structure",
                         "roi_values": ["GTV-1"]},
            "phenotypes": {"harmonization": "zscore", "method": "gmm", "k_min": 2, "k_max": 3, "selection": "bic",
                           "covariance_type": "diag", "n_init": 2, "seed": 0, "min_membership": 0.1},
            "patient_features": True,
        },
    }
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path
