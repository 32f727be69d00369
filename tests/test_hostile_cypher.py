"""No Cypher injection: names from data never become Cypher text unvalidated (issue #13, item 1).

Hostile column headers go into every table that reaches Neo4j (clinical columns of a
plain-tables METABRIC and of HN1, HN1's radiomic feature headers, endpoint names, mutation
table headers); build-graph maps them to safe keys, load-neo4j writes them under those keys
and nothing they spell out runs. The source itself is checked: every identifier pasted into
Cypher passes the one validator.
"""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphonc.errors import GraphoncError
from graphonc.graph import schema as S
from graphonc.graph.build import build_run
from graphonc.graph.run import GraphRun
from graphonc.identifiers import IDENT, assert_ident, is_ident, safe_key, safe_keys

from hostile_cohorts import HOSTILE_HEADERS, write_hn1_tables, write_metabric_tables

REPO = Path(__file__).resolve().parents[1]

#: METABRIC clinical column → hostile header (two pairs collide once mapped: ER`IHC / ER IHC, and
#: the payload endpoint name below with an existing column).
METABRIC_HEADERS = {
    "PATIENT_ID": "PATIENT ID`) DETACH DELETE (n) //",
    "AGE_AT_DIAGNOSIS": HOSTILE_HEADERS[0],
    "NPI": HOSTILE_HEADERS[2],
    "TUMOR_SIZE": "TUMOR SIZE",
    "GRADE": "GRADE`",
    "ER_IHC": "ER`IHC",
    "HER2_SNP6": "ER IHC",
    "INFERRED_MENOPAUSAL_STATE": "âge_ménopause",
    "CELLULARITY": HOSTILE_HEADERS[3],
    "ER_STATUS": "5yr grade",
    "COHORT": HOSTILE_HEADERS[1],
    "CLAUDIN_SUBTYPE": "label`}) DETACH DELETE (n) //",
    "OS_MONTHS": "OS MONTHS",
    "CHEMOTHERAPY": "CHEMO`THERAPY",
}
MUTATION_HEADERS = {"patient_id": "patient` id", "gene": "Hugo`Symbol */", "protein_change": "HGVSp\\u0060Short",
                    "variant_class": "class // x", "vaf": "vaf`) DETACH DELETE (n) //"}
METABRIC_ENDPOINT = "dss` = 1 WITH n MATCH (m) DETACH DELETE m //"

HN1_HEADERS = {
    "age_at_diagnosis": "age\nat diagnosis",
    "performance_status_ecog": "ecog` = 1 WITH n MATCH (m) DETACH DELETE m //",
    "clin_t": "clin\\u0060t",
    "clin_n": "clin`t",
    "index_tumour_location": "tumour location */ MATCH (m) DETACH DELETE m /*",
    "dataset": "数据集",
}
HN1_FEATURES = {f: f"{f}` = 1 WITH n MATCH (m) DETACH DELETE m //" for f in
                ("Energy", "Entropy", "Kurtosis", "Skewness", "Uniformity", "Variance", "Sphericity", "Elongation",
                 "Flatness", "MeshVolume", "SurfaceVolumeRatio", "Maximum3DDiameter")}
HN1_ENDPOINT = "rmfs\\u0060 = 1 WITH n MATCH (m) DETACH DELETE m //"


@pytest.fixture(scope="module")
def hostile_runs(tmp_path_factory, data_dir) -> dict[str, GraphRun]:
    root = tmp_path_factory.mktemp("hostile")
    met = write_metabric_tables(data_dir, root / "in_metabric", n=300, columns=METABRIC_HEADERS,
                                mutation_headers=MUTATION_HEADERS, extra_survival=METABRIC_ENDPOINT)
    hn1 = write_hn1_tables(data_dir, root / "in_hn1", HN1_HEADERS, HN1_FEATURES, HN1_ENDPOINT)
    build_run(met, root / "metabric")
    build_run(hn1, root / "hn1")
    return {"metabric": GraphRun.open(root / "metabric"), "hn1": GraphRun.open(root / "hn1")}


# ------------------------------------------------------------------------------- the validator


@pytest.mark.parametrize("name", HOSTILE_HEADERS + [
    "", "1abc", "a b", "a-b", "a.b", "é", "a\x00b", "a\u0060b", "`a`", "a\tb", "a\r\nb", "a;b", "a$b", "a{b}",
    None, 5, b"abc"])
def test_assert_ident_refuses_every_non_identifier(name):
    with pytest.raises(GraphoncError, match="cannot be used in a Cypher query"):
        assert_ident(name)


@pytest.mark.parametrize("name", ["a", "_", "_x1", "AGE_AT_DIAGNOSIS", "rad_shape_MeshVolume", "Patient"])
def test_assert_ident_keeps_identifiers(name):
    assert assert_ident(name) == name


def test_safe_keys_are_readable_and_unique():
    keys = safe_keys(["AGE AT DIAGNOSIS", "AGE_AT_DIAGNOSIS", "AGE-AT-DIAGNOSIS", "5yr", "âge", "数据", "`", "",
                      "ER`IHC", "ER\\u0060IHC", "cohort "], taken=("load_id", "cohort"))
    assert keys == {"AGE AT DIAGNOSIS": "AGE_AT_DIAGNOSIS_2", "AGE_AT_DIAGNOSIS": "AGE_AT_DIAGNOSIS",
                    "AGE-AT-DIAGNOSIS": "AGE_AT_DIAGNOSIS_3", "5yr": "c_5yr", "âge": "age", "数据": "u6570_u636e",
                    "`": "c", "": "c_2", "ER`IHC": "ER_IHC", "ER\\u0060IHC": "ER_u0060IHC", "cohort ": "cohort_2"}
    assert safe_key("x` DETACH DELETE n //") == "x_DETACH_DELETE_n"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=12), unique=True, max_size=12))
def test_safe_keys_always_valid_unique_and_stable(names):
    keys = safe_keys(names, taken=("load_id",))
    assert list(keys) == names
    assert all(IDENT.fullmatch(k) for k in keys.values())
    assert len(set(keys.values())) == len(names)
    assert all(keys[n] == n for n in names if is_ident(n))  # valid names keep themselves
    assert "load_id" not in {keys[n] for n in names if n != "load_id"}
    assert safe_keys(names, taken=("load_id",)) == keys  # deterministic


# ------------------------------------------------------------------------------- the source


#: Functions whose result may be pasted into Cypher as an identifier: the validator and the two
#: schema lookups that end in it (graphonc.store.neo4j_load._label_ident/_rel_ident).
_VALIDATED = {"assert_ident", "_label_ident", "_rel_ident"}
#: Text right before a pasted identifier: a label/type (``:``), a property (``.``), an index or
#: constraint name.
_IDENT_SLOT = re.compile(r"(?:[:.]|\b(?:INDEX|CONSTRAINT)\s)$")
_CYPHER = re.compile(r"\b(?:MATCH|MERGE|CREATE|SET|RETURN|UNWIND|DELETE|REMOVE|CALL|OPTIONS|DROP)\b")


def _python_sources():
    for path in sorted((REPO / "graphonc").rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"))


def _docstrings(tree) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _unsafe_sites(tree, name: str) -> tuple[list[str], list[str]]:
    """(identifiers pasted into Cypher text without the validator, Cypher strings with backticks)."""
    unchecked, quoted = [], []
    docs = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if _CYPHER.search(node.value) and "`" in node.value:
                quoted.append(f"{name}:{node.lineno}")
        if not isinstance(node, ast.JoinedStr):
            continue
        text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        if not _CYPHER.search(text):
            continue
        if "`" in text:
            quoted.append(f"{name}:{node.lineno}")
        before = ""
        for v in node.values:
            if isinstance(v, ast.Constant):
                before = v.value
                continue
            call = v.value
            ok = isinstance(call, ast.Call) and getattr(call.func, "id", getattr(call.func, "attr", None)) in _VALIDATED
            if _IDENT_SLOT.search(before) and not ok:
                unchecked.append(f"{name}:{node.lineno}: {ast.unparse(call)}")
            before = ""
    return unchecked, quoted


def test_no_cypher_is_assembled_from_an_unvalidated_name():
    """Every ``{…}`` pasted where Cypher expects an identifier is a call to the validator, and no
    Cypher string in graphonc/ quotes a name with backticks."""
    unchecked, quoted = [], []
    for path, tree in _python_sources():
        u, q = _unsafe_sites(tree, str(path.relative_to(REPO)))
        unchecked += u
        quoted += q
    assert not unchecked, f"identifiers pasted into Cypher without assert_ident: {unchecked}"
    assert not quoted, f"backtick-quoted names in Cypher text: {quoted}"


def test_the_source_check_catches_unvalidated_names():
    """The walker is not vacuous: the old loader's assembly, a pasted label and index name are caught."""
    old = ast.parse('def q(c, j, label, name):\n'
                    '    a = f"SET n.{property_key(c)} = c{j}[i]"\n'
                    '    b = f"MATCH (n:{label}) RETURN n"\n'
                    '    d = f"CREATE VECTOR INDEX {name} IF NOT EXISTS"\n'
                    '    e = "MATCH (n) SET n.`x` = 1"\n'
                    '    ok = f"MATCH (n:{_label_ident(label)}) SET n.{assert_ident(c)} = c{j}[i]"\n')
    unchecked, quoted = _unsafe_sites(old, "old")
    assert [u.split(": ", 1)[1] for u in unchecked] == ["property_key(c)", "label", "name"]
    assert quoted == ["old:5"]


def test_cypher_files_take_parameters_only():
    """The shipped Cypher files paste nothing: no backticks, every $name is a declared parameter."""
    from graphonc.store.cypher_files import CypherFile

    files = sorted((REPO / "cypher").glob("*.cypher"))
    assert len(files) >= 10
    for path in files:
        cf = CypherFile.read(path)
        body = "\n".join(cf.statements)
        assert "`" not in body, path.name
        used = set(re.findall(r"\$(\w+)", body))
        assert used <= set(cf.params), (path.name, used - set(cf.params))
        with pytest.raises(GraphoncError, match="unknown parameter"):
            cf.bind({"x` DETACH DELETE n //": "1"})


# ------------------------------------------------------------------------------- build-graph


def test_build_maps_hostile_headers_to_safe_keys(hostile_runs, data_dir):
    met, hn1 = hostile_runs["metabric"], hostile_runs["hn1"]
    for run in (met, hn1):
        for label in run.node_types():
            assert all(is_ident(c) for c in run.nodes(label).columns), label
        for edge in run.edge_types():
            assert all(is_ident(c) for c in run.edges(edge).columns), edge
    keys = met.column_keys()
    assert keys["AGE` = 1 WITH n MATCH (m) DETACH DELETE m //"] == "AGE_1_WITH_n_MATCH_m_DETACH_DELETE_m"
    assert keys["AGE\\u0060 = 1 WITH n MATCH (m) DETACH DELETE m //"] == "AGE_u0060_1_WITH_n_MATCH_m_DETACH_DELETE_m"
    assert keys["ER`IHC"] == "ER_IHC" and keys["ER IHC"] == "ER_IHC_2"  # a collision gets a suffix
    assert keys["âge_ménopause"] == "age_menopause" and keys["5yr grade"] == "c_5yr_grade"
    assert keys[METABRIC_ENDPOINT + "_months"] == "dss_1_WITH_n_MATCH_m_DETACH_DELETE_m_months"
    # the config names the columns by their headers; the values arrive under the keys
    p = met.nodes(S.PATIENT).set_index(S.ID)
    src = pd.read_csv(Path(met.manifest["config_path"]).parent / "clinical.tsv", sep="\t", dtype=str,
                      keep_default_na=False).set_index(METABRIC_HEADERS["PATIENT_ID"])
    age = pd.to_numeric(src[METABRIC_HEADERS["AGE_AT_DIAGNOSIS"]]).reindex(p.index)
    assert (p["AGE_1_WITH_n_MATCH_m_DETACH_DELETE_m"] == age).all()
    assert p["ER_IHC"].dropna().isin(set(src["ER`IHC"])).all() and p["ER_IHC_2"].notna().sum() > 200
    cols = met.manifest["patient_columns"]
    assert "AGE_1_WITH_n_MATCH_m_DETACH_DELETE_m" in cols["numeric"] and "ER_IHC_2" in cols["categorical"]
    # mutation headers are read by the config's names and stored under graphonc's own
    assert set(met.nodes(S.MUTATION).columns) == {"id", "gene", "protein_change", "variant_class", "n_patients"}
    assert len(met.nodes(S.MUTATION)) > 100
    # HN1: a newline, non-ASCII, the \u0060 escape, and radiomic feature headers
    hk = hn1.column_keys()
    assert hk["age\nat diagnosis"] == "age_at_diagnosis" and hk["数据集"] == "u6570_u636e_u96c6"
    assert hk["clin\\u0060t"] == "clin_u0060t" and hk["clin`t"] == "clin_t"
    rad = hn1.manifest["patient_columns"]["radiomics"]
    assert rad and all(is_ident(c) for c in rad)
    mapped = [k for c, k in hk.items() if c.startswith("rad_") and "DETACH" in c]
    assert mapped and set(mapped) & set(rad), "a hostile radiomic feature must reach the model features"
    assert hk[HN1_ENDPOINT + "_event"] == "rmfs_u0060_1_WITH_n_MATCH_m_DETACH_DELETE_m_event"


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "250", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "graphonc.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=REPO)


def test_info_shows_the_mapping(hostile_runs):
    res = _cli("info", str(hostile_runs["hn1"].root))
    assert res.returncode == 0, res.stderr
    assert "columns renamed to safe keys" in res.stdout
    out = re.sub(r"[│┃|\s]+", " ", res.stdout)
    assert "'age\\nat diagnosis' age_at_diagnosis" in out
    assert "'clin\\\\u0060t' clin_u0060t" in out and "'数据集' u6570_u636e_u96c6" in out
    assert "\x1b" not in res.stdout


# ------------------------------------------------------------------------------- Neo4j


def _all_counts(driver) -> dict:
    recs = driver.execute_query("MATCH (n) RETURN coalesce(n.cohort, '-') AS c, labels(n) AS l, count(*) AS n").records
    rels = driver.execute_query("MATCH ()-[r]->() RETURN type(r) AS t, count(*) AS n").records
    return {"nodes": sorted((r["c"], tuple(r["l"]), r["n"]) for r in recs),
            "rels": sorted((r["t"], r["n"]) for r in rels)}


@pytest.fixture()
def canary(neo4j_settings):
    """A cohort no load should touch: a Patient with a mutation, plus a free-standing node."""
    with neo4j_settings.driver() as driver:
        driver.execute_query("MATCH (n {cohort: 'canary'}) DETACH DELETE n")
        driver.execute_query("CREATE (p:Patient {cohort: 'canary', id: 'C1', age: 50})"
                             "-[:HAS_MUTATION]->(:Mutation {cohort: 'canary', id: 'TP53:R175H'}), "
                             "(:Canary {cohort: 'canary', id: 'bird'})")
        yield driver
        driver.execute_query("MATCH (n {cohort: 'canary'}) DETACH DELETE n")


def _canary_alive(driver) -> bool:
    rec = driver.execute_query("MATCH (p:Patient {cohort: 'canary', id: 'C1'})-[:HAS_MUTATION]->(m:Mutation) "
                               "MATCH (c:Canary {cohort: 'canary'}) RETURN p.age AS age, m.id AS m, c.id AS c").records
    return len(rec) == 1 and rec[0]["age"] == 50 and rec[0]["m"] == "TP53:R175H" and rec[0]["c"] == "bird"


@pytest.mark.neo4j
def test_the_payloads_are_live_against_backtick_quoting(canary):
    """What the old loader did (backtick-quote, double inner backticks) lets a header's \\u0060 end the
    name and run its own Cypher: the payloads above are real attacks, not strings that fail anyway."""
    name = "x\\u0060 = 1 WITH n MATCH (m:Canary) DETACH DELETE m //"
    quoted = "`" + name.replace("`", "``") + "`"
    canary.execute_query(f"MATCH (n:Patient {{cohort: 'canary'}})\nSET n.{quoted} = 2\nRETURN count(*) AS n")
    assert canary.execute_query("MATCH (c:Canary) RETURN count(c) AS n").records[0]["n"] == 0
    with pytest.raises(GraphoncError):
        assert_ident(name)


@pytest.mark.neo4j
def test_load_neo4j_of_hostile_runs_executes_nothing(hostile_runs, canary, neo4j_settings):
    from graphonc.store.neo4j_load import iter_counts, load_run

    before = _all_counts(canary)
    for run in hostile_runs.values():
        report = load_run(run, neo4j_settings, driver=canary)
        assert report.nodes[S.PATIENT] == run.manifest["counts"]["nodes"][S.PATIENT]
        got = dict(iter_counts(canary, run.cohort))
        assert {k: v for k, v in got.items() if v} == {
            **{k: v for k, v in run.manifest["counts"]["nodes"].items() if v},
            **{k: v for k, v in run.manifest["counts"]["edges"].items() if v}}
    assert _canary_alive(canary)
    after = _all_counts(canary)
    others = lambda c: [x for x in c["nodes"] if x[0] not in {r.cohort for r in hostile_runs.values()}  # noqa: E731
                        and x[1][0] not in ("GraphoncLoad", "GraphoncLoadLock")]
    assert others(after) == others(before)
    # every property key in the database is an identifier; the hostile columns are under their keys
    keys = {r["k"] for r in canary.execute_query("MATCH (n) UNWIND keys(n) AS k RETURN DISTINCT k").records}
    keys |= {r["k"] for r in canary.execute_query("MATCH ()-[r]->() UNWIND keys(r) AS k RETURN DISTINCT k").records}
    assert all(is_ident(k) for k in keys), sorted(k for k in keys if not is_ident(k))
    met = hostile_runs["metabric"]
    p = met.nodes(S.PATIENT).set_index(S.ID)
    pid = p["AGE_1_WITH_n_MATCH_m_DETACH_DELETE_m"].first_valid_index()
    node = canary.execute_query("MATCH (p:Patient {cohort: $c, id: $id}) RETURN properties(p) AS p",
                                c=met.cohort, id=pid).records[0]["p"]
    assert node["AGE_1_WITH_n_MATCH_m_DETACH_DELETE_m"] == p.loc[pid, "AGE_1_WITH_n_MATCH_m_DETACH_DELETE_m"]
    assert node["ER_IHC_2"] == p.loc[pid, "ER_IHC_2"]
    hn1 = hostile_runs["hn1"]
    rad = [k for k in hn1.manifest["patient_columns"]["radiomics"] if "DETACH" in k]
    n = canary.execute_query(f"MATCH (p:Patient {{cohort: $c}}) WHERE p.{assert_ident(rad[0])} IS NOT NULL "
                             "RETURN count(p) AS n", c=hn1.cohort).records[0]["n"]
    assert n == int(hn1.nodes(S.PATIENT)[rad[0]].notna().sum()) > 100
    # loading again changes nothing
    for run in hostile_runs.values():
        assert set(load_run(run, neo4j_settings, driver=canary).modes.values()) == {"skip"}
    assert _all_counts(canary) == after


@pytest.mark.neo4j
def test_write_back_refuses_hostile_names_and_keeps_values_inert(hostile_runs, canary, neo4j_settings):
    import numpy as np

    from graphonc.store.vector_index import ensure_vector_index
    from graphonc.store.neo4j_load import load_run, write_patient_properties, write_similar

    run = hostile_runs["metabric"]
    load_run(run, neo4j_settings, driver=canary)
    ids = run.nodes(S.PATIENT)[S.ID].head(3).tolist()
    before = _all_counts(canary)
    bad = pd.DataFrame({S.ID: ids, "emb` = 1 WITH p MATCH (m) DETACH DELETE m //": [1.0, 2.0, 3.0]})
    with pytest.raises(GraphoncError, match="cannot be used in a Cypher query"):
        write_patient_properties(canary, run.cohort, bad)
    for name in ("idx` IF NOT EXISTS FOR (m) ON (m.x) //", "idx\\u0060", "1idx"):
        with pytest.raises(GraphoncError, match="cannot be used in a Cypher query"):
            ensure_vector_index(canary, "neo4j", name, "embedding", 4)
    with pytest.raises(GraphoncError, match="cannot be used in a Cypher query"):
        ensure_vector_index(canary, "neo4j", "ok_idx", "emb`) DETACH DELETE (n) //", 4)
    assert _all_counts(canary) == before
    # a model name is a value: written literally, runs nothing
    model = "m'}) MATCH (x) DETACH DELETE x //` \\u0060"
    pairs = pd.DataFrame({"src": ids[:2], "dst": ids[1:3], "score": [0.9, 0.8], "rank": [1, 1]})
    assert write_similar(canary, run.cohort, pairs, model) == 2
    got = canary.execute_query("MATCH (:Patient {cohort: $c})-[r:SIMILAR_TO]->() RETURN DISTINCT r.model AS m",
                               c=run.cohort).records
    assert [r["m"] for r in got] == [model]
    ok = pd.DataFrame({S.ID: ids, "prediction_risk": np.array([0.1, 0.2, 0.3])})
    assert write_patient_properties(canary, run.cohort, ok) == 3
    assert _canary_alive(canary)


@pytest.mark.neo4j
def test_cypher_run_sends_values_as_parameters(hostile_runs, canary, neo4j_settings):
    """`graphonc cypher run` with injection attempts in its parameter values: read as values."""
    from graphonc.store.neo4j_load import load_run

    run = hostile_runs["metabric"]
    load_run(run, neo4j_settings, driver=canary)
    before = _all_counts(canary)
    env = {"NEO4J_URI": neo4j_settings.uri, "NEO4J_USER": neo4j_settings.user,
           "NEO4J_PASSWORD": neo4j_settings.password}
    pid = "x'}) MATCH (m) DETACH DELETE m //"
    res = subprocess.run([sys.executable, "-m", "graphonc.cli", "cypher", "run", "cypher/patient_profile.cypher",
                          "-p", f"cohort={run.cohort}", "-p", f"patient_id={pid}", "--json"], capture_output=True,
                         text=True, cwd=REPO, timeout=120,
                         env={**os.environ, **env, "PYTHONPATH": str(REPO)})
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == []
    assert _all_counts(canary) == before and _canary_alive(canary)


# ------------------------------------------------------------------------------- users see the headers


@pytest.mark.slow
def test_model_reads_new_patients_by_header_and_shows_headers(hostile_runs, tmp_path):
    """Train on the mapped keys; embed new patients from a file with the original (hostile) headers;
    the reasons name the columns as the file does."""
    import shutil

    from graphonc.model.stages import train_stage
    from graphonc.search.index import build_index
    from graphonc.search.similar import similar_new_patients, similar_patients

    root = tmp_path / "run"
    shutil.copytree(hostile_runs["metabric"].root, root)
    train_stage(root, hidden=16, embedding_dim=8, epochs=4, patience=4)
    build_index(root, "flat", device="cpu")
    run = GraphRun.open(root)
    age = METABRIC_HEADERS["AGE_AT_DIAGNOSIS"]
    pid = run.nodes(S.PATIENT)[S.ID].iloc[0]
    res = similar_patients(root, [pid], k=5, device="cpu")[0]
    assert age in res.query.clinical and "ER IHC" in res.query.clinical and "ER`IHC" in res.query.clinical
    assert not any(c in res.query.clinical for c in run.column_keys().values())
    cols = {c["column"] for n in res.neighbours for c in n.clinical_similar + n.clinical_different}
    assert cols and cols <= set(METABRIC_HEADERS.values()) | {"GRADE`"}
    # new patients: the same file layout as the build input, headers as the hospital wrote them
    src = Path(run.manifest["config_path"]).parent
    new = pd.read_csv(src / "clinical.tsv", sep="\t", dtype=str, keep_default_na=False).head(3)
    new[METABRIC_HEADERS["PATIENT_ID"]] = ["NEW-1", "NEW-2", "NEW-3"]
    new.to_csv(tmp_path / "new.tsv", sep="\t", index=False)
    got = similar_new_patients(root, tmp_path / "new.tsv", k=3, device="cpu")
    assert [r.query.id for r in got] == ["NEW-1", "NEW-2", "NEW-3"]
    first = pd.to_numeric(new[age]).iloc[0]
    assert got[0].query.clinical[age] == first
    # explain names the clinical features by header, with the patient's value
    from graphonc.model.explain import explain_patient

    e = explain_patient(root, pid, steps=4)
    clinical = e.table[e.table["kind"] == "clinical"].drop_duplicates("name").set_index("name")
    assert age in clinical.index and "ER IHC" in clinical.index
    assert not set(clinical.index) & set(run.column_keys().values())
    assert clinical.loc[age, "value"] == str(run.nodes(S.PATIENT).set_index(S.ID).loc[pid, run.column_keys()[age]])
