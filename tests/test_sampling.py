"""Neighbour-sampled mini-batches on the real METABRIC graph."""
from __future__ import annotations

import pytest
import torch

from graphonc.graph import schema as S
from graphonc.model.data import model_graph
from graphonc.model.evaluate import eligible_patients
from graphonc.model.gnn import ModelConfig, PatientGNN
from graphonc.model.sampling import NeighborSampler
from graphonc.model.train import fit_model


@pytest.fixture(scope="module")
def graph(metabric_run):
    ids = eligible_patients(metabric_run)[S.ID].tolist()
    return model_graph(metabric_run, ids[: len(ids) * 4 // 5])


def _tensors(graph):
    d = graph.data
    return ({t: d[t].x for t in d.node_types if "x" in d[t]}, {e: d[e].edge_index for e in d.edge_types},
            graph.vocab_dict, {t: d[t].num_nodes for t in d.node_types})


def test_unlimited_fanout_reproduces_the_full_graph_exactly(graph):
    """With every neighbour kept, the seeds' sampled L-hop subgraph gives their full-graph outputs."""
    x, edges, vocab, n = _tensors(graph)
    cfg = ModelConfig(hidden=16, embedding_dim=8, layers=2, dropout=0.0)
    torch.manual_seed(0)
    model = PatientGNN({t: v.shape[1] for t, v in x.items()}, list(edges), {t: len(v) for t, v in graph.vocab.items()},
                       len(graph.label_classes), cfg).eval()
    seeds = torch.tensor([0, 5, 17, 400, 2000])
    sub = NeighborSampler(edges, n, [-1, -1]).sample(seeds)
    with torch.no_grad():
        z_full, _, risk_full = model(x, edges, vocab)
        z_sub, _, risk_sub = model(sub.select(x), sub.edges, sub.select(vocab))
    torch.testing.assert_close(z_sub[: len(seeds)], z_full[seeds], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(risk_sub[: len(seeds)], risk_full[seeds], atol=1e-5, rtol=1e-4)
    assert sub.nodes[S.PATIENT].shape[0] < n[S.PATIENT]  # it is a subgraph, not the whole graph


def test_fanout_caps_incoming_edges_and_is_seeded(graph):
    _, edges, _, n = _tensors(graph)
    seeds = torch.arange(0, 300)
    a = NeighborSampler(edges, n, [5, 3], seed=7).sample(seeds)
    b = NeighborSampler(edges, n, [5, 3], seed=7).sample(seeds)
    c = NeighborSampler(edges, n, [5, 3], seed=8).sample(seeds)
    for e, ei in a.edges.items():
        assert torch.bincount(ei[1]).max() <= 5 + 3  # a node can be reached at both hops
        torch.testing.assert_close(ei, b.edges[e])
    assert any(e not in c.edges or not torch.equal(a.edges[e], c.edges[e]) for e in a.edges)  # another seed
    # every sampled edge exists in the full graph
    for e, ei in a.edges.items():
        full = set(map(tuple, edges[e].t().tolist()))
        glob = torch.stack([a.nodes[e[0]][ei[0]], a.nodes[e[2]][ei[1]]]).t().tolist()
        assert set(map(tuple, glob)) <= full


@pytest.mark.slow  # trains on mini-batches
def test_minibatch_training_learns(metabric_run):
    ids = eligible_patients(metabric_run)[S.ID].tolist()
    cfg = ModelConfig(hidden=32, embedding_dim=16, epochs=4, patience=10, batch_size=512, fanouts=[10, 5], ensemble=1)
    fit = fit_model(metabric_run, ids, cfg)
    losses = [h["train_loss"] for h in fit.history]
    assert len(losses) == 4 and losses[-1] < losses[0]
