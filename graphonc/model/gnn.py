"""The heterogeneous GNN: node-type encoders, hetero message passing, diagnosis and Cox heads.

Shapes (N_t = nodes of type t, H = hidden, D = embedding size, K = classes)::

    x_dict[t]          (N_t, F_t)   node features
    vocab_dict[t]      (N_t,)       learnable-embedding index (0 = unknown/rare) for Gene, Pathway, Mutation
    edge_index_dict[e] (2, E_e)
    → embedding        (N_Patient, D)
    → logits           (N_Patient, K)
    → risk             (N_Patient,)   log partial hazard (higher = worse)

With ``use_graph=False`` the same module is an MLP on the patient features (the baseline that
measures what message passing adds).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import HeteroConv, SAGEConv
from torch_geometric.nn.aggr import AttentionalAggregation

from graphonc.graph import schema as S
from graphonc.graph.hetero import spline_columns
from graphonc.model_config import ModelConfig

__all__ = ["ModelConfig", "PatientGNN", "GNNEnsemble", "EMBEDDED_TYPES", "combine", "members", "spline_columns"]


def _aggregation(name: str, h: int):
    """A PyG aggregation: a name, or for "attention" a learned per-message gate (softmax over a
    node's incoming messages), so a patient can weight a driver mutation above its passengers."""
    if name == "attention":
        return AttentionalAggregation(nn.Linear(h, 1))
    return name


#: Node types that get a learnable per-node embedding on top of their features.
EMBEDDED_TYPES = (S.GENE, S.PATHWAY, S.MUTATION)


class PatientGNN(nn.Module):
    """Node encoders → ``cfg.layers`` hetero SAGE layers → patient embedding → diagnosis and Cox heads,
    plus the wide part (linear heads on the patient's own features and their splines).

    Args:
        in_dims: feature width F_t of each node type.
        edge_types: the (src, relation, dst) types message passing uses.
        vocab_sizes: learnable-embedding vocabulary size per node type.
        num_classes: diagnosis classes K (0: no label task).
        cfg: the model settings.
        spline_columns: patient feature columns that get the wide part's hinges (``cfg.wide_knots``);
            see :func:`spline_columns`.
    """

    def __init__(self, in_dims: dict[str, int], edge_types: list[tuple[str, str, str]], vocab_sizes: dict[str, int],
                 num_classes: int, cfg: ModelConfig, spline_columns: list[int] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden
        self.encoders = nn.ModuleDict({t: nn.Linear(d, h) for t, d in in_dims.items()})
        self.embeddings = nn.ModuleDict({t: nn.Embedding(n + 1, h, padding_idx=0)
                                         for t, n in vocab_sizes.items() if t in in_dims and cfg.id_embeddings})
        self.edge_types = [tuple(e) for e in edge_types] if cfg.use_graph else []
        self.convs = nn.ModuleList(
            HeteroConv({e: SAGEConv((h, h), h, aggr=_aggregation(cfg.aggr, h)) for e in self.edge_types}, aggr="sum")
            for _ in range(cfg.layers if self.edge_types else 0)
        )
        self.norms = nn.ModuleList(nn.ModuleDict({t: nn.LayerNorm(h) for t in in_dims}) for _ in self.convs)
        self.project = nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Linear(h, cfg.embedding_dim))
        self.classifier = nn.Linear(cfg.embedding_dim, max(num_classes, 1))
        self.cox = nn.Linear(cfg.embedding_dim, 1, bias=False)  # Cox partial likelihood ignores a bias
        # The wide part of a wide-and-deep model: a linear risk and linear logits straight from the
        # patient's own features, so the network contains penalised Cox / logistic regression and
        # message passing has to add to it, not rediscover it (small cohorts, few events).
        f = in_dims.get(S.PATIENT, 0)
        splines = list(spline_columns or []) if cfg.wide and f else []
        self.register_buffer("spline_index", torch.tensor(splines, dtype=torch.long), persistent=False)
        self.register_buffer("knots", torch.tensor(cfg.wide_knots if splines else [], dtype=torch.float32),
                             persistent=False)
        f_wide = f + len(splines) * len(self.knots)
        self.wide_cox = nn.Linear(f_wide, 1, bias=False) if cfg.wide and f else None
        self.wide_classifier = nn.Linear(f_wide, max(num_classes, 1)) if cfg.wide and f else None

    def wide_inputs(self, x_patient: torch.Tensor) -> torch.Tensor:
        """(N, F) patient features → (N, F + C·T): the features and, for each of the C spline columns
        and T knots, the hinge max(x - knot, 0): a linear spline per numeric column."""
        if not len(self.knots):
            return x_patient
        z = x_patient[:, self.spline_index]
        return torch.cat([x_patient, F.relu(z.unsqueeze(-1) - self.knots).flatten(1)], dim=1)

    def input_states(self, x_dict: dict[str, torch.Tensor], vocab_dict: dict[str, torch.Tensor]
                     ) -> dict[str, torch.Tensor]:
        """Layer-0 node states (N_t, H): encoded features plus the learnable per-node embedding."""
        h = {}
        for t, x in x_dict.items():
            if t not in self.encoders:
                continue
            z = self.encoders[t](x)
            if t in self.embeddings and t in vocab_dict:
                z = z + self.embeddings[t](vocab_dict[t])
            h[t] = F.relu(z)
        return h

    def propagate(self, h: dict[str, torch.Tensor], edge_index_dict: dict) -> dict[str, torch.Tensor]:
        """Message passing over ``layers`` hetero SAGE layers (residual + LayerNorm)."""
        edges = {e: ei for e, ei in edge_index_dict.items() if tuple(e) in set(self.edge_types)}
        for i in range(len(self.convs)):
            h = self.layer(i, h, edges)
        return h

    def layer(self, i: int, h: dict[str, torch.Tensor], edges: dict) -> dict[str, torch.Tensor]:
        """Message-passing layer ``i``: the new state of every node type in ``h`` that receives
        along ``edges``; the other types keep their state (residual everywhere)."""
        return self.update(i, h, self.convs[i](h, edges))

    def update(self, i: int, h: dict[str, torch.Tensor], out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Layer ``i``'s residual + LayerNorm step, given the summed convolution outputs ``out``
        (a local computation graph computes ``out`` itself: :mod:`graphonc.model.local`)."""
        return {t: self.norms[i][t](h[t] + F.dropout(F.relu(out[t]), self.cfg.dropout, self.training))
                if t in out else h[t] for t in h}

    def encode(self, x_dict: dict[str, torch.Tensor], edge_index_dict: dict, vocab_dict: dict[str, torch.Tensor]
               ) -> dict[str, torch.Tensor]:
        return self.propagate(self.input_states(x_dict, vocab_dict), edge_index_dict)

    def heads(self, h_patient: torch.Tensor, x_patient: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(embedding (N, D), logits (N, K), risk (N,)) from final patient states (N, H) and, for the
        wide part (``cfg.wide``), the patients' input features (N, F)."""
        z = self.project(F.dropout(h_patient, self.cfg.dropout, self.training))
        logits, risk = self.classifier(z), self.cox(z).squeeze(-1)
        if self.wide_cox is not None:
            if x_patient is None:
                raise ValueError("a wide model needs the patients' input features for its heads")
            x_wide = self.wide_inputs(x_patient)
            logits = logits + self.wide_classifier(x_wide)
            risk = risk + self.wide_cox(x_wide).squeeze(-1)
        return z, logits, risk

    def forward(self, x_dict, edge_index_dict, vocab_dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.heads(self.encode(x_dict, edge_index_dict, vocab_dict)[S.PATIENT], x_dict.get(S.PATIENT))


class GNNEnsemble(nn.Module):
    """``n`` :class:`PatientGNN` trained on the same graph from different seeds (``model.ensemble``).

    On cohorts of a few hundred patients one network's early-stopped epoch, and so its risk
    ranking, depends on its initialisation; averaging members removes that variance. Outputs as
    :class:`PatientGNN` (see :func:`combine`), so every consumer treats both alike; code that
    works layer by layer (new-patient embedding, explanations) iterates :func:`members`.
    """

    def __init__(self, members: list[PatientGNN]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.cfg = members[0].cfg
        self.edge_types = members[0].edge_types

    def forward(self, x_dict, edge_index_dict, vocab_dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return combine([m(x_dict, edge_index_dict, vocab_dict) for m in self.members])


def members(model: nn.Module) -> list[PatientGNN]:
    """The networks of ``model``: itself, or an ensemble's members."""
    return list(model.members) if isinstance(model, GNNEnsemble) else [model]


def combine(outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One (embedding, logits, risk) from the members' outputs.

    * embedding (N, n·D): the members' L2-normalised embeddings side by side, scaled by 1/sqrt(n),
      so the cosine similarity of two patients is the mean of the members' cosine similarities;
    * logits (N, K): log of the mean class probabilities;
    * risk (N,): the mean log partial hazard.

    A single member's outputs are returned unchanged.
    """
    if len(outputs) == 1:
        return outputs[0]
    n = len(outputs)
    z = torch.cat([F.normalize(o[0], dim=-1) for o in outputs], dim=-1) / math.sqrt(n)
    logits = torch.logsumexp(torch.stack([torch.log_softmax(o[1], -1) for o in outputs]), 0) - math.log(n)
    risk = torch.stack([o[2] for o in outputs]).mean(0)
    return z, logits, risk
