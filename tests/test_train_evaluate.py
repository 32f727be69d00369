"""train / evaluate stages on real METABRIC: outputs, reload in a fresh process, a broken target gives C≈0.5."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from graphonc.graph.run import GraphRun, write_parquet
from graphonc.model.evaluate import evaluate_gnn, make_folds
from graphonc.model.gnn import ModelConfig
from graphonc.model.metrics import _harrell

from conftest import FAST_MODEL as FAST

pytestmark = pytest.mark.slow  # trains and cross-validates on METABRIC


@pytest.fixture(scope="module")
def trained(metabric_trained):
    return metabric_trained


def test_train_writes_the_model_folder(trained):
    run, metrics = trained
    m = run.root / "model"
    for f in ("weights.pt", "model.json", "config.yaml", "metrics.json", "embeddings.parquet",
              "predictions.parquet", "plots/loss.png", "plots/km_risk_groups.png", "plots/calibration.png"):
        assert (m / f).exists(), f
    emb = pd.read_parquet(m / "embeddings.parquet")
    assert len(emb) == 2509 and len(emb["embedding"].iloc[0]) == FAST["embedding_dim"]
    pred = pd.read_parquet(m / "predictions.parquet")
    probs = pred.filter(like="p_")
    assert probs.shape[1] == 6 and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert set(pred["split"]) == {"train", "validation", "unlabelled"}
    assert 0.55 < metrics["validation"]["harrell_c"] < 0.85
    # the validation metrics score the held-out patients' out-of-bag predictions, kept beside the model's
    val = pred[pred["split"] == "validation"]
    assert val["oob_risk"].notna().all() and pred.loc[pred["split"] != "validation", "oob_risk"].isna().all()
    assert len(val) == metrics["n_validation"]
    # out-of-bag = predicted with the patient's outgoing edges masked: the class probabilities
    # differ from the final model's; a risk that fell back to penalised Cox with splines
    # (model.risk_fallback) reads the patient's own columns only, so it cannot
    oob_p = val.filter(like="oob_prob_").to_numpy()
    assert not np.allclose(oob_p, val[[f"p_{c[len('oob_prob_'):]}" for c in val.filter(like="oob_prob_")]])
    if metrics["member_risk"] == ["linear"] * len(metrics["member_risk"]):
        np.testing.assert_allclose(val["oob_risk"], val["risk"], rtol=1e-5, atol=1e-6)
    else:
        assert not np.allclose(val["oob_risk"], val["risk"])
    p = run.nodes("Patient").set_index("id").loc[val["id"]]
    ok = p["os_months"].notna().to_numpy() & p["os_event"].notna().to_numpy()
    c = _harrell(p["os_event"].to_numpy()[ok].astype(bool), p["os_months"].to_numpy()[ok],
                 val["oob_risk"].to_numpy()[ok])
    assert c == pytest.approx(metrics["validation"]["harrell_c"], abs=1e-9)
    assert np.allclose(val.filter(like="oob_prob_").sum(1), 1, atol=1e-5)
    assert json.loads((m / "metrics.json").read_text())["best_epoch"] == metrics["best_epoch"]
    # each member's risk source (model.risk_fallback) is recorded beside the model
    saved = json.loads((m / "model.json").read_text())
    assert metrics["member_risk"] == saved["member_risk"] and set(metrics["member_risk"]) <= {"network", "linear"}
    assert len(metrics["member_risk"]) == len(saved["member_best_epochs"]) >= 1
    # the label trees (model.label_boosting "auto"): their weight is the one with the lowest
    # out-of-bag log-loss, and they are saved beside the network when they count
    lt = metrics["label_trees"]
    assert lt["chosen_by"] == "out-of-bag log-loss" and len(lt["oob_log_loss"]) == 11
    assert f"{lt['weight']:g}" == min(lt["oob_log_loss"], key=lambda w: (lt["oob_log_loss"][w], float(w)))
    assert saved["booster_weight"] == lt["weight"]
    assert (m / "booster.skops").exists() == (lt["weight"] > 0)
    if lt["weight"] > 0:
        assert lt["columns"] == len(saved["booster_columns"]) and saved["booster_columns"][:3] == [0, 1, 2]


def test_reload_in_a_fresh_process_is_bit_identical(trained):
    run, _ = trained
    code = (
        "import sys, numpy as np; from pathlib import Path\n"
        "from graphonc.graph.run import GraphRun\nfrom graphonc.model.io import load_model\n"
        "from graphonc.model.train import predict\n"
        "run = GraphRun.open(sys.argv[1]); lm = load_model(run.root / 'model', run)\n"
        "z, p, r = predict(lm.model, lm.graph, lm.booster); np.save(sys.argv[2], np.column_stack([r, p]))\n"
    )
    out = run.root / "reloaded.npy"
    subprocess.run([sys.executable, "-c", code, str(run.root), str(out)], check=True)
    pred = pd.read_parquet(run.root / "model" / "predictions.parquet")
    got = np.load(out).astype("float64")
    assert np.array_equal(got[:, 0], pred["risk"].to_numpy())
    # the class probabilities, with the label trees reloaded from booster.skops
    assert np.array_equal(got[:, 1:], pred[[c for c in pred.columns if c.startswith("p_")]].to_numpy())


def test_folds_are_patient_level_and_deterministic(metabric_run):
    folds = make_folds(metabric_run, 5, 0)
    tests = [set(te) for _, te in folds]
    assert all(not (a & b) for i, a in enumerate(tests) for b in tests[i + 1:])
    for tr, te in folds:
        assert not set(tr) & set(te)
    assert folds == make_folds(metabric_run, 5, 0)


def test_shuffled_survival_gives_chance_concordance(metabric_run, tmp_path):
    root = tmp_path / "shuffled"
    shutil.copytree(metabric_run.root, root)
    p = pd.read_parquet(root / "graph/nodes/Patient.parquet")
    rng = np.random.default_rng(1)
    has = p["os_months"].notna()
    perm = rng.permutation(np.flatnonzero(has))
    p.loc[has, ["os_months", "os_event"]] = p.loc[p.index[perm], ["os_months", "os_event"]].to_numpy()
    write_parquet(p, root / "graph/nodes/Patient.parquet")
    run = GraphRun.open(root)
    res = evaluate_gnn(run, make_folds(run, 3, 0)[:2], ModelConfig(**FAST))
    assert abs(res["harrell_c"].mean() - 0.5) < 0.06
    # the diagnosis labels were not shuffled: the same run still learns them
    assert res["macro_f1"].mean() > 0.3


def test_evaluate_cli_writes_the_eval_folder_and_a_metric_by_model_table(metabric_run, tmp_path):
    from typer.testing import CliRunner

    from graphonc.cli import app

    root = tmp_path / "metabric"
    shutil.copytree(metabric_run.root, root, ignore=shutil.ignore_patterns("model", "eval", "index"))
    res = CliRunner().invoke(app, ["evaluate", "--run", str(root), "--folds", "2", "--epochs", "1",
                                   "--no-baselines"], env={"COLUMNS": "100"})
    assert res.exit_code == 0, res.output
    summary = json.loads((root / "eval" / "summary.json").read_text())
    models = list(summary)
    assert len(models) >= 2 and all("harrell_c" in summary[m] and "macro_f1" in summary[m] for m in models)
    header = next(ln for ln in res.output.splitlines() if "metric" in ln)
    assert all(m in header for m in models)  # models across
    rows = {ln.split("│")[1].strip() for ln in res.output.splitlines() if ln.count("│") > 2}
    assert {"harrell_c", "macro_f1"} <= rows  # metrics down
