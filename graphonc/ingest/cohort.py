"""The raw cohort every reader returns, before any config-driven typing.

A reader (cBioPortal study folder, plain tables) fills a :class:`RawCohort`; the graph
builder then types clinical columns, filters mutations and harmonises gene symbols. Keeping
this seam small means a new input format is one new reader, nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from graphonc.errors import InputError, did_you_mean
from graphonc.ingest.tables import Table

#: Columns of :attr:`RawCohort.mutations`.
MUTATION_COLUMNS = ["patient_id", "sample_id", "gene", "protein_change", "variant_class", "vaf", "line"]


@dataclass
class RawCohort:
    """Inputs of one cohort as read from disk.

    Attributes:
        patients: the patient-level table (strings; index = file line).
        patient_ids: patient id of each row of ``patients`` (same index).
        sample_table: optional sample-level clinical table (strings; index = file line).
        sample_patient: patient id of each row of ``sample_table`` (same index).
        samples: one row per sample: sample_id, patient_id, panel (None = not sequenced).
        mutations: long table with :data:`MUTATION_COLUMNS`; ``line`` is the file line.
        mutation_file: where the mutations came from (None = no mutation data).
        panel_genes: panel id → set of gene symbols as given (None = gene list unknown).
        files: every input file read, for checksums in the manifest.
        cna: non-zero discrete copy-number calls (``ingest.alterations.CNA_COLUMNS``), None = no CNA data.
        sv: structural variants (``ingest.alterations.SV_COLUMNS``), None = no SV data.
        profiled: data type ("cna", "sv") → panel of each profiled sample (index sample id;
            None where the panel is unknown). A sample absent from it was not profiled.
        mutations_listed: whether the sequenced samples come from a list (MAF header, panel
            matrix, panel file) rather than being assumed to be every sample.
    """

    patients: Table
    patient_ids: pd.Series
    sample_table: Table | None
    sample_patient: pd.Series | None
    samples: pd.DataFrame
    mutations: pd.DataFrame
    mutation_file: Path | None
    panel_genes: dict[str, set[str] | None] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    cna: pd.DataFrame | None = None
    sv: pd.DataFrame | None = None
    profiled: dict[str, pd.Series] = field(default_factory=dict)
    mutations_listed: bool = True

    def keep_samples(self, keep: pd.Series) -> None:
        """Drop the samples where ``keep`` (indexed by sample id) is False, with all their data."""
        ok = set(keep.index[keep.to_numpy(dtype=bool)])
        self.samples = self.samples[self.samples["sample_id"].isin(ok)].reset_index(drop=True)
        self.mutations = self.mutations[self.mutations["sample_id"].isin(ok)]
        for name in ("cna", "sv"):
            df = getattr(self, name)
            if df is not None:
                setattr(self, name, df[df["sample_id"].isin(ok)])
        self.profiled = {k: v[v.index.isin(ok)] for k, v in self.profiled.items()}
        if self.sample_table is not None:
            rows = self.sample_table.text("SAMPLE_ID").isin(ok).to_numpy()
            self.sample_table.df = self.sample_table.df.loc[rows]
            self.sample_patient = self.sample_patient.loc[rows]

    def keep_patients(self, ids: set[str]) -> None:
        """Drop every patient not in ``ids``, with their samples and data."""
        rows = self.patient_ids.isin(ids).to_numpy()
        self.patients.df = self.patients.df.loc[rows]
        self.patient_ids = self.patient_ids.loc[rows]
        self.keep_samples(pd.Series(self.samples["patient_id"].isin(ids).to_numpy(),
                                    index=self.samples["sample_id"].to_numpy()))

    def profiled_patients(self, assay: str) -> set[str]:
        """Patients with at least one sample profiled for ``assay`` ("mutations", "cna", "sv")."""
        if assay == "mutations":
            seq = self.samples.dropna(subset=["panel"])
            if not self.mutations_listed:  # no list says who was sequenced: a mutation row is the evidence
                seq = seq[seq["sample_id"].isin(set(self.mutations["sample_id"]))]
            return set(seq["patient_id"])
        panel = self.profiled.get(assay)
        if panel is None:
            return set()
        to_patient = dict(zip(self.samples["sample_id"], self.samples["patient_id"]))
        return {to_patient[s] for s in panel.index if s in to_patient}

    def column(self, name: str, typer: Callable[[Table, str], pd.Series], purpose: str) -> pd.Series:
        """A clinical column typed by ``typer`` (e.g. ``Table.numeric``), one value per patient.

        Looks in the patient table first, then the sample table (first sample of each patient).
        Returns a Series indexed by patient id.
        """
        if name in self.patients.df.columns:
            values = typer(self.patients, name)
            return pd.Series(values.to_numpy(), index=self.patient_ids.to_numpy(), name=name)
        if self.sample_table is not None and name in self.sample_table.df.columns:
            values = typer(self.sample_table, name)
            s = pd.Series(values.to_numpy(), index=self.sample_patient.to_numpy(), name=name)
            s = s[~s.index.duplicated(keep="first")]
            return s.reindex(self.patient_ids.to_numpy())
        cols = list(self.patients.df.columns) + (list(self.sample_table.df.columns) if self.sample_table else [])
        files = self.patients.name + (f" or {self.sample_table.name}" if self.sample_table else "")
        raise InputError(
            f"clinical column {name!r} (needed for {purpose}) is in neither {files}.{did_you_mean(name, cols)}",
            file=self.patients.path, line=int(self.patients.df.index[0]) - 1 if len(self.patients.df) else None,
            column=name, hint="correct the column name in the config.",
        )
