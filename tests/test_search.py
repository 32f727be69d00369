"""Similar-patient search on real METABRIC: index, neighbours, reasons checked against the raw files, filters."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from cohort_files import write_study_subset
from graphonc.cli import app
from graphonc.errors import GraphoncError
from graphonc.graph import schema as S
from graphonc.graph.run import GraphRun
from graphonc.model.stages import train_stage
from graphonc.search.index import PatientIndex, build_index, embedding_matrix, load_index, read_embeddings
from graphonc.search.similar import CohortFacts, Filters, similar_new_patients, similar_patients

FAST = dict(hidden=32, embedding_dim=16, epochs=6, patience=100)


@pytest.fixture(scope="module")
def trained_run(metabric_run, tmp_path_factory) -> GraphRun:
    """A copy of the METABRIC run with a small model (6 epochs) and its flat index."""
    root = tmp_path_factory.mktemp("search") / "metabric"
    shutil.copytree(metabric_run.root, root, ignore=shutil.ignore_patterns("model", "index", "eval"))
    train_stage(root, **FAST)
    build_index(root, "auto", device="cpu")
    return GraphRun.open(root)


def _read_cbio(path):
    text = path.read_text().replace("\r\n", "\n").replace("\r", "\n")
    lines = [ln for ln in text.split("\n") if ln and not ln.startswith("#")]
    header = lines[0].split("\t")
    return pd.DataFrame([ln.split("\t") for ln in lines[1:]], columns=header)


@pytest.fixture(scope="module")
def raw(data_dir):
    """The raw METABRIC files, read independently of graphonc: clinical per patient, MAF rows per patient."""
    study = data_dir / "metabric"
    pat = _read_cbio(study / "data_clinical_patient.txt").set_index("PATIENT_ID")
    smp = _read_cbio(study / "data_clinical_sample.txt")
    clin = pat.join(smp.drop_duplicates("PATIENT_ID").set_index("PATIENT_ID"), rsuffix="_sample")
    maf = pd.read_csv(study / "data_mutations_extended.txt", sep="\t", comment="#", dtype=str,
                      usecols=["Hugo_Symbol", "Tumor_Sample_Barcode", "HGVSp_Short"])
    maf = maf.merge(smp[["SAMPLE_ID", "PATIENT_ID"]], left_on="Tumor_Sample_Barcode", right_on="SAMPLE_ID")
    return clin, maf


def test_each_patient_is_its_own_nearest_neighbour(trained_run):
    idx = load_index(trained_run.root, device="cpu")
    assert idx.kind == "flat" and idx.n == len(trained_run.nodes(S.PATIENT))
    x = idx.vectors(np.arange(idx.n))
    scores, rows = idx.search(x, 1)
    self_hit = rows[:, 0] == np.arange(idx.n)
    # where another patient comes first it must be a numerical twin (cosine 1 with the query)
    twin = np.einsum("ij,ij->i", x[~self_hit], x[rows[~self_hit, 0]])
    assert np.all(twin > 1 - 1e-5)
    assert self_hit.mean() > 0.9
    np.testing.assert_allclose(scores[self_hit, 0], 1.0, atol=1e-5)


def test_index_reloads_without_rebuilding_and_refuses_stale_embeddings(trained_run, tmp_path):
    folder = trained_run.root / "index"
    assert {p.name for p in folder.iterdir()} == {"faiss.index", "ids.parquet", "index.json"}
    before = (folder / "faiss.index").stat().st_mtime_ns
    idx = load_index(trained_run.root, device="cpu")
    assert (folder / "faiss.index").stat().st_mtime_ns == before
    emb = read_embeddings(trained_run.root)
    assert list(idx.ids) == emb[S.ID].tolist()
    fresh = PatientIndex.build(embedding_matrix(emb), emb[S.ID], "flat")
    q = embedding_matrix(emb)[:50]
    s1, r1 = idx.search(q, 10)
    s2, r2 = fresh.search(q, 10)
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_allclose(s1, s2, rtol=0, atol=1e-6)
    # a retrained model makes the saved index stale: refused with the fix
    copy = tmp_path / "run"
    shutil.copytree(trained_run.root, copy)
    emb2 = emb.copy()
    emb2["embedding"] = [v[::-1].copy() for v in emb2["embedding"]]
    from graphonc.graph.run import write_parquet
    write_parquet(emb2, copy / "model" / "embeddings.parquet")
    with pytest.raises(GraphoncError, match="graphonc index"):
        load_index(copy)


def test_approximate_indexes_recall_exact_neighbours(trained_run):
    emb = read_embeddings(trained_run.root)
    x = embedding_matrix(emb)
    exact = PatientIndex.build(x, emb[S.ID], "flat")
    _, truth = exact.search(x, 10)
    for kind, floor in (("hnsw", 0.95), ("ivf", 0.8)):
        approx = PatientIndex.build(x, emb[S.ID], kind)
        _, got = approx.search(x, 10)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)])
        assert recall >= floor, (kind, recall)


def _norm(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_neighbours_are_the_exact_top_k_and_reasons_hold_in_the_raw_files(trained_run, raw):
    clin, maf = raw
    facts = CohortFacts(trained_run)
    with_muts = sorted(p for p, m in facts.mut_of.items() if len(m) >= 4)[:25]
    results = similar_patients(trained_run.root, with_muts, k=10, facts=facts, device="cpu")
    emb = read_embeddings(trained_run.root)
    x = _norm(embedding_matrix(emb))
    ids = emb[S.ID].to_numpy()
    cfg = yaml.safe_load((trained_run.root / "config.yaml").read_text())
    aliases = set((cfg.get("genes") or {}).get("aliases", {}).values())
    treatments = {t["name"]: t for t in cfg["treatments"]}
    checked = {"mutation": 0, "gene": 0, "categorical": 0, "treatment": 0}
    for res in results:
        q = res.query.id
        assert len(res.neighbours) == 10 and q not in [n.id for n in res.neighbours]
        # the same ten as a brute-force cosine ranking (ties aside)
        sims = x @ x[ids == q][0]
        sims[ids == q] = -np.inf
        kth = np.sort(sims)[-10]
        assert all(sims[ids == n.id][0] >= kth - 1e-5 for n in res.neighbours)
        assert [n.rank for n in res.neighbours] == list(range(1, 11))
        assert all(a.score >= b.score - 1e-6 for a, b in zip(res.neighbours, res.neighbours[1:]))
        for n in res.neighbours:
            assert n.label == (None if clin.loc[n.id, "CLAUDIN_SUBTYPE"] in ("", "NC") else
                               clin.loc[n.id, "CLAUDIN_SUBTYPE"])
            for m in n.shared_mutations:  # present in the raw MAF of both patients
                gene, change = m.split(":", 1)
                for pid in (q, n.id):
                    rows = maf[(maf["PATIENT_ID"] == pid) & (maf["HGVSp_Short"] == change)]
                    assert ((rows["Hugo_Symbol"] == gene) | (gene in aliases)).any(), (pid, m)
                checked["mutation"] += 1
            for g in n.shared_genes:
                assert g["role"] == facts.gene_role[g["gene"]]
                for pid in (q, n.id):
                    assert (maf["PATIENT_ID"] == pid).any()
                checked["gene"] += 1
            for c in n.clinical_similar + n.clinical_different:
                if c["column"] in facts.categorical:
                    a, b = clin.loc[q, c["column"]], clin.loc[n.id, c["column"]]
                    assert (a == b) == (c in n.clinical_similar), (q, n.id, c)
                    assert (a, b) == (c["query"], c["neighbour"])
                    checked["categorical"] += 1
            for name, t in treatments.items():
                col = clin.loc[n.id, t["column"]]
                received = col in t.get("received_values", ["YES"])
                assert (name in n.treatments) == received, (n.id, name, col)
                checked["treatment"] += 1
            months, status = clin.loc[n.id, "OS_MONTHS"], clin.loc[n.id, "OS_STATUS"]
            assert n.os_months == (pytest.approx(float(months)) if months else None)
            assert n.os_event == ({"DECEASED": 1.0, "LIVING": 0.0}.get(status.split(":")[-1]) if status else None)
    assert min(checked.values()) > 0, checked


def test_filters_hold_and_still_return_k(trained_run, raw):
    clin, _ = raw
    queries = ["MB-0005", "MB-0010", "MB-0035", "MB-2970"]
    f = Filters(same_label=True, treated_with=("chemotherapy",), alive_at_months=120.0)
    results = similar_patients(trained_run.root, queries, k=10, filters=f, device="cpu")
    emb = read_embeddings(trained_run.root)
    x = _norm(embedding_matrix(emb))
    ids = emb[S.ID].to_numpy()
    for res in results:
        q = res.query.id
        lab = clin.loc[q, "CLAUDIN_SUBTYPE"]
        ok = ((clin.reindex(ids)["CLAUDIN_SUBTYPE"] == lab) & (clin.reindex(ids)["CHEMOTHERAPY"] == "YES")
              & (pd.to_numeric(clin.reindex(ids)["OS_MONTHS"]) >= 120)).to_numpy() & (ids != q)
        expected = min(10, int(ok.sum()))
        assert expected >= 3, (q, ok.sum())  # the filters leave candidates, many fewer than the cohort
        assert len(res.neighbours) == expected
        sims = np.where(ok, x @ x[ids == q][0], -np.inf)
        want = ids[np.argsort(-sims, kind="stable")[:expected]]
        assert sorted(n.id for n in res.neighbours) == sorted(want)
        for n in res.neighbours:
            assert clin.loc[n.id, "CLAUDIN_SUBTYPE"] == lab and clin.loc[n.id, "CHEMOTHERAPY"] == "YES"
            assert float(clin.loc[n.id, "OS_MONTHS"]) >= 120
    # unfiltered neighbours of the same queries do break the filters (the filters change something)
    plain = similar_patients(trained_run.root, queries, k=10, device="cpu")
    assert any("chemotherapy" not in n.treatments for r in plain for n in r.neighbours)


def test_unknown_patient_and_treatment_are_clear_errors(trained_run):
    with pytest.raises(GraphoncError, match=r"'MB-00x5' is not in .*Did you mean 'MB-0005'"):
        similar_patients(trained_run.root, ["MB-00x5"], device="cpu")
    with pytest.raises(GraphoncError, match=r"unknown treatment 'chemo'.*Did you mean 'chemotherapy'"):
        similar_patients(trained_run.root, ["MB-0005"], filters=Filters(treated_with=("chemo",)), device="cpu")
    res = CliRunner().invoke(app, ["similar", "--run", str(trained_run.root), "-p", "MB-005"])
    assert res.exit_code == 2 and "MB-0005" in res.output


def test_similar_cli_json_and_table(trained_run):
    runner = CliRunner()
    res = runner.invoke(app, ["-q", "similar", "--run", str(trained_run.root), "-p", "MB-0005", "-k", "3", "--json",
                              "--same-label"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out[0]["query"]["id"] == "MB-0005" and len(out[0]["neighbours"]) == 3
    assert all(n["label"] == out[0]["query"]["label"] for n in out[0]["neighbours"])
    assert {"shared_mutations", "shared_genes", "shared_pathways", "clinical_similar", "clinical_different",
            "treatments", "os_months", "os_event"} <= set(out[0]["neighbours"][0])
    res = runner.invoke(app, ["similar", "--run", str(trained_run.root), "-p", "MB-0005", "-k", "3"])
    assert res.exit_code == 0 and "most similar to MB-0005" in res.output


def test_new_patient_is_embedded_inductively_and_finds_its_cohort_twin(trained_run, data_dir, tmp_path):
    """A patient the model never trained on, given again as a new study, lands on its own cohort row."""
    emb = read_embeddings(trained_run.root)
    mutated = CohortFacts(trained_run).mut_of
    held = [i for i in emb.loc[emb["split"] == "unlabelled", S.ID] if i in mutated][:2]
    study = write_study_subset(data_dir / "metabric", tmp_path / "new", set(held))
    new = similar_new_patients(trained_run.root, study, k=5, device="cpu")
    cohort = similar_patients(trained_run.root, held, k=4, device="cpu")
    for r_new, r_old in zip(new, cohort):
        assert r_new.query.new and r_new.query.id == r_old.query.id
        assert r_new.neighbours[0].id == r_old.query.id and r_new.neighbours[0].score == pytest.approx(1, abs=1e-5)
        assert [n.id for n in r_new.neighbours[1:]] == [n.id for n in r_old.neighbours]
        assert r_new.query.mutations == r_old.query.mutations
        assert [n.shared_mutations for n in r_new.neighbours[1:]] == [n.shared_mutations for n in r_old.neighbours]
