"""Cohort inputs → graph tables (one DataFrame per node type and per edge type).

Pure function of the config and the input files: no randomness, every table sorted by its
keys, so rebuilding the same inputs gives identical tables.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from graphonc.config import CBioPortalInput, GraphConfig, load_config
from graphonc.errors import InputError
from graphonc.graph import schema as S
from graphonc.graph.clinical import patient_table
from graphonc.graph.modalities import BuildInputs, ModalityTables, enabled_modalities
from graphonc.graph.outputs import claim_dir
from graphonc.graph.run import write_graph_run
from graphonc.graph.stats import graph_stats
from graphonc.graph.tables import edge_table
from graphonc.ingest.cbioportal import read_cbioportal
from graphonc.ingest.cohort import RawCohort
from graphonc.ingest.gene_roles import gene_roles, read_intogen, read_oncokb
from graphonc.ingest.gmt import read_gmt
from graphonc.ingest.plain_tables import read_plain_tables
from graphonc.ingest.symbols import SymbolMap, load_gene_info
from graphonc.ingest.tables import Table
from graphonc.progress import Stages
from graphonc.identifiers import LOADER_KEYS, safe_keys

log = logging.getLogger("graphonc")

#: Build stages after the modalities' own (which are named after the modalities).
AFTER_MODALITIES = ["gene roles", "pathways", "treatments"]


@dataclass
class GraphTables:
    """Node tables (column ``id`` + properties) and edge tables (``src``, ``dst`` + properties)."""

    nodes: dict[str, pd.DataFrame]
    edges: dict[S.EdgeType, pd.DataFrame]
    stats: dict = field(default_factory=dict)
    files: list = field(default_factory=list)
    #: model feature columns added to Patient by a later-stage source, e.g. {"radiomics": ["rad_…"]}
    patient_features: dict[str, list[str]] = field(default_factory=dict)
    #: extra text files for the run folder, relative path → content (e.g. the phenotype model)
    artifacts: dict[str, str] = field(default_factory=dict)
    #: per node label / edge table stem, the columns renamed to safe keys: {original: key} (see
    #: :func:`key_columns`); tables whose columns all were valid keys are absent
    column_keys: dict[str, dict[str, str]] = field(default_factory=dict)
    #: :func:`graphonc.graph.stats.graph_stats` of the tables (manifest ``graph_stats``)
    graph_stats: dict = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, int]]:
        return {"nodes": {k: int(len(v)) for k, v in self.nodes.items()},
                "edges": {S.edge_name(k): int(len(v)) for k, v in self.edges.items()}}


def read_cohort(cfg: GraphConfig) -> RawCohort:
    if isinstance(cfg.input, CBioPortalInput):
        return read_cbioportal(cfg.input)
    return read_plain_tables(cfg.input, cfg.mutations.columns)


def symbol_map(cfg: GraphConfig) -> SymbolMap:
    if cfg.genes.gene_info is None:
        return SymbolMap.identity(cfg.genes.aliases)
    return load_gene_info(cfg.genes.gene_info, cfg.genes.aliases)


def apply_require(raw: RawCohort, cfg: GraphConfig) -> dict:
    """Keep only the patients profiled for every data type in ``input.require``; the counts dropped."""
    dropped = {}
    for assay in cfg.input.require:
        keep = raw.profiled_patients(assay)
        before = len(raw.patient_ids)
        raw.keep_patients(keep)
        dropped[assay] = before - len(raw.patient_ids)
        log.info("input.require %s: %d patient(s) not profiled left the cohort", assay, dropped[assay])
    return dropped


def _pathway_tables(cfg: GraphConfig, symbols: SymbolMap, graph_genes: set[str], mutated: set[str],
                    stats: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    nodes, members = [], []
    for src in cfg.pathways:
        gs = read_gmt(src, symbols)
        sized = gs.pathways[(gs.pathways["n_genes"] >= src.min_genes) & (gs.pathways["n_genes"] <= src.max_genes)]
        mem = gs.members[gs.members["id"].isin(set(sized["id"]))]
        touched = set(mem.loc[mem["gene"].isin(mutated), "id"])
        kept = sized[sized["id"].isin(touched)]
        stats[src.name] = {"sets": int(len(gs.pathways)), "dropped_by_size": int(len(gs.pathways) - len(sized)),
                           "dropped_no_mutated_gene": int(len(sized) - len(kept)), "kept": int(len(kept)),
                           "unmapped_gene_tokens": int(gs.dropped_tokens)}
        log.info("pathways %s: kept %d of %d sets (%d outside %d-%d genes, %d touch no mutated gene)",
                 src.name, len(kept), len(gs.pathways), len(gs.pathways) - len(sized), src.min_genes,
                 src.max_genes, len(sized) - len(kept))
        nodes.append(kept)
        members.append(mem[mem["id"].isin(touched) & mem["gene"].isin(graph_genes)])
    if not nodes:
        return (pd.DataFrame(columns=[S.ID, "source", "name", "n_genes", "n_cohort_genes"]),
                pd.DataFrame(columns=[S.SRC, S.DST]))
    pw = pd.concat(nodes, ignore_index=True).drop_duplicates(S.ID)
    mem = pd.concat(members, ignore_index=True)
    pw["n_cohort_genes"] = mem.groupby("id").size().reindex(pw[S.ID]).fillna(0).astype("int64").to_numpy()
    pw = pw.sort_values(S.ID, kind="stable").reset_index(drop=True)
    return pw, edge_table(mem["gene"], mem["id"])


def _gene_table(cfg: GraphConfig, symbols: SymbolMap, parts: list[ModalityTables]) -> pd.DataFrame:
    """Gene nodes: every gene a modality links to, with roles and each modality's per-gene counts."""
    graph_genes = set().union(*(p.genes for p in parts))
    intogen = read_intogen(cfg.genes.intogen, symbols) if cfg.genes.intogen else None
    oncokb = read_oncokb(cfg.genes.oncokb, symbols) if cfg.genes.oncokb else None
    genes = gene_roles(pd.Series(sorted(graph_genes), dtype=object), intogen, oncokb).rename(columns={"gene": S.ID})
    for p in parts:
        if p.gene_columns is None:
            continue
        counts = p.gene_columns.set_index(S.ID)
        for c in counts.columns:
            genes[c] = counts[c].reindex(genes[S.ID]).fillna(0).astype("int64").to_numpy()
    return genes


def build_graph(cfg: GraphConfig, progress: bool = False) -> GraphTables:
    """Build all node and edge tables for the cohort described by ``cfg``.

    Raises:
        InputError: bad input data (file, line, column and a fix in the message).
    """
    stats: dict = {}
    modalities = enabled_modalities(cfg)
    stages = ["genes", "cohort", "clinical"] + [m.name for m in modalities] + AFTER_MODALITIES
    with Stages(stages, "build-graph", enabled=progress) as st:
        with st.stage("genes"):
            symbols = symbol_map(cfg)
        with st.stage("cohort"):
            raw = read_cohort(cfg)
            if cfg.input.require:
                stats["require_dropped"] = apply_require(raw, cfg)
        with st.stage("clinical"):
            patients = patient_table(raw, cfg.clinical, cfg.cohort)
            if patients.empty:
                raise InputError("the cohort has no patients.", file=raw.patients.path,
                                 hint="check the clinical file has rows below its header"
                                      + (" and what input.require / input.sample_filter keep." if
                                         cfg.input.require or getattr(cfg.input, "sample_filter", None) else "."))
        parts: list[ModalityTables] = []
        for m in modalities:
            with st.stage(m.name):
                parts.append(m.tables(BuildInputs(raw, cfg, symbols, patients)))
        with st.stage("gene roles"):
            genes = _gene_table(cfg, symbols, parts)
        with st.stage("pathways"):
            stats["pathways"] = {}
            altered = set().union(*(p.altered_genes for p in parts))
            pathways, in_pw = _pathway_tables(cfg, symbols, set(genes[S.ID]), altered, stats["pathways"])
        with st.stage("treatments"):
            tr_nodes, received = treatment_tables(raw, cfg)
            patients = add_treatment_columns(patients, raw, cfg)

    nodes = {S.PATIENT: patients, S.GENE: genes, S.PATHWAY: pathways, S.TREATMENT: tr_nodes}
    edges = {S.IN_PATHWAY: in_pw, S.RECEIVED: received}
    tables = GraphTables(nodes=nodes, edges=edges, stats=stats, files=raw.files + list(cfg.input_paths().values()))
    for p in parts:
        nodes.update(p.nodes)
        edges.update(p.edges)
        stats.update(p.stats)
        tables.files += p.files
        for key, cols in p.patient_features.items():
            tables.patient_features.setdefault(key, []).extend(cols)
        tables.artifacts.update(p.artifacts)
        if p.patient_columns is not None:
            patients = patients.merge(p.patient_columns, on=S.ID, how="left", validate="one_to_one")
    nodes[S.PATIENT] = patients.sort_values(S.ID, kind="stable").reset_index(drop=True)
    stats["timings_s"] = st.timings
    t0 = time.perf_counter()
    tables.graph_stats = graph_stats(nodes, edges)
    stats["timings_s"]["graph stats"] = round(time.perf_counter() - t0, 3)
    # per-patient treatment status (received / not / unknown) for models that may see treatments
    tables.patient_features["treatments"] = [t.model_dump(include={"name", "column", "received_values"})
                                             for t in cfg.treatments]
    key_columns(tables)
    return tables


def key_columns(tables: GraphTables) -> None:
    """Rename every column that is not a valid Cypher identifier to its safe key, in place.

    Column names come from the data (clinical headers, radiomic feature names, endpoint names
    of the config) and reach Neo4j as property keys, which Cypher cannot take as parameters:
    :func:`graphonc.identifiers.safe_keys` maps them, and the mapping is recorded in
    ``tables.column_keys`` (then the run manifest), so users keep seeing the original names.
    Model feature lists in ``tables.patient_features`` are renamed with the Patient columns.
    """
    named = list(tables.nodes.items()) + [(S.edge_name(e), df) for e, df in tables.edges.items()]
    for name, df in named:
        keys = safe_keys([str(c) for c in df.columns], taken=LOADER_KEYS)
        changed = {c: k for c, k in keys.items() if c != k}
        if changed:
            df.rename(columns=changed, inplace=True)
            tables.column_keys[name] = changed
    patient = tables.column_keys.get(S.PATIENT, {})

    def renamed(c):  # a column name, or a treatment entry naming its source column
        return {**c, "column": patient.get(c["column"], c["column"])} if isinstance(c, dict) else patient.get(c, c)

    tables.patient_features = {src: [renamed(c) for c in cols] for src, cols in tables.patient_features.items()}


def treatment_tables(raw: RawCohort, cfg: GraphConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, src, dst = [], [], []
    for t in cfg.treatments:
        values = raw.column(t.column, Table.text, f"treatment {t.name!r}")
        got = values[values.isin(t.received_values)]
        rows.append((t.name, t.column, int(len(got))))
        src.extend(got.index)
        dst.extend([t.name] * len(got))
    nodes = pd.DataFrame(rows, columns=[S.ID, "source_column", "n_patients"]).sort_values(S.ID).reset_index(drop=True)
    return nodes, edge_table(pd.Series(src, dtype=object), pd.Series(dst, dtype=object))


def add_treatment_columns(patients: pd.DataFrame, raw: RawCohort, cfg: GraphConfig) -> pd.DataFrame:
    """Store each treatment's source column (text) on Patient nodes, so a missing value stays
    distinguishable from "not received" (a RECEIVED edge only says "received")."""
    for col in dict.fromkeys(t.column for t in cfg.treatments):
        if col not in patients.columns:
            values = raw.column(col, Table.text, "treatments").astype("string")
            patients[col] = values.reindex(patients["id"]).to_numpy()
    return patients


def build_run(config_path, out, progress: bool = False, force: bool = False) -> dict:
    """The ``build-graph`` stage: read the config, build the tables, write the run folder.

    Returns the manifest. Nothing is written unless the whole build succeeds; ``out`` is refused
    before any work unless it is new, empty or a run (one holding later stages only with ``force``).
    """
    t0 = time.perf_counter()
    claim_dir(Path(out), "run", force=force)
    cfg = load_config(config_path)
    tables = build_graph(cfg, progress=progress)
    return write_graph_run(Path(out), tables, cfg, Path(config_path).read_text(encoding="utf-8"),
                           time.perf_counter() - t0, force=force)
