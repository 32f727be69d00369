"""cBioPortal copy-number and structural-variant files, and which samples were profiled for them.

* Discrete CNA (``data_CNA.txt``): ``Hugo_Symbol`` (optionally ``Entrez_Gene_Id``, ``Cytoband``)
  then one column per sample; values -2 deep (homozygous) deletion, -1 shallow loss, 0
  neutral, 1 gain, 2 amplification (MSK also writes -1.5); empty/NA = this gene was not
  profiled in this sample. :func:`read_cna` returns the long table of the non-zero values.
* Structural variants (``data_sv.txt``): one row per event with ``Sample_Id``,
  ``Site1_Hugo_Symbol``, ``Site2_Hugo_Symbol``, ``Class``, ``Event_Info``, ``SV_Status``.
* Profiled samples: a sample was profiled for a data type when it is in the data file (CNA:
  a column; SV: any sample), in the case list (``case_lists/cases_cna.txt`` …) when there is
  one, and has a panel in that type's ``data_gene_panel_matrix.txt`` column when there is one.
  Not profiled is not "no alteration": graph builders must keep the two apart.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from graphonc.errors import InputError
from graphonc.ingest.tables import read_table, read_text_lines

#: Columns of the long CNA table.
CNA_COLUMNS = ["sample_id", "patient_id", "gene", "value", "line"]
#: Columns of the SV table.
SV_COLUMNS = ["sample_id", "patient_id", "gene1", "gene2", "sv_class", "event_info", "line"]
#: Non-sample columns a CNA file may have before the sample columns.
_CNA_META = ("Hugo_Symbol", "Entrez_Gene_Id", "Cytoband")


def read_case_list(path: Path) -> set[str]:
    """Sample ids of a cBioPortal case list file (its ``case_list_ids:`` line)."""
    for line in read_text_lines(path, "case list"):
        key, _, value = line.partition(":")
        if key.strip() == "case_list_ids":
            return {s for s in value.replace(",", "\t").split() if s}
    raise InputError("a case list needs a 'case_list_ids:' line.", file=path,
                     hint="see cBioPortal's case list format (tab-separated sample ids after 'case_list_ids:').")


def _to_patient(sample_ids: pd.Series, to_patient: dict[str, str], file: Path, lines, column) -> pd.Series:
    pids = sample_ids.map(to_patient)
    orphan = pids.isna().to_numpy()
    if orphan.any():
        i = int(orphan.argmax())
        line = int(np.asarray(lines)[i]) if lines is not None else 1
        col = column if isinstance(column, str) else str(np.asarray(column)[i])
        raise InputError(f"sample {sample_ids.iloc[i]!r} is not in the clinical sample file.", file=file, line=line,
                         column=col, hint="add the sample to the clinical sample file or remove its data.")
    return pids


def read_cna(path: Path, to_patient: dict[str, str]) -> tuple[pd.DataFrame, list[str]]:
    """(non-zero calls as a long table with :data:`CNA_COLUMNS`, the file's sample ids).

    ``line`` is the file line of the gene's row. A value that is not a number raises an
    InputError naming the line and the sample column.
    """
    t = read_table(path, what="copy-number file", required=["Hugo_Symbol"])
    samples = [c for c in t.df.columns if c not in _CNA_META]
    _to_patient(pd.Series(samples, dtype=object), to_patient, path, None, samples)
    genes = t.text("Hugo_Symbol")
    cells = t.df[samples].to_numpy(dtype=object)
    codes, distinct = pd.factorize(cells.ravel())  # a handful of distinct strings: parse each once
    codes = codes.reshape(cells.shape)
    text = pd.Series(distinct, dtype=object).str.strip()
    missing = text.isin(t.missing).to_numpy()
    values = pd.to_numeric(text.where(~missing), errors="coerce").to_numpy(dtype="float64")
    with np.errstate(invalid="ignore"):
        bad = (np.isnan(values) & ~missing) | (np.abs(values) > 2)  # discrete calls: inf, 1e308 are not
    if bad.any():
        r, c = np.argwhere(bad[codes])[0]
        raise InputError(f"{cells[r, c]!r} is not a discrete copy-number value (-2 to 2).", file=path,
                         line=int(t.df.index[r]),
                         column=samples[c], hint="write -2, -1, 0, 1 or 2, or leave the cell empty (NA) "
                                                 "where the gene was not profiled.")
    nonzero = ~np.isnan(values) & (values != 0)
    r, c = np.nonzero(nonzero[codes])
    long = pd.DataFrame({"sample_id": np.asarray(samples, dtype=object)[c],
                         "gene": genes.to_numpy(dtype=object)[r],
                         "value": values[codes[r, c]], "line": t.df.index.to_numpy()[r]})
    long = long.dropna(subset=["gene"])
    long.insert(1, "patient_id", long["sample_id"].map(to_patient).to_numpy(dtype=object))
    return long[CNA_COLUMNS].reset_index(drop=True), samples


def read_sv(path: Path, to_patient: dict[str, str]) -> pd.DataFrame:
    """Somatic structural variants with :data:`SV_COLUMNS` (germline rows are dropped)."""
    cols = ["Sample_Id", "Site1_Hugo_Symbol", "Site2_Hugo_Symbol", "Class", "Event_Info", "SV_Status"]
    t = read_table(path, what="structural-variant file", usecols=cols, required=["Sample_Id", "Site1_Hugo_Symbol"])

    def col(name: str) -> pd.Series:
        return t.text(name) if name in t.df.columns else pd.Series(None, index=t.df.index, dtype=object)

    sids = col("Sample_Id")
    if sids.isna().any():
        raise InputError("empty sample id.", file=path, line=int(sids.isna().idxmax()), column="Sample_Id",
                         hint="fill in the sample id or delete the row.")
    out = pd.DataFrame({"sample_id": sids, "patient_id": _to_patient(sids, to_patient, path, t.df.index, "Sample_Id"),
                        "gene1": col("Site1_Hugo_Symbol"), "gene2": col("Site2_Hugo_Symbol"),
                        "sv_class": col("Class"), "event_info": col("Event_Info"), "line": t.df.index.to_numpy()})
    somatic = col("SV_Status").fillna("SOMATIC").str.upper() != "GERMLINE"
    return out.loc[somatic.to_numpy()].reset_index(drop=True)


def profiled_samples(candidates: list[str], case_list: set[str] | None, matrix_panel: pd.Series | None
                     ) -> pd.Series:
    """Panel of each profiled sample (index sample id; value panel id, or None when unknown).

    ``candidates`` are the samples the data file can speak for; ``case_list`` and
    ``matrix_panel`` (the panel matrix column of this data type, None = no column) narrow them.
    """
    ids = pd.Index(candidates, dtype=object)
    if case_list is not None:
        ids = ids[ids.isin(list(case_list))]
    if matrix_panel is None:
        return pd.Series(None, index=ids, dtype=object)
    panel = matrix_panel.reindex(ids)
    return panel[panel.notna()].astype(object)
