"""The case manifest of ``graphonc radiomics extract``: one row per image + mask.

A CSV or TSV with a header line:

=============  ========  ==============================================================
column         needed    meaning
=============  ========  ==============================================================
patient_id     yes       the patient (joins to the clinical table)
image          yes       image file (NRRD, NIfTI, MHA, …) or a folder holding one DICOM series
mask           yes       mask / label map on the image grid (same formats)
case_id        no        a unique id per row; default ``patient_id`` (give it when a patient
                         has several lesions or time points)
label          no        the mask value of the region of interest; default: the only value in
                         the mask, else the pyradiomics ``label`` setting (1)
modality       no        e.g. CT, MR (carried into the feature table)
site, scanner  no        acquisition site / scanner, the batch for harmonisation
=============  ========  ==============================================================

Relative paths are resolved against the manifest's folder. Any other column is carried into
the feature table as text (so a batch column may have any name).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from graphonc.errors import InputError
from graphonc.ingest.tables import read_table

REQUIRED = ("patient_id", "image", "mask")
OPTIONAL = ("case_id", "label", "modality", "site", "scanner")


@dataclass(frozen=True)
class Case:
    """One row of the manifest."""

    case_id: str
    patient_id: str
    image: Path
    mask: Path
    label: int | None
    line: int
    #: Other manifest columns (modality, site, scanner, …) as text; None = empty cell.
    meta: dict[str, str | None] = field(default_factory=dict)


def read_manifest(path: str | Path) -> list[Case]:
    """Read and check a manifest; per-case problems (missing files …) are left to extraction.

    Raises:
        InputError: a missing column, an empty id/path, a non-integer label or a duplicate case
            id, naming the file, the line and the column.
    """
    path = Path(path)
    t = read_table(path, what="radiomics manifest", required=list(REQUIRED))
    if t.df.empty:
        raise InputError("the manifest has no rows.", file=path, hint="add one row per image + mask.")
    base = path.resolve().parent
    cols = {c: t.text(c) for c in t.df.columns}
    case_col = "case_id" if "case_id" in cols else "patient_id"
    for c in REQUIRED + ((case_col,) if case_col != "patient_id" else ()):
        empty = cols[c].isna()
        if empty.any():
            line = int(empty.idxmax())
            raise InputError(f"empty {c}.", file=path, line=line, column=c,
                             hint=f"fill in the {c} or delete the row.")
    labels = t.numeric("label") if "label" in cols else None
    seen: dict[str, int] = {}
    cases = []
    for line in t.df.index:
        cid = cols[case_col][line]
        if cid in seen:
            raise InputError(f"case {cid!r} appears twice (first on line {seen[cid]}).", file=path, line=int(line),
                             column=case_col, hint="give every row its own case_id (e.g. patient + lesion).")
        seen[cid] = int(line)
        label = None
        if labels is not None and labels[line] == labels[line]:  # not NaN
            if labels[line] != int(labels[line]) or labels[line] < 1:
                raise InputError(f"label {labels[line]!r} is not a positive whole number.", file=path, line=int(line),
                                 column="label", hint="write the mask value of the region of interest, e.g. 1.")
            label = int(labels[line])
        meta = {c: cols[c][line] for c in cols if c not in REQUIRED and c not in ("case_id", "label")}
        cases.append(Case(case_id=cid, patient_id=cols["patient_id"][line], image=_resolve(base, cols["image"][line]),
                          mask=_resolve(base, cols["mask"][line]), label=label, line=int(line), meta=meta))
    return cases


def _resolve(base: Path, p: str) -> Path:
    q = Path(p).expanduser()
    return q if q.is_absolute() else (base / q)
