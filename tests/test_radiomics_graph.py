"""Radiomic phenotypes in the graph: build-graph on HN1 (configs/hn1.yaml), HeteroData and the
leakage-free model graph, patients without imaging, a saved phenotype model, training, Neo4j."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from graphonc.graph import schema as S
from graphonc.graph.build import build_run
from graphonc.graph.hetero import to_hetero
from graphonc.graph.run import GraphRun
from graphonc.model.data import model_graph, reverse
from graphonc.radiomics.phenotypes import PhenotypeModel

REPO = Path(__file__).resolve().parents[1]
HN1_CONFIG = REPO / "configs" / "hn1.yaml"


def hn1_variant(tmp_path: Path, name: str, **radiomics) -> Path:
    """configs/hn1.yaml with absolute data paths and ``radiomics`` keys replaced."""
    raw = yaml.safe_load(HN1_CONFIG.read_text())
    raw["input"]["clinical"] = str((HN1_CONFIG.parent / raw["input"]["clinical"]).resolve())
    feats = raw["radiomics"]["features"]
    feats["path"] = str((HN1_CONFIG.parent / feats["path"]).resolve())
    for key, value in radiomics.items():
        if isinstance(value, dict):
            raw["radiomics"].setdefault(key, {}).update(value)
        else:
            raw["radiomics"][key] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def hn1_run(tmp_path_factory) -> GraphRun:
    out = tmp_path_factory.mktemp("runs") / "hn1"
    build_run(HN1_CONFIG, out)
    return GraphRun.open(out)


def test_hn1_phenotype_nodes_and_membership_edges(hn1_run):
    model = PhenotypeModel.load(hn1_run.root / "radiomics")
    nodes = hn1_run.nodes(S.RADIOMIC_PHENOTYPE)
    edges = hn1_run.edges(S.HAS_PHENOTYPE)
    patients = hn1_run.nodes(S.PATIENT).set_index("id")
    assert list(nodes["id"]) == model.ids and 2 <= model.k <= 6
    assert nodes["description"].str.len().min() > 0 and nodes["n_patients"].sum() == 137
    assert hn1_run.manifest["counts"]["nodes"][S.RADIOMIC_PHENOTYPE] == model.k
    # every patient has its most likely phenotype as an edge, with that probability
    assert set(edges["src"]) == set(patients.index)
    best = edges.loc[edges.groupby("src")["p"].idxmax()].set_index("src")
    assert (best["dst"] == patients.loc[best.index, "radiomic_phenotype"]).all()
    np.testing.assert_allclose(best["p"], patients.loc[best.index, "radiomic_phenotype_p"])
    assert ((edges["p"] > 0) & (edges["p"] <= 1 + 1e-12)).all()
    assert (edges.groupby("src")["p"].sum() <= 1 + 1e-9).all()
    assert ((edges["p"] >= 0.1) | edges.index.isin(edges.groupby("src")["p"].idxmax())).all()
    # the patient-level feature vector: the selected features, harmonised, as model columns
    rad = hn1_run.manifest["patient_columns"]["radiomics"]
    assert rad == [("rad_" + f[len("original_"):]) for f in model.harmonizer.selected_]
    assert patients[rad].notna().all().all() and patients["radiomics_available"].all()
    # volumes (mm³, up to ~1e5 in HN1) are log-transformed before they reach the model
    assert "rad_shape_MeshVolume" in rad and patients["rad_shape_MeshVolume"].max() < 20


def test_rebuild_is_identical(hn1_run, tmp_path):
    again = build_run(HN1_CONFIG, tmp_path / "hn1")
    assert again["table_sha256"] == hn1_run.manifest["table_sha256"]
    assert (tmp_path / "hn1" / "radiomics" / "phenotype_model.json").read_text() == \
        (hn1_run.root / "radiomics" / "phenotype_model.json").read_text()


def test_hetero_and_receive_only_model_graph(hn1_run):
    g = to_hetero(hn1_run)
    k = len(hn1_run.nodes(S.RADIOMIC_PHENOTYPE))
    assert tuple(g.data[S.RADIOMIC_PHENOTYPE].x.shape) == (k, k)
    assert g.data[S.HAS_PHENOTYPE].edge_index.shape[1] == len(hn1_run.edges(S.HAS_PHENOTYPE))
    names = g.feature_names[S.PATIENT]
    assert "radiomics_available" in names and "rad_shape_MeshVolume" in names
    assert g.data[S.PATIENT].x.shape[1] == len(names)
    ids = list(g.ids[S.PATIENT])
    senders = ids[::2]
    mg = model_graph(hn1_run, senders)
    fwd = mg.data[S.HAS_PHENOTYPE].edge_index
    assert set(np.asarray(mg.ids[S.PATIENT])[fwd[0].numpy()]) == set(senders)  # only senders send
    back = mg.data[reverse(S.HAS_PHENOTYPE)].edge_index
    assert back.shape[1] == len(hn1_run.edges(S.HAS_PHENOTYPE))                # every patient receives
    # the encoder is fitted on senders only: their radiomic columns are standardised, the others not
    x = mg.data[S.PATIENT].x.numpy()
    j = mg.encoder.feature_names_.index("rad_shape_MeshVolume")
    assert abs(x[mg.senders, j].mean()) < 1e-5 and abs(x[~mg.senders, j].mean()) > 1e-3


def test_patients_without_imaging_build_and_train(tmp_path):
    """Only the 78 patients with a second GTV have features (real HN1 rows, GTV-2): the other 59
    are patients without imaging. They get no phenotype edge and radiomics_available = 0, and
    the GNN trains and embeds every patient."""
    from graphonc.model.stages import train_stage

    cfg = hn1_variant(tmp_path, "gtv2", features={"roi_values": ["GTV-2"]},
                      phenotypes={"k_max": 3, "n_init": 2})
    build_run(cfg, tmp_path / "run")
    run = GraphRun.open(tmp_path / "run")
    p = run.nodes(S.PATIENT).set_index("id")
    assert p["radiomics_available"].sum() == 78 and (~p["radiomics_available"]).sum() == 59
    without = p.index[~p["radiomics_available"]]
    rad = run.manifest["patient_columns"]["radiomics"]
    assert p.loc[without, rad].isna().all().all() and p.loc[without, "radiomic_phenotype"].isna().all()
    assert not run.edges(S.HAS_PHENOTYPE)["src"].isin(without).any()
    g = to_hetero(run)
    x = pd.DataFrame(g.data[S.PATIENT].x.numpy(), index=g.ids[S.PATIENT], columns=g.feature_names[S.PATIENT])
    assert (x.loc[without, "radiomics_available"] == 0).all() and (x.loc[without, rad] == 0).all().all()
    assert (x.drop(index=without)["radiomics_available"] == 1).all()

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 137-patient graph: intra-op threads only contend on a busy 2-core machine
    try:
        metrics = train_stage(tmp_path / "run", epochs=15)
    finally:
        torch.set_num_threads(threads)
    assert 0 <= metrics["validation"]["harrell_c"] <= 1
    emb = pd.read_parquet(tmp_path / "run" / "model" / "embeddings.parquet")
    assert len(emb) == 137 and np.isfinite(np.stack(emb["embedding"])).all()


def test_saved_phenotype_model_is_reused_without_refit(tmp_path, hn1_run):
    """build-graph with ``phenotype_model``: the saved phenotypes (fitted on the upstream train
    split) are assigned to every HN1 patient; ids, descriptions and transform are the saved ones."""
    from graphonc.radiomics.features import PatientFeatures, read_feature_table
    from graphonc.radiomics.stages import phenotype_run

    cfg = hn1_variant(tmp_path, "base")
    from graphonc.config import load_config

    spec = load_config(cfg).radiomics
    pf = read_feature_table(spec.features)
    clinical = pd.read_csv(spec.features.path.with_name("HN_ClinicalData.csv"))
    train = pf.values.index.isin(set(clinical.loc[clinical["dataset"] == "train", "id"]))
    model, _ = phenotype_run(PatientFeatures(pf.values[train], pf.meta[train], pf.source), spec.phenotypes,
                             tmp_path / "pheno")
    cfg2 = hn1_variant(tmp_path, "reuse", phenotype_model=str(tmp_path / "pheno"))
    manifest = build_run(cfg2, tmp_path / "run")
    run = GraphRun.open(tmp_path / "run")
    assert manifest["stats"]["radiomics"]["refit"] is False
    nodes = run.nodes(S.RADIOMIC_PHENOTYPE)
    assert list(nodes["id"]) == model.ids and list(nodes["description"]) == model.descriptions
    assert nodes["n_patients"].sum() == 137
    assert (run.root / "radiomics" / "phenotype_model.json").read_text() == model.dumps()
    assert any(k.endswith("phenotype_model.json") for k in manifest["inputs"])


@pytest.mark.neo4j
def test_hn1_phenotypes_load_into_neo4j(hn1_run, neo4j_settings):
    from graphonc.store.neo4j_load import load_run

    load_run(hn1_run, neo4j_settings, batch_size=1000)
    with neo4j_settings.driver() as driver:
        rec = driver.execute_query(
            "MATCH (p:Patient {cohort: $c})-[r:HAS_PHENOTYPE]->(f:RadiomicPhenotype {cohort: $c}) "
            "RETURN count(DISTINCT f) AS k, count(r) AS n, min(r.p) AS pmin, max(r.p) AS pmax, "
            "collect(DISTINCT f.description)[0] AS d", c="hn1", database_=neo4j_settings.database).records[0]
    assert rec["k"] == len(hn1_run.nodes(S.RADIOMIC_PHENOTYPE))
    assert rec["n"] == len(hn1_run.edges(S.HAS_PHENOTYPE))
    assert 0 < rec["pmin"] <= rec["pmax"] <= 1 and rec["d"]
