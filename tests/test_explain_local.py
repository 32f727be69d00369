"""Explanations on the patient's computation graph equal those over the whole graph (real METABRIC).

Message passing with L layers only reads the patient's L-hop neighbourhood, so integrated
gradients on that neighbourhood (with the other patients' messages folded,
:mod:`graphonc.model.local`) must give the whole-graph attributions, for every aggregation the
model may use, for cohort patients and for new (receive-only) patients.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from graphonc.graph import schema as S
from graphonc.model.embed import attach, read_new_patients, run_config
from graphonc.model.explain import explain_local, explain_new, explain_row
from graphonc.model.gnn import PatientGNN
from graphonc.model.io import load_model
from graphonc.model.local import LocalModel, combine, finish, partial
from graphonc.model_config import ModelConfig

STEPS = 4


@pytest.fixture(scope="module")
def trained(metabric_trained):
    run, _ = metabric_trained
    return run, load_model(run.root / "model", run)


def _rows(lm, n: int) -> list[int]:
    """``n`` patient rows with 4-8 mutations (a neighbourhood with mutations, genes and pathways)."""
    ei = lm.graph.data[(S.MUTATION, "rev_HAS_MUTATION", S.PATIENT)].edge_index
    counts = torch.bincount(ei[1], minlength=lm.graph.data[S.PATIENT].num_nodes)
    return torch.nonzero((counts >= 4) & (counts <= 8)).flatten()[:n].tolist()


def _whole(lm, row):
    g, d = lm.graph, lm.graph.data
    x = {t: d[t].x for t in d.node_types if "x" in d[t]}
    edges = {e: d[e].edge_index for e in d.edge_types}
    return explain_row(lm.model, x, edges, g.vocab_dict, row, feature_names=g.encoder.feature_names_, ids=g.ids,
                       classes=g.label_classes, steps=STEPS)


def _local(lm, graph):
    g = lm.graph
    return explain_local(graph, feature_names=g.encoder.feature_names_, ids=g.ids, classes=g.label_classes,
                         steps=STEPS)


def _assert_same(local, whole):
    (a, oa, pa), (b, ob, pb) = local, whole
    assert pa == pb
    for target in ob:
        for key in ("value", "baseline", "delta"):
            assert oa[target][key] == pytest.approx(ob[target][key], abs=1e-5)
    key = ["target", "kind", "name"]
    m = a.merge(b, on=key, how="outer", suffixes=("_l", "_w"), indicator=True)
    # a node whose attribution is a float hair from 0 in one computation may be dropped in the other
    one_side = m["_merge"] != "both"
    assert m.loc[one_side, ["attribution_l", "attribution_w"]].abs().max().max() < 1e-6 if one_side.any() else True
    both = m[~one_side]
    np.testing.assert_allclose(both["attribution_l"], both["attribution_w"], atol=1e-6, rtol=1e-4)
    assert (both["linked_l"] == both["linked_w"]).all()
    assert both["kind"].isin(["mutation", "gene", "pathway"]).any()  # the neighbourhood was attributed


@pytest.mark.slow  # the whole-graph reference: seconds per patient
def test_local_attributions_equal_the_whole_graph(trained):
    _, lm = trained
    local = LocalModel(lm)
    for row in [*_rows(lm, 2), 0]:  # row 0: no mutations in METABRIC's panel
        graph = local.of_patient(row)
        # the cohort-sized part (every other patient on the gene panel) is folded, not part of the graph
        assert len(graph.nodes[S.PATIENT]) == 1 and len(graph.folded) > 0
        assert len(graph.nodes[S.GENE]) < lm.graph.data[S.GENE].num_nodes + 1
        _assert_same(_local(lm, graph), _whole(lm, row))


@pytest.mark.slow  # four untrained models, whole-graph reference for each
@pytest.mark.parametrize("aggr,layers", [("mean", 2), ("sum", 2), ("attention", 2), ("mean", 3)])
def test_every_aggregation_and_depth(trained, aggr, layers):
    """Other aggregations and depths, on the trained model's METABRIC graph with seeded random weights
    (L = 3 keeps the other patients two hops away as real nodes and folds those three hops away)."""
    _, lm = trained
    torch.manual_seed(0)
    meta = lm.meta
    cfg = ModelConfig(**{**meta["config"], "aggr": aggr, "layers": layers})
    model = PatientGNN(meta["in_dims"], [tuple(e) for e in meta["edge_types"]],
                       {t: len(v) for t, v in meta["vocab"].items()}, len(meta["label_classes"]), cfg).eval()
    other = dataclasses.replace(lm, model=model)
    row = _rows(lm, 1)[0]
    graph = LocalModel(other).of_patient(row)
    assert (len(graph.nodes[S.PATIENT]) > 1) == (layers == 3)
    _assert_same(_local(other, graph), _whole(other, row))


def test_partial_aggregates_combine_like_one_aggregation():
    """Folding one message set and combining it with another equals aggregating both at once (PyG)."""
    from torch_geometric.nn import SAGEConv
    from torch_geometric.nn.aggr import AttentionalAggregation

    torch.manual_seed(1)
    msgs, index = torch.randn(3, 40, 8), torch.randint(0, 6, (40,))
    index[index == 5] = 4  # node 5 gets no message
    for kind, aggr in (("sum", "sum"), ("mean", "mean"), ("max", "max"),
                       ("attention", AttentionalAggregation(torch.nn.Linear(8, 1)))):
        conv = SAGEConv(8, 8, aggr=aggr)
        want = conv.aggr_module(msgs, index, dim_size=6, dim=-2)
        split = torch.rand(40) < 0.5
        p = combine(kind, partial(kind, conv, msgs[:, split], index[split], 6),
                    partial(kind, conv, msgs[:, ~split], index[~split], 6))
        torch.testing.assert_close(finish(kind, p), want, atol=1e-6, rtol=1e-5)
        assert float(finish(kind, p)[:, 5].abs().max()) == 0.0


@pytest.mark.slow  # reads the patient with the run's config (gene symbol map) + whole-graph reference
def test_new_patient_local_equals_attached_whole_graph(trained, loaded_new):
    run, lm = trained
    new = loaded_new
    local = explain_new(lm, run, new, steps=STEPS, node_values={})
    x, edges, rows, _ = attach(lm, new)
    g = lm.graph
    ids = dict(g.ids)
    ids[S.PATIENT] = g.ids[S.PATIENT].append(pd.Index(new.patients[S.ID]))
    whole = explain_row(lm.model, x, edges, g.vocab_dict, int(rows[0]), feature_names=g.encoder.feature_names_,
                        ids=ids, classes=g.label_classes, patient_values=new.patients.iloc[0], node_values={},
                        steps=STEPS)
    _assert_same((local.table, local.outputs, local.predicted_label), whole)


@pytest.fixture(scope="module")
def loaded_new(trained, data_dir, tmp_path_factory):
    """One real METABRIC patient with mutations, read as a new patient with the run's config."""
    from cohort_files import write_study_subset

    run, lm = trained
    pid = str(lm.graph.ids[S.PATIENT][_rows(lm, 1)[0]])
    study = write_study_subset(data_dir / "metabric", tmp_path_factory.mktemp("new") / "study", {pid})
    enc = lm.graph.encoder
    return read_new_patients(run_config(run), study, None, enc.numeric + enc.categorical, enc.radiomics,
                             run.column_keys())
