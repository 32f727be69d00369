"""One patient's computation graph: the model's outputs for that patient without a pass over the cohort.

A :class:`~graphonc.model.gnn.PatientGNN` with L layers computes a patient's outputs from its
L-hop in-neighbourhood only (a node's state after layer l depends on its in-neighbours' states
after layer l - 1). Integrated gradients over the whole graph repeat a whole-graph forward and
backward pass per integration step; here each step runs on the patient's neighbourhood.

The neighbourhood is still cohort-sized in one place: the nodes one hop from the patient (its
treatments, gene panel, genes, mutations) receive messages from every other patient linked to
them (a treatment from everyone who received it). Those patients are L hops away, so only their
layer-0 states matter there, and those are constants of the explanation (only the query's own
features and the states of non-patient nodes are attributed). Their messages are folded, once
per explanation, into a per-node partial aggregate, which every integration step combines
exactly with the messages that vary:

=========== ============================================ ==========================================
aggregation partial state per node                       combined
=========== ============================================ ==========================================
sum / mean  sum of messages s, count n                   s₁ + s₂ (mean: / max(n₁ + n₂, 1))
max         elementwise max m, count n                   max(m₁, m₂) (0 without messages)
attention   gate max m, Σ exp(g - m) z, Σ exp(g - m)·x s rescaled to the larger m, s / z
=========== ============================================ ==========================================

So one step costs a pass over the patient's non-patient neighbourhood (genes, pathways,
mutations: bounded by the vocabularies, not the cohort), and layer l updates only the nodes at
most L - 1 - l hops away (the others' later states never reach the patient); the fold is one
gather over the hubs' patient edges. Inputs carry a leading batch dimension: node states are
(B, N, H), so the integration steps of both explained outputs run as one batch.

The result equals the whole-graph computation (``tests/test_explain_local.py`` checks
attributions on METABRIC for each aggregation and for 3 layers); :class:`LocalModel` refuses
convolutions it does not reproduce.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch_geometric.nn import SAGEConv
from torch_geometric.nn.aggr import AttentionalAggregation, MaxAggregation, MeanAggregation, SumAggregation

from graphonc.errors import GraphoncError
from graphonc.graph import schema as S
from graphonc.model.gnn import PatientGNN, members
from graphonc.model.io import LoadedModel
from graphonc.model.sampling import Incoming

EdgeType = tuple[str, str, str]
#: "No message yet" in a max-type partial: finite, so exp() and its gradient stay NaN-free.
_NONE = -1e30


def aggregation_kind(conv) -> str:
    """sum | mean | max | attention for a SAGE convolution this module reproduces, else an error."""
    if not isinstance(conv, SAGEConv):
        raise GraphoncError(f"local explanations support SAGE convolutions only, not {type(conv).__name__}")
    a = conv.aggr_module
    for cls, kind in ((SumAggregation, "sum"), (MeanAggregation, "mean"), (MaxAggregation, "max")):
        if type(a) is cls:
            return kind
    if type(a) is AttentionalAggregation and a.nn is None and a.mlp is None and a.gate_mlp is None:
        return "attention"
    raise GraphoncError(f"local explanations do not support the aggregation {a!r}")


def partial(kind: str, conv: SAGEConv, msgs: torch.Tensor, index: torch.Tensor, n: int) -> dict[str, torch.Tensor]:
    """The partial aggregate of messages ``msgs`` (B, E, H) sent to destinations ``index`` (E,) of ``n`` nodes.

    Keys: ``n`` (1, n, 1) message counts; ``s`` (B, n, H) sums (sum, mean; attention: weighted);
    ``m`` (B, n, H) maxima (max) or (B, n, 1) gate maxima (attention); ``z`` (B, n, 1) softmax weights.
    """
    b, e, h = msgs.shape
    out = {"n": torch.bincount(index, minlength=n).to(msgs.dtype).view(1, n, 1)}
    idx = index.view(1, e, 1)
    if kind in ("sum", "mean"):
        out["s"] = msgs.new_zeros(b, n, h).scatter_add(1, idx.expand(b, e, h), msgs)
    elif kind == "max":
        out["m"] = msgs.new_full((b, n, h), _NONE).scatter_reduce(1, idx.expand(b, e, h), msgs, "amax")
    else:
        gate = conv.aggr_module.gate_nn(msgs)                                      # (B, E, 1)
        # like PyG's softmax, shift by the (detached) per-node maximum: the same weights, no overflow
        m = msgs.new_full((b, n, 1), _NONE).scatter_reduce(1, idx.expand(b, e, 1), gate.detach(), "amax")
        w = (gate - m.gather(1, idx.expand(b, e, 1))).exp()
        out.update(m=m, z=msgs.new_zeros(b, n, 1).scatter_add(1, idx.expand(b, e, 1), w),
                   s=msgs.new_zeros(b, n, h).scatter_add(1, idx.expand(b, e, h), w * msgs))
    return out


def combine(kind: str, a: dict, b: dict) -> dict[str, torch.Tensor]:
    """The partial aggregate of the union of two message sets (batch dimensions broadcast)."""
    out = {"n": a["n"] + b["n"]}
    if kind in ("sum", "mean"):
        out["s"] = a["s"] + b["s"]
    elif kind == "max":
        out["m"] = torch.maximum(a["m"], b["m"])
    else:
        m = torch.maximum(a["m"], b["m"])
        fa, fb = (a["m"] - m).exp(), (b["m"] - m).exp()
        out.update(m=m, z=a["z"] * fa + b["z"] * fb, s=a["s"] * fa + b["s"] * fb)
    return out


def finish(kind: str, p: dict) -> torch.Tensor:
    """The aggregated message (B, n, H), as PyG's aggregation gives it (0 for a node without messages)."""
    if kind == "sum":
        return p["s"]
    if kind == "mean":
        return p["s"] / p["n"].clamp(min=1)
    if kind == "max":
        return torch.where(p["n"] > 0, p["m"], torch.zeros_like(p["m"]))
    return p["s"] / (p["z"] + 1e-16)  # PyG's softmax adds the same epsilon


class LocalModel:
    """A trained model with the whole-graph facts that every patient's computation graph needs, made once.

    Attributes:
        lm: the loaded model.
        edge_types: the edge types the model's convolutions run on (model ∩ graph).
        incoming: per edge type, the edges by destination (CSR).
        h0: ``h0[t]`` (N_t, H), the layer-0 state of every node.
        mean: ``mean[t]`` (H,), the average layer-0 state of type t (the explanation's node baseline).
    """

    def __init__(self, lm: LoadedModel, net: PatientGNN | None = None) -> None:
        self.lm = lm
        #: the network explained: ``lm.model``, or one member of an ensemble (see :func:`local_models`)
        self.model = net if net is not None else lm.model
        model, d = self.model, lm.graph.data
        model.eval()
        present = {tuple(e) for e in d.edge_types}
        self.edge_types: list[EdgeType] = [e for e in model.edge_types if e in present]
        self.kinds = [{e: aggregation_kind(c.convs[e]) for e in self.edge_types} for c in model.convs]
        self.num_nodes = {t: d[t].num_nodes for t in d.node_types}
        self.incoming = {e: Incoming(d[e].edge_index.cpu(), self.num_nodes[e[2]]) for e in self.edge_types}
        self.x = {t: d[t].x for t in d.node_types if "x" in d[t]}
        with torch.no_grad():
            self.h0 = model.input_states(self.x, lm.graph.vocab_dict)
        self.mean = {t: v.mean(0) for t, v in self.h0.items()}

    def of_patient(self, row: int) -> "PatientGraph":
        """The computation graph of cohort patient ``row``."""
        return self._build(row, self.x[S.PATIENT][row:row + 1], None)

    def of_new(self, x_row: torch.Tensor, query_in: dict[EdgeType, torch.Tensor]) -> "PatientGraph":
        """The computation graph of a new, receive-only patient (it sends no messages).

        ``x_row`` (1, F): its encoded features; ``query_in``: per edge type into Patient, the
        global rows of the nodes it receives from (:func:`graphonc.model.embed.links`).
        """
        return self._build(None, x_row, query_in)

    def _build(self, row: int | None, x_row: torch.Tensor, query_in: dict | None) -> "PatientGraph":
        """Breadth-first over incoming edges, L hops; other patients L hops away are folded."""
        layers = len(self.model.convs)
        P = S.PATIENT
        # local index of every global node (-1: not local); the new patient is local 0 without a global row
        loc = {t: torch.full((n,), -1, dtype=torch.long) for t, n in self.num_nodes.items()}
        nodes: dict[str, list[torch.Tensor]] = {P: [torch.tensor([-1 if row is None else row])]}
        count = {P: 1}
        if row is not None:
            loc[P][row] = 0
        frontier = {P: torch.tensor([0 if row is None else row])}
        edges: dict[EdgeType, list[torch.Tensor]] = {}
        folded: dict[EdgeType, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        found: list = []  # (hop, edge type, global src, global dst) of hops 1-2, for `linked`
        within = [dict(count)]  # per hop: nodes of each type at most that many hops away (a prefix)
        for hop in range(1, layers + 1):
            got = {}
            for e in self.edge_types:
                if e[2] not in frontier:
                    continue
                if hop == 1 and row is None:  # the new patient's links are not in the graph
                    src = torch.as_tensor(query_in.get(e, []), dtype=torch.long)
                    dst_local = torch.zeros(len(src), dtype=torch.long)
                    dst = torch.full((len(src),), -1, dtype=torch.long)
                else:
                    src, dst = self.incoming[e].sample(frontier[e[2]], -1, None)
                    dst_local = loc[e[2]][dst]
                if len(src):
                    got[e] = (src, dst, dst_local)
                    if hop <= 2:
                        found.append((hop, e, src, dst))
            frontier = {}
            for t in {e[0] for e in got}:
                if t == P and hop == layers:
                    continue  # other patients at the edge of the neighbourhood: folded below
                cand = torch.unique(torch.cat([s for e, (s, _, _) in got.items() if e[0] == t]))
                new = cand[loc[t][cand] < 0]
                if len(new):
                    n0 = count.get(t, 0)
                    loc[t][new] = torch.arange(n0, n0 + len(new))
                    count[t] = n0 + len(new)
                    nodes.setdefault(t, []).append(new)
                    frontier[t] = new
            for e, (src, dst, dst_local) in got.items():
                src_local = loc[e[0]][src]
                real = src_local >= 0
                edges.setdefault(e, []).append(torch.stack([src_local[real], dst_local[real]]))
                if not bool(real.all()):
                    folded.setdefault(e, []).append((src[~real], dst_local[~real]))
            within.append(dict(count))
        return PatientGraph(self, {t: torch.cat(v) for t, v in nodes.items()},
                            {t: [w.get(t, 0) for w in within] for t in nodes},
                            {e: torch.cat(v, 1) for e, v in edges.items()},
                            {e: (torch.cat([a for a, _ in v]), torch.cat([b for _, b in v])) for e, v in folded.items()},
                            x_row, row, _linked(found))


def local_models(lm: LoadedModel) -> list[LocalModel]:
    """One :class:`LocalModel` per network of ``lm.model`` (an ensemble's members, or the model)."""
    return [LocalModel(lm, net) for net in members(lm.model)]


def _linked(found: list) -> dict[str, set[int]]:
    """Global rows of the query's direct in-neighbours (hop 1), plus the pathways of its genes (hop 2)."""
    out: dict[str, set[int]] = {}
    for hop, e, src, _ in found:
        if hop == 1 and e[0] != S.PATIENT:
            out.setdefault(e[0], set()).update(src.tolist())
    genes = torch.tensor(sorted(out.get(S.GENE, ())), dtype=torch.long)
    for hop, e, src, dst in found:
        if hop == 2 and e[0] == S.PATHWAY and e[2] == S.GENE and len(genes):
            out.setdefault(S.PATHWAY, set()).update(src[torch.isin(dst, genes)].tolist())
    return out


@dataclass
class PatientGraph:
    """One patient's computation graph (local index = position in ``nodes[t]``; the patient is Patient 0).

    Attributes:
        nodes: per type, the global rows of its local nodes (Patient 0 of a new patient: -1), nearest first.
        within: per type, ``within[t][d]`` = how many of its local nodes are at most d hops away (a
            prefix of ``nodes[t]``): layer l only updates the nodes at most L - 1 - l hops away,
            the only ones whose later states reach the patient.
        edges: per edge type, (2, E) local edges into nodes fewer than L hops from the patient.
        folded: per edge type, (global source patient rows (M,), local destinations (M,)): the
            messages of patients L hops away, aggregated once (module doc).
        x_row: (1, F) the patient's encoded features. row: its global row (None: a new patient).
        linked: per type, global rows of the direct neighbours (and pathways of its genes).
    """

    local: LocalModel
    nodes: dict[str, torch.Tensor]
    within: dict[str, list[int]]
    edges: dict[EdgeType, torch.Tensor]
    folded: dict[EdgeType, tuple[torch.Tensor, torch.Tensor]]
    x_row: torch.Tensor
    row: int | None
    linked: dict[str, set[int]]

    def __post_init__(self) -> None:
        model, h0 = self.local.model, self.local.h0
        self.constant: dict[EdgeType, dict] = {}
        with torch.no_grad():
            for e, (src, dst) in self.folded.items():
                conv = model.convs[0].convs[e]
                msgs = h0[e[0]][src][None]
                if conv.project:
                    msgs = conv.lin(msgs).relu()
                self.constant[e] = partial(self.local.kinds[0][e], conv, msgs, dst, self.within[e[2]][-2])

    def states(self, t: str) -> torch.Tensor:
        """(N_t, H) layer-0 states of the local nodes of type t (the explanation's inputs)."""
        return self.local.h0[t][self.nodes[t]]

    def forward(self, x_row: torch.Tensor, states: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """(embedding (B, D), logits (B, K), risk (B,)) of the patient, B = batch of the inputs.

        ``x_row`` (B, F): the patient's features; ``states[t]`` (B, N_t, H): layer-0 states of the
        local nodes of the types given (the others: the graph's own, constants).
        """
        model, local, P = self.local.model, self.local, S.PATIENT
        b = x_row.shape[0]
        vocab = self.local.lm.graph.vocab_dict
        v = {P: vocab[P][self.nodes[P][:1]].expand(b)} if P in vocab and self.row is not None else {}
        h = {P: model.input_states({P: x_row}, v)[P][:, None]}
        if len(self.nodes[P]) > 1:  # other patients fewer than L hops away (models with L > 2)
            h[P] = torch.cat([h[P], local.h0[P][self.nodes[P][1:]].expand(b, -1, -1)], 1)
        for t, rows in self.nodes.items():
            if t != P:
                h[t] = states[t] if t in states else local.h0[t][rows].expand(b, -1, -1)
        layers = len(model.convs)
        for i, conv_i in enumerate(model.convs):
            keep = {t: self.within[t][layers - 1 - i] for t in h}  # nodes whose state after layer i is needed
            out: dict[str, torch.Tensor] = {}
            for e in local.edge_types:
                n_dst = keep.get(e[2], 0)
                if not n_dst:
                    continue
                conv, kind = conv_i.convs[e], local.kinds[i][e]
                ei = self.edges.get(e, torch.empty((2, 0), dtype=torch.long))
                if i:
                    ei = ei[:, ei[1] < n_dst]
                x_src = h[e[0]] if e[0] in h else h[e[2]][:, :0]
                if conv.project:
                    x_src = conv.lin(x_src).relu()
                p = partial(kind, conv, x_src[:, ei[0]], ei[1], n_dst)
                if i == 0 and e in self.constant:
                    p = combine(kind, p, self.constant[e])
                o = conv.lin_l(finish(kind, p))
                if conv.root_weight:
                    o = o + conv.lin_r(h[e[2]][:, :n_dst])
                if conv.normalize:
                    o = F.normalize(o, p=2.0, dim=-1)
                out[e[2]] = out[e[2]] + o if e[2] in out else o
            h = model.update(i, {t: h[t][:, :n] for t, n in keep.items() if n}, out)
        return model.heads(h[P][:, 0], x_row)
