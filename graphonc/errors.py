"""Errors that a user can act on.

Every error raised at an input boundary names the file, the line and the column it is
about and says how to fix it; the CLI prints it as one line (no traceback unless --debug).
"""
from __future__ import annotations

import difflib
import errno
from pathlib import Path
from typing import Iterable


class GraphoncError(Exception):
    """Base class of errors the CLI reports as one line and exit code 2."""


class ConfigError(GraphoncError):
    """A config file is missing, malformed or names something that does not exist."""


class InputError(GraphoncError):
    """Bad input data: says where (file, line, column), what, and how to fix it.

    ``column`` is a column name (shown quoted) or, for errors inside a line such as a byte that
    is not UTF-8, the 1-based position in the line (shown as a number).
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        column: str | int | None = None,
        hint: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.column = column
        self.message = message
        self.hint = hint
        super().__init__(self.format())

    def format(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None and self.column != "":
            where.append(f"column {self.column!r}")
        text = (", ".join(where) + ": " if where else "") + self.message
        if self.hint:
            text += f" Fix: {self.hint}"
        return text


class EnvironmentFailure(GraphoncError):
    """The machine refused: disk full, permission denied, a folder where a file belongs, a server
    that does not answer. Nothing was half-written (every stage writes to a temp sibling first)."""


#: What to do about the operating-system errors users meet, by errno name.
_OS_FIX = {
    "ENOSPC": "free disk space, or write to another disk (--out); nothing was half-written.",
    "EDQUOT": "free space within your disk quota, or write elsewhere (--out); nothing was half-written.",
    "EFBIG": "the file system refuses a file this large; write to another disk (--out).",
    "EACCES": "check the permissions of this path and its folder, or choose another --out.",
    "EPERM": "check the permissions of this path and its folder, or choose another --out.",
    "EROFS": "the disk is read-only; choose another --out.",
    "ENOENT": "check the path.",
    "EISDIR": "give a file, not a folder.",
    "ENOTDIR": "a part of the path is a file, not a folder; check the path.",
}


def from_os_error(exc: OSError) -> EnvironmentFailure:
    """One line for an OSError (errno name, message, the path), with what to do about it."""
    name = errno.errorcode.get(exc.errno or 0, "")
    where = f"{exc.filename}: " if exc.filename else ""
    what = " ".join((exc.strerror or str(exc) or type(exc).__name__).split())  # pyarrow's have line breaks
    fix = _OS_FIX.get(name, "check the path, the free space and the permissions.")
    return EnvironmentFailure(f"{where}{what}" + (f" ({name})" if name else "") + f". Fix: {fix}")


def close_matches(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Candidates that look like a misspelling of `word` (case-insensitive)."""
    cands = list(candidates)
    lower = {c.lower(): c for c in cands}
    hits = difflib.get_close_matches(word.lower(), list(lower), n=n, cutoff=0.6)
    return [lower[h] for h in hits]


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    hits = close_matches(word, candidates)
    return f" Did you mean {', '.join(repr(h) for h in hits)}?" if hits else ""


def _edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _affix(a: str, b: str) -> int:
    pre = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    suf = next((i for i, (x, y) in enumerate(zip(a[::-1], b[::-1])) if x != y), min(len(a), len(b)))
    return pre + suf


def unknown_patient(pid: str, known: Iterable[str], where: str) -> GraphoncError:
    """The error for a patient id that is not in ``where``, suggesting the closest known ids."""
    known = [str(k) for k in known]
    # ids such as MB-0005 are close to thousands of others: rerank difflib's candidates by edit
    # distance, then by shared prefix + suffix, so MB-00x5 and MB-005 both suggest MB-0005 first
    cands = close_matches(pid, known, n=50)
    hits = sorted(cands, key=lambda c: (_edit_distance(c.lower(), pid.lower()), -_affix(c.lower(), pid.lower()), c))[:5]
    hint = f" Did you mean {', '.join(repr(h) for h in hits)}?" if hits else ""
    return GraphoncError(f"patient {pid!r} is not in {where}.{hint} Fix: use a patient id of the run "
                         "(column id of graph/nodes/Patient.parquet).")
