"""A plain long-format mutation table (CSV or TSV), for cohorts that do not come as MAF.

Columns (names configurable): patient_id, gene, protein_change[, variant_class, vaf].
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from graphonc.config import MutationTableColumns
from graphonc.errors import InputError
from graphonc.ingest.tables import read_table


def read_mutation_table(path: Path, cols: MutationTableColumns) -> pd.DataFrame:
    """Long mutation table; ``sample_id`` equals ``patient_id``."""
    optional = [c for c in (cols.variant_class, cols.vaf) if c]
    t = read_table(path, what="mutation table", usecols=[cols.patient_id, cols.gene, cols.protein_change, *optional],
                   required=[cols.patient_id, cols.gene, cols.protein_change])
    pid = t.text(cols.patient_id)
    gene = t.text(cols.gene)
    for name, s in ((cols.patient_id, pid), (cols.gene, gene)):
        if s.isna().any():
            line = int(s.isna().idxmax())
            raise InputError("empty value.", file=path, line=line, column=name,
                             hint="every mutation row needs a patient id and a gene symbol.")
    vclass = t.text(cols.variant_class) if cols.variant_class in t.df.columns else pd.Series(None, index=t.df.index)
    vaf = t.numeric(cols.vaf) if cols.vaf in t.df.columns else pd.Series(np.nan, index=t.df.index)
    if ((vaf < 0) | (vaf > 1)).any():
        line = int(((vaf < 0) | (vaf > 1)).idxmax())
        raise InputError(f"VAF {vaf.loc[line]} is outside [0, 1].", file=path, line=line, column=cols.vaf,
                         hint="give the variant allele fraction as a fraction, not a percentage.")
    change = t.text(cols.protein_change).fillna("unknown")
    return pd.DataFrame({
        "patient_id": pid, "sample_id": pid, "gene": gene, "protein_change": change,
        "variant_class": vclass.fillna("unknown"), "vaf": vaf.astype("float64"), "line": t.df.index.to_numpy(),
    })
