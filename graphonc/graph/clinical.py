"""Typed patient table from raw clinical columns, driven by the config.

Output columns: ``id``, the configured numeric (float64) and categorical/display (string)
columns under their own names, ``label`` (diagnosis, string), ``os_months``/``os_event``
(and ``<name>_months``/``<name>_event`` for extra endpoints). Times are converted to months
whatever the source unit, so 5- and 10-year horizons mean the same thing for every cohort.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from graphonc.config import ClinicalSpec, LabelSpec, SurvivalSpec
from graphonc.errors import ConfigError, InputError
from graphonc.ingest.cohort import RawCohort
from graphonc.ingest.tables import Table

_PREFIX = re.compile(r"^\s*(\d+)\s*:")
_TO_MONTHS = {"months": 1.0, "days": 12.0 / 365.25, "years": 12.0}
RESERVED = {"id", "cohort", "label", "sequenced", "gene_panel", "n_mutations"}


def parse_event(t: Table, column: str, spec: SurvivalSpec) -> pd.Series:
    """Event indicator (1.0 event, 0.0 censored, NaN missing) from a status column.

    ``1:DECEASED`` style values use their numeric prefix; plain values are looked up in
    ``spec.event_values`` / ``spec.censored_values`` (case-insensitive).
    """
    s = t.text(column)
    prefix = s.str.extract(_PREFIX, expand=False)
    ev = {v.upper() for v in spec.event_values}
    ce = {v.upper() for v in spec.censored_values}
    up = s.str.upper()
    out = pd.Series(np.nan, index=s.index)
    out[up.isin(ev)] = 1.0
    out[up.isin(ce)] = 0.0
    has_prefix = prefix.notna()
    out[has_prefix] = (prefix[has_prefix].astype(int) > 0).astype(float)
    bad = s.notna() & out.isna()
    if bad.any():
        line = int(bad.idxmax())
        raise InputError(
            f"survival status {s.loc[line]!r} is neither an event nor censored.", file=t.path, line=line,
            column=column, hint=f"use '1:EVENT'/'0:CENSORED' or add the value to clinical.survival.event_values "
                                f"or censored_values in the config (now {spec.event_values} / {spec.censored_values}).")
    return out


def _time(t: Table, column: str) -> pd.Series:
    v = t.numeric(column)
    neg = v < 0
    if neg.any():
        line = int(neg.idxmax())
        raise InputError(f"survival time {v.loc[line]} is negative.", file=t.path, line=line, column=column,
                         hint="times count from diagnosis and cannot be negative.")
    return v


def _endpoint(raw: RawCohort, spec: SurvivalSpec, name: str) -> pd.DataFrame:
    time = raw.column(spec.time, _time, f"survival time ({name})") * _TO_MONTHS[spec.unit]
    event = raw.column(spec.event, lambda t, c: parse_event(t, c, spec), f"survival event ({name})")
    both = time.notna() & event.notna()
    return pd.DataFrame({f"{name}_months": time.where(both), f"{name}_event": event.where(both)})


def pool_labels(lab: pd.Series, spec: LabelSpec) -> pd.Series:
    """Apply ``label.map`` then pool classes under ``label.min_count`` into ``label.other_label``."""
    if spec.map:
        lab = lab.map(lambda v: spec.map.get(v, v) if isinstance(v, str) else v).astype("string")
    if spec.min_count:
        counts = lab.value_counts()
        rare = counts.index[counts < spec.min_count]
        lab = lab.where(~lab.isin(rare), spec.other_label)
    return lab


def patient_table(raw: RawCohort, spec: ClinicalSpec, cohort: str) -> pd.DataFrame:
    """One row per patient with typed clinical features, label and survival (see module doc)."""
    clash = RESERVED & set(spec.numeric + spec.stored_text_columns())
    if clash:
        raise ConfigError(f"clinical columns {sorted(clash)} clash with graphonc's own Patient properties; "
                          "rename them in the input file.")
    if spec.missing_values is not None:
        for t in (raw.patients, raw.sample_table):
            if t is not None:
                t.missing = frozenset(spec.missing_values)
    ids = raw.patient_ids.to_numpy()
    df = pd.DataFrame({"id": ids, "cohort": cohort}, index=ids)
    for col in spec.numeric:
        df[col] = raw.column(col, Table.numeric, "clinical.numeric")
    for col in spec.stored_text_columns():
        df[col] = raw.column(col, Table.text, "clinical.categorical/display").astype("string")
    if spec.label is not None:
        lab = raw.column(spec.label.column, Table.text, "clinical.label").astype("string")
        df["label"] = pool_labels(lab.where(~lab.isin(spec.label.missing_values)), spec.label)
    if spec.survival is not None:
        df = df.join(_endpoint(raw, spec.survival, "os"))
    for name, ep in spec.extra_survival.items():
        df = df.join(_endpoint(raw, ep, name))
    return df.reset_index(drop=True)
