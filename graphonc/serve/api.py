"""The JSON API (``/api``): health, cohort summary, input schema, patient lookup, similar patients
(cohort and new), explanations and the report page. Pydantic models give the OpenAPI schema
(``/openapi.json``).

Every route that touches patients notes the cohort patient ids it was asked about in
``request.state.audit`` for the audit log (:mod:`graphonc.serve.security`); values never.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from graphonc import layout as L
import graphonc
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from graphonc.search.similar import Filters, SimilarResult, parse_filters
from graphonc.serve import service
from graphonc.serve.lanes import lanes
from graphonc.serve.newpatient import NewPatient
from graphonc.serve.state import RunState

router = APIRouter(prefix="/api")


# ---------------------------------------------------------------------------------- models


class Health(BaseModel):
    status: str
    version: str
    runs: list[str]


class InputFieldOut(BaseModel):
    name: str
    kind: str
    categories: list[str] = []
    median: float | None = None
    low: float | None = None
    high: float | None = None
    unit: str | None = None


class CohortSummary(BaseModel):
    run: str
    cohort: str
    patients: int
    index: str
    has_model: bool
    labels: dict[str, int]
    treatments: list[str]
    survival_endpoints: list[str]
    median_followup_months: float | None
    deaths: int | None
    nodes: dict[str, int]
    edges: dict[str, int]
    inputs: list[InputFieldOut]
    gene_panels: list[str]
    alterations: list[str] = []   # body fields beyond clinical and mutations this run's model reads


class PatientHit(BaseModel):
    id: str
    label: str | None


class Profile(BaseModel):
    id: str
    new: bool
    label: str | None
    clinical: dict[str, Any]
    mutations: list[str]
    genes: list[str]
    treatments: list[str]
    phenotypes: dict[str, Any]
    os_months: float | None
    os_event: float | None
    extra_survival: dict[str, Any]
    copy_number: dict[str, str] = {}     # gene → AMP / HOMDEL, where the run has copy number
    fusions: list[str] = []
    assays: dict[str, bool] = {}         # cna_profiled / sv_profiled: not profiled is not "not altered"


class Neighbour(BaseModel):
    rank: int
    id: str
    score: float
    label: str | None
    reasons: str
    shared_mutations: list[str]
    shared_genes: list[dict[str, Any]]
    shared_pathways: list[dict[str, Any]]
    n_shared_pathways: int
    clinical_similar: list[dict[str, Any]]
    clinical_different: list[dict[str, Any]]
    shared_treatments: list[str]
    shared_phenotypes: list[dict[str, Any]]
    treatments: list[str]
    os_months: float | None
    os_event: float | None
    status: str
    extra_survival: dict[str, Any]
    shared_copy_number: list[dict[str, Any]] = []
    shared_fusions: list[dict[str, Any]] = []


class Prediction(BaseModel):
    """The model's output for the query: a prediction, not a diagnosis."""

    risk: float | None = None
    predicted_label: str | None = None
    probabilities: dict[str, float] = {}
    risk_percentile: float | None = None


class Similar(BaseModel):
    run: str
    k: int
    filters: dict[str, Any]
    index: str
    query: Profile
    prediction: Prediction
    neighbours: list[Neighbour]


class Notes(BaseModel):
    unknown_genes: list[str]
    genes_not_in_run: list[str]
    variants_not_in_run: list[str]
    filtered_variants: list[str]
    missing_inputs: list[str]
    ignored_copy_number: list[str] = []
    fusions_not_in_run: list[str] = []
    fusions_not_linked: list[str] = []


class NewSimilar(Similar):
    notes: Notes


class Attribution(BaseModel):
    target: str
    kind: str
    name: str
    value: str | None
    linked: bool
    attribution: float


class Explanation(BaseModel):
    patient: str
    predicted_label: str | None
    outputs: dict[str, dict[str, float]]
    notes: list[str] = Field(default_factory=list, description="what the reader needs to read the attributions "
                             "right, e.g. that the risk is the linear fallback (model.risk_fallback)")
    attributions: list[Attribution]


# ---------------------------------------------------------------------------------- helpers


def runs_of(request: Request) -> dict[str, RunState]:
    return request.app.state.runs


# The dependencies are ``async``: they only look things up, and a sync dependency costs each
# request an extra hop through the thread pool (measured: see docs/serve.md, Speed).
async def run_state(run: str, request: Request) -> RunState:
    state = runs_of(request).get(run)
    if state is None:
        raise HTTPException(404, f"no run {run!r}; runs: {sorted(runs_of(request))}")
    request.state.audit["run"] = run
    return state


async def filters_query(same_label: bool = Query(False, description="only neighbours with the query's label "
                                           "(a new patient: its predicted label)"),
                  treated_with: list[str] = Query([], description="only neighbours who received all of these "
                                                  "treatments (Treatment ids)"),
                  alive_at: float | None = Query(None, ge=0, description="only neighbours known alive at this "
                                                 "many months"),
                  has_outcome: bool = Query(False, description="only neighbours with a recorded outcome")) -> Filters:
    return parse_filters(same_label, treated_with, alive_at, has_outcome)


def similar_out(state: RunState, res: SimilarResult) -> dict:
    from graphonc.report.html import plain_reasons

    d = res.to_dict()
    for n, src in zip(d["neighbours"], res.neighbours):
        n["reasons"] = plain_reasons(src)
    pred = dict(res.prediction or {})
    pred["risk_percentile"] = state.risk_percentile(pred.get("risk"))
    return {"run": state.name, "k": d["k"], "filters": d["filters"], "index": d["index"], "query": d["query"],
            "prediction": pred, "neighbours": d["neighbours"]}


def explanation_out(exp, top: int) -> dict:
    from graphonc.model.explain import top as top_rows

    t = top_rows(exp.table, top)
    rows = json.loads(t.to_json(orient="records"))
    for r in rows:
        r["name"] = str(r["name"])
        r["value"] = None if r.get("value") is None else str(r["value"])
    return {"patient": exp.patient, "predicted_label": exp.predicted_label, "outputs": exp.outputs,
            "notes": exp.notes, "attributions": rows}


def _cohort_patient(state: RunState, patient_id: str, request: Request) -> str:
    request.state.audit["patient_ids"] = [patient_id]
    if patient_id not in state.facts.patients.index:
        from graphonc.errors import unknown_patient

        raise HTTPException(404, str(unknown_patient(patient_id, state.sorted_ids, f"run {state.name!r}")))
    return patient_id


def _needs_model(state: RunState) -> None:
    if not state.has_model:
        raise HTTPException(409, f"run {state.name!r} has no trained model (graphonc train)")


# ---------------------------------------------------------------------------------- routes


@router.get("/health", response_model=Health)
async def health(request: Request) -> dict:
    return {"status": "ok", "version": graphonc.__version__, "runs": sorted(runs_of(request))}


@router.get("/runs", response_model=list[CohortSummary])
async def runs(request: Request) -> list[dict]:
    return await lanes(request).run(lambda: [summary(s) for s in runs_of(request).values()])


def summary(state: RunState) -> dict:
    import pandas as pd

    p = state.facts.patients
    labels = p[L.LABEL].value_counts().to_dict() if "label" in p else {}
    followup = deaths = None
    if state.facts.has_survival:
        followup = float(pd.to_numeric(p[L.OS_MONTHS], errors="coerce").median())
        deaths = int((pd.to_numeric(p[L.OS_EVENT], errors="coerce") == 1).sum())
    counts = state.run.manifest.get("counts", {})
    from graphonc.report.html import survival_endpoints

    return {"run": state.name, "cohort": state.run.cohort, "patients": len(p), "index": state.index.kind,
            "has_model": state.has_model, "labels": {str(k): int(v) for k, v in labels.items()},
            "treatments": state.facts.treatment_names,
            "survival_endpoints": [e[0] for e in survival_endpoints(state.facts)],
            "median_followup_months": followup, "deaths": deaths, "nodes": counts.get("nodes", {}),
            "edges": counts.get("edges", {}), "inputs": [asdict(f) for f in state.fields],
            "gene_panels": state.panels,
            "alterations": [f for f, has in (("copy_number", state.has_copy_number), ("fusions", state.has_fusions))
                            if has]}


@router.get("/runs/{run}", response_model=CohortSummary)
async def cohort_summary(request: Request, state: RunState = Depends(run_state)) -> dict:
    return await lanes(request).run(summary, state)


@router.get("/runs/{run}/patients", response_model=list[PatientHit])
async def search_patients(request: Request, state: RunState = Depends(run_state),
                    prefix: str = Query(..., min_length=1, max_length=100, description="start of a patient id"),
                    limit: int = Query(20, ge=1, le=200)) -> list[dict]:
    hits = state.search_hits(prefix, limit)
    request.state.audit["patient_ids"] = [i for i, _ in hits]
    return [{"id": i, "label": label} for i, label in hits]


@router.get("/runs/{run}/patients/{patient_id}", response_model=Profile)
async def patient(patient_id: str, request: Request, state: RunState = Depends(run_state)) -> dict:
    pid = _cohort_patient(state, patient_id, request)
    return await lanes(request).run(_profile, state, pid)


def _profile(state: RunState, pid: str) -> dict:
    prof = asdict(state.facts.profile(pid))
    prof["mutations"], prof["genes"] = sorted(prof["mutations"]), sorted(prof["genes"])
    return prof


@router.get("/runs/{run}/patients/{patient_id}/similar", response_model=Similar)
async def similar(patient_id: str, request: Request, state: RunState = Depends(run_state),
                  k: int = Query(10, ge=1, le=500), filters: Filters = Depends(filters_query)) -> dict:
    pid = _cohort_patient(state, patient_id, request)
    return await lanes(request).run(lambda: similar_out(state, service.similar_cohort(state, pid, k, filters)))


@router.post("/runs/{run}/new-patient/similar", response_model=NewSimilar)
async def similar_new(body: NewPatient, request: Request, state: RunState = Depends(run_state),
                      k: int = Query(10, ge=1, le=500), filters: Filters = Depends(filters_query)) -> dict:
    request.state.audit["new_patient"] = True

    def answer() -> dict:
        ans = service.similar_new(state, body, k, filters)
        return {**similar_out(state, ans.result), "notes": asdict(ans.notes)}

    return await lanes(request).run(answer)


@router.get("/runs/{run}/patients/{patient_id}/explanation", response_model=Explanation)
async def explanation(patient_id: str, request: Request, state: RunState = Depends(run_state),
                      top: int = Query(8, ge=1, le=100),
                      steps: int = Query(service.EXPLAIN_STEPS, ge=4, le=64)) -> dict:
    pid = _cohort_patient(state, patient_id, request)
    _needs_model(state)
    return await lanes(request).run(lambda: explanation_out(service.explain_cohort(state, pid, steps), top),
                                    explain=True)


@router.post("/runs/{run}/new-patient/explanation", response_model=Explanation)
async def explanation_new(body: NewPatient, request: Request, state: RunState = Depends(run_state),
                          top: int = Query(8, ge=1, le=100),
                          steps: int = Query(service.EXPLAIN_STEPS, ge=4, le=64)) -> dict:
    request.state.audit["new_patient"] = True

    def answer() -> dict:
        ans = service.similar_new(state, body, 1, Filters())
        return explanation_out(service.explain_new(state, ans, steps), top)

    return await lanes(request).run(answer, explain=True)


@router.get("/runs/{run}/patients/{patient_id}/report", response_class=HTMLResponse)
async def report(patient_id: str, request: Request, state: RunState = Depends(run_state),
                 k: int = Query(10, ge=1, le=500), filters: Filters = Depends(filters_query),
                 explain: bool = Query(False, description="include the model's explanation (seconds)")
                 ) -> HTMLResponse:
    """The self-contained report page (what `graphonc report` writes)."""
    pid = _cohort_patient(state, patient_id, request)
    explain = explain and state.has_model

    def page() -> str:
        res = service.similar_cohort(state, pid, k, filters)
        return service.report_page(state, res, service.explain_cohort(state, pid) if explain else None)

    return HTMLResponse(await lanes(request).run(page, explain=explain))


@router.post("/runs/{run}/new-patient/report", response_class=HTMLResponse)
async def report_new(body: NewPatient, request: Request, state: RunState = Depends(run_state),
                     k: int = Query(10, ge=1, le=500), filters: Filters = Depends(filters_query),
                     explain: bool = Query(False)) -> HTMLResponse:
    request.state.audit["new_patient"] = True

    def page() -> str:
        ans = service.similar_new(state, body, k, filters)
        exp = service.explain_new(state, ans) if explain else None
        return service.report_page(state, ans.result, exp, ans.notes)

    return HTMLResponse(await lanes(request).run(page, explain=explain))


__all__ = ["router", "summary", "run_state", "filters_query"]
