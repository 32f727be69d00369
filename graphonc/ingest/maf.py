"""MAF (Mutation Annotation Format) files, as cBioPortal ships them.

Reads only the columns graphonc needs (fast on multi-million-row files) and returns the
long mutation table of :data:`graphonc.ingest.cohort.MUTATION_COLUMNS`. The protein change
is ``HGVSp_Short`` (``p.H1047R``); rows without one (splice, UTR) fall back to the coding
change (``HGVSc``) or the genomic position so distinct variants stay distinct.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from graphonc.ingest.tables import Table, read_table

REQUIRED = ["Hugo_Symbol", "Tumor_Sample_Barcode", "Variant_Classification"]
#: Columns that make a mutation's identity (gene, sample, protein change or its fallbacks): every
#: row must reach those the header has; a row cut short before one would silently become another
#: mutation. Rows may drop trailing fields after them (the read counts, when last, for example).
IDENTITY = REQUIRED + ["HGVSp_Short", "HGVSc", "Chromosome", "Start_Position", "Reference_Allele",
                       "Tumor_Seq_Allele2"]
OPTIONAL = IDENTITY[len(REQUIRED):] + ["t_ref_count", "t_alt_count"]


def sequenced_samples(path: Path) -> list[str] | None:
    """Sample ids of a ``#Sequenced_Samples:`` header line, or None when there is none."""
    with open(path, encoding="utf-8-sig", newline=None) as fh:  # read_maf has checked it is UTF-8
        for line in fh:
            if not line.startswith("#"):
                return None
            if line.startswith("#Sequenced_Samples:"):
                return line.split(":", 1)[1].split()
    return None


def _protein_change(t: Table) -> pd.Series:
    cols = t.df.columns

    def col(name: str) -> pd.Series:
        return t.text(name) if name in cols else pd.Series(None, index=t.df.index, dtype=object)

    change = col("HGVSp_Short")
    hgvsc = col("HGVSc")
    change = change.fillna(hgvsc)
    need = change.isna().to_numpy()
    if need.any() and {"Chromosome", "Start_Position", "Reference_Allele", "Tumor_Seq_Allele2"} <= set(cols):
        d = t.df.loc[need]  # build the genomic fallback only for the rows that still lack a change
        genomic = ("g." + d["Chromosome"].astype(str) + ":" + d["Start_Position"].astype(str)
                   + d["Reference_Allele"].astype(str) + ">" + d["Tumor_Seq_Allele2"].astype(str))
        change = change.fillna(genomic)
    return change


def _vaf(t: Table) -> pd.Series:
    if not {"t_ref_count", "t_alt_count"} <= set(t.df.columns):
        return pd.Series(np.nan, index=t.df.index)
    ref = t.numeric("t_ref_count")
    alt = t.numeric("t_alt_count")
    depth = ref + alt
    return (alt / depth.where(depth > 0)).astype("float64")


def read_maf(path: Path) -> pd.DataFrame:
    """Long mutation table from a MAF. ``patient_id`` is left empty (filled from sample ids)."""
    t = read_table(path, what="MAF mutation file", usecols=REQUIRED + OPTIONAL, required=REQUIRED,
                   row_required=IDENTITY)
    out = pd.DataFrame({
        "patient_id": None,
        "sample_id": t.text("Tumor_Sample_Barcode"),
        "gene": t.text("Hugo_Symbol"),
        "protein_change": _protein_change(t),
        "variant_class": t.text("Variant_Classification"),
        "vaf": _vaf(t),
        "line": t.df.index.to_numpy(),
    })
    return out
