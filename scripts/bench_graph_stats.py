"""Benchmark graph statistics: pandas/SciPy (graphonc.graph.stats) against networkx, and their build cost.

For real METABRIC and for synthetic cohorts bootstrapped from it (``generate_study`` of
scripts/bench_build.py, default 100,000 patients), builds the run in this process, then times

* ``pandas``: :func:`graphonc.graph.stats.graph_stats` on the tables (what build-graph runs);
* ``networkx``: the same statistics from a networkx ``MultiDiGraph`` of the tables (graph
  construction included, since the pandas path starts from the tables too);

checks that both give the same figures, and reports the build time with the statistics'
share of it (``build_seconds`` includes ``graph_stats_seconds``; the build without them is
the difference). ``--export`` also times a whole-cohort GraphML export (networkx writer).

Prints one JSON object to stdout (progress to stderr). Example::

    .venv/bin/python scripts/bench_graph_stats.py --sizes 100000 --json-out bench_out/graph_stats.json
"""
from __future__ import annotations

import argparse
import importlib.util
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_build", REPO / "scripts" / "bench_build.py")
bench_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_build)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def networkx_stats(nodes: dict, edges: dict, top: int) -> dict:
    """The figures of graphonc.graph.stats.graph_stats, computed with networkx."""
    import networkx as nx
    import numpy as np

    from graphonc.graph import schema as S
    from graphonc.graph import stats as ST

    g = nx.MultiDiGraph()
    for lab, df in nodes.items():
        g.add_nodes_from(((lab, i) for i in df[S.ID]), node_type=lab)
    for (s, rel, d), df in edges.items():
        g.add_edges_from(((s, u), (d, v), rel) for u, v in zip(df[S.SRC], df[S.DST]))
    out_deg: dict = {}
    in_deg: dict = {}
    for u, v, rel in g.edges(keys=True):
        out_deg.setdefault(rel, Counter())[u] += 1
        in_deg.setdefault(rel, Counter())[v] += 1
    degrees = {}
    for (s, rel, d) in edges:
        res = {}
        for side, lab, cnt in (("out", s, out_deg.get(rel, Counter())), ("in", d, in_deg.get(rel, Counter()))):
            deg = np.array([cnt.get((lab, i), 0) for i in nodes[lab][S.ID]])
            res[side] = {"of": lab, "median": round(float(np.percentile(deg, 50)), 3),
                         "p90": round(float(np.percentile(deg, 90)), 3), "max": int(deg.max()) if len(deg) else 0,
                         "zero": int((deg == 0).sum())}
        degrees[S.edge_name((s, rel, d))] = res
    # gene reach: patients with an alteration edge to the gene, or to a node (mutation, fusion) linked to it
    alt = set(ST.ALTERATIONS)
    reach = {}
    for gid in nodes[S.GENE][S.ID]:
        pats = set()
        for u, _, rel in g.in_edges((S.GENE, gid), keys=True):
            if u[0] == S.PATIENT and rel in alt:
                pats.add(u)
            else:
                pats.update(p for p, _, r in g.in_edges(u, keys=True) if p[0] == S.PATIENT and r in alt)
        if pats:
            reach[gid] = pats
    genes = sorted(((g_, len(p)) for g_, p in reach.items()), key=lambda kv: (-kv[1], kv[0]))[:top]
    pw_reach = {}
    for pid in nodes[S.PATHWAY][S.ID]:
        pats = set()
        for gn, _, rel in g.in_edges((S.PATHWAY, pid), keys=True):
            pats |= reach.get(gn[1], set())
        if pats:
            pw_reach[pid] = len(pats)
    pathways = sorted(pw_reach.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    proj = nx.Graph()
    proj.add_edges_from((("p", p[1]), ("g", gn)) for gn, pats in reach.items() for p in pats)
    comps = sorted(nx.connected_components(proj), key=lambda c: -sum(n[0] == "p" for n in c))
    patients = nodes[S.PATIENT][S.ID]
    linked = {u[1] for u, _, rel in g.edges(keys=True) if rel in alt or rel in ST.TREATMENTS}
    return {"degrees": degrees, "genes": genes, "pathways": pathways, "components": len(comps),
            "largest_patients": sum(n[0] == "p" for n in comps[0]) if comps else 0,
            "isolated": int(sum(p not in linked for p in patients))}


def same_figures(st: dict, nxs: dict) -> bool:
    c = st["patient_gene_components"]
    return (st["degrees"] == nxs["degrees"]
            and [(h["id"], h["patients"]) for h in st["hubs"]["genes"]] == nxs["genes"]
            and [(h["id"], h["patients"]) for h in st["hubs"]["pathways"]] == nxs["pathways"]
            and c["components"] == nxs["components"] and c["largest_patients"] == nxs["largest_patients"]
            and st["isolated_patients"]["count"] == nxs["isolated"])


def bench_config(config: Path, label: str, with_export: bool, workdir: Path) -> dict:
    from graphonc.config import load_config
    from graphonc.graph import stats as ST
    from graphonc.graph.build import build_graph

    t0 = time.perf_counter()
    tables = build_graph(load_config(config))
    build_s = time.perf_counter() - t0
    stats_in_build = tables.stats["timings_s"]["graph stats"]
    t0 = time.perf_counter()
    st = ST.graph_stats(tables.nodes, tables.edges)
    pandas_s = time.perf_counter() - t0
    log(f"{label}: build {build_s:.1f} s (graph stats {stats_in_build:.2f} s of it), pandas stats {pandas_s:.2f} s; "
        "networkx ...")
    t0 = time.perf_counter()
    nxs = networkx_stats(tables.nodes, tables.edges, ST.TOP_HUBS)
    nx_s = time.perf_counter() - t0
    res = {"cohort": label, "patients": st["nodes"].get("Patient", 0), "nodes": sum(st["nodes"].values()),
           "edges": sum(st["edges"].values()), "build_seconds": round(build_s, 3),
           "graph_stats_seconds_in_build": stats_in_build,
           "graph_stats_share_of_build": round(stats_in_build / build_s, 4),
           "build_seconds_without_graph_stats": round(build_s - stats_in_build, 3),
           "pandas_seconds": round(pandas_s, 3), "networkx_seconds": round(nx_s, 3),
           "networkx_over_pandas": round(nx_s / pandas_s, 1), "same_figures": same_figures(st, nxs)}
    log(f"{label}: networkx {nx_s:.1f} s; same figures: {res['same_figures']}")
    if with_export:
        from graphonc.graph import network as N
        from graphonc.graph.run import write_graph_run

        run_dir = workdir / f"run_{label}"
        write_graph_run(run_dir, tables, load_config(config), None, build_s)
        t0 = time.perf_counter()
        g, _ = N.to_networkx(N.GraphTables(tables.nodes, tables.edges))
        graph_s = time.perf_counter() - t0
        est = N.estimate_bytes(g, "graphml")
        t0 = time.perf_counter()
        N.write(g, run_dir / "cohort.graphml", "graphml")
        write_s = time.perf_counter() - t0
        res["graphml_export"] = {"graph_seconds": round(graph_s, 2), "write_seconds": round(write_s, 2),
                                 "estimated_mb": round(est / 1e6, 1),
                                 "mb": round((run_dir / "cohort.graphml").stat().st_size / 1e6, 1)}
        del g
    res["peak_rss_mb_so_far"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return res


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000", help="synthetic cohort sizes, comma-separated ('' for none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mutation-scale", type=float, default=3.0)
    ap.add_argument("--no-metabric", action="store_true", help="skip the real METABRIC run")
    ap.add_argument("--export", action="store_true", help="also time a whole-cohort GraphML export")
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--data-dir", type=Path, default=bench_build.DATA)
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="graphonc-bench-stats-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        if not args.no_metabric:
            results.append(bench_config(bench_build.METABRIC_CONFIG, "metabric", args.export, workdir))
        if sizes:
            src = bench_build.Metabric(args.data_dir / "metabric")
            for n in sizes:
                _, config = bench_build.generate_study(src, n, workdir, args.seed, args.mutation_scale)
                results.append(bench_config(config, f"synthetic_{n}", args.export, workdir))
    finally:
        bench_build.finish_workdir(workdir, args)
    report = {"benchmark": "graph-stats", "seed": args.seed, "mutation_scale": args.mutation_scale,
              "machine": bench_build.machine_info(), "results": results}
    return bench_build.emit_report(report, args.json_out)


if __name__ == "__main__":
    main()
