"""What the graph looks like: counts, degrees, hubs, components, isolated patients.

Computed from the node and edge tables with pandas, NumPy and SciPy's sparse matrices, which
``scripts/bench_graph_stats.py`` measured against networkx on a synthetic 100k-patient cohort
(pandas is the faster one; numbers in docs/network_export.md). Written into ``manifest.json``
under ``graph_stats`` at build time and shown by ``graphonc info --graph-stats`` and the
report.

::

    {"nodes": {label: n}, "edges": {"Src__TYPE__Dst": n},
     "degrees": {"Src__TYPE__Dst": {"out": {"of": "Src", "median", "p90", "max", "zero"},
                                    "in":  {"of": "Dst", ...}}},      # over every node of that label, zeros included
     "hubs": {"genes": [{"id", "patients"}], "pathways": [{"id", "name", "patients"}]},  # by patient reach
     "patient_gene_components": {"patients_with_gene", "patients_without_gene", "components",
                                 "largest_patients", "largest_genes", "other_components_patients"},
     "isolated_patients": {"count", "share"}}                        # no alteration, no treatment

A gene reaches a patient when the patient has a mutation in it (HAS_MUTATION then IN_GENE);
a pathway reaches the patients its genes reach. The patient–gene projection joins each
patient to the genes it has a mutation in; patients without one are not part of it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse import csgraph

from graphonc.graph import schema as S

TOP_HUBS = 10
#: columns of :func:`summary_rows` that hold numbers (right-aligned when shown)
NUMERIC_COLUMNS = frozenset({"median", "p90", "max", "nodes with 0", "patients"})


def degree_summary(keys: pd.Series, n_nodes: int) -> dict:
    """median, p90 and max of the degree over ``n_nodes`` nodes, given one key per edge end.

    Nodes that appear in no edge have degree 0 (``zero`` counts them).
    """
    counts = keys.value_counts(sort=False).to_numpy()
    zero = max(n_nodes - len(counts), 0)
    deg = np.concatenate([counts, np.zeros(zero, dtype=counts.dtype)]) if zero else counts
    if len(deg) == 0:
        return {"median": 0.0, "p90": 0.0, "max": 0, "zero": 0}
    return {"median": round(float(np.percentile(deg, 50)), 3), "p90": round(float(np.percentile(deg, 90)), 3),
            "max": int(deg.max()),
            "zero": int(zero)}


def patient_genes(edges: dict[S.EdgeType, pd.DataFrame]) -> pd.DataFrame:
    """Distinct (patient, gene) pairs: the patient has a mutation in the gene. Columns src, dst."""
    has, in_gene = edges.get(S.HAS_MUTATION), edges.get(S.IN_GENE)
    if has is None or in_gene is None or has.empty:
        return pd.DataFrame({S.SRC: pd.Series(dtype=object), S.DST: pd.Series(dtype=object)})
    gene_of = pd.Series(in_gene[S.DST].to_numpy(), index=in_gene[S.SRC].to_numpy())
    gene_of = gene_of[~gene_of.index.duplicated()]
    mcodes, muts = pd.factorize(has[S.DST])  # map each distinct mutation once, not each edge
    genes = gene_of.reindex(muts).to_numpy(dtype=object)[mcodes]
    pairs = pd.DataFrame({S.SRC: has[S.SRC].to_numpy(), S.DST: genes}).dropna()
    return pairs.drop_duplicates(ignore_index=True)


def _hubs(pairs: pd.DataFrame, edges: dict, nodes: dict) -> tuple[dict, sparse.csr_matrix | None, pd.Index, pd.Index]:
    pcodes, pats = pd.factorize(pairs[S.SRC])
    gcodes, genes = pd.factorize(pairs[S.DST])
    reach = pd.Series(np.bincount(gcodes, minlength=len(genes)), index=genes)
    top_genes = reach.sort_index().sort_values(ascending=False, kind="stable").head(TOP_HUBS)
    out = {"genes": [{"id": str(i), "patients": int(n)} for i, n in top_genes.items()], "pathways": []}
    a = sparse.csr_matrix((np.ones(len(pcodes), dtype=np.int32), (pcodes, gcodes)), shape=(len(pats), len(genes)))
    in_pw = edges.get(S.IN_PATHWAY)
    if in_pw is not None and len(in_pw) and len(genes):
        g = genes.get_indexer(in_pw[S.SRC])
        ok = g >= 0
        wcodes, pws = pd.factorize(in_pw[S.DST][ok])
        m = sparse.csr_matrix((np.ones(int(ok.sum()), dtype=np.int32), (g[ok], wcodes)), shape=(len(genes), len(pws)))
        pw_reach = pd.Series((a @ m).getnnz(axis=0), index=pws)  # patients with any gene of the pathway
        top = pw_reach.sort_index().sort_values(ascending=False, kind="stable").head(TOP_HUBS)
        names = nodes[S.PATHWAY].set_index(S.ID)["name"] if S.PATHWAY in nodes and "name" in nodes[S.PATHWAY] \
            else pd.Series(dtype=object)
        out["pathways"] = [{"id": str(i), "name": None if pd.isna(names.get(i)) else str(names.get(i)),
                            "patients": int(n)} for i, n in top.items()]
    return out, a, pats, genes


def _components(a: sparse.csr_matrix, n_patients_total: int) -> dict:
    n_p, n_g = a.shape
    res = {"patients_with_gene": int(n_p), "patients_without_gene": int(n_patients_total - n_p), "components": 0,
           "largest_patients": 0, "largest_genes": 0, "other_components_patients": 0}
    if n_p == 0:
        return res
    adj = sparse.bmat([[None, a], [a.T, None]], format="csr")  # the bipartite patient-gene graph
    n, labels = csgraph.connected_components(adj, directed=False)
    p_sizes = np.bincount(labels[:n_p], minlength=n)
    g_sizes = np.bincount(labels[n_p:], minlength=n)
    big = int(np.argmax(p_sizes))
    res.update(components=int(n), largest_patients=int(p_sizes[big]), largest_genes=int(g_sizes[big]),
               other_components_patients=int(n_p - p_sizes[big]))
    return res


def graph_stats(nodes: dict[str, pd.DataFrame], edges: dict[S.EdgeType, pd.DataFrame]) -> dict:
    """The statistics of the module doc, from a run's node and edge tables."""
    n_nodes = {lab: int(len(df)) for lab, df in sorted(nodes.items())}
    degrees = {}
    for e, df in sorted(edges.items()):
        degrees[S.edge_name(e)] = {"out": {"of": e[0], **degree_summary(df[S.SRC], n_nodes.get(e[0], 0))},
                                   "in": {"of": e[2], **degree_summary(df[S.DST], n_nodes.get(e[2], 0))}}
    pairs = patient_genes(edges)
    hubs, a, _, _ = _hubs(pairs, edges, nodes)
    n_patients = n_nodes.get(S.PATIENT, 0)
    linked = pd.Index([])
    for e in (S.HAS_MUTATION, S.RECEIVED):
        if e in edges:
            linked = linked.union(pd.Index(edges[e][S.SRC].unique()))
    isolated = int((~nodes[S.PATIENT][S.ID].isin(linked)).sum()) if S.PATIENT in nodes else 0
    return {"method": "pandas", "nodes": n_nodes, "edges": {S.edge_name(e): int(len(df)) for e, df in sorted(edges.items())},
            "degrees": degrees, "hubs": hubs, "patient_gene_components": _components(a, n_patients),
            "isolated_patients": {"count": isolated, "share": round(isolated / n_patients, 4) if n_patients else 0.0}}


def of_run(run) -> dict:
    """A run's graph statistics: the manifest's (written at build time), else computed from its tables."""
    got = run.manifest.get("graph_stats")
    if got:
        return got
    return graph_stats({lab: run.nodes(lab) for lab in run.node_types()}, {e: run.edges(e) for e in run.edge_types()})


def summary_rows(st: dict, hubs: int = TOP_HUBS) -> list[tuple[str, list[str], list[list[str]]]]:
    """The statistics as plain-text tables, (title, header, rows), for the terminal and the report.

    Cells are plain text taken from the data (gene and pathway names): callers escape them.
    """
    comp, iso = st["patient_gene_components"], st["isolated_patients"]
    n_pat = st["nodes"].get(S.PATIENT, 0)
    structure = [
        ["patients", f"{n_pat:,}"],
        ["nodes / edges", f"{sum(st['nodes'].values()):,} / {sum(st['edges'].values()):,}"],
        ["patient–gene components", f"{comp['components']:,}"],
        ["largest component", f"{comp['largest_patients']:,} patients, {comp['largest_genes']:,} genes"],
        ["patients in smaller components", f"{comp['other_components_patients']:,}"],
        ["patients without a mutated gene", f"{comp['patients_without_gene']:,}"],
        ["isolated patients (no alteration, no treatment)", f"{iso['count']:,} ({100 * iso['share']:.1f}%)"],
    ]
    degrees = [[rel.split("__")[1] if rel.count("__") == 2 else rel, f"per {side['of']}", f"{side['median']:g}", f"{side['p90']:g}", f"{side['max']:,}",
                f"{side['zero']:,}"]
               for rel, d in st["degrees"].items() for side in (d["out"], d["in"])]
    hub_rows = [["gene", h["id"], "", f"{h['patients']:,}"] for h in st["hubs"]["genes"][:hubs]]
    hub_rows += [["pathway", h["id"], h.get("name") or "", f"{h['patients']:,}"] for h in st["hubs"]["pathways"][:hubs]]
    return [("graph structure", ["measure", "value"], structure),
            ("degree per relationship (nodes without one count as 0)",
             ["relationship", "degree", "median", "p90", "max", "nodes with 0"], degrees),
            ("hubs by patient reach", ["kind", "id", "name", "patients"], hub_rows)]
