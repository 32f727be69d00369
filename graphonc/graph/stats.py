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

A gene reaches a patient when the patient has an alteration in it: a mutation in the gene
(HAS_MUTATION then IN_GENE), a copy-number call on it (HAS_CNA) or a fusion with it as a
partner (HAS_FUSION then FUSION_PARTNER) — whichever of these the run has. A pathway reaches
the patients its genes reach. The patient–gene projection joins each patient to the genes it
has an alteration in; patients without one are not part of it. Isolated patients have no
alteration edge and no RECEIVED edge.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse import csgraph

from graphonc.graph import schema as S

TOP_HUBS = 10
#: Patient relationships that are alterations; their target is a Gene or links to Genes.
ALTERATIONS = ("HAS_MUTATION", "HAS_CNA", "HAS_FUSION")
TREATMENTS = ("RECEIVED",)
#: columns of :func:`summary_rows` that hold numbers (right-aligned when shown)
NUMERIC_COLUMNS = frozenset({"median", "p90", "max", "nodes with 0", "patients"})


def _codes(col: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer code per row and the distinct values (the one pass over the strings)."""
    codes, uniques = pd.factorize(col)
    return codes, pd.Index(uniques)


def degree_summary(codes: np.ndarray, n_distinct: int, n_nodes: int) -> dict:
    """median, p90 and max of the degree over ``n_nodes`` nodes, given each edge end's node code.

    Nodes that appear in no edge have degree 0 (``zero`` counts them).
    """
    counts = np.bincount(codes[codes >= 0], minlength=n_distinct)
    zero = max(n_nodes - n_distinct, 0)
    deg = np.concatenate([counts, np.zeros(zero, dtype=counts.dtype)]) if zero else counts
    if len(deg) == 0:
        return {"median": 0.0, "p90": 0.0, "max": 0, "zero": 0}
    return {"median": round(float(np.percentile(deg, 50)), 3), "p90": round(float(np.percentile(deg, 90)), 3),
            "max": int(deg.max()), "zero": int(zero)}


def _union_sizes(bits: np.ndarray, rows: np.ndarray, groups: np.ndarray, n_groups: int,
                 budget: int = 64 << 20) -> np.ndarray:
    """Per group g, the number of bits set in the OR of ``bits[rows[groups == g]]``.

    ``bits``: (n_rows, n_words) uint64 bitsets; ``groups`` sorted. Works in blocks of about
    ``budget`` bytes so a large cohort never gathers every (row, group) bitset at once.
    """
    out = np.zeros(n_groups, dtype=np.int64)
    if len(rows) == 0:
        return out
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    ends = np.r_[starts[1:], len(groups)]
    per_block = max(1, budget // max(bits.nbytes // max(len(bits), 1), 1))
    i = 0
    while i < len(starts):  # whole groups per block
        j = i + 1
        while j < len(starts) and ends[j - 1] - starts[i] < per_block:
            j += 1
        lo, hi = starts[i], ends[j - 1]
        merged = np.bitwise_or.reduceat(bits[rows[lo:hi]], starts[i:j] - lo, axis=0)
        out[groups[starts[i:j]]] = np.bitwise_count(merged).sum(axis=1, dtype=np.int64)
        i = j
    return out


def _top(reach: pd.Series) -> pd.Series:
    """The TOP_HUBS largest, ties by id."""
    reach = reach[reach > 0]
    return reach.sort_index().sort_values(ascending=False, kind="stable").head(TOP_HUBS)


Codes = tuple[tuple[np.ndarray, pd.Index], tuple[np.ndarray, pd.Index]]


def _alteration_pairs(nodes: dict, edges: dict, codes: dict[S.EdgeType, Codes] | None = None
                      ) -> tuple[np.ndarray, np.ndarray, pd.Index, pd.Index] | None:
    """Distinct (patient, gene) pairs of every alteration (module doc) as codes into the
    Patient and Gene node tables: (patient codes, gene codes, patient ids, gene ids).

    ``codes``: ``_codes`` of edge tables' src and dst the caller has computed already.
    """
    if S.PATIENT not in nodes or S.GENE not in nodes:
        return None
    pats, genes = pd.Index(nodes[S.PATIENT][S.ID]), pd.Index(nodes[S.GENE][S.ID])
    codes = codes or {}
    ps, gs = [], []
    for e, df in edges.items():
        src, rel, dst = e
        if src != S.PATIENT or rel not in ALTERATIONS or df.empty:
            continue
        (sc, su), (dc, du) = codes.get(e) or (_codes(df[S.SRC]), _codes(df[S.DST]))
        p = pats.get_indexer(su)[sc]
        if dst == S.GENE:
            ps.append(p)
            gs.append(genes.get_indexer(du)[dc])
            continue
        for link, ldf in edges.items():  # e.g. Mutation -IN_GENE-> Gene, Fusion -FUSION_PARTNER-> Gene
            if link[0] == dst and link[2] == S.GENE and not ldf.empty:
                lk = pd.DataFrame({"n": du.get_indexer(ldf[S.SRC]), "g": genes.get_indexer(ldf[S.DST])})
                pg = pd.DataFrame({"p": p, "n": dc}).merge(lk[lk["n"] >= 0], on="n")
                ps.append(pg["p"].to_numpy())
                gs.append(pg["g"].to_numpy())
    if not ps:
        return None
    p, g = np.concatenate(ps).astype(np.int64), np.concatenate(gs).astype(np.int64)
    ok = (p >= 0) & (g >= 0)
    key = np.sort(p[ok] * len(genes) + g[ok])
    key = key[np.r_[True, key[1:] != key[:-1]]] if len(key) else key  # distinct (np.unique is slow in NumPy 2.4)
    return key // len(genes), key % len(genes), pats, genes


def patient_genes(nodes: dict[str, pd.DataFrame], edges: dict[S.EdgeType, pd.DataFrame]) -> pd.DataFrame:
    """Distinct (patient, gene) pairs: the patient has an alteration in the gene. Columns src, dst."""
    got = _alteration_pairs(nodes, edges)
    if got is None:
        return pd.DataFrame({S.SRC: pd.Series(dtype=object), S.DST: pd.Series(dtype=object)})
    p, g, pats, genes = got
    return pd.DataFrame({S.SRC: pats[p], S.DST: genes[g]})


def _hubs(pg, edges: dict, nodes: dict) -> dict:
    out = {"genes": [], "pathways": []}
    if pg is None:
        return out
    p, g, pats, genes = pg
    per_gene = np.bincount(g, minlength=len(genes))
    out["genes"] = [{"id": str(i), "patients": int(n)} for i, n in _top(pd.Series(per_gene, index=genes)).items()]
    in_pw = edges.get(S.IN_PATHWAY)
    if in_pw is None or in_pw.empty:
        return out
    # each altered gene's patients as a bitset; a pathway's reach is the size of the union over its genes
    present = np.flatnonzero(per_gene)
    local = np.full(len(genes), -1, dtype=np.int64)
    local[present] = np.arange(len(present))
    bits = np.zeros((len(present), (len(pats) + 63) // 64), dtype=np.uint64)
    np.bitwise_or.at(bits, (local[g], p >> 6), np.left_shift(np.uint64(1), (p & 63).astype(np.uint64)))
    rows = genes.get_indexer(in_pw[S.SRC])
    rows = np.where(rows >= 0, local[rows], -1)
    wcodes, pws = pd.factorize(in_pw[S.DST])
    ok = rows >= 0
    order = np.argsort(wcodes[ok], kind="stable")
    reach = _union_sizes(bits, rows[ok][order], wcodes[ok][order], len(pws))
    names = nodes[S.PATHWAY].set_index(S.ID)["name"] if S.PATHWAY in nodes and "name" in nodes[S.PATHWAY] \
        else pd.Series(dtype=object)
    out["pathways"] = [{"id": str(i), "name": None if pd.isna(names.get(i)) else str(names.get(i)),
                        "patients": int(n)} for i, n in _top(pd.Series(reach, index=pws)).items()]
    return out


def _components(pg, n_patients_total: int) -> dict:
    res = {"patients_with_gene": 0, "patients_without_gene": int(n_patients_total), "components": 0,
           "largest_patients": 0, "largest_genes": 0, "other_components_patients": 0}
    if pg is None or len(pg[0]) == 0:
        return res
    p, g, pats, genes = pg
    n_p, n_g = len(pats), len(genes)
    a = sparse.csr_matrix((np.ones(len(p), dtype=np.int8), (p, g)), shape=(n_p, n_g))
    adj = sparse.bmat([[None, a], [a.T, None]], format="csr")  # the bipartite patient-gene graph
    _, labels = csgraph.connected_components(adj, directed=False)
    with_gene = np.bincount(p, minlength=n_p) > 0  # the others are not in the projection
    p_sizes = np.bincount(labels[:n_p][with_gene], minlength=labels.max() + 1)
    g_sizes = np.bincount(labels[n_p:][np.bincount(g, minlength=n_g) > 0], minlength=labels.max() + 1)
    big = int(np.argmax(p_sizes))
    n_with = int(with_gene.sum())
    res.update(patients_with_gene=n_with, patients_without_gene=int(n_patients_total - n_with),
               components=int((p_sizes > 0).sum()), largest_patients=int(p_sizes[big]),
               largest_genes=int(g_sizes[big]), other_components_patients=int(n_with - p_sizes[big]))
    return res


def graph_stats(nodes: dict[str, pd.DataFrame], edges: dict[S.EdgeType, pd.DataFrame]) -> dict:
    """The statistics of the module doc, from a run's node and edge tables."""
    n_nodes = {lab: int(len(df)) for lab, df in sorted(nodes.items())}
    degrees = {}
    linked = []  # patients with an alteration or a treatment
    codes: dict[S.EdgeType, Codes] = {}
    for e, df in sorted(edges.items()):
        sc, su = _codes(df[S.SRC])
        dc, du = _codes(df[S.DST])
        if e[0] == S.PATIENT and e[1] in ALTERATIONS:
            codes[e] = (sc, su), (dc, du)
        degrees[S.edge_name(e)] = {"out": {"of": e[0], **degree_summary(sc, len(su), n_nodes.get(e[0], 0))},
                                   "in": {"of": e[2], **degree_summary(dc, len(du), n_nodes.get(e[2], 0))}}
        if e[0] == S.PATIENT and e[1] in ALTERATIONS + TREATMENTS:
            linked.append(su)
    pg = _alteration_pairs(nodes, edges, codes)
    n_patients = n_nodes.get(S.PATIENT, 0)
    isolated = 0
    if S.PATIENT in nodes:
        seen = np.zeros(n_patients, dtype=bool)
        ids = pd.Index(nodes[S.PATIENT][S.ID])
        for u in linked:
            hit = ids.get_indexer(u)
            seen[hit[hit >= 0]] = True
        isolated = int((~seen).sum())
    return {"method": "pandas", "nodes": n_nodes,
            "edges": {S.edge_name(e): int(len(df)) for e, df in sorted(edges.items())},
            "degrees": degrees, "hubs": _hubs(pg, edges, nodes), "patient_gene_components": _components(pg, n_patients),
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
        ["patients without an altered gene", f"{comp['patients_without_gene']:,}"],
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
