"""Cohort inputs → graph tables (one DataFrame per node type and per edge type).

Pure function of the config and the input files: no randomness, every table sorted by its
keys, so rebuilding the same inputs gives identical tables.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from graphonc.config import CBioPortalInput, GraphConfig, load_config
from graphonc.errors import InputError
from graphonc.graph import schema as S
from graphonc.graph.clinical import patient_table
from graphonc.graph.run import write_graph_run
from graphonc.ingest.cbioportal import read_cbioportal
from graphonc.ingest.cohort import RawCohort
from graphonc.ingest.gene_roles import gene_roles, read_intogen, read_oncokb
from graphonc.ingest.gmt import read_gmt
from graphonc.ingest.plain_tables import read_plain_tables
from graphonc.ingest.symbols import SymbolMap, load_gene_info
from graphonc.ingest.tables import Table
from graphonc.progress import Stages

log = logging.getLogger("graphonc")

BUILD_STAGES = ["genes", "cohort", "clinical", "mutations", "panels", "gene roles", "pathways", "treatments"]


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

    def counts(self) -> dict[str, dict[str, int]]:
        return {"nodes": {k: int(len(v)) for k, v in self.nodes.items()},
                "edges": {S.edge_name(k): int(len(v)) for k, v in self.edges.items()}}


def _edges(src: pd.Series, dst: pd.Series, **props) -> pd.DataFrame:
    """Edge table: first row of each (src, dst) pair, sorted by src then dst (NA last)."""
    df = pd.DataFrame({S.SRC: np.asarray(src, dtype=object), S.DST: np.asarray(dst, dtype=object), **props})
    key = np.zeros(len(df), dtype=np.int64)
    for col in (S.SRC, S.DST):  # one integer key per pair, ordered like the pair (sorted codes)
        codes, uniques = pd.factorize(df[col], sort=True)
        key = key * (len(uniques) + 1) + np.where(codes < 0, len(uniques), codes)
    _, first = np.unique(key, return_index=True)  # sorted keys, index of each one's first occurrence
    return df.iloc[first].reset_index(drop=True)


def add_assay_columns(patients: pd.DataFrame, seq: pd.DataFrame, has_mut: pd.DataFrame) -> None:
    """Patient columns from the mutation modality: ``sequenced``, ``gene_panel``, ``n_mutations``."""
    patients["sequenced"] = patients["id"].isin(set(seq[S.SRC]))
    multi = seq[S.SRC].duplicated(keep=False).to_numpy()  # patients on several panels (rare)
    panel_of = seq.loc[~multi].set_index(S.SRC)[S.DST]
    if multi.any():
        panel_of = pd.concat([panel_of, seq.loc[multi].groupby(S.SRC)[S.DST].agg(lambda s: ";".join(sorted(s)))])
    patients["gene_panel"] = patients["id"].map(panel_of).astype("string")
    patients["n_mutations"] = has_mut.groupby(S.SRC).size().reindex(patients["id"]).fillna(0) \
        .astype("int64").to_numpy()


def read_cohort(cfg: GraphConfig) -> RawCohort:
    if isinstance(cfg.input, CBioPortalInput):
        return read_cbioportal(cfg.input)
    return read_plain_tables(cfg.input, cfg.mutations.columns)


def symbol_map(cfg: GraphConfig) -> SymbolMap:
    if cfg.genes.gene_info is None:
        return SymbolMap.identity(cfg.genes.aliases)
    return load_gene_info(cfg.genes.gene_info, cfg.genes.aliases)


def filter_mutations(mut: pd.DataFrame, cfg: GraphConfig) -> pd.DataFrame:
    spec = cfg.mutations
    vc = mut["variant_class"].fillna("unknown")
    keep = vc.isin(spec.include_variant_classes) if spec.include_variant_classes is not None \
        else ~vc.isin(spec.exclude_variant_classes)
    return mut.loc[keep & mut["gene"].notna()]


def mutation_tables(mut: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Mutation nodes, Patient-HAS_MUTATION edges, Mutation-IN_GENE edges."""
    change = mut["protein_change"].fillna("unknown")
    mut = pd.DataFrame({  # only the columns used below (no copy of the whole mutation table)
        "patient_id": mut["patient_id"].to_numpy(), "mutation_id": (mut["gene"] + ":" + change).to_numpy(),
        "gene": mut["gene"].to_numpy(), "protein_change": change.to_numpy(),
        "variant_class": mut["variant_class"].fillna("unknown").to_numpy(), "vaf": mut["vaf"].to_numpy(),
    }, index=mut.index)
    has = (mut.groupby(["patient_id", "mutation_id"], sort=True, observed=True)["vaf"].max().reset_index())
    has = _edges(has["patient_id"], has["mutation_id"], vaf=has["vaf"].astype("float64"))
    # one row per mutation; its class is the most frequent one (ties: alphabetical), without a Python loop
    vc = (mut
          .groupby(["mutation_id", "gene", "protein_change", "variant_class"], sort=True, observed=True)
          .size().rename("n").reset_index()
          .sort_values(["mutation_id", "n", "variant_class"], ascending=[True, False, True], kind="stable")
          .drop_duplicates("mutation_id"))
    nodes = pd.DataFrame({
        S.ID: vc["mutation_id"].to_numpy(dtype=object),
        "gene": vc["gene"].to_numpy(dtype=object),
        "protein_change": vc["protein_change"].to_numpy(dtype=object),
        "variant_class": vc["variant_class"].to_numpy(dtype=object),
    })
    counts = has.groupby(S.DST).size()
    nodes["n_patients"] = counts.reindex(nodes[S.ID]).fillna(0).astype("int64").to_numpy()
    in_gene = _edges(nodes[S.ID], nodes["gene"])
    return nodes, has, in_gene


def panel_tables(raw: RawCohort, all_genes: pd.DataFrame, symbols: SymbolMap, cfg: GraphConfig
                  ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """GenePanel nodes, Patient-SEQUENCED_WITH edges, GenePanel-COVERS edges.

    Panels without a gene list cover the genes seen (any variant class) in their samples,
    a lower bound that keeps "not assayed" from being read as "wild type"; with
    ``panel_inference: all_assayed`` they cover every gene seen in the cohort.
    """
    samples = raw.samples.dropna(subset=["panel"])
    seen = all_genes[["sample_id", "gene"]].merge(raw.samples[["sample_id", "panel"]], on="sample_id") \
        .dropna(subset=["panel"])
    cohort_genes = set(all_genes["gene"].dropna())
    rows, covers = [], []
    for pid in sorted(set(samples["panel"]) | {p for p, g in raw.panel_genes.items() if g}):
        given = raw.panel_genes.get(pid)
        if given is not None:
            genes = {symbols.resolve(g) or g for g in given}
            inferred = False
        elif cfg.mutations.panel_inference == "all_assayed":
            genes, inferred = cohort_genes, True
        else:
            genes, inferred = set(seen.loc[seen["panel"] == pid, "gene"].dropna()), True
        rows.append((pid, len(genes), inferred))
        covers.extend((pid, g) for g in genes)
    nodes = pd.DataFrame(rows, columns=[S.ID, "n_genes", "inferred"])
    seq = _edges(samples["patient_id"], samples["panel"])
    cov = pd.DataFrame(covers, columns=[S.SRC, S.DST])
    return nodes, seq, _edges(cov[S.SRC], cov[S.DST])


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
    return pw, _edges(mem["gene"], mem["id"])


def build_graph(cfg: GraphConfig, progress: bool = False) -> GraphTables:
    """Build all node and edge tables for the cohort described by ``cfg``.

    Raises:
        InputError: bad input data (file, line, column and a fix in the message).
    """
    stats: dict = {}
    rad = None
    stages = BUILD_STAGES + (["radiomics"] if cfg.radiomics is not None else [])
    with Stages(stages, "build-graph", enabled=progress) as st:
        with st.stage("genes"):
            symbols = symbol_map(cfg)
        with st.stage("cohort"):
            raw = read_cohort(cfg)
        with st.stage("clinical"):
            patients = patient_table(raw, cfg.clinical, cfg.cohort)
            if patients.empty:
                raise InputError("the cohort has no patients.", file=raw.patients.path,
                                 hint="check the clinical file has rows below its header.")
        with st.stage("mutations"):
            harmonised, unknown = symbols.harmonise_series(raw.mutations["gene"])
            all_mut = raw.mutations.assign(gene=harmonised)
            if unknown:
                log.warning("%d gene symbol(s) not in gene_info, kept as given: %s", len(unknown),
                            ", ".join(unknown[:10]))
            kept = filter_mutations(all_mut, cfg)
            stats["mutation_rows"] = {"read": int(len(raw.mutations)), "kept": int(len(kept)),
                                      "unknown_symbols": unknown}
            mut_nodes, has_mut, in_gene = mutation_tables(kept)
        with st.stage("panels"):
            panel_nodes, seq, covers = panel_tables(raw, all_mut, symbols, cfg)
        with st.stage("gene roles"):
            mutated = set(mut_nodes["gene"])
            graph_genes = mutated | set(covers[S.DST])
            intogen = read_intogen(cfg.genes.intogen, symbols) if cfg.genes.intogen else None
            oncokb = read_oncokb(cfg.genes.oncokb, symbols) if cfg.genes.oncokb else None
            genes = gene_roles(pd.Series(sorted(graph_genes), dtype=object), intogen, oncokb).rename(
                columns={"gene": S.ID})
            codes, mut_ids = pd.factorize(has_mut[S.DST])  # split each distinct mutation id once
            gene_of = pd.Series(mut_ids, dtype=object).str.split(":", n=1).str[0].to_numpy(dtype=object)
            n_pat = has_mut.assign(gene=gene_of[codes]).groupby("gene")[S.SRC].nunique()
            genes["n_patients_mutated"] = n_pat.reindex(genes[S.ID]).fillna(0).astype("int64").to_numpy()
        with st.stage("pathways"):
            stats["pathways"] = {}
            pathways, in_pw = _pathway_tables(cfg, symbols, graph_genes, mutated, stats["pathways"])
        with st.stage("treatments"):
            tr_nodes, received = treatment_tables(raw, cfg)
            patients = add_treatment_columns(patients, raw, cfg)
        if cfg.radiomics is not None:
            with st.stage("radiomics"):
                from graphonc.radiomics.graph import radiomics_tables

                rad = radiomics_tables(cfg.radiomics, patients["id"])

    add_assay_columns(patients, seq, has_mut)
    if rad is not None:
        patients = patients.merge(rad.patient_columns, on="id", how="left", validate="one_to_one")
    patients = patients.sort_values("id", kind="stable").reset_index(drop=True)
    nodes = {S.PATIENT: patients, S.MUTATION: mut_nodes, S.GENE: genes, S.PATHWAY: pathways,
             S.TREATMENT: tr_nodes, S.GENE_PANEL: panel_nodes}
    edges = {S.HAS_MUTATION: has_mut, S.IN_GENE: in_gene, S.IN_PATHWAY: in_pw, S.RECEIVED: received,
             S.SEQUENCED_WITH: seq, S.COVERS: covers}
    stats["timings_s"] = st.timings
    tables = GraphTables(nodes=nodes, edges=edges, stats=stats, files=raw.files + list(cfg.input_paths().values()))
    # per-patient treatment status (received / not / unknown) for models that may see treatments
    tables.patient_features["treatments"] = [t.model_dump(include={"name", "column", "received_values"})
                                             for t in cfg.treatments]
    if rad is not None:
        nodes[S.RADIOMIC_PHENOTYPE], edges[S.HAS_PHENOTYPE] = rad.nodes, rad.edges
        stats["radiomics"] = rad.stats
        tables.files += rad.files
        tables.patient_features["radiomics"] = rad.feature_columns
        tables.artifacts["radiomics/phenotype_model.json"] = rad.model.dumps()
    return tables


def treatment_tables(raw: RawCohort, cfg: GraphConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, src, dst = [], [], []
    for t in cfg.treatments:
        values = raw.column(t.column, Table.text, f"treatment {t.name!r}")
        got = values[values.isin(t.received_values)]
        rows.append((t.name, t.column, int(len(got))))
        src.extend(got.index)
        dst.extend([t.name] * len(got))
    nodes = pd.DataFrame(rows, columns=[S.ID, "source_column", "n_patients"]).sort_values(S.ID).reset_index(drop=True)
    return nodes, _edges(pd.Series(src, dtype=object), pd.Series(dst, dtype=object))


def add_treatment_columns(patients: pd.DataFrame, raw: RawCohort, cfg: GraphConfig) -> pd.DataFrame:
    """Store each treatment's source column (text) on Patient nodes, so a missing value stays
    distinguishable from "not received" (a RECEIVED edge only says "received")."""
    for col in dict.fromkeys(t.column for t in cfg.treatments):
        if col not in patients.columns:
            values = raw.column(col, Table.text, "treatments").astype("string")
            patients[col] = values.reindex(patients["id"]).to_numpy()
    return patients


def build_run(config_path, out, progress: bool = False) -> dict:
    """The ``build-graph`` stage: read the config, build the tables, write the run folder.

    Returns the manifest. Nothing is written unless the whole build succeeds.
    """
    t0 = time.perf_counter()
    cfg = load_config(config_path)
    tables = build_graph(cfg, progress=progress)
    return write_graph_run(Path(out), tables, cfg, Path(config_path).read_text(encoding="utf-8"), time.perf_counter() - t0)
