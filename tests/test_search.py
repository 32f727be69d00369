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
from conftest import indexed_copy
from graphonc.cli import app
from graphonc.errors import GraphoncError
from graphonc.graph import schema as S
from graphonc.graph.run import GraphRun
from graphonc.search.index import PatientIndex, embedding_matrix, load_index, read_embeddings
from graphonc.search.similar import CohortFacts, Filters, similar_new_patients, similar_patients



@pytest.fixture(scope="module")
def trained_run(metabric_trained, tmp_path_factory) -> GraphRun:
    """A copy of the session's trained METABRIC run (conftest) with its flat index."""
    return indexed_copy(metabric_trained[0], tmp_path_factory.mktemp("search"))


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
    assert {p.name for p in folder.iterdir()} == {"faiss.index", "ids.parquet", "index.json", "lineage.json"}
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


def test_one_query_matches_the_batch(trained_run):
    """`similar` for one patient must give what a batch of patients gives for it."""
    from graphonc.search.similar import neighbours

    idx = load_index(trained_run.root, device="cpu")
    pos = np.arange(0, idx.n, 97)
    x = idx.vectors(pos)
    raw_x = read_embeddings(trained_run.root).pipe(embedding_matrix)[pos]  # not unit length
    for own in (pos, np.full(len(pos), -1)):  # indexed patients (self excluded) and outsiders
        batch = neighbours(idx, x, 10, own)
        assert not (batch.rows == own[:, None]).any()  # no patient is its own neighbour
        for i in range(len(pos)):
            for q in (x[i:i + 1], raw_x[i:i + 1]):
                one = neighbours(idx, q, 10, own[i:i + 1])
                np.testing.assert_array_equal(one.rows, batch.rows[i:i + 1])
                np.testing.assert_allclose(one.scores, batch.scores[i:i + 1], atol=1e-6)
        assert list(idx.ids_at(batch.rows[0])) == [idx.ids[r] for r in batch.rows[0]]
    # an index smaller than k + 1: padded with −1 / NaN and None ids, same on both paths
    small = PatientIndex.build(x[:6], idx.ids[pos[:6]], "flat")
    one = neighbours(small, x[:1], 10, np.array([0]))
    both = neighbours(small, x[:2], 10, np.array([0, 1]))
    np.testing.assert_array_equal(one.rows, both.rows[:1])
    assert (one.rows[0, 5:] == -1).all() and np.isnan(one.scores[0, 5:]).all() and 0 not in one.rows
    assert list(small.ids_at(one.rows[0]))[5:] == [None] * 5
    # a query holding NaN is refused, alone or in a batch
    bad = x[:1].copy()
    bad[0, 3] = np.nan
    with pytest.raises(GraphoncError, match="NaN or infinite"):
        neighbours(idx, bad, 10)


def test_rows_path_matches_the_vector_path_on_every_index_kind(trained_run):
    """`similar --patient` queries with the patients' stored vectors, fetched by index row; it must
    return what querying with those vectors returns, on every kind."""
    from graphonc.search.similar import neighbours, neighbours_of_rows

    flat = load_index(trained_run.root, device="cpu")
    x = embedding_matrix(read_embeddings(trained_run.root))
    pos = np.arange(3, flat.n, 131)
    for kind in ("flat", "hnsw", "ivf", "ivfpq"):
        idx = flat if kind == "flat" else PatientIndex.build(x, flat.ids, kind)
        stored = idx.vectors(pos)  # unit length: stored so, or rescaled (ivfpq's approximations)
        np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-5)
        ref = neighbours(idx, stored, 10, pos)
        batch = neighbours_of_rows(idx, pos, 10)
        np.testing.assert_array_equal(batch.rows, ref.rows, err_msg=kind)
        np.testing.assert_allclose(batch.scores, ref.scores, atol=1e-5, err_msg=kind)
        assert not (batch.rows == pos[:, None]).any() and (batch.rows >= 0).all()
        for i in range(0, len(pos), 3):
            one = neighbours_of_rows(idx, pos[i:i + 1], 10)
            np.testing.assert_array_equal(one.rows, ref.rows[i:i + 1], err_msg=kind)
            np.testing.assert_allclose(one.scores, ref.scores[i:i + 1], atol=1e-5, err_msg=kind)
    with pytest.raises(GraphoncError, match="must lie in"):
        flat.vectors(np.array([0, flat.n]))
    with pytest.raises(GraphoncError, match="must lie in"):
        neighbours_of_rows(flat, np.array([-1]), 5)


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


# ----------------------------------------------------------------------------------- export


def test_export_round_trips(trained_run):
    from graphonc.export import export_embeddings, read_projector

    emb = read_embeddings(trained_run.root)
    x = embedding_matrix(emb)
    res = export_embeddings(trained_run.root, "parquet")
    back = pd.read_parquet(res.folder / "embeddings.parquet")
    assert back[S.ID].tolist() == emb[S.ID].tolist()
    np.testing.assert_array_equal(np.stack(back["embedding"].to_numpy()).astype(np.float32), x)
    labels = trained_run.nodes(S.PATIENT).set_index(S.ID)["label"]
    missing = lambda v: None if pd.isna(v) else v  # noqa: E731 (pandas 3 reads a null string as NaN, 2 as None)
    assert [missing(v) for v in back["label"]] == [missing(v) for v in labels.reindex(back[S.ID])]

    res = export_embeddings(trained_run.root, "npy")
    np.testing.assert_array_equal(np.load(res.folder / "embeddings.npy"), x)
    assert (res.folder / "ids.txt").read_text().split("\n")[:-1] == emb[S.ID].tolist()

    res = export_embeddings(trained_run.root, "projector")
    t, meta = read_projector(res.folder)
    np.testing.assert_allclose(t, x, rtol=1e-6, atol=1e-7)  # text with 7 significant digits
    assert meta[S.ID].tolist() == emb[S.ID].tolist()
    p = trained_run.nodes(S.PATIENT).set_index(S.ID).reindex(meta[S.ID])
    assert meta["label"].tolist() == ["" if pd.isna(v) else v for v in p["label"]]
    np.testing.assert_allclose(pd.to_numeric(meta["os_months"]), p["os_months"].astype(float))
    assert set(meta["survival_status"]) <= {"alive", "deceased", "unknown"}
    assert (meta["survival_status"] == "deceased").sum() == int((p["os_event"] == 1).sum())
    cfg = json.loads((res.folder / "projector_config.json").read_text())["embeddings"][0]
    assert cfg["tensorShape"] == list(x.shape) and 'metadata_path: "metadata.tsv"' in \
        (res.folder / "projector_config.pbtxt").read_text()


@pytest.mark.slow  # UMAP (numba compiles on first use)
def test_projection_plot_is_a_png(trained_run):
    from graphonc.export import projection_plot

    path = projection_plot(trained_run.root, "tsne", max_points=300)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp file left


def test_vector_index_names_are_validated():
    from graphonc.store.vector_index import vector_index_statement

    from graphonc.store.vector_index import vector_index_options

    stmt = vector_index_statement("patient_embedding", "embedding", 16)
    assert stmt.endswith("OPTIONS $options") and "`" not in stmt  # the configuration is a parameter
    assert vector_index_options(16)["indexConfig"] == {
        "vector.dimensions": 16, "vector.similarity_function": "cosine", "vector.quantization.enabled": False}
    for bad in ("x) DETACH DELETE n //", "1abc", "", "a\u0060b", "é"):
        with pytest.raises(GraphoncError, match="cannot be used in a Cypher query"):
            vector_index_statement(bad, "embedding", 16)
    with pytest.raises(GraphoncError, match="cannot be used in a Cypher query"):
        vector_index_statement("ok", "emb`}) RETURN 1 //", 16)
    for dim in (0, -3, 5000, 16.5, "16", True):
        with pytest.raises(GraphoncError, match="dimension"):
            vector_index_statement("ok", "embedding", dim)


@pytest.mark.neo4j
def test_neo4j_vector_index_agrees_with_faiss(trained_run, neo4j_settings):
    from graphonc.export import export_embeddings
    from graphonc.store.vector_index import vector_query
    from graphonc.store.neo4j_load import load_run

    load_run(trained_run, neo4j_settings)
    res = export_embeddings(trained_run.root, "neo4j", neo4j=neo4j_settings, k=10, model_name="test-gnn",
                            index_name="test_patient_embedding", check_sample=50)
    d = res.details
    emb = read_embeddings(trained_run.root)
    assert d["patients_updated"] == len(emb) and d["similar_to_written"] == 10 * len(emb)
    assert d["overlap_at_k_vs_faiss"] >= 0.9
    idx = PatientIndex.build(embedding_matrix(emb), emb[S.ID], "flat")
    x = embedding_matrix(emb)
    with neo4j_settings.driver() as driver:
        # the stored property is the embedding
        rec = driver.execute_query("MATCH (p:Patient {cohort: $c, id: $id}) RETURN p.embedding AS e",
                                   c=trained_run.cohort, id=emb[S.ID].iloc[7]).records
        np.testing.assert_allclose(np.array(rec[0]["e"], np.float32), x[7], rtol=1e-6)
        # the index exists with the configured dimension and cosine
        info = driver.execute_query("SHOW VECTOR INDEXES YIELD name, options WHERE name = $n RETURN options",
                                    n="test_patient_embedding").records[0]["options"]["indexConfig"]
        assert info["vector.dimensions"] == x.shape[1] and info["vector.similarity_function"].lower() == "cosine"
        # queryNodes vs exact search, independently of the export's own check: overlap@10 >= 0.9
        rng = np.random.default_rng(1)
        sample = rng.choice(len(emb), 40, replace=False)
        _, truth = idx.search(x[sample], 11)
        overlaps = []
        for i, row in zip(sample, truth):
            pid = emb[S.ID].iloc[i]
            want = [idx.ids[r] for r in row if idx.ids[r] != pid][:10]
            got = [g for g, _ in vector_query(driver, "neo4j", trained_run.cohort, "test_patient_embedding",
                                              x[i] / np.linalg.norm(x[i]), 10, exclude=pid)]
            overlaps.append(len(set(got) & set(want)) / 10)
        assert np.mean(overlaps) >= 0.9, np.mean(overlaps)
        # SIMILAR_TO holds the FAISS neighbours with rank and score
        pid = emb[S.ID].iloc[int(sample[0])]
        rels = driver.execute_query(
            "MATCH (:Patient {cohort: $c, id: $id})-[r:SIMILAR_TO {model: $m}]->(b) RETURN b.id AS id, r.rank AS rank,"
            " r.score AS score ORDER BY r.rank", c=trained_run.cohort, id=pid, m="test-gnn").records
        assert [r["rank"] for r in rels] == list(range(1, 11))
        want = [idx.ids[r] for r in truth[0] if idx.ids[r] != pid][:10]
        assert [r["id"] for r in rels] == want
    # exporting again keeps the index and replaces (not duplicates) SIMILAR_TO
    again = export_embeddings(trained_run.root, "neo4j", neo4j=neo4j_settings, k=10, model_name="test-gnn",
                              index_name="test_patient_embedding", check_sample=0)
    assert again.details["vector_index_action"] == "kept"
    with neo4j_settings.driver() as driver:
        n = driver.execute_query("MATCH (:Patient {cohort: $c})-[r:SIMILAR_TO {model: 'test-gnn'}]->() "
                                 "RETURN count(r) AS n", c=trained_run.cohort).records[0]["n"]
    assert n == 10 * len(emb)


# ----------------------------------------------------------------------------------- report


@pytest.mark.slow  # renders the page with explanations in headless Chromium
def test_report_is_self_contained_and_renders_without_console_errors(trained_run, tmp_path):
    import re
    import xml.etree.ElementTree as ET

    from PIL import Image

    from graphonc.report.browser import screenshot

    out = tmp_path / "board" / "MB-0005.html"
    res = CliRunner().invoke(app, ["-q", "report", "--run", str(trained_run.root), "--patient", "MB-0005",
                                   "--out", str(out), "-k", "8"])
    assert res.exit_code == 0, res.output
    page = out.read_text()
    # self-contained: no external scripts, styles, images, fonts or imports
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, re.I)
    assert "@import" not in page and "<script" not in page.lower() and "<link" not in page.lower()
    assert page.count("<svg class='bars'") == 2  # the explanation's bars: risk and diagnosis
    assert page.count("<svg class='km'") == 2  # Kaplan-Meier: overall and disease-specific survival
    for fig in re.findall(r"<svg.*?</svg>", page, re.S):  # every figure is well-formed XML
        ET.fromstring(fig)
    for section in ("Query patient", "most similar patients", "Survival of the neighbours",
                    "Treatment outcomes among the neighbours", "Why the model says this"):
        assert section in page, section
    neighbours = similar_patients(trained_run.root, ["MB-0005"], k=8, device="cpu")[0].neighbours
    assert all(f"<td>{n.id}</td>" in page for n in neighbours)
    assert "PIK3CA:p.H1047R" in page  # the query's own mutation in its profile
    # rendered by headless Chromium: a non-blank screenshot, no console messages
    shot = screenshot(out, tmp_path / "shot.png", 1400, 3000)
    assert shot.returncode == 0 and shot.console == []
    im = Image.open(shot.png).convert("L")
    assert im.size == (1400, 3000)
    assert np.asarray(im).std() > 10  # not a blank page
    # the checker does see console errors (a page with a failing script)
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><p>x</p><script>console.error('broken'); missing();</script></body></html>")
    assert any("broken" in m for m in screenshot(bad, tmp_path / "bad.png", 400, 300).console)


def test_report_for_unknown_patient_is_a_clear_error(trained_run, tmp_path):
    res = CliRunner().invoke(app, ["report", "--run", str(trained_run.root), "--patient", "MB-00O5",
                                   "--out", str(tmp_path / "r.html")])
    assert res.exit_code == 2 and "Did you mean 'MB-0005'" in res.output
    assert not (tmp_path / "r.html").exists()


# ----------------------------------------------------------------------------------- evaluate-similarity


@pytest.mark.slow  # GNN fits and SNF per fold
def test_evaluate_similarity_is_leakage_free_and_scores_what_it_claims(metabric_run, tmp_path):
    from graphonc.search.quality import evaluate_similarity_stage

    root = tmp_path / "metabric"
    shutil.copytree(metabric_run.root, root, ignore=shutil.ignore_patterns("model", "index", "similarity"))
    k = 5
    res = evaluate_similarity_stage(root, folds=2, k=k, subsample=300, hidden=16, embedding_dim=16, epochs=2,
                                    patience=10)
    pf = res.per_fold
    methods = ["gnn", "mlp", "knn_features", "jaccard_genes", "snf", "random"]
    assert sorted(map(tuple, pf[["model", "fold"]].values.tolist())) == sorted((m, f) for m in methods for f in (0, 1))
    assert {"per_fold.parquet", "summary.md", "summary.json", "folds.csv", "neighbours.parquet",
            "comparison.json"} <= {p.name for p in (root / "similarity").iterdir()}
    nb = pd.read_parquet(root / "similarity" / "neighbours.parquet")
    plan = pd.read_csv(root / "similarity" / "folds.csv")
    folds = [{"train": sorted(plan.loc[plan["fold"] != f, "patient_id"]),
              "test": sorted(plan.loc[plan["fold"] == f, "patient_id"])} for f in (0, 1)]
    run = GraphRun.open(root)
    p = run.nodes(S.PATIENT).set_index(S.ID)
    for f, fold in enumerate(folds):
        train, test = set(fold["train"]), set(fold["test"])
        assert not train & test and len(train | test) == 300
        part = nb[nb["fold"] == f]
        assert set(part["query"]) == test and set(part["neighbour"]) <= train  # never a held-out patient
        assert (part.groupby(["model", "query"]).size() == k).all()
        # the reported precision@k is the share of same-label neighbours, recomputed here
        for m in methods:
            sub = part[part["model"] == m]
            same = (p.loc[sub["query"], "label"].to_numpy() == p.loc[sub["neighbour"], "label"].to_numpy()).mean()
            reported = pf[(pf["model"] == m) & (pf["fold"] == f)]["precision_at_k"].item()
            assert reported == pytest.approx(same)
    # Jaccard neighbours really have the highest Jaccard similarity of mutated genes (raw edge tables)
    has, in_gene = run.edges(S.HAS_MUTATION), run.edges(S.IN_GENE)
    gene = dict(zip(in_gene[S.SRC], in_gene[S.DST]))
    sets = {}
    for src, dst in zip(has[S.SRC], has[S.DST]):
        sets.setdefault(src, set()).add(gene[dst])

    def jac(a, b):
        a, b = sets.get(a, set()), sets.get(b, set())
        return len(a & b) / len(a | b) if a | b else 0.0

    jn = nb[(nb["model"] == "jaccard_genes") & (nb["fold"] == 0)]
    for q in sorted(set(jn["query"]))[:20]:
        best = sorted((jac(q, t) for t in folds[0]["train"]), reverse=True)[k - 1]
        assert all(jac(q, n) >= best for n in jn[jn["query"] == q]["neighbour"])
    # raw clinical + mutation features find same-subtype neighbours well above chance on METABRIC
    mean = pf.groupby("model")[["precision_at_k", "c_index"]].mean()
    assert mean.loc["knn_features", "precision_at_k"] > mean.loc["random", "precision_at_k"] + 0.05
    assert pf["c_index"].between(0, 1).all() and pf["precision_at_k"].between(0, 1).all()


def test_neighbour_ranks_do_not_depend_on_row_position_or_threads(metabric_run):
    """Patients with the same feature row are one tie, broken by id, wherever they sit in the
    database and however many threads BLAS uses (the MLP's scores once moved between runs so)."""
    from threadpoolctl import threadpool_limits

    from graphonc.model_config import ModelConfig
    from graphonc.search.quality import FeatureSpace, cosine_neighbours

    ids = sorted(metabric_run.nodes(S.PATIENT)[S.ID])[:400]
    x = FeatureSpace(ModelConfig()).fit(metabric_run, ids).predict(metabric_run, ids).embedding
    # the database: 300 real rows, then 100 of them again under later ids (twins)
    db = np.concatenate([x[:300], x[:100]])
    db_ids = np.array([f"a{i:03d}" for i in range(300)] + [f"b{i:03d}" for i in range(100)], dtype=object)
    q = x[300:]
    runs = []
    for threads in (1, 2):
        with threadpool_limits(threads):
            runs.append(cosine_neighbours(db, q, 10, db_ids))
    np.testing.assert_array_equal(runs[0], runs[1])
    ranked = db_ids[runs[0]]
    for row in ranked.tolist():  # a twin ranks after its original (the lower id), never before it
        for j, name in enumerate(row):
            if name.startswith("b"):
                assert "a" + name[1:] in row[:j]


def test_search_ranks_twins_by_id_in_one_query_and_in_a_batch(trained_run, monkeypatch):
    """The product's search (FAISS, float32, BLAS from 20 queries up) ranks patients with the same
    embedding by id, wherever they sit in the index, and a batch ranks as one query does."""
    from graphonc.search.similar import neighbours

    idx = load_index(trained_run.root, device="cpu")
    x = idx.vectors(np.arange(min(idx.n, 400)))
    # 300 real embeddings, then 100 of them again at later rows under *lower* ids: row order
    # and id order disagree, so a tie broken by position shows
    db = np.concatenate([x[:300], x[:100]])
    db_ids = np.array([f"b{i:03d}" for i in range(300)] + [f"a{i:03d}" for i in range(100)], dtype=object)
    twins = PatientIndex.build(db, db_ids, "flat")
    q = np.concatenate([x[300:], x[:50]])  # outsiders, and queries that have twins themselves
    batch = neighbours(twins, q, 10)
    for i, row in enumerate(db_ids[batch.rows].tolist()):
        for j, name in enumerate(row):  # an original ranks after its twin (the lower id), never before
            if name.startswith("b") and int(name[1:]) < 100:
                assert "a" + name[1:] in row[:j], (i, row)
        one = neighbours(twins, q[i:i + 1], 10)
        np.testing.assert_array_equal(one.rows[0], batch.rows[i])
        np.testing.assert_array_equal(one.scores[0], batch.scores[i])
    # rescoring a few queries at a time (what bounds its memory on large batches) changes nothing
    import graphonc.search.index as index_module

    monkeypatch.setattr(index_module, "RESCORE_BLOCK", 3 * 20 * twins.dim)
    blocks = neighbours(twins, q, 10)
    np.testing.assert_array_equal(blocks.rows, batch.rows)
    np.testing.assert_array_equal(blocks.scores, batch.scores)
