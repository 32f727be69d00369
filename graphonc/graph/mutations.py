"""The mutation modality's tables: Mutation nodes, HAS_MUTATION / IN_GENE edges, gene panels.

Also used on their own by ``model/embed.py`` to read new patients the way the run was built.
"""
from __future__ import annotations

import pandas as pd

from graphonc.config import GraphConfig
from graphonc.graph import schema as S
from graphonc.graph.tables import edge_table
from graphonc.ingest.cohort import RawCohort
from graphonc.ingest.symbols import SymbolMap


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
    has = edge_table(has["patient_id"], has["mutation_id"], vaf=has["vaf"].astype("float64"))
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
    in_gene = edge_table(nodes[S.ID], nodes["gene"])
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
    seq = edge_table(samples["patient_id"], samples["panel"])
    cov = pd.DataFrame(covers, columns=[S.SRC, S.DST])
    return nodes, seq, edge_table(cov[S.SRC], cov[S.DST])
