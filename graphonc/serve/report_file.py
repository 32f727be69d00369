"""``graphonc report --new-patient FILE``: the service's new-patient page, written as a file.

FILE holds the body of ``POST /api/runs/{run}/new-patient/similar`` as JSON or YAML, so a
board can prepare a case once and get the same page from the CLI and from the service.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml
from pydantic import ValidationError

from graphonc import layout as L
from graphonc.errors import GraphoncError, InputError
from graphonc.graph.outputs import claim_file
from graphonc.graph.run import atomic_file
from graphonc.search.similar import Filters
from graphonc.serve import service
from graphonc.serve.newpatient import FieldErrors, NewPatient
from graphonc.serve.state import load_run


def read_new_patient(path: Path) -> NewPatient:
    """The body in ``path`` (.json, or YAML otherwise); errors name the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise GraphoncError(f"{path}: no such file. Fix: give a JSON or YAML file with the new patient "
                            "(see docs/serve.md).")
    text = path.read_text(encoding="utf-8")
    try:
        doc = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        line = getattr(exc, "lineno", None) or getattr(getattr(exc, "problem_mark", None), "line", -1) + 1
        raise InputError(f"not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {exc}", file=path,
                         line=line or None, hint="check the syntax around that line.") from None
    try:
        return NewPatient.model_validate(doc)
    except ValidationError as exc:
        e = exc.errors()[0]
        raise InputError(f"{e['msg']} ({exc.error_count()} problem(s) in all)", file=path,
                         column=".".join(map(str, e["loc"])),
                         hint="see docs/serve.md for the fields (`clinical`, `mutations`, ...).") from None


def write_new_patient_report(run_dir: Path, body_file: Path, out: Path | None = None, k: int = 10,
                             filters: Filters = Filters(), explain: bool = True) -> Path:
    """Write the new patient's page (default ``<run>/reports/new/<file stem>.html``, apart from cohort
    patients' reports so no id can collide with it) atomically."""
    body = read_new_patient(body_file)
    out = Path(out) if out is not None else L.RunLayout(run_dir).new_report(Path(body_file).stem)
    if out.suffix.lower() not in (".html", ".htm"):
        raise GraphoncError(f"--out {out}: the report is an HTML page. Fix: give a path ending in .html.")
    claim_file(out)  # before the work: never replace a file graphonc did not write
    state = load_run(Path(run_dir))
    try:
        ans = service.similar_new(state, body, k, filters)
    except FieldErrors as exc:
        raise InputError(str(exc), file=body_file, hint="use the run's model inputs and categories "
                         "(`GET /api/runs/{run}` lists them).") from None
    exp = service.explain_new(state, ans) if explain else None
    page = service.report_page(state, ans.result, exp, ans.notes)
    with atomic_file(out, claim=True) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out
