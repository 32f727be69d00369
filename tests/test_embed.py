"""Inductive embedding of new patients (`graphonc embed`) on real METABRIC data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cohort_files import write_study_subset
from graphonc.cli import app
from graphonc.errors import InputError
from graphonc.graph import lineage
from graphonc.graph import schema as S
from graphonc.model.embed import embed_patients
from graphonc.model.evaluate import make_folds, score_model
from graphonc.model.gnn import ModelConfig
from graphonc.model.io import save_model
from graphonc.model.train import fit_model, predict

pytestmark = pytest.mark.slow  # trains a fold model and embeds held-back METABRIC patients from files

SMALL = ModelConfig(hidden=32, embedding_dim=16, epochs=12, patience=100, seed=1, ensemble=1)


@pytest.fixture(scope="module")
def fold_model(metabric_run, tmp_path_factory):
    """A model trained on fold 0's training patients; fold 0's test patients are held back."""
    train_ids, test_ids = make_folds(metabric_run, 5, 0)[0]
    fit = fit_model(metabric_run, train_ids, SMALL)
    folder = tmp_path_factory.mktemp("fold0") / "model"
    save_model(fit, folder)
    lineage.record(folder, "train", lineage.fingerprint(metabric_run.root), run_root=metabric_run.root)
    z, proba, risk = predict(fit.model, fit.graph, fit.booster)  # the label trees blended in, as embed does
    idx = fit.graph.patient_index(test_ids)
    return {"dir": folder, "train": train_ids, "test": test_ids, "z": z[idx], "proba": proba[idx], "risk": risk[idx],
            "classes": fit.graph.label_classes, "all": (proba, risk), "test_rows": idx,
            "index": fit.graph.patient_index}


def test_embedding_held_back_patients_equals_fold_evaluation(metabric_run, fold_model, data_dir, tmp_path):
    held = fold_model["test"]
    study = write_study_subset(data_dir / "metabric", tmp_path / "new", set(held))
    emb = embed_patients(metabric_run.root, study, model_dir=fold_model["dir"])
    assert emb.ids == held
    np.testing.assert_allclose(emb.embeddings, fold_model["z"], atol=1e-5)
    np.testing.assert_allclose(emb.risk, fold_model["risk"], atol=1e-5)
    np.testing.assert_allclose(emb.proba, fold_model["proba"], atol=1e-5)
    assert emb.unmatched.drop(columns=[S.ID]).to_numpy().sum() == 0  # same cohort: every mutation is known
    # the fold's metrics with the test rows taken from the embed path are the evaluation's
    proba, risk = (a.copy() for a in fold_model["all"])
    want = score_model(metabric_run, fold_model["train"], held, proba, risk, fold_model["classes"],
                       fold_model["index"])
    proba[fold_model["test_rows"]], risk[fold_model["test_rows"]] = emb.proba, emb.risk
    got = score_model(metabric_run, fold_model["train"], held, proba, risk, emb.classes, fold_model["index"])
    for key in ("harrell_c", "uno_c", "ibs", "macro_f1", "accuracy", "auroc"):
        assert got[key] == pytest.approx(want[key], abs=1e-6)


def test_one_new_patient_alone_gets_the_same_embedding(metabric_run, fold_model, data_dir, tmp_path):
    """Receive-only: a patient's embedding does not depend on who else is embedded with it."""
    one = fold_model["test"][3]
    study = write_study_subset(data_dir / "metabric", tmp_path / "one", {one})
    emb = embed_patients(metabric_run.root, study, model_dir=fold_model["dir"])
    np.testing.assert_allclose(emb.embeddings[0], fold_model["z"][3], atol=1e-5)


def test_missing_feature_columns_are_refused_by_name(metabric_run, fold_model, data_dir, tmp_path):
    study = write_study_subset(data_dir / "metabric", tmp_path / "bad", set(fold_model["test"][:5]),
                               drop_columns=("NPI", "ER_IHC", "CHEMOTHERAPY"))
    with pytest.raises(InputError) as exc:
        embed_patients(metabric_run.root, study, model_dir=fold_model["dir"])
    msg = str(exc.value)
    for col in ("NPI", "ER_IHC"):
        assert col in msg
    assert "data_clinical_patient.txt" in msg
    # a treatment is given after diagnosis: never a required input (issue #14, item 3)
    assert "CHEMOTHERAPY" not in msg


def test_treatment_columns_are_optional_for_new_patients(metabric_run, fold_model, data_dir, tmp_path):
    ids = fold_model["test"][:5]
    study = write_study_subset(data_dir / "metabric", tmp_path / "no_tx", set(ids),
                               drop_columns=("CHEMOTHERAPY", "HORMONE_THERAPY", "RADIO_THERAPY"))
    emb = embed_patients(metabric_run.root, study, model_dir=fold_model["dir"])
    assert emb.ids == ids and np.isfinite(emb.embeddings).all()
    assert set(emb.edges[S.RECEIVED][S.DST]) <= {"mastectomy", "breast_conserving_surgery"}


def test_plain_table_input_and_unknown_mutations(metabric_run, fold_model, tmp_path):
    """A clinical table + long mutation table; a mutation the run never saw is reported, not hidden."""
    p = metabric_run.nodes(S.PATIENT).set_index(S.ID).loc[fold_model["test"][:2]]
    cols = ["AGE_AT_DIAGNOSIS", "NPI", "TUMOR_SIZE", "GRADE", "TUMOR_STAGE", "ER_IHC", "HER2_SNP6",
            "INFERRED_MENOPAUSAL_STATE", "CELLULARITY", "HISTOLOGICAL_SUBTYPE", "LATERALITY", "BREAST_SURGERY",
            "ER_STATUS", "PR_STATUS", "HER2_STATUS"]
    clin = p[cols].reset_index().rename(columns={S.ID: "patient_id"})
    clin["CHEMOTHERAPY"] = "YES"
    clin["HORMONE_THERAPY"] = "NO"
    clin["RADIO_THERAPY"] = "NO"
    clin.to_csv(tmp_path / "clinical.tsv", sep="\t", index=False)
    muts = pd.DataFrame({"patient_id": [clin.patient_id[0]] * 2, "gene": ["PIK3CA", "TP53"],
                         "protein_change": ["p.H1047R", "p.Z999Q"], "variant_class": ["Missense_Mutation"] * 2,
                         "vaf": [0.3, 0.4]})
    muts.to_csv(tmp_path / "mutations.tsv", sep="\t", index=False)
    emb = embed_patients(metabric_run.root, tmp_path / "clinical.tsv", model_dir=fold_model["dir"],
                         mutations=tmp_path / "mutations.tsv")
    assert emb.embeddings.shape == (2, SMALL.embedding_dim)
    assert np.isfinite(emb.risk).all() and np.allclose(emb.proba.sum(1), 1, atol=1e-5)
    un = emb.unmatched.set_index(S.ID)
    assert un.loc[clin.patient_id[0], "unknown_mutation"] == 1  # TP53:p.Z999Q does not exist
    received = emb.edges[S.RECEIVED].groupby(S.SRC)[S.DST].agg(set)
    assert all("chemotherapy" in r and "hormone_therapy" not in r for r in received)
    assert set(received.index) == set(clin.patient_id)


def test_embed_cli_writes_tables(metabric_run, fold_model, data_dir, tmp_path):
    study = write_study_subset(data_dir / "metabric", tmp_path / "cli", set(fold_model["test"][:4]))
    out = tmp_path / "embedded"
    res = CliRunner().invoke(app, ["-q", "embed", "--run", str(metabric_run.root), "--patients", str(study),
                                   "--model", str(fold_model["dir"]), "--out", str(out)])
    assert res.exit_code == 0, res.output
    pred = pd.read_parquet(out / "predictions.parquet")
    emb = pd.read_parquet(out / "embeddings.parquet")
    assert pred[S.ID].tolist() == fold_model["test"][:4] == emb[S.ID].tolist()
    np.testing.assert_allclose(pred["risk"], fold_model["risk"][:4], atol=1e-5)

