"""A cBioPortal study folder: clinical patient/sample files, MAF, gene panels.

File layout as on the cBioPortal datahub: ``data_clinical_patient.txt`` and
``data_clinical_sample.txt`` (four ``#`` header lines, then column names), a MAF
(``data_mutations*.txt``), and optionally ``data_gene_panel*.txt`` (panel gene lists) and
``data_gene_panel_matrix.txt`` (which panel sequenced which sample).

Which samples were sequenced, and on which panel, decides whether an absent mutation
means "wild type" or "not assayed": a MAF ``#Sequenced_Samples:`` line, the panel matrix,
or (with neither) every sample in the sample file.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from graphonc.config import CBioPortalInput
from graphonc.errors import InputError
from graphonc.ingest.alterations import profiled_samples, read_case_list, read_cna, read_sv
from graphonc.ingest.cohort import RawCohort
from graphonc.ingest.maf import read_maf, sequenced_samples
from graphonc.ingest.tables import check_ids, read_table, read_text_lines

PATIENT_ID = "PATIENT_ID"
SAMPLE_ID = "SAMPLE_ID"


def read_panel_file(path: Path) -> tuple[str, set[str]]:
    """(panel id, gene symbols) of a cBioPortal ``data_gene_panel*.txt`` file."""
    stable_id, genes = None, None
    for i, line in enumerate(read_text_lines(path, "gene panel file"), start=1):
        key, _, value = line.partition(":")
        if key.strip() == "stable_id":
            stable_id = value.strip()
        elif key.strip() == "gene_list":
            genes = {g for g in value.replace(",", "\t").split() if g}
    if not stable_id or not genes:
        raise InputError("a gene panel file needs 'stable_id:' and 'gene_list:' lines.", file=path,
                         hint="see cBioPortal's gene panel file format.")
    return stable_id, genes


def _find_maf(study: Path, name: str | None) -> Path | None:
    if name:
        return study / name
    found = sorted(study.glob("data_mutations*.txt"))
    return found[0] if found else None


def _matrix_column(cfg: CBioPortalInput, study: Path, column: str) -> pd.Series | None:
    """One column of the gene panel matrix (index sample id; None = not profiled), or None without one."""
    matrix = study / cfg.gene_panel_matrix if cfg.gene_panel_matrix else None
    if matrix is None or not matrix.exists():
        return None
    t = read_table(matrix, what="gene panel matrix", usecols=[SAMPLE_ID, column], required=[SAMPLE_ID])
    if column not in t.df.columns:
        return None
    m = pd.Series(t.text(column).to_numpy(), index=t.text(SAMPLE_ID).to_numpy())
    return m[~m.index.duplicated()]


def _case_list(cfg: CBioPortalInput, study: Path, key: str, files: list[Path]) -> set[str] | None:
    """Samples of the case list named by ``cfg.<key>`` (None = no case list)."""
    name = getattr(cfg, key)
    if name is None:
        return None
    path = study / name
    if not path.exists() and key not in cfg.model_fields_set:  # the default name, absent: no case list
        return None
    files.append(path)
    return read_case_list(path)


def _alterations(cfg: CBioPortalInput, study: Path, samples: pd.DataFrame, files: list[Path]
                 ) -> tuple[pd.DataFrame | None, pd.DataFrame | None, dict[str, pd.Series]]:
    """Copy-number calls, structural variants and the samples profiled for each (see ingest.alterations)."""
    to_patient = dict(zip(samples["sample_id"], samples["patient_id"]))
    cna = sv = None
    profiled: dict[str, pd.Series] = {}
    if cfg.cna is not None:
        path = study / cfg.cna
        cna, in_file = read_cna(path, to_patient)
        files.append(path)
        profiled["cna"] = profiled_samples(in_file, _case_list(cfg, study, "cna_case_list", files),
                                           _matrix_column(cfg, study, "cna"))
    if cfg.sv is not None:
        path = study / cfg.sv
        sv = read_sv(path, to_patient)
        files.append(path)
        profiled["sv"] = profiled_samples(list(samples["sample_id"]), _case_list(cfg, study, "sv_case_list", files),
                                          _matrix_column(cfg, study, "structural_variants"))
    return cna, sv, profiled


def _sample_filter(cfg: CBioPortalInput, sample_table, sids: pd.Series) -> pd.Series | None:
    """Which samples ``input.sample_filter`` keeps (index sample id), or None without a filter."""
    f = cfg.sample_filter
    if f is None:
        return None
    if sample_table is None:
        raise InputError("input.sample_filter needs a clinical sample file.", file=cfg.study_dir,
                         hint="set input.clinical_sample or remove input.sample_filter.")
    values = sample_table.text(f.column)
    keep = values.isin(f.values).to_numpy()
    if not keep.any():
        seen = sorted(values.dropna().unique().tolist())[:10]
        raise InputError(f"no sample has {f.column} in {f.values} (values seen: {seen}).",
                         file=sample_table.path, column=f.column, hint="correct input.sample_filter.values.")
    return pd.Series(keep, index=sids.to_numpy())


def _panels(cfg: CBioPortalInput, study: Path, samples: pd.DataFrame, maf: Path | None,
            files: list[Path]) -> tuple[pd.Series, dict[str, set[str] | None], bool]:
    """Panel of each sample (None = not sequenced), the known gene lists, and whether a list
    (panel matrix, MAF ``#Sequenced_Samples:``) said which samples were sequenced."""
    panel_files = ([study / n for n in cfg.gene_panels] if cfg.gene_panels is not None
                   else sorted(p for p in study.glob("data_gene_panel*.txt") if "matrix" not in p.name))
    panel_genes: dict[str, set[str] | None] = {}
    for p in panel_files:
        pid, genes = read_panel_file(p)
        panel_genes[pid] = genes
        files.append(p)
    panel = pd.Series(None, index=samples["sample_id"].to_numpy(), dtype=object)
    matrix = study / cfg.gene_panel_matrix if cfg.gene_panel_matrix else None
    if matrix is not None and matrix.exists():
        t = read_table(matrix, what="gene panel matrix", required=[SAMPLE_ID, "mutations"])
        files.append(matrix)
        m = pd.Series(t.text("mutations").to_numpy(), index=t.text(SAMPLE_ID).to_numpy())
        m = m[~m.index.duplicated()]
        panel = m.reindex(panel.index)
        for pid in set(panel.dropna()):
            panel_genes.setdefault(pid, None)
        return panel, panel_genes, True
    listed = sequenced_samples(maf) if maf is not None else None
    seq = set(listed) if listed is not None else set(panel.index)
    if len(panel_genes) == 1:
        only = next(iter(panel_genes))
    elif maf is not None:
        only = "sequenced"
        panel_genes[only] = None
    else:
        return panel, panel_genes, listed is not None
    panel[panel.index.isin(list(seq))] = only
    return panel, panel_genes, listed is not None


def read_cbioportal(cfg: CBioPortalInput) -> RawCohort:
    """Read a cBioPortal study folder into a :class:`RawCohort`."""
    study = cfg.study_dir
    if not study.is_dir():
        raise InputError("study folder not found.", file=study,
                         hint="set input.study_dir in the config to a cBioPortal study folder.")
    files: list[Path] = []
    pfile = study / cfg.clinical_patient
    patients = read_table(pfile, what="clinical patient file", required=[PATIENT_ID])
    files.append(pfile)
    pids = patients.text(PATIENT_ID)
    check_ids(pids, pfile, PATIENT_ID, "patient id")
    known = set(pids)

    sample_table, sample_patient = None, None
    if cfg.clinical_sample:
        sfile = study / cfg.clinical_sample
        sample_table = read_table(sfile, what="clinical sample file", required=[SAMPLE_ID, PATIENT_ID])
        files.append(sfile)
        sids = sample_table.text(SAMPLE_ID)
        check_ids(sids, sfile, SAMPLE_ID, "sample id")
        sample_patient = sample_table.text(PATIENT_ID)
        check_ids(sample_patient, sfile, PATIENT_ID, "patient id", unique=False)
        orphan = ~sample_patient.isin(known)
        if orphan.any():
            line = int(orphan.idxmax())
            raise InputError(
                f"sample {sids.loc[line]!r} belongs to patient {sample_patient.loc[line]!r}, "
                f"who is not in {pfile.name}.", file=sfile, line=line, column=PATIENT_ID,
                hint=f"add the patient to {pfile.name} or remove the sample.")
        samples = pd.DataFrame({"sample_id": sids.to_numpy(), "patient_id": sample_patient.to_numpy()})
    else:
        samples = pd.DataFrame({"sample_id": pids.to_numpy(), "patient_id": pids.to_numpy()})

    maf = _find_maf(study, cfg.mutations)
    if maf is not None:
        mutations = read_maf(maf)
        files.append(maf)
        to_patient = dict(zip(samples["sample_id"], samples["patient_id"]))
        mutations["patient_id"] = mutations["sample_id"].map(to_patient)
        orphan = mutations["patient_id"].isna()
        if orphan.any():
            row = mutations.loc[orphan].iloc[0]
            where = "the clinical sample file" if cfg.clinical_sample else pfile.name
            raise InputError(f"sample {row['sample_id']!r} has no patient in {where}.", file=maf,
                             line=int(row["line"]), column="Tumor_Sample_Barcode",
                             hint=f"add the sample to {where} or remove its mutation rows.")
    else:
        mutations = pd.DataFrame(columns=["patient_id", "sample_id", "gene", "protein_change", "variant_class",
                                          "vaf", "line"])

    panel, panel_genes, listed = _panels(cfg, study, samples, maf, files)
    samples["panel"] = panel.reindex(samples["sample_id"].to_numpy()).to_numpy()
    cna, sv, profiled = _alterations(cfg, study, samples, files)
    raw = RawCohort(patients=patients, patient_ids=pids, sample_table=sample_table, sample_patient=sample_patient,
                    samples=samples, mutations=mutations, mutation_file=maf, panel_genes=panel_genes, files=files,
                    cna=cna, sv=sv, profiled=profiled, mutations_listed=listed)
    keep = _sample_filter(cfg, sample_table, samples["sample_id"]) if cfg.sample_filter else None
    if keep is not None:
        raw.keep_samples(keep)
    return raw
