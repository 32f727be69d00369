"""A new patient's copy number and fusions in `graphonc serve`, on the real MSK prostate 2024 run.

One small model is trained once for the module (conftest's FAST_MODEL) and served by uvicorn on a
free port. A cohort patient re-submitted as a new patient (its own clinical values, panel,
mutations, copy-number calls and fusions, read from the run's tables) must get its own embedding
back and itself as top neighbour; its amplification must change the embedding and show in the
reasons; bad values get a 422 naming the field and item; a fusion new to the cohort becomes a
Fusion node linked to its partner genes, equal to the full forward pass; "not profiled" is not
"none found"; the CLI's `report --new-patient` and the web form (with a MAF file uploaded and
read on the server) take the same body.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import FAST_MODEL
from graphonc import layout as L
from graphonc.graph import schema as S
from graphonc.graph.run import GraphRun
from graphonc.serve.app import create_app
from graphonc.serve.newpatient import NewPatient, embed
from graphonc.serve.security import MAX_BODY_BYTES, Token
from graphonc.serve.state import load_runs
from test_serve import CHROMIUM, TOKEN, LiveServer, chromium_page, report_new_patient

RUN = "prostate"


@pytest.fixture(scope="module")
def trained(prostate_run, tmp_path_factory) -> GraphRun:
    """A copy of the session's prostate run with a small trained model and its index."""
    from graphonc.model.stages import train_stage
    from graphonc.search.index import build_index

    root = tmp_path_factory.mktemp("alterations") / RUN
    shutil.copytree(prostate_run.root, root)
    train_stage(root, **FAST_MODEL, label_boosting=0.5)  # fixed: the new patient's trees are always checked
    build_index(root, "auto", device="cpu")
    return GraphRun.open(root)


@pytest.fixture(scope="module")
def state(trained):
    return load_runs([trained.root])[RUN]


@pytest.fixture(scope="module")
def server(state, tmp_path_factory):
    app = create_app({RUN: state}, token=Token(TOKEN, "test", False), state_dir=tmp_path_factory.mktemp("state"))
    with LiveServer(app) as live:
        yield live


@pytest.fixture()
def api(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as c:
        yield c


def _pick(run: GraphRun, state) -> str:
    """A held-out patient (receive-only in the model graph, so re-submitting it is exact) with an AR
    amplification, a fusion with two named partners, a mutation and one panel: the first by id."""
    senders = pd.Series(state.frozen.lm.graph.senders, index=state.frozen.lm.graph.ids[S.PATIENT])
    cna, fu = run.edges(S.HAS_CNA), run.edges(S.HAS_FUSION)
    seq, mut = run.edges(S.SEQUENCED_WITH), run.edges(S.HAS_MUTATION)
    unnamed = set(fu.loc[fu[S.DST].str.contains("?", regex=False), S.SRC])
    one_panel = set(seq[S.SRC].value_counts().loc[lambda n: n == 1].index)
    ar = set(cna.loc[(cna[S.DST] == "AR") & (cna["call"] == "AMP"), S.SRC])
    ok = sorted(p for p in ar & set(fu[S.SRC]) & set(mut[S.SRC]) & one_panel
                if p not in unnamed and not senders[p])
    assert ok, "no held-out prostate patient with an AR amplification and a fusion"
    return ok[0]


def cohort_body(run: GraphRun, state, pid: str) -> dict:
    """The new-patient body of cohort patient ``pid``, from the run's own tables."""
    p = run.nodes(S.PATIENT).set_index(S.ID).loc[pid]
    enc = state.frozen.lm.graph.encoder
    clinical = {c: (float(p[c]) if c in enc.numeric else str(p[c])) for c in enc.numeric + enc.categorical
                if pd.notna(p[c])}
    mut_nodes = run.nodes(S.MUTATION).set_index(S.ID)
    has = run.edges(S.HAS_MUTATION)
    mutations = [{"gene": mut_nodes.loc[m, "gene"], "protein_change": m.split(":", 1)[1],
                  "variant_class": mut_nodes.loc[m, "variant_class"]} for m in has.loc[has[S.SRC] == pid, S.DST]]
    cna = run.edges(S.HAS_CNA)
    fu = run.edges(S.HAS_FUSION)
    seq = run.edges(S.SEQUENCED_WITH)
    return {"clinical": clinical, "mutations": mutations,
            "gene_panel": seq.loc[seq[S.SRC] == pid, S.DST].iloc[0],
            "copy_number": [{"gene": g, "value": int(v)} for g, v in cna.loc[cna[S.SRC] == pid, [S.DST, "value"]]
                            .itertuples(index=False)],
            "copy_number_profiled": bool(p["cna_profiled"]),
            "fusions": list(fu.loc[fu[S.SRC] == pid, S.DST]), "sv_profiled": bool(p["sv_profiled"])}


def _cohort_embedding(run: GraphRun, pid: str) -> np.ndarray:
    e = pd.read_parquet(run.root / "model" / L.EMBEDDINGS).set_index(S.ID)
    return np.asarray(e.loc[pid, "embedding"], dtype=np.float32)


# ---------------------------------------------------------------------------------- the model side


def test_a_cohort_patient_resubmitted_gets_its_own_embedding_and_itself_first(api, trained, state):
    pid = _pick(trained, state)
    body = cohort_body(trained, state, pid)
    assert body["copy_number"] and body["fusions"] and body["mutations"]
    emb, new, notes = embed(NewPatient.model_validate(body), state)
    np.testing.assert_allclose(emb.embeddings[0], _cohort_embedding(trained, pid), atol=1e-4)
    assert not notes.fusions_not_in_run and not notes.genes_not_in_run and not notes.ignored_copy_number
    r = api.post(f"/api/runs/{RUN}/new-patient/similar", json=body, params={"k": 5})
    assert r.status_code == 200, r.text
    got = r.json()
    top = got["neighbours"][0]
    assert top["id"] == pid and top["score"] > 0.999
    assert {c["gene"] for c in top["shared_copy_number"]} == {c["gene"] for c in body["copy_number"]}
    assert "both carry an AR amplification" in [c["reason"] for c in top["shared_copy_number"]]
    assert "AR amplification" in top["reasons"] and f"the fusion {body['fusions'][0]}" in top["reasons"]
    assert got["query"]["copy_number"]["AR"] == "AMP" and got["query"]["fusions"] == sorted(body["fusions"])
    assert got["query"]["assays"] == {"cna_profiled": True, "sv_profiled": True}


def test_an_amplification_changes_the_embedding_and_shows_in_the_reasons(api, trained, state):
    pid = _pick(trained, state)
    body = cohort_body(trained, state, pid)
    without = dict(body, copy_number=[c for c in body["copy_number"] if c["gene"] != "AR"])
    a = embed(NewPatient.model_validate(without), state)[0].embeddings[0]
    b = embed(NewPatient.model_validate(dict(without, copy_number=without["copy_number"] + ["AR amp"])),
              state)[0].embeddings[0]
    assert np.abs(a - b).max() > 1e-3
    np.testing.assert_allclose(b, _cohort_embedding(trained, pid), atol=1e-4)  # the line form = the object form
    got = api.post(f"/api/runs/{RUN}/new-patient/similar", params={"k": 10},
                   json=dict(without, copy_number=without["copy_number"] + ["AR amp"])).json()
    amplified = set(trained.edges(S.HAS_CNA).query("dst == 'AR' and call == 'AMP'")[S.SRC])
    for n in got["neighbours"]:  # every neighbour that carries it says so, and no other does
        shared = [c for c in n["shared_copy_number"] if c["gene"] == "AR"]
        assert bool(shared) == (n["id"] in amplified), n
        if shared:
            assert shared[0]["reason"] == "both carry an AR amplification"
            # the sentence names the first three shared calls
            assert ("AR amplification" in n["reasons"]) == (shared[0] in n["shared_copy_number"][:3])
    assert any(n["id"] in amplified for n in got["neighbours"])
    # without the call, no neighbour is said to share it
    got = api.post(f"/api/runs/{RUN}/new-patient/similar", params={"k": 10}, json=without).json()
    assert not any("AR amplification" in n["reasons"] or any(c["gene"] == "AR" for c in n["shared_copy_number"])
                   for n in got["neighbours"])


def test_fusions_match_the_cohort_in_either_order_and_new_ones_link_to_their_partners(state):
    from graphonc.model.boosted import tree_features
    from graphonc.model.embed import attach

    body = {"fusions": ["ERG-TMPRSS2", {"gene1": "AR", "gene2": "PTEN"}, "FOO1-BAR2"],
            "copy_number": ["AR amp", "MYC gain", "NOTAGENE7 homdel"]}
    emb, new, notes = embed(NewPatient.model_validate(body), state)
    assert sorted(new.edges[S.HAS_FUSION][S.DST]) == ["AR::PTEN", "TMPRSS2::ERG"]  # the cohort's own id
    assert "AR::PTEN" not in state.frozen.lm.graph.ids[S.FUSION]
    assert notes.fusions_not_in_run == ["AR::PTEN"] and notes.fusions_not_linked == ["FOO1::BAR2"]
    assert sorted(new.edges[S.FUSION_PARTNER][S.DST]) == ["AR", "PTEN"]
    assert notes.unknown_genes == ["BAR2", "FOO1", "NOTAGENE7"] and notes.ignored_copy_number == ["MYC 1"]
    assert list(new.edges[S.HAS_CNA][S.DST]) == ["AR"]  # gains make no link; unknown genes have no node
    # the precomputed path (a new Fusion node receive-only) equals the full forward pass
    lm = state.frozen.lm
    x, edges, rows, _ = attach(lm, new)
    with torch.no_grad():
        z, logits, risk = lm.model(x, edges, lm.graph.vocab_dict)
    np.testing.assert_allclose(emb.embeddings, z[rows].numpy(), atol=1e-5)
    np.testing.assert_allclose(emb.risk, risk[rows].numpy(), atol=1e-5)
    # the label trees read the same links: the new fusion's partners (AR, PTEN) as fusion columns
    feats = tree_features(x[S.PATIENT].numpy(), edges, lm.graph.data[S.GENE].num_nodes, x[S.FUSION].shape[0])[rows]
    gene = {g: i for i, g in enumerate(lm.graph.ids[S.GENE])}
    fused = feats[:, x[S.PATIENT].shape[1] + 3 * len(gene):].toarray()[0]
    assert {lm.graph.ids[S.GENE][i] for i in np.flatnonzero(fused)} == {"AR", "PTEN", "TMPRSS2", "ERG"}
    np.testing.assert_allclose(emb.proba, lm.booster.blend(torch.softmax(logits[rows], -1).numpy(), feats),
                               atol=1e-5)
    # and the new fusion counts: without it the embedding moves
    other = embed(NewPatient.model_validate(dict(body, fusions=["ERG-TMPRSS2"])), state)[0]
    assert np.abs(other.embeddings - emb.embeddings).max() > 1e-4


def test_not_profiled_is_not_none_found(api, state):
    clinical = {"CURRENT_AGE": 70.0}
    none_found = embed(NewPatient(clinical=clinical, copy_number_profiled=True, sv_profiled=True), state)[0]
    unmeasured = embed(NewPatient(clinical=clinical), state)[0]
    assert np.abs(none_found.embeddings - unmeasured.embeddings).max() > 1e-4
    page = api.post(f"/api/runs/{RUN}/new-patient/report",
                    json={"clinical": clinical, "copy_number_profiled": True}).text
    assert "<h3>Copy number (0)</h3><p>none found</p>" in page
    assert "<h3>Fusions (0)</h3><p class='note'>not profiled</p>" in page


# ---------------------------------------------------------------------------------- bad input


def test_bad_copy_number_and_fusions_get_a_422_naming_the_field_and_item(api):
    bad = {"copy_number": [{"gene": "AR", "value": 5}, "AR ampp", "PTEN", "<b> amp", {"gene": "MYC", "value": 2}],
           "copy_number_profiled": False,
           "fusions": ["TMPRSS2", "TMPRSS2-ERG", {"gene1": "ERG", "gene2": "<script>"}, "A::B::C"]}
    r = api.post(f"/api/runs/{RUN}/new-patient/similar", json=bad)
    assert r.status_code == 422
    locs = {tuple(e["loc"]): e["msg"] for e in r.json()["detail"]}
    assert set(locs) == {("body", "copy_number", 0), ("body", "copy_number", 1), ("body", "copy_number", 2),
                         ("body", "copy_number", 3), ("body", "copy_number_profiled"), ("body", "fusions", 0),
                         ("body", "fusions", 2), ("body", "fusions", 3)}
    assert "from -2 (deep deletion) to 2" in locs[("body", "copy_number", 0)]
    assert "'ampp' is not a copy-number call" in locs[("body", "copy_number", 1)]
    assert "contradicts" in locs[("body", "copy_number_profiled")]
    assert "TMPRSS2-ERG" in locs[("body", "fusions", 0)]
    # pydantic's own type errors name the item too, without echoing the value
    r = api.post(f"/api/runs/{RUN}/new-patient/similar", json={"copy_number": [{"gene": "AR", "valu": 2.125}]})
    assert r.status_code == 422 and "2.125" not in r.text
    assert {tuple(e["loc"][:3]) for e in r.json()["detail"]} == {("body", "copy_number", 0)}


# ---------------------------------------------------------------------------------- CLI and web form


def test_report_new_patient_file_carries_copy_number_and_fusions(api, trained, state, tmp_path):
    body = cohort_body(trained, state, _pick(trained, state))
    res, out = report_new_patient(trained.root, body, tmp_path)
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert "AR amplification" in page and body["fusions"][0] in page
    assert page.count("<tr>") == api.post(f"/api/runs/{RUN}/new-patient/report", json=body).text.count("<tr>")
    res, out = report_new_patient(trained.root, {"copy_number": ["AR twice"]}, tmp_path, "bad")
    assert res.exit_code == 2 and "copy_number.0" in res.output and "bad.yaml" in res.output
    assert not out.exists()


def _maf_of(data_dir: Path, pid: str, out: Path) -> Path:
    """The prostate MAF's header and the rows of ``pid``'s samples, as a small file."""
    src = data_dir / "prostate_msk_2024" / "data_mutations.txt"
    lines = src.read_text(encoding="utf-8").splitlines(keepends=True)
    header = next(i for i, x in enumerate(lines) if x.startswith("Hugo_Symbol"))
    col = lines[header].rstrip("\n").split("\t").index("Tumor_Sample_Barcode")
    rows = [x for x in lines[header + 1:] if x.split("\t")[col].startswith(pid + "-")]
    assert rows
    out.write_text("".join(lines[:header + 1] + rows), encoding="utf-8")
    return out


def test_form_shows_the_alteration_fields_and_reads_a_maf_upload(api, data_dir, trained, state, tmp_path):
    assert api.get(f"/api/runs/{RUN}").json()["alterations"] == ["copy_number", "fusions"]
    page = api.get(f"/ui/{RUN}/new").text
    assert 'id="copy_number"' in page and 'id="fusions"' in page and 'name="maf_file"' in page
    assert 'enctype="multipart/form-data"' in page
    pid = _pick(trained, state)
    maf = _maf_of(data_dir, pid, tmp_path / "case.maf")
    r = api.post(f"/ui/{RUN}/new", data={"copy_number": "AR amp", "fusions": "TMPRSS2-ERG", "k": "10"},
                 files={"maf_file": ("case.maf", maf.read_bytes(), "text/plain")})
    assert r.status_code == 200, r.text[:500]
    assert r.text.count("<tr>") > 10 and "AR amplification" in r.text and "TMPRSS2::ERG" in r.text
    body = NewPatient.model_validate({"maf": maf.read_text(), "copy_number": ["AR amp"], "fusions": ["TMPRSS2-ERG"]})
    api_ids = [n["id"] for n in api.post(f"/api/runs/{RUN}/new-patient/similar", json=body.model_dump()).json()
               ["neighbours"]]
    assert all(f">{i}<" in r.text for i in api_ids)  # the upload gives the API's neighbours
    # a broken MAF: the form comes back with the file, line and column named, the values kept
    text = maf.read_text().splitlines(keepends=True)
    header = next(i for i, x in enumerate(text) if x.startswith("Hugo_Symbol"))
    cols = text[header].split("\t")
    cut = text[header + 1].split("\t")[:cols.index("Tumor_Sample_Barcode")]  # a row cut short
    broken = "".join(text[:header + 2]) + "\t".join(cut) + "\n"
    r = api.post(f"/ui/{RUN}/new", data={"copy_number": "AR amp", "k": "7", "alive_at": "soon"},
                 files={"maf_file": ("bad <case>.maf", broken.encode(), "text/plain")})
    assert r.status_code == 422 and 'id="form-errors"' in r.text
    assert f"maf_file: bad__case_.maf, line {header + 3}" in r.text and "Tumor_Sample_Barcode" in r.text
    assert "alive_at: must be a number" in r.text  # every problem at once
    assert ">AR amp</textarea>" in r.text and 'name="k" type="number" min="1" max="500" value="7"' in r.text
    assert "<case>" not in r.text
    # a file over the service's body limit is refused before it is read
    r = api.post(f"/ui/{RUN}/new", data={"k": "10"},
                 files={"maf_file": ("big.maf", b"#" * (MAX_BODY_BYTES + 1), "text/plain")})
    assert r.status_code == 413


@pytest.mark.slow
def test_the_explanation_of_a_patient_with_a_fusion_new_to_the_cohort(api):
    body = {"clinical": {"CURRENT_AGE": 70.0}, "copy_number": ["AR amp"], "fusions": ["AR-PTEN", "TMPRSS2-ERG"]}
    r = api.post(f"/api/runs/{RUN}/new-patient/explanation", json=body, params={"steps": 4, "top": 100})
    assert r.status_code == 200, r.text
    rows = r.json()["attributions"]
    named = {(a["kind"], a["name"]) for a in rows if a["linked"]}
    assert ("gene", "AR") in named and ("fusion", "TMPRSS2::ERG") in named
    assert ("fusion", "AR::PTEN") not in {(a["kind"], a["name"]) for a in rows}  # the run's own nodes only


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
def test_new_patient_with_a_maf_file_and_alterations_in_chromium(server, data_dir, trained, state, tmp_path):
    from playwright.sync_api import sync_playwright

    maf = _maf_of(data_dir, _pick(trained, state), tmp_path / "case.maf")
    problems = []
    with sync_playwright() as p:
        browser, page = chromium_page(p, problems)
        page.goto(server.url + "/login")
        page.fill("#token", TOKEN)
        page.click("#login")
        page.goto(server.url + f"/ui/{RUN}/new")
        assert page.locator("fieldset#copy-number").is_visible() and page.locator("fieldset#fusion-list").is_visible()
        page.fill("#f-CURRENT_AGE", "68")
        page.set_input_files("#maf-file", str(maf))
        page.fill("#copy_number", "AR amp\nPTEN homdel")
        page.fill("#fusions", "TMPRSS2-ERG")
        page.click("#submit-new")
        assert page.locator("table.neighbours tbody tr").count() == 10
        text = page.inner_text("body")
        assert "AR amplification" in text and "TMPRSS2::ERG" in text
        page.click("#print-view")  # re-posts the body it was shown (the MAF's variants included)
        assert "print-view" in page.get_attribute("body", "class")
        assert page.locator("table.neighbours tbody tr").count() == 10
        browser.close()
    assert problems == []
