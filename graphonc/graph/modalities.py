"""Data modalities of the patient graph behind one interface.

A modality turns one kind of patient data into graph tables. ``build.py`` loops over the
modalities a config enables (:func:`enabled_modalities`) and merges what each returns; it
knows no modality by name. Adding one (say, expression) means one class here (or in its own
module) and one entry in :data:`MODALITIES`.

Every modality gets the same :class:`BuildInputs` and returns a :class:`ModalityTables`:

* ``nodes`` / ``edges``: its own node and edge tables (schema names of graph/schema.py);
* ``patient_columns``: one row per cohort patient (column ``id`` + its columns, e.g.
  ``sequenced``/``n_mutations`` or ``cna_profiled``/``n_cna``), merged into Patient in
  modality order. A modality that can be missing says which patients it profiled, because
  not profiled is not "no alteration";
* ``genes``: gene symbols it links to (they become Gene nodes); ``altered_genes``: those
  altered in some patient (a pathway is kept when it holds one); ``gene_columns``: per-gene
  counts (``id`` + int columns, 0 for genes it does not mention);
* ``stats``, ``files``, ``patient_features`` (model feature columns it added to Patient) and
  ``artifacts`` (text files for the run folder).
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd

from graphonc.config import GraphConfig
from graphonc.graph import schema as S
from graphonc.graph.mutations import add_assay_columns, filter_mutations, mutation_tables, panel_tables
from graphonc.ingest.cohort import RawCohort
from graphonc.ingest.symbols import SymbolMap

log = logging.getLogger("graphonc")


@dataclass
class BuildInputs:
    """What every modality may read: the raw cohort, the config, the symbol map, the patients."""

    raw: RawCohort
    cfg: GraphConfig
    symbols: SymbolMap
    #: the typed Patient table so far (column ``id`` = every cohort patient)
    patients: pd.DataFrame


@dataclass
class ModalityTables:
    """Graph tables of one modality (see the module doc)."""

    nodes: dict[str, pd.DataFrame] = field(default_factory=dict)
    edges: dict[S.EdgeType, pd.DataFrame] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    patient_columns: pd.DataFrame | None = None
    genes: set[str] = field(default_factory=set)
    altered_genes: set[str] = field(default_factory=set)
    gene_columns: pd.DataFrame | None = None
    files: list[Path] = field(default_factory=list)
    patient_features: dict[str, list[str]] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)


class Modality(Protocol):
    """One kind of patient data → graph tables."""

    #: short name, also the build stage shown in progress and timings
    name: str

    def enabled(self, cfg: GraphConfig) -> bool:
        """Whether the config asks for this modality."""

    def tables(self, inputs: BuildInputs) -> ModalityTables:
        """Its tables for the cohort (raises InputError on bad input)."""


def harmonise(symbols: SymbolMap, genes: pd.Series, what: str) -> tuple[pd.Series, list[str]]:
    """Gene symbols mapped to current NCBI symbols, and the unknown ones (kept as given, and logged)."""
    harmonised, unknown = symbols.harmonise_series(genes, fold_case=True)
    if unknown:
        log.warning("%s: %d gene symbol(s) not in gene_info, kept as given: %s", what, len(unknown),
                    ", ".join(unknown[:10]))
    return harmonised, unknown


class Mutations:
    """MAF / long mutation table → Mutation nodes, HAS_MUTATION, IN_GENE, gene panels."""

    name = "mutations"

    def enabled(self, cfg: GraphConfig) -> bool:
        return True  # a cohort without mutation data still gets the (empty) tables and sequenced=False

    def tables(self, inputs: BuildInputs) -> ModalityTables:
        raw, cfg, symbols = inputs.raw, inputs.cfg, inputs.symbols
        if raw.mutation_file is not None and raw.mutations.empty:  # legitimate, but worth a word
            log.warning("%s has a header but 0 mutations: every sequenced patient counts as wild type.",
                        raw.mutation_file)
        harmonised, unknown = harmonise(symbols, raw.mutations["gene"], "mutations")
        all_mut = raw.mutations.assign(gene=harmonised)
        kept = filter_mutations(all_mut, cfg)
        mut_nodes, has_mut, in_gene = mutation_tables(kept)
        panel_nodes, seq, covers = panel_tables(raw, all_mut, symbols, cfg)
        cols = pd.DataFrame({S.ID: inputs.patients[S.ID].to_numpy()})
        add_assay_columns(cols, seq, has_mut)
        codes, mut_ids = pd.factorize(has_mut[S.DST])  # split each distinct mutation id once
        gene_of = pd.Series(mut_ids, dtype=object).str.split(":", n=1).str[0].to_numpy(dtype=object)
        n_pat = has_mut.assign(gene=gene_of[codes]).groupby("gene")[S.SRC].nunique()
        mutated = set(mut_nodes["gene"])
        return ModalityTables(
            nodes={S.MUTATION: mut_nodes, S.GENE_PANEL: panel_nodes},
            edges={S.HAS_MUTATION: has_mut, S.IN_GENE: in_gene, S.SEQUENCED_WITH: seq, S.COVERS: covers},
            stats={"mutation_rows": {"read": int(len(raw.mutations)), "kept": int(len(kept)),
                                     "unknown_symbols": unknown}},
            patient_columns=cols, genes=mutated | set(covers[S.DST]), altered_genes=mutated,
            gene_columns=pd.DataFrame({S.ID: n_pat.index.to_numpy(dtype=object),
                                       "n_patients_mutated": n_pat.to_numpy()}))


@dataclass(frozen=True)
class PluginModality:
    """A modality built by another module: ``builder`` is ``"module:function"`` (BuildInputs →
    ModalityTables), imported on first use. Those modules import this one (they implement its
    interface), so graph/ names them, like entry points, instead of importing them; and a heavy
    stack (SimpleITK for radiomics) loads only when a config uses it.

    ``enabled_by``: the config key whose presence turns the modality on (``input.cna``,
    ``radiomics``).
    """

    name: str
    enabled_by: str
    builder: str

    def enabled(self, cfg: GraphConfig) -> bool:
        value = cfg
        for part in self.enabled_by.split("."):
            value = getattr(value, part, None)
        return value is not None

    def tables(self, inputs: BuildInputs) -> ModalityTables:
        module, func = self.builder.split(":")
        return getattr(importlib.import_module(module), func)(inputs)


#: Every modality, in the order their Patient columns are added.
MODALITIES: tuple[Modality, ...] = (
    Mutations(),
    # discrete copy number → HAS_CNA edges (amplifications, deep deletions): graph/copy_number.py
    PluginModality("copy number", "input.cna", "graphonc.graph.copy_number:cna_tables"),
    # structural variants → Fusion nodes, HAS_FUSION, FUSION_PARTNER: graph/fusions.py
    PluginModality("fusions", "input.sv", "graphonc.graph.fusions:fusion_tables"),
    # radiomic features → RadiomicPhenotype nodes, HAS_PHENOTYPE, rad_* Patient features: radiomics/graph.py
    PluginModality("radiomics", "radiomics", "graphonc.radiomics.graph:modality_tables"),
)


def enabled_modalities(cfg: GraphConfig) -> list[Modality]:
    return [m for m in MODALITIES if m.enabled(cfg)]
