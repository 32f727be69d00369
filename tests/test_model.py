"""The GNN on real METABRIC: learning happens, test patients stay inductive, no leakage columns."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from graphonc.graph import schema as S
from graphonc.model.data import model_graph, reverse
from graphonc.model.gnn import ModelConfig
from graphonc.model.train import fit_model, predict

FAST = ModelConfig(hidden=32, embedding_dim=16, epochs=40, patience=40, seed=0, ensemble=1)


@pytest.fixture(scope="module")
def split(metabric_run):
    p = metabric_run.nodes(S.PATIENT)
    elig = p[p["label"].notna() & p["os_months"].notna()]["id"].sort_values().tolist()
    rng = np.random.default_rng(0)
    test = set(rng.choice(elig, size=len(elig) // 5, replace=False))
    return [i for i in elig if i not in test], sorted(test)


@pytest.fixture(scope="module")
def fitted(metabric_run, split):
    return fit_model(metabric_run, split[0], FAST)


def test_training_decreases_loss(fitted):
    h = fitted.history
    assert len(h) == FAST.epochs
    assert h[-1]["train_ce"] < 0.8 * h[0]["train_ce"]  # diagnosis head learns
    assert h[-1]["train_cox"] < h[0]["train_cox"] - 0.05  # Cox partial likelihood improves (~log n scale)
    assert min(r["val_loss"] for r in h) < h[0]["val_loss"]


def test_test_patients_only_receive(metabric_run, fitted, split):
    g = fitted.graph
    test_idx = torch.as_tensor(g.patient_index(split[1]))
    for e in g.data.edge_types:
        if e[0] == S.PATIENT:  # outgoing patient edges come from senders only
            assert g.senders[g.data[e].edge_index[0].numpy()].all(), e
    has_rev = g.data[reverse(S.HAS_MUTATION)].edge_index
    assert torch.isin(has_rev[1], test_idx).any()  # …but test patients do receive


def test_embedding_of_a_test_patient_ignores_other_test_patients(fitted, split):
    g, model = fitted.graph, fitted.model
    z0, _, _ = predict(model, g)
    a, b = g.patient_index(split[1][:2])
    x = g.data[S.PATIENT].x
    saved = x.clone()
    try:
        x[b] += 5.0  # perturb another held-out patient
        z1, _, _ = predict(model, g)
        assert np.allclose(z0[a], z1[a], atol=1e-6)
        assert not np.allclose(z0[b], z1[b])
        sender = int(np.flatnonzero(g.senders)[0])
        x[sender] += 5.0  # perturbing a training patient does move its neighbours (the check can fail)
        z2, _, _ = predict(model, g)
        assert not np.allclose(z0[g.senders == False], z2[g.senders == False], atol=1e-6)  # noqa: E712
    finally:
        g.data[S.PATIENT].x = saved


def test_leakage_columns_never_reach_the_model(metabric_run, fitted):
    names = fitted.graph.encoder.feature_names_
    for col in ("CLAUDIN_SUBTYPE", "THREEGENE", "INTCLUST", "label", "os_months", "os_event", "VITAL_STATUS"):
        assert not any(n == col or n.startswith(col + "=") or n.startswith(col + "__") for n in names), col
    assert fitted.graph.data[S.PATIENT].x.shape[1] == len(names)


def test_encoder_and_vocab_from_training_patients_only(metabric_run, fitted, split):
    g = fitted.graph
    senders = set(fitted.train_ids)
    has = metabric_run.edges(S.HAS_MUTATION)
    only_test = set(has[has["src"].isin(split[1])]["dst"]) - set(has[has["src"].isin(senders)]["dst"])
    assert only_test and not only_test & set(g.vocab[S.MUTATION])
    ages = metabric_run.nodes(S.PATIENT).set_index("id").loc[sorted(senders), "AGE_AT_DIAGNOSIS"]
    assert g.encoder.mean_["AGE_AT_DIAGNOSIS"] == pytest.approx(ages.mean())


@pytest.mark.slow  # trains the model a second time
def test_same_seed_same_result(metabric_run, split, fitted):
    again = fit_model(metabric_run, split[0], FAST)
    z0, p0, r0 = predict(fitted.model, fitted.graph)
    z1, p1, r1 = predict(again.model, again.graph)
    assert np.array_equal(r0, r1) and np.array_equal(p0, p1)


def test_patients_without_mutations_get_embeddings(metabric_run, fitted):
    z, proba, risk = predict(fitted.model, fitted.graph)
    p = metabric_run.nodes(S.PATIENT).set_index("id")
    none = fitted.graph.patient_index(p.index[p["n_mutations"] == 0][:20])
    assert np.isfinite(z[none]).all() and np.allclose(proba[none].sum(1), 1, atol=1e-5)


def test_model_graph_rejects_unknown_patients(metabric_run):
    g = model_graph(metabric_run, ["MB-0002"])
    with pytest.raises(KeyError):
        g.patient_index(["NOPE"])


def test_wide_splines_bend_the_numeric_columns_only(fitted):
    """The wide heads see each standardised numeric column z also as max(z - knot, 0) per knot
    (a linear spline); missing flags and one-hot columns enter straight."""
    from graphonc.model.gnn import spline_columns

    enc, model = fitted.graph.encoder, fitted.model
    cols = spline_columns(enc.feature_names_, enc.numeric)
    assert [enc.feature_names_[i] for i in cols] == list(enc.numeric) and cols  # AGE_AT_DIAGNOSIS, TUMOR_SIZE, ...
    assert model.spline_index.tolist() == cols and model.knots.tolist() == FAST.wide_knots
    x = fitted.graph.data[S.PATIENT].x
    wide = model.wide_inputs(x)
    n_feat, k = x.shape[1], len(FAST.wide_knots)
    assert wide.shape == (x.shape[0], n_feat + len(cols) * k)
    torch.testing.assert_close(wide[:, :n_feat], x)
    for c, col in enumerate(cols):
        for t, knot in enumerate(FAST.wide_knots):
            torch.testing.assert_close(wide[:, n_feat + c * k + t], torch.clamp(x[:, col] - knot, min=0))
    # the spline weights are real parameters of both wide heads (trained, saved with the model)
    assert model.wide_cox.weight.shape[1] == wide.shape[1] == model.wide_classifier.weight.shape[1]
    from graphonc.model.gnn import PatientGNN

    straight = PatientGNN({S.PATIENT: n_feat}, [], {}, 3, FAST.model_copy(update={"wide_knots": []}), cols)
    assert straight.wide_cox.weight.shape[1] == n_feat and straight.wide_inputs(x) is x


def test_wide_warm_start_is_the_penalised_linear_fit(metabric_run, split):
    """Before the first step the network is the penalised linear model: deep heads at zero, each
    wide head at the minimum of its penalised loss, the risk ranking patients like graphonc's
    Cox baseline on the same columns, and the validation loss of that model is epoch 0's."""
    from scipy.stats import spearmanr

    from graphonc.model.baselines import CoxPHBaseline
    from graphonc.model.inputs import fit_inputs, model_inputs
    from graphonc.model.metrics import _harrell
    from graphonc.model.tabular import patient_rows, survival_target
    from graphonc.model.train import Trainer, _targets, cox_loss

    train, test = split
    inputs = fit_inputs(metabric_run, train, model_inputs(metabric_run, FAST))
    graph = model_graph(metabric_run, train, inputs=inputs)
    trainer = Trainer(graph, FAST, torch.device("cpu"))
    fit_t = _targets(graph, graph.patient_index(train))
    trainer.warm_start_wide(fit_t, None)
    m = trainer.model
    assert not any(p.any() for head in (m.classifier, m.cox) for p in head.parameters())
    x = graph.data[S.PATIENT].x
    wide = m.wide_inputs(x)
    m.eval()
    with torch.no_grad():
        _, logits, risk = m(trainer.x, trainer.edges, trainer.vocab)
        torch.testing.assert_close(risk, m.wide_cox(wide).squeeze(-1))
        torch.testing.assert_close(logits, m.wide_classifier(wide))
    # converged: the penalised Cox objective's gradient vanishes at the warm start
    w = m.wide_cox.weight
    s = fit_t.surv_idx
    obj = cox_loss((wide[s] @ w.T).squeeze(-1), trainer.time[s], trainer.event[s]) + 0.05 * w.pow(2).sum()
    (grad,) = torch.autograd.grad(obj, w)
    assert grad.abs().max() < 1e-3
    # the same patients ranked like the Cox baseline fitted on the same (hinged) columns
    p = graph.data[S.PATIENT]
    te = graph.patient_index(test)
    te = te[p.has_survival.numpy()[te]]
    tr = s.numpy()
    y = survival_target(patient_rows(metabric_run, graph.ids[S.PATIENT][tr]))
    baseline = CoxPHBaseline(0.1).fit(wide[tr].detach().numpy(), y).predict(wide[te].detach().numpy())
    ours = risk.numpy()[te]
    assert spearmanr(ours, baseline).statistic > 0.95
    assert _harrell(p.event.numpy()[te].astype(bool), p.time.numpy()[te], ours) > 0.62
    # with model.wide_warm_start, training keeps the linear fit unless an epoch beats it on validation
    from graphonc.model.train import split_validation

    fit_ids, val_ids = split_validation(train, 0.2, 0)
    fit_idx, val_idx = graph.patient_index(fit_ids), graph.patient_index(val_ids)
    warm_cfg = FAST.model_copy(update={"wide_warm_start": True, "epochs": 3, "class_weight": False})
    warm = Trainer(graph, warm_cfg, torch.device("cpu"))
    history, best_epoch = warm.fit(fit_idx, val_idx)
    val_t = _targets(graph, val_idx)
    norm = warm.chance_losses(val_t)
    after = warm._validation_loss(val_idx, val_t, None, norm)[0]
    warm.warm_start_wide(_targets(graph, fit_idx), None)
    start = warm._validation_loss(val_idx, val_t, None, norm)[0]
    assert len(history) == 3 and 0 <= best_epoch <= 3
    assert after <= start + 1e-4 and (best_epoch > 0 or abs(after - start) < 1e-4)


def test_a_member_keeps_the_risk_that_does_better_on_its_validation_share(metabric_run, split):
    """risk_fallback: after training, the member's risk becomes penalised Cox with splines on its
    fit patients exactly when that has the lower validation Cox loss; embeddings and class
    probabilities stay as trained. A network trained for one epoch loses to the linear fit."""
    from graphonc.model.inputs import fit_inputs, model_inputs
    from graphonc.model.train import Trainer, _targets, cox_loss, split_validation

    train, _ = split
    graph = model_graph(metabric_run, train, inputs=fit_inputs(metabric_run, train, model_inputs(metabric_run, FAST)))
    fit_ids, val_ids = split_validation(train, 0.2, 0)
    fit_idx, val_idx = graph.patient_index(fit_ids), graph.patient_index(val_ids)
    fit_t, val_t = _targets(graph, fit_idx), _targets(graph, val_idx)
    cfg = FAST.model_copy(update={"epochs": 1, "risk_fallback": False})
    trainer = Trainer(graph, cfg, torch.device("cpu"), held_out=val_idx)
    trainer.fit(fit_idx, val_idx)
    assert trainer.risk_source == "network"  # the check is off
    m, v = trainer.model, val_t.surv_idx
    with torch.no_grad():
        z0, logits0, risk0 = m(trainer.x, trainer.edges, trainer.vocab)
        w = trainer.penalised_wide_cox(fit_t.surv_idx)
        linear = (m.wide_inputs(trainer.x[S.PATIENT]) @ w.T).squeeze(-1)
    losses = {name: float(cox_loss(r[v], trainer.time[v], trainer.event[v]))
              for name, r in (("network", risk0), ("linear", linear))}
    assert losses["linear"] < losses["network"]  # one epoch: the network is far from the linear fit
    # no survival in the validation share: nothing to compare, nothing changes
    assert trainer.keep_better_risk(fit_t, _targets(graph, val_idx[:0])) == "network"
    assert trainer.keep_better_risk(fit_t, val_t) == "linear"
    with torch.no_grad():
        z1, logits1, risk1 = m(trainer.x, trainer.edges, trainer.vocab)
    torch.testing.assert_close(z1, z0)
    torch.testing.assert_close(logits1, logits0)
    torch.testing.assert_close(risk1, linear)
    assert not m.cox.weight.any()


def test_each_member_holds_out_its_own_validation_share(metabric_run, split):
    """member_validation "own" (default): every training patient sends in the trained graph, each
    member trained with its own validation share unable to send, and the validation predictions
    are out-of-bag: a held-out patient's risk is the mean over the members that held it out, each
    computed on the graph without that member's share's outgoing edges."""
    from graphonc.model.gnn import members
    from graphonc.model.data import from_senders
    from graphonc.model.train import Trainer, split_validation

    cfg = FAST.model_copy(update={"ensemble": 2, "epochs": 4, "patience": 4})
    assert cfg.member_validation == "own"
    fit = fit_model(metabric_run, split[0], cfg)
    g, d = fit.graph, fit.graph.data
    n = d[S.PATIENT].num_nodes
    assert fit.train_ids == sorted(split[0])
    assert g.senders[g.patient_index(split[0])].all() and not g.senders[g.patient_index(split[1])].any()
    shares = [split_validation(split[0], cfg.val_fraction, cfg.seed + i)[1] for i in range(cfg.ensemble)]
    assert shares[0] != shares[1] and fit.val_ids == sorted(set(shares[0]) | set(shares[1]))
    # a member in training: its share receives (mutation messages) but sends nothing
    rows = g.patient_index(shares[1])
    trainer = Trainer(g, cfg, torch.device("cpu"), held_out=rows)
    for e, ei in trainer.edges.items():
        if e[0] == S.PATIENT:
            assert not np.isin(ei[0].numpy(), rows).any(), e
    assert np.isin(trainer.edges[reverse(S.HAS_MUTATION)][1].numpy(), rows).any()
    x = {t: d[t].x for t in d.node_types if "x" in d[t]}
    total, count = np.zeros(n), np.zeros(n)
    with torch.no_grad():
        for net, share in zip(members(fit.model), shares):
            idx = g.patient_index(share)
            sends = torch.ones(n, dtype=torch.bool)
            sends[idx] = False
            edges = from_senders({e: d[e].edge_index for e in d.edge_types}, sends)
            total[idx] += net.eval()(x, edges, g.vocab_dict)[2].numpy()[idx]
            count[idx] += 1
    held = count > 0
    assert (count == 2).any() and (count == 1).any()
    np.testing.assert_allclose(fit.val_risk[held], total[held] / count[held], rtol=1e-5, atol=1e-6)
    assert np.isnan(fit.val_risk[~held]).all() and np.isfinite(fit.val_proba[held]).all()
    _, _, whole = predict(fit.model, g)  # on the whole graph the shares send too: other values
    assert not np.allclose(whole[held], fit.val_risk[held], atol=1e-4)


def test_shared_validation_share_stays_out_of_the_graph(metabric_run, split):
    """member_validation "shared": one validation share for every member, never a sender."""
    from graphonc.model.train import split_validation

    cfg = FAST.model_copy(update={"epochs": 2, "patience": 2, "member_validation": "shared"})
    fit = fit_model(metabric_run, split[0], cfg)
    fit_ids, val_ids = split_validation(split[0], cfg.val_fraction, cfg.seed)
    assert fit.train_ids == fit_ids and fit.val_ids == val_ids
    assert not fit.graph.senders[fit.graph.patient_index(val_ids)].any()
