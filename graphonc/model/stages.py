"""The ``train`` and ``evaluate`` stages: read a run folder, write ``model/`` or ``eval/`` into it.

``<run>/model/``: weights.pt, model.json (see :mod:`graphonc.model.io`), config.yaml (the
exact model config), metrics.json (held-out validation metrics), embeddings.parquet,
predictions.parquet, plots/{loss,km_risk_groups,calibration}.png.

``<run>/eval/``: folds.parquet (one row per model and fold), summary.json and summary.md
(mean ± sd per model), the folds' patient ids (folds.json).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from graphonc import layout as L
from graphonc.config import load_config
from graphonc.graph import lineage
from graphonc.graph import schema as S
from graphonc.graph.run import GraphRun, atomic_dir, write_parquet
from graphonc.model.evaluate import eligible_patients, evaluate, make_folds, score_model, summary_table
from graphonc.model.gnn import ModelConfig
from graphonc.model.io import save_model
from graphonc.model.train import fit_model, pick_device, predict
from graphonc.plots import training as plots


def model_config(run: GraphRun, config_path: Path | None = None, **overrides) -> ModelConfig:
    """The ``model:`` section of the given config, else of the config the run was built from."""
    if config_path is not None:
        section = load_config(config_path).model
    elif run.layout.config.exists():
        section = (yaml.safe_load(run.layout.config.read_text(encoding="utf-8")) or {}).get("model", {}) or {}
    else:
        section = {}
    return ModelConfig(**{**section, **{k: v for k, v in overrides.items() if v is not None}})


def _prediction_table(ids: pd.Index, proba: np.ndarray, risk: np.ndarray, classes: list[str],
                      split: pd.Series) -> pd.DataFrame:
    df = pd.DataFrame({S.ID: ids, "split": split.to_numpy(), "risk": risk.astype("float64")})
    if classes:
        for i, c in enumerate(classes):
            df[f"p_{c}"] = proba[:, i].astype("float64")
        df["predicted_label"] = np.asarray(classes, dtype=object)[proba.argmax(1)]
    return df


def train_stage(run_dir: Path, config_path: Path | None = None, progress: bool = False, **overrides) -> dict:
    """Train on every patient with the configured targets; write ``<run>/model/``. Returns metrics."""
    run = GraphRun.open(run_dir)
    consumed = lineage.fingerprint(run.root, manifest=run.manifest)  # the graph as opened, before reading it
    cfg = model_config(run, config_path, **overrides)
    ids = eligible_patients(run)[S.ID].tolist()
    t0 = time.perf_counter()
    fit = fit_model(run, ids, cfg, progress=progress)
    seconds = time.perf_counter() - t0
    z, proba, risk = predict(fit.model, fit.graph)
    pid = fit.graph.ids[S.PATIENT]
    split = pd.Series("unlabelled", index=pid)
    split[fit.train_ids] = "train"
    split[fit.val_ids] = "validation"
    metrics = score_model(run, fit.train_ids, fit.val_ids, proba, risk, fit.graph.label_classes,
                          fit.graph.patient_index)
    metrics = {"validation": metrics, "best_epoch": fit.best_epoch, "epochs_run": len(fit.history),
               "n_train": len(fit.train_ids), "n_validation": len(fit.val_ids), "train_seconds": round(seconds, 2),
               "device": str(pick_device(cfg.device))}
    with atomic_dir(run.layout.model_dir) as tmp:
        save_model(fit, tmp)
        (tmp / L.MODEL_CONFIG).write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=True), encoding="utf-8")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float), encoding="utf-8")
        emb = pd.DataFrame({S.ID: pid, "split": split.to_numpy(), "embedding": list(z.astype(np.float32))})
        write_parquet(emb, tmp / L.EMBEDDINGS)
        write_parquet(_prediction_table(pid, proba, risk, fit.graph.label_classes, split),
                      tmp / L.PREDICTIONS)
        pd.DataFrame(fit.history).to_csv(tmp / "history.csv", index=False)
        _plots(run, fit, proba, risk, tmp / "plots")
        lineage.record(tmp, "train", consumed, run_root=run.root)  # refuses if the run was rebuilt meanwhile
    return metrics


def _plots(run: GraphRun, fit, proba: np.ndarray, risk: np.ndarray, folder: Path) -> None:
    plots.loss_curves(fit.history, folder / "loss.png", fit.best_epoch)
    p = run.nodes(S.PATIENT).set_index(S.ID)
    val = fit.graph.patient_index(fit.val_ids)
    vp = p.loc[fit.val_ids]
    if run.patient_columns().get("survival") and len(val) >= 30:
        plots.km_by_risk_group(vp[L.OS_MONTHS].to_numpy(float), vp[L.OS_EVENT].to_numpy(float), risk[val],
                               folder / "km_risk_groups.png",
                               title="Validation patients: survival by predicted risk tertile")
    if fit.graph.label_classes:
        y = fit.graph.data[S.PATIENT].y.numpy()[val]
        plots.calibration(y, proba[val], folder / "calibration.png")


def markdown_table(table: pd.DataFrame) -> str:
    cols = list(table.columns)
    lines = ["| model | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, row in table.iterrows():
        lines.append(f"| {name} | " + " | ".join("" if pd.isna(row[c]) else str(row[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def evaluate_stage(run_dir: Path, folds: int = 5, config_path: Path | None = None, baselines: bool = True,
                   progress: bool = False, **overrides) -> pd.DataFrame:
    """k-fold CV of GNN, MLP and baselines; writes ``<run>/eval/``. Returns the summary table."""
    run = GraphRun.open(run_dir)
    consumed = lineage.fingerprint(run.root, manifest=run.manifest)
    cfg = model_config(run, config_path, **overrides)
    split = make_folds(run, folds, cfg.seed)
    per_fold = evaluate(run, split, cfg, baselines=baselines, progress=progress)
    table = summary_table(per_fold)
    with atomic_dir(run.layout.eval_dir) as tmp:
        write_parquet(per_fold, tmp / "folds.parquet")
        (tmp / L.SUMMARY).write_text(table.to_json(orient="index", indent=2, force_ascii=False), encoding="utf-8")
        (tmp / "summary.md").write_text(markdown_table(table), encoding="utf-8")
        (tmp / "folds.json").write_text(json.dumps([{"train": tr, "test": te} for tr, te in split]), encoding="utf-8")
        (tmp / "model_config.yaml").write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=True), encoding="utf-8")
        lineage.record(tmp, "evaluate", consumed, run_root=run.root)
    return table
