"""``graphonc export --format graphml|gexf``: the run's graph for Cytoscape and Gephi.

::

    <run>/export/<fmt>/cohort.<fmt>                          the whole graph (default)
    <run>/export/<fmt>/patients_<hash>.<fmt>                 --patients ID ...
    <run>/export/<fmt>/neighbourhood_<id>_<h>hops.<fmt>      --neighbourhood ID --hops h
    <file>.mapping.json                                      what was mapped to fit XML (graphonc.graph.network)

``--with-similar`` adds the model's ``SIMILAR_TO {score, rank, model}`` edges (each patient's
top-k FAISS neighbours, the same pairs ``--format neo4j`` writes) between exported patients.
Each file is written atomically; its size is estimated and logged before it is written.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import graphonc
from graphonc.errors import GraphoncError
from graphonc.graph import network as N
from graphonc.graph import schema as S
from graphonc.graph.outputs import claim_file, is_graphonc_file, listed_in
from graphonc.graph.run import GraphRun, atomic_file
from graphonc.progress import make_progress

log = logging.getLogger("graphonc")


@dataclass
class NetworkExport:
    path: Path
    mapping_path: Path
    selection: str
    nodes: int
    edges: int
    estimated_bytes: int
    bytes: int
    mapped: dict


def similar_edges(run: GraphRun, k: int, model_name: str | None = None, device: str = "auto"):
    """SIMILAR_TO pairs (src, dst, score, rank, model) from the run's model and index."""
    from graphonc.export import faiss_pairs, patient_index
    from graphonc.search.index import digest, read_embeddings

    emb = read_embeddings(run.root)
    pairs = faiss_pairs(patient_index(run, emb, device), k)
    pairs["model"] = model_name or f"graphonc-{digest(emb[S.ID])}"
    return pairs


def _default_path(run: GraphRun, fmt: str, sel: N.Selection) -> Path:
    if sel.kind == "patients":
        from graphonc.search.index import digest

        name = f"patients_{digest(sorted(sel.patients))}"
    elif sel.kind == "neighbourhood":
        name = f"neighbourhood_{re.sub(r'[^A-Za-z0-9_.-]', '_', sel.centre)}_{sel.hops}hops"
    else:
        name = "cohort"
    return run.layout.export_dir(fmt) / f"{name}.{fmt}"


def export_graph(run_dir: Path, fmt: str, *, patients: Sequence[str] = (), neighbourhood: str | None = None,
                 hops: int = 2, with_similar: bool = False, k: int = 10, model_name: str | None = None,
                 out: Path | None = None, device: str = "auto", progress: bool = False) -> NetworkExport:
    """Write the whole graph, some patients or a neighbourhood as GraphML or GEXF (see module doc)."""
    if fmt not in N.WRITERS:
        raise GraphoncError(f"unknown graph format {fmt!r}; expected one of {', '.join(N.WRITERS)}.")
    if patients and neighbourhood:
        raise GraphoncError("give either --patients or --neighbourhood, not both.")
    if k < 1:
        raise GraphoncError(f"-k must be at least 1, got {k}.")
    run = GraphRun.open(run_dir)
    sel = N.Selection("patients", tuple(dict.fromkeys(patients))) if patients else \
        N.Selection("neighbourhood", centre=neighbourhood, hops=hops) if neighbourhood else N.Selection()
    path = Path(out) if out is not None else _default_path(run, fmt, sel)
    if path.suffix.lower() != f".{fmt}":
        raise GraphoncError(f"--out {path}: a {fmt} export is a .{fmt} file. Fix: give a path ending in .{fmt}.")
    side = path.with_name(path.name + ".mapping.json")
    # a GEXF file carries no stamp of its own: it is ours when our sidecar beside it names it
    ours = listed_in(side, "graph_file") if fmt == "gexf" else is_graphonc_file
    claim_file(path, ours=ours)  # before the work: never replace a file graphonc did not write
    claim_file(side)

    tables = N.GraphTables.of_run(run)
    similar = similar_edges(run, k, model_name, device) if with_similar else None
    total = sum(map(len, tables.nodes.values())) + sum(map(len, tables.edges.values())) \
        + (len(similar) if similar is not None else 0)
    with make_progress(progress) as bar:
        task = bar.add_task(f"{fmt}: building the graph ({sel.describe()})",
                            total=total if sel.kind == "cohort" else None)
        g, mapping = N.to_networkx(tables, sel, similar, progress=lambda n: bar.advance(task, n))
        bar.update(task, total=g.number_of_nodes() + g.number_of_edges(),
                   completed=g.number_of_nodes() + g.number_of_edges())
        estimate = N.estimate_bytes(g, fmt)
        log.info("%s export of %s (%s): %s nodes, %s edges, about %.1f MB", fmt, run.cohort, sel.describe(),
                 f"{g.number_of_nodes():,}", f"{g.number_of_edges():,}", estimate / 1e6)
        g.graph.update({"cohort": run.cohort, "selection": sel.describe(),
                        "graphonc_version": run.manifest.get("graphonc_version", ""),
                        N.MAPPING_ATTR: mapping.to_json()})
        writing = bar.add_task(f"{fmt}: writing {path.name}", total=None)
        sidecar = {**mapping.to_dict(), "graphonc_version": graphonc.__version__, "graph_file": str(path)}
        with atomic_file(path, claim=True, ours=ours) as tmp, atomic_file(side, claim=True) as tmp_side:
            N.write(g, tmp, fmt)
            tmp_side.write_text(json.dumps(sidecar, ensure_ascii=True, sort_keys=True), encoding="utf-8")
            size = tmp.stat().st_size
        bar.update(writing, total=1, completed=1)
    mapped = {"node_ids": len(mapping.node_ids), "node_properties": len(mapping.node_properties),
              "edge_properties": len(mapping.edge_properties), "values": len(mapping.values)}
    return NetworkExport(path, side, sel.describe(), g.number_of_nodes(), g.number_of_edges(), estimate, size,
                         mapped)
