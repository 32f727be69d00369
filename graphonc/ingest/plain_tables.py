"""A cohort given as plain tables: one clinical row per patient plus a long mutation table.

For cohorts that do not come as a cBioPortal study. Optional ``assayed_genes`` (long table
patient_id, gene) says which genes each patient was tested for; patients with the same gene
set share one panel. Without it every patient counts as sequenced for every gene seen.
"""
from __future__ import annotations

import hashlib

import pandas as pd

from graphonc.config import MutationTableColumns, TableInput
from graphonc.errors import InputError
from graphonc.ingest.cohort import MUTATION_COLUMNS, RawCohort
from graphonc.ingest.mutation_table import read_mutation_table
from graphonc.ingest.tables import check_ids, read_table


def _panel_id(genes: frozenset[str]) -> str:
    return "panel-" + hashlib.sha1("\t".join(sorted(genes)).encode()).hexdigest()[:8]


def read_plain_tables(cfg: TableInput, columns: MutationTableColumns) -> RawCohort:
    pid_col = cfg.patient_id_column
    patients = read_table(cfg.clinical, what="clinical table", required=[pid_col])
    pids = patients.text(pid_col)
    check_ids(pids, cfg.clinical, pid_col, "patient id")
    files = [cfg.clinical]
    samples = pd.DataFrame({"sample_id": pids.to_numpy(), "patient_id": pids.to_numpy(), "panel": None})
    mutations = pd.DataFrame(columns=MUTATION_COLUMNS)
    panel_genes: dict[str, set[str] | None] = {}
    if cfg.mutations is not None:
        mutations = read_mutation_table(cfg.mutations, columns)
        files.append(cfg.mutations)
        orphan = ~mutations["patient_id"].isin(set(pids))
        if orphan.any():
            row = mutations.loc[orphan].iloc[0]
            raise InputError(f"patient {row['patient_id']!r} is not in {cfg.clinical.name}.", file=cfg.mutations,
                             line=int(row["line"]), column=columns.patient_id,
                             hint=f"add the patient to {cfg.clinical.name} or remove the mutation rows.")
        samples["panel"] = "sequenced"
        panel_genes["sequenced"] = None
    if cfg.assayed_genes is not None:
        t = read_table(cfg.assayed_genes, what="assayed genes table", required=["patient_id", "gene"])
        files.append(cfg.assayed_genes)
        assay = pd.DataFrame({"patient_id": t.text("patient_id"), "gene": t.text("gene")}).dropna()
        sets = assay.groupby("patient_id")["gene"].agg(frozenset)
        panel_genes = {_panel_id(g): set(g) for g in set(sets)}
        samples["panel"] = samples["patient_id"].map(sets.map(_panel_id))
    return RawCohort(patients=patients, patient_ids=pids, sample_table=None, sample_patient=None, samples=samples,
                     mutations=mutations, mutation_file=cfg.mutations, panel_genes=panel_genes, files=files,
                     mutations_listed=cfg.assayed_genes is not None)
