"""The Neo4j store against the real server (started by this test session, see conftest).

Counts in Neo4j equal the Parquet run; every cypher/ file agrees with pandas on the same
tables; loads are idempotent and resumable; write-back replaces; parameters are data.
"""
from __future__ import annotations

import json
import math
import shutil
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import neo4j
import numpy as np
import pandas as pd
import pytest

from graphonc.errors import GraphoncError
from graphonc.graph import schema as S
from graphonc.graph.run import GraphRun, sha256_file, write_parquet
from graphonc.store.cypher_files import CypherFile
from graphonc.identifiers import safe_key
from graphonc.store.neo4j_load import (SEP, _cohort_lock, _edge_table, _node_table, encode_column, iter_counts,
                                       load_run, schema_statements, write_patient_properties, write_similar)

from conftest import REPO

pytestmark = pytest.mark.neo4j
CYPHER = REPO / "cypher"


@pytest.fixture(scope="module")
def loaded(neo4j_settings, metabric_run):
    drv = neo4j_settings.driver()
    report = load_run(metabric_run, neo4j_settings, batch_size=5000)
    yield drv, report
    drv.close()


def _tables(run):
    t = {label: run.nodes(label) for label in run.node_types()}
    t.update({e[1]: run.edges(e) for e in run.edge_types()})
    return t


def _query(drv, name, **params):
    cf = CypherFile.read(CYPHER / f"{name}.cypher")
    cols, rows = cf.run(drv, cf.bind({k: str(v) for k, v in params.items()}))
    return pd.DataFrame(rows, columns=cols)


def _counts(drv, cohort):
    return dict(iter_counts(drv, cohort))


def test_counts_match_parquet(loaded, metabric_run):
    drv, report = loaded
    counts = _counts(drv, "metabric")
    for label, n in metabric_run.manifest["counts"]["nodes"].items():
        assert counts[label] == n, label
    for edge, n in metabric_run.manifest["counts"]["edges"].items():
        assert counts[edge] == n, edge
    assert report.total == sum(metabric_run.manifest["counts"]["nodes"].values()) + \
        sum(metabric_run.manifest["counts"]["edges"].values())


def test_properties_round_trip(loaded, metabric_run):
    drv, _ = loaded
    rec = drv.execute_query("MATCH (p:Patient {cohort: $c, id: $id}) RETURN p", c="metabric", id="MB-0002").records
    p = dict(rec[0]["p"])
    row = metabric_run.nodes(S.PATIENT).set_index("id").loc["MB-0002"]
    assert p["label"] == row["label"] and math.isclose(p["os_months"], row["os_months"])
    assert p["AGE_AT_DIAGNOSIS"] == row["AGE_AT_DIAGNOSIS"] and p["sequenced"] is True
    # missing values are absent properties, not NaN strings
    missing = [c for c in row.index if pd.isna(row[c])]
    assert all(c not in p for c in missing)


def test_schema_file_matches_loader():
    cf = CypherFile.read(CYPHER / "schema.cypher")
    assert cf.statements == schema_statements()


def test_every_cypher_file_has_header_and_params():
    for path in sorted(CYPHER.glob("*.cypher")):
        cf = CypherFile.read(path)
        assert cf.title and cf.description, path.name
        if path.stem != "schema":
            assert "cohort" in cf.params, path.name
    assert len([p for p in CYPHER.glob("*.cypher") if p.stem != "schema"]) >= 8


def test_patients_sharing_mutation(loaded, metabric_run):
    drv, _ = loaded
    t = _tables(metabric_run)
    has = t["HAS_MUTATION"]
    mine = set(has.loc[has["src"] == "MB-0002", "dst"])
    other = has[has["dst"].isin(mine) & (has["src"] != "MB-0002")].groupby("src").size()
    got = _query(drv, "patients_sharing_mutation", cohort="metabric", patient_id="MB-0002", limit=10000)
    assert dict(zip(got["patient"], got["n_shared"])) == other.to_dict()
    assert list(got["n_shared"]) == sorted(got["n_shared"], reverse=True)


def _gene_of(t):
    return t["IN_GENE"].set_index("src")["dst"]


def test_top_pathways_in_subtype(loaded, metabric_run):
    drv, _ = loaded
    t = _tables(metabric_run)
    pats = t["Patient"]
    basal = set(pats.loc[pats["label"] == "Basal", "id"])
    has = t["HAS_MUTATION"][t["HAS_MUTATION"]["src"].isin(basal)]
    pg = pd.DataFrame({"p": has["src"], "g": has["dst"].map(_gene_of(t))}).drop_duplicates()
    pp = pg.merge(t["IN_PATHWAY"], left_on="g", right_on="src")[["p", "dst"]].drop_duplicates()
    expected = pp.groupby("dst").size().sort_values(ascending=False)
    got = _query(drv, "top_pathways_in_subtype", cohort="metabric", label="Basal", limit=15)
    assert len(got) == 15
    assert all(expected[pw] == n for pw, n in zip(got["pathway"], got["n_patients"]))
    assert got["n_patients"].iloc[0] == expected.iloc[0]
    assert (got["n_group"] == len(basal)).all()


def test_survival_by_gene(loaded, metabric_run):
    drv, _ = loaded
    t = _tables(metabric_run)
    pats = t["Patient"].set_index("id")
    covered = set(t["SEQUENCED_WITH"].loc[t["SEQUENCED_WITH"]["dst"].isin(
        set(t["COVERS"].loc[t["COVERS"]["dst"] == "TP53", "src"])), "src"])
    has = t["HAS_MUTATION"]
    mutated = set(has.loc[has["dst"].map(_gene_of(t)) == "TP53", "src"])
    surv = pats[pats["os_months"].notna() & pats.index.isin(covered)]
    got = _query(drv, "survival_by_gene", cohort="metabric", gene="TP53").set_index("status")
    for status, grp in (("mutated", surv[surv.index.isin(mutated)]), ("wild type", surv[~surv.index.isin(mutated)])):
        assert got.loc[status, "n"] == len(grp)
        assert got.loc[status, "events"] == int(grp["os_event"].sum())
        assert got.loc[status, "mean_months"] == pytest.approx(grp["os_months"].mean(), abs=0.01)
        assert got.loc[status, "median_months"] == pytest.approx(grp["os_months"].median(), abs=0.01)


def test_pathway_neighbours(loaded, metabric_run):
    drv, _ = loaded
    t = _tables(metabric_run)
    has = t["HAS_MUTATION"]
    pg = pd.DataFrame({"p": has["src"], "g": has["dst"].map(_gene_of(t))}).drop_duplicates()
    pp = pg.merge(t["IN_PATHWAY"], left_on="g", right_on="src")[["p", "dst"]].drop_duplicates()
    mine = set(pp.loc[pp["p"] == "MB-0002", "dst"])
    expected = pp[pp["dst"].isin(mine) & (pp["p"] != "MB-0002")].groupby("p").size()
    got = _query(drv, "pathway_neighbours", cohort="metabric", patient_id="MB-0002", limit=100000)
    assert dict(zip(got["patient"], got["shared_pathways"])) == expected.to_dict()
    assert (got["query_pathways"] == len(mine)).all()


def test_co_mutated_genes(loaded, metabric_run):
    drv, _ = loaded
    t = _tables(metabric_run)
    has = t["HAS_MUTATION"]
    pg = pd.DataFrame({"p": has["src"], "g": has["dst"].map(_gene_of(t))}).drop_duplicates()
    carriers = set(pg.loc[pg["g"] == "PIK3CA", "p"])
    expected = pg[pg["p"].isin(carriers) & (pg["g"] != "PIK3CA")].groupby("g").size()
    got = _query(drv, "co_mutated_genes", cohort="metabric", gene="PIK3CA", limit=1000)
    assert dict(zip(got["gene"], got["n_both"])) == expected.to_dict()


def test_most_mutated_genes(loaded, metabric_run):
    drv, _ = loaded
    t = _tables(metabric_run)
    genes = t["Gene"].set_index("id")
    got = _query(drv, "most_mutated_genes", cohort="metabric", limit=10)
    top = genes["n_patients_mutated"].sort_values(ascending=False)
    assert list(got["gene"][:2]) == list(top.index[:2])  # PIK3CA, TP53
    assert all(genes.loc[g, "n_patients_mutated"] == n for g, n in zip(got["gene"], got["n_mutated"]))
    assert (got["n_assayed"] == 2509).all()


def test_patient_profile(loaded, metabric_run):
    drv, _ = loaded
    t = _tables(metabric_run)
    has = t["HAS_MUTATION"]
    got = _query(drv, "patient_profile", cohort="metabric", patient_id="MB-0002")
    assert set(got["mutation"]) == set(has.loc[has["src"] == "MB-0002", "dst"])
    muts = t["Mutation"].set_index("id")
    for m, other in zip(got["mutation"], got["other_carriers"]):
        assert other == muts.loc[m, "n_patients"] - 1


def test_treatment_outcomes(loaded, metabric_run):
    drv, _ = loaded
    t = _tables(metabric_run)
    pats = t["Patient"].set_index("id")
    rec = t["RECEIVED"].join(pats, on="src")
    rec = rec[rec["os_months"].notna()]
    for label in (None, "LumA"):
        sub = rec if label is None else rec[rec["label"] == label]
        exp = sub.groupby("dst").agg(n=("src", "size"), events=("os_event", "sum"), mean=("os_months", "mean"))
        params = {"cohort": "metabric"} | ({"label": label} if label else {})
        got = _query(drv, "treatment_outcomes", **params).set_index("treatment")
        assert list(got.index) == sorted(exp.index)
        assert (got["n"] == exp["n"]).all() and (got["events"] == exp["events"].astype(int)).all()
        assert np.allclose(got["mean_months"], exp["mean"], atol=0.01)


def test_hotspot_mutations(loaded, metabric_run):
    drv, _ = loaded
    got = _query(drv, "hotspot_mutations", cohort="metabric", min_patients=20, limit=100)
    muts = metabric_run.nodes(S.MUTATION)
    exp = muts[muts["n_patients"] >= 20].sort_values(["n_patients", "id"], ascending=[False, True])
    assert list(got["mutation"]) == list(exp["id"])
    assert got["mutation"].iloc[0] == "PIK3CA:p.H1047R" and got["carriers"].iloc[0] == 424


def test_load_twice_changes_nothing(loaded, neo4j_settings, metabric_run):
    drv, first = loaded
    before = _counts(drv, "metabric")
    props = drv.execute_query("MATCH (p:Patient {cohort:'metabric'}) RETURN p ORDER BY p.id LIMIT 50").records
    again = load_run(metabric_run, neo4j_settings)
    assert set(again.modes.values()) == {"skip"}  # same content already there: nothing written
    assert again.load_id == first.load_id and again.deleted_stale_nodes == 0
    assert _counts(drv, "metabric") == before
    props2 = drv.execute_query("MATCH (p:Patient {cohort:'metabric'}) RETURN p ORDER BY p.id LIMIT 50").records
    assert [dict(r["p"]) for r in props] == [dict(r["p"]) for r in props2]


def test_interrupted_load_is_rerun_safely(neo4j_settings, prostate_run):
    class Boom(RuntimeError):
        pass

    def explode(table, done):
        if table == S.edge_name(S.HAS_MUTATION) and done >= 2000:
            raise Boom()

    with pytest.raises(Boom):
        load_run(prostate_run, neo4j_settings, batch_size=1000, on_batch=explode)
    with neo4j_settings.driver() as drv:
        partial = _counts(drv, prostate_run.cohort)
        assert 0 < partial[S.edge_name(S.HAS_MUTATION)] < prostate_run.manifest["counts"]["edges"][
            S.edge_name(S.HAS_MUTATION)]
        rerun = load_run(prostate_run, neo4j_settings, batch_size=1000)
        done = _counts(drv, prostate_run.cohort)
    assert rerun.modes[S.PATIENT] == "skip" and rerun.modes[S.edge_name(S.HAS_MUTATION)] == "merge"
    assert rerun.modes[S.edge_name(S.SEQUENCED_WITH)] == "create"
    for label, n in prostate_run.manifest["counts"]["nodes"].items():
        assert done[label] == n
    for edge, n in prostate_run.manifest["counts"]["edges"].items():
        assert done[edge] == n


VARIANT = "prostate_variant"
EVIL_COLUMN = "x` = 1 DETACH DELETE n //"


def _variant(run: GraphRun, out, edit) -> GraphRun:
    """A copy of ``run`` as cohort VARIANT with every table passed through ``edit(stem, df)``."""
    shutil.copytree(run.root, out)
    manifest = json.loads(json.dumps(run.manifest))
    manifest["cohort"] = VARIANT
    for path in sorted((out / "graph").rglob("*.parquet")):
        df = edit(path.stem, pd.read_parquet(path))
        write_parquet(df, path)
        kind = path.parent.name  # nodes | edges
        manifest["table_sha256"][f"{kind}/{path.stem}"] = sha256_file(path)
        manifest["counts"][kind][path.stem] = len(df)
    (out / "manifest.json").write_text(json.dumps(manifest))
    return GraphRun.open(out)


@pytest.fixture(scope="module")
def builds(prostate_run, tmp_path_factory):
    """Two builds of one cohort. ``full``: prostate plus awkward property values; ``older``: every
    10th patient and every other mutation of the rest missing, and one survival value missing."""
    ids = prostate_run.nodes(S.PATIENT)["id"]
    gone = set(ids.iloc[::10])

    def full(stem, df):
        if stem == S.PATIENT:
            n = len(df)
            df = df.assign(cohort=VARIANT,
                           note=(["a" + SEP + "b", "", None] * n)[:n],  # not joinable: sent as a list
                           ratio=([math.inf, -math.inf, math.nan, 0.1] * n)[:n],
                           count=pd.array(([1, None] * n)[:n], dtype="Int64"))
            df[safe_key(EVIL_COLUMN)] = np.arange(n)  # build-graph's key for a hostile header
        return df

    def older(stem, df):
        df = full(stem, df)
        if stem == S.PATIENT:
            df = df[~df["id"].isin(gone)].copy()
            df.loc[df["id"] == ids.iloc[1], "os_months"] = np.nan
        elif stem.startswith(S.PATIENT + "__"):
            df = df[~df["src"].isin(gone)]
            if stem == S.edge_name(S.HAS_MUTATION):
                df = df.iloc[::2]
        return df

    root = tmp_path_factory.mktemp("builds")
    return _variant(prostate_run, root / "full", full), _variant(prostate_run, root / "older", older)


def _expected(run):
    counts = {label: 0 for label in S.NODE_TYPES} | {S.edge_name(e): 0 for e in S.EDGE_TYPES}
    return counts | run.manifest["counts"]["nodes"] | run.manifest["counts"]["edges"]


@pytest.fixture
def variant_driver(neo4j_settings):
    """A driver, with cohort VARIANT absent before and after the test."""
    with neo4j_settings.driver() as drv:
        drop = "MATCH (n {cohort: $c}) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS"
        with drv.session() as session:
            session.run(drop, c=VARIANT).consume()
        yield drv
        with drv.session() as session:
            session.run(drop, c=VARIANT).consume()


def _patient(drv, pid):
    rec = drv.execute_query("MATCH (p:Patient {cohort: $c, id: $id}) RETURN p", c=VARIANT, id=pid).records
    return dict(rec[0]["p"])


def test_newer_build_replaces_older_one(neo4j_settings, builds, variant_driver):
    full, older = builds
    ids = full.nodes(S.PATIENT)["id"]
    drv = variant_driver
    first = load_run(older, neo4j_settings, batch_size=2000)  # several batches per large table
    rows = older.manifest["counts"]["nodes"] | older.manifest["counts"]["edges"]
    assert {mode for table, mode in first.modes.items() if rows[table]} == {"create"}  # empty ones: skip
    assert _counts(drv, VARIANT) == _expected(older)
    # a first load marks each relationship table complete once instead of stamping every relationship
    stamped = drv.execute_query("MATCH (:Patient {cohort: $c})-[r:HAS_MUTATION]->() "
                                "RETURN count(r.load_id) AS n", c=VARIANT).records[0]["n"]
    marker = drv.execute_query("MATCH (m:GraphoncLoad {cohort: $c, table: $t}) RETURN m.load_id AS id", c=VARIANT,
                               t=S.edge_name(S.HAS_MUTATION)).records
    assert stamped == 0 and [r["id"] for r in marker] == [first.load_id]
    assert "os_months" not in _patient(drv, ids.iloc[1])
    report = load_run(full, neo4j_settings, batch_size=2000)
    assert report.modes[S.PATIENT] == report.modes[S.edge_name(S.HAS_MUTATION)] == "merge"
    assert report.modes[S.GENE] == "merge"  # unchanged content, but an older load_id
    assert report.deleted_stale_nodes == report.deleted_stale_relationships == 0
    assert _counts(drv, VARIANT) == _expected(full)
    got = [_patient(drv, pid) for pid in ids.iloc[:4]]
    assert got[1]["os_months"] == full.nodes(S.PATIENT)["os_months"].iloc[1]
    # values that cannot be joined into one text parameter arrive unchanged
    assert [p.get("note") for p in got] == ["a" + SEP + "b", "", None, "a" + SEP + "b"]
    assert [p.get("ratio") for p in got] == [math.inf, -math.inf, None, 0.1]
    assert [p.get("count") for p in got] == [1, None, 1, None]
    assert all(p["cohort"] == VARIANT for p in got)
    assert [p[safe_key(EVIL_COLUMN)] for p in got] == list(full.nodes(S.PATIENT)[safe_key(EVIL_COLUMN)].iloc[:4])


def test_a_column_that_is_not_an_identifier_is_refused_before_anything_is_written(neo4j_settings, builds,
                                                                                 variant_driver, tmp_path):
    """A run whose tables hold a raw hostile column name (written by hand, or by a graphonc that did
    not map names) is refused by name; the database is left as it was."""
    full, _ = builds
    raw = _variant(full, tmp_path / "raw", lambda stem, df: df.assign(**{EVIL_COLUMN: 1}) if stem == S.PATIENT else df)
    with pytest.raises(GraphoncError, match=r"column of Patient .* cannot be used in a Cypher query"):
        load_run(raw, neo4j_settings)
    assert _counts(variant_driver, VARIANT) == {k: 0 for k in _expected(full)}


def test_loads_of_one_cohort_run_one_at_a_time(neo4j_settings, builds, variant_driver):
    """Two loads of a cohort wait while a third (another process, say) holds its lock, and go on,
    one after the other, once that process dies: no double CREATE, nothing doubled."""
    full, _ = builds
    holder = neo4j_settings.driver()
    held = _cohort_lock(holder, neo4j_settings.database, VARIANT)
    held.__enter__()  # the lock a running load holds; never left, like a process that dies mid-load
    with ThreadPoolExecutor(2) as pool:
        loads = [pool.submit(load_run, full, neo4j_settings, batch_size=2000) for _ in range(2)]
        time.sleep(3)
        assert not any(f.done() for f in loads)
        assert _counts(variant_driver, VARIANT)[S.PATIENT] == 0  # both are waiting
        holder.close()  # its connection drops: the server rolls the lock's transaction back
        reports = [f.result(timeout=600) for f in loads]
    assert _counts(variant_driver, VARIANT) == _expected(full)
    rows = full.manifest["counts"]["nodes"] | full.manifest["counts"]["edges"]
    modes = sorted(tuple(sorted({mode for table, mode in r.modes.items() if rows[table]})) for r in reports)
    assert modes == [("create",), ("skip",)]  # the second found the first's complete load


def test_older_build_after_newer_removes_what_is_gone(neo4j_settings, builds, variant_driver):
    full, older = builds
    drv = variant_driver
    load_run(full, neo4j_settings)
    report = load_run(older, neo4j_settings)
    assert _counts(drv, VARIANT) == _expected(older)
    survivor = _patient(drv, full.nodes(S.PATIENT)["id"].iloc[1])
    assert load_run(older, neo4j_settings).modes == {t: "skip" for t in report.modes}
    n_full, n_older = full.manifest["counts"], older.manifest["counts"]
    assert report.deleted_stale_nodes == sum(n_full["nodes"].values()) - sum(n_older["nodes"].values())
    assert report.deleted_stale_relationships == sum(n_full["edges"].values()) - sum(n_older["edges"].values())
    assert "os_months" not in survivor  # a value the newer load has no longer is removed, not left over


def test_columns_travel_as_joined_text_unless_they_cannot():
    assert encode_column(pd.Series([1.5, np.nan, -np.inf, 1e-300])).data == SEP.join(["1.5", "", "-Infinity", "1e-300"])
    assert encode_column(pd.Series([3, None], dtype="Int64")).data == "3" + SEP
    assert encode_column(pd.Series([True, False])).data == "true" + SEP + "false"
    assert encode_column(pd.Series(["a", None, "b"], dtype="string")).data == SEP.join(["a", "", "b"])
    assert encode_column(pd.Series([np.nan, np.nan], dtype=object)).kind == "str"  # all missing
    for odd in (["a" + SEP, "b"], ["", "b"], [1, "b"], [np.array([1.0, 2.0]), None]):
        col = encode_column(pd.Series(odd, dtype=object))
        assert col.kind == "value" and len(col.data) == 2
    assert encode_column(pd.Series([np.array([1.0, 2.0]), None], dtype=object)).data == [[1.0, 2.0], None]


def test_large_tables_split_into_streams_by_their_first_key(metabric_run):
    edges = metabric_run.edges(S.HAS_MUTATION)
    parts = _edge_table(S.HAS_MUTATION, edges).parts(1000, 2)
    assert len(parts) == 2 and sum(map(len, parts)) == len(edges)
    assert not set(parts[0][S.SRC]) & set(parts[1][S.SRC])  # a patient's relationships in one stream
    assert pd.concat(parts).sort_index().equals(edges.sort_index())
    assert len(_edge_table(S.HAS_MUTATION, edges).parts(100_000, 2)) == 1 + (len(edges) >= 20_000)
    assert len(_node_table(S.PATIENT, metabric_run.nodes(S.PATIENT)).parts(1000, 1)) == 1


def test_two_cohorts_do_not_mix(loaded, neo4j_settings, prostate_run, metabric_run):
    drv, _ = loaded
    load_run(prostate_run, neo4j_settings)
    assert _counts(drv, "metabric")["Gene"] == metabric_run.manifest["counts"]["nodes"]["Gene"]
    both = drv.execute_query("MATCH (g:Gene {id: 'TP53'}) RETURN g.cohort AS c ORDER BY c").records
    assert [r["c"] for r in both] == ["metabric", "prostate_msk_2024"]
    cross = drv.execute_query("MATCH (a)-[r]->(b) WHERE a.cohort <> b.cohort RETURN count(r) AS n").records
    assert cross[0]["n"] == 0


def test_wrong_password_is_refused(neo4j_settings):
    drv = neo4j.GraphDatabase.driver(neo4j_settings.uri, auth=(neo4j_settings.user, "not-the-password"))
    with pytest.raises(neo4j.exceptions.AuthError):
        drv.verify_connectivity()
    drv.close()


def test_parameter_with_cypher_text_is_data(loaded):
    drv, _ = loaded
    before = _counts(drv, "metabric")
    evil = "MB-0002'}) DETACH DELETE p //"
    got = _query(drv, "patient_profile", cohort="metabric", patient_id=evil)
    assert got.empty
    got = _query(drv, "patients_sharing_mutation", cohort="metabric", patient_id="x\" OR 1=1 RETURN 1 //")
    assert got.empty
    assert _counts(drv, "metabric") == before


def test_write_back_replaces(loaded, metabric_run):
    drv, _ = loaded
    ids = metabric_run.nodes(S.PATIENT)["id"].iloc[:30].tolist()
    rng = np.random.default_rng(0)
    emb = pd.DataFrame({"id": ids, "embedding": [rng.normal(size=8).astype(np.float32) for _ in ids],
                        "risk": rng.normal(size=len(ids))})
    assert write_patient_properties(drv, "metabric", emb) == 30
    rec = drv.execute_query("MATCH (p:Patient {cohort:'metabric', id:$id}) RETURN p.embedding AS e, p.risk AS r",
                            id=ids[0]).records[0]
    assert np.allclose(rec["e"], emb["embedding"].iloc[0]) and math.isclose(rec["r"], emb["risk"].iloc[0])

    def pairs(offset):
        return pd.DataFrame([{"src": a, "dst": ids[(i + j + offset) % 30], "score": 1.0 - j / 10, "rank": j}
                             for i, a in enumerate(ids) for j in range(1, 6)])

    assert write_similar(drv, "metabric", pairs(0), model="m1") == 150
    assert write_similar(drv, "metabric", pairs(3), model="m1") == 150  # replaces, not adds
    assert write_similar(drv, "metabric", pairs(0), model="m2") == 150  # other model kept apart
    n = drv.execute_query("MATCH (:Patient {cohort:'metabric'})-[r:SIMILAR_TO]->() RETURN r.model AS m, count(r) AS n "
                          "ORDER BY m").records
    assert [(r["m"], r["n"]) for r in n] == [("m1", 150), ("m2", 150)]
    got = _query(drv, "similar_patients", cohort="metabric", patient_id=ids[0], model="m1")
    assert list(got["patient"]) == [ids[(j + 3) % 30] for j in range(1, 6)]
    # a reload of the graph keeps the write-back relationships
    assert _counts(drv, "metabric")["Patient"] == 2509


def test_browser_is_served(neo4j_server):
    with urllib.request.urlopen(f"{neo4j_server.http_url}/browser/", timeout=30) as resp:
        body = resp.read().decode("utf-8", "replace")
        assert resp.status == 200
    assert "<html" in body.lower() and "neo4j" in body.lower()
