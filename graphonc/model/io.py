"""Saving and reloading a trained model so it reproduces its predictions in a fresh process.

``<run>/model/``::

    weights.pt        state dict
    model.json        ModelConfig, patient encoder, embedding vocabularies, label classes,
                      input dimensions and edge types, training/validation patient ids,
                      the columns the label trees read
    booster.skops     the label trees (graphonc.model.boosted; skops, no pickle), when trained
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from graphonc import layout as L
from graphonc.errors import GraphoncError
from graphonc.graph import lineage
from graphonc.graph.hetero import PatientFeatureEncoder
from graphonc.graph.run import GraphRun
from graphonc.model.boosted import LabelBooster
from graphonc.model.data import ModelGraph, model_graph
from graphonc.model.gnn import GNNEnsemble, ModelConfig, PatientGNN, spline_columns
from graphonc.model.inputs import ModelInputs
from graphonc.model.train import FitResult

WEIGHTS, META = L.WEIGHTS, L.MODEL_META
#: The command that (re)makes a run's model (``{run}``: the run's path; see graphonc.graph.lineage).
TRAIN = "graphonc train --run {run}"


def save_model(fit: FitResult, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    g = fit.graph
    active = fit.booster is not None and fit.booster.active
    meta = {
        "config": fit.cfg.model_dump(),
        "encoder": g.encoder.to_dict(),
        "vocab": g.vocab,
        "genes": g.genes,
        "inputs": asdict(g.inputs) if g.inputs is not None else None,
        "label_classes": g.label_classes,
        "in_dims": {t: int(g.data[t].x.shape[1]) for t in g.data.node_types if "x" in g.data[t]},
        "spline_columns": spline_columns(g.encoder.feature_names_, g.encoder.numeric),
        "edge_types": [list(e) for e in fit.model.edge_types],
        "train_ids": fit.train_ids,
        "val_ids": fit.val_ids,
        "best_epoch": fit.best_epoch,
        "member_best_epochs": fit.member_best_epochs,
        "member_risk": fit.member_risk,
        "booster_columns": fit.booster.columns.tolist() if active else None,
        "booster_weight": fit.booster.weight if fit.booster is not None else 0.0,
    }
    if active:
        fit.booster.save(folder)
    torch.save(fit.model.state_dict(), folder / WEIGHTS)
    (folder / META).write_text(json.dumps(meta, indent=1, sort_keys=True), encoding="utf-8")


@dataclass
class LoadedModel:
    model: PatientGNN | GNNEnsemble
    graph: ModelGraph
    meta: dict
    booster: LabelBooster | None = None


def load_model(folder: Path, run: GraphRun) -> LoadedModel:
    """Rebuild the graph with the saved encoder/vocabulary/senders and load the weights.

    Refuses a model trained on another graph than ``run`` holds (see :mod:`graphonc.graph.lineage`).
    """
    if not (folder / WEIGHTS).exists():
        raise GraphoncError(f"{folder}: no trained model. Fix: run `graphonc train --run {run.root}` first.")
    lineage.check(run.root, folder, rerun=TRAIN)
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    cfg = ModelConfig(**meta["config"])
    graph = model_graph(run, meta["train_ids"], encoder=PatientFeatureEncoder.from_dict(meta["encoder"]),
                        vocab=meta["vocab"], genes=meta.get("genes"),
                        spec=ModelInputs(**meta["inputs"]) if meta.get("inputs") else None)
    graph.label_classes = meta["label_classes"]
    nets = [PatientGNN(meta["in_dims"], [tuple(e) for e in meta["edge_types"]],
                       {t: len(v) for t, v in meta["vocab"].items()}, len(meta["label_classes"]), cfg,
                       meta.get("spline_columns"))  # absent in models saved before the wide splines
            for _ in range(cfg.ensemble)]
    model = nets[0] if len(nets) == 1 else GNNEnsemble(nets)
    model.load_state_dict(torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True))
    model.eval()
    booster = (LabelBooster.load(folder, meta["booster_columns"], meta["booster_weight"])
               if meta.get("booster_columns") is not None else None)  # absent before the label trees
    return LoadedModel(model, graph, meta, booster)
