"""Writing a subset of a real cBioPortal study to a temp folder (held-back or "new" patients)."""
from __future__ import annotations

import shutil
from pathlib import Path


def write_study_subset(study: Path, out: Path, patients: set[str], drop_columns: tuple[str, ...] = ()) -> Path:
    """Copy ``study`` into ``out`` keeping only ``patients`` (comment lines kept, filtered).

    Patient and sample rows are kept by their first column (PATIENT_ID) / second column
    (PATIENT_ID of the sample file); MAF rows by their Tumor_Sample_Barcode's patient
    (METABRIC-style sample id == patient id); ``#Sequenced_Samples:`` is filtered too.
    ``drop_columns`` are removed from the clinical files (to simulate incomplete input).
    """
    out.mkdir(parents=True, exist_ok=True)
    for src in sorted(study.iterdir()):
        lines = src.read_text().splitlines(keepends=True)
        if src.name.startswith("data_clinical_"):
            key = 1 if "sample" in src.name else 0
            lines = _filter_rows(lines, lambda f: f[key] in patients, drop_columns)
        elif src.name.startswith("data_mutations"):
            lines = _filter_maf(lines, patients)
        else:
            shutil.copy(src, out / src.name)
            continue
        (out / src.name).write_text("".join(lines))
    return out


def _filter_rows(lines: list[str], keep, drop_columns) -> list[str]:
    out, header, drop = [], None, set()
    for line in lines:
        fields = line.rstrip("\n").split("\t")
        if header is None and not line.startswith("#"):
            header = fields
            drop = {i for i, c in enumerate(header) if c in drop_columns}
        elif header is not None and not keep(fields):
            continue
        if drop:  # comment lines have one field per column too
            fields = [f for i, f in enumerate(fields) if i not in drop]
            line = "\t".join(fields) + "\n"
        out.append(line)
    return out


def _filter_maf(lines: list[str], patients: set[str]) -> list[str]:
    out, col = [], None
    for line in lines:
        if line.startswith("#Sequenced_Samples:"):
            ids = [s for s in line.split(":", 1)[1].split() if s in patients]
            out.append("#Sequenced_Samples: " + " ".join(ids) + "\n")
        elif line.startswith("#"):
            out.append(line)
        elif col is None:
            col = line.rstrip("\n").split("\t").index("Tumor_Sample_Barcode")
            out.append(line)
        elif line.split("\t")[col] in patients:
            out.append(line)
    return out
