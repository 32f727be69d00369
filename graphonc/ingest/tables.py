"""Reading delimited text tables the way cBioPortal and friends write them.

Quirks handled here once, for every source: leading ``#`` metadata lines, old-Mac (CR-only)
line endings, tab or comma separators, missing-value tokens. The DataFrame's index is the
1-based *file line number* of each row, so any later error can point at the exact line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from graphonc.errors import InputError, did_you_mean

#: Tokens that mean "no value" in the wild (cBioPortal, TCGA, R exports).
DEFAULT_MISSING = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "[Not Available]",
                   "[Not Applicable]", "[Unknown]", "[Not Evaluated]", "Unknown")


def require_file(path: Path, what: str) -> Path:
    """Raise a clear error when an input file is missing."""
    if not path.exists():
        raise InputError(
            f"{what} not found.",
            file=path,
            hint="check the path in the config (relative paths are resolved against the config file's folder).",
        )
    if path.is_dir():
        raise InputError(f"{what} is a folder, a file was expected.", file=path)
    return path


def _count_comment_lines(path: Path, comment: str = "#") -> int:
    """Number of leading lines that start with `comment` (universal newlines: CR, LF, CRLF)."""
    n = 0
    with open(path, encoding="utf-8", errors="replace", newline=None) as fh:
        for line in fh:
            if line.startswith(comment):
                n += 1
            else:
                break
    return n


def _sniff_sep(path: Path, skip: int) -> str:
    with open(path, encoding="utf-8", errors="replace", newline=None) as fh:
        for i, line in enumerate(fh):
            if i == skip:
                return "\t" if "\t" in line or "," not in line else ","
    return "\t"


@dataclass
class Table:
    """A text table read as strings; ``df.index`` holds the file line number of each row."""

    df: pd.DataFrame
    path: Path
    missing: frozenset[str] = field(default_factory=lambda: frozenset(DEFAULT_MISSING))

    @property
    def name(self) -> str:
        return self.path.name

    def require(self, columns: Iterable[str], purpose: str = "") -> None:
        """Raise an InputError naming the first missing column and close spellings."""
        for col in columns:
            if col not in self.df.columns:
                why = f" (needed for {purpose})" if purpose else ""
                raise InputError(
                    f"column {col!r} not found{why}.{did_you_mean(col, self.df.columns)}",
                    file=self.path,
                    line=int(self.df.index[0]) - 1 if len(self.df) else None,
                    column=col,
                    hint="correct the column name in the config or in the file header.",
                )

    def is_missing(self, column: str) -> pd.Series:
        s = self.df[column]
        return s.isna() | s.str.strip().isin(self.missing)

    def numeric(self, column: str) -> pd.Series:
        """Column as float64, missing tokens → NaN; an unparseable value raises InputError."""
        self.require([column])
        raw = self.df[column]
        miss = self.is_missing(column)
        values = pd.to_numeric(raw.where(~miss), errors="coerce")
        bad = values.isna() & ~miss
        if bad.any():
            line = int(bad.idxmax())
            raise InputError(
                f"{raw.loc[line]!r} is not a number.",
                file=self.path,
                line=line,
                column=column,
                hint=f"write a number, or leave the cell empty / one of {sorted(t for t in self.missing if t)[:4]} for missing.",
            )
        return values.astype("float64")

    def text(self, column: str) -> pd.Series:
        """Column as stripped strings with missing tokens → None (object dtype)."""
        self.require([column])
        s = self.df[column].astype(str).str.strip()
        return s.where(~self.is_missing(column), None)


def read_table(
    path: Path,
    *,
    what: str = "table",
    usecols: Sequence[str] | None = None,
    required: Sequence[str] = (),
    sep: str | None = None,
    missing: Iterable[str] = DEFAULT_MISSING,
) -> Table:
    """Read a delimited text file with optional leading ``#`` lines into a :class:`Table`.

    Args:
        path: the file; CR, LF and CRLF line endings all work.
        what: a short description used in error messages ("clinical patient file").
        usecols: read only these columns (those absent are ignored; ``required`` checks presence).
        required: columns that must exist; a missing one raises InputError with close spellings.
        sep: separator; sniffed from the header line (tab unless it only has commas) when None.
    """
    require_file(path, what)
    skip = _count_comment_lines(path)
    sep = sep or _sniff_sep(path, skip)
    try:
        header = pd.read_csv(path, sep=sep, skiprows=skip, nrows=0, dtype=str).columns
    except pd.errors.EmptyDataError:
        raise InputError(f"{what} is empty (no header line).", file=path,
                         hint="give a file with a header line and at least one row.") from None
    header = [str(c).strip() for c in header]
    wanted = None
    if usecols is not None:
        wanted = [c for c in dict.fromkeys(list(usecols) + list(required)) if c in header]
    try:
        df = pd.read_csv(
            path, sep=sep, skiprows=skip, dtype=str, keep_default_na=False, na_filter=False,
            usecols=wanted, skip_blank_lines=False, quoting=3 if sep == "\t" else 0,
            encoding="utf-8", encoding_errors="replace", engine="c", low_memory=False,
        )
    except pd.errors.ParserError as exc:  # ragged rows etc.
        raise InputError(f"cannot parse {what}: {exc}", file=path,
                         hint="check that every row has as many fields as the header.") from None
    df.columns = [str(c).strip() for c in df.columns]
    # Header is on line skip+1; first data row on skip+2 (1-based).
    df.index = pd.RangeIndex(skip + 2, skip + 2 + len(df), name="line")
    if len(df):
        blank = (df == "").all(axis=1).to_numpy()
        if blank.any():
            df = df.loc[~blank]
    table = Table(df=df, path=path, missing=frozenset(missing))
    table.require(required)
    return table


def read_text_lines(path: Path, what: str) -> list[str]:
    """All lines of a small text file (universal newlines), for formats like GMT."""
    require_file(path, what)
    with open(path, encoding="utf-8", errors="replace", newline=None) as fh:
        return fh.read().splitlines()


def first_bad(mask: pd.Series | np.ndarray, index: pd.Index) -> int | None:
    """File line of the first True in `mask`, or None."""
    arr = np.asarray(mask)
    if not arr.any():
        return None
    return int(index[int(arr.argmax())])


def table_from_frame(df: pd.DataFrame, path: Path) -> Table:
    """Wrap an in-memory frame (rows numbered as if line 2 onwards) as a Table."""
    df = df.astype(str).copy()
    df.index = pd.RangeIndex(2, 2 + len(df), name="line")
    return Table(df=df, path=path)


__all__ = ["Table", "read_table", "read_text_lines", "require_file", "DEFAULT_MISSING", "first_bad",
           "table_from_frame"]
