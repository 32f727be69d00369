"""Config keys that express real cohorts, on real TCGA / MSK data: inclusion rule, sample filter,
ordinal columns, rare-category pooling, extra missing tokens, ${VAR} paths, symbol case."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from graphonc.config import load_config
from graphonc.errors import ConfigError, InputError
from graphonc.graph import schema as S
from graphonc.graph.build import build_graph
from graphonc.graph.clinical import parse_stage
from graphonc.graph.hetero import OTHER, PatientFeatureEncoder
from graphonc.ingest.symbols import load_gene_info


def _write(tmp: Path, cfg: dict, name: str = "c.yaml") -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def _tcga(data_dir: Path, study: str) -> dict:
    return {"cohort": study, "input": {"kind": "cbioportal", "study_dir": str(data_dir / "tcga" / study),
                                       "gene_panel_matrix": None},
            "clinical": {"numeric": ["AGE"], "categorical": ["SEX"]}}


def _sample_table(study: Path) -> pd.DataFrame:
    return pd.read_csv(study / "data_clinical_sample.txt", sep="\t", comment="#", dtype=str)


# ------------------------------------------------------------------ inclusion rule and sample filter


@pytest.mark.slow
def test_require_mutations_drops_patients_without_any(data_dir, tmp_path):
    """HNSC's MAF has no #Sequenced_Samples line: every sample counts as sequenced unless required."""
    study = data_dir / "tcga" / "hnsc_tcga_mc3"
    # a MAF without some patients' rows (the shape of a cohort where not everyone was sequenced)
    maf_lines = (study / "data_mutations.txt").read_text().splitlines(keepends=True)
    gone = sorted(_sample_table(study)["SAMPLE_ID"])[:7]
    local = tmp_path / "hnsc"
    local.mkdir()
    for f in study.iterdir():
        if f.name != "data_mutations.txt":
            (local / f.name).symlink_to(f)
    (local / "data_mutations.txt").write_text("".join(l for l in maf_lines if not any(g + "\t" in l for g in gone)))
    cfg = _tcga(data_dir, "hnsc_tcga_mc3")
    cfg["input"]["study_dir"] = str(local)
    before = build_graph(load_config(_write(tmp_path, cfg))).nodes[S.PATIENT]
    cfg["input"]["require"] = ["mutations"]
    g = build_graph(load_config(_write(tmp_path, cfg, "r.yaml")))
    after = g.nodes[S.PATIENT]
    samples = _sample_table(study)
    lost = set(samples.loc[samples["SAMPLE_ID"].isin(gone), "PATIENT_ID"]) - set(
        samples.loc[~samples["SAMPLE_ID"].isin(gone), "PATIENT_ID"])
    assert before["sequenced"].all() and set(before["id"]) >= lost  # today's default, kept without the rule
    assert set(after["id"]) == set(before["id"]) - lost and len(lost) >= 5
    assert (after["n_mutations"] > 0).all()
    assert g.stats["require_dropped"] == {"mutations": len(lost)}


def test_sample_filter_keeps_primary_samples_only(data_dir, tmp_path):
    study = data_dir / "prostate_msk_2024"
    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "prostate_msk_2024.yaml").read_text())
    cfg["input"]["study_dir"] = str(study)
    cfg["input"]["sample_filter"] = {"column": "SAMPLE_TYPE", "values": ["Primary"]}
    cfg["pathways"], cfg["genes"] = [], {}
    cfg["clinical"]["leakage"], cfg["clinical"]["label"] = [], None
    cfg["clinical"]["display"] = ["SAMPLE_TYPE", "GENE_PANEL"]
    g = build_graph(load_config(_write(tmp_path, cfg)))
    samples = _sample_table(study)
    primary = samples[samples["SAMPLE_TYPE"] == "Primary"]
    maf = pd.read_csv(study / "data_mutations.txt", sep="\t", comment="#", dtype=str,
                      usecols=["Tumor_Sample_Barcode", "Variant_Classification"])
    p = g.nodes[S.PATIENT].set_index(S.ID)
    # mutations, copy number and fusions come from primary samples only
    assert set(g.edges[S.HAS_MUTATION][S.SRC]) <= set(primary["PATIENT_ID"])
    assert set(g.edges[S.HAS_CNA][S.SRC]) <= set(primary["PATIENT_ID"])
    met_only = set(samples["PATIENT_ID"]) - set(primary["PATIENT_ID"])
    assert len(met_only) > 700 and not p.loc[sorted(met_only), "sequenced"].any()
    assert not p.loc[sorted(met_only), "cna_profiled"].any()
    # sample-level columns come from the primary sample, not the first sample in file order
    assert set(p["SAMPLE_TYPE"].dropna()) == {"Primary"}
    two = samples[samples["PATIENT_ID"].duplicated(keep=False)]
    for pid, rows in two.groupby("PATIENT_ID"):
        if (rows["SAMPLE_TYPE"] == "Primary").sum() == 1:
            assert p.loc[pid, "GENE_PANEL"] == rows.loc[rows["SAMPLE_TYPE"] == "Primary", "GENE_PANEL"].iloc[0]
    kept_rows = maf["Tumor_Sample_Barcode"].isin(set(primary["SAMPLE_ID"])).sum()
    assert g.stats["mutation_rows"]["read"] == kept_rows < len(maf)


def test_sample_filter_matching_nothing_names_the_values(data_dir, tmp_path):
    cfg = _tcga(data_dir, "cesc_tcga_mc3")
    cfg["input"]["sample_filter"] = {"column": "SAMPLE_TYPE", "values": ["Primary Tumor"]}
    with pytest.raises(InputError, match=r"no sample has SAMPLE_TYPE in \['Primary Tumor'\].*'Metastasis', 'Primary'"):
        build_graph(load_config(_write(tmp_path, cfg)))


# ------------------------------------------------------------------ ordinal, pooling, missing tokens


def test_stage_parser():
    assert [parse_stage(s) for s in ("Stage IVA", "Stage III", "stage ii", "IIB", "Stage 2", "Stage 0", "Tis",
                                     "Stage IVC", "I")] == [4, 3, 2, 2, 2, 0, 0, 4, 1]
    assert parse_stage("Stage X") is None and parse_stage("unknown stage") is None


@pytest.mark.slow
def test_ordinal_stage_column_on_hnsc(data_dir, tmp_path):
    study = data_dir / "tcga" / "hnsc_tcga_mc3"
    raw = pd.read_csv(study / "data_clinical_patient.txt", sep="\t", comment="#", dtype=str)
    cfg = _tcga(data_dir, "hnsc_tcga_mc3")
    cfg["clinical"]["ordinal"] = {"AJCC_PATHOLOGIC_TUMOR_STAGE": {"parse": "stage"}}
    g = build_graph(load_config(path := _write(tmp_path, cfg)))
    p = g.nodes[S.PATIENT].set_index(S.ID)
    expect = raw.set_index("PATIENT_ID")["AJCC_PATHOLOGIC_TUMOR_STAGE"].map(
        {"Stage I": 1, "Stage II": 2, "Stage III": 3, "Stage IVA": 4, "Stage IVB": 4, "Stage IVC": 4})
    assert p["AJCC_PATHOLOGIC_TUMOR_STAGE"].astype(float).equals(expect.reindex(p.index).astype(float))
    assert p["AJCC_PATHOLOGIC_TUMOR_STAGE"].isna().sum() == raw["AJCC_PATHOLOGIC_TUMOR_STAGE"].isna().sum() == 69
    # the ordinal column is a numeric model feature
    assert "AJCC_PATHOLOGIC_TUMOR_STAGE" in load_config(path).clinical.numeric_features()
    # a map must cover every value: the error names the first unmapped one, its line and the key to add it to
    cfg["clinical"]["ordinal"] = {"AJCC_PATHOLOGIC_TUMOR_STAGE": {"map": {"stage i": 1, "STAGE II": 2, "Stage III": 3}}}
    with pytest.raises(InputError) as e:
        build_graph(load_config(_write(tmp_path, cfg)))
    assert "column 'AJCC_PATHOLOGIC_TUMOR_STAGE'" in str(e.value) and "'Stage IVA'" in str(e.value)
    assert "clinical.ordinal.AJCC_PATHOLOGIC_TUMOR_STAGE.map" in str(e.value)
    cfg["clinical"]["ordinal"]["AJCC_PATHOLOGIC_TUMOR_STAGE"]["map"].update({"Stage IVA": 4, "Stage IVB": 4.5,
                                                                            "stage ivc": 5})
    p = build_graph(load_config(_write(tmp_path, cfg))).nodes[S.PATIENT]
    assert sorted(p["AJCC_PATHOLOGIC_TUMOR_STAGE"].dropna().unique()) == [1, 2, 3, 4, 4.5, 5]


def test_ordinal_twice_or_without_a_rule_is_refused(data_dir, tmp_path):
    cfg = _tcga(data_dir, "cesc_tcga_mc3")
    cfg["clinical"]["ordinal"] = {"AGE": {"parse": "stage"}}
    with pytest.raises(ConfigError, match="listed twice"):
        load_config(_write(tmp_path, cfg))
    cfg["clinical"]["ordinal"] = {"HISTOLOGICAL_GRADE": {}}
    with pytest.raises(ConfigError, match="exactly one of 'map'"):
        load_config(_write(tmp_path, cfg))


def test_missing_values_extend_the_builtin_tokens(data_dir, tmp_path):
    study = data_dir / "tcga" / "cesc_tcga_mc3"
    raw = pd.read_csv(study / "data_clinical_patient.txt", sep="\t", comment="#", dtype=str, keep_default_na=False)
    cfg = _tcga(data_dir, "cesc_tcga_mc3")
    cfg["clinical"]["categorical"] = ["SEX", "HISTOLOGICAL_GRADE"]
    cfg["clinical"]["missing_values"] = ["GX"]
    p = build_graph(load_config(_write(tmp_path, cfg))).nodes[S.PATIENT]
    grade = raw["HISTOLOGICAL_GRADE"]
    assert (grade == "GX").sum() == 23 and (grade == "").sum() == 8
    # GX (the config's token) and empty cells (a built-in token) are both missing
    assert p["HISTOLOGICAL_GRADE"].isna().sum() == 31
    assert set(p["HISTOLOGICAL_GRADE"].dropna()) == {"G1", "G2", "G3", "G4"}


def test_rare_categories_pooled_on_training_patients(prostate_run):
    p = prostate_run.nodes(S.PATIENT)
    train = p.iloc[: len(p) // 2]
    counts = train["RACE"].dropna().value_counts()
    enc = PatientFeatureEncoder([], ["RACE"], pool_rare=10).fit(train)
    kept = sorted(counts[counts >= 10].index)
    assert enc.categories_["RACE"] == kept + [OTHER] and len(counts) > len(kept)
    x = enc.transform(p)
    names = enc.feature_names_
    other = x[:, names.index(f"RACE={OTHER}")]
    race = p["RACE"].astype("string")
    rare = race.notna() & ~race.isin(kept)
    assert np.array_equal(other, rare.to_numpy(dtype=np.float32))
    assert (x[:, [names.index(f"RACE={k}") for k in kept] + [names.index(f"RACE={OTHER}"), names.index("RACE__missing")]]
            .sum(1) == 1).all()
    # fitted on the training half: pooling depends on training counts only
    assert PatientFeatureEncoder.from_dict(enc.to_dict()).transform(p).tobytes() == x.tobytes()
    assert PatientFeatureEncoder([], ["RACE"]).fit(train).categories_["RACE"] == sorted(counts.index)


# ------------------------------------------------------------------ ${VAR} and gene symbols


def test_env_vars_in_paths(data_dir, tmp_path, monkeypatch):
    cfg = _tcga(data_dir, "cesc_tcga_mc3")
    cfg["input"]["study_dir"] = "${GRAPHONC_TEST_DATA}/tcga/cesc_tcga_mc3"
    path = _write(tmp_path, cfg)
    monkeypatch.delenv("GRAPHONC_TEST_DATA", raising=False)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(path) in str(e.value) and "${GRAPHONC_TEST_DATA}, which is not set" in str(e.value)
    monkeypatch.setenv("GRAPHONC_TEST_DATA", str(data_dir))
    assert load_config(path).input.study_dir == data_dir / "tcga" / "cesc_tcga_mc3"


def test_upper_cased_symbols_fall_back_case_insensitively(data_dir):
    m = load_gene_info(data_dir / "genes" / "Homo_sapiens.gene_info.gz")
    assert m.resolve("C10ORF68") is None  # exact rules only (pathway files)
    assert m.resolve("C10ORF68", fold_case=True) == m.resolve("C10orf68") == "CCDC7"
    assert m.resolve("C17ORF64", fold_case=True) == m.resolve("C17orf64")
    # mixed-case tokens are never folded; nor upper-case tokens without a unique answer
    assert m.resolve("nsp1", fold_case=True) is None
    out, unknown = m.harmonise_series(pd.Series(["C10ORF68", "TP53", "NOTAGENE1"]), fold_case=True)
    assert out.tolist() == ["CCDC7", "TP53", "NOTAGENE1"] and unknown == ["NOTAGENE1"]
