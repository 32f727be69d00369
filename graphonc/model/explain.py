"""Why did the model say this about this patient? Integrated gradients over the graph.

For one patient and one output (``risk``: log partial hazard; ``diagnosis``: log-probability
of the predicted class) we attribute the output to

* the patient's own clinical features (the encoded feature vector, grouped back into the
  clinical columns they came from: a one-hot category and its missing flag are one column),
* the layer-0 state of every other node the output can see: mutations, genes, pathways,
  treatments, gene panels (their features plus learnable embedding).

Captum's :class:`~captum.attr.IntegratedGradients` integrates the gradient from a baseline
(for the patient an all-zero feature vector: the training mean for standardised numbers, "no
category" for one-hots; for each graph node the average state of its type) to the actual input, so the attributions of all inputs add up
to ``f(input) - f(baseline)`` (completeness; ``delta`` reports the numerical gap).

Positive = pushes the output up (higher risk / more evidence for the predicted class).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from captum.attr import IntegratedGradients

from graphonc.errors import unknown_patient
from graphonc.graph import schema as S
from graphonc.graph.run import GraphRun
from graphonc.model.gnn import GNNEnsemble, PatientGNN, members
from graphonc.model.io import LoadedModel, load_model

TARGETS = ("risk", "diagnosis")
#: Node types whose layer-0 states are attributed (when the graph has them).
NODE_KINDS = {S.MUTATION: "mutation", S.GENE: "gene", S.PATHWAY: "pathway", S.TREATMENT: "treatment",
              S.GENE_PANEL: "gene panel", S.RADIOMIC_PHENOTYPE: "radiomic phenotype", S.FUSION: "fusion"}


@dataclass
class Explanation:
    """Attributions for one patient.

    ``table`` columns: target, kind (clinical | mutation | gene | pathway | treatment | ...),
    name, attribution, linked (the node is a direct neighbour of the patient; always True for
    clinical; for a pathway: it contains a gene linked to the patient), value (the clinical value,
    a gene's role, a pathway's name). Sorted by target, then |attribution|.
    ``outputs``: per target, the explained output value, its baseline value and the
    completeness gap ``delta``.
    """

    patient: str
    table: pd.DataFrame
    outputs: dict[str, dict[str, float]]
    predicted_label: str | None


def clinical_column(feature: str) -> str:
    """Encoded feature name → the clinical column it came from (``ER_IHC=Positve`` → ``ER_IHC``)."""
    return feature.split("=", 1)[0].split("__", 1)[0]


def _output(model: PatientGNN, x_rest: dict, edges: dict, vocab: dict, row: int, target: str, cls: int):
    """f(patient feature row, node states...) → the scalar output, for captum (batch of 1)."""
    # node types the model's graph links (at diagnosis no RECEIVED edges: Treatment states reach no one)
    linked_types = {t for e in edges for t in (e[0], e[2])}
    kinds = [t for t in NODE_KINDS if t in x_rest and t in linked_types]

    def forward(x_row: torch.Tensor, *states: torch.Tensor) -> torch.Tensor:
        outs = []
        for b in range(x_row.shape[0]):
            x = dict(x_rest)
            xp = x[S.PATIENT].clone()
            xp[row] = x_row[b]
            x[S.PATIENT] = xp
            h = model.input_states(x, vocab)
            for t, s in zip(kinds, states):
                h[t] = s[b]
            z, logits, risk = model.heads(model.propagate(h, edges)[S.PATIENT][row:row + 1], xp[row:row + 1])
            outs.append(risk[0] if target == "risk" else torch.log_softmax(logits, -1)[0, cls])
        return torch.stack(outs)

    return forward, kinds


def explain_row(model: PatientGNN | GNNEnsemble, x: dict, edges: dict, vocab: dict, row: int, *, feature_names: list[str],
                ids: dict[str, pd.Index], classes: list[str], patient_values: pd.Series | None = None,
                node_values: dict[str, pd.Series] | None = None, steps: int = 24, target_class: int | None = None
                ) -> tuple[pd.DataFrame, dict, str | None]:
    """Attributions of patient ``row`` of the given graph tensors (see :class:`Explanation`).

    For an ensemble, each member explains the ensemble's predicted class and the attributions and
    outputs are averaged (integrated gradients is linear in the model output, and the ensemble's
    risk is the mean of the members' risks).
    """
    model.eval()
    if isinstance(model, GNNEnsemble):
        with torch.no_grad():
            _, logits, _ = model(x, edges, vocab)
        cls = int(logits[row].argmax(-1)) if classes else -1
        parts = [explain_row(net, x, edges, vocab, row, feature_names=feature_names, ids=ids, classes=classes,
                             patient_values=patient_values, node_values=node_values, steps=steps, target_class=cls)
                 for net in members(model)]
        return _mean_explanation(parts)
    with torch.no_grad():
        h0 = model.input_states(x, vocab)
        _, logits, _ = model.heads(model.propagate(h0, edges)[S.PATIENT][row:row + 1],
                                   x[S.PATIENT][row:row + 1])
    cls = target_class if target_class is not None else int(logits.argmax(-1)) if classes else -1
    linked = _linked(edges, row)
    frames, outputs = [], {}
    for target in TARGETS if classes else ("risk",):
        forward, kinds = _output(model, x, edges, vocab, row, target, cls)
        inputs = (x[S.PATIENT][row:row + 1].clone(), *(h0[t].detach()[None] for t in kinds))
        # node baseline = the average state of its type: an all-zero graph sits where LayerNorm is
        # steepest, which makes the path integral inaccurate; "an average gene" is also easier to read
        baselines = (torch.zeros_like(inputs[0]), *(s.mean(1, keepdim=True).expand_as(s) for s in inputs[1:]))
        ig = IntegratedGradients(forward)
        attrs, delta = ig.attribute(inputs, baselines=baselines, n_steps=steps, internal_batch_size=1,
                                    return_convergence_delta=True)
        with torch.no_grad():
            value, base = float(forward(*inputs)[0]), float(forward(*baselines)[0])
        outputs[target] = {"value": value, "baseline": base, "delta": float(delta.abs().max())}
        clin = pd.Series(attrs[0][0].numpy(), index=feature_names).groupby(clinical_column, sort=False).sum()
        frames.append(pd.DataFrame({"target": target, "kind": "clinical", "name": clin.index,
                                    "attribution": clin.to_numpy(), "linked": True}))
        for t, a in zip(kinds, attrs[1:]):
            per_node = a[0].sum(-1).numpy()
            frames.append(pd.DataFrame({"target": target, "kind": NODE_KINDS[t], "name": ids[t],
                                        "attribution": per_node,
                                        "linked": np.isin(np.arange(len(ids[t])), list(linked.get(t, ())))}))
    table = pd.concat(frames, ignore_index=True)
    table = table[(table["attribution"] != 0) | (table["kind"] == "clinical")]  # nodes out of the patient's reach
    table["value"] = None
    if patient_values is not None:
        clinical = table["kind"] == "clinical"
        table.loc[clinical, "value"] = table.loc[clinical, "name"].map(
            lambda c: None if c not in patient_values.index or pd.isna(patient_values[c]) else str(patient_values[c]))
    for t, values in (node_values or {}).items():
        rows = table["kind"] == NODE_KINDS[t]
        table.loc[rows, "value"] = table.loc[rows, "name"].map(values)
    table = table.assign(_abs=table["attribution"].abs()).sort_values(
        ["target", "_abs"], ascending=[True, False], kind="stable").drop(columns="_abs").reset_index(drop=True)
    return table, outputs, classes[cls] if classes else None


def _mean_explanation(parts: list[tuple[pd.DataFrame, dict, str | None]]) -> tuple[pd.DataFrame, dict, str | None]:
    """The members' explanations averaged: attribution and outputs by mean (a node a member did not
    list, out of its reach, counts 0), ``linked`` when any member links it."""
    n = len(parts)
    keys = ["target", "kind", "name"]
    table = pd.concat([p[0] for p in parts], ignore_index=True)
    table = table.groupby(keys, sort=False, dropna=False).agg(
        attribution=("attribution", lambda a: a.sum() / n), linked=("linked", "any"), value=("value", "first")
    ).reset_index()
    table = table.assign(_abs=table["attribution"].abs()).sort_values(
        ["target", "_abs"], ascending=[True, False], kind="stable").drop(columns="_abs").reset_index(drop=True)
    outputs = {t: {k: float(np.mean([p[1][t][k] for p in parts])) if k != "delta" else
                   float(max(p[1][t][k] for p in parts)) for k in parts[0][1][t]} for t in parts[0][1]}
    return table, outputs, parts[0][2]


def _linked(edges: dict, row: int) -> dict[str, set[int]]:
    """Direct neighbours of patient ``row`` (through the reverse edges every patient receives on),
    plus the pathways of its genes."""
    out: dict[str, set] = {}
    for e, ei in edges.items():
        if e[2] == S.PATIENT and e[0] != S.PATIENT:
            out.setdefault(e[0], set()).update(ei[0, ei[1] == row].tolist())
    if S.IN_PATHWAY in edges and out.get(S.GENE):
        ei = edges[S.IN_PATHWAY]
        out[S.PATHWAY] = set(ei[1, torch.isin(ei[0], torch.tensor(sorted(out[S.GENE])))].tolist())
    return out


def top(table: pd.DataFrame, n: int = 10, linked_only: bool = False) -> pd.DataFrame:
    """The ``n`` largest |attributions| per target and kind."""
    t = table[table["linked"]] if linked_only else table
    return t.groupby(["target", "kind"], sort=False, group_keys=False).head(n).reset_index(drop=True)


def explain_patient(run_dir: Path, patient_id: str, model_dir: Path | None = None, steps: int = 32) -> Explanation:
    """Explain the trained model's risk and diagnosis for one patient of the run."""
    run = GraphRun.open(run_dir)
    lm = load_model(run.layout.model_or(model_dir), run)
    return explain_loaded(lm, run, patient_id, steps=steps)


def _node_values(run: GraphRun) -> dict[str, pd.Series]:
    """What is shown next to a node: a gene's role, a pathway's name."""
    values = {}
    if S.GENE in run.node_types():
        values[S.GENE] = run.nodes(S.GENE).set_index(S.ID)["role"]
    if S.PATHWAY in run.node_types():
        values[S.PATHWAY] = run.nodes(S.PATHWAY).set_index(S.ID)["name"]
    return values


def explain_loaded(lm: LoadedModel, run: GraphRun, patient_id: str, steps: int = 32,
                   patients: pd.DataFrame | None = None, node_values: dict | None = None) -> Explanation:
    """:func:`explain_patient` with the model already loaded (the service keeps it in memory).

    ``patients`` (the Patient table indexed by id) and ``node_values`` are read from the run
    unless given.
    """
    g, d = lm.graph, lm.graph.data
    pid = g.ids[S.PATIENT]
    if patient_id not in pid:
        raise unknown_patient(patient_id, pid, str(run.root))
    row = int(pid.get_loc(patient_id))
    x = {t: d[t].x for t in d.node_types if "x" in d[t]}
    edges = {e: d[e].edge_index for e in d.edge_types}
    patients = patients if patients is not None else run.nodes(S.PATIENT).set_index(S.ID)
    table, outputs, predicted = explain_row(
        lm.model, x, edges, g.vocab_dict, row, feature_names=g.encoder.feature_names_, ids=g.ids,
        classes=g.label_classes, patient_values=patients.loc[patient_id],
        node_values=node_values if node_values is not None else _node_values(run), steps=steps)
    clinical = table["kind"] == "clinical"  # features by the column names users know, not the tables' keys
    shown = run.column_names()
    table.loc[clinical, "name"] = table.loc[clinical, "name"].map(lambda c: shown.get(c, c))
    return Explanation(patient_id, table, outputs, predicted)


def explain_new(lm: LoadedModel, run: GraphRun, new, steps: int = 32, node_values: dict | None = None) -> Explanation:
    """Explain the model's outputs for the first patient of ``new`` (a NewPatients), attached receive-only."""
    from graphonc.model.embed import attach  # embed imports the build stage; only needed here

    g = lm.graph
    x, edges, rows, _ = attach(lm, new)
    row = int(rows[0])
    ids = dict(g.ids)
    ids[S.PATIENT] = g.ids[S.PATIENT].append(pd.Index(new.patients[S.ID]))
    table, outputs, predicted = explain_row(
        lm.model, x, edges, g.vocab_dict, row, feature_names=g.encoder.feature_names_, ids=ids,
        classes=g.label_classes, patient_values=new.patients.iloc[0],
        node_values=node_values if node_values is not None else _node_values(run), steps=steps)
    return Explanation(str(new.patients[S.ID].iloc[0]), table, outputs, predicted)
