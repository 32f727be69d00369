"""A new patient at diagnosis: the request body, its checks against the run, and its graph tables.

The body (:class:`NewPatient`) is the same for the API, the web form and
``graphonc report --new-patient FILE`` (JSON or YAML). Only the model's input columns are
accepted as clinical values (the trained encoder's numeric, categorical and radiomic
columns): treatments and other facts known after diagnosis are never inputs; they are
filters and outcome context for the neighbours.

Checks against the run raise :class:`FieldErrors`, one entry per bad field with its location
in the body (``["body", "clinical", "AGE_AT_DIAGNOSIS"]``), which the API answers with a 422.
Genes and variants the run has never seen are not errors: they are reported back
(:class:`NewPatientNotes`), never dropped silently.
"""
from __future__ import annotations

import math
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from graphonc.errors import GraphoncError, InputError
from graphonc.graph import schema as S

#: A gene symbol or protein change as typed by a person ("PIK3CA", "p.H1047R", "X1_splice").
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:*>+\-=/()?]{0,99}$")
#: The id shown for a new patient; never looked up, only displayed (escaped) and never audited.
NEW_ID = "new patient"


class MutationIn(BaseModel):
    """One somatic variant: gene symbol and protein change (HGVS p. short form, e.g. p.H1047R)."""

    model_config = ConfigDict(extra="forbid")
    gene: str = Field(..., min_length=1, max_length=100)
    protein_change: str = Field(..., min_length=1, max_length=100)
    variant_class: str | None = Field(None, max_length=100, description="MAF Variant_Classification, optional")


class NewPatient(BaseModel):
    """A patient at diagnosis (see the module doc; ``GET /api/runs/{run}/schema`` lists the fields)."""

    model_config = ConfigDict(extra="forbid")
    clinical: dict[str, Union[float, str, None]] = Field(
        default_factory=dict, description="model input column → value (numbers or the run's categories); "
        "a missing column is a missing value")
    mutations: list[Union[str, MutationIn]] = Field(
        default_factory=list, max_length=5000,
        description="variants as 'GENE p.CHANGE' lines (e.g. 'PIK3CA p.H1047R') or objects")
    maf: str | None = Field(None, description="the text of a MAF file (one tumour); its variants are added")
    gene_panel: str | None = Field(None, description="the sequencing panel, one of the run's GenePanel ids")
    radiomics: dict[str, float] = Field(default_factory=dict, description="radiomic feature → value, where the "
                                        "model reads imaging features")
    copy_number: dict[str, int] = Field(default_factory=dict, description="gene → copy-number level (-2..2), "
                                        "where the run has copy-number data")
    fusions: list[str] = Field(default_factory=list, description="fusions as 'GENE1::GENE2', where the run has "
                               "structural variants")


@dataclass
class FieldErrors(GraphoncError):
    """Bad fields of a body: [(location, message)], all of them at once."""

    errors: list[tuple[tuple, str]]

    def __str__(self) -> str:
        return "; ".join(f"{'.'.join(map(str, loc[1:]))}: {msg}" for loc, msg in self.errors)

    def detail(self) -> list[dict]:
        """FastAPI's 422 shape."""
        return [{"loc": list(loc), "msg": msg, "type": "value_error"} for loc, msg in self.errors]


@dataclass
class NewPatientNotes:
    """What the service could not use, reported with every answer about a new patient."""

    unknown_genes: list[str] = field(default_factory=list)       # not a gene symbol the run resolves
    genes_not_in_run: list[str] = field(default_factory=list)    # a valid gene no patient of the run carries
    variants_not_in_run: list[str] = field(default_factory=list)  # attached through their gene only
    filtered_variants: list[str] = field(default_factory=list)   # variant classes the config excludes
    missing_inputs: list[str] = field(default_factory=list)      # model inputs not given (imputed)


def _parse_mutation(item, i: int, errors: list) -> MutationIn | None:
    if isinstance(item, MutationIn):
        m = item
    else:
        parts = str(item).split()
        if len(parts) != 2:
            errors.append((("body", "mutations", i), "write a variant as 'GENE p.CHANGE', e.g. 'PIK3CA p.H1047R'"))
            return None
        m = MutationIn(gene=parts[0], protein_change=parts[1])
    bad = [name for name, v in (("gene", m.gene), ("protein_change", m.protein_change)) if not _TOKEN.match(v)]
    if bad:
        errors.append((("body", "mutations", i), f"{' and '.join(bad)} may hold only letters, digits and "
                       "HGVS punctuation (e.g. 'PIK3CA p.H1047R')"))
        return None
    return m


def _maf_rows(text: str, errors: list) -> pd.DataFrame:
    from graphonc.ingest.maf import read_maf

    with tempfile.TemporaryDirectory(prefix="graphonc-maf-") as tmp:
        path = Path(tmp) / "upload.maf"
        path.write_text(text, encoding="utf-8")
        try:
            maf = read_maf(path)
        except InputError as exc:
            exc.file = "maf"
            errors.append((("body", "maf"), exc.format()))
            return pd.DataFrame()
    return maf[["gene", "protein_change", "variant_class"]]


def check(body: NewPatient, state) -> tuple[dict, pd.DataFrame, NewPatientNotes]:
    """Validate ``body`` against the run in ``state`` (a RunState); raise FieldErrors listing every bad field.

    Returns (clinical values by model input column, mutation rows (gene, protein_change,
    variant_class), notes).
    """
    errors: list[tuple[tuple, str]] = []
    if not state.has_model:
        raise FieldErrors([(("path", "run"), f"run {state.name!r} has no trained model: new patients cannot be "
                            "embedded. Fix: `graphonc train` and `graphonc index` the run.")])
    fields = {f.name: f for f in state.fields}
    clinical = {}
    for col, value in body.clinical.items():
        loc = ("body", "clinical", col)
        f = fields.get(col)
        if f is None or f.kind == "radiomic":
            errors.append((loc, "not a model input of this run (inputs: " +
                           ", ".join(n for n, x in fields.items() if x.kind != "radiomic") + ")"))
            continue
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if f.kind == "numeric":
            try:
                v = float(value)
            except (TypeError, ValueError):
                errors.append((loc, f"must be a number, got {value!r}"))
                continue
            if not math.isfinite(v):
                errors.append((loc, "must be a finite number"))
                continue
            clinical[col] = v
        else:
            v = str(value)
            if v not in f.categories:
                errors.append((loc, f"{v!r} is not a category the model knows; use one of "
                               + ", ".join(repr(c) for c in f.categories)))
                continue
            clinical[col] = v
    for col, value in body.radiomics.items():
        f = fields.get(col)
        if f is None or f.kind != "radiomic":
            errors.append((("body", "radiomics", col), "not a radiomic feature the model reads"
                           + ("" if any(x.kind == "radiomic" for x in fields.values())
                              else " (this run's model reads no imaging features)")))
        elif not math.isfinite(value):
            errors.append((("body", "radiomics", col), "must be a finite number"))
    if body.copy_number:
        errors.append((("body", "copy_number"), "this run has no copy-number data, so the model cannot use it"))
    if body.fusions:
        errors.append((("body", "fusions"), "this run has no structural-variant data, so the model cannot use it"))
    if body.gene_panel is not None and body.gene_panel not in state.panels:
        errors.append((("body", "gene_panel"), "not a gene panel of this run; use one of "
                       + (", ".join(repr(p) for p in state.panels) or "(none)")))
    muts = [m for i, item in enumerate(body.mutations) if (m := _parse_mutation(item, i, errors)) is not None]
    rows = pd.DataFrame([m.model_dump() for m in muts], columns=["gene", "protein_change", "variant_class"])
    if body.maf:
        rows = pd.concat([rows, _maf_rows(body.maf, errors)], ignore_index=True)
    if errors:
        raise FieldErrors(errors)
    notes = NewPatientNotes(missing_inputs=[n for n, f in fields.items() if f.kind != "radiomic" and n not in clinical])
    return clinical, rows, notes


def to_tables(body: NewPatient, state, clinical: dict, rows: pd.DataFrame, notes: NewPatientNotes, pid: str = NEW_ID):
    """The new patient as graph tables (a ``NewPatients``), with the run's own mutation rules.

    The same building blocks as ``graphonc.model.embed.read_new_patients`` (gene symbol
    harmonisation, the config's variant filters, mutation ids, assay columns) on values that
    :func:`check` has already typed, without writing and re-reading files: equal to the CLI's
    ``similar --new-patient`` (``tests/test_serve.py``) at a fraction of the time.
    """
    from graphonc.graph.mutations import add_assay_columns, filter_mutations, mutation_tables
    from graphonc.model.embed import NewPatients

    enc = state.frozen.lm.graph.encoder
    patients = pd.DataFrame({S.ID: [pid], "cohort": [state.run.cohort]})
    for c in enc.numeric:
        patients[c] = pd.Series([clinical.get(c, float("nan"))], dtype="float64")
    for c in enc.categorical:
        patients[c] = pd.Series([clinical.get(c)], dtype="string")
    for c in enc.radiomics:
        patients[c] = pd.Series([body.radiomics.get(c, float("nan"))], dtype="float64")
    muts = pd.DataFrame({"patient_id": pid, "sample_id": pid, "gene": rows["gene"].astype(object),
                         "protein_change": rows["protein_change"].astype(object),
                         "variant_class": rows["variant_class"].astype(object).fillna("unknown"),
                         "vaf": float("nan")})
    harmonised, _ = state.symbols.harmonise_series(muts["gene"])
    mut_nodes, has_mut, _ = mutation_tables(filter_mutations(muts.assign(gene=harmonised), state.config))
    panel = body.gene_panel
    seq = pd.DataFrame({S.SRC: [pid] if panel else [], S.DST: [panel] if panel else []}, dtype=object)
    add_assay_columns(patients, seq, has_mut)
    # a patient whose variants are given was sequenced, even without a panel name
    patients["sequenced"] = bool(panel is not None or len(rows))
    received = pd.DataFrame({S.SRC: [], S.DST: []}, dtype=object)  # treatments come after diagnosis
    new = NewPatients(patients, {S.HAS_MUTATION: has_mut, S.RECEIVED: received, S.SEQUENCED_WITH: seq},
                      mut_nodes[[S.ID, "gene"]], "request")
    _note_variants(state, rows, new, notes)
    return new


def _note_variants(state, rows: pd.DataFrame, new, notes: NewPatientNotes) -> None:
    ids = state.frozen.lm.graph.ids
    genes_in_run, muts_in_run = ids.get(S.GENE, pd.Index([])), ids.get(S.MUTATION, pd.Index([]))
    kept = set(new.edges.get(S.HAS_MUTATION, pd.DataFrame(columns=[S.DST]))[S.DST])
    for g, change in zip(rows["gene"], rows["protein_change"]):
        resolved = state.symbols.resolve(g) if state.symbols is not None else g
        label = f"{g} {change}"
        if resolved is None:
            notes.unknown_genes.append(g)
            continue
        mid = f"{resolved}:{change}"
        if mid not in kept:
            notes.filtered_variants.append(label)
        elif resolved not in genes_in_run:
            notes.genes_not_in_run.append(resolved)
        elif mid not in muts_in_run:
            notes.variants_not_in_run.append(label)
    for name in ("unknown_genes", "genes_not_in_run", "variants_not_in_run", "filtered_variants"):
        setattr(notes, name, sorted(set(getattr(notes, name))))


def embed(body: NewPatient, state):
    """(EmbeddedPatients of the one new patient, NewPatients tables, notes); FieldErrors on bad fields."""
    clinical, rows, notes = check(body, state)
    new = to_tables(body, state, clinical, rows, notes)
    return state.frozen.embed(new), new, notes
