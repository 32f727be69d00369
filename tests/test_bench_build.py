"""scripts/bench_build.py: the synthetic cohort generator and one small benchmark run (no timing checks)."""
from __future__ import annotations

import json

import pytest

from graphonc.graph import schema as S
from graphonc.ingest.tables import read_table

from conftest import load_script

N = 300


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_build")


@pytest.fixture(scope="module")
def metabric_src(bench, data_dir):
    return bench.Metabric(data_dir / "metabric")


@pytest.mark.slow  # generates a cohort and times build-graph in a subprocess
def test_benchmark_builds_a_synthetic_cohort(bench, tmp_path, capsys):
    report = bench.main(["--sizes", str(N), "--workdir", str(tmp_path), "--json-out", str(tmp_path / "bench.json")])
    assert json.loads(capsys.readouterr().out) == report == json.loads((tmp_path / "bench.json").read_text())
    (r,) = report["results"]
    assert r["n_patients"] == N and report["mutation_scale"] == 3.0
    assert r["counts"]["nodes"][S.PATIENT] == N
    assert r["counts"]["nodes"]["GenePanel"] == 1 and r["counts"]["edges"]["Patient__SEQUENCED_WITH__GenePanel"] == N
    # METABRIC has 6.9 MAF rows per patient (incl. Silent); x3 gives ~21 (a sample of 300 varies a little)
    assert 14 < r["maf_rows_per_patient"] < 28
    assert r["mutation_rows"]["read"] == r["maf_rows"]
    assert 0.6 < r["mutation_rows"]["kept"] / r["maf_rows"] < 0.9  # ~75% of METABRIC's rows are protein-altering
    assert r["counts"]["edges"]["Patient__HAS_MUTATION__Mutation"] > 0.9 * r["mutation_rows"]["kept"]
    assert r["seconds"] > 0 and r["peak_rss_mb"] > 50 and r["rows_per_s"] > 0
    assert set(r["timings_s"]) >= {"cohort", "mutations", "pathways"}
    assert report["machine"]["cpu_count"] >= 1 and report["machine"]["graphonc_version"]


def test_synthetic_study_looks_like_metabric(bench, metabric_src, tmp_path, data_dir):
    study = tmp_path / "study"
    facts = bench.generate_cohort(metabric_src, N, study, seed=0)
    real = data_dir / "metabric"

    patients = read_table(study / "data_clinical_patient.txt", required=["PATIENT_ID"])
    samples = read_table(study / "data_clinical_sample.txt", required=["SAMPLE_ID", "PATIENT_ID"])
    real_patients = read_table(real / "data_clinical_patient.txt")
    assert len(patients.df) == len(samples.df) == N == facts["n_patients"]
    assert patients.df["PATIENT_ID"].is_unique
    assert list(patients.df.columns) == list(real_patients.df.columns)
    assert int(patients.df.index[0]) == int(real_patients.df.index[0])  # same four '#' lines + header
    for col in ("CLAUDIN_SUBTYPE", "OS_STATUS", "CHEMOTHERAPY"):  # values are real METABRIC values
        assert set(patients.df[col]) <= set(real_patients.df[col])

    maf = read_table(study / "data_mutations_extended.txt")
    real_maf = read_table(real / "data_mutations_extended.txt")
    assert len(maf.df) == facts["maf_rows"]
    assert list(maf.df.columns) == list(real_maf.df.columns)
    assert set(maf.df["Tumor_Sample_Barcode"]) <= set(samples.df["SAMPLE_ID"])
    assert set(maf.df["Hugo_Symbol"]) <= set(real_maf.df["Hugo_Symbol"])
    assert "MLL2" in set(maf.df["Hugo_Symbol"])  # old symbols come through as METABRIC writes them
    assert set(maf.df["Variant_Classification"]) <= set(real_maf.df["Variant_Classification"])
    per_patient = maf.df["Tumor_Sample_Barcode"].value_counts()
    assert per_patient.max() <= 3 * 103  # METABRIC's largest patient, x3
    assert (study / "data_gene_panel.txt").read_text().split() == (real / "data_gene_panel.txt").read_text().split()


def test_generator_is_deterministic(bench, metabric_src, tmp_path):
    files = ["data_clinical_patient.txt", "data_mutations_extended.txt"]
    bench.generate_cohort(metabric_src, 50, tmp_path / "a", seed=0)
    bench.generate_cohort(metabric_src, 50, tmp_path / "b", seed=0)
    bench.generate_cohort(metabric_src, 50, tmp_path / "c", seed=1)
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    assert (tmp_path / "a" / files[1]).read_bytes() != (tmp_path / "c" / files[1]).read_bytes()


def test_config_points_at_the_synthetic_study(bench, tmp_path, data_dir):
    from graphonc.config import load_config

    path = bench.write_config(tmp_path / "study", tmp_path / "synthetic.yaml", N)
    cfg = load_config(path)
    assert cfg.cohort == f"synthetic_{N}"
    assert cfg.input.study_dir == (tmp_path / "study").resolve()
    assert cfg.genes.gene_info == (data_dir / "genes" / "Homo_sapiens.gene_info.gz").resolve()
    assert all(p.path.is_file() for p in cfg.pathways)
    assert cfg.genes.aliases == {"MLL2": "KMT2D"}
    assert cfg.clinical.label.column == "CLAUDIN_SUBTYPE"
