"""Feature tables → one row per patient.

Reads either the ``features.parquet`` written by ``graphonc radiomics extract`` or a published
table of precomputed features (CSV/TSV, e.g. HN1's ``HN_Radiomics.csv``), configured by a
:class:`~graphonc.radiomics_config.FeatureTableSpec`:

* the patient id column and, for tables with several regions per patient, the ROI column and
  the ROIs to keep; remaining duplicates are an error, averaged, or the largest ROI is kept;
* feature columns are the numeric columns other than the id, ROI, ``case_id``, ``label``,
  unnamed (index) columns and ``ignore_columns``; non-numeric columns (site, scanner,
  modality, …) are kept as per-patient metadata (the batch column for harmonisation);
* column names are mapped to pyradiomics names: explicit ``columns`` renames first, then a bare
  pyradiomics feature name (``Mean``, ``MeshVolume``) gets its class prefix
  (``original_firstorder_Mean``), so extracted and published features line up.
"""
from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from graphonc.errors import InputError, did_you_mean
from graphonc.ingest.tables import check_ids, read_table, require_file
from graphonc.radiomics_config import FeatureTableSpec

log = logging.getLogger("graphonc")

#: Never features: ids and the mask label of the extraction output.
NON_FEATURE = ("case_id", "label")
_PREFIXED = re.compile(r"^[A-Za-z0-9-]+(?:-[A-Za-z0-9.-]+)*_(shape|shape2D|firstorder|glcm|glrlm|glszm|gldm|ngtdm)_\w+$")


@dataclass
class PatientFeatures:
    """Radiomic features per patient.

    Attributes:
        values: float64, index ``patient_id`` (sorted), one column per feature (pyradiomics names).
        meta: text columns per patient (same index): site, scanner, modality, … (may be empty).
        source: the table it was read from.
    """

    values: pd.DataFrame
    meta: pd.DataFrame
    source: Path

    def batch(self, column: str | None) -> pd.Series | None:
        """The batch (site/scanner) per patient, or None when ``column`` is None.

        Raises:
            InputError: the column is not in the table, or a patient has no value.
        """
        if column is None:
            return None
        if column not in self.meta.columns:
            raise InputError(f"batch column {column!r} not found.{did_you_mean(column, self.meta.columns)}",
                             file=self.source, column=column,
                             hint="add the site/scanner column to the manifest (it is carried into the features) "
                                  "or correct phenotypes.batch_column.")
        b = self.meta[column]
        if b.isna().any():
            pid = b.index[b.isna()][0]
            raise InputError(f"patient {pid!r} has no {column} value.", file=self.source, column=column,
                             hint="fill in the site/scanner of every case (harmonisation needs it).")
        return b.astype(str)


@functools.lru_cache(maxsize=1)
def pyradiomics_names() -> dict[str, list[str]]:
    """Bare pyradiomics feature name → the classes that define it (3-D ``shape`` preferred over
    ``shape2D``)."""
    import radiomics

    out: dict[str, list[str]] = {}
    for cls, klass in sorted(radiomics.getFeatureClasses().items()):
        for name in klass.getFeatureNames():
            out.setdefault(name, []).append(cls)
    for name, classes in out.items():
        if "shape" in classes and "shape2D" in classes:
            classes.remove("shape2D")
    return out


def canonical_name(column: str, path: Path) -> str:
    """``Mean`` → ``original_firstorder_Mean``; prefixed names and unknown names unchanged.

    Raises:
        InputError: a bare name that several pyradiomics classes define (``Contrast``).
    """
    if _PREFIXED.match(column):
        return column
    classes = pyradiomics_names().get(column)
    if not classes:
        return column
    if len(classes) > 1:
        options = ", ".join(f"original_{c}_{column}" for c in classes)
        raise InputError(f"feature column {column!r} is ambiguous: pyradiomics has it in several classes ({options}).",
                         file=path, column=column,
                         hint=f"map it explicitly in radiomics.features.columns, e.g. {{{column}: original_{classes[0]}_{column}}}.")
    return f"original_{classes[0]}_{column}"


def _read_raw(path: Path) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """(text frame indexed by file line, numeric columns by name) of a Parquet or delimited file."""
    require_file(path, "radiomics feature table")
    if path.suffix.lower() == ".parquet":
        df = pd.read_parquet(path)
        df.index = pd.RangeIndex(2, 2 + len(df), name="line")
        numeric = {c: df[c].astype("float64") for c in df.columns
                   if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])}
        text = pd.DataFrame({c: df[c].astype(object).where(df[c].notna(), None).map(
            lambda v: None if v is None else str(v)) for c in df.columns if c not in numeric}, index=df.index)
        return text, numeric
    t = read_table(path, what="radiomics feature table")
    numeric, text = {}, {}
    for c in t.df.columns:
        raw = t.text(c)
        parsed = pd.to_numeric(raw, errors="coerce")
        if raw.notna().any() and (parsed.notna() | raw.isna()).mean() >= 0.9:
            numeric[c] = t.numeric(c)  # raises naming the line of a cell that is not a number
        else:
            text[c] = raw
    return pd.DataFrame(text, index=t.df.index), numeric


def read_feature_table(spec: FeatureTableSpec) -> PatientFeatures:
    """Read a feature table and reduce it to one row per patient (see module doc).

    Raises:
        InputError: missing id/ROI column, a non-number in a feature column, an ambiguous
            feature name, or several rows for one patient with ``aggregate: error``.
    """
    path = Path(spec.path)
    text, numeric = _read_raw(path)
    columns = list(text.columns) + list(numeric)
    for col, what in ((spec.patient_id, "radiomics.features.patient_id"), (spec.roi_column, "radiomics.features.roi_column")):
        if col is not None and col not in columns:
            raise InputError(f"column {col!r} not found (needed for {what}).{did_you_mean(col, columns)}", file=path,
                             column=col, hint="correct the column name in the config or in the file header.")
    if spec.roi_values is not None and spec.roi_column is None:
        raise InputError("roi_values is set but roi_column is not.", file=path,
                         hint="name the ROI column (radiomics.features.roi_column).")
    pid = (text[spec.patient_id] if spec.patient_id in text else
           numeric[spec.patient_id].map(lambda v: None if np.isnan(v) else f"{v:g}"))
    check_ids(pid, path, spec.patient_id, "patient id", unique=False)  # several ROIs per patient are fine here
    keep = pd.Series(True, index=text.index)
    roi = None
    if spec.roi_column is not None:
        roi = text[spec.roi_column] if spec.roi_column in text else numeric[spec.roi_column].astype(str)
        if spec.roi_values is not None:
            keep &= roi.isin(spec.roi_values)
            if not keep.any():
                raise InputError(f"no row has a {spec.roi_column} in {spec.roi_values}.", file=path,
                                 column=spec.roi_column, hint=f"use values present in the file, e.g. "
                                 f"{sorted(roi.dropna().unique())[:5]}.")
    skip = {spec.patient_id, spec.roi_column, *NON_FEATURE, *spec.ignore_columns}
    feats: dict[str, pd.Series] = {}
    for col, values in numeric.items():
        if col in skip or col.startswith("Unnamed:") or not col.strip():
            continue
        name = spec.columns.get(col) or (canonical_name(col, path) if spec.names == "pyradiomics" else col)
        if name in feats:
            raise InputError(f"two columns map to feature {name!r}.", file=path, column=col,
                             hint="keep one of them, or rename one in radiomics.features.columns.")
        feats[name] = values
    missing_map = [c for c in spec.columns if c not in columns]
    if missing_map:
        raise InputError(f"column {missing_map[0]!r} (in radiomics.features.columns) not found."
                         f"{did_you_mean(missing_map[0], columns)}", file=path, column=missing_map[0],
                         hint="correct the column name in the config.")
    if not feats:
        raise InputError("no numeric feature columns.", file=path,
                         hint="give one column per feature with numbers (pyradiomics names such as "
                              "original_firstorder_Mean, or bare names such as Mean).")
    values = pd.DataFrame(feats, index=text.index).loc[keep]
    meta_cols = [c for c in text.columns if c not in skip]
    meta = text.loc[keep, meta_cols]
    ids = pid.loc[keep].astype(str)
    values, meta = _one_row_per_patient(values, meta, ids, roi.loc[keep] if roi is not None else None, spec, path)
    order = sorted(values.columns)
    return PatientFeatures(values=values[order], meta=meta, source=path)


def _one_row_per_patient(values: pd.DataFrame, meta: pd.DataFrame, ids: pd.Series, roi: pd.Series | None,
                         spec: FeatureTableSpec, path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    dup = ids.duplicated(keep=False)
    if dup.any() and spec.aggregate == "error":
        first = ids[dup].iloc[0]
        lines = [int(x) for x in ids.index[ids == first]][:4]
        what = f" (ROIs {sorted(roi[ids == first].dropna().unique())[:4]})" if roi is not None else ""
        raise InputError(f"patient {first!r} has {int((ids == first).sum())} rows{what}, on lines {lines}.", file=path,
                         line=lines[0], column=spec.patient_id,
                         hint="keep one ROI (radiomics.features.roi_values), or set radiomics.features.aggregate to "
                              "'mean' or 'largest'.")
    if dup.any() and spec.aggregate == "largest":
        size = spec.size_column or next((c for c in ("original_shape_VoxelVolume", "original_shape_MeshVolume")
                                         if c in values.columns), None)
        if size is None or size not in values.columns:
            raise InputError("aggregate 'largest' needs a size column.", file=path, column=spec.size_column,
                             hint="set radiomics.features.size_column to a volume feature.")
        order = values[size].fillna(-np.inf).to_numpy()
        pick = pd.DataFrame({"id": ids.to_numpy(), "size": order, "pos": np.arange(len(ids))}) \
            .sort_values(["id", "size", "pos"], ascending=[True, False, True], kind="stable").drop_duplicates("id")
        rows = np.sort(pick["pos"].to_numpy())
        values, meta, ids = values.iloc[rows], meta.iloc[rows], ids.iloc[rows]
    if dup.any() and spec.aggregate == "mean":
        v = values.groupby(ids.to_numpy(), sort=True).mean()
        m = meta.groupby(ids.to_numpy(), sort=True).first() if len(meta.columns) else pd.DataFrame(index=v.index)
        v.index.name = m.index.name = "patient_id"
        return v, m.reindex(v.index)
    values = values.set_axis(pd.Index(ids.to_numpy(), name="patient_id")).sort_index(kind="stable")
    meta = meta.set_axis(pd.Index(ids.to_numpy(), name="patient_id")).sort_index(kind="stable")
    return values, meta


def write_feature_table(pf: PatientFeatures, out: Path) -> None:
    """Write patient-level features in the ``features.parquet`` layout (atomically)."""
    from graphonc.graph.run import atomic_file, write_parquet

    df = pd.concat([pd.DataFrame({"case_id": pf.values.index.to_numpy(dtype=object),
                                  "patient_id": pf.values.index.to_numpy(dtype=object)}),
                    pf.meta.reset_index(drop=True).astype(object), pf.values.reset_index(drop=True)], axis=1)
    with atomic_file(Path(out), claim=True) as tmp:  # never over a file graphonc did not write
        write_parquet(df, tmp)
