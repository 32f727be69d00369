"""GraphML/GEXF export and graph statistics, checked on real METABRIC and on a hostile hand-made run."""
from __future__ import annotations

import json
import math
import re

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from graphonc.cli import app
from graphonc.errors import GraphoncError
from graphonc.export import EMBEDDING_FORMATS, FORMATS
from graphonc.export_network import export_graph
from graphonc.graph import network as N
from graphonc.graph import schema as S
from graphonc.graph import stats as ST
from graphonc.graph.run import GraphRun, write_parquet

#: XML 1.0 Name (ASCII subset used for keys): what Cytoscape and Gephi accept as ids
XML_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_.:-]*")


def _read(path, fmt):
    return nx.read_graphml(path, force_multigraph=True) if fmt == "graphml" else nx.MultiDiGraph(nx.read_gexf(path))


def _restored(path, fmt):
    mapping = json.loads(path.with_name(path.name + ".mapping.json").read_text())
    return N.restore(_read(path, fmt), mapping)


def _table_counts(run):
    nodes = {lab: len(run.nodes(lab)) for lab in run.node_types()}
    edges = {e[1]: len(run.edges(e)) for e in run.edge_types()}
    return nodes, edges


@pytest.mark.slow  # a 14k-node, 35k-edge file written and parsed: 4-10 s each
@pytest.mark.parametrize("fmt", ["graphml", "gexf"])
def test_metabric_round_trips_with_the_tables_counts(metabric_run, tmp_path, fmt):
    res = export_graph(metabric_run.root, fmt, out=tmp_path / f"metabric.{fmt}")
    g = _read(res.path, fmt)
    want_nodes, want_edges = _table_counts(metabric_run)
    assert g.number_of_nodes() == sum(want_nodes.values()) == res.nodes
    assert g.number_of_edges() == sum(want_edges.values()) == res.edges
    assert pd.Series([d["node_type"] for _, d in g.nodes(data=True)]).value_counts().to_dict() == want_nodes
    assert pd.Series([d["label"] for *_, d in g.edges(data=True)]).value_counts().to_dict() == want_edges
    assert all(XML_NAME.fullmatch(n) for n in g.nodes)
    # the estimate said first is close to the file written
    assert abs(res.estimated_bytes - res.bytes) / res.bytes < 0.15

    # properties: numbers as numbers, missing values omitted, Patient.label (the diagnosis) kept as label_
    pat = metabric_run.nodes(S.PATIENT).set_index(S.ID)
    row = pat.loc["MB-0002"]
    d = g.nodes["Patient:MB-0002"]
    assert d["label"] == "MB-0002" and d["label_"] == row["label"]
    assert d["AGE_AT_DIAGNOSIS"] == pytest.approx(row["AGE_AT_DIAGNOSIS"])
    assert d["n_mutations"] == row["n_mutations"] and isinstance(d["n_mutations"], int)
    assert d["sequenced"] is True
    missing = pat.index[pat["CELLULARITY"].isna()][0]
    assert "CELLULARITY" not in g.nodes[f"Patient:{missing}"]
    has = metabric_run.edges(S.HAS_MUTATION).iloc[0]
    got = [x for x in g.get_edge_data(f"Patient:{has[S.SRC]}", N.node_key(S.MUTATION, has[S.DST])).values()]
    assert [x["label"] for x in got] == ["HAS_MUTATION"]
    if not math.isnan(has["vaf"]):
        assert got[0]["vaf"] == pytest.approx(has["vaf"])

    # every id comes back exactly (mutation ids such as TP53:p.R175* are encoded in the XML id)
    back = _restored(res.path, fmt)
    for lab in metabric_run.node_types():
        assert {i for t, i in back.nodes if t == lab} == set(metabric_run.nodes(lab)[S.ID])


def _undirected_typed(run) -> pd.DataFrame:
    """Every edge of the run in both directions between 'Label|id' strings (pandas, not graphonc.network)."""
    parts = []
    for s, _, d in run.edge_types():
        df = run.edges((s, _, d))
        a, b = s + "|" + df[S.SRC].astype(str), d + "|" + df[S.DST].astype(str)
        parts += [pd.DataFrame({"a": a, "b": b}), pd.DataFrame({"a": b, "b": a})]
    return pd.concat(parts, ignore_index=True)


@pytest.mark.parametrize("centre, label, hops", [pytest.param("MB-0002", S.PATIENT, 2, marks=pytest.mark.slow),
                                                 ("Gene:PIK3CA", S.GENE, 1),
                                                 ("MB-0005", S.PATIENT, 1)])
def test_a_neighbourhood_holds_exactly_the_nodes_within_its_hops(metabric_run, tmp_path, centre, label, hops):
    und = _undirected_typed(metabric_run)
    cid = centre.split(":", 1)[1] if centre.startswith(label + ":") else centre
    want = {label + "|" + cid}
    frontier = set(want)
    for _ in range(hops):
        frontier = set(und.loc[und["a"].isin(frontier), "b"]) - want
        want |= frontier
    res = export_graph(metabric_run.root, "graphml", neighbourhood=centre, hops=hops, out=tmp_path / "n.graphml")
    back = _restored(res.path, "graphml")
    assert {f"{t}|{i}" for t, i in back.nodes} == want
    n_edges = int(((und["a"].isin(want)) & (und["b"].isin(want))).sum()) // 2  # every edge appears twice in und
    assert back.number_of_edges() == n_edges


def test_patients_export_is_the_patients_and_what_they_link_to(metabric_run, tmp_path):
    has = metabric_run.edges(S.HAS_MUTATION)
    pats = sorted(has[S.SRC].unique()[:3])
    res = export_graph(metabric_run.root, "gexf", patients=pats, out=tmp_path / "p.gexf")
    back = _restored(res.path, "gexf")
    by = {}
    for t, i in back.nodes:
        by.setdefault(t, set()).add(i)
    assert by[S.PATIENT] == set(pats)
    assert by[S.MUTATION] == set(has.loc[has[S.SRC].isin(pats), S.DST])
    assert by[S.TREATMENT] == set(metabric_run.edges(S.RECEIVED).query("src in @pats")[S.DST])


def test_bad_requests_are_one_line_errors_and_write_nothing(metabric_run, tmp_path):
    foreign = tmp_path / "mine.graphml"
    foreign.write_text("keep me")
    with pytest.raises(GraphoncError, match="exists and was not written by graphonc"):
        export_graph(metabric_run.root, "graphml", neighbourhood="Gene:PIK3CA", hops=1, out=foreign)
    assert foreign.read_text() == "keep me"
    foreign.rename(tmp_path / "x.graphml")
    out = tmp_path / "new.graphml"
    with pytest.raises(GraphoncError, match="no node with id 'NOPE-1'"):
        export_graph(metabric_run.root, "graphml", neighbourhood="NOPE-1", out=out)
    with pytest.raises(GraphoncError, match="is not in the run"):
        export_graph(metabric_run.root, "graphml", patients=["MB-00x2"], out=out)
    with pytest.raises(GraphoncError, match="ending in .gexf"):
        export_graph(metabric_run.root, "gexf", out=out)
    assert (tmp_path / "x.graphml").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.graphml"]
    r = CliRunner().invoke(app, ["export", "--run", str(metabric_run.root), "-f", "graphml", "--neighbourhood", "NOPE-1",
                                 "--out", str(out)])
    assert r.exit_code == 2 and "no node with id" in r.output


def test_the_cli_writes_both_formats_with_their_mappings(metabric_run, tmp_path):
    out = tmp_path / "pik3ca.graphml"
    r = CliRunner().invoke(app, ["export", "--run", str(metabric_run.root), "-f", "graphml", "--neighbourhood",
                                 "Gene:PIK3CA", "--hops", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "graphml: 326 nodes, 325 edges (1-hop neighbourhood of Gene:PIK3CA)" in r.output
    g = _read(out, "graphml")
    sidecar = json.loads((tmp_path / "pik3ca.graphml.mapping.json").read_text())
    assert sidecar.pop("graph_file") == str(out) and sidecar.pop("graphonc_version")
    assert g.graph["cohort"] == "metabric" and json.loads(g.graph[N.MAPPING_ATTR]) == sidecar
    r = CliRunner().invoke(app, ["-q", "export", "--run", str(metabric_run.root), "-f", "graphml", "--neighbourhood",
                                 "Gene:PIK3CA", "--hops", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output  # its own earlier export is replaced
    r = CliRunner().invoke(app, ["-q", "export", "--run", str(metabric_run.root), "-f", "gexf", "--neighbourhood",
                                 "MB-0005", "--hops", "1", "--out", str(tmp_path / "mb.gexf")])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mb.gexf", "mb.gexf.mapping.json", "pik3ca.graphml",
                                                          "pik3ca.graphml.mapping.json"]
    again = ["-q", "export", "--run", str(metabric_run.root), "-f", "gexf", "--neighbourhood", "MB-0005", "--hops", "1"]
    r = CliRunner().invoke(app, [*again, "--out", str(tmp_path / "mb.gexf")])
    assert r.exit_code == 0, r.output  # a GEXF is ours when our sidecar names it
    (tmp_path / "theirs.gexf").write_text("<gexf/>")
    r = CliRunner().invoke(app, [*again, "--out", str(tmp_path / "theirs.gexf")])
    assert r.exit_code == 2 and "not written by graphonc" in r.output
    assert (tmp_path / "theirs.gexf").read_text() == "<gexf/>"


def test_export_formats_are_the_embedding_and_graph_writers():
    assert set(FORMATS) == set(EMBEDDING_FORMATS) | set(N.WRITERS)


# ------------------------------------------------------------------------------ hostile data


HOSTILE_IDS = ["<p&1>", "x\x07y", "9lives", "_x0041_", "a\rb", "ok", "é:ü/\"'", "\U0001F600"]


@pytest.fixture()
def hostile_run(tmp_path) -> GraphRun:
    """A tiny run whose ids, column names and values are everything XML dislikes."""
    root = tmp_path / "hostile"
    (root / "graph" / "nodes").mkdir(parents=True)
    (root / "graph" / "edges").mkdir(parents=True)
    n = len(HOSTILE_IDS)
    patients = pd.DataFrame({
        S.ID: HOSTILE_IDS,
        "1st col": np.arange(n, dtype="int64"),
        "a<b&c": ["<b>bold</b>", "&amp;", "x\x01y", None, "tab\there", "line\nbreak", "cr\rlf", ""],
        "label": ["LumA"] * n,
        "label_": ["clash"] * n,
        "ctrl\x02name": [1.5, float("nan"), 2.5, 3.5, 4.5, 5.5, 6.5, 7.5],
        "lists": [["a", "b<"], [], ["x"], None, ["é"], ["1"], ["2"], ["3"]],
        "flag": [True, False] * (n // 2),
        "score": np.arange(n, dtype="int64"),
    })
    # the same property names with other types on another label: ints+floats -> floats, +text -> text
    genes = pd.DataFrame({S.ID: ["G&1", "G<2>"], "role": ["oncogene", "tsg"], "score": [0.5, 1.5],
                          "1st col": ["a", "b"]})
    muts = pd.DataFrame({S.ID: ["G&1:p.X1*", "G<2>:p.\x03"], "gene": ["G&1", "G<2>"]})
    pws = pd.DataFrame({S.ID: ["pw:<script>"], "name": ["<script>alert(1)</script> & co"]})
    has = pd.DataFrame({S.SRC: ["<p&1>", "x\x07y", "9lives", "9lives"], S.DST: ["G&1:p.X1*", "G<2>:p.\x03",
                                                                             "G&1:p.X1*", "G<2>:p.\x03"],
                        "v&f": [0.5, 0.25, float("nan"), 1.0]})
    in_gene = pd.DataFrame({S.SRC: ["G&1:p.X1*", "G<2>:p.\x03"], S.DST: ["G&1", "G<2>"]})
    in_pw = pd.DataFrame({S.SRC: ["G&1"], S.DST: ["pw:<script>"]})
    for lab, df in {S.PATIENT: patients, S.GENE: genes, S.MUTATION: muts, S.PATHWAY: pws}.items():
        write_parquet(df, root / "graph" / "nodes" / f"{lab}.parquet")
    for e, df in {S.HAS_MUTATION: has, S.IN_GENE: in_gene, S.IN_PATHWAY: in_pw}.items():
        write_parquet(df, root / "graph" / "edges" / f"{S.edge_name(e)}.parquet")
    (root / "manifest.json").write_text(json.dumps({"cohort": "hostile&<x>", "graphonc_version": "test"}))
    return GraphRun.open(root)


def _expected_props(df: pd.DataFrame, row: int, skip=(S.ID,)) -> dict:
    out = {}
    for c in df.columns:
        if c in skip:
            continue
        v = df[c].iloc[row]
        if isinstance(v, (list, np.ndarray)):
            out[c] = json.dumps(list(v), ensure_ascii=False)
        elif v is None or (isinstance(v, float) and math.isnan(v)) or v == "":
            continue
        else:
            out[c] = v.item() if hasattr(v, "item") else v
            if c == "1st col":  # text on Gene, so text everywhere
                out[c] = str(out[c])
    return out


@pytest.mark.parametrize("fmt", ["graphml", "gexf"])
def test_hostile_ids_names_and_values_survive_as_data(hostile_run, tmp_path, fmt):
    res = export_graph(hostile_run.root, fmt, out=tmp_path / f"h.{fmt}")
    raw = _read(res.path, fmt)
    assert all(XML_NAME.fullmatch(n) for n in raw.nodes)  # ids in the file are XML names...
    back = _restored(res.path, fmt)                        # ...and map back to the originals exactly
    for lab in hostile_run.node_types():
        df = hostile_run.nodes(lab)
        for i, nid in enumerate(df[S.ID]):
            assert back.nodes[(lab, nid)] == _expected_props(df, i), (lab, nid)
    has = hostile_run.edges(S.HAS_MUTATION)
    for i, (s, d) in enumerate(zip(has[S.SRC], has[S.DST])):
        (data,) = back.get_edge_data((S.PATIENT, s), (S.MUTATION, d)).values()
        assert data == {"label": "HAS_MUTATION", **_expected_props(has, i, skip=(S.SRC, S.DST))}
    assert isinstance(back.nodes[(S.PATIENT, "ok")]["score"], float)
    # names that are not XML names were mapped, none dropped; Patient.label does not clash with label_
    mapping = json.loads(res.mapping_path.read_text())
    assert set(mapping["node_properties"].values()) >= {"1st col", "a<b&c", "label", "ctrl\x02name"}
    assert all(XML_NAME.fullmatch(x) for x in mapping["node_properties"])


def test_hostile_statistics_and_report_table_are_escaped(hostile_run):
    from graphonc.report.html import _graph_section

    st = ST.of_run(hostile_run)
    assert st["hubs"]["genes"] == [{"id": "G&1", "patients": 2}, {"id": "G<2>", "patients": 2}]
    assert st["hubs"]["pathways"] == [{"id": "pw:<script>", "name": "<script>alert(1)</script> & co", "patients": 2}]
    assert st["isolated_patients"]["count"] == len(HOSTILE_IDS) - 3
    page = _graph_section(hostile_run)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page
    assert "G&lt;2&gt;" in page


# ------------------------------------------------------------------------------ statistics


def _alterations(run) -> pd.DataFrame:
    """Distinct (patient, gene) with an alteration, by pandas merges over whichever alteration tables the run has."""
    parts = []
    for e in run.edge_types():
        if e[0] != S.PATIENT or e[1] not in ("HAS_MUTATION", "HAS_CNA", "HAS_FUSION"):
            continue
        df = run.edges(e)[[S.SRC, S.DST]].rename(columns={S.SRC: "patient", S.DST: "node"})
        if e[2] == S.GENE:
            parts.append(df.rename(columns={"node": "gene"}))
        for link in run.edge_types():
            if link[0] == e[2] and link[2] == S.GENE:
                lk = run.edges(link)[[S.SRC, S.DST]].rename(columns={S.SRC: "node", S.DST: "gene"})
                parts.append(df.merge(lk, on="node")[["patient", "gene"]])
    return pd.concat(parts, ignore_index=True).drop_duplicates()


@pytest.mark.parametrize("which", ["metabric_run", "prostate_run"])
def test_statistics_equal_pandas_counts_from_the_tables(which, request):
    run = request.getfixturevalue(which)
    st = run.manifest["graph_stats"]
    nodes = {lab: run.nodes(lab) for lab in run.node_types()}
    edges = {e: run.edges(e) for e in run.edge_types()}
    assert st == json.loads(json.dumps(ST.graph_stats(nodes, edges)))  # the manifest holds the build's figures
    assert st["nodes"] == run.manifest["counts"]["nodes"]
    assert st["edges"] == run.manifest["counts"]["edges"]

    for e, df in edges.items():
        for side, col, lab in (("out", S.SRC, e[0]), ("in", S.DST, e[2])):
            deg = df.groupby(col).size().reindex(nodes[lab][S.ID], fill_value=0)
            got = st["degrees"][S.edge_name(e)][side]
            if deg.empty:  # e.g. a label without nodes (prostate records no treatments)
                assert got == {"of": lab, "median": 0.0, "p90": 0.0, "max": 0, "zero": 0}
                continue
            assert got == {"of": lab, "median": round(deg.median(), 3), "p90": round(deg.quantile(0.9), 3),
                           "max": int(deg.max()), "zero": int((deg == 0).sum())}

    pg = _alterations(run)
    reach = pg.groupby("gene")["patient"].nunique()
    top = sorted(reach.items(), key=lambda kv: (-kv[1], kv[0]))[:ST.TOP_HUBS]
    assert [(h["id"], h["patients"]) for h in st["hubs"]["genes"]] == top
    pw = pg.merge(edges[S.IN_PATHWAY].rename(columns={S.SRC: "gene", S.DST: "pathway"}), on="gene")
    preach = pw.groupby("pathway")["patient"].nunique()
    top = sorted(preach.items(), key=lambda kv: (-kv[1], kv[0]))[:ST.TOP_HUBS]
    assert [(h["id"], h["patients"]) for h in st["hubs"]["pathways"]] == top

    linked = set(pg["patient"]) | {p for e, df in edges.items() if e[0] == S.PATIENT
                                   and e[1] in ("HAS_MUTATION", "HAS_CNA", "HAS_FUSION", "RECEIVED")
                                   for p in df[S.SRC]}
    isolated = int((~nodes[S.PATIENT][S.ID].isin(linked)).sum())
    assert st["isolated_patients"]["count"] == isolated > 0

    # components of the patient-gene projection, by networkx
    g = nx.Graph()
    g.add_edges_from(("p:" + p, "g:" + q) for p, q in zip(pg["patient"], pg["gene"]))
    comps = sorted(nx.connected_components(g), key=lambda c: -sum(n.startswith("p:") for n in c))
    c = st["patient_gene_components"]
    assert c["components"] == len(comps)
    assert c["largest_patients"] == sum(n.startswith("p:") for n in comps[0])
    assert c["largest_genes"] == sum(n.startswith("g:") for n in comps[0])
    assert c["patients_without_gene"] == len(nodes[S.PATIENT]) - pg["patient"].nunique()
    if which == "metabric_run":
        assert st["hubs"]["genes"][0] == {"id": "PIK3CA", "patients": 975}


def test_info_graph_stats_prints_the_hubs(metabric_run):
    r = CliRunner().invoke(app, ["info", "--run", str(metabric_run.root), "--graph-stats"])
    assert r.exit_code == 0, r.output
    assert "PIK3CA" in r.output and "isolated patients" in r.output and "HAS_MUTATION" in r.output


# ------------------------------------------------------------------------------ SIMILAR_TO


@pytest.mark.slow
def test_with_similar_adds_the_faiss_neighbours(metabric_trained, tmp_path):
    from graphonc.export import faiss_pairs, patient_index
    from graphonc.search.index import read_embeddings

    run = metabric_trained[0]
    res = export_graph(run.root, "graphml", with_similar=True, k=5, out=tmp_path / "s.graphml")
    g = _read(res.path, "graphml")
    sim = [(u, v, d) for u, v, d in g.edges(data=True) if d["label"] == "SIMILAR_TO"]
    emb = read_embeddings(run.root)
    pairs = faiss_pairs(patient_index(run, emb, "cpu"), 5)
    assert len(sim) == len(pairs) == 5 * len(emb)
    got = {(u.split(":", 1)[1], v.split(":", 1)[1]): (d["score"], d["rank"]) for u, v, d in sim}
    for r in pairs.head(50).itertuples():
        score, rank = got[(r.src, r.dst)]
        assert rank == r.rank and score == pytest.approx(r.score, abs=1e-6)


@pytest.mark.slow
def test_the_report_shows_the_cohort_graph(metabric_trained, tmp_path):
    import shutil

    from graphonc.report.html import render_report
    from graphonc.search.index import build_index

    root = tmp_path / "metabric"
    shutil.copytree(metabric_trained[0].root, root, ignore=shutil.ignore_patterns("index", "export", "reports"))
    build_index(root, "flat", device="cpu")
    page = render_report(root, "MB-0002", k=5, explain=False, device="cpu")
    section = page[page.index("<h2>The cohort graph</h2>"):]
    st = GraphRun.open(root).manifest["graph_stats"]
    assert f"{st['hubs']['genes'][0]['patients']:,}" in section and "PIK3CA" in section
    assert f"{st['isolated_patients']['count']:,} (" in section
