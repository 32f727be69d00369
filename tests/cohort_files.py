"""Writing a subset of a real cBioPortal study to a temp folder (held-back or "new" patients)."""
from __future__ import annotations

import shutil
from pathlib import Path

import yaml

#: Patients in :func:`write_small_metabric`'s study.
N_PATIENTS = 60
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def file_lines(path: Path) -> tuple[list[str], str]:
    """(lines, line ending) of a text file whose line ending is LF or (old Mac) CR."""
    raw = path.read_bytes().decode()
    eol = "\r" if "\n" not in raw else "\n"
    return raw.split(eol), eol


def edit_line(path: Path, lineno: int, column: str, value: str) -> None:
    """Set ``column`` on 1-based file line ``lineno`` of a tab-separated file, keeping its line endings."""
    lines, eol = file_lines(path)
    header = next(ln for ln in lines if not ln.startswith("#")).split("\t")
    cells = lines[lineno - 1].split("\t")
    cells[header.index(column)] = value
    lines[lineno - 1] = "\t".join(cells)
    path.write_bytes(eol.join(lines).encode())


def write_small_metabric(data_dir: Path, tmp_path: Path, n_patients: int = N_PATIENTS) -> tuple[Path, Path]:
    """(study folder, config) of the first ``n_patients`` METABRIC patients with their samples and MAF
    rows, written to ``tmp_path/study`` with the original line endings; the config is the real one
    pointed at it (genes and pathways from ../shared/data through configs/)."""
    src = data_dir / "metabric"
    study = tmp_path / "study"
    study.mkdir()
    pat, eol = file_lines(src / "data_clinical_patient.txt")
    keep = pat[: 5 + n_patients]
    (study / "data_clinical_patient.txt").write_bytes(eol.join(keep).encode())
    ids = {ln.split("\t")[0] for ln in keep[5:]}
    smp, eol_s = file_lines(src / "data_clinical_sample.txt")
    (study / "data_clinical_sample.txt").write_bytes(
        eol_s.join(smp[:5] + [ln for ln in smp[5:] if ln.split("\t")[0] in ids]).encode())
    maf, eol_m = file_lines(src / "data_mutations_extended.txt")
    header = maf[:2]
    barcode = header[1].split("\t").index("Tumor_Sample_Barcode")
    rows = [ln for ln in maf[2:] if ln and ln.split("\t")[barcode] in ids]
    (study / "data_mutations_extended.txt").write_bytes(eol_m.join(header + rows).encode() + b"\n")
    shutil.copy(src / "data_gene_panel.txt", study / "data_gene_panel.txt")
    cfg = yaml.safe_load((CONFIGS / "metabric.yaml").read_text())
    cfg["input"]["study_dir"] = str(study)
    for key in ("gene_info", "intogen", "oncokb"):
        cfg["genes"][key] = str((CONFIGS / cfg["genes"][key]).resolve())
    for p in cfg["pathways"]:
        p["path"] = str((CONFIGS / p["path"]).resolve())
    cfg_path = tmp_path / "small.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    return study, cfg_path


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
