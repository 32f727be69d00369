"""Explanations (integrated gradients over the graph) on a model trained on real METABRIC."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from graphonc.cli import app
from graphonc.errors import GraphoncError
from graphonc.graph import schema as S
from graphonc.model.explain import clinical_column, explain_patient, output_notes, top
from graphonc.model.io import load_model


@pytest.fixture(scope="module")
def mutated_patient(metabric_trained):
    run, _ = metabric_trained
    has = run.edges(S.HAS_MUTATION)
    counts = has.groupby(S.SRC).size()
    return counts[counts.between(4, 8)].index[0]


@pytest.fixture(scope="module")
def explanation(metabric_trained, mutated_patient):
    run, _ = metabric_trained
    return explain_patient(run.root, mutated_patient, steps=16)


def test_attributions_add_up_to_the_output_change(explanation):
    """Completeness of integrated gradients survives our grouping into clinical columns and nodes:
    the table's total differs from f(x) - f(baseline) by exactly the reported integration gap."""
    for target, out in explanation.outputs.items():
        total = explanation.table.loc[explanation.table["target"] == target, "attribution"].sum()
        change = out["value"] - out["baseline"]
        assert abs(total - change) == pytest.approx(out["delta"], abs=1e-3)
        assert out["delta"] < max(0.5 * abs(change), 0.1)


def test_linked_nodes_are_the_patients_own_mutations_and_genes(metabric_trained, mutated_patient, explanation):
    run, metrics = metabric_trained
    has = run.edges(S.HAS_MUTATION)
    mine = set(has.loc[has[S.SRC] == mutated_patient, S.DST])
    if metrics["member_risk"] == ["linear"]:
        # the risk fell back to penalised Cox with splines (model.risk_fallback): it reads the
        # patient's clinical columns only, so no node has a part in it; the class still does
        risk = explanation.table[explanation.table["target"] == "risk"]
        assert set(risk["kind"]) == {"clinical"} and risk["attribution"].abs().sum() > 0
        target = next(t for t in explanation.outputs if t != "risk")
    else:
        target = "risk"
    t = explanation.table[explanation.table["target"] == target]
    linked_mut = set(t.loc[(t["kind"] == "mutation") & t["linked"], "name"])
    assert linked_mut == mine
    genes = {m.split(":")[0] for m in mine}
    linked_genes = t[(t["kind"] == "gene") & t["linked"]]
    assert set(linked_genes["name"]) == genes
    roles = run.nodes(S.GENE).set_index(S.ID)["role"]
    assert (linked_genes["value"] == roles.loc[linked_genes["name"]].to_numpy()).all()
    # every clinical feature column appears once per target, with the patient's value
    cols = run.manifest["patient_columns"]
    clinical = t[t["kind"] == "clinical"]
    assert set(clinical["name"]) == set(cols["numeric"] + cols["categorical"]) | {"mutations_assayed"}
    age = run.nodes(S.PATIENT).set_index(S.ID).loc[mutated_patient, "AGE_AT_DIAGNOSIS"]
    assert float(clinical.set_index("name").loc["AGE_AT_DIAGNOSIS", "value"]) == pytest.approx(age)


def test_removing_the_top_clinical_feature_moves_risk_its_way(metabric_trained, mutated_patient, explanation):
    """Setting the most attributed clinical column to its baseline (0) moves the risk in the sign's direction."""
    run, _ = metabric_trained
    lm = load_model(run.root / "model", run)
    d = lm.graph.data
    row = int(lm.graph.ids[S.PATIENT].get_loc(mutated_patient))
    t = explanation.table
    best = t[(t["target"] == "risk") & (t["kind"] == "clinical")].iloc[0]
    names = lm.graph.encoder.feature_names_
    cols = [i for i, n in enumerate(names) if clinical_column(n) == best["name"]]
    x = {k: d[k].x for k in d.node_types if "x" in d[k]}
    edges = {e: d[e].edge_index for e in d.edge_types}
    with torch.no_grad():
        before = lm.model(x, edges, lm.graph.vocab_dict)[2][row].item()
        xp = x[S.PATIENT].clone()
        xp[row, cols] = 0.0
        after = lm.model({**x, S.PATIENT: xp}, edges, lm.graph.vocab_dict)[2][row].item()
    assert np.sign(before - after) == np.sign(best["attribution"])


def test_top_and_unknown_patient(metabric_trained, explanation):
    t = top(explanation.table, 3)
    assert (t.groupby(["target", "kind"]).size() <= 3).all()
    run, _ = metabric_trained
    with pytest.raises(GraphoncError, match="Did you mean"):
        explain_patient(run.root, "MB-000")


def test_notes_say_when_the_risk_is_the_linear_fallback_and_the_label_has_trees(metabric_trained, explanation):
    """A member whose risk fell back to penalised Cox with splines explains its risk by clinical
    columns only, and with label trees the attributions explain the network's part of the class
    probabilities; the explanation says so, in every place it is shown, and only then."""
    run, metrics = metabric_trained
    linear = metrics["member_risk"].count("linear")
    meta = json.loads((run.layout.model_dir / "model.json").read_text())
    trees = meta["booster_columns"] is not None  # the label trees, where their out-of-bag weight is above 0
    assert len(explanation.notes) == (1 if linear else 0) + (1 if trees else 0)
    if linear:
        assert "model.risk_fallback" in explanation.notes[0]
    if trees:
        assert "model.label_boosting" in explanation.notes[-1]
        assert f"weight {meta['booster_weight']:g} on the trees" in explanation.notes[-1]
    assert output_notes({"member_risk": ["network"] * 5, "label_classes": ["a", "b"]}) == []
    assert output_notes({}) == []  # a model saved before the fallback existed
    mixed = output_notes({"member_risk": ["linear", "network", "linear"], "label_classes": ["a", "b"]})
    assert mixed[0].startswith("In 2 of 3 ensemble members the risk") and "diagnosis" in mixed[0]
    only = output_notes({"member_risk": ["linear"], "label_classes": []})  # survival-only cohort
    assert only[0].startswith("The model's risk") and "diagnosis" not in only[0]
    noted = output_notes({"member_risk": ["network"], "booster_columns": [0, 3], "booster_weight": 0.3})
    assert len(noted) == 1 and "weight 0.3 on the trees" in noted[0]


def test_the_report_and_the_service_show_the_notes(metabric_trained, explanation):
    from dataclasses import replace

    from graphonc.report.html import _explanation_section
    from graphonc.serve.api import Explanation as ExplanationOut, explanation_out

    noted = replace(explanation, notes=output_notes({"member_risk": ["linear", "network"], "label_classes": ["x"]})
                    + ["<b>not markup</b>"])
    html = _explanation_section(noted)
    assert "In 1 of 2 ensemble members the risk" in html and "&lt;b&gt;not markup&lt;/b&gt;" in html
    doc = ExplanationOut(**explanation_out(noted, 3)).model_dump()
    assert doc["notes"] == noted.notes


@pytest.mark.slow  # a second explanation through the CLI
def test_explain_cli_json(metabric_trained, mutated_patient):
    run, _ = metabric_trained
    res = CliRunner().invoke(app, ["explain", "--run", str(run.root), "--patient", mutated_patient, "--top", "4",
                                   "--json", "--steps", "8"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["patient"] == mutated_patient and set(doc["outputs"]) == {"risk", "diagnosis"}
    assert doc["notes"] == output_notes(json.loads((run.layout.model_dir / "model.json").read_text()))
    assert {r["kind"] for r in doc["attributions"]} >= {"clinical", "gene", "mutation"}
