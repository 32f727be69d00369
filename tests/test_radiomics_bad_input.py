"""Bad radiomics input: each failing case is a clear error naming the case and its file, the
rest of the batch is extracted, and only --strict turns failures into a non-zero exit."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import SimpleITK as sitk
import yaml
from typer.testing import CliRunner

from graphonc.cli import app
from graphonc.radiomics.extract import extract_cases
from graphonc.radiomics.manifest import read_manifest
from graphonc.radiomics_config import ExtractionSettings, GeometrySpec, RadiomicsParams


@pytest.fixture(scope="module")
def breast(data_dir) -> tuple[Path, Path]:
    d = data_dir / "radiomics" / "pyradiomics_samples"
    return d / "breast1_image.nrrd", d / "breast1_label.nrrd"


def _shifted(mask: Path, out: Path, mm: float) -> Path:
    m = sitk.ReadImage(str(mask))
    m.SetOrigin(tuple(o + mm for o in m.GetOrigin()))
    sitk.WriteImage(m, str(out))
    return out


def _params(tmp_path: Path, **geometry) -> Path:
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"pyradiomics": {"setting": {"binWidth": 25, "label": 1},
                                                 "featureClass": {"firstorder": [], "shape": []}},
                                 "geometry": {"on_mismatch": "resample", "tolerance_mm": 2.0, **geometry},
                                 "workers": 2}))
    return p


@pytest.fixture(scope="module")
def bad_batch(tmp_path_factory, breast, data_dir):
    """A manifest with one good case and one case per kind of problem, all from real files."""
    tmp = tmp_path_factory.mktemp("bad")
    image, mask = breast
    empty = sitk.ReadImage(str(mask)) * 0
    sitk.WriteImage(empty, str(tmp / "empty_mask.nrrd"))
    rows = [
        {"case_id": "good", "patient_id": "P1", "image": image, "mask": mask},
        {"case_id": "missing", "patient_id": "P2", "image": tmp / "no_such_image.nrrd", "mask": mask},
        {"case_id": "empty", "patient_id": "P3", "image": image, "mask": tmp / "empty_mask.nrrd"},
        {"case_id": "far", "patient_id": "P4", "image": image, "mask": _shifted(mask, tmp / "far.nrrd", 10.0)},
        {"case_id": "near", "patient_id": "P5", "image": image, "mask": _shifted(mask, tmp / "near.nrrd", 0.5)},
        {"case_id": "wronglabel", "patient_id": "P6", "image": image, "mask": mask, "label": 5},
        {"case_id": "notimage", "patient_id": "P7", "image": data_dir / "radiomics" / "pyradiomics_samples" /
         "LICENSE.txt", "mask": mask},
    ]
    manifest = tmp / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return tmp, manifest


@pytest.mark.slow  # extracts a batch of image cases with pyradiomics
def test_each_bad_case_is_named_and_the_batch_finishes(bad_batch, tmp_path):
    tmp, manifest = bad_batch
    out = tmp_path / "features.parquet"
    res = CliRunner().invoke(app, ["-q", "radiomics", "extract", "--manifest", str(manifest), "--params",
                                   str(_params(tmp_path)), "--out", str(out), "--no-cache"])
    assert res.exit_code == 0, res.output
    feats = pd.read_parquet(out)
    assert sorted(feats["case_id"]) == ["good", "near"]  # 0.5 mm off: resampled onto the image grid
    assert feats.filter(like="original_").notna().all().all()
    errors = pd.read_csv(out.with_name("features.errors.csv")).set_index("case_id")
    assert errors["reason"].to_dict() == {"empty": "empty_mask", "far": "geometry_mismatch", "missing": "missing_file",
                                          "notimage": "unreadable", "wronglabel": "label_absent"}
    msg = errors["message"]
    assert "no_such_image.nrrd not found" in msg["missing"] and "Fix:" in msg["missing"]
    assert "empty_mask.nrrd is empty" in msg["empty"]
    assert "far.nrrd does not lie on the image grid" in msg["far"] and "10.00 mm" in msg["far"]
    assert "label 5 is not in mask" in msg["wronglabel"] and "[1]" in msg["wronglabel"]
    assert "LICENSE.txt is not an image SimpleITK can read" in msg["notimage"]
    assert errors.loc["far", "manifest_line"] == 5 and errors.loc["far", "patient_id"] == "P4"
    for case in errors.index:  # the CLI names every failed case and its reason
        assert case in res.output
    # the resampled case equals the good one up to the half-voxel the mask moved
    good, near = feats.set_index("case_id").loc["good"], feats.set_index("case_id").loc["near"]
    assert abs(near["original_shape_VoxelVolume"] / good["original_shape_VoxelVolume"] - 1) < 0.35


@pytest.mark.slow  # extracts a batch of image cases with pyradiomics
def test_strict_exits_nonzero_but_still_writes(bad_batch, tmp_path):
    _, manifest = bad_batch
    out = tmp_path / "f.parquet"
    res = CliRunner().invoke(app, ["-q", "radiomics", "extract", "--manifest", str(manifest), "--params",
                                   str(_params(tmp_path)), "--out", str(out), "--no-cache", "--strict",
                                   "--workers", "1"])
    assert res.exit_code == 1
    assert "5 case(s) failed (--strict)" in res.output
    assert len(pd.read_parquet(out)) == 2


@pytest.mark.slow  # extracts a batch of image cases with pyradiomics
def test_reject_mode_rejects_any_mismatch(bad_batch, breast):
    _, manifest = bad_batch
    cases = [c for c in read_manifest(manifest) if c.case_id in ("good", "near")]
    params = RadiomicsParams(pyradiomics=ExtractionSettings(setting={"binWidth": 25},
                                                            featureClass={"firstorder": []}),
                             geometry=GeometrySpec(on_mismatch="reject"))
    res = extract_cases(cases, params, workers=1, use_cache=False)
    assert list(res.features["case_id"]) == ["good"]
    assert res.errors.loc[0, "case_id"] == "near" and res.errors.loc[0, "reason"] == "geometry_mismatch"
    assert "on_mismatch is 'reject'" in res.errors.loc[0, "message"]


@pytest.mark.parametrize("rows,needle", [
    ([{"patient_id": "P1", "image": "a.nrrd"}], "column 'mask' not found"),
    ([{"patient_id": "P1", "image": "a.nrrd", "mask": "m.nrrd"}, {"patient_id": "P1", "image": "b.nrrd",
                                                                   "mask": "m.nrrd"}], "case 'P1' appears twice"),
    ([{"patient_id": "P1", "image": "a.nrrd", "mask": "m.nrrd", "label": "one"}], "'one' is not a number"),
    ([{"patient_id": "", "image": "a.nrrd", "mask": "m.nrrd"}], "empty patient_id"),
])
def test_bad_manifest_is_one_clear_error(tmp_path, rows, needle):
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    res = CliRunner().invoke(app, ["-q", "radiomics", "extract", "--manifest", str(manifest), "--params",
                                   str(_params(tmp_path)), "--out", str(tmp_path / "f.parquet"), "--no-cache"])
    assert res.exit_code == 2
    assert needle in res.output and "manifest.csv" in res.output and "Fix:" in res.output
    assert not (tmp_path / "f.parquet").exists()


@pytest.mark.slow  # extracts a batch of image cases with pyradiomics
def test_bad_params_name_the_key(tmp_path, bad_batch):
    _, manifest = bad_batch
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"pyradiomics": {"setting": {"binWidht": 25}}}))
    res = CliRunner().invoke(app, ["-q", "radiomics", "extract", "--manifest", str(manifest), "--params", str(p),
                                   "--out", str(tmp_path / "f.parquet"), "--no-cache"])
    assert res.exit_code == 2 and "binWidht" in res.output and "pyradiomics" in res.output
    p.write_text(yaml.safe_dump({"geometry": {"on_mismatch": "fix"}}))
    res = CliRunner().invoke(app, ["-q", "radiomics", "extract", "--manifest", str(manifest), "--params", str(p),
                                   "--out", str(tmp_path / "f.parquet"), "--no-cache"])
    assert res.exit_code == 2 and "geometry.on_mismatch" in res.output
