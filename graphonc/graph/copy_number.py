"""Copy-number modality: ``(:Patient)-[:HAS_CNA {value, call}]->(:Gene)``.

Only the two high-level calls make edges: ``value >= 2`` → ``call = "AMP"`` (amplification),
``value <= -2`` → ``call = "HOMDEL"`` (deep deletion). Gains, shallow losses (and MSK's -1.5)
are counted in the stats, not linked. A patient with several profiled samples gets one edge
per gene: the value largest in magnitude (an amplification wins a tie).

Not profiled is not "not altered": calls of samples not profiled (absent from the CNA case
list or without a CNA panel in the panel matrix) are dropped, and so are calls for genes off the
sample's CNA panel when the panel's gene list is known. Patient columns: ``cna_profiled``
(bool), ``cna_panel`` (panel id(s) or NA) and ``n_cna`` (genes amplified or deeply deleted).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from graphonc.graph import schema as S
from graphonc.graph.modalities import BuildInputs, ModalityTables, harmonise
from graphonc.graph.tables import edge_table

AMP, HOMDEL = "AMP", "HOMDEL"


def panel_columns(ids: pd.Series, panel: pd.Series, samples: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """``<prefix>_profiled`` and ``<prefix>_panel`` per patient from the profiled samples' panels."""
    prof = pd.DataFrame({"sample_id": panel.index.to_numpy(dtype=object), "panel": panel.to_numpy(dtype=object)})
    prof = prof.merge(samples[["sample_id", "patient_id"]], on="sample_id")
    names = prof.dropna(subset=["panel"]).groupby("patient_id")["panel"].agg(lambda s: ";".join(sorted(set(s))))
    return pd.DataFrame({S.ID: ids.to_numpy(),
                         f"{prefix}_profiled": ids.isin(set(prof["patient_id"])).to_numpy(),
                         f"{prefix}_panel": pd.array(ids.map(names), dtype="string")})


def on_panel(df: pd.DataFrame, panel: pd.Series, inputs: BuildInputs, gene_cols: list[str]) -> np.ndarray:
    """Rows whose sample's panel gene list is unknown or holds one of ``gene_cols``' genes."""
    panel_of = df["sample_id"].map(panel)
    keep = np.ones(len(df), dtype=bool)
    for pid, genes in inputs.raw.panel_genes.items():
        if genes is None:
            continue
        listed = {inputs.symbols.resolve(g) or g for g in genes}
        rows = (panel_of == pid).to_numpy()
        hit = np.zeros(len(df), dtype=bool)
        for c in gene_cols:
            hit |= df[c].isin(listed).to_numpy()
        keep &= ~rows | hit
    return keep


def is_linked(value: pd.Series) -> np.ndarray:
    """Which discrete copy-number values make an edge: amplifications (>= 2) and deep deletions (<= -2)."""
    v = value.to_numpy(dtype="float64")
    return (v >= 2) | (v <= -2)


def cna_edges(calls: pd.DataFrame) -> pd.DataFrame:
    """HAS_CNA edges (src, dst, value, call) from profiled calls (columns patient_id, gene, value).

    Values that make no edge (gains, shallow losses, 0) are left out; a patient with several
    calls for one gene keeps the one largest in magnitude (an amplification wins a tie). The
    builder and a new patient of the service (``graphonc.serve.newpatient``) share this rule.
    """
    kept = calls.loc[is_linked(calls["value"])].assign(abs=lambda d: d["value"].abs())
    kept = kept.sort_values(["patient_id", "gene", "abs", "value"], ascending=[True, True, False, False],
                            kind="stable").drop_duplicates(["patient_id", "gene"])
    call = np.where(kept["value"].to_numpy() > 0, AMP, HOMDEL)
    return edge_table(kept["patient_id"], kept["gene"], value=kept["value"].round().astype("int64").to_numpy(),
                      call=call.astype(object))


def cna_tables(inputs: BuildInputs) -> ModalityTables:
    raw = inputs.raw
    calls = raw.cna if raw.cna is not None else pd.DataFrame(columns=["sample_id", "patient_id", "gene", "value"])
    panel = raw.profiled.get("cna", pd.Series(dtype=object))
    gene, unknown = harmonise(inputs.symbols, calls["gene"], "copy number")
    calls = calls.assign(gene=gene)
    profiled = calls["sample_id"].isin(set(panel.index)).to_numpy()
    on = on_panel(calls, panel, inputs, ["gene"])
    strong = is_linked(calls["value"])
    edges = cna_edges(calls.loc[profiled & on])
    ids = inputs.patients[S.ID]
    cols = panel_columns(ids, panel, raw.samples, "cna")
    cols["n_cna"] = edges.groupby(S.SRC).size().reindex(ids.to_numpy()).fillna(0).astype("int64").to_numpy()
    by_call = edges.groupby([S.DST, "call"]).size().unstack(fill_value=0)
    genes = pd.DataFrame({S.ID: by_call.index.to_numpy(dtype=object)})
    for c, name in ((AMP, "n_patients_amplified"), (HOMDEL, "n_patients_deep_deleted")):
        genes[name] = by_call[c].to_numpy(dtype="int64") if c in by_call else np.zeros(len(genes), "int64")
    stats = {"cna": {
        "nonzero_calls_read": int(len(calls)), "samples_profiled": int(len(panel)),
        "patients_profiled": int(cols["cna_profiled"].sum()),
        "calls_of_unprofiled_samples": int((~profiled).sum()), "calls_off_panel": int((profiled & ~on).sum()),
        "low_level_calls_ignored": int((profiled & on & ~strong).sum()),
        "amplifications": int((edges["call"] == AMP).sum()), "deep_deletions": int((edges["call"] == HOMDEL).sum()),
        "unknown_symbols": unknown}}
    altered = set(edges[S.DST])
    return ModalityTables(edges={S.HAS_CNA: edges}, stats=stats, patient_columns=cols,
                          patient_features={"assays": ["cna_profiled"]}, genes=altered, altered_genes=altered,
                          gene_columns=genes)
