"""Precomputed features (HN1), harmonisation (filters, per-batch, ComBat) and phenotypes
(k selection, determinism, descriptions, saved transform assigning new patients)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from graphonc.cli import app
from graphonc.config import load_config
from graphonc.radiomics.features import PatientFeatures, read_feature_table
from graphonc.radiomics.harmonize import Harmonizer, combat_apply, combat_fit
from graphonc.radiomics.phenotypes import PhenotypeModel, fit_phenotypes
from graphonc.radiomics_config import FeatureTableSpec, PhenotypeSpec

REPO = Path(__file__).resolve().parents[1]
HN1_CONFIG = REPO / "configs" / "hn1.yaml"


@pytest.fixture(scope="module")
def hn1_spec() -> FeatureTableSpec:
    return load_config(HN1_CONFIG).radiomics.features


@pytest.fixture(scope="module")
def hn1(hn1_spec) -> PatientFeatures:
    return read_feature_table(hn1_spec)


@pytest.fixture(scope="module")
def hn1_clinical(data_dir) -> pd.DataFrame:
    return pd.read_csv(data_dir / "radiomics" / "hn1" / "HN_ClinicalData.csv").set_index("id")


def test_hn1_published_features_map_to_pyradiomics_names(hn1, data_dir):
    raw = pd.read_csv(data_dir / "radiomics" / "hn1" / "HN_Radiomics.csv")
    gtv1 = raw[raw["Structure"] == "GTV-1"].set_index("id").sort_index()
    assert hn1.values.shape == (137, 32)
    assert list(hn1.values.index) == sorted(gtv1.index)
    # bare names got their pyradiomics class; values untouched
    assert {"original_shape_MeshVolume", "original_firstorder_Mean", "original_shape_Maximum2DDiameterColumn",
            "original_firstorder_10Percentile"} <= set(hn1.values.columns)
    assert not any(c.startswith("Unnamed") or c == "original_shape_id" for c in hn1.values.columns)
    np.testing.assert_array_equal(hn1.values["original_shape_MeshVolume"].to_numpy(), gtv1["MeshVolume"].to_numpy())
    np.testing.assert_array_equal(hn1.values["original_firstorder_Kurtosis"].to_numpy(), gtv1["Kurtosis"].to_numpy())


def test_features_csv_cli_writes_the_extract_layout(tmp_path, hn1, data_dir):
    out = tmp_path / "hn1_features.parquet"
    res = CliRunner().invoke(app, ["-q", "radiomics", "extract", "--features-csv",
                                   str(data_dir / "radiomics" / "hn1" / "HN_Radiomics.csv"), "--id-column", "id",
                                   "--roi-column", "Structure", "--roi", "GTV-1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    again = read_feature_table(FeatureTableSpec(path=out))
    pd.testing.assert_frame_equal(again.values, hn1.values)
    # several GTVs per patient without an aggregate rule is an error naming the patient and the lines
    res = CliRunner().invoke(app, ["-q", "radiomics", "extract", "--features-csv",
                                   str(data_dir / "radiomics" / "hn1" / "HN_Radiomics.csv"), "--id-column", "id",
                                   "--roi-column", "Structure", "--roi", "GTV-1", "--roi", "GTV-2",
                                   "--out", str(tmp_path / "x.parquet")])
    assert res.exit_code == 2
    assert "patient 'HN1004' has 2 rows" in res.output and "GTV-2" in res.output and "aggregate" in res.output
    res = CliRunner().invoke(app, ["-q", "radiomics", "extract", "--features-csv",
                                   str(data_dir / "radiomics" / "hn1" / "HN_Radiomics.csv"), "--id-column", "ID",
                                   "--out", str(tmp_path / "x.parquet")])
    assert res.exit_code == 2 and "column 'ID' not found" in res.output and "Did you mean 'id'" in res.output


def test_largest_roi_aggregate(hn1_spec):
    spec = hn1_spec.model_copy(update={"roi_values": ["GTV-1", "GTV-2", "GTV-3"], "aggregate": "largest"})
    pf = read_feature_table(spec)
    raw = pd.read_csv(spec.path)
    gtv = raw[raw["Structure"].isin(["GTV-1", "GTV-2", "GTV-3"])]
    expected = gtv.groupby("id")["VoxelVolume"].max().sort_index()
    np.testing.assert_array_equal(pf.values["original_shape_VoxelVolume"].to_numpy(), expected.to_numpy())


def test_filters_drop_near_constant_and_correlated(hn1, hn1_clinical):
    values = hn1.values.copy()
    values["clin_m"] = hn1_clinical["clin_m"].reindex(values.index).astype(float)  # 136 of 137 are 0
    spec = PhenotypeSpec(max_correlation=0.9)
    h = Harmonizer(spec).fit(values)
    assert h.dropped_["clin_m"].startswith("near-constant")
    assert "clin_m" not in h.selected_
    z = h.transform(values)
    rho = z.rank().corr().abs().to_numpy()
    np.fill_diagonal(rho, 0)
    assert rho.max() <= 0.9  # no kept pair above the threshold
    for f, why in h.dropped_.items():
        if why.startswith("|Spearman"):
            partner = why.rsplit(" with ", 1)[1]
            assert partner in values.columns
    # MeshVolume and VoxelVolume are rank-identical: the preferred name stays
    assert "original_shape_MeshVolume" in h.selected_ and "original_shape_VoxelVolume" not in h.selected_
    assert np.allclose(z.mean(0), 0) and np.allclose(z.std(0, ddof=0), 1)
    assert "original_shape_MeshVolume" in h.log_  # volumes are right-skewed


def _with_batch(pf: PatientFeatures, clinical: pd.DataFrame, column: str) -> PatientFeatures:
    meta = pf.meta.copy()
    meta["site"] = clinical[column].reindex(pf.values.index).astype(str)
    return PatientFeatures(values=pf.values, meta=meta, source=pf.source)


def test_per_batch_and_combat_remove_batch_location(hn1, hn1_clinical):
    """Tumour site (oropharynx / larynx) as the batch: real groups with real mean differences."""
    pf = _with_batch(hn1, hn1_clinical, "index_tumour_location")
    batch = pf.batch("site")
    spec = PhenotypeSpec(harmonization="per_batch", batch_column="site")
    h = Harmonizer(spec).fit(pf.values, batch)
    hv = h.harmonised(pf.values, batch)
    for level in batch.unique():
        assert np.allclose(hv[batch == level].mean(0), 0, atol=1e-9)

    plain = Harmonizer(PhenotypeSpec()).fit(pf.values).transform(pf.values)
    combat_spec = PhenotypeSpec(harmonization="combat", batch_column="site")
    hc = Harmonizer(combat_spec).fit(pf.values, batch)
    zc = hc.transform(pf.values, batch)

    def gap(z: pd.DataFrame) -> float:
        m = z.groupby(batch.to_numpy()).mean()
        return float((m.iloc[0] - m.iloc[1]).abs().max())

    assert gap(plain) > 0.5            # the sites differ before harmonisation …
    assert gap(zc) < 0.15 * gap(plain)  # … and hardly after ComBat (empirical Bayes shrinks, so not exactly 0)


def test_combat_apply_reproduces_neurocombat(hn1, hn1_clinical):
    pf = _with_batch(hn1, hn1_clinical, "index_tumour_location")
    x = np.log1p(pf.values[["original_shape_MeshVolume", "original_firstorder_Mean", "original_firstorder_Entropy",
                            "original_shape_Sphericity"]].abs().to_numpy())
    b = pf.batch("site").to_numpy()
    out, est = combat_fit(x, b)
    np.testing.assert_allclose(combat_apply(x, b, est), out, rtol=1e-6, atol=1e-8)


def test_combat_needs_two_patients_per_batch(hn1, hn1_clinical):
    pf = _with_batch(hn1, hn1_clinical, "clin_m")  # M1: a single patient
    spec = PhenotypeSpec(harmonization="combat", batch_column="site")
    with pytest.raises(Exception, match="batch '1' of column 'site' has only 1 patient"):
        fit_phenotypes(pf, spec)


def test_phenotypes_seeded_k_by_bic_and_described(hn1):
    spec = PhenotypeSpec(k_min=2, k_max=5, seed=3, n_init=2)
    m1, a1 = fit_phenotypes(hn1, spec)
    m2, a2 = fit_phenotypes(hn1, spec)
    assert m1.dumps() == m2.dumps()
    pd.testing.assert_frame_equal(a1, a2)
    bics = {s["k"]: s["bic"] for s in m1.selection}
    assert sorted(bics) == [2, 3, 4, 5] and m1.k == min(bics, key=bics.get)
    assert m1.ids == [f"RP{i}" for i in range(1, m1.k + 1)]
    assert m1.sizes == sorted(m1.sizes, reverse=True) and sum(m1.sizes) == 137
    np.testing.assert_allclose(a1.filter(like="p_").sum(1), 1.0)
    assert (a1["phenotype"] == a1.filter(like="p_").idxmax(1).str[2:]).all()
    table = m1.phenotype_table()
    for desc, sig in zip(table["description"], table["signature"]):
        assert desc and desc != "average" and len(desc.split(", ")) == 3
        assert sig.count(" sd") == 3
    # the description follows the profile: the phenotype with the largest mean volume reads "large"
    vol = {i: p["original_shape_MeshVolume"] for i, p in m1.profiles.items()}
    big = max(vol, key=vol.get)
    if vol[big] >= sorted(abs(v) for v in m1.profiles[big].values())[-3]:
        assert "large" in table.set_index("id").loc[big, "description"]


def test_kmeans_by_silhouette(hn1):
    spec = PhenotypeSpec(method="kmeans", selection="silhouette", k_min=2, k_max=5, pca_variance=0.9)
    m, a = fit_phenotypes(hn1, spec)
    sil = {s["k"]: s["silhouette"] for s in m.selection}
    assert m.k == max(sil, key=sil.get)
    assert set(a["p"]) == {1.0}
    assert m.pca is not None and len(m.pca["components"]) < len(m.harmonizer.selected_)


def test_saved_transform_assigns_new_patients_without_refit(tmp_path, hn1_spec):
    """Fit on the upstream 'train' split via the CLI; the saved model assigns the 'test' patients,
    and re-assigning the training patients reproduces the fit exactly."""
    clinical = pd.read_csv(Path(hn1_spec.path).with_name("HN_ClinicalData.csv"))
    train = set(clinical.loc[clinical["dataset"] == "train", "id"])
    pf = read_feature_table(hn1_spec)
    tr = PatientFeatures(pf.values.loc[pf.values.index.isin(train)], pf.meta.loc[pf.values.index.isin(train)], pf.source)
    te = PatientFeatures(pf.values.loc[~pf.values.index.isin(train)], pf.meta.loc[~pf.values.index.isin(train)],
                         pf.source)
    from graphonc.radiomics.features import write_feature_table

    write_feature_table(tr, tmp_path / "train.parquet")
    write_feature_table(te, tmp_path / "test.parquet")
    out = tmp_path / "pheno"
    res = CliRunner().invoke(app, ["-q", "radiomics", "phenotype", "--features", str(tmp_path / "train.parquet"),
                                   "--config", str(HN1_CONFIG), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} == {"phenotype_model.json", "phenotypes.parquet", "assignments.parquet",
                                               "features_z.parquet", "report.json", "lineage.json"}
    report = json.loads((out / "report.json").read_text())
    assert report["n_patients"] == 102 and report["k"] == len(report["phenotypes"])
    fitted = pd.read_parquet(out / "assignments.parquet")
    res = CliRunner().invoke(app, ["-q", "radiomics", "assign", "--model", str(out), "--features",
                                   str(tmp_path / "train.parquet"), "--out", str(tmp_path / "again.parquet")])
    assert res.exit_code == 0, res.output
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "again.parquet"), fitted)
    res = CliRunner().invoke(app, ["-q", "radiomics", "assign", "--model", str(out), "--features",
                                   str(tmp_path / "test.parquet"), "--out", str(tmp_path / "new.parquet")])
    assert res.exit_code == 0, res.output
    new = pd.read_parquet(tmp_path / "new.parquet")
    model = PhenotypeModel.load(out)
    assert len(new) == 35 and set(new["phenotype"]) <= set(model.ids)
    # new patients are standardised with the training statistics, not their own
    z_new = model.harmonizer.transform(te.values)
    assert not np.allclose(z_new.mean(0), 0, atol=1e-6)
