"""What the service keeps in memory per run, loaded once at start-up.

A :class:`RunState` holds a run's cohort facts (:class:`~graphonc.search.similar.CohortFacts`),
its FAISS index, the model's predictions, and (when the run has a trained model) the loaded
model with every non-patient node state precomputed (:class:`~graphonc.model.embed.FrozenGraph`)
and the run's config and gene symbol map, so a request does no disk reads and loads no model.

Requests run in the service's lanes (:mod:`graphonc.serve.lanes`): a quick and an explain
thread per process. FAISS searches and torch inference on these shared objects only read them;
the report's figures are SVG text (no matplotlib, no plot lock).
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from graphonc import layout as L
from graphonc.errors import GraphoncError
from graphonc.graph import schema as S
from graphonc.graph.run import GraphRun
from graphonc.search.index import PatientIndex, load_index
from graphonc.search.similar import CohortFacts, read_predictions

log = logging.getLogger("graphonc")


@dataclass
class InputField:
    """One model input a new patient may give (the form and the API body are derived from these).

    kind: numeric | categorical | radiomic. categories: the values the model knows (categorical).
    median/low/high: the cohort's median and 1st/99th percentiles (numeric), shown as a guide.
    unit: the config's ``clinical.units`` (through the run manifest), else None.
    """

    name: str
    kind: str
    categories: list[str] = field(default_factory=list)
    median: float | None = None
    low: float | None = None
    high: float | None = None
    unit: str | None = None


@dataclass
class RunState:
    """One run, ready to answer (see module doc)."""

    name: str
    run: GraphRun
    facts: CohortFacts
    index: PatientIndex
    predictions: pd.DataFrame | None
    risks: np.ndarray | None            # every cohort patient's predicted risk, sorted (percentiles)
    frozen: object | None = None        # graphonc.model.embed.FrozenGraph (None: no trained model)
    local: list | None = None           # graphonc.model.local.local_models (explanations; with the model)
    config: object | None = None        # the run's GraphConfig
    symbols: object | None = None       # the run's gene SymbolMap
    fields: list[InputField] = field(default_factory=list)
    sorted_ids: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))
    load_seconds: float = 0.0

    @property
    def has_model(self) -> bool:
        return self.frozen is not None

    def reads(self, assay: str) -> bool:
        """Whether the model reads a modality a new patient may give: ``cna_profiled`` (copy number),
        ``sv_profiled`` (fusions); the run was built with it and the encoder knows its assay flag."""
        lm = getattr(self.frozen, "lm", None)
        return lm is not None and assay in lm.graph.encoder.assays

    @property
    def has_copy_number(self) -> bool:
        return self.reads("cna_profiled")

    @property
    def has_fusions(self) -> bool:
        return self.reads("sv_profiled")

    @property
    def panels(self) -> list[str]:
        lm = getattr(self.frozen, "lm", None)
        return sorted(lm.graph.ids[S.GENE_PANEL]) if lm is not None and S.GENE_PANEL in lm.graph.ids else []

    def search_ids(self, prefix: str, limit: int = 20) -> list[str]:
        """Cohort patient ids starting with ``prefix`` (case-sensitive, sorted), at most ``limit``."""
        i = int(np.searchsorted(self.sorted_ids, prefix, side="left"))
        out = []
        for pid in self.sorted_ids[i:i + limit]:
            if not pid.startswith(prefix):
                break
            out.append(pid)
        return out

    def search_hits(self, prefix: str, limit: int = 20) -> list[tuple[str, str | None]]:
        """(id, diagnosis label or None) of the patients :meth:`search_ids` finds."""
        ids = self.search_ids(prefix, limit)
        p = self.facts.patients
        labels = p[L.LABEL].reindex(ids) if L.LABEL in p else pd.Series(None, index=ids, dtype=object)
        return [(i, None if pd.isna(v) else str(v)) for i, v in zip(ids, labels)]

    def risk_percentile(self, risk: float | None) -> float | None:
        if risk is None or self.risks is None or not len(self.risks):
            return None
        return float(np.searchsorted(self.risks, risk, side="left") / len(self.risks) * 100)


def input_fields(encoder, patients: pd.DataFrame, units: dict[str, str]) -> list[InputField]:
    """The model's input columns as form fields: exactly what the trained encoder reads.

    ``units``: Patient column key → unit (the run manifest's ``patient_columns.units``).
    """
    out = []
    for c in encoder.numeric:
        v = pd.to_numeric(patients[c], errors="coerce").dropna() if c in patients else pd.Series(dtype=float)
        q = v.quantile([0.01, 0.5, 0.99]).tolist() if len(v) else [None, None, None]
        out.append(InputField(c, "numeric", median=q[1], low=q[0], high=q[2], unit=units.get(c)))
    for c in encoder.categorical:
        out.append(InputField(c, "categorical", categories=[str(x) for x in encoder.categories_.get(c, [])]))
    for c in encoder.radiomics:
        out.append(InputField(c, "radiomic"))
    return out


def load_run(root: Path, name: str | None = None) -> RunState:
    """Load one run folder (index required; model optional: without one, no new patients)."""
    t0 = time.perf_counter()
    run = GraphRun.open(root)
    index = load_index(run.root, "cpu")
    facts = CohortFacts(run)
    preds = read_predictions(run, run.root / index.meta.get("model_dir", "model"))
    risks = np.sort(preds["risk"].dropna().to_numpy(float)) if preds is not None and "risk" in preds else None
    state = RunState(name or run.root.name, run, facts, index, preds, risks,
                     sorted_ids=np.array(sorted(map(str, facts.patients.index)), dtype=object))
    if run.layout.weights.exists():
        from graphonc.graph.build import symbol_map
        from graphonc.model.embed import FrozenGraph, run_config
        from graphonc.model.io import load_model
        from graphonc.model.local import local_models

        lm = load_model(run.layout.model_dir, run)
        state.frozen = FrozenGraph(lm)
        state.local = local_models(lm)
        state.config = run_config(run)
        state.symbols = symbol_map(state.config)
        state.fields = input_fields(lm.graph.encoder, facts.patients, run.patient_columns().get("units", {}))
    state.load_seconds = time.perf_counter() - t0
    log.info("loaded run %s: %d patients, %s index, model %s (%.1f s)", state.name, index.n, index.kind,
             "yes" if state.has_model else "no", state.load_seconds)
    return state


def load_runs(roots: list[Path]) -> dict[str, RunState]:
    """Runs by name (the folder name; a repeated name gets ``-2``, ``-3``, ...)."""
    out: dict[str, RunState] = {}
    if not roots:
        raise GraphoncError("give at least one run folder (--run).")
    for root in roots:
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(root).resolve().name)  # a URL path segment
        base, i = name, 2
        while name in out:
            name, i = f"{base}-{i}", i + 1
        out[name] = load_run(Path(root), name)
    return out
