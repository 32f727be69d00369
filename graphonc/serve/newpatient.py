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

Copy number and fusions (runs built with ``input.cna`` / ``input.sv``) follow the builder's
rules (graph/copy_number.py, graph/fusions.py): a discrete value of 2 links the patient to the
gene as an amplification, -2 as a deep deletion, the other values (-1.5 … 1) are accepted and
make no link; a fusion is matched to the cohort's Fusion node whatever the order of its
partners (ERG-TMPRSS2 is the cohort's TMPRSS2::ERG). A fusion no cohort patient carries becomes
a new Fusion node linked to its partner genes, as the builder links every fusion node, and is
attached receive-only with the patient (it changes no other node). ``copy_number_profiled`` /
``sv_profiled`` set the model's assay flags: not profiled is not "not altered".
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
#: Words a copy-number line may use ("AR amp"), as cBioPortal's discrete values.
CNA_LEVELS = {"amp": 2.0, "amplification": 2.0, "gain": 1.0, "loss": -1.0, "hetloss": -1.0, "homdel": -2.0,
              "deepdel": -2.0}
_CNA_HOW = "write a copy-number call as 'GENE amp' or 'GENE homdel' (or 'GENE 2' / 'GENE -2')"
_FUSION_HOW = "write a fusion as 'GENE1-GENE2' or 'GENE1::GENE2' (e.g. 'TMPRSS2-ERG')"


class MutationIn(BaseModel):
    """One somatic variant: gene symbol and protein change (HGVS p. short form, e.g. p.H1047R)."""

    model_config = ConfigDict(extra="forbid")
    gene: str = Field(..., min_length=1, max_length=100)
    protein_change: str = Field(..., min_length=1, max_length=100)
    variant_class: str | None = Field(None, max_length=100, description="MAF Variant_Classification, optional")


class CopyNumberIn(BaseModel):
    """One gene's discrete copy number (cBioPortal: 2 amplification, -2 deep deletion; -1.5 … 1 make no link)."""

    model_config = ConfigDict(extra="forbid")
    gene: str = Field(..., min_length=1, max_length=100)
    value: float = Field(..., description="cBioPortal discrete copy number, -2 … 2")


class FusionIn(BaseModel):
    """A fusion or other structural variant by its two partner genes (the same gene twice: intragenic)."""

    model_config = ConfigDict(extra="forbid")
    gene1: str = Field(..., min_length=1, max_length=100)
    gene2: str = Field(..., min_length=1, max_length=100)


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
    copy_number: list[Union[str, CopyNumberIn]] = Field(
        default_factory=list, max_length=25000,
        description="copy number, where the run has it: {gene, value} with cBioPortal's discrete values (2 = "
        "amplification, -2 = deep deletion; -1.5 … 1 accepted and not linked) or lines like 'AR amp', 'PTEN homdel'")
    copy_number_profiled: bool | None = Field(
        None, description="whether copy number was profiled (default: true when copy_number lists a gene); false "
        "tells the model it was not measured, which is not 'no alteration'")
    fusions: list[Union[str, FusionIn]] = Field(
        default_factory=list, max_length=1000,
        description="fusions, where the run has structural variants: 'TMPRSS2-ERG', 'TMPRSS2::ERG' or {gene1, gene2}")
    sv_profiled: bool | None = Field(
        None, description="whether structural variants were profiled (default: true when fusions lists one)")


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
    ignored_copy_number: list[str] = field(default_factory=list)  # values that make no link (gains, losses)
    fusions_not_in_run: list[str] = field(default_factory=list)  # new Fusion nodes, linked to their partner genes
    fusions_not_linked: list[str] = field(default_factory=list)  # new fusions none of whose partners the model has


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


def _parse_cna(item, i: int, errors: list) -> tuple[str, float] | None:
    """(gene, value) of one copy-number item; a 422 entry and None when it is malformed."""
    loc = ("body", "copy_number", i)
    if isinstance(item, CopyNumberIn):
        gene, value = item.gene.strip(), item.value
    else:
        parts = str(item).split()
        if len(parts) != 2:
            errors.append((loc, _CNA_HOW))
            return None
        gene, word = parts
        value = CNA_LEVELS.get(word.lower())
        if value is None:
            try:
                value = float(word)
            except ValueError:
                errors.append((loc, f"{word!r} is not a copy-number call; use amp, gain, loss or homdel, or a "
                               "value from -2 to 2"))
                return None
    if not _TOKEN.match(gene):
        errors.append((loc, "gene may hold only letters, digits and - . _ (e.g. 'AR amp')"))
        return None
    if not math.isfinite(value) or not -2 <= value <= 2:
        errors.append((loc, "value must be cBioPortal's discrete copy number, from -2 (deep deletion) to 2 "
                       "(amplification)"))
        return None
    return gene, float(value)


def _parse_fusion(item, i: int, errors: list, symbols) -> tuple[str, str] | None:
    """(gene1, gene2) of one fusion item as written; a 422 entry and None when it is malformed.

    'A-B' is split at the hyphen; when a symbol holds a hyphen itself (NKX2-1) the split whose two
    sides are both gene symbols wins, and an ambiguous line asks for 'A::B'.
    """
    loc = ("body", "fusions", i)
    if isinstance(item, FusionIn):
        pair = (item.gene1.strip(), item.gene2.strip())
    else:
        text = str(item).strip()
        if "::" in text:
            parts = text.split("::")
            options = [tuple(p.strip() for p in parts)] if len(parts) == 2 else []
        else:
            options = [(text[:k], text[k + 1:]) for k, ch in enumerate(text) if ch == "-" and 0 < k < len(text) - 1]
            if len(options) > 1 and symbols is not None:
                options = [o for o in options if all(symbols.resolve(g, fold_case=True) for g in o)] or options
        if not options:
            errors.append((loc, _FUSION_HOW))
            return None
        if len(options) > 1:
            errors.append((loc, f"{text!r} splits into two partner genes in more than one way; write it as "
                           "'GENE1::GENE2'"))
            return None
        pair = options[0]
    if not all(_TOKEN.match(g) for g in pair):
        errors.append((loc, "partner genes may hold only letters, digits and - . _ (e.g. 'TMPRSS2-ERG')"))
        return None
    return pair


def _assay_flag(body: NewPatient, state, items: str, flag: str, has: bool, what: str, errors: list) -> bool:
    """The patient's ``<assay>_profiled`` value from ``body.<flag>`` and ``body.<items>``; 422 entries for a
    run without the modality and for 'not profiled' with alterations given."""
    given, profiled = getattr(body, items), getattr(body, flag)
    if not has:
        if given or profiled:
            errors.append((("body", items if given else flag),
                           f"run {state.name!r} has no {what} data (built without it), so the model cannot use it; "
                           f"leave {items} out"))
        return False
    if profiled is False and given:
        errors.append((("body", flag), f"false (not profiled) contradicts the {len(given)} {items} item(s) given"))
    return bool(given) if profiled is None else bool(profiled)


def _read_maf(data: bytes, name: str) -> pd.DataFrame:
    """(gene, protein_change, variant_class) rows of a MAF's bytes, read by graphonc's MAF reader;
    its InputError (file, line, column) names ``name`` instead of the temporary copy."""
    from graphonc.ingest.maf import read_maf

    with tempfile.TemporaryDirectory(prefix="graphonc-maf-") as tmp:
        path = Path(tmp) / "upload.maf"
        path.write_bytes(data)
        try:
            maf = read_maf(path)
        except InputError as exc:
            exc.file = name
            exc.message = exc.message.replace(str(path), name)
            raise
    return maf[["gene", "protein_change", "variant_class"]]


def _maf_rows(text: str, errors: list) -> pd.DataFrame:
    try:
        return _read_maf(text.encode("utf-8"), "maf")
    except InputError as exc:
        errors.append((("body", "maf"), exc.format()))
        return pd.DataFrame(columns=["gene", "protein_change", "variant_class"])


def maf_upload_text(filename: str, data: bytes) -> str:
    """The text of an uploaded MAF file (the web form's ``maf_file``), which becomes the body's ``maf``:
    read first by graphonc's MAF reader, so a bad file is refused (FieldErrors) naming the uploaded
    file's name, the line and the column."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(filename).name)[:100] or "upload.maf"
    try:
        _read_maf(data, name)
    except InputError as exc:
        raise FieldErrors([(("body", "maf_file"), exc.format())]) from None
    return data.decode("utf-8-sig")  # the reader has checked it is UTF-8


@dataclass
class Checked:
    """A body checked against the run: typed values, ready for :func:`to_tables`."""

    clinical: dict                      # model input column → value
    mutations: pd.DataFrame             # gene, protein_change, variant_class (as given)
    copy_number: list[tuple[str, float]]  # (gene as given, discrete value)
    fusions: list[tuple[str, str]]      # (gene1, gene2) as given
    cna_profiled: bool
    sv_profiled: bool
    notes: NewPatientNotes


def check(body: NewPatient, state) -> Checked:
    """Validate ``body`` against the run in ``state`` (a RunState); raise FieldErrors listing every bad field."""
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
    cna_profiled = _assay_flag(body, state, "copy_number", "copy_number_profiled", state.has_copy_number,
                               "copy-number", errors)
    sv_profiled = _assay_flag(body, state, "fusions", "sv_profiled", state.has_fusions, "structural-variant",
                              errors)
    cna = [c for i, item in enumerate(body.copy_number) if state.has_copy_number
           and (c := _parse_cna(item, i, errors)) is not None]
    fusions = [f for i, item in enumerate(body.fusions) if state.has_fusions
               and (f := _parse_fusion(item, i, errors, state.symbols)) is not None]
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
    return Checked(clinical, rows, cna, fusions, cna_profiled, sv_profiled, notes)


def to_tables(body: NewPatient, state, checked: Checked, pid: str = NEW_ID):
    """The new patient as graph tables (a ``NewPatients``), with the run's own mutation rules.

    The same building blocks as ``graphonc.model.embed.read_new_patients`` (gene symbol
    harmonisation, the config's variant filters, mutation ids, assay columns) on values that
    :func:`check` has already typed, without writing and re-reading files: equal to the CLI's
    ``similar --new-patient`` (``tests/test_serve.py``) at a fraction of the time.
    """
    from graphonc.graph.mutations import add_assay_columns, filter_mutations, mutation_tables
    from graphonc.model.embed import NewPatients

    clinical, rows, notes = checked.clinical, checked.mutations, checked.notes
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
    edges = {S.HAS_MUTATION: has_mut, S.RECEIVED: received, S.SEQUENCED_WITH: seq}
    fusion_nodes = None
    if state.has_copy_number:
        patients["cna_profiled"] = checked.cna_profiled
        edges[S.HAS_CNA] = _cna_edges(state, checked.copy_number, notes, pid)
    if state.has_fusions:
        patients["sv_profiled"] = checked.sv_profiled
        edges[S.HAS_FUSION], edges[S.FUSION_PARTNER], fusion_nodes = _fusion_tables(state, checked.fusions, notes, pid)
    new = NewPatients(patients, edges, mut_nodes[[S.ID, "gene"]], "request", fusion_nodes)
    _note_variants(state, rows, new, notes)
    for name in ("unknown_genes", "genes_not_in_run"):
        setattr(notes, name, sorted(set(getattr(notes, name))))
    return new


def _resolve(state, gene: str, notes: NewPatientNotes) -> str:
    """The run's symbol for ``gene`` (an unknown symbol is kept as given, like the builder, and noted)."""
    resolved = state.symbols.resolve(gene, fold_case=True) if state.symbols is not None else gene
    if resolved is None:
        notes.unknown_genes.append(gene)
    return resolved or gene


def _cna_edges(state, calls: list[tuple[str, float]], notes: NewPatientNotes, pid: str) -> pd.DataFrame:
    """HAS_CNA edges of the new patient by the builder's rule (graph/copy_number.cna_edges)."""
    from graphonc.graph.copy_number import cna_edges

    genes_in_model = state.frozen.lm.graph.ids.get(S.GENE, pd.Index([]))
    df = pd.DataFrame({"patient_id": pid, "gene": [_resolve(state, g, notes) for g, _ in calls],
                       "value": [v for _, v in calls]}, columns=["patient_id", "gene", "value"])
    df["value"] = df["value"].astype("float64")
    for (given, v), gene in zip(calls, df["gene"]):
        if not (v >= 2 or v <= -2):
            notes.ignored_copy_number.append(f"{given} {v:g}")
        elif gene not in genes_in_model and given not in notes.unknown_genes:
            notes.genes_not_in_run.append(gene)
    notes.ignored_copy_number = sorted(set(notes.ignored_copy_number))
    # a gene without a node in the model cannot be linked: noted above, left out of the profile too
    return cna_edges(df[df["gene"].isin(genes_in_model)])


def _fusion_tables(state, pairs: list[tuple[str, str]], notes: NewPatientNotes, pid: str):
    """(HAS_FUSION edges, FUSION_PARTNER edges of new fusions, new Fusion nodes or None) of the new patient.

    A pair is the cohort's Fusion node whatever its partners' order; otherwise a new node
    ``GENE1::GENE2`` linked to those of its partners the model has (none: not attached, noted).
    """
    from graphonc.graph.fusions import UNKNOWN_PARTNER

    g = state.frozen.lm.graph
    cohort = {"::".join(sorted(f.split("::", 1))): f for f in g.ids.get(S.FUSION, pd.Index([]))}
    genes_in_model = set(g.ids.get(S.GENE, pd.Index([])))
    has, partners, nodes = [], [], {}
    for a, b in pairs:
        a, b = _resolve(state, a, notes), _resolve(state, b, notes)
        fid = cohort.get("::".join(sorted((a, b))))
        if fid is None:
            fid = f"{a}::{b}"
            linked = sorted({a, b} & genes_in_model - {UNKNOWN_PARTNER})
            if not linked:
                notes.fusions_not_linked.append(fid)
                continue
            if fid not in nodes:
                nodes[fid] = {S.ID: fid, "gene1": a, "gene2": b, "sv_class": "unknown", "intragenic": a == b}
                partners += [(fid, x) for x in linked]
                notes.fusions_not_in_run.append(fid)
        has.append((pid, fid))
    has_df = pd.DataFrame(list(dict.fromkeys(has)), columns=[S.SRC, S.DST], dtype=object)
    part_df = pd.DataFrame(partners, columns=[S.SRC, S.DST], dtype=object)
    for name in ("fusions_not_in_run", "fusions_not_linked"):
        setattr(notes, name, sorted(set(getattr(notes, name))))
    return has_df, part_df, pd.DataFrame(list(nodes.values())) if nodes else None


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
    checked = check(body, state)
    new = to_tables(body, state, checked)
    return state.frozen.embed(new), new, checked.notes
