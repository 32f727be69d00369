"""scripts/evaluate_cohorts.py: --model-option overrides of the run's model: section (items 11-12 of
docs/evaluation.md are rerun with them), refused in one line when a key or value is wrong."""
from __future__ import annotations

import sys

import pytest

from conftest import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("evaluate_cohorts")


def test_model_options_are_read_as_yaml(script):
    assert script.model_options(["member_validation=shared", "dropout=0.5", "wide_knots=[-1, 0, 1]",
                                 "batch_size=null"]) == {"member_validation": "shared", "dropout": 0.5,
                                                         "wide_knots": [-1, 0, 1], "batch_size": None}
    with pytest.raises(SystemExit, match="expected KEY=VALUE"):
        script.model_options(["dropout"])


@pytest.mark.parametrize("option, message", [("member_validaton=own", "member_validaton: Extra inputs"),
                                             ("member_validation=both", "member_validation: Input should be")])
def test_a_wrong_model_option_is_refused_in_one_line(script, metabric_run, tmp_path, monkeypatch, option, message):
    monkeypatch.setattr(sys, "argv", ["evaluate_cohorts.py", "--run", str(metabric_run.root), "--out",
                                      str(tmp_path / "out"), "--model-option", option])
    with pytest.raises(SystemExit, match=message) as e:
        script.main()
    assert "\n" not in str(e.value) and not (tmp_path / "out").exists()
