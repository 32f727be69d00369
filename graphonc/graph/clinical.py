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

from graphonc import layout as L
from graphonc.config import ClinicalSpec, LabelSpec, OrdinalSpec, SurvivalSpec
from graphonc.errors import ConfigError, InputError
from graphonc.ingest.cohort import RawCohort
from graphonc.ingest.tables import Table

_PREFIX_REST = re.compile(r"^\s*(\d+)\s*:(.*)$", re.S)
_TO_MONTHS = {"months": 1.0, "days": 12.0 / 365.25, "years": 12.0}
RESERVED = {"id", "cohort", "label", "sequenced", "gene_panel", "n_mutations"}


def parse_event(t: Table, column: str, spec: SurvivalSpec) -> pd.Series:
    """Event indicator (1.0 event, 0.0 censored, NaN missing) from a status column.

    ``1:DECEASED`` style values use their numeric prefix, which must be 0 or 1; a text after
    it that the config lists on the other side (``1:LIVING``) is refused. Plain values are
    looked up in ``spec.event_values`` / ``spec.censored_values`` (case-insensitive). Anything
    else is refused: ``2:MAYBE`` once counted as a death.
    """
    s = t.text(column)
    parts = s.str.extract(_PREFIX_REST)
    prefix, rest = parts[0], parts[1].str.strip().str.upper()
    ev = {v.upper() for v in spec.event_values}
    ce = {v.upper() for v in spec.censored_values}
    up = s.str.upper()
    out = pd.Series(np.nan, index=s.index)
    out[up.isin(ev)] = 1.0
    out[up.isin(ce)] = 0.0
    code = pd.to_numeric(prefix, errors="coerce")
    code = code.where(code.isin([0, 1]))  # only 0 and 1 are statuses
    contradicts = ((code == 1) & rest.isin(ce)) | ((code == 0) & rest.isin(ev))
    code = code.where(~contradicts)
    out[prefix.notna()] = code[prefix.notna()].astype(float)  # NaN for a refused prefix
    bad = s.notna() & out.isna()
    if bad.any():
        line = int(bad.idxmax())
        raise InputError(
            f"survival status {s.loc[line]!r} is neither an event nor censored "
            f"(allowed: '1:…' or one of {spec.event_values} for an event, '0:…' or one of "
            f"{spec.censored_values} for censored).", file=t.path, line=line, column=column,
            hint="correct the value, or add it to clinical.survival.event_values or censored_values in the config.")
    return out


_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5}
#: "Stage IIIA", "stage iv", "IIB", "Stage 2", "Stage 0", "Tis": the stage number, sub-stage dropped.
_STAGE = re.compile(r"^\s*(?:stage\s*)?(?:(IV|V|I{1,3})|([0-5])|(TIS))(?:[A-C][0-9]?)?\s*$", re.IGNORECASE)


def parse_stage(text: str) -> float | None:
    """``Stage IIIA`` → 3.0, ``IV`` → 4.0, ``Stage 0`` / ``Tis`` → 0.0; None if not a stage."""
    m = _STAGE.match(text)
    if m is None:
        return None
    roman, digit, _tis = m.groups()
    if roman:
        return float(_ROMAN[roman.upper()])
    return float(digit) if digit else 0.0


def ordinal(t: Table, column: str, spec: OrdinalSpec) -> pd.Series:
    """A text column as ordered numbers (see :class:`graphonc.config.OrdinalSpec`); missing → NaN."""
    text = t.text(column)
    distinct = pd.Series(text.dropna().unique(), dtype=object)
    if spec.map is not None:
        table = {k.strip().upper(): float(v) for k, v in spec.map.items()}
        values = {v: table.get(v.upper()) for v in distinct}
    else:
        values = {v: parse_stage(v) for v in distinct}
    bad = [v for v, n in values.items() if n is None]
    if bad:
        line = int(text[text.isin(bad)].index[0])
        how = ("add it to clinical.ordinal." + column + ".map" if spec.map is not None
               else "write stages like 'Stage IIIA' or 'IV', or use clinical.ordinal." + column + ".map")
        raise InputError(f"{text.loc[line]!r} is not an ordinal value of this column ({len(bad)} distinct such "
                         f"value(s): {sorted(bad)[:5]}).", file=t.path, line=line, column=column,
                         hint=f"{how}, or list the value in clinical.missing_values.")
    return text.map(values).astype("float64")


#: Longest survival time accepted, in months (100 years): a longer one is a unit or typing error
#: (days given as months, 1e308), and survival models overflow on it.
MAX_SURVIVAL_MONTHS = 1200.0


def _time(t: Table, column: str, unit: str = "months") -> pd.Series:
    v = t.numeric(column)
    neg = v < 0
    if neg.any():
        line = int(neg.idxmax())
        raise InputError(f"survival time {v.loc[line]} is negative.", file=t.path, line=line, column=column,
                         hint="times count from diagnosis and cannot be negative.")
    long = v * _TO_MONTHS[unit] > MAX_SURVIVAL_MONTHS
    if long.any():
        line = int(long.idxmax())
        raise InputError(f"survival time {t.df[column].loc[line].strip()} {unit} is over 100 years "
                         f"({MAX_SURVIVAL_MONTHS:g} months), longer than any follow-up.", file=t.path, line=line,
                         column=column, hint="correct the value, or set clinical.survival.unit in the config if the "
                                             f"times are not in {unit}.")
    return v


def _endpoint(raw: RawCohort, spec: SurvivalSpec, name: str) -> pd.DataFrame:
    time = raw.column(spec.time, lambda t, c: _time(t, c, spec.unit), f"survival time ({name})") * _TO_MONTHS[spec.unit]
    event = raw.column(spec.event, lambda t, c: parse_event(t, c, spec), f"survival event ({name})")
    both = time.notna() & event.notna()
    return pd.DataFrame({L.months(name): time.where(both), L.event(name): event.where(both)})


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
    clash = RESERVED & set(spec.numeric_features() + spec.stored_text_columns())
    if clash:
        raise ConfigError(f"clinical columns {sorted(clash)} clash with graphonc's own Patient properties; "
                          "rename them in the input file.")
    for t in (raw.patients, raw.sample_table):  # the config's tokens extend the built-in ones
        if t is not None and spec.missing_values:
            t.missing = t.missing | frozenset(spec.missing_values)
    ids = raw.patient_ids.to_numpy()
    df = pd.DataFrame({"id": ids, "cohort": cohort}, index=ids)
    for col in spec.numeric:
        df[col] = raw.column(col, Table.numeric, "clinical.numeric")
    for col, how in spec.ordinal.items():
        df[col] = raw.column(col, lambda t, c, how=how: ordinal(t, c, how), "clinical.ordinal")
    for col, close in spec.units_not_numeric():  # every numeric column is one of the data's now
        raise ConfigError(f"clinical.units names {col!r}, which is not a numeric column (clinical.numeric or "
                          "clinical.ordinal)" + (f"; did you mean {close!r}?" if close else "") +
                          " Fix the key in clinical.units.")
    for col in spec.stored_text_columns():
        df[col] = raw.column(col, Table.text, "clinical.categorical/display").astype("string")
    if spec.label is not None:
        lab = raw.column(spec.label.column, Table.text, "clinical.label").astype("string")
        df[L.LABEL] = pool_labels(lab.where(~lab.isin(spec.label.missing_values)), spec.label)
    if spec.survival is not None:
        df = df.join(_endpoint(raw, spec.survival, "os"))
    for name, ep in spec.extra_survival.items():
        df = df.join(_endpoint(raw, ep, name))
    return df.reset_index(drop=True)
