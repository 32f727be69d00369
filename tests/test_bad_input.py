"""Bad input gives one clear line (file, line, column, fix), exit code 2, and writes nothing.

Each case starts from a small real study cut from METABRIC (first 60 patients, their
samples and MAF rows, written to a temp folder with the original line endings) and breaks
one thing.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from graphonc.cli import app
from graphonc.config import load_config
from graphonc.errors import ConfigError, InputError
from graphonc.graph.build import build_graph, build_run

from cohort_files import N_PATIENTS, edit_line as _edit_line, file_lines as _lines, write_small_metabric
from conftest import CONFIGS


@pytest.fixture()
def small_study(tmp_path, data_dir) -> tuple[Path, Path]:
    """A 60-patient METABRIC study and a config pointing at it."""
    return write_small_metabric(data_dir, tmp_path, N_PATIENTS)


def _run_cli(cfg_path: Path, out: Path):
    return CliRunner().invoke(app, ["build-graph", "--config", str(cfg_path), "--out", str(out)])


def _assert_one_line_error(result, out: Path, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    msg = result.output.strip()
    assert "Traceback" not in msg
    assert len([ln for ln in msg.splitlines() if ln.strip()]) <= 3  # one logical line, maybe soft-wrapped
    flat = " ".join(msg.split())
    for frag in fragments:
        assert frag in flat, (frag, flat)
    assert "Fix:" in flat or "Did you mean" in flat
    assert not out.exists() and not any(p.name.startswith(f".{out.name}.tmp") for p in out.parent.iterdir())
    return flat


def test_small_study_builds(small_study):
    _, cfg = small_study
    g = build_graph(load_config(cfg))
    assert len(g.nodes["Patient"]) == N_PATIENTS


def test_header_only_maf_builds_a_cohort_without_mutations(small_study):
    study, cfg = small_study
    maf = study / "data_mutations_extended.txt"
    maf.write_bytes(b"\n".join(maf.read_bytes().split(b"\n")[:2]) + b"\n")
    g = build_graph(load_config(cfg))
    assert len(g.nodes["Patient"]) == N_PATIENTS and g.nodes["Mutation"].empty
    assert g.nodes["Patient"]["sequenced"].all() and (g.nodes["Patient"]["n_mutations"] == 0).all()


def test_missing_file(small_study, tmp_path):
    study, cfg = small_study
    (study / "data_clinical_sample.txt").unlink()
    _assert_one_line_error(_run_cli(cfg, tmp_path / "out"), tmp_path / "out", "data_clinical_sample.txt",
                           "not found")


def test_missing_config_file(tmp_path):
    result = CliRunner().invoke(app, ["build-graph", "--config", str(tmp_path / "nope.yaml"), "--out",
                                      str(tmp_path / "out")])
    assert result.exit_code == 2 and "nope.yaml" in result.output and "Traceback" not in result.output


def test_misspelt_column(small_study, tmp_path):
    _, cfg = small_study
    c = yaml.safe_load(cfg.read_text())
    c["clinical"]["numeric"][0] = "AGE_AT_DIAGNOSI"
    cfg.write_text(yaml.safe_dump(c))
    flat = _assert_one_line_error(_run_cli(cfg, tmp_path / "out"), tmp_path / "out", "AGE_AT_DIAGNOSI",
                                  "data_clinical_patient.txt", "AGE_AT_DIAGNOSIS")
    assert "line 5" in flat  # the header line of the file


# One broken cell each: (file, 1-based line, column, bad value, text the message must contain).
CELL_CASES = [
    ("data_clinical_patient.txt", 17, "AGE_AT_DIAGNOSIS", "fifty", "'fifty' is not a number"),  # patient file
    ("data_clinical_sample.txt", 9, "TUMOR_SIZE", "12mm", "'12mm' is not a number"),  # sample-level column
    ("data_mutations_extended.txt", 3, "Tumor_Sample_Barcode", "MB-9999", "MB-9999"),  # sample with no patient
    ("data_clinical_sample.txt", 7, "PATIENT_ID", "MB-9998", "MB-9998"),  # sample of an unknown patient
]


@pytest.mark.parametrize("file, line, column, value, says", CELL_CASES,
                         ids=["unparseable-number", "unparseable-sample-number", "sample-without-patient",
                              "unknown-patient-in-sample-file"])
def test_broken_cell_names_file_line_and_column(small_study, tmp_path, file, line, column, value, says):
    study, cfg = small_study
    _edit_line(study / file, line, column, value)
    _assert_one_line_error(_run_cli(cfg, tmp_path / "out"), tmp_path / "out", file, f"line {line}", column, says)


def test_empty_cohort(small_study, tmp_path):
    study, cfg = small_study
    lines, eol = _lines(study / "data_clinical_patient.txt")
    (study / "data_clinical_patient.txt").write_bytes(eol.join(lines[:5]).encode())
    (study / "data_clinical_sample.txt").write_bytes(
        b"\n".join((study / "data_clinical_sample.txt").read_bytes().split(b"\n")[:5]))
    (study / "data_mutations_extended.txt").write_bytes(
        b"\n".join((study / "data_mutations_extended.txt").read_bytes().split(b"\n")[:2]))
    _assert_one_line_error(_run_cli(cfg, tmp_path / "out"), tmp_path / "out", "no patients")


def test_unknown_survival_status(small_study, tmp_path):
    study, cfg = small_study
    _edit_line(study / "data_clinical_patient.txt", 12, "OS_STATUS", "MISSING-ISH")
    _assert_one_line_error(_run_cli(cfg, tmp_path / "out"), tmp_path / "out", "line 12", "OS_STATUS",
                           "MISSING-ISH")


def test_failed_rebuild_keeps_previous_run(small_study, tmp_path):
    study, cfg = small_study
    out = tmp_path / "run"
    build_run(cfg, out)
    before = (out / "manifest.json").read_text()
    _edit_line(study / "data_clinical_patient.txt", 20, "NPI", "high")
    result = _run_cli(cfg, out)
    assert result.exit_code == 2
    assert (out / "manifest.json").read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run.")]


def test_config_errors_name_the_key(tmp_path):
    c = yaml.safe_load((CONFIGS / "metabric.yaml").read_text())
    c["clinical"]["numric"] = c["clinical"].pop("numeric")
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(c))
    with pytest.raises(ConfigError, match=r"clinical\.numric.*unknown key"):
        load_config(p)


def test_leakage_column_refused_as_feature(tmp_path):
    c = yaml.safe_load((CONFIGS / "metabric.yaml").read_text())
    c["clinical"]["categorical"].append("INTCLUST")
    p = tmp_path / "leak.yaml"
    p.write_text(yaml.safe_dump(c))
    with pytest.raises(ConfigError, match="INTCLUST"):
        load_config(p)


@pytest.mark.parametrize("key,column", [("after_diagnosis", "BREAST_SURGERY"), ("expression_derived", "ER_STATUS")])
def test_display_only_column_refused_as_feature(tmp_path, key, column):
    """A column known only after diagnosis, or an expression call, cannot also be a model feature."""
    c = yaml.safe_load((CONFIGS / "metabric.yaml").read_text())
    assert column in c["clinical"][key]
    c["clinical"]["categorical"].append(column)
    p = tmp_path / "both.yaml"
    p.write_text(yaml.safe_dump(c))
    with pytest.raises(ConfigError, match=rf"{column}.*clinical\.{key}"):
        load_config(p)


def test_debug_shows_traceback(small_study, tmp_path):
    study, cfg = small_study
    _edit_line(study / "data_clinical_patient.txt", 17, "AGE_AT_DIAGNOSIS", "fifty")
    result = CliRunner().invoke(app, ["--debug", "build-graph", "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and isinstance(result.exception, InputError)
    assert re.search(r"line 17", str(result.exception))


def test_maf_row_with_a_field_too_many_is_refused(small_study, tmp_path):
    """graphonc reads a subset of MAF columns; a row with a stray tab would otherwise give values
    from shifted columns without a word."""
    study, cfg = small_study
    maf = study / "data_mutations_extended.txt"
    lines, eol = _lines(maf)
    cells = lines[6].split("\t")
    cells.insert(3, "stray")
    lines[6] = "\t".join(cells)
    maf.write_bytes(eol.join(lines).encode())
    _assert_one_line_error(_run_cli(cfg, tmp_path / "out"), tmp_path / "out", "data_mutations_extended.txt",
                           "line 7", "tab-separated fields but the header has")
