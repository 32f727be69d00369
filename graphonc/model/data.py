"""The graph a model sees: run → HeteroData with reverse edges, shortcuts and embedding indices.

Leakage-free by construction. Only *sender* patients (the training patients of a fold) have
their outgoing edges (Patient→Mutation/Gene/Treatment/GenePanel) in the graph; every other
patient (test, new) is attached *receive-only*: it gets messages from the
mutations, genes and treatments it is linked to but never sends any, so it cannot change
any other node's state. Its embedding is therefore exactly what it would be if it were the
only new patient, i.e. inductive. (An ensemble member's validation patients are training
patients that it holds out: their outgoing edges are masked while it trains, see
:class:`graphonc.model.train.Trainer`.) The feature encoder and the mutation vocabulary are
fitted on training patients only (:func:`graphonc.model.inputs.fit_inputs`), and so is the
gene vocabulary: mutation edges into genes outside it (on whole-exome data, the thousands of
genes hit by a single passenger) are left out, and with them the noise they would add to
every patient's aggregated messages. Treatment edges exist only for models of patients after
diagnosis (``ModelInputs.allows``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import HeteroData

from graphonc.graph import schema as S
from graphonc.graph.hetero import PatientFeatureEncoder, to_hetero
from graphonc.graph.run import GraphRun
from graphonc.model.inputs import FittedInputs, ModelInputs, fit_inputs, model_inputs

#: Patient→Gene shortcut (patient has a mutation in the gene): pathways reach patients in 2 hops.
MUTATED_IN = (S.PATIENT, "MUTATED_IN", S.GENE)


def reverse(edge: tuple[str, str, str]) -> tuple[str, str, str]:
    return edge[2], f"rev_{edge[1]}", edge[0]


@dataclass
class ModelGraph:
    data: HeteroData
    ids: dict[str, pd.Index]
    encoder: PatientFeatureEncoder
    label_classes: list[str]
    vocab: dict[str, dict[str, int]]
    senders: np.ndarray  # bool per patient: outgoing edges present
    genes: list[str] | None = None  # gene vocabulary (None = every gene)
    inputs: ModelInputs | None = None

    @property
    def vocab_dict(self) -> dict[str, torch.Tensor]:
        return {t: self.data[t].vocab for t in self.vocab if t in self.data.node_types}

    def patient_index(self, ids) -> np.ndarray:
        idx = self.ids[S.PATIENT].get_indexer(list(ids))
        if (idx < 0).any():
            missing = [i for i, j in zip(ids, idx) if j < 0][:5]
            raise KeyError(f"patients not in the graph: {missing}")
        return idx


def from_senders(edges: dict, is_sender: torch.Tensor) -> dict:
    """``edges`` without the outgoing (Patient→*) edges of patients that do not send
    (``is_sender``: bool per patient row); every other edge type unchanged."""
    return {e: ei[:, is_sender[ei[0]]] if e[0] == S.PATIENT else ei for e, ei in edges.items()}


def build_vocab(run: GraphRun, senders: set[str], min_patients: int) -> dict[str, dict[str, int]]:
    """Embedding indices (1-based; 0 = unknown): all genes and pathways, and the mutations
    carried by at least ``min_patients`` sender patients."""
    vocab = {}
    for t in (S.GENE, S.PATHWAY):
        ids = run.nodes(t)[S.ID] if t in run.node_types() else pd.Series([], dtype=object)
        vocab[t] = {v: i + 1 for i, v in enumerate(sorted(ids))}
    has = run.edges(S.HAS_MUTATION)
    counts = has[has[S.SRC].isin(senders)].groupby(S.DST).size()
    frequent = sorted(counts[counts >= min_patients].index)
    vocab[S.MUTATION] = {v: i + 1 for i, v in enumerate(frequent)}
    return vocab


def model_graph(run: GraphRun, senders: list[str], *, encoder: PatientFeatureEncoder | None = None,
                vocab: dict[str, dict[str, int]] | None = None, min_patients: int = 2,
                inputs: FittedInputs | None = None, spec: ModelInputs | None = None,
                genes: list[str] | None = None) -> ModelGraph:
    """Build the model's graph; ``senders`` are the training patients (see module doc).

    ``inputs``: statistics fitted on the training patients (default: fitted here on ``senders``
    with ``spec``, default the at-diagnosis policy). ``encoder``/``genes`` reuse saved ones.
    """
    send = set(senders)
    if encoder is None:
        inputs = inputs or fit_inputs(run, sorted(send), spec or model_inputs(run))
        encoder, genes, spec = inputs.encoder, inputs.genes, inputs.spec
    spec = spec or model_inputs(run)
    skip = frozenset(e for e in run.edge_types() if not spec.allows(e))
    hg = to_hetero(run, encoder=encoder, skip_edges=skip)
    src = hg.data
    pid = hg.ids[S.PATIENT]
    is_sender = np.asarray(pid.isin(send))
    data = HeteroData()
    for t in src.node_types:
        for key, value in src[t].items():
            if key != "edge_index":
                data[t][key] = value
    edges = {e: src[e].edge_index for e in src.edge_types}
    ids = dict(hg.ids)
    if genes is not None and S.GENE in ids:
        # Only vocabulary genes and their mutations stay: the rest of a whole-exome cohort's
        # genes were each mutated in too few training patients to learn from, and would cost
        # most of the compute (tens of thousands of passenger mutation nodes).
        keep_gene = np.asarray(ids[S.GENE].isin(set(genes)))
        _subset(data, edges, ids, S.GENE, keep_gene)
        if S.IN_GENE in edges and S.MUTATION in ids:
            keep_mut = np.zeros(len(ids[S.MUTATION]), dtype=bool)
            keep_mut[edges[S.IN_GENE][0].numpy()] = True
            _subset(data, edges, ids, S.MUTATION, keep_mut)
    if S.HAS_MUTATION in edges and S.IN_GENE in edges:
        has, in_gene = edges[S.HAS_MUTATION], edges[S.IN_GENE]
        gene_of_mut = torch.full((data[S.MUTATION].num_nodes,), -1, dtype=torch.long)
        gene_of_mut[in_gene[0]] = in_gene[1]
        has = has[:, gene_of_mut[has[1]] >= 0]
        edges[S.HAS_MUTATION] = has
        edges[MUTATED_IN] = torch.unique(torch.stack([has[0], gene_of_mut[has[1]]]), dim=1)
    sent = from_senders(edges, torch.from_numpy(is_sender))
    for e, ei in edges.items():
        forward = sent[e]
        if forward.shape[1]:
            data[e].edge_index = forward
        data[reverse(e)].edge_index = ei.flip(0)  # every patient receives
    vocab = vocab if vocab is not None else build_vocab(run, send, min_patients)
    for t, mapping in vocab.items():
        if t in ids:
            data[t].vocab = torch.tensor([mapping.get(v, 0) for v in ids[t]], dtype=torch.long)
    return ModelGraph(data, ids, hg.encoder, hg.label_classes, vocab, is_sender, genes, spec)


def _subset(data: HeteroData, edges: dict, ids: dict, node_type: str, keep: np.ndarray) -> None:
    """Keep only the ``keep`` nodes of ``node_type`` (in place): features, ids, incident edges."""
    new_index = torch.full((len(keep),), -1, dtype=torch.long)
    new_index[torch.from_numpy(np.flatnonzero(keep))] = torch.arange(int(keep.sum()))
    ids[node_type] = ids[node_type][keep]
    for key, value in list(data[node_type].items()):
        if torch.is_tensor(value) and value.shape[0] == len(keep):
            data[node_type][key] = value[torch.from_numpy(keep)]
    data[node_type].num_nodes = int(keep.sum())
    for e, ei in list(edges.items()):
        for side in (0, 2):
            if e[side] == node_type:
                row = 0 if side == 0 else 1
                ei = ei[:, new_index[ei[row]] >= 0]
                ei = ei.clone()
                ei[row] = new_index[ei[row]]
        edges[e] = ei
