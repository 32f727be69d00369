"""Run folder → HeteroData: features, id maps, targets, no leakage columns."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from graphonc.graph import schema as S
from graphonc.graph.hetero import PatientFeatureEncoder, to_hetero


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
    assert abs(observed.mean()) < 1e-3 and abs(observed.std() - 1) < 1e-3
    raw = metabric_run.nodes(S.PATIENT)
    assert miss.sum() == raw["AGE_AT_DIAGNOSIS"].isna().sum() > 0
    # one-hot categoricals: each patient has exactly one ER_IHC column set (a value or missing)
    er = [i for i, n in enumerate(names) if n.startswith("ER_IHC")]
    assert np.all(x[:, er].sum(axis=1) == 1)


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
