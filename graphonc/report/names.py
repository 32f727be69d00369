"""Report file names: one per patient id, distinct for distinct ids and reversible.

Every character outside ``[A-Za-z0-9._-]`` is percent-encoded (its UTF-8 bytes as ``%XX``), and
so is a leading ``.`` (no hidden files, no ``.``/``..``): ``a/b`` → ``a%2Fb``, ``a_b`` →
``a_b``, ``.x`` → ``%2Ex``. ``%`` itself is encoded, so :func:`patient_of_report` inverts
:func:`report_file_name` exactly. On case-insensitive file systems ids differing only in case
still collide; such a cohort should give ``report --out`` explicitly.
"""
from __future__ import annotations

import re
from urllib.parse import unquote

from graphonc.errors import GraphoncError

_SAFE = re.compile(r"[A-Za-z0-9._-]")
SUFFIX = ".html"
#: Most file systems allow 255 bytes per name.
_MAX_NAME = 255


def _encode(ch: str) -> str:
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))


def report_file_name(patient_id: str) -> str:
    """``<encoded id>.html`` (see the module doc)."""
    if not patient_id:
        raise GraphoncError("an empty patient id has no report file name. Fix: give the id of a run patient.")
    name = "".join(ch if _SAFE.fullmatch(ch) else _encode(ch) for ch in patient_id)
    if name.startswith("."):
        name = "%2E" + name[1:]
    name += SUFFIX
    if len(name.encode()) > _MAX_NAME:
        raise GraphoncError(f"patient id {patient_id[:40]!r}… is too long for a file name. "
                            "Fix: give `graphonc report --out FILE.html`.")
    return name


def patient_of_report(name: str) -> str:
    """The patient id of a report file name made by :func:`report_file_name`."""
    if not name.endswith(SUFFIX):
        raise GraphoncError(f"{name!r} is not a report file name (no {SUFFIX}).")
    return unquote(name[: -len(SUFFIX)], errors="strict")
