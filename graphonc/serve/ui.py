"""The web pages: login → patient search → patient page, the new-patient form, the print layout.

Server-side Jinja2 templates (autoescaped: a value from the data is never markup) plus two
vendored static files (``static/graphonc.css``, ``static/graphonc.js``); nothing is fetched
from outside and nothing is built at install. The patient page is the report's own HTML
sections (:func:`graphonc.report.html.report_sections`, escaped there), so the page, the
API's report and ``graphonc report`` show the same thing.

Forms are plain posts (``application/x-www-form-urlencoded``; the new-patient form is
``multipart/form-data`` for its MAF file, read on the server by graphonc's own MAF reader within
the service's body limit). A refused new patient gets the form back with each problem named
(the MAF's file, line and column) and the values kept.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pydantic import ValidationError

from graphonc.report.html import CSS
from graphonc.search.similar import Filters
from graphonc.serve import service
from graphonc.serve.api import filters_query, run_state, summary
from graphonc.serve.lanes import lanes
from graphonc.serve.newpatient import FieldErrors, NewPatient, maf_upload_text
from graphonc.serve.security import COOKIE, token_matches
from graphonc.serve.state import RunState

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.globals["report_css"] = Markup(CSS)  # our own constant, not data
router = APIRouter(include_in_schema=False)


def _render(request: Request, name: str, status_code: int = 200, **ctx) -> HTMLResponse:
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)


def error_page(request: Request, status: int, messages: list[str]) -> HTMLResponse:
    return _render(request, "error.html", status, status=status, messages=messages)


async def _form(request: Request) -> dict[str, list[str]]:
    return parse_qs((await request.body()).decode("utf-8", errors="replace"), keep_blank_values=True)


# ---------------------------------------------------------------------------------- login


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> HTMLResponse:
    return _render(request, "login.html")


@router.post("/login")
async def login(request: Request):
    token = (await _form(request)).get("token", [""])[0].strip()
    if not token_matches(request.app.state.token.value, token):
        return _render(request, "login.html", 401, error="That token is not valid.")
    resp = RedirectResponse("/", status_code=303)
    resp.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                    path="/")
    return resp


@router.post("/logout")
def logout() -> RedirectResponse:
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(COOKIE, path="/")
    return resp


# ---------------------------------------------------------------------------------- search and patient


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> HTMLResponse:
    runs = await lanes(request).run(lambda: [summary(s) for s in request.app.state.runs.values()])
    return _render(request, "index.html", runs=runs)


@router.get("/ui/{run}/search", response_class=HTMLResponse)
async def search(request: Request, q: str = "", state: RunState = Depends(run_state)) -> HTMLResponse:
    q = q.strip()[:100]
    hits = state.search_hits(q, 50) if q else []
    request.state.audit["patient_ids"] = [i for i, _ in hits]
    return _render(request, "search.html", run=state.name, q=q, hits=hits, cohort=state.run.cohort)


def _filters_form(state: RunState, f: Filters, k: int) -> dict:
    return {"k": k, "same_label": f.same_label, "treated_with": list(f.treated_with), "alive_at": f.alive_at_months,
            "has_outcome": f.has_outcome, "treatments": state.facts.treatment_names,
            "has_label": state.facts.has_label, "has_survival": state.facts.has_survival}


@router.get("/ui/{run}/patients/{patient_id}", response_class=HTMLResponse)
async def patient_page(patient_id: str, request: Request, state: RunState = Depends(run_state), k: int = 10,
                       filters: Filters = Depends(filters_query), explain: bool = False, print: bool = False):
    request.state.audit["patient_ids"] = [patient_id]
    k = max(1, min(int(k), 500))
    if patient_id not in state.facts.patients.index:
        return error_page(request, 404, [f"patient {patient_id!r} is not in run {state.name!r}"])
    explained = explain and state.has_model

    def page_sections() -> tuple[list[Markup], int]:
        res = service.similar_cohort(state, patient_id, k, filters)
        exp = service.explain_cohort(state, patient_id) if explained else None
        return [Markup(s) for s in service.sections(state, res, exp)], len(res.neighbours)  # escaped there

    sections, n = await lanes(request).run(page_sections, explain=explained)
    return _render(request, "patient.html", run=state.name, cohort=state.run.cohort, pid=patient_id,
                   sections=sections, print_view=print, explain=explain, has_model=state.has_model,
                   n=n, **_filters_form(state, filters, k))


# ---------------------------------------------------------------------------------- new patient


def _new_form(request: Request, state: RunState, form: dict[str, list[str]] | None = None,
              errors: list[str] = (), status: int = 200) -> HTMLResponse:
    """The new-patient form, refilled from ``form`` (a refused post) with ``errors`` above it."""
    form = form or {}
    first = {key: vals[0] for key, vals in form.items() if vals}
    filters, k, _ = _form_filters(form)
    return _render(request, "new.html", status, run=state.name, cohort=state.run.cohort, fields=state.fields,
                   panels=state.panels, values=first, errors=list(errors), has_copy_number=state.has_copy_number,
                   has_fusions=state.has_fusions, **_filters_form(state, filters, k), explain="explain" in form)


def _form_filters(form: dict[str, list[str]]) -> tuple[Filters, int, list]:
    """(filters, k, 422 entries) of the form's neighbour fields; a bad number is named and left at its default."""
    k, alive = form.get("k", ["10"])[0].strip() or "10", form.get("alive_at", [""])[0].strip()
    number = {name: v for name, v in (("k", k), ("alive_at", alive)) if v and v.replace(".", "", 1).isdigit()}
    bad = [(("form", name), "must be a number") for name, v in (("k", k), ("alive_at", alive))
           if v and name not in number]
    filters = Filters(same_label="same_label" in form, treated_with=tuple(form.get("treated_with", [])),
                      alive_at_months=float(number["alive_at"]) if "alive_at" in number else None,
                      has_outcome="has_outcome" in form)
    return filters, max(1, min(int(float(number.get("k", 10))), 500)), bad


@router.get("/ui/{run}/new", response_class=HTMLResponse)
def new_form(request: Request, state: RunState = Depends(run_state)) -> HTMLResponse:
    if not state.has_model:
        return error_page(request, 409, [f"run {state.name!r} has no trained model: new patients need one"])
    return _new_form(request, state)


#: The form's "profiled" choices → the body's copy_number_profiled / sv_profiled.
_PROFILED = {"": None, "yes": True, "no": False}


def _lines(form: dict[str, list[str]], name: str) -> list[str]:
    return [ln.strip() for ln in form.get(name, [""])[0].splitlines() if ln.strip()]


def body_from_form(form: dict[str, list[str]], state: RunState) -> NewPatient:
    """The form's fields as the API's body (empty fields are missing values)."""
    if form.get("body_json"):  # the print view re-posts the body it was shown
        return NewPatient.model_validate_json(form["body_json"][0])
    clinical = {}
    for f in state.fields:
        v = form.get(f"clinical__{f.name}", [""])[0].strip()
        if v:
            clinical[f.name] = v
    radiomics = {f.name: form[f"clinical__{f.name}"][0] for f in state.fields
                 if f.kind == "radiomic" and form.get(f"clinical__{f.name}", [""])[0].strip()}
    alterations = {}
    if state.has_copy_number:
        alterations["copy_number"] = _lines(form, "copy_number")
        alterations["copy_number_profiled"] = _PROFILED.get(form.get("copy_number_profiled", [""])[0])
    if state.has_fusions:
        alterations["fusions"] = _lines(form, "fusions")
        alterations["sv_profiled"] = _PROFILED.get(form.get("sv_profiled", [""])[0])
    return NewPatient.model_validate({
        "clinical": {c: v for c, v in clinical.items() if c not in radiomics}, "radiomics": radiomics,
        "mutations": _lines(form, "mutations"), "maf": form.get("maf", [""])[0] or None,
        "gene_panel": form.get("gene_panel", [""])[0] or None, **alterations})


async def _new_patient_form(request: Request) -> tuple[dict[str, list[str]], tuple[str, bytes] | None]:
    """The posted form's text fields, and the uploaded MAF file as (name, bytes) or None."""
    posted = await request.form()
    fields: dict[str, list[str]] = {}
    upload = None
    for key, value in posted.multi_items():
        if isinstance(value, str):
            fields.setdefault(key, []).append(value)
        elif key == "maf_file" and value.filename:
            upload = (value.filename, await value.read())
            fields["maf_name"] = [value.filename]
    await posted.close()
    return fields, upload


@router.post("/ui/{run}/new", response_class=HTMLResponse)
async def new_submit(request: Request, state: RunState = Depends(run_state)) -> HTMLResponse:
    request.state.audit["new_patient"] = True
    form, upload = await _new_patient_form(request)
    try:
        return await lanes(request).run(_new_answer, request, state, form, upload, explain="explain" in form)
    except FieldErrors as exc:
        if form.get("body_json"):
            raise
        return _new_form(request, state, form, [f"{'.'.join(map(str, loc[1:]))}: {msg}" for loc, msg in exc.errors],
                         422)


def _new_answer(request: Request, state: RunState, form: dict[str, list[str]], upload) -> HTMLResponse:
    filters, k, errors = _form_filters(form)
    body = None
    try:
        body = body_from_form(form, state)
    except ValidationError as exc:
        errors += [(("body", *e["loc"]), e["msg"]) for e in exc.errors()]
    if upload is not None:  # the MAF file's variants join the pasted ones (checked by graphonc's MAF reader)
        try:
            maf = maf_upload_text(*upload)
            body = body.model_copy(update={"maf": maf}) if body is not None else None
        except FieldErrors as exc:
            errors += exc.errors
    if errors:
        raise FieldErrors(errors)
    explain = "explain" in form
    ans = service.similar_new(state, body, k, filters)
    exp = service.explain_new(state, ans) if explain else None
    sections = [Markup(s) for s in service.sections(state, ans.result, exp, ans.notes)]
    return _render(request, "patient.html", run=state.name, cohort=state.run.cohort, pid=ans.result.query.id,
                   sections=sections, print_view="print" in form, explain=explain, has_model=True,
                   n=len(ans.result.neighbours), new_body=body.model_dump_json(), new_form=form,
                   **_filters_form(state, filters, k))


__all__ = ["router", "error_page"]
