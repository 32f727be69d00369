"""Reading delimited text tables the way cBioPortal and friends write them.

Quirks handled here once, for every source: leading ``#`` metadata lines, old-Mac (CR-only)
line endings, tab or comma separators, missing-value tokens, a UTF-8 byte-order mark. Refused
here once: bytes that are not UTF-8 (or NUL), rows with more fields than the header, rows cut
short before a required column, numbers that are not finite or beyond :data:`MAX_ABS`, ids
with control characters (:func:`check_ids`). The DataFrame's index is the 1-based *file line
number* of each row, so any later error can point at the exact line.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from graphonc.errors import InputError, did_you_mean
from graphonc.text import check_utf8, read_text

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
    """Number of leading lines that start with `comment` (universal newlines: CR, LF, CRLF; a BOM dropped)."""
    n = 0
    with open(path, encoding="utf-8-sig", newline=None) as fh:  # read_table checked it is UTF-8 first
        for line in fh:
            if line.startswith(comment):
                n += 1
            else:
                break
    return n


def _sniff_sep(path: Path, skip: int) -> str:
    with open(path, encoding="utf-8-sig", newline=None) as fh:  # read_table checked it is UTF-8 first
        for i, line in enumerate(fh):
            if i == skip:
                return "\t" if "\t" in line or "," not in line else ","
    return "\t"


#: Largest magnitude a number in a table may have: no clinical or radiomic measurement comes near
#: (HN1's largest radiomic feature is 1.2e11), and values like 1e308 overflow feature scaling.
MAX_ABS = 1e20


def _distinct(s: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """(codes, distinct non-NA values) of a column; NA gets code -1.

    Columns repeat their values a lot (sample ids, genes, classes), so per-value string work
    is done once per distinct value and broadcast back with :func:`_broadcast`.
    """
    codes, uniques = pd.factorize(s.to_numpy(dtype=object), use_na_sentinel=True)
    return codes, pd.Series(uniques, dtype=object)


def _broadcast(codes: np.ndarray, per_value: np.ndarray, na_value) -> np.ndarray:
    """``per_value[codes]``, with ``na_value`` where the code is -1 (NA)."""
    per_value = np.asarray(per_value)
    out = np.append(per_value, np.array([na_value], dtype=per_value.dtype))
    return out[codes]  # code -1 picks the appended na_value


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

    def _missing_values(self, values: pd.Series) -> np.ndarray:
        """Missing-token test on non-NA values (the distinct values of a column)."""
        if not len(values):
            return np.zeros(0, dtype=bool)
        return values.str.strip().isin(self.missing).to_numpy()

    def is_missing(self, column: str) -> pd.Series:
        s = self.df[column]
        codes, values = _distinct(s)
        return pd.Series(_broadcast(codes, self._missing_values(values), True), index=s.index, name=s.name)

    def numeric(self, column: str) -> pd.Series:
        """Column as float64, missing tokens → NaN.

        Raises:
            InputError: naming the line of the first value that is not a number, not finite
                (``inf``) or beyond ±:data:`MAX_ABS` (``1e308``), which later stages cannot use.
        """
        self.require([column])
        raw = self.df[column]
        codes, distinct = _distinct(raw)
        miss = self._missing_values(distinct)
        parsed = pd.to_numeric(distinct.where(~miss), errors="coerce").astype("float64").to_numpy()
        values = pd.Series(_broadcast(codes, parsed, np.nan), index=raw.index, name=raw.name)
        bad = _broadcast(codes, np.isnan(parsed) & ~miss, False)
        if bad.any():
            line = int(raw.index[int(bad.argmax())])
            raise InputError(
                f"{raw.loc[line]!r} is not a number.",
                file=self.path,
                line=line,
                column=column,
                hint=f"write a number, or leave the cell empty / one of {sorted(t for t in self.missing if t)[:4]} for missing.",
            )
        with np.errstate(invalid="ignore"):
            huge = _broadcast(codes, ~(np.abs(parsed) <= MAX_ABS) & ~np.isnan(parsed), False)
        if huge.any():
            line = int(raw.index[int(huge.argmax())])
            raise InputError(
                f"{raw.loc[line]!r} is " + ("not a finite number" if np.isinf(values.loc[line]) else
                                            f"beyond ±{MAX_ABS:g}, larger than any measurement") + ".",
                file=self.path, line=line, column=column,
                hint="correct the value, or leave the cell empty for missing (infinite or absurd values "
                     "overflow the model's feature scaling).")
        return values.astype("float64")

    def text(self, column: str) -> pd.Series:
        """Column as stripped strings with missing tokens → None (object dtype)."""
        self.require([column])
        s = self.df[column]
        codes, distinct = _distinct(s)
        text = distinct.astype(str).str.strip().to_numpy(dtype=object)
        text[self._missing_values(distinct)] = None
        return pd.Series(_broadcast(codes, text, None), index=s.index, name=s.name, dtype=object)


def read_table(
    path: Path,
    *,
    what: str = "table",
    usecols: Sequence[str] | None = None,
    required: Sequence[str] = (),
    row_required: Sequence[str] | None = None,
    sep: str | None = None,
    missing: Iterable[str] = DEFAULT_MISSING,
) -> Table:
    """Read a delimited text file with optional leading ``#`` lines into a :class:`Table`.

    Args:
        path: the file; CR, LF and CRLF line endings all work.
        what: a short description used in error messages ("clinical patient file").
        usecols: read only these columns (those absent are ignored; ``required`` checks presence).
        required: columns that must exist; a missing one raises InputError with close spellings.
        row_required: columns every row must reach (a row cut short before one is refused);
            default ``required``. Rows may drop trailing fields after the last of them.
        sep: separator; sniffed from the header line (tab unless it only has commas) when None.
    """
    require_file(path, what)
    check_utf8(path, what)  # before anything is parsed: so the replacement below never happens
    skip = _count_comment_lines(path)
    sep = sep or _sniff_sep(path, skip)
    try:
        header = pd.read_csv(path, sep=sep, skiprows=skip, nrows=0, dtype=str, skip_blank_lines=False,
                             quoting=3 if sep == "\t" else 0).columns
    except pd.errors.EmptyDataError:
        raise InputError(f"{what} is empty (no header line, or a blank line where the header belongs).",
                         file=path, line=skip + 1,
                         hint="give a file with a header line first and at least one row.") from None
    except pd.errors.ParserError as exc:  # an unclosed quote in the header
        raise InputError(f"cannot parse the header of {what}: {exc}", file=path, line=skip + 1,
                         hint="check the header line's quotes and separators.") from None
    header = [str(c).strip() for c in header]
    wanted = None
    if usecols is not None:
        wanted = [c for c in dict.fromkeys(list(usecols) + list(required)) if c in header]
    try:
        df = pd.read_csv(
            path, sep=sep, skiprows=skip, dtype=str, keep_default_na=False, na_filter=False,
            usecols=wanted, skip_blank_lines=False, quoting=3 if sep == "\t" else 0,
            encoding="utf-8", engine="c",
        )  # low_memory (chunked) parsing: every column is str, so no mixed-type guessing; far less peak RAM
    except pd.errors.ParserError as exc:  # ragged rows etc.
        raise InputError(f"cannot parse {what}: {exc}", file=path,
                         hint="check that every row has as many fields as the header.") from None
    row_required = list(row_required if row_required is not None else required)
    if wanted is not None or any(c in header[1:] for c in row_required):
        # pandas checks field counts only when it reads every column, and never for short rows
        _check_field_counts(path, skip, sep, header, what, row_required)
    df.columns = [str(c).strip() for c in df.columns]
    # Header is on line skip+1; first data row on skip+2 (1-based).
    df.index = pd.RangeIndex(skip + 2, skip + 2 + len(df), name="line")
    if len(df):
        # all-empty rows; a column is only compared on the rows still empty in every earlier one
        blank = np.arange(len(df))
        for j in range(len(df.columns)):
            if not len(blank):
                break
            blank = blank[df.iloc[blank, j].to_numpy(dtype=object) == ""]
        if len(blank):
            keep = np.ones(len(df), dtype=bool)
            keep[blank] = False
            df = df.loc[keep]
    table = Table(df=df, path=path, missing=frozenset(missing))
    table.require(required)
    return table


def _field_counts(path: Path, skip: int, sep: str) -> Iterator[tuple[int, int]]:
    """(0-based data row, number of fields) of each non-blank data row, streamed.

    Tab-separated files are read as the reader reads them (no quoting): fields are tabs + 1.
    Other separators go through :mod:`csv`, which knows quoted separators.
    """
    # streamed, not read whole: a 465 MiB MAF took 1 GB and 2 s that way. Universal newlines split
    # on CR, LF and CRLF like the reader; latin-1 maps every byte, and the file is known to be UTF-8
    with open(path, encoding="latin-1", newline=None if sep == "\t" else "") as fh:
        if sep == "\t":
            for _ in range(skip + 1):  # comment lines and the header
                next(fh, None)
            for row, line in enumerate(fh):
                if line.strip("\t\r\n "):
                    yield row, line.count("\t") + 1
            return
        records = csv.reader(fh, delimiter=sep)
        for _ in range(skip + 1):
            next(records, None)
        for row, rec in enumerate(records):
            if any(f.strip() for f in rec):
                yield row, len(rec)


def _check_field_counts(path: Path, skip: int, sep: str, header: list[str], what: str,
                        required: Sequence[str] = ()) -> None:
    """No row has more fields than the header, and none ends before a ``required`` column.

    Read in full, pandas refuses a row with too many fields; read with ``usecols`` it keeps it
    silently, and a stray tab would shift that row's values into the wrong columns. A row with
    fewer fields gets empty values for the rest, which is right for trailing optional fields
    (OncoKB's list drops trailing empty ones) but not for a required column: a MAF row cut short
    before its protein change would become another mutation without a word.
    """
    need = max((header.index(c) + 1 for c in required if c in header), default=0)
    fields = len(header)
    first, n_bad, short = None, 0, None  # first row with too many fields; how many; first row cut short
    for row, n in _field_counts(path, skip, sep):
        if n > fields:
            n_bad += 1
            if first is None:
                first = (row, n)
        elif n < need and short is None:
            short = (row, n)
    name = "tab-separated" if sep == "\t" else f"{sep!r}-separated"
    if first is not None:
        raise InputError(f"{what}: this row has {first[1]} {name} fields but the header has "
                         f"{fields}" + (f" ({n_bad} such rows)" if n_bad > 1 else "") + ".",
                         file=path, line=skip + 2 + first[0],
                         hint="remove the stray separator so every row lines up with the header.")
    if short is not None:
        col = min((c for c in required if c in header and header.index(c) + 1 > short[1]), key=header.index)
        raise InputError(f"{what}: this row has only {short[1]} of the header's {fields} fields and ends before "
                         f"required column {col!r} (field {header.index(col) + 1}).",
                         file=path, line=skip + 2 + short[0], column=col,
                         hint="restore the row's missing fields (only trailing optional fields may be left out).")


def read_text_lines(path: Path, what: str) -> list[str]:
    """All lines of a small text file, for formats like GMT.

    UTF-8 only (a BOM dropped); lines end at CR, LF or CRLF like every other reader's, and at
    nothing else (``str.splitlines`` would also split at form feeds and U+2028, shifting line numbers).
    """
    require_file(path, what)
    lines = read_text(path, what).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


_CONTROL = r"[\x00-\x1f\x7f]"


def check_ids(ids: pd.Series, path: Path, column: str, what: str = "id", unique: bool = True) -> None:
    """Refuse an empty id, an id with a control character, or (``unique``) an id given twice.

    ``ids`` is indexed by file line (as :meth:`Table.text` returns it). A control character
    (newline, tab, NUL, ESC, …) inside an id would split or shift a line in every text export
    (a newline moved the npy export's ids.txt by one row) and can rewrite a terminal.
    """
    if ids.isna().any():
        raise InputError(f"empty {what}.", file=path, line=int(ids.isna().idxmax()), column=column,
                         hint="fill in the id or delete the row.")
    ctrl = ids.str.contains(_CONTROL, regex=True)
    if ctrl.any():
        line = int(ctrl.idxmax())
        raise InputError(f"{what} {ids.loc[line]!r} contains a control character.", file=path, line=line,
                         column=column, hint="remove line breaks, tabs and other control characters from ids.")
    if unique:
        dup = ids.duplicated()
        if dup.any():
            line = int(dup.idxmax())
            raise InputError(f"{what} {ids.loc[line]!r} appears twice.", file=path, line=line, column=column,
                             hint="each row of this file must have its own id.")


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


__all__ = ["MAX_ABS", "Table", "check_ids", "read_table", "read_text_lines", "require_file", "DEFAULT_MISSING", "first_bad",
           "table_from_frame"]
