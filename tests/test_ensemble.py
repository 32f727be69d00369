"""Seed ensembles of the GNN (``model.ensemble``) on real METABRIC data: the members' outputs are
combined one way everywhere — training, a reloaded model, the fast new-patient path and the explanation."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from graphonc.graph import lineage
from graphonc.graph import schema as S
from graphonc.model.embed import FrozenGraph, embed_patients, read_new_patients, run_config
from graphonc.model.evaluate import make_folds
from graphonc.model.explain import explain_loaded, explain_row
from graphonc.model.gnn import GNNEnsemble, ModelConfig, combine, members
from graphonc.model.io import load_model, save_model
from graphonc.model.train import fit_model, predict

pytestmark = pytest.mark.slow  # trains a 2-member ensemble on METABRIC

# a fixed weight of the label trees, so that the reload test always has trees to reload
SMALL = ModelConfig(hidden=16, embedding_dim=8, epochs=6, patience=100, seed=3, ensemble=2, label_boosting=0.5)


@pytest.fixture(scope="module")
def ensemble(metabric_run, tmp_path_factory):
    train_ids, test_ids = make_folds(metabric_run, 5, 0)[0]
    fit = fit_model(metabric_run, train_ids, SMALL)
    folder = tmp_path_factory.mktemp("ens") / "model"
    save_model(fit, folder)
    lineage.record(folder, "train", lineage.fingerprint(metabric_run.root), run_root=metabric_run.root)
    return fit, folder, test_ids


def test_members_differ_and_the_ensemble_averages_them(ensemble):
    fit, _, _ = ensemble
    assert isinstance(fit.model, GNNEnsemble) and len(members(fit.model)) == 2
    assert len(fit.member_best_epochs) == 2
    assert len(fit.member_risk) == 2 and set(fit.member_risk) <= {"network", "linear"}
    g = fit.graph
    outs = [predict(net, g) for net in members(fit.model)]
    assert not np.allclose(outs[0][2], outs[1][2])  # different seeds, different networks
    z, proba, risk = predict(fit.model, g)
    np.testing.assert_allclose(risk, (outs[0][2] + outs[1][2]) / 2, atol=1e-5)
    np.testing.assert_allclose(proba, (outs[0][1] + outs[1][1]) / 2, atol=1e-5)
    # cosine similarity in the ensemble embedding = mean of the members' cosine similarities
    unit = [o[0] / np.linalg.norm(o[0], axis=1, keepdims=True) for o in outs]
    np.testing.assert_allclose(z[:50] @ z[:50].T, (unit[0][:50] @ unit[0][:50].T + unit[1][:50] @ unit[1][:50].T) / 2,
                               atol=1e-5)


def test_single_member_outputs_pass_through_unchanged():
    out = (torch.randn(4, 3), torch.randn(4, 2), torch.randn(4))
    assert all(a is b for a, b in zip(combine([out]), out))


def test_reloaded_ensemble_reproduces_predictions(metabric_run, ensemble):
    fit, folder, _ = ensemble
    lm = load_model(folder, metabric_run)
    assert isinstance(lm.model, GNNEnsemble)
    assert lm.booster is not None  # the label trees (model.label_boosting) come back from booster.skops
    for a, b in zip(predict(fit.model, fit.graph, fit.booster), predict(lm.model, lm.graph, lm.booster)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_fast_new_patient_path_equals_the_full_forward(metabric_run, ensemble, data_dir, tmp_path):
    """FrozenGraph (cached states per member) gives what a forward pass over the whole graph gives."""
    from cohort_files import write_study_subset

    _, folder, test_ids = ensemble
    lm = load_model(folder, metabric_run)
    study = write_study_subset(data_dir / "metabric", tmp_path / "new", set(test_ids[:8]))
    full = embed_patients(metabric_run.root, study, model_dir=folder)
    enc = lm.graph.encoder
    new = read_new_patients(run_config(metabric_run), study, None,
                            enc.numeric + enc.categorical, enc.radiomics)
    fast = FrozenGraph(lm).embed(new)
    assert fast.ids == full.ids
    np.testing.assert_allclose(fast.embeddings, full.embeddings, atol=1e-5)
    np.testing.assert_allclose(fast.risk, full.risk, atol=1e-5)
    np.testing.assert_allclose(fast.proba, full.proba, atol=1e-5)


def test_ensemble_explanation_is_the_mean_of_its_members(metabric_run, ensemble):
    fit, folder, test_ids = ensemble
    lm = load_model(folder, metabric_run)
    pid = test_ids[0]
    exp = explain_loaded(lm, metabric_run, pid, steps=4)
    g, d = lm.graph, lm.graph.data
    x = {t: d[t].x for t in d.node_types if "x" in d[t]}
    edges = {e: d[e].edge_index for e in d.edge_types}
    row = int(g.ids[S.PATIENT].get_loc(pid))
    cls = g.label_classes.index(exp.predicted_label)
    parts = [explain_row(net, x, edges, g.vocab_dict, row, feature_names=g.encoder.feature_names_, ids=g.ids,
                         classes=g.label_classes, steps=4, target_class=cls)[0] for net in members(lm.model)]
    risk = [p[(p["target"] == "risk") & (p["kind"] == "clinical")].set_index("name")["attribution"] for p in parts]
    want = (risk[0] + risk[1]) / 2
    got = exp.table[(exp.table["target"] == "risk") & (exp.table["kind"] == "clinical")]
    shown = {v: k for k, v in metabric_run.column_names().items()}
    got = got.assign(name=got["name"].map(lambda n: shown.get(n, n))).set_index("name")["attribution"]
    pd.testing.assert_series_equal(got.sort_index(), want.sort_index(), check_names=False, atol=1e-6)
