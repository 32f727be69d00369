"""The service's operations on a loaded run: the same answers for the API, the web pages and the CLI.

Cohort patients go through :func:`graphonc.search.similar.similar_patients` itself (with the
run's index, facts and predictions kept in memory), so the service's neighbours are the
CLI's. New patients are embedded with the precomputed graph (:class:`FrozenGraph`) and
searched with :func:`graphonc.search.similar.similar_embedded`.
"""
from __future__ import annotations

from dataclasses import dataclass

from graphonc.report.html import page, report_sections
from graphonc.search.similar import Filters, SimilarResult, similar_embedded, similar_patients
from graphonc.serve.newpatient import NewPatient, NewPatientNotes, embed
from graphonc.serve.state import RunState

#: Integrated-gradients steps for explanations on request (the CLI's `explain` default is 32).
EXPLAIN_STEPS = 16


@dataclass
class NewPatientAnswer:
    result: SimilarResult
    notes: NewPatientNotes
    tables: object      # the NewPatients graph tables (for the explanation)


def similar_cohort(state: RunState, patient_id: str, k: int, filters: Filters) -> SimilarResult:
    return similar_patients(state.run.root, [patient_id], k, filters, index=state.index, facts=state.facts,
                            predictions=state.predictions)[0]


def similar_new(state: RunState, body: NewPatient, k: int, filters: Filters) -> NewPatientAnswer:
    if k < 1:
        from graphonc.errors import GraphoncError

        raise GraphoncError(f"k must be at least 1, got {k}")
    state.facts.check_filters(filters)
    emb, tables, notes = embed(body, state)
    return NewPatientAnswer(similar_embedded(state.index, state.facts, emb, k, filters)[0], notes, tables)


def _node_values(state: RunState) -> dict:
    """What an explanation shows next to a gene or pathway, read from the run once (not per request)."""
    from graphonc.model.explain import node_display_values

    if "node_values" not in state.facts.memo:
        state.facts.memo["node_values"] = node_display_values(state.run)
    return state.facts.memo["node_values"]


def explain_cohort(state: RunState, patient_id: str, steps: int = EXPLAIN_STEPS):
    from graphonc.model.explain import explain_loaded

    return explain_loaded(state.frozen.lm, state.run, patient_id, steps=steps, patients=state.facts.patients,
                          node_values=_node_values(state), local=state.local)


def explain_new(state: RunState, answer: NewPatientAnswer, steps: int = EXPLAIN_STEPS):
    """The explanation of a new patient. A fusion new to the run (a Fusion node the run lacks) is left out
    of it: the explanation names the run's own nodes only (its neighbours and prediction include it)."""
    from dataclasses import replace

    from graphonc.graph import schema as S
    from graphonc.model.explain import explain_new as _explain_new

    tables = answer.tables
    if tables.fusions is not None and len(tables.fusions):
        new_ids = set(tables.fusions[S.ID])
        edges = {e: df for e, df in tables.edges.items() if e != S.FUSION_PARTNER}
        has = edges[S.HAS_FUSION]
        edges[S.HAS_FUSION] = has[~has[S.DST].isin(new_ids)]
        tables = replace(tables, edges=edges, fusions=None)
    return _explain_new(state.frozen.lm, state.run, tables, steps=steps, node_values=_node_values(state),
                        local=state.local)


def sections(state: RunState, res: SimilarResult, explanation=None, notes: NewPatientNotes | None = None) -> list[str]:
    """The report's HTML sections for ``res`` (see :func:`graphonc.report.html.report_sections`)."""
    return report_sections(state.facts, res, state.risk_percentile(res.prediction.get("risk")), explanation, notes)


def report_page(state: RunState, res: SimilarResult, explanation=None, notes: NewPatientNotes | None = None) -> str:
    """The self-contained report document (the CLI's `report` file format)."""
    return page(f"Similar patients: {res.query.id} ({state.run.cohort})", state.run.cohort, len(state.facts.patients),
                sections(state, res, explanation, notes))
