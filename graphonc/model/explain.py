"""Why did the model say this about this patient? Integrated gradients over the graph.

For one patient and one output (``risk``: log partial hazard; ``diagnosis``: log-probability
of the predicted class) we attribute the output to

* the patient's own clinical features (the encoded feature vector, grouped back into the
  clinical columns they came from: a one-hot category and its missing flag are one column),
* the layer-0 state of every other node the output can see: mutations, genes, pathways,
  treatments, gene panels (their features plus learnable embedding).

Captum's :class:`~captum.attr.IntegratedGradients` integrates the gradient from a baseline
(for the patient an all-zero feature vector: the training median for rank-gauss numbers, the
mean for standardised ones, "no category" for one-hots; for each graph node the average state
of its type) to the actual input, so the attributions of all inputs add up to
``f(input) - f(baseline)`` (completeness; ``delta`` reports the numerical gap).

Positive = pushes the output up (higher risk / more evidence for the predicted class).

:func:`explain_loaded` and :func:`explain_new` integrate on the patient's computation graph
(:mod:`graphonc.model.local`), at a cost that does not grow with the cohort;
:func:`explain_row` is the whole-graph reference they equal.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from captum.attr import IntegratedGradients

from graphonc.errors import unknown_patient
from graphonc.graph import schema as S
from graphonc.graph.run import GraphRun
from graphonc.model.gnn import GNNEnsemble, PatientGNN, combine, members
from graphonc.model.io import LoadedModel, load_model
from graphonc.model.local import LocalModel, PatientGraph, local_models

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
    ``notes``: plain sentences the reader needs to read the table right (see :func:`output_notes`).
    """

    patient: str
    table: pd.DataFrame
    outputs: dict[str, dict[str, float]]
    predicted_label: str | None
    notes: list[str] = field(default_factory=list)


def clinical_column(feature: str) -> str:
    """Encoded feature name → the clinical column it came from (``ER_IHC=Positve`` → ``ER_IHC``)."""
    return feature.split("=", 1)[0].split("__", 1)[0]


def _output(model: PatientGNN, x_rest: dict, edges: dict, vocab: dict, row: int, cls: int):
    """f(patient feature rows (B, F), node states (B, N_t, H)...) → (B, 2) outputs (risk, log-probability
    of class ``cls``), one whole-graph pass per row."""
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
            outs.append(torch.stack([risk[0], torch.log_softmax(logits, -1)[0, cls]]))
        return torch.stack(outs)

    return forward, kinds


def explain_row(model: PatientGNN | GNNEnsemble, x: dict, edges: dict, vocab: dict, row: int, *,
                feature_names: list[str], ids: dict[str, pd.Index], classes: list[str],
                patient_values: pd.Series | None = None, node_values: dict[str, pd.Series] | None = None,
                steps: int = 24, target_class: int | None = None) -> tuple[pd.DataFrame, dict, str | None]:
    """Attributions of patient ``row`` of the given graph tensors, over the whole graph (see :class:`Explanation`).

    The reference computation: :func:`explain_local` gives the same table from the patient's
    computation graph alone (``tests/test_explain_local.py``). For an ensemble each member
    explains the ensemble's predicted class and the members' tables are averaged
    (:func:`_mean_explanation`). ``target_class``: the class to explain (default: the predicted).
    """
    model.eval()
    if isinstance(model, GNNEnsemble):
        with torch.no_grad():
            _, logits, _ = model(x, edges, vocab)
        cls = int(logits[row].argmax(-1)) if classes else -1
        return _mean_explanation([explain_row(net, x, edges, vocab, row, feature_names=feature_names, ids=ids,
                                              classes=classes, patient_values=patient_values,
                                              node_values=node_values, steps=steps, target_class=cls)
                                  for net in members(model)])
    with torch.no_grad():
        h0 = model.input_states(x, vocab)
        cls = target_class
        if cls is None:  # an ensemble's members are told the ensemble's class
            _, logits, _ = model.heads(model.propagate(h0, edges)[S.PATIENT][row:row + 1], x[S.PATIENT][row:row + 1])
            cls = int(logits.argmax(-1)) if classes else -1
    forward, kinds = _output(model, x, edges, vocab, row, cls)
    inputs = (x[S.PATIENT][row:row + 1].clone(), *(h0[t].detach()[None] for t in kinds))
    # node baseline = the average state of its type: an all-zero graph sits where LayerNorm is
    # steepest, which makes the path integral inaccurate; "an average gene" is also easier to read
    baselines = (torch.zeros_like(inputs[0]), *(s.mean(1, keepdim=True).expand_as(s) for s in inputs[1:]))
    frames, outputs = _attribute(forward, inputs, baselines, kinds, {t: np.arange(len(ids[t])) for t in kinds},
                                 _linked(edges, row), feature_names=feature_names, ids=ids, classes=classes,
                                 steps=steps, batch=1)
    return _table(frames, patient_values, node_values), outputs, classes[cls] if classes else None


def explain_local(graph: PatientGraph, *, feature_names: list[str], ids: dict[str, pd.Index], classes: list[str],
                  patient_values: pd.Series | None = None, node_values: dict[str, pd.Series] | None = None,
                  steps: int = 24, target_class: int | None = None) -> tuple[pd.DataFrame, dict, str | None]:
    """:func:`explain_row` on the patient's computation graph (:mod:`graphonc.model.local`): the
    same attributions, at a cost that does not grow with the cohort; the steps run as one batch."""
    local = graph.local
    cls = target_class
    if cls is None:  # an ensemble's members are told the ensemble's class
        with torch.no_grad():
            _, logits, _ = graph.forward(graph.x_row, {})
        cls = int(logits.argmax(-1)) if classes else -1
    kinds = [t for t in NODE_KINDS if t in graph.nodes and t in local.x]
    inputs = (graph.x_row.clone(), *(graph.states(t)[None] for t in kinds))
    baselines = (torch.zeros_like(inputs[0]), *(local.mean[t].expand_as(s) for t, s in zip(kinds, inputs[1:])))

    def forward(x_row: torch.Tensor, *states: torch.Tensor) -> torch.Tensor:
        _, logits, risk = graph.forward(x_row, dict(zip(kinds, states)))
        return torch.stack([risk, torch.log_softmax(logits, -1)[:, cls]], 1)

    frames, outputs = _attribute(forward, inputs, baselines, kinds, {t: graph.nodes[t].numpy() for t in kinds},
                                 graph.linked, feature_names=feature_names, ids=ids, classes=classes, steps=steps,
                                 batch=None)
    return _table(frames, patient_values, node_values), outputs, classes[cls] if classes else None


def _explain_graphs(graphs: list[PatientGraph], *, classes: list[str], **kw) -> tuple[pd.DataFrame, dict, str | None]:
    """:func:`explain_local` of one patient's computation graph per ensemble member: each explains the
    ensemble's predicted class, and the tables are averaged (:func:`_mean_explanation`)."""
    if len(graphs) == 1:
        return explain_local(graphs[0], classes=classes, **kw)
    with torch.no_grad():
        _, logits, _ = combine([g.forward(g.x_row, {}) for g in graphs])
    cls = int(logits[0].argmax(-1)) if classes else -1
    return _mean_explanation([explain_local(g, classes=classes, target_class=cls, **kw) for g in graphs])


def _mean_explanation(parts: list[tuple[pd.DataFrame, dict, str | None]]) -> tuple[pd.DataFrame, dict, str | None]:
    """The members' explanations averaged: attributions and outputs by mean (a node a member did not
    list, out of its reach, counts 0; the completeness gap by max), ``linked`` when any member links it."""
    n = len(parts)
    table = pd.concat([p[0] for p in parts], ignore_index=True)
    table = table.groupby(["target", "kind", "name"], sort=False, dropna=False).agg(
        attribution=("attribution", lambda a: a.sum() / n), linked=("linked", "any"), value=("value", "first")
    ).reset_index()
    outputs = {t: {k: float(max(p[1][t][k] for p in parts)) if k == "delta" else float(np.mean([p[1][t][k] for p in parts]))
                   for k in parts[0][1][t]} for t in parts[0][1]}
    return _by_size(table), outputs, parts[0][2]


def _attribute(forward, inputs: tuple, baselines: tuple, kinds: list[str], rows: dict[str, np.ndarray],
               linked: dict[str, set[int]], *, feature_names, ids, classes, steps: int, batch: int | None):
    """Integrated gradients of every target → (frames of the table, outputs).

    ``forward``: f(patient rows (B, F), node states (B, N_t, H) of ``kinds``...) → (B, 2) outputs
    (risk, log-probability of the predicted class); ``rows[t]``: the global row of each node of
    the inputs; ``batch``: integration steps per forward call (None: all at once).

    Both targets are integrated in one pass: each input is given once per target (batch row i
    of captum's scaled inputs belongs to target i mod T, since captum lays the steps out
    step-major), and the forward hands row i its target's output. The completeness gap
    ``delta`` is computed from the attributions and two forward passes (value, baseline), as
    captum's ``return_convergence_delta`` would, without its extra passes.
    """
    targets = list(TARGETS if classes else ("risk",))
    n = len(targets)

    def per_row(*batch_inputs: torch.Tensor) -> torch.Tensor:
        out = forward(*batch_inputs)
        return out[torch.arange(len(out)), torch.arange(len(out)) % n]

    repeat = lambda ts: tuple(t.expand(n, *t.shape[1:]).contiguous() for t in ts)  # noqa: E731
    attrs = IntegratedGradients(per_row).attribute(repeat(inputs), baselines=repeat(baselines), n_steps=steps,
                                                   internal_batch_size=None if batch is None else batch * n)
    with torch.no_grad():
        value, base = forward(*inputs)[0], forward(*baselines)[0]
    frames, outputs = [], {}
    for i, target in enumerate(targets):
        total = sum(float(a[i].detach().sum()) for a in attrs)
        change = float(value[i] - base[i])
        outputs[target] = {"value": float(value[i]), "baseline": float(base[i]), "delta": abs(total - change)}
        clin = pd.Series(attrs[0][i].detach().numpy(), index=feature_names).groupby(clinical_column, sort=False).sum()
        frames.append(pd.DataFrame({"target": target, "kind": "clinical", "name": clin.index,
                                    "attribution": clin.to_numpy(), "linked": True}))
        for t, a in zip(kinds, attrs[1:]):
            per_node = a[i].detach().sum(-1).numpy()
            frames.append(pd.DataFrame({"target": target, "kind": NODE_KINDS[t], "name": ids[t][rows[t]],
                                        "attribution": per_node,
                                        "linked": np.isin(rows[t], list(linked.get(t, ())))}))
    return frames, outputs


def _table(frames: list[pd.DataFrame], patient_values: pd.Series | None, node_values: dict | None) -> pd.DataFrame:
    """The :class:`Explanation` table from the attribution frames."""
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
    return _by_size(table)


def _by_size(table: pd.DataFrame) -> pd.DataFrame:
    """Rows by target, then largest |attribution| first (stable)."""
    return table.assign(_abs=table["attribution"].abs()).sort_values(
        ["target", "_abs"], ascending=[True, False], kind="stable").drop(columns="_abs").reset_index(drop=True)


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


def output_notes(meta: dict) -> list[str]:
    """What a reader of the attributions must know about where the outputs came from.

    With ``model.risk_fallback`` an ensemble member whose network risk did worse on its
    validation share than penalised Cox with splines carries that linear risk instead
    (``member_risk`` in model.json). Such a member's risk reads the patient's clinical columns
    only, so graph nodes get no part of it: without this sentence a table of clinical-only risk
    attributions looks like the graph did not matter to the model at all. With label trees
    (``model.label_boosting``, ``booster_columns`` in model.json) the reported class
    probabilities average the network's with gradient-boosted trees', and the attributions
    explain the network's part only.
    """
    notes = []
    sources = meta.get("member_risk") or []
    linear = sources.count("linear")
    if linear:
        who = ("The model's risk" if linear == len(sources)
               else f"In {linear} of {len(sources)} ensemble members the risk")
        note = (f"{who} comes from penalised Cox with linear splines of the clinical columns, which did better than "
                "the network's risk on validation patients (model.risk_fallback): that part of the risk is explained "
                "by clinical columns only.")
        notes.append(note + (" The diagnosis still comes from the network." if meta.get("label_classes") else ""))
    if meta.get("booster_columns") is not None:
        weight = meta.get("booster_weight", 0.5)
        notes.append(f"The class probabilities shown for this patient are the network's averaged with gradient-boosted "
                     f"trees' on the same inputs (weight {weight:g} on the trees, model.label_boosting); the diagnosis "
                     "attributions explain the network's part, for the class the network ranks first.")
    return notes


def top(table: pd.DataFrame, n: int = 10, linked_only: bool = False) -> pd.DataFrame:
    """The ``n`` largest |attributions| per target and kind."""
    t = table[table["linked"]] if linked_only else table
    return t.groupby(["target", "kind"], sort=False, group_keys=False).head(n).reset_index(drop=True)


def explain_patient(run_dir: Path, patient_id: str, model_dir: Path | None = None, steps: int = 32) -> Explanation:
    """Explain the trained model's risk and diagnosis for one patient of the run."""
    run = GraphRun.open(run_dir)
    lm = load_model(run.layout.model_or(model_dir), run)
    return explain_loaded(lm, run, patient_id, steps=steps)


def node_display_values(run: GraphRun) -> dict[str, pd.Series]:
    """What is shown next to a node: a gene's role, a pathway's name."""
    values = {}
    if S.GENE in run.node_types():
        values[S.GENE] = run.nodes(S.GENE).set_index(S.ID)["role"]
    if S.PATHWAY in run.node_types():
        values[S.PATHWAY] = run.nodes(S.PATHWAY).set_index(S.ID)["name"]
    return values


def explain_loaded(lm: LoadedModel, run: GraphRun, patient_id: str, steps: int = 32,
                   patients: pd.DataFrame | None = None, node_values: dict | None = None,
                   local: list[LocalModel] | None = None) -> Explanation:
    """:func:`explain_patient` with the model already loaded (the service keeps it in memory).

    ``patients`` (the Patient table indexed by id), ``node_values`` and ``local`` (the model's
    :func:`~graphonc.model.local.local_models`, one per ensemble member) are read or made here
    unless given.
    """
    g = lm.graph
    pid = g.ids[S.PATIENT]
    if patient_id not in pid:
        raise unknown_patient(patient_id, pid, str(run.root))
    row = int(pid.get_loc(patient_id))
    patients = patients if patients is not None else run.nodes(S.PATIENT).set_index(S.ID)
    graphs = [m.of_patient(row) for m in (local or local_models(lm))]
    table, outputs, predicted = _explain_graphs(
        graphs, feature_names=g.encoder.feature_names_, ids=g.ids, classes=g.label_classes,
        patient_values=patients.loc[patient_id],
        node_values=node_values if node_values is not None else node_display_values(run), steps=steps)
    clinical = table["kind"] == "clinical"  # features by the column names users know, not the tables' keys
    shown = run.column_names()
    table.loc[clinical, "name"] = table.loc[clinical, "name"].map(lambda c: shown.get(c, c))
    return Explanation(patient_id, table, outputs, predicted, output_notes(lm.meta))


def explain_new(lm: LoadedModel, run: GraphRun, new, steps: int = 32, node_values: dict | None = None,
                local: list[LocalModel] | None = None) -> Explanation:
    """Explain the model's outputs for the first patient of ``new`` (a NewPatients), attached receive-only."""
    from graphonc.model.embed import links  # embed imports the build stage; only needed here

    g = lm.graph
    linked, _ = links(lm, new)
    query_in = {e: torch.from_numpy(nodes[patients == 0]) for e, (nodes, patients) in linked.items()}
    x_row = torch.from_numpy(g.encoder.transform(new.patients.iloc[:1]))
    graphs = [m.of_new(x_row, query_in) for m in (local or local_models(lm))]
    table, outputs, predicted = _explain_graphs(
        graphs, feature_names=g.encoder.feature_names_, ids=g.ids, classes=g.label_classes,
        patient_values=new.patients.iloc[0],
        node_values=node_values if node_values is not None else node_display_values(run), steps=steps)
    return Explanation(str(new.patients[S.ID].iloc[0]), table, outputs, predicted, output_notes(lm.meta))
