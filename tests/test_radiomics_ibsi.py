"""End to end from images: the 12 IBSI soft-tissue-sarcoma CTs → extract → phenotype → build-graph
→ HeteroData → GNN forward pass. (The cohort has no outcome or diagnosis, so `train` refuses with
a clear message; training on radiomic phenotypes is covered on HN1.)"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from graphonc.cli import app
from graphonc.errors import GraphoncError
from graphonc.graph import schema as S
from graphonc.graph.run import GraphRun

pytestmark = pytest.mark.slow  # extracts, phenotypes and trains on the 12 IBSI CTs

REPO = Path(__file__).resolve().parents[1]
IDS = ["STS_001", "STS_002", "STS_003", "STS_004", "STS_005", "STS_006", "STS_008", "STS_010", "STS_012",
       "STS_014", "STS_015", "STS_018"]


@pytest.fixture(scope="module")
def ibsi(tmp_path_factory, data_dir):
    tmp = tmp_path_factory.mktemp("ibsi")
    root = data_dir / "radiomics" / "ibsi_sts"
    manifest = tmp / "manifest.csv"
    pd.DataFrame([{"patient_id": i, "image": root / i / "CT_image.nii.gz", "mask": root / i / "CT_mask.nii.gz",
                   "modality": "CT"} for i in IDS]).to_csv(manifest, index=False)
    params = yaml.safe_load((REPO / "configs" / "radiomics.yaml").read_text())
    params["pyradiomics"]["setting"]["resampledPixelSpacing"] = [4, 4, 4]  # coarse grid: test speed
    (tmp / "params.yaml").write_text(yaml.safe_dump(params))
    res = CliRunner().invoke(app, ["-q", "radiomics", "extract", "--manifest", str(manifest), "--params",
                                   str(tmp / "params.yaml"), "--out", str(tmp / "features.parquet"),
                                   "--cache", str(tmp / "cache"), "--workers", "2", "--strict"])
    assert res.exit_code == 0, res.output
    config = {
        "cohort": "ibsi_sts",
        "input": {"kind": "tables", "clinical": str(manifest), "patient_id_column": "patient_id"},
        "clinical": {"display": ["modality"]},
        "radiomics": {"features": {"path": str(tmp / "features.parquet")},
                      "phenotypes": {"k_min": 2, "k_max": 3, "n_init": 3, "seed": 0, "covariance_type": "spherical"}},
    }
    (tmp / "ibsi.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return tmp


def test_extracted_ct_features(ibsi):
    feats = pd.read_parquet(ibsi / "features.parquet")
    assert list(feats["case_id"]) == IDS and (feats["modality"] == "CT").all()
    assert feats.filter(like="original_").shape[1] == 107
    assert feats.filter(like="original_").notna().all().all()
    # the GTV voxel counts of the data README, as mm³ at the native 0.9766 x 0.9766 x 3.27 mm spacing
    vol = feats.set_index("case_id")["original_shape_MeshVolume"]
    assert vol["STS_005"] > vol["STS_001"] > vol["STS_002"] > vol["STS_008"]
    assert 0.7 < vol["STS_001"] / (117145 * 0.9766 * 0.9766 * 3.27) < 1.3


def test_phenotype_cli_on_extracted_features(ibsi):
    out = ibsi / "phenotypes"
    res = CliRunner().invoke(app, ["radiomics", "phenotype", "--features", str(ibsi / "features.parquet"),
                                   "--config", str(ibsi / "ibsi.yaml"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    table = pd.read_parquet(out / "phenotypes.parquet")
    assert 2 <= len(table) <= 3 and table["n_patients"].sum() == 12
    assert all(i in res.output for i in table["id"]) and table["description"].str.len().min() > 0


def test_graph_from_images_and_gnn_forward(ibsi, tmp_path):
    from graphonc.graph.build import build_run
    from graphonc.model.data import model_graph
    from graphonc.model.gnn import ModelConfig
    from graphonc.model.stages import train_stage
    from graphonc.model.train import Trainer

    build_run(ibsi / "ibsi.yaml", tmp_path / "run")
    run = GraphRun.open(tmp_path / "run")
    assert len(run.nodes(S.PATIENT)) == 12
    edges = run.edges(S.HAS_PHENOTYPE)
    assert set(edges["src"]) == set(IDS)
    k = len(run.nodes(S.RADIOMIC_PHENOTYPE))
    rad = run.manifest["patient_columns"]["radiomics"]
    assert rad and all(c.startswith("rad_") for c in rad)

    mg = model_graph(run, IDS)
    trainer = Trainer(mg, ModelConfig(hidden=16, embedding_dim=8, seed=0), torch.device("cpu"))
    with torch.no_grad():
        z, _, risk = trainer.model(trainer.x, trainer.edges, trainer.vocab)
    assert tuple(z.shape) == (12, 8) and torch.isfinite(z).all() and torch.isfinite(risk).all()
    assert tuple(mg.data[S.RADIOMIC_PHENOTYPE].x.shape) == (k, k)
    assert (S.RADIOMIC_PHENOTYPE, "rev_HAS_PHENOTYPE", S.PATIENT) in trainer.edges
    # patients in the same phenotype share neighbours in the graph; different ones do not
    groups = edges.loc[edges.groupby("src")["p"].idxmax()].groupby("dst")["src"].apply(list)
    assert sum(len(g) for g in groups) == 12

    with pytest.raises(GraphoncError, match="neither a label nor survival"):
        train_stage(tmp_path / "run", epochs=1)
    assert np.isfinite(run.nodes(S.PATIENT)[rad].to_numpy()).all()

    # no outcome to train on: similar patients from the encoded features, phenotypes as reasons
    res = CliRunner().invoke(app, ["index", "--run", str(tmp_path / "run"), "--from", "features"])
    assert res.exit_code == 0, res.output
    from graphonc.search.similar import similar_patients

    (sim,) = similar_patients(tmp_path / "run", [IDS[0]], k=5)
    of = edges.groupby("src")["dst"].agg(set)
    assert len(sim.neighbours) == 5 and IDS[0] not in {n.id for n in sim.neighbours}
    for n in sim.neighbours:
        assert {s["phenotype"] for s in n.shared_phenotypes} == of[IDS[0]] & of[n.id]
    # the vectors are the patients' encoded features, radiomic columns standardised over the cohort
    feats = pd.read_parquet(tmp_path / "run" / "features" / "embeddings.parquet").set_index(S.ID)
    vec = np.stack(feats["embedding"].to_numpy())
    names = json.loads((tmp_path / "run" / "features" / "feature_names.json").read_text())
    x = run.nodes(S.PATIENT).set_index(S.ID).loc[feats.index, rad]
    np.testing.assert_allclose(vec[:, [names.index(c) for c in rad]], ((x - x.mean()) / x.std(ddof=0)).to_numpy(),
                               atol=1e-4)
    unit = vec / np.linalg.norm(vec, axis=1, keepdims=True)
    cos = pd.Series(unit @ unit[feats.index.get_loc(IDS[0])], index=feats.index).drop(IDS[0])
    assert sim.neighbours[0].id == cos.idxmax()
