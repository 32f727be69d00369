"""The label trees beside the network (graphonc.model.boosted), on the real MSK prostate and METABRIC runs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphonc.errors import GraphoncError
from graphonc.graph import schema as S
from graphonc.model.boosted import (GENE_KINDS, WEIGHTS, LabelBooster, balanced_log_loss, choose_weight,
                                    graph_tree_features, out_of_fold_trees)
from graphonc.model.data import model_graph
from graphonc.model.evaluate import make_folds
from graphonc.model.gnn import ModelConfig
from graphonc.model.inputs import fit_inputs, model_inputs
from graphonc.model.train import fit_model, predict

TINY = ModelConfig(hidden=16, embedding_dim=8, epochs=3, patience=100, seed=2, ensemble=1)


@pytest.mark.slow  # builds a model graph of MSK prostate and fits the trees twice
def test_tree_features_hold_every_alteration_of_the_run(prostate_run, monkeypatch):
    """Per patient, the 0/1 gene columns are its mutated, amplified, deleted and fusion-partner
    genes as the run's own tables list them, among the model graph's genes (its vocabulary,
    fitted on the senders: the genes the network can see)."""
    ids = sorted(prostate_run.nodes(S.PATIENT)[S.ID])
    senders = ids[::2]  # the other half attached receive-only, like test patients
    g = model_graph(prostate_run, senders, inputs=fit_inputs(prostate_run, senders, model_inputs(prostate_run, TINY)))
    x = graph_tree_features(g.data)
    n_x, genes = g.data[S.PATIENT].x.shape[1], list(g.ids[S.GENE])
    assert x.shape == (len(g.ids[S.PATIENT]), n_x + 4 * len(genes))
    blocks = [x[:, n_x + i * len(genes): n_x + (i + 1) * len(genes)] for i in range(4)]

    def carried(block) -> set[tuple[str, str]]:
        r, c = block.nonzero()
        return {(g.ids[S.PATIENT][i], genes[j]) for i, j in zip(r, c)}

    mut = prostate_run.edges(S.HAS_MUTATION).merge(prostate_run.edges(S.IN_GENE), left_on=S.DST, right_on=S.SRC)
    vocab = set(genes)
    mut = mut[mut[f"{S.DST}_y"].isin(vocab)]
    assert carried(blocks[0]) == set(zip(mut[f"{S.SRC}_x"], mut[f"{S.DST}_y"])) and len(mut) > 1000
    cna = prostate_run.edges(S.HAS_CNA)
    for block, call in zip(blocks[1:3], ("AMP", "HOMDEL")):
        rows = cna[(cna[S.EDGE_SUBTYPE] == call) & cna[S.DST].isin(vocab)]
        assert carried(block) == set(zip(rows[S.SRC], rows[S.DST])) and len(rows) > 100
    fu = prostate_run.edges(S.HAS_FUSION).merge(prostate_run.edges(S.FUSION_PARTNER), left_on=S.DST, right_on=S.SRC)
    fu = fu[fu[f"{S.DST}_y"].isin(vocab)]
    assert carried(blocks[3]) == set(zip(fu[f"{S.SRC}_x"], fu[f"{S.DST}_y"])) and len(fu) > 100
    assert x[:, :n_x].toarray() == pytest.approx(g.data[S.PATIENT].x.numpy())
    assert GENE_KINDS[0][1] == "rev_MUTATED_IN"
    # the trees' columns: the clinical ones, and the gene columns of at least MIN_PATIENTS fit
    # patients, the most carried first when the dense matrix would pass MAX_DENSE_BYTES
    import graphonc.model.boosted as boosted

    fit = g.patient_index(senders)
    y = g.data[S.PATIENT].y.numpy()[fit]
    carried = np.asarray(x[fit].sum(axis=0)).ravel()
    monkeypatch.setattr(boosted, "PREDICT_BLOCK", 500)  # predictions block by block equal one block
    full = LabelBooster.fit(x, y[y >= 0], fit[y >= 0], len(g.label_classes), n_x, 0, 0.5)
    gene_cols = full.columns[n_x:]
    assert list(full.columns[:n_x]) == list(range(n_x)) and (carried[gene_cols] >= boosted.MIN_PATIENTS).all()
    assert (carried[n_x:] >= boosted.MIN_PATIENTS).sum() == len(gene_cols) > 100
    p = full.predict_proba(x)
    np.testing.assert_allclose(p, full.estimator.predict_proba(x[:, full.columns].toarray()))
    monkeypatch.setattr(boosted, "MAX_DENSE_BYTES", 8 * int((y >= 0).sum()) * (n_x + 20))
    capped = LabelBooster.fit(x, y[y >= 0], fit[y >= 0], len(g.label_classes), n_x, 0, 0.5)
    assert len(capped.columns) == n_x + 20
    assert carried[capped.columns[n_x:]].min() >= np.sort(carried[gene_cols])[-20]  # the 20 most carried


@pytest.mark.slow  # trains two small networks and the trees on a METABRIC fold
def test_label_probabilities_are_the_network_and_the_trees_averaged(metabric_run):
    train, test = make_folds(metabric_run, 5, 0)[0]
    both = fit_model(metabric_run, train, TINY.model_copy(update={"label_boosting": 0.3}))
    alone = fit_model(metabric_run, train, TINY.model_copy(update={"label_boosting": 0.0}))
    assert alone.booster is None and both.booster is not None
    rows = both.graph.patient_index(test)
    z, p, r = predict(both.model, both.graph, both.booster)
    z0, p0, r0 = predict(alone.model, alone.graph)  # the same seed: the same network
    np.testing.assert_allclose(z, z0, atol=1e-6)
    np.testing.assert_allclose(r, r0, atol=1e-6)  # risk and embeddings stay the network's
    trees = both.booster.predict_proba(graph_tree_features(both.graph.data))
    np.testing.assert_allclose(p, 0.7 * p0 + 0.3 * trees, atol=1e-6)
    # the trees are a real classifier on the held-out patients: well above chance on PAM50
    from graphonc.model.metrics import diagnosis_metrics

    y = both.graph.data[S.PATIENT].y.numpy()[rows]
    ok = y >= 0
    assert diagnosis_metrics(y[ok], trees[rows][ok], both.graph.label_classes)["auroc"] > 0.7
    # and they learnt from the training patients only: the held-out rows' columns were not counted
    assert both.booster.columns.max() < graph_tree_features(both.graph.data).shape[1]


def test_a_booster_file_with_other_types_is_refused(tmp_path):
    import skops.io as sio
    from sklearn.ensemble import HistGradientBoostingClassifier

    from graphonc.model.baselines import GradientBoostingBaseline

    X = np.random.default_rng(0).normal(size=(60, 3))
    est = GradientBoostingBaseline(n_classes=2, max_iter=5).fit(X, (X[:, 0] > 0).astype(np.int64))
    LabelBooster(np.arange(3), est, 0.5).save(tmp_path)
    back = LabelBooster.load(tmp_path, [0, 1, 2], 0.5)
    np.testing.assert_array_equal(back.estimator.predict_proba(X), est.predict_proba(X))
    sio.dump({"trees": est, "extra": pd.Timestamp("2026-01-01")}, tmp_path / "booster.skops")
    with pytest.raises(GraphoncError, match="holds types graphonc does not load"):
        LabelBooster.load(tmp_path, [0, 1, 2], 0.5)
    assert HistGradientBoostingClassifier  # the estimator inside is scikit-learn's


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 5), st.integers(20, 60), st.integers(0, 2 ** 31 - 1))
def test_the_chosen_weight_has_the_lowest_out_of_bag_loss(k, n, seed):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k  # every class present
    network = rng.dirichlet(np.ones(k), size=n)
    trees = rng.dirichlet(np.ones(k), size=n)
    w, losses = choose_weight(network, trees, y)
    assert w in WEIGHTS and losses[w] == min(losses.values())
    assert losses[0.0] == pytest.approx(balanced_log_loss(network, y))
    assert choose_weight(network, network, y)[0] == 0.0  # nothing to gain: the network alone
    truth = np.eye(k)[y] * 0.98 + 0.02 / k
    assert choose_weight(network, truth, y)[0] == 1.0  # trees that know every label take it all
    assert choose_weight(truth, trees, y)[0] == 0.0


@pytest.mark.slow  # trains a small network and 6 sets of trees on a METABRIC fold
def test_auto_weight_is_chosen_on_out_of_bag_predictions(metabric_run):
    train, _ = make_folds(metabric_run, 5, 0)[0]
    fit = fit_model(metabric_run, train, TINY.model_copy(update={"ensemble": 2}))
    g, b = fit.graph, fit.booster
    assert b is not None and set(b.oob_log_loss) == set(WEIGHTS)
    # the network's out-of-bag rows (its members' own validation shares) against the trees' 5-fold ones
    y = g.data[S.PATIENT].y.numpy()
    rows = g.patient_index(fit.train_ids)
    rows = rows[y[rows] >= 0]
    held = np.flatnonzero(~np.isnan(fit.val_proba[:, 0]) & (y >= 0))
    assert set(held) <= set(rows) and len(held) > 300
    x = graph_tree_features(g.data)
    oof = out_of_fold_trees(x, y[rows], rows, len(g.label_classes), g.data[S.PATIENT].x.shape[1], TINY.seed)
    at = pd.Series(np.arange(len(rows)), index=rows)[held].to_numpy()
    w, losses = choose_weight(fit.val_proba[held], oof[at], y[held])
    assert (w, losses) == (b.weight, b.oob_log_loss)
    assert b.active == (w > 0)
    # one validation share for every member (member_validation "shared"): those patients are not
    # senders, so the trees fitted on every sender give their out-of-bag predictions
    shared = fit_model(metabric_run, train, TINY.model_copy(update={"member_validation": "shared"}))
    held = np.flatnonzero(~np.isnan(shared.val_proba[:, 0]) & (y >= 0))
    assert not set(shared.graph.ids[S.PATIENT][held]) & set(shared.train_ids)
    assert set(shared.booster.oob_log_loss) == set(WEIGHTS) and shared.booster.weight in WEIGHTS
