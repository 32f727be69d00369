"""The METABRIC graph against independent pandas computations on the raw files."""
from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from graphonc.graph import schema as S
from graphonc.graph.build import build_run
from graphonc.graph.run import GraphRun

from conftest import CONFIGS

NON_CODING = {"Silent", "Intron", "3'UTR", "5'UTR", "3'Flank", "5'Flank", "IGR", "RNA", "Splice_Region"}


@pytest.fixture(scope="module")
def raw(data_dir):
    d = data_dir / "metabric"
    patients = pd.read_csv(d / "data_clinical_patient.txt", sep="\t", comment="#", dtype=str)
    samples = pd.read_csv(d / "data_clinical_sample.txt", sep="\t", comment="#", dtype=str)
    maf = pd.read_csv(d / "data_mutations_extended.txt", sep="\t", skiprows=1, dtype=str, keep_default_na=False)
    coding = maf[~maf["Variant_Classification"].isin(NON_CODING)].copy()
    return patients, samples, maf, coding


def test_patient_count_matches_raw(metabric_run, raw):
    patients, *_ = raw
    nodes = metabric_run.nodes(S.PATIENT)
    assert len(nodes) == len(patients) == 2509
    assert set(nodes["id"]) == set(patients["PATIENT_ID"])


def test_mutation_edges_and_nodes_match_raw(metabric_run, raw):
    *_, coding = raw
    # the graph keys a variant by gene and protein change (coding change when there is none)
    change = coding["HGVSp_Short"].where(coding["HGVSp_Short"] != "", coding["HGVSc"])
    pairs = set(zip(coding["Tumor_Sample_Barcode"], coding["Hugo_Symbol"], change))
    edges = metabric_run.edges(S.HAS_MUTATION)
    assert len(edges) == len(pairs)
    assert len(coding) == 13023  # the README's protein-altering row count
    variants = {(g, c) for _, g, c in pairs}
    assert len(metabric_run.nodes(S.MUTATION)) == len(variants)
    mutated_patients = {p for p, _, _ in pairs}
    assert set(edges["src"]) == mutated_patients


def test_gene_count_and_old_symbols(metabric_run, data_dir):
    genes = metabric_run.nodes(S.GENE)
    panel_line = (data_dir / "metabric" / "data_gene_panel.txt").read_text().splitlines()
    panel = [ln.split(":", 1)[1].split() for ln in panel_line if ln.startswith("gene_list")][0]
    assert len(genes) == len(set(panel)) == 173
    ids = set(genes["id"])
    # old symbols harmonised through gene_info (MLL2 via the config alias)
    assert {"KMT2D", "AFDN", "ADGRA2", "LARGE1"} <= ids
    assert not {"MLL2", "MLLT4", "GPR124", "LARGE"} & ids
    mut = metabric_run.nodes(S.MUTATION)
    assert (mut["gene"] == "KMT2D").sum() > 0 and not mut["id"].str.startswith("MLL2:").any()


def test_known_patient_mutations_are_edges(metabric_run, raw):
    *_, coding = raw
    pid = "MB-0002"
    expected = {f"{g}:{c}" for g, c in zip(coding.loc[coding["Tumor_Sample_Barcode"] == pid, "Hugo_Symbol"],
                                            coding.loc[coding["Tumor_Sample_Barcode"] == pid, "HGVSp_Short"])}
    assert expected, "MB-0002 has protein-altering mutations in the MAF"
    edges = metabric_run.edges(S.HAS_MUTATION)
    assert set(edges.loc[edges["src"] == pid, "dst"]) == expected
    # the most frequent hotspot has the right number of carriers
    hot = edges[edges["dst"] == "PIK3CA:p.H1047R"]
    assert len(hot) == ((coding["Hugo_Symbol"] == "PIK3CA") & (coding["HGVSp_Short"] == "p.H1047R")).sum() == 424


def test_clinical_typing_and_survival(metabric_run, raw):
    patients, samples, *_ = raw
    nodes = metabric_run.nodes(S.PATIENT).set_index("id")
    p = patients.set_index("PATIENT_ID")
    age = pd.to_numeric(p["AGE_AT_DIAGNOSIS"], errors="coerce")
    assert np.allclose(nodes.loc[age.index, "AGE_AT_DIAGNOSIS"], age, equal_nan=True)
    # 'DECEASED'-style statuses (no 1: prefix) → events
    assert int(nodes["os_event"].sum()) == (p["OS_STATUS"] == "DECEASED").sum() == 1143
    assert nodes["os_months"].notna().sum() == 1980
    # sample-level columns come from the sample file
    s = samples.set_index("PATIENT_ID")
    assert (nodes.loc[s.index, "ER_STATUS"].astype(object).fillna("") == s["ER_STATUS"].fillna("")).all()
    # NC subtype is treated as missing; the other six classes keep their counts
    labels = nodes["label"].value_counts()
    assert labels.to_dict() == {"LumA": 700, "LumB": 475, "Her2": 224, "claudin-low": 218, "Basal": 209,
                                "Normal": 148}
    have_all = nodes["os_months"].notna() & nodes["label"].notna() & (nodes["n_mutations"] > 0)
    assert have_all.sum() > 1800


def test_treatments(metabric_run, raw):
    patients, *_ = raw
    rec = metabric_run.edges(S.RECEIVED)
    assert (rec["dst"] == "chemotherapy").sum() == (patients["CHEMOTHERAPY"] == "YES").sum() == 412
    assert (rec["dst"] == "mastectomy").sum() == (patients["BREAST_SURGERY"] == "MASTECTOMY").sum()


def test_gene_roles(metabric_run):
    genes = metabric_run.nodes(S.GENE).set_index("id")
    assert genes.loc["TP53", "role"] == "tumour_suppressor"
    assert genes.loc["PIK3CA", "role"] == "oncogene"
    assert genes.loc["PIK3CA", "is_driver"]
    assert set(genes["role"]) <= {"oncogene", "tumour_suppressor", "both", "unknown"}


def test_pathways_touch_mutated_genes(metabric_run, data_dir):
    pw = metabric_run.nodes(S.PATHWAY)
    inpw = metabric_run.edges(S.IN_PATHWAY)
    mutated = set(metabric_run.nodes(S.MUTATION)["gene"])
    assert set(pw["id"]) == set(inpw["dst"])
    assert set(inpw["src"]) <= mutated | set(metabric_run.nodes(S.GENE)["id"])
    touched = set(inpw.loc[inpw["src"].isin(mutated), "dst"])
    assert touched == set(pw["id"])
    stats = metabric_run.manifest["stats"]["pathways"]
    for src, s in stats.items():
        assert s["kept"] + s["dropped_by_size"] + s["dropped_no_mutated_gene"] == s["sets"]
        assert s["kept"] == (pw["source"] == src).sum()
    # WikiPathways lists Entrez ids: TP53 is Entrez 7157 and must arrive as a symbol
    with gzip.open(data_dir / "genes" / "Homo_sapiens.gene_info.gz", "rt") as fh:
        assert any(line.split("\t")[1:3] == ["7157", "TP53"] for line in fh)
    wp = inpw[inpw["dst"].str.startswith("wikipathways:")]
    assert "TP53" in set(wp["src"]) and not wp["src"].str.fullmatch(r"\d+").any()


def test_manifest(metabric_run):
    m = metabric_run.manifest
    assert m["cohort"] == "metabric" and len(m["config_hash"]) == 64
    assert "metabric/data_mutations_extended.txt" in m["inputs"]
    assert m["counts"]["nodes"]["Patient"] == 2509
    assert all(len(h["sha256"]) == 64 for h in m["inputs"].values())


def test_rebuild_is_identical(metabric_run, tmp_path):
    build_run(CONFIGS / "metabric.yaml", tmp_path / "again")
    again = GraphRun.open(tmp_path / "again")
    assert again.manifest["table_sha256"] == metabric_run.manifest["table_sha256"]
    for label in metabric_run.node_types():
        pd.testing.assert_frame_equal(again.nodes(label), metabric_run.nodes(label))


def test_run_folder_and_files_are_owner_only(metabric_run):
    """Runs hold patient data: 0700 folders and 0600 files whatever the umask (tests/test_hostile.py
    checks a permissive umask and the config setting that widens it)."""
    import stat

    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    folders = [p for p in metabric_run.root.rglob("*") if p.is_dir()] + [metabric_run.root]
    files = [p for p in metabric_run.root.rglob("*") if p.is_file()]
    assert files and {mode(p) for p in folders} == {0o700}
    assert {mode(p) for p in files} == {0o600}
