"""A second real cohort with other clinical columns, no treatments and several gene panels."""
from __future__ import annotations

import pandas as pd

from graphonc.graph import schema as S
from graphonc.graph.hetero import to_hetero


def test_prostate_builds_with_same_code(prostate_run, data_dir):
    d = data_dir / "prostate_msk_2024"
    patients = pd.read_csv(d / "data_clinical_patient.txt", sep="\t", comment="#", dtype=str)
    nodes = prostate_run.nodes(S.PATIENT)
    assert len(nodes) == len(patients) == 2257
    # '1:DECEASED' statuses use their numeric prefix; a status without a time is no endpoint
    has_time = patients["OS_MONTHS"].notna()
    assert nodes["os_event"].sum() == ((patients["OS_STATUS"] == "1:DECEASED") & has_time).sum()
    assert nodes["os_months"].notna().sum() == has_time.sum() == 2201
    assert prostate_run.manifest["counts"]["nodes"]["Treatment"] == 0


def test_sample_barcodes_map_to_patients(prostate_run, data_dir):
    d = data_dir / "prostate_msk_2024"
    maf = pd.read_csv(d / "data_mutations.txt", sep="\t", comment="#", dtype=str, usecols=["Tumor_Sample_Barcode"])
    samples = pd.read_csv(d / "data_clinical_sample.txt", sep="\t", comment="#", dtype=str)
    expected = set(maf["Tumor_Sample_Barcode"].map(dict(zip(samples["SAMPLE_ID"], samples["PATIENT_ID"]))))
    edges = prostate_run.edges(S.HAS_MUTATION)
    assert set(edges["src"]) <= expected and len(expected - set(edges["src"])) < 5
    assert not edges["src"].str.contains("-T0").any()


def test_panels_mark_what_was_assayed(prostate_run, data_dir):
    matrix = pd.read_csv(data_dir / "prostate_msk_2024" / "data_gene_panel_matrix.txt", sep="\t", dtype=str)
    panels = prostate_run.nodes(S.GENE_PANEL)
    assert set(panels["id"]) == set(matrix["mutations"].dropna())
    covers = prostate_run.edges(S.COVERS)
    seq = prostate_run.edges(S.SEQUENCED_WITH)
    has = prostate_run.edges(S.HAS_MUTATION)
    mut_gene = prostate_run.nodes(S.MUTATION).set_index("id")["gene"]
    # every observed mutation lies on a gene its patient's panel(s) cover
    cov = covers.groupby("src")["dst"].agg(set)
    pat_panels = seq.groupby("src")["dst"].agg(set)
    for pid, mid in has.sample(500, random_state=0)[["src", "dst"]].itertuples(index=False):
        assert any(mut_gene[mid] in cov[p] for p in pat_panels[pid])
    # panels differ: the smallest panel does not cover everything the largest does
    sizes = panels.set_index("id")["n_genes"]
    assert sizes.min() < sizes.max()
    # three patients with two samples can have two panels
    assert (seq.groupby("src").size() > 1).sum() >= 1


def test_prostate_hetero(prostate_run):
    g = to_hetero(prostate_run)
    assert "Treatment" not in g.data.node_types
    assert g.label_classes == ["Metastasis", "Primary"]
    assert g.data["Patient"].x.shape[0] == 2257
