"""`graphonc serve` against the real app: uvicorn on a free port, real METABRIC run, real HTTP.

The API contract (neighbours equal the CLI's), the token, the audit log, the 422s, hostile ids,
the body limit, new patients at diagnosis (no treatments; equal to the CLI's `similar
--new-patient`), `report --new-patient`, the 80-column `similar` table, the thread rule, and the
board's workflow in headless Chromium (Debian's /usr/bin/chromium through Playwright; no
browser download).
"""
from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn
import yaml
from typer.testing import CliRunner

from conftest import indexed_copy
from graphonc.cli import app as cli_app
from graphonc.graph.run import GraphRun
from graphonc.serve.app import create_app
from graphonc.serve.security import Token, resolve_token, token_id
from graphonc.serve.state import load_runs

TOKEN = "test-token-" + "k" * 24
#: A new patient at diagnosis: model inputs only, no treatments, no outcome.
NEW = {"clinical": {"AGE_AT_DIAGNOSIS": 61.5, "TUMOR_SIZE": 22.0, "GRADE": 3, "ER_IHC": "pos",
                    "HER2_SNP6": "NEUT", "INFERRED_MENOPAUSAL_STATE": "post"},
       "mutations": ["PIK3CA p.H1047R", "TP53 p.R248Q", "NOTAGENE1 p.A1B"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn serving ``app`` in a thread, on a free 127.0.0.1 port."""

    def __init__(self, app) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, access_log=False,
                                                   log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def served_run(metabric_trained, tmp_path_factory) -> GraphRun:
    """A copy of the session's trained METABRIC run with its (flat) index."""
    return indexed_copy(metabric_trained[0], tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def loaded(served_run):
    return load_runs([served_run.root])


@pytest.fixture(scope="module")
def server(loaded, tmp_path_factory):
    state = tmp_path_factory.mktemp("serve-state")
    app = create_app(loaded, token=Token(TOKEN, "test", False), state_dir=state, max_body=256 * 1024)
    with LiveServer(app) as live:
        live.state_dir = state
        yield live


@pytest.fixture()
def api(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as c:
        yield c


def _cli_json(*args) -> list[dict]:
    res = CliRunner().invoke(cli_app, ["-q", *args, "--json"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


# ---------------------------------------------------------------------------------- API contract


def test_cohort_patient_neighbours_equal_the_cli(api, served_run):
    for query in (["-p", "MB-0010"], ["-p", "MB-0010", "--same-label", "--treated-with", "chemotherapy",
                                      "--has-outcome"]):
        cli = _cli_json("similar", "--run", str(served_run.root), *query, "-k", "10", "--device", "cpu")[0]
        params = {"k": 10}
        if "--same-label" in query:
            params |= {"same_label": "true", "treated_with": "chemotherapy", "has_outcome": "true"}
        r = api.get("/api/runs/metabric/patients/MB-0010/similar", params=params)
        assert r.status_code == 200, r.text
        got = r.json()
        assert [n["id"] for n in got["neighbours"]] == [n["id"] for n in cli["neighbours"]]
        np.testing.assert_allclose([n["score"] for n in got["neighbours"]], [n["score"] for n in cli["neighbours"]],
                                   atol=1e-6)
        assert len(got["neighbours"]) == 10 and "MB-0010" not in [n["id"] for n in got["neighbours"]]
        for n in got["neighbours"]:
            assert n["reasons"].endswith(".") and n["status"]
    # the filters hold for every neighbour (checked against the run's own tables)
    p = served_run.nodes("Patient").set_index("id")
    rec = served_run.edges(("Patient", "RECEIVED", "Treatment"))
    chemo = set(rec.loc[rec["dst"] == "chemotherapy", "src"])
    for n in got["neighbours"]:
        assert p.loc[n["id"], "label"] == p.loc["MB-0010", "label"] and n["id"] in chemo
        assert pd.notna(p.loc[n["id"], "os_months"])


def test_concurrent_requests_get_the_answers_of_sequential_ones(server):
    """Eight clients at once (the requests queue in the service's lanes) get exactly what one client gets."""
    ids = ["MB-0010", "MB-0035", "MB-0100", "MB-0140", "MB-0200", "MB-0244"]
    calls = [("GET", f"/api/runs/metabric/patients/{i}/similar", None) for i in ids]
    calls += [("POST", "/api/runs/metabric/new-patient/similar", NEW), ("GET", "/api/runs/metabric", None)]
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def ask(call):
        method, path, body = call
        with httpx.Client(base_url=server.url, headers=headers, timeout=120) as c:
            r = c.request(method, path, json=body)
            assert r.status_code == 200, r.text
            return r.json()

    alone = [ask(c) for c in calls]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(ask, calls * 3))
    assert together == alone * 3


def test_lookup_summary_profile_and_health(api, served_run):
    assert api.get("/api/health").json()["runs"] == ["metabric"]
    hits = api.get("/api/runs/metabric/patients", params={"prefix": "MB-001"}).json()
    ids = sorted(served_run.nodes("Patient")["id"])
    assert [h["id"] for h in hits] == [i for i in ids if i.startswith("MB-001")][:20]
    s = api.get("/api/runs/metabric").json()
    assert s["patients"] == len(ids) and s["has_model"]
    assert s["survival_endpoints"] == ["Overall survival", "Disease-specific survival"]
    # the form is the model's inputs, and none of them is a treatment
    model_inputs = json.loads((served_run.root / "model" / "model.json").read_text())["encoder"]
    assert [f["name"] for f in s["inputs"]] == model_inputs["numeric"] + model_inputs["categorical"]
    assert not {"CHEMOTHERAPY", "HORMONE_THERAPY", "RADIO_THERAPY"} & {f["name"] for f in s["inputs"]}
    prof = api.get("/api/runs/metabric/patients/MB-0010").json()
    p = served_run.nodes("Patient").set_index("id")
    assert prof["id"] == "MB-0010" and prof["label"] == p.loc["MB-0010", "label"]
    assert "paths" in api.get("/openapi.json").json()
    # hits carry the diagnosis label, None for a patient without one (the search page shows the same)
    assert all(h["label"] == p.loc[h["id"], "label"] for h in hits)
    unlabelled = sorted(p.index[p["label"].isna()])[0]
    assert api.get("/api/runs/metabric/patients", params={"prefix": unlabelled}).json()[0] == \
        {"id": unlabelled, "label": None}


def test_new_patient_at_diagnosis_equals_the_cli_and_reports_unknown_genes(api, served_run, tmp_path):
    r = api.post("/api/runs/metabric/new-patient/similar", json=NEW, params={"k": 10})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["query"]["new"] and got["query"]["treatments"] == []
    assert got["notes"]["unknown_genes"] == ["NOTAGENE1"]           # reported, not dropped silently
    assert "PIK3CA:p.H1047R" in got["query"]["mutations"]
    assert 0 <= got["prediction"]["risk_percentile"] <= 100
    assert set(got["prediction"]["probabilities"]) and got["prediction"]["predicted_label"]
    # the same patient as files through the CLI (clinical table without any treatment column)
    clin = tmp_path / "new.tsv"
    pd.DataFrame([{"patient_id": "new patient", **NEW["clinical"]}]).to_csv(clin, sep="\t", index=False)
    muts = tmp_path / "mut.tsv"
    pd.DataFrame([{"patient_id": "new patient", "gene": m.split()[0], "protein_change": m.split()[1]}
                  for m in NEW["mutations"]]).to_csv(muts, sep="\t", index=False)
    # the CLI's table reader needs every model input column: the missing ones as empty cells
    inputs = json.loads((served_run.root / "model" / "model.json").read_text())["encoder"]
    df = pd.read_csv(clin, sep="\t")
    for c in inputs["numeric"] + inputs["categorical"]:
        if c not in df:
            df[c] = None
    df.to_csv(clin, sep="\t", index=False)
    cli = _cli_json("similar", "--run", str(served_run.root), "--new-patient", str(clin), "--mutations", str(muts),
                    "-k", "10", "--device", "cpu")[0]
    assert [n["id"] for n in got["neighbours"]] == [n["id"] for n in cli["neighbours"]]
    np.testing.assert_allclose(got["prediction"]["risk"], cli["prediction"]["risk"], rtol=1e-5)


def test_units_from_the_config_label_the_form_and_the_profile(api, served_run):
    assert served_run.patient_columns()["units"] == {"AGE_AT_DIAGNOSIS": "years", "TUMOR_SIZE": "mm"}
    units = {f["name"]: f["unit"] for f in api.get("/api/runs/metabric").json()["inputs"]}
    assert units["AGE_AT_DIAGNOSIS"] == "years" and units["TUMOR_SIZE"] == "mm" and units["NPI"] is None
    form = api.get("/ui/metabric/new").text
    assert ">AGE_AT_DIAGNOSIS (years)</label>" in form and ">TUMOR_SIZE (mm)</label>" in form
    assert ">NPI</label>" in form
    # METABRIC has no copy number or fusions: the form does not ask for them
    assert 'id="copy_number"' not in form and 'id="fusions"' not in form
    age = served_run.nodes("Patient").set_index("id").loc["MB-0010", "AGE_AT_DIAGNOSIS"]
    assert f"<td>{age} years</td>" in api.get("/ui/metabric/patients/MB-0010").text


def test_frozen_graph_embeds_like_the_full_forward(loaded, served_run, data_dir, tmp_path):
    from cohort_files import write_study_subset
    from graphonc.model.embed import embed_patients, read_new_patients

    state = loaded["metabric"]
    ids = sorted(served_run.nodes("Patient")["id"])[::97][:20]
    study = write_study_subset(data_dir / "metabric", tmp_path / "new", set(ids))
    full = embed_patients(served_run.root, study)
    enc = state.frozen.lm.graph.encoder
    new = read_new_patients(state.config, study, None, enc.numeric + enc.categorical, enc.radiomics)
    fast = state.frozen.embed(new)
    assert fast.ids == full.ids
    np.testing.assert_allclose(fast.embeddings, full.embeddings, atol=1e-5)
    np.testing.assert_allclose(fast.proba, full.proba, atol=1e-5)


def test_422_names_every_bad_field(api):
    bad = {"clinical": {"AGE_AT_DIAGNOSIS": "sixty", "ER_IHC": "Positve", "CHEMOTHERAPY": "YES"},
           "mutations": ["PIK3CA", "TP53 <b>x</b>"], "copy_number": ["ERBB2 amp"], "gene_panel": "nope",
           "sv_profiled": True}
    r = api.post("/api/runs/metabric/new-patient/similar", json=bad)
    assert r.status_code == 422
    locs = {tuple(e["loc"]): e["msg"] for e in r.json()["detail"]}
    assert set(locs) == {("body", "clinical", "AGE_AT_DIAGNOSIS"), ("body", "clinical", "ER_IHC"),
                         ("body", "clinical", "CHEMOTHERAPY"), ("body", "mutations", 0), ("body", "mutations", 1),
                         ("body", "copy_number"), ("body", "sv_profiled"), ("body", "gene_panel")}
    # a run built without copy number / structural variants refuses them, saying so
    assert "has no copy-number data" in locs[("body", "copy_number")]
    assert "has no structural-variant data" in locs[("body", "sv_profiled")]
    assert "'pos'" in locs[("body", "clinical", "ER_IHC")]            # says which values are allowed
    assert "not a model input" in locs[("body", "clinical", "CHEMOTHERAPY")]
    # pydantic's own 422 (wrong type) names the field and does not echo the value back
    r = api.post("/api/runs/metabric/new-patient/similar", json={"clinical": [1, 2], "extra_field": 57.123})
    assert r.status_code == 422
    assert {tuple(e["loc"]) for e in r.json()["detail"]} == {("body", "clinical"), ("body", "extra_field")}
    assert "57.123" not in r.text
    r = api.get("/api/runs/metabric/patients/MB-0010/similar", params={"k": 0, "alive_at": -1})
    assert r.status_code == 422 and {e["loc"][-1] for e in r.json()["detail"]} == {"k", "alive_at"}


# ---------------------------------------------------------------------------------- security


def test_no_token_or_a_wrong_one_is_refused(server):
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": f"Basic {TOKEN}"}):
        with httpx.Client(base_url=server.url, headers=headers, follow_redirects=False) as c:
            for path in ("/api/health", "/api/runs/metabric/patients/MB-0010/similar", "/openapi.json"):
                r = c.get(path)
                assert r.status_code == 401, (path, headers)
                assert "MB-" not in r.text
            assert c.post("/api/runs/metabric/new-patient/similar", json=NEW).status_code == 401
        # the web pages send a browser without the cookie to the login page
        with httpx.Client(base_url=server.url, follow_redirects=False) as c:
            r = c.get("/ui/metabric/patients/MB-0010")
            assert r.status_code == 303 and r.headers["location"] == "/login"
    with httpx.Client(base_url=server.url, follow_redirects=False) as c:
        assert c.post("/login", data={"token": "nope"}).status_code == 401
        r = c.post("/login", data={"token": TOKEN})
        assert r.status_code == 303
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert c.get("/ui/metabric/patients/MB-0010").status_code == 200


def test_audit_log_has_ids_and_token_id_but_no_values_or_token(api, server):
    api.get("/api/runs/metabric/patients/MB-0010/similar")
    odd = dict(NEW, clinical={**NEW["clinical"], "AGE_AT_DIAGNOSIS": 47.3125})
    assert api.post("/api/runs/metabric/new-patient/similar", json=odd).status_code == 200
    text = (server.state_dir / "audit.jsonl").read_text()
    assert stat.S_IMODE((server.state_dir / "audit.jsonl").stat().st_mode) == 0o600
    lines = [json.loads(x) for x in text.splitlines()]
    sim = [x for x in lines if x["endpoint"] == "/api/runs/{run}/patients/{patient_id}/similar"
           and x["status"] == 200]
    assert sim and sim[-1]["patient_ids"] == ["MB-0010"] and sim[-1]["token_id"] == token_id(TOKEN)
    new = [x for x in lines if x["endpoint"] == "/api/runs/{run}/new-patient/similar" and x["status"] == 200]
    assert new[-1]["new_patient"] is True and "patient_ids" not in new[-1]
    assert {"time", "token_id", "method", "endpoint", "status"} <= set(sim[-1])
    for secret in (TOKEN, "47.3125", "PIK3CA", "H1047R", "pos"):
        assert secret not in text


def test_hostile_ids_and_values_are_inert(api, server):
    evil = "MB-<img src=x onerror=alert(1)>"
    r = api.get(f"/api/runs/metabric/patients/{evil}/similar")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/json")
    assert json.loads(r.text)["detail"].startswith(f"patient {evil!r}")  # data in JSON, not markup
    for path in (f"/ui/metabric/search?q={evil}", f"/ui/metabric/patients/{evil}"):
        page = api.get(path)
        assert page.headers["content-type"].startswith("text/html")
        assert "<img src=x" not in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
    form = {"clinical__ER_IHC": "pos", "mutations": "TP53 p.R175H", "k": "10",
            "treated_with": "chemotherapy\"><script>alert(2)</script>"}
    page = api.post("/ui/metabric/new", data=form)
    assert page.status_code == 400 and "<script>alert(2)" not in page.text


def test_request_body_limit(api):
    r = api.post("/api/runs/metabric/new-patient/similar", content=b"{" + b" " * (300 * 1024) + b"}",
                 headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_generated_token_is_0600_and_reused(tmp_path):
    first = resolve_token(tmp_path, env={})
    assert first.generated and stat.S_IMODE((tmp_path / "api_token").stat().st_mode) == 0o600
    again = resolve_token(tmp_path, env={})
    assert not again.generated and again.value == first.value and first.value not in repr(again)
    assert resolve_token(tmp_path, env={"GRAPHONC_API_TOKEN": "e" * 20}).value == "e" * 20


@pytest.mark.slow
def test_graphonc_serve_prints_the_token_once_and_logs_no_patient_ids(served_run, tmp_path):
    port = free_port()
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    env.pop("GRAPHONC_API_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "graphonc.cli", "serve", "--run", str(served_run.root),
                             "--port", str(port), "--threads", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        line = ""
        deadline = time.time() + 240
        out = []
        while "Generated API token" not in line and time.time() < deadline:
            line = proc.stdout.readline()
            out.append(line)
        token = line.rsplit(": ", 1)[1].strip()
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(base + "/api/health", headers={"Authorization": f"Bearer {token}"}).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        r = httpx.get(base + "/api/runs/metabric/patients/MB-0010/similar",
                      headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert r.status_code == 200
    finally:
        proc.terminate()
        rest, _ = proc.communicate(timeout=30)
    logs = "".join(out) + rest
    assert (tmp_path / "data" / "graphonc" / "serve" / "api_token").read_text().strip() == token
    assert logs.count(token) == 1                     # printed once, at start-up
    assert "MB-0010" not in logs and "MB-" not in logs  # no access log with patient ids


# ---------------------------------------------------------------------------------- CLI


def report_new_patient(run: Path, body: dict, folder: Path, name: str = "case"):
    """``graphonc report --new-patient FILE --no-explain`` of ``body`` written as ``folder/<name>.yaml``:
    (the CLI's result, the page's path)."""
    case, out = folder / f"{name}.yaml", folder / f"{name}.html"
    case.write_text(yaml.safe_dump(body))
    res = CliRunner().invoke(cli_app, ["report", "--run", str(run), "--new-patient", str(case), "--out", str(out),
                                       "--no-explain"])
    return res, out


def test_report_new_patient_file_gives_the_service_page(api, served_run, tmp_path):
    res, out = report_new_patient(served_run.root, NEW, tmp_path)
    assert res.exit_code == 0, res.output
    page = out.read_text()
    served = api.post("/api/runs/metabric/new-patient/report", json=NEW).text
    assert page.count("<tr>") == served.count("<tr>") > 10
    ids = [n["id"] for n in api.post("/api/runs/metabric/new-patient/similar", json=NEW).json()["neighbours"]]
    assert all(f">{i}<" in page for i in ids)
    assert "Disease-specific survival" in page and "5-year survival" in page and "NOTAGENE1" in page
    res, out = report_new_patient(served_run.root, {"clinical": {"ER_IHC": "maybe"}}, tmp_path, "bad")
    assert res.exit_code == 2 and "bad.yaml" in res.output and "ER_IHC" in res.output
    assert not out.exists()


def test_similar_table_fits_80_columns(served_run):
    res = CliRunner().invoke(cli_app, ["similar", "--run", str(served_run.root), "-p", "MB-0010", "--device", "cpu"],
                             env={"COLUMNS": "80"}, terminal_width=80)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert max(len(x) for x in lines) <= 80
    assert sum("MB-" in x for x in lines) >= 10


def test_threads_follow_the_cpus_the_process_may_use(tmp_path, monkeypatch):
    from graphonc import threads

    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads.cgroup_cpu_limit(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_cpu_limit(tmp_path) is None
    assert 1 <= threads.usable_cpus() <= len(os.sched_getaffinity(0))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for var in threads.THREAD_ENV:
        monkeypatch.delenv(var, raising=False)
    import torch

    before = torch.get_num_threads()
    try:
        assert threads.set_threads(1) == 1 and torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
        assert threads.set_threads() == 1  # a value the user exported is kept
        for var in threads.THREAD_ENV:
            monkeypatch.delenv(var)
        n = threads.set_threads()
        assert n == threads.usable_cpus() and torch.get_num_threads() == n and os.environ["MKL_NUM_THREADS"] == str(n)
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------- the web UI in Chromium


CHROMIUM = Path("/usr/bin/chromium")


def chromium_page(playwright, problems: list):
    """(browser, page) of Debian's headless Chromium; console errors and page errors go to ``problems``."""
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.set_default_timeout(120_000)
    return browser, page


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
def test_board_workflow_in_chromium(server, tmp_path):
    from playwright.sync_api import sync_playwright

    problems = []
    with sync_playwright() as p:
        browser, page = chromium_page(p, problems)

        page.goto(server.url + "/")
        assert page.url.endswith("/login")
        page.fill("#token", "wrong-wrong-wrong-wrong")
        page.click("#login")
        assert "not valid" in page.inner_text("body")
        problems.clear()  # the 401 of a wrong token is logged by Chromium as a failed resource: expected
        page.fill("#token", TOKEN)
        page.click("#login")
        assert page.url == server.url + "/"

        page.fill("#q-metabric", "MB-0010")
        page.click("form[action='/ui/metabric/search'] button")
        page.click("a[href='/ui/metabric/patients/MB-0010']")
        assert page.locator("table.neighbours tbody tr").count() == 10
        kms = page.locator("svg.km")
        assert kms.count() == 2  # overall and disease-specific survival
        assert all(kms.nth(i).evaluate("e => e.querySelectorAll('path').length == 2 && "
                                       "e.getBoundingClientRect().width > 400") for i in range(kms.count()))
        assert page.locator("table.at-risk").count() == 2
        assert "5-year survival among the neighbours" in page.inner_text("body")

        page.click("a#print-view")
        assert "print-view" in page.get_attribute("body", "class")
        page.emulate_media(media="print")
        assert not page.locator("header.bar").is_visible()
        page.emulate_media(media="screen")
        page.screenshot(path=str(tmp_path / "patient.png"), full_page=False)

        page.goto(server.url + "/")
        page.click("a[href='/ui/metabric/new']")
        page.fill("#f-AGE_AT_DIAGNOSIS", "58")
        page.fill("#f-TUMOR_SIZE", "25")
        page.select_option("#f-ER_IHC", "pos")
        page.fill("#mutations", "PIK3CA p.H1047R\nTP53 p.R248Q")
        page.click("#submit-new")
        assert page.locator("table.neighbours tbody tr").count() == 10
        assert "New patient" in page.inner_text("h2 >> nth=0")
        assert page.locator("svg.km").count() == 2
        page.click("#print-view")
        assert "print-view" in page.get_attribute("body", "class")
        assert page.locator("table.neighbours tbody tr").count() == 10
        browser.close()
    assert problems == []
