"""The ``train`` and ``evaluate`` stages: read a run folder, write ``model/`` or ``eval/`` into it.

``<run>/model/``: weights.pt, model.json (see :mod:`graphonc.model.io`), config.yaml (the
exact model config), metrics.json (out-of-bag validation metrics), embeddings.parquet,
predictions.parquet (with the validation patients' out-of-bag predictions), plots/{loss,
km_risk_groups,calibration}.png.

``<run>/eval/``: folds.csv (the fold plan used: patient_id, repeat, fold — reusable with
``--folds-file``), per_fold.parquet (one row per model, repeat and fold), summary.json and
summary.md (mean ± sd per model), comparison.json and comparison.md (each own model against
the best baseline: paired differences with 95% intervals), embeddings.parquet (every fold
model's embeddings, reused by ``evaluate-similarity``), model_config.yaml.
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
from graphonc.model.evaluate import compare_to_best_baseline, evaluate, score_model, summary_table
from graphonc.model.folds import eligible_patients, make_plan, read_plan, splits, write_plan
from graphonc.model.gnn import ModelConfig
from graphonc.model.io import save_model
from graphonc.model.train import fit_model, pick_device, predict
from graphonc.plots import training as plots


def model_config(run: GraphRun, config_path: Path | None = None, **overrides) -> ModelConfig:
    """The ``model:`` section of the given config, else of the config the run was built from."""
    if config_path is not None:
        section = load_config(config_path).model.model_dump(exclude_unset=True)
    elif run.layout.config.exists():
        section = (yaml.safe_load(run.layout.config.read_text(encoding="utf-8")) or {}).get("model", {}) or {}
    else:
        section = {}
    return ModelConfig(**{**section, **{k: v for k, v in overrides.items() if v is not None}})


def _prediction_table(ids: pd.Index, proba: np.ndarray, risk: np.ndarray, classes: list[str],
                      split: pd.Series, val_proba: np.ndarray, val_risk: np.ndarray) -> pd.DataFrame:
    """The trained model's risk and class probabilities for every patient, and for the patients
    held out for early stopping (split "validation") their out-of-bag ones, ``oob_risk`` and
    ``oob_prob_<class>`` (NaN elsewhere): the predictions metrics.json's validation scores. The
    out-of-bag ones are the network's alone: the label trees (``model.label_boosting``) are fitted
    on every training patient, so they have no held-out predictions."""
    df = pd.DataFrame({S.ID: ids, "split": split.to_numpy(), "risk": risk.astype("float64"),
                       "oob_risk": val_risk.astype("float64")})
    if classes:
        for i, c in enumerate(classes):
            df[f"p_{c}"] = proba[:, i].astype("float64")
        df["predicted_label"] = np.asarray(classes, dtype=object)[proba.argmax(1)]
        for i, c in enumerate(classes):
            df[f"oob_prob_{c}"] = val_proba[:, i].astype("float64")
    return df


def _label_trees(booster, cfg: ModelConfig) -> dict | None:
    """What metrics.json says of the label trees: their weight, how it was chosen, their columns."""
    if booster is None:
        return None
    out = {"weight": booster.weight, "columns": int(len(booster.columns)),
           "chosen_by": "out-of-bag log-loss" if cfg.label_boosting == "auto" else "config"}
    if booster.oob_log_loss:
        out["oob_log_loss"] = {f"{w:g}": round(v, 5) for w, v in booster.oob_log_loss.items()}
    return out


def train_stage(run_dir: Path, config_path: Path | None = None, progress: bool = False, tune: bool = False,
                **overrides) -> dict:
    """Train on every patient with the configured targets; write ``<run>/model/``. Returns metrics.

    ``tune``: choose hyper-parameters first by nested CV inside these patients
    (:func:`graphonc.model.tune.tune`, within ``model.tune_budget_s``).
    """
    run = GraphRun.open(run_dir)
    consumed = lineage.fingerprint(run.root, manifest=run.manifest)  # the graph as opened, before reading it
    cfg = model_config(run, config_path, **overrides)
    ids = eligible_patients(run)[S.ID].tolist()
    t0 = time.perf_counter()
    trials = tuning = None
    if tune:
        from graphonc.model.tune import tuned

        cfg, trials, tuning = tuned(run, ids, cfg, progress=progress)
    fit = fit_model(run, ids, cfg, progress=progress)
    seconds = time.perf_counter() - t0
    z, proba, risk = predict(fit.model, fit.graph, fit.booster)
    pid = fit.graph.ids[S.PATIENT]
    split = pd.Series("unlabelled", index=pid)
    split[fit.train_ids] = "train"
    split[fit.val_ids] = "validation"
    # held-out patients are scored out-of-bag (by the members that did not train on them)
    held = ~np.isnan(fit.val_risk)
    metrics = score_model(run, fit.train_ids, fit.val_ids, np.where(held[:, None], fit.val_proba, proba),
                          np.where(held, fit.val_risk, risk), fit.graph.label_classes, fit.graph.patient_index)
    metrics = {"validation": metrics, "best_epoch": fit.best_epoch, "task_best_epochs": fit.task_best_epochs,
               "epochs_run": len(fit.history), "at_chance": fit.at_chance, "member_risk": fit.member_risk,
               "n_train": len(fit.train_ids), "n_validation": len(fit.val_ids), "train_seconds": round(seconds, 2),
               "device": str(pick_device(cfg.device)), "tuned": bool(tune),
               # the label trees blended into the class probabilities (the validation scores are the network's)
               "label_trees": _label_trees(fit.booster, cfg)}
    if tuning is not None:
        metrics["tuning"] = tuning
    with atomic_dir(run.layout.model_dir) as tmp:
        save_model(fit, tmp)
        (tmp / L.MODEL_CONFIG).write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=True), encoding="utf-8")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float), encoding="utf-8")
        emb = pd.DataFrame({S.ID: pid, "split": split.to_numpy(), "embedding": list(z.astype(np.float32))})
        write_parquet(emb, tmp / L.EMBEDDINGS)
        write_parquet(_prediction_table(pid, proba, risk, fit.graph.label_classes, split, fit.val_proba,
                                        fit.val_risk), tmp / L.PREDICTIONS)
        pd.DataFrame(fit.history).to_csv(tmp / "history.csv", index=False)
        if trials is not None:
            trials.to_csv(tmp / "tuning.csv", index=False)
        _plots(run, fit, tmp / "plots")
        lineage.record(tmp, "train", consumed, run_root=run.root)  # refuses if the run was rebuilt meanwhile
    return metrics


def _plots(run: GraphRun, fit, folder: Path) -> None:
    """Loss curves; survival by risk group and calibration of the out-of-bag validation predictions."""
    proba, risk = fit.val_proba, fit.val_risk
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
                   progress: bool = False, repeats: int = 1, folds_file: Path | None = None, tune: bool = False,
                   baseline_params: dict | None = None, **overrides) -> pd.DataFrame:
    """(Repeated) k-fold CV of GNN, MLP and baselines; writes ``<run>/eval/``. Returns the summary table.

    ``folds_file``: a fold plan CSV (patient_id, fold[, repeat]) instead of ``folds``/``repeats``.
    """
    run = GraphRun.open(run_dir)
    consumed = lineage.fingerprint(run.root, manifest=run.manifest)
    cfg = model_config(run, config_path, **overrides)
    plan = read_plan(folds_file, run) if folds_file is not None else make_plan(run, folds, repeats, cfg.seed)
    stored: list[pd.DataFrame] = []

    def keep(name, split, pred):  # fold embeddings of the own models, for evaluate-similarity
        if name in ("gnn", "mlp") and pred.embedding is not None:
            stored.append(pd.DataFrame({"model": name, "repeat": split.repeat, "fold": split.fold,
                                        S.ID: pred.ids, "embedding": list(pred.embedding.astype(np.float32))}))

    per_fold = evaluate(run, splits(plan), cfg, baselines=baselines, tune=tune, progress=progress,
                        baseline_params=baseline_params, keep=keep)
    table = summary_table(per_fold)
    comparison = compare_to_best_baseline(per_fold)
    with atomic_dir(run.layout.eval_dir) as tmp:
        write_plan(plan, tmp / "folds.csv")
        write_parquet(per_fold, tmp / "per_fold.parquet")
        (tmp / L.SUMMARY).write_text(table.to_json(orient="index", indent=2, force_ascii=False), encoding="utf-8")
        (tmp / "summary.md").write_text(markdown_table(table), encoding="utf-8")
        (tmp / "comparison.json").write_text(comparison.to_json(orient="records", indent=2), encoding="utf-8")
        (tmp / "comparison.md").write_text(comparison_markdown(comparison), encoding="utf-8")
        if stored:
            write_parquet(pd.concat(stored, ignore_index=True), tmp / L.EMBEDDINGS)
        (tmp / "model_config.yaml").write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=True), encoding="utf-8")
        lineage.record(tmp, "evaluate", consumed, run_root=run.root)
    return table


def comparison_markdown(comparison: pd.DataFrame) -> str:
    """The comparison table (own model − best baseline, paired, 95% corrected t-interval) as Markdown."""
    if comparison.empty:
        return "No baseline to compare with.\n"
    lines = ["| metric | model | best baseline | model | baseline | difference [95% CI] | verdict |",
             "|---|---|---|---:|---:|---:|---|"]
    for r in comparison.itertuples():
        lines.append(f"| {r.metric} | {r.model} | {r.best_baseline} | {r.model_mean:.3f} | {r.baseline_mean:.3f} | "
                     f"{r.diff:+.3f} [{r.low:+.3f}, {r.high:+.3f}] | {r.verdict} |")
    return "\n".join(lines) + "\n"
