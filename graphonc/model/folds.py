"""Fold plans: which patients are tested in which (repeat, fold); made, written and read as CSV.

A fold plan is a table with one row per (patient, repeat): ``patient_id, fold`` and, for
repeated CV, ``repeat`` (0-based; absent = one repetition). ``--folds-file`` reads one, and
every ``evaluate`` / ``evaluate-similarity`` run writes the plan it used (``folds.csv``), so
any other tool — or a later run — can score on exactly the same folds.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.model_selection import StratifiedKFold

from graphonc import layout as L
from graphonc.errors import GraphoncError, InputError
from graphonc.graph import schema as S
from graphonc.graph.run import GraphRun

FOLD_COLUMNS = ("patient_id", "repeat", "fold")


@dataclass(frozen=True)
class Split:
    """One (repeat, fold): sorted training and test patient ids."""

    repeat: int
    fold: int
    train: list[str]
    test: list[str]


def eligible_patients(run: GraphRun) -> pd.DataFrame:
    """Patients with every configured target (label and/or survival), sorted by id."""
    p = run.nodes(S.PATIENT)
    cols = run.patient_columns()
    ok = pd.Series(True, index=p.index)
    if cols.get("label"):
        ok &= p[L.LABEL].notna()
    if cols.get("survival"):
        ok &= p[L.OS_MONTHS].notna() & p[L.OS_EVENT].notna()
    if not cols.get("label") and not cols.get("survival"):
        raise GraphoncError("the run has neither a label nor survival: nothing to evaluate.")
    return p[ok].sort_values(S.ID).reset_index(drop=True)


def make_plan(run: GraphRun, k: int = 5, repeats: int = 1, seed: int = 0) -> pd.DataFrame:
    """Repeated patient-level stratified k-fold (by label; by event status without one).

    Repeat ``r`` shuffles with seed ``seed + r``; repeat 0 is the plain k-fold of ``seed``.
    """
    if k < 2 or repeats < 1:
        raise GraphoncError(f"need at least 2 folds and 1 repeat, got folds={k}, repeats={repeats}")
    p = eligible_patients(run)
    strata = p[L.LABEL].astype(str) if run.patient_columns().get("label") else p[L.OS_EVENT].astype(str)
    ids = p[S.ID].to_numpy()
    frames = []
    for r in range(repeats):
        fold = pd.Series(-1, index=range(len(ids)))
        for f, (_, te) in enumerate(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed + r).split(ids, strata)):
            fold.iloc[te] = f
        frames.append(pd.DataFrame({"patient_id": ids, "repeat": r, "fold": fold.to_numpy()}))
    return pd.concat(frames, ignore_index=True)


def splits(plan: pd.DataFrame) -> list[Split]:
    """The (repeat, fold) splits of a plan: test = the fold, train = the repeat's other patients."""
    out = []
    for r, grp in plan.groupby("repeat", sort=True):
        for f in sorted(grp["fold"].unique()):
            te = grp["fold"] == f
            out.append(Split(int(r), int(f), sorted(grp.loc[~te, "patient_id"]), sorted(grp.loc[te, "patient_id"])))
    return out


def write_plan(plan: pd.DataFrame, path: Path) -> None:
    plan[list(FOLD_COLUMNS)].sort_values(["repeat", "fold", "patient_id"]).to_csv(path, index=False)


def read_plan(path: Path, run: GraphRun) -> pd.DataFrame:
    """Read a ``--folds-file`` (columns ``patient_id, fold`` and optionally ``repeat``).

    Raises:
        InputError: naming the file, line and column: missing column, empty or non-integer
            fold, a patient unknown to the run or twice in one repeat, a repeat with < 2 folds.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("folds file not found.", file=path, hint="give a CSV with columns patient_id,fold.")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"not a readable CSV ({exc}).", file=path, hint="write it as CSV with a header line.") from None
    for col in ("patient_id", "fold"):
        if col not in df.columns:
            raise InputError(f"column {col!r} is missing (found {list(df.columns)}).", file=path, line=1, column=col,
                             hint="the header must name patient_id and fold (and optionally repeat).")
    if "repeat" not in df.columns:
        df["repeat"] = "0"
    for col in ("fold", "repeat"):
        bad = ~df[col].str.fullmatch(r"\d+")
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise InputError(f"{col} {df[col].iloc[i]!r} is not a non-negative integer.", file=path, line=i + 2,
                             column=col, hint=f"write each {col} as 0, 1, 2, …")
        df[col] = df[col].astype(int)
    known = set(run.nodes(S.PATIENT)[S.ID])
    unknown = ~df["patient_id"].isin(known)
    if unknown.any():
        i = int(unknown.to_numpy().nonzero()[0][0])
        raise InputError(f"patient {df['patient_id'].iloc[i]!r} is not in the run ({unknown.sum()} unknown in all).",
                         file=path, line=i + 2, column="patient_id",
                         hint=f"use ids of {run.root} (graphonc info lists its cohort).")
    dup = df.duplicated(["repeat", "patient_id"])
    if dup.any():
        i = int(dup.to_numpy().nonzero()[0][0])
        raise InputError(f"patient {df['patient_id'].iloc[i]!r} appears twice in repeat {df['repeat'].iloc[i]}.",
                         file=path, line=i + 2, column="patient_id", hint="give each patient one fold per repeat.")
    for r, grp in df.groupby("repeat"):
        if grp["fold"].nunique() < 2:
            raise InputError(f"repeat {r} has fewer than 2 folds.", file=path, column="fold",
                             hint="a fold plan needs at least two folds per repeat.")
    eligible = set(eligible_patients(run)[S.ID])
    return df[df["patient_id"].isin(eligible)][list(FOLD_COLUMNS)].reset_index(drop=True)
