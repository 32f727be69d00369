"""Structural-variant modality: Fusion nodes linked to their partner genes and patients.

::

    (:Patient)-[:HAS_FUSION {sv_class}]->(:Fusion {gene1, gene2, sv_class, intragenic, n_patients})
    (:Fusion)-[:FUSION_PARTNER]->(:Gene)            one edge per partner gene (one if intragenic)

A fusion's id is its two partner genes, ``GENE1::GENE2``, in the order the cohort reports
most often (Site1::Site2; ties alphabetical): TMPRSS2-ERG is reported as TMPRSS2::ERG 279
times and ERG::TMPRSS2 106 times in MSK prostate, and both become ``TMPRSS2::ERG``. An
intragenic rearrangement is ``GENE::GENE``; a partner without a gene symbol (empty, or free
text such as "TMPRSS2 exon 1 to ETV5 exon 6") is ``?``.
``sv_class`` is the most frequent ``Class`` (DELETION, INVERSION, TRANSLOCATION, …).

Same rule as copy number: variants of samples not profiled for structural variants are
dropped, and so are variants none of whose genes is on the sample's panel (when the panel's
gene list is known). Patient columns: ``sv_profiled``, ``sv_panel``, ``n_fusions``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from graphonc.graph import schema as S
from graphonc.graph.copy_number import on_panel, panel_columns
from graphonc.graph.modalities import BuildInputs, ModalityTables, harmonise
from graphonc.graph.tables import edge_table

UNKNOWN_PARTNER = "?"


def _most_frequent(df: pd.DataFrame, key: str, value: str) -> pd.Series:
    """Per ``key``, its most frequent ``value`` (ties: alphabetical)."""
    n = df.groupby([key, value]).size().rename("n").reset_index()
    n = n.sort_values([key, "n", value], ascending=[True, False, True], kind="stable").drop_duplicates(key)
    return n.set_index(key)[value]


def fusion_tables(inputs: BuildInputs) -> ModalityTables:
    raw = inputs.raw
    sv = raw.sv if raw.sv is not None else pd.DataFrame(
        columns=["sample_id", "patient_id", "gene1", "gene2", "sv_class", "event_info"])
    panel = raw.profiled.get("sv", pd.Series(dtype=object))
    # free text in a symbol column ("TMPRSS2 exon 1 to ETV5 exon 6") names no gene: an unknown partner
    text = {c: sv[c].str.contains(r"\s", na=False) for c in ("gene1", "gene2")}
    g1, unknown1 = harmonise(inputs.symbols, sv["gene1"].where(~text["gene1"]), "structural variants")
    g2, unknown2 = harmonise(inputs.symbols, sv["gene2"].where(~text["gene2"]), "structural variants")
    sv = sv.assign(gene1=g1, gene2=g2)
    profiled = sv["sample_id"].isin(set(panel.index)).to_numpy()
    on = on_panel(sv, panel, inputs, ["gene1", "gene2"])
    named = (sv["gene1"].notna() | sv["gene2"].notna()).to_numpy()
    kept = sv.loc[profiled & on & named].copy()
    a = kept["gene1"].fillna(UNKNOWN_PARTNER).to_numpy(dtype=object)
    b = kept["gene2"].fillna(UNKNOWN_PARTNER).to_numpy(dtype=object)
    pair = np.where(a <= b, a + "::" + b, b + "::" + a)  # orientation-free key
    kept["pair"], kept["ordered"] = pair, a + "::" + b
    kept["sv_class"] = kept["sv_class"].fillna("unknown")
    fusion_of_pair = _most_frequent(kept, "pair", "ordered")
    kept["fusion"] = kept["pair"].map(fusion_of_pair).to_numpy(dtype=object)

    first = kept.sort_values(["patient_id", "fusion", "sv_class"], kind="stable")  # a patient's first class wins
    has = edge_table(first["patient_id"], first["fusion"], sv_class=first["sv_class"].to_numpy(dtype=object))
    ids = sorted(set(kept["fusion"]))
    parts = pd.Series(ids, dtype=object).str.split("::", n=1)
    nodes = pd.DataFrame({S.ID: np.asarray(ids, dtype=object), "gene1": parts.str[0].to_numpy(dtype=object),
                          "gene2": parts.str[1].to_numpy(dtype=object)})
    nodes["sv_class"] = _most_frequent(kept, "fusion", "sv_class").reindex(ids).to_numpy(dtype=object)
    nodes["intragenic"] = (nodes["gene1"] == nodes["gene2"]).to_numpy()
    nodes["n_patients"] = has.groupby(S.DST).size().reindex(ids).fillna(0).astype("int64").to_numpy()
    partners = pd.concat([nodes[[S.ID, "gene1"]].set_axis([S.SRC, S.DST], axis=1),
                          nodes[[S.ID, "gene2"]].set_axis([S.SRC, S.DST], axis=1)])
    partners = partners[partners[S.DST] != UNKNOWN_PARTNER]
    partner_edges = edge_table(partners[S.SRC], partners[S.DST])

    pids = inputs.patients[S.ID]
    cols = panel_columns(pids, panel, raw.samples, "sv")
    cols["n_fusions"] = has.groupby(S.SRC).size().reindex(pids.to_numpy()).fillna(0).astype("int64").to_numpy()
    fused = has.merge(partner_edges, left_on=S.DST, right_on=S.SRC, suffixes=("", "_gene"))
    n_fused = fused.groupby(f"{S.DST}_gene")[S.SRC].nunique()
    genes = pd.DataFrame({S.ID: n_fused.index.to_numpy(dtype=object), "n_patients_fused": n_fused.to_numpy()})
    stats = {"sv": {
        "rows_read": int(len(sv)), "samples_profiled": int(len(panel)),
        "patients_profiled": int(cols["sv_profiled"].sum()),
        "rows_of_unprofiled_samples": int((~profiled).sum()), "rows_off_panel": int((profiled & ~on).sum()),
        "rows_without_gene": int((profiled & on & ~named).sum()),
        "partners_not_a_symbol": int(text["gene1"].sum() + text["gene2"].sum()), "fusions": int(len(nodes)),
        "patient_fusion_edges": int(len(has)), "unknown_symbols": sorted(set(unknown1) | set(unknown2))}}
    partner_genes = set(partner_edges[S.DST])
    return ModalityTables(nodes={S.FUSION: nodes}, edges={S.HAS_FUSION: has, S.FUSION_PARTNER: partner_edges},
                          stats=stats, patient_columns=cols, patient_features={"assays": ["sv_profiled"]},
                          genes=partner_genes, altered_genes=partner_genes, gene_columns=genes)
