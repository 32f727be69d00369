"""Neighbour sampling for mini-batch training on graphs too big for one full-batch step.

PyG's :class:`~torch_geometric.loader.NeighborLoader` needs ``pyg-lib`` or ``torch-sparse``
compiled for the exact torch build; neither is on PyPI for current torch, and graphonc keeps
to plain ``torch`` + ``torch_geometric``. This is the same algorithm in vectorised torch:
starting from a batch of seed patients, each layer samples up to ``fanout`` incoming edges
per frontier node (uniformly, without replacement, per edge type) and the sampled nodes form
the next frontier. The result is the seeds' computation subgraph with local indices, seeds
first, ready for :class:`~graphonc.model.gnn.PatientGNN` exactly like the full graph.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from graphonc.graph import schema as S


@dataclass
class SampledGraph:
    """A sampled subgraph; ``nodes[t]`` are global indices (local index = position)."""

    nodes: dict[str, torch.Tensor]
    edges: dict[tuple[str, str, str], torch.Tensor]
    n_seeds: int  # the seeds are nodes[Patient][:n_seeds]

    def select(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rows of per-node tensors (features, vocab indices) for the sampled nodes."""
        return {t: v[self.nodes[t]] for t, v in x.items() if t in self.nodes}


class Incoming:
    """CSR of one edge type by destination: sources of node d are src[ptr[d]:ptr[d+1]]."""

    def __init__(self, edge_index: torch.Tensor, num_dst: int) -> None:
        order = torch.argsort(edge_index[1], stable=True)
        self.src = edge_index[0, order]
        counts = torch.bincount(edge_index[1], minlength=num_dst)
        self.ptr = torch.zeros(num_dst + 1, dtype=torch.long)
        self.ptr[1:] = torch.cumsum(counts, 0)

    def sample(self, dst: torch.Tensor, k: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Up to ``k`` random incoming edges of each node in ``dst`` → (src, dst), global ids."""
        start, deg = self.ptr[dst], self.ptr[dst + 1] - self.ptr[dst]
        total = int(deg.sum())
        if total == 0:
            return dst[:0], dst[:0]
        group = torch.repeat_interleave(torch.arange(len(dst)), deg)
        offset = torch.arange(total) - torch.repeat_interleave(torch.cumsum(deg, 0) - deg, deg)  # within group
        eid = start[group] + offset
        if k >= 0:  # keep the k of each group with the smallest random key
            key = torch.rand(total, generator=gen)
            order = torch.argsort(group.double() + key.double(), stable=True)  # group-major, random within
            # groups keep their place and size, so ``offset`` is also each sorted edge's rank in its group
            keep = offset < k
            eid, group = eid[order][keep], group[order][keep]
        return self.src[eid], dst[group]


class NeighborSampler:
    """Samples the L-hop computation subgraph of seed patients.

    Args:
        edge_index_dict: the model graph's edges (global indices), shape (2, E_e) each.
        num_nodes: nodes per type.
        fanouts: incoming edges sampled per node and edge type, one entry per GNN layer
            (outermost first); -1 = all.
        seed: seed of the sampling generator (reproducible batches).
    """

    def __init__(self, edge_index_dict: dict, num_nodes: dict[str, int], fanouts: list[int], seed: int = 0) -> None:
        self.num_nodes = dict(num_nodes)
        self.fanouts = list(fanouts)
        self.incoming = {e: Incoming(ei.cpu(), num_nodes[e[2]]) for e, ei in edge_index_dict.items()}
        self.gen = torch.Generator().manual_seed(seed)

    def sample(self, seeds: torch.Tensor, node_type: str = S.PATIENT) -> SampledGraph:
        seeds = torch.as_tensor(seeds, dtype=torch.long).cpu()
        order: dict[str, list[torch.Tensor]] = {node_type: [seeds]}
        frontier = {node_type: seeds}
        got: dict[tuple, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        for k in self.fanouts:
            nxt: dict[str, list[torch.Tensor]] = {}
            for e, inc in self.incoming.items():
                if e[2] not in frontier or len(frontier[e[2]]) == 0:
                    continue
                src, dst = inc.sample(frontier[e[2]], k, self.gen)
                if len(src):
                    got.setdefault(e, []).append((src, dst))
                    nxt.setdefault(e[0], []).append(src)
            frontier = {}
            for t, parts in nxt.items():
                cand = torch.unique(torch.cat(parts))
                seen = torch.zeros(self.num_nodes[t], dtype=torch.bool)
                for p in order.get(t, []):
                    seen[p] = True
                new = cand[~seen[cand]]
                if len(new):
                    order.setdefault(t, []).append(new)
                    frontier[t] = new
        nodes = {t: torch.cat(parts) for t, parts in order.items()}
        local = {}
        for t, ids in nodes.items():
            m = torch.full((self.num_nodes[t],), -1, dtype=torch.long)
            m[ids] = torch.arange(len(ids))
            local[t] = m
        edges = {}
        for e, parts in got.items():
            src = torch.cat([p[0] for p in parts])
            dst = torch.cat([p[1] for p in parts])
            # distinct (src, dst) pairs sorted by src then dst, as unique(dim=1) gives them, through
            # one int64 key per pair: unique(dim=1) sorts columns and took most of a batch's sampling
            n_dst = len(nodes[e[2]])
            key = torch.unique(local[e[0]][src] * n_dst + local[e[2]][dst])
            edges[e] = torch.stack([key // n_dst, key % n_dst])
        return SampledGraph(nodes, edges, len(seeds))
