"""Run folder → HeteroData: features, id maps, targets, no leakage columns."""
from __future__ import annotations

import numpy as np
import pytest
import pandas as pd
import torch

from graphonc.graph import schema as S
from graphonc.graph.hetero import MAX_QUANTILES, PatientFeatureEncoder, rank_gauss, to_hetero, training_quantiles


def test_hetero_shapes_and_id_maps(metabric_run):
    g = to_hetero(metabric_run)
    d = g.data
    counts = metabric_run.manifest["counts"]
    for label, n in counts["nodes"].items():
        if n:
            assert d[label].num_nodes == n == len(g.ids[label])
    for name, n in counts["edges"].items():
        if n:
            assert d[S.parse_edge_name(name)].edge_index.shape == (2, n)
    # edges map back to the right ids
    has = metabric_run.edges(S.HAS_MUTATION)
    ei = d[S.HAS_MUTATION].edge_index
    assert g.ids[S.PATIENT][ei[0, 0].item()] == has["src"].iloc[0]
    assert g.ids[S.MUTATION][ei[1, 0].item()] == has["dst"].iloc[0]
    d.validate(raise_on_error=True)


def test_patient_features_standardised_imputed(metabric_run):
    g = to_hetero(metabric_run)
    x = g.data[S.PATIENT].x.numpy()
    names = g.feature_names[S.PATIENT]
    assert x.shape[1] == len(names) and not np.isnan(x).any()
    age = x[:, names.index("AGE_AT_DIAGNOSIS")]
    miss = x[:, names.index("AGE_AT_DIAGNOSIS__missing")]
    observed = age[miss == 0]
    raw = metabric_run.nodes(S.PATIENT)
    ages = raw["AGE_AT_DIAGNOSIS"].to_numpy(float)[miss == 0]
    # rank-gauss (default): normal scores of the training ranks, in the raw order, centred, bounded
    assert pd.Series(observed).corr(pd.Series(ages), method="spearman") > 0.999
    assert abs(np.median(observed)) < 0.02 and abs(observed.mean()) < 0.02 and 0.9 < observed.std() < 1.05
    assert np.abs(observed).max() < 2.82
    assert miss.sum() == raw["AGE_AT_DIAGNOSIS"].isna().sum() > 0
    # "standard": (value - training mean) / training sd
    enc = PatientFeatureEncoder(["AGE_AT_DIAGNOSIS"], [], scaling="standard").fit(raw)
    z = enc.transform(raw)[:, 0][miss == 0]
    assert abs(z.mean()) < 1e-3 and abs(z.std() - 1) < 1e-3
    # one-hot categoricals: each patient has exactly one ER_IHC column set (a value or missing)
    er = [i for i, n in enumerate(names) if n.startswith("ER_IHC")]
    assert np.all(x[:, er].sum(axis=1) == 1)


def test_rank_gauss_skewed_tied_and_unseen_values():
    """A skewed count column with many ties (TMB-like): ties share one score, order is kept, the
    training median maps to 0, values beyond the training range get the grid's end score (bounded)."""
    rng = np.random.default_rng(0)
    train = np.concatenate([np.zeros(300), rng.lognormal(1.0, 1.2, 700).round(1)])
    q = training_quantiles(train)
    assert len(q) == MAX_QUANTILES
    z = rank_gauss(train, q)
    assert len(np.unique(z[train == 0])) == 1 and -1.1 < z[train == 0][0] < -0.97  # mid-rank 0.15 of the 30% tied zeros
    order = np.argsort(train, kind="stable")
    assert np.all(np.diff(z[order]) >= -1e-12)
    assert abs(rank_gauss(np.array([np.median(train)]), q)[0]) < 0.05
    far = rank_gauss(np.array([-1e6, 1e6, train.max()]), q)
    assert far[0] < z.min() and far[1] == far[2] == z.max() and np.isclose(-far[0], far[1]) and far[1] < 2.82
    assert np.allclose(rank_gauss(np.array([1.0, 2.0]), []), 0) and np.allclose(rank_gauss(np.ones(2), [3.0, 3.0]), 0)


def test_encoder_scaling_round_trip_and_old_encoders():
    df = pd.DataFrame({"tmb": [0.0, 0.0, 1.5, 3.0, 80.0, None]})
    enc = PatientFeatureEncoder(["tmb"], []).fit(df)
    assert enc.scaling == "rank_gauss"
    again = PatientFeatureEncoder.from_dict(enc.to_dict())
    assert np.array_equal(again.transform(df), enc.transform(df))
    # an encoder saved before the option existed has no "scaling" key: it keeps standardising
    old = {k: v for k, v in enc.to_dict().items() if k not in ("scaling", "quantiles_")}
    legacy = PatientFeatureEncoder.from_dict(old)
    assert legacy.scaling == "standard"
    assert np.allclose(legacy.transform(df)[:4, 0], (df["tmb"][:4] - enc.mean_["tmb"]) / enc.scale_["tmb"])
    with pytest.raises(ValueError, match="numeric scaling"):
        PatientFeatureEncoder(["tmb"], [], scaling="minmax")


def test_leakage_columns_never_reach_features(metabric_run):
    g = to_hetero(metabric_run)
    names = " ".join(g.feature_names[S.PATIENT])
    for col in metabric_run.manifest["patient_columns"]["leakage_excluded"] + ["label", "os_", "VITAL_STATUS"]:
        assert col not in names


def test_targets(metabric_run):
    g = to_hetero(metabric_run)
    p = g.data[S.PATIENT]
    assert g.label_classes == sorted(["LumA", "LumB", "Her2", "claudin-low", "Basal", "Normal"])
    raw = metabric_run.nodes(S.PATIENT)
    assert (p.y >= 0).sum().item() == raw["label"].notna().sum()
    assert p.has_survival.sum().item() == raw["os_months"].notna().sum() == 1980
    assert torch.all(p.event[~p.has_survival] == 0)


def test_encoder_fits_on_training_patients_only(metabric_run):
    raw = metabric_run.nodes(S.PATIENT)
    train = raw["id"].iloc[: len(raw) // 2].tolist()
    g = to_hetero(metabric_run, fit_patients=train)
    full = PatientFeatureEncoder(g.encoder.numeric, g.encoder.categorical).fit(raw)
    assert g.encoder.mean_["AGE_AT_DIAGNOSIS"] == raw.set_index("id").loc[train, "AGE_AT_DIAGNOSIS"].mean()
    assert g.encoder.mean_["AGE_AT_DIAGNOSIS"] != full.mean_["AGE_AT_DIAGNOSIS"]
    # reusing a fitted encoder gives the same features; it survives a dict round trip
    again = to_hetero(metabric_run, encoder=PatientFeatureEncoder.from_dict(g.encoder.to_dict()))
    assert torch.equal(again.data[S.PATIENT].x, g.data[S.PATIENT].x)


def test_unseen_category_is_all_zero():
    enc = PatientFeatureEncoder([], ["c"]).fit(pd.DataFrame({"c": ["a", "b", None]}))
    x = enc.transform(pd.DataFrame({"c": ["z", "a", None]}))
    assert enc.feature_names_ == ["c=a", "c=b", "c__missing", "mutations_assayed"]
    assert x[:, :3].tolist() == [[0, 0, 0], [1, 0, 0], [0, 0, 1]]
