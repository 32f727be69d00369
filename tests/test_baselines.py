"""Metrics, tabular features and the non-graph baselines (toy inputs + the real METABRIC run)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from lifelines import CoxPHFitter
from lifelines.datasets import load_rossi
from lifelines.utils import concordance_index
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from graphonc.graph import schema as S
from graphonc.model.baselines import (BASELINES, CoxPHBaseline, LogisticBaseline, RSFBaseline, run_baselines)
from graphonc.model.metrics import (breslow_survival, default_eval_times, diagnosis_metrics, summarise,
                                    survival_metrics)
from graphonc.model.tabular import (TabularFeatures, encode_labels, has_label, has_survival, label_classes,
                                    patient_gene_pairs, patient_rows, survival_target)

# ---------------------------------------------------------------------------- toy metrics


def _toy_survival(n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    t = rng.exponential(100 * np.exp(-x))
    c = rng.uniform(20, 300, n)
    return np.minimum(t, c), t <= c, x  # x is the true log hazard


def test_harrell_perfect_reversed_and_lifelines():
    t = np.arange(1.0, 21.0)
    e = np.ones(20, bool)
    train = (t, e)
    perfect = survival_metrics(*train, t, e, -t, train_risk=-t)
    assert perfect["harrell_c"] == pytest.approx(1.0) and perfect["uno_c"] == pytest.approx(1.0)
    assert survival_metrics(*train, t, e, t, train_risk=t)["harrell_c"] == pytest.approx(0.0)
    time, event, risk = _toy_survival()
    m = survival_metrics(time[:150], event[:150], time[150:], event[150:], risk[150:], train_risk=risk[:150])
    # lifelines: higher score = longer survival
    assert m["harrell_c"] == pytest.approx(concordance_index(time[150:], -risk[150:], event[150:]), abs=1e-9)
    assert 0.65 < m["uno_c"] < 0.9 and 0.65 < m["auc_60"] < 0.95 and 0 < m["ibs"] < 0.25


def test_breslow_matches_lifelines():
    df = load_rossi()
    cph = CoxPHFitter().fit(df, "week", "arrest")
    lph = cph.predict_log_partial_hazard(df).to_numpy()
    times = np.array([1.0, 5, 10, 20, 30, 40, 49, 52])  # step points (lifelines interpolates between them)
    ours = breslow_survival(df["week"], df["arrest"], lph, lph[:10], times)
    theirs = cph.predict_survival_function(df.iloc[:10], times=times).T.to_numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-10)
    # invariant to a shift of the risk; 1 before the first event time
    np.testing.assert_allclose(breslow_survival(df["week"], df["arrest"], lph + 5, lph[:10] + 5, times), ours)
    assert np.all(breslow_survival(df["week"], df["arrest"], lph, lph[:3], [0.0]) == 1.0)


def test_survival_metric_edge_cases_give_nan_not_errors():
    time, event, risk = _toy_survival()
    tr, te = slice(0, 150), slice(150, None)
    none = survival_metrics(time[tr], event[tr], time[te], np.zeros(150, bool), risk[te], train_risk=risk[tr])
    assert all(math.isnan(none[k]) for k in ("harrell_c", "uno_c", "auc_60", "auc_120"))
    # test follow-up longer than training follow-up: censored at the training maximum, no crash
    short = time[tr] < 150
    m = survival_metrics(time[tr][short], event[tr][short], time[te], event[te], risk[te], train_risk=risk[tr][short])
    assert np.isfinite(list(m.values())).all()
    # horizon beyond every follow-up -> NaN
    assert math.isnan(survival_metrics(time[tr], event[tr], time[te], event[te], risk[te], train_risk=risk[tr],
                                       horizons=(10_000.0,))["auc_10000"])
    times = default_eval_times(time[tr], time[te])
    assert times.min() >= time[te].min() and times.max() < min(time[te].max(), time[tr].max())
    with pytest.raises(ValueError):
        survival_metrics(time[tr], event[tr], time[te], event[te], risk[te])  # no test_surv, no train_risk


def test_diagnosis_metrics_against_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 200)
    proba = rng.dirichlet(np.ones(3), 200)
    proba[np.arange(200), y] += 0.5
    proba /= proba.sum(1, keepdims=True)
    m = diagnosis_metrics(y, proba, ["a", "b", "c"])
    pred = proba.argmax(1)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["auroc"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    perfect = diagnosis_metrics(y, np.eye(3)[y], ["a", "b", "c"])
    assert perfect["accuracy"] == perfect["macro_f1"] == perfect["auroc"] == 1.0
    absent = diagnosis_metrics(np.array([0, 1, 0, 1]), np.full((4, 3), 1 / 3), ["a", "b", "c"])
    assert math.isnan(absent["auroc"]) and not math.isnan(absent["macro_f1"])
    with pytest.raises(ValueError):
        diagnosis_metrics(y, proba[:, :2], ["a", "b", "c"])


def test_summarise():
    s = summarise([{"model": "x", "fold": 0, "c": 0.6, "f": math.nan}, {"model": "x", "fold": 1, "c": 0.8, "f": 1.0}])
    assert set(s) == {"c", "f"}
    assert s["c"]["mean"] == pytest.approx(0.7) and s["c"]["sd"] == pytest.approx(np.std([0.6, 0.8], ddof=1))
    assert s["f"] == {"mean": 1.0, "sd": s["f"]["sd"], "n": 1} and math.isnan(s["f"]["sd"])


# ---------------------------------------------------------------------------- METABRIC


@pytest.fixture(scope="module")
def cohort(metabric_run):
    """Labelled patients with survival and their 5 stratified folds."""
    p = metabric_run.nodes(S.PATIENT)
    m = has_survival(p) & has_label(p)
    ids, lab = p[S.ID][m].to_numpy(), p["label"][m].astype(str).to_numpy()
    folds = [(ids[a].tolist(), ids[b].tolist())
             for a, b in StratifiedKFold(5, shuffle=True, random_state=0).split(ids, lab)]
    return p, ids, folds


def test_gene_vocabulary_from_training_patients_only(metabric_run, cohort):
    _, ids, _ = cohort
    pairs = patient_gene_pairs(metabric_run)
    pairs = pairs[pairs["patient"].isin(set(ids))]
    per_gene = pairs.groupby("gene")["patient"].unique()
    # a gene carried by 6..30 patients: send all its carriers to test -> it must not become a column
    rare = per_gene[per_gene.map(len).between(6, 30)].index[0]
    test_ids = sorted(set(per_gene[rare]))
    train_ids = [i for i in ids if i not in set(test_ids)]
    tf = TabularFeatures(min_patients=5).fit(metabric_run, train_ids)
    assert f"gene:{rare}" not in tf.feature_names_
    train_pairs = pairs[pairs["patient"].isin(set(train_ids))]
    counts = train_pairs.groupby("gene")["patient"].nunique()
    assert tf.genes_ == sorted(counts.index[counts >= 5])
    X = tf.transform(metabric_run, test_ids)
    assert X.shape == (len(test_ids), len(tf.feature_names_)) and X.dtype == np.float32
    # the gene columns are exactly the patients' mutated genes
    col = tf.feature_names_.index("gene:TP53")
    Xtr = tf.transform(metabric_run, train_ids)
    tp53 = set(train_pairs.loc[train_pairs["gene"] == "TP53", "patient"])
    np.testing.assert_array_equal(Xtr[:, col], [i in tp53 for i in train_ids])
    # clinical encoder statistics come from training only
    tr = patient_rows(metabric_run, train_ids)
    assert tf.encoder_.mean_["AGE_AT_DIAGNOSIS"] == pytest.approx(tr["AGE_AT_DIAGNOSIS"].mean())
    # vectorised: ~100k rows (duplicated ids) quickly, same rows as one at a time
    big = tf.transform(metabric_run, list(ids) * 50)
    np.testing.assert_array_equal(big[: len(ids)], tf.transform(metabric_run, ids))
    with pytest.raises(KeyError):
        tf.transform(metabric_run, ["no-such-patient"])


def test_targets(metabric_run, cohort):
    p, _, _ = cohort
    y = survival_target(p[has_survival(p)])
    assert y.dtype.names == ("event", "time") and len(y) == 1980
    classes = label_classes(p)
    codes = encode_labels(p, classes)
    assert len(classes) == 6 and (codes >= 0).sum() == p["label"].notna().sum() and codes.max() == 5
    with pytest.raises(ValueError):
        survival_target(p)


@pytest.mark.slow  # five folds of penalised Cox and logistic regression
def test_five_fold_coxph_and_logreg_in_fair_ranges(metabric_run, cohort):
    _, _, folds = cohort
    df = run_baselines(metabric_run, folds, seed=0, models=["coxph", "coxph_splines", "logreg"])
    print("\n" + df[["model", "fold", "n_test", "harrell_c", "uno_c", "ibs", "auc_60", "auc_120",
                     "macro_f1", "balanced_accuracy", "auroc"]].round(3).to_string())
    cox = df[df.model == "coxph"]
    lr = df[df.model == "logreg"]
    splines = df[df.model == "coxph_splines"]
    assert len(cox) == len(lr) == len(splines) == 5
    assert 0.60 <= cox["harrell_c"].mean() <= 0.72 and (cox["harrell_c"] > 0.58).all()
    assert 0.60 <= splines["harrell_c"].mean() <= 0.72 and np.isfinite(splines["ibs"]).all()
    assert 0.58 <= cox["uno_c"].mean() <= 0.75 and 0.10 < cox["ibs"].mean() < 0.25
    assert 0.35 <= lr["macro_f1"].mean() <= 0.55 and lr["auroc"].mean() > 0.7
    # only patients with survival / labels were scored
    assert cox["n_test"].sum() == lr["n_test"].sum() == sum(len(te) for _, te in folds)


@pytest.mark.slow  # random survival forest and gradient boosting on two folds
def test_rsf_and_gboost_plausible_two_folds(metabric_run, cohort):
    _, _, folds = cohort
    df = run_baselines(metabric_run, folds[:2], seed=0, models=["rsf", "gboost"],
                       params={"rsf": {"n_estimators": 40}, "gboost": {"max_iter": 40}})
    print("\n" + df[["model", "fold", "n_features", "harrell_c", "ibs", "macro_f1", "auroc"]].round(3).to_string())
    rsf, gb = df[df.model == "rsf"], df[df.model == "gboost"]
    assert 0.6 <= rsf["harrell_c"].mean() <= 0.75 and np.isfinite(rsf["ibs"]).all()
    assert 0.3 <= gb["macro_f1"].mean() <= 0.6
    assert (df["n_features"] > 100).all()  # clinical + gene columns


def test_shuffled_survival_gives_chance_concordance(metabric_run, cohort):
    p, ids, _ = cohort
    rows = patient_rows(metabric_run, ids)
    y = survival_target(rows)
    rng = np.random.default_rng(0)
    y_shuffled = y[rng.permutation(len(y))]  # outcomes detached from patients
    cs = []
    for tr, te in StratifiedKFold(2, shuffle=True, random_state=0).split(ids, rows["label"].astype(str)):
        tf = TabularFeatures.for_feature_set("clinical").fit(metabric_run, ids[tr])
        model = CoxPHBaseline().fit(tf.transform(metabric_run, ids[tr]), y_shuffled[tr])
        risk = model.predict(tf.transform(metabric_run, ids[te]))
        m = survival_metrics(y_shuffled["time"][tr], y_shuffled["event"][tr], y_shuffled["time"][te],
                             y_shuffled["event"][te], risk, train_risk=model.predict(tf.transform(metabric_run, ids[tr])))
        cs.append(m["harrell_c"])
    print(f"\nshuffled-outcome Harrell C per fold: {np.round(cs, 3)}")
    assert all(abs(c - 0.5) < 0.06 for c in cs)


def test_the_splines_feature_set_is_the_gnn_wide_input(metabric_run, cohort):
    """coxph_splines sees what the GNN's wide Cox head sees: the clinical columns, then each
    numeric column's hinges max(z - knot, 0) at model.wide_knots, column by column."""
    import torch

    from graphonc.graph.hetero import spline_columns
    from graphonc.model.gnn import PatientGNN
    from graphonc.model_config import ModelConfig

    _, _, folds = cohort
    tr_ids, te_ids = folds[0]
    plain = TabularFeatures.for_feature_set("clinical").fit(metabric_run, tr_ids)
    hinged = TabularFeatures.for_feature_set("clinical+splines").fit(metabric_run, tr_ids)
    x, xh = plain.transform(metabric_run, te_ids), hinged.transform(metabric_run, te_ids)
    cols, knots = spline_columns(plain.encoder_.feature_names_, plain.encoder_.numeric), ModelConfig().wide_knots
    assert cols and xh.shape == (len(te_ids), x.shape[1] + len(cols) * len(knots))
    assert hinged.n_clinical_ == len(hinged.feature_names_) == xh.shape[1]
    assert hinged.feature_names_[x.shape[1]] == f"{plain.feature_names_[cols[0]]}>{knots[0]:g}"
    np.testing.assert_array_equal(xh[:, :x.shape[1]], x)
    net = PatientGNN({S.PATIENT: x.shape[1]}, [], {}, 0, ModelConfig(), cols)
    np.testing.assert_allclose(net.wide_inputs(torch.from_numpy(x)).numpy(), xh, atol=1e-6)


def test_estimators_validate_and_predict_survival(metabric_run, cohort):
    _, ids, folds = cohort
    tr_ids, te_ids = folds[0]
    tf = TabularFeatures.for_feature_set("clinical+mutations").fit(metabric_run, tr_ids)
    Xtr, Xte = tf.transform(metabric_run, tr_ids), tf.transform(metabric_run, te_ids[:50])
    ytr = survival_target(patient_rows(metabric_run, tr_ids))
    times = np.array([12.0, 60.0, 120.0, 240.0])
    for model in (CoxPHBaseline(), RSFBaseline(n_estimators=10, n_jobs=1)):
        with pytest.raises(RuntimeError):
            model.predict(Xte)
        model.fit(Xtr, ytr)
        s = model.predict_survival(Xte, times)
        assert s.shape == (50, 4) and np.all((s >= 0) & (s <= 1)) and np.all(np.diff(s, axis=1) <= 1e-12)
        with pytest.raises(ValueError):
            model.predict(Xte[:, :-1])
    with pytest.raises(ValueError):
        CoxPHBaseline().fit(Xtr[:10], ytr)  # row mismatch
    with pytest.raises(ValueError):
        LogisticBaseline().fit(Xtr, np.full(len(Xtr), -1))
    with pytest.raises(ValueError):  # a patient in both train and test is leakage
        run_baselines(metabric_run, [(tr_ids, te_ids + tr_ids[:1])], models=["coxph"])
    assert {k: (v.task, v.features) for k, v in BASELINES.items()} == {
        "coxph": ("survival", "clinical"), "coxph_splines": ("survival", "clinical+splines"),
        "rsf": ("survival", "clinical+mutations"),
        "logreg": ("diagnosis", "clinical"), "gboost": ("diagnosis", "clinical+mutations")}
