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


OTHERS = ["gnn", "mlp", "coxph", "rsf", "logreg", "gboost"]
SIMILARITY = ["gnn", "mlp", "knn_features", "jaccard_genes", "snf", "random"]


@pytest.fixture()
def stored(metabric_run, tmp_path):
    """An earlier output on a 2-fold plan: every model's rows but coxph_splines'."""
    import pandas as pd

    from graphonc.model.folds import make_plan, write_plan

    old = tmp_path / "old"
    old.mkdir()
    write_plan(make_plan(metabric_run, 2, 1, 0), old / "folds.csv")
    pd.DataFrame([{"model": m, "repeat": 0, "fold": f, "harrell_c": 0.6 + i / 100}
                  for i, m in enumerate(OTHERS) for f in (0, 1)]).to_csv(old / "per_fold.csv", index=False)
    pd.DataFrame([{"model": m, "repeat": 0, "fold": f, "c_index": 0.5 + i / 100}
                  for i, m in enumerate(SIMILARITY) for f in (0, 1)]).to_csv(old / "similarity.csv", index=False)
    return old


def _argv(run, out, *extra):
    return ["evaluate_cohorts.py", "--run", str(run.root), "--out", str(out), "--threads", "1", *map(str, extra)]


@pytest.mark.slow  # fits a baseline on two METABRIC folds
def test_a_new_baseline_joins_the_stored_rows_of_the_same_plan(script, metabric_run, stored, tmp_path, monkeypatch):
    import pandas as pd

    new = tmp_path / "new"
    monkeypatch.setattr(sys, "argv", _argv(metabric_run, new, "--folds-file", stored / "folds.csv", "--reuse", stored,
                                           "--fit", "coxph_splines"))
    script.main()
    rows = pd.read_csv(new / "per_fold.csv")
    assert sorted(set(rows["model"])) == sorted(OTHERS + ["coxph_splines"])
    kept = rows[rows["model"] != "coxph_splines"].sort_values(["model", "fold"])
    old = pd.read_csv(stored / "per_fold.csv").sort_values(["model", "fold"])
    assert kept["harrell_c"].tolist() == old["harrell_c"].tolist()  # reused, not retrained
    fitted = rows[rows["model"] == "coxph_splines"]
    assert len(fitted) == 2 and fitted["harrell_c"].between(0.6, 0.75).all() and fitted["n_train"].gt(900).all()
    sim = pd.read_csv(new / "similarity.csv")
    assert sorted(sim["c_index"]) == sorted(pd.read_csv(stored / "similarity.csv")["c_index"])
    assert pd.read_csv(new / "folds.csv").equals(pd.read_csv(stored / "folds.csv"))


@pytest.mark.slow  # opens the METABRIC run once per case
@pytest.mark.parametrize("extra, message", [
    (["--fit", "coxph_spline"], "unknown model(s) ['coxph_spline']"),
    (["--fit", "coxph_splines"], "--fit without --reuse"),
    (["--reuse", "{old}"], "--reuse needs --fit NAMES"),
    (["--reuse", "{old}", "--fit", "gnn"], "has no rows of coxph_splines: add them to --fit"),
    (["--baselines-from", "{old}"], "has no rows of coxph_splines: add them to --fit"),
    (["--plan-seed", "100"], "--plan-seed makes a plan and --folds-file reads one"),
])
def test_what_cannot_be_reused_is_refused_before_anything_is_written(script, metabric_run, stored, tmp_path,
                                                                     monkeypatch, extra, message):
    out = tmp_path / "new"
    extra = [e.format(old=stored) for e in extra]
    monkeypatch.setattr(sys, "argv", _argv(metabric_run, out, "--folds-file", stored / "folds.csv", *extra))
    with pytest.raises(SystemExit) as e:
        script.main()
    assert message in str(e.value) and "\n" not in str(e.value) and not out.exists()


@pytest.mark.slow  # opens the METABRIC run
def test_another_plan_seed_is_another_plan(script, metabric_run, stored, tmp_path, monkeypatch):
    """--plan-seed 0 (the config's) makes the stored plan again; --plan-seed 100 a different one,
    which the stored rows do not apply to."""
    out = tmp_path / "new"
    monkeypatch.setattr(sys, "argv", _argv(metabric_run, out, "--folds", 2, "--repeats", 1, "--plan-seed", 100,
                                           "--reuse", stored, "--fit", "coxph_splines"))
    with pytest.raises(SystemExit, match="is another fold plan"):
        script.main()
    assert not out.exists()
    monkeypatch.setattr(sys, "argv", _argv(metabric_run, out, "--folds", 2, "--repeats", 1, "--plan-seed", 0,
                                           "--reuse", stored, "--fit", "gnn"))
    with pytest.raises(SystemExit, match="has no rows of coxph_splines"):  # the plan matched; the rows did not
        script.main()
