"""Output is data, never markup (issue #13, item 4).

A real METABRIC subset (plain tables) whose patient ids carry rich markup and mathtext, and
whose labels and clinical values carry terminal escape codes, HTML and markup, goes through
the real CLI: ``similar`` (table and JSON), errors, ``explain``, ``report`` and ``cypher run``.
The output shows every value literally, nothing crashes, and no escape code reaches the terminal.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from graphonc.graph import schema as S
from graphonc.graph.build import build_run
from graphonc.graph.run import GraphRun

from hostile_cohorts import write_metabric_tables

REPO = Path(__file__).resolve().parents[1]

MATH_ID = "MB$\\foo$X"  # mathtext: matplotlib raised on this in a plot title
CLOSE_ID = "MB[/]01"  # a rich closing tag with nothing to close: MarkupError
LINK_ID = "[link=https://evil.example/]MB02[/link]"
BOLD_ID = "[bold red]MB03[/]:smile:"
CLEAR = "\x1b[2J"  # clears the screen
HYPERLINK = "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"  # OSC 8 hyperlink
LABELS = {"Basal": f"Basal{CLEAR}", "LumA": f"LumA{HYPERLINK}", "Her2": "Her2[/]", "LumB": "LumB<script>x</script>"}


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "graphonc.cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "400", **(env or {})})


@pytest.fixture(scope="module")
def hostile_ids(data_dir, tmp_path_factory) -> tuple[GraphRun, dict[str, str]]:
    """A trained, indexed run of 300 METABRIC patients, four with hostile ids, labels with escape codes."""
    from graphonc.model.stages import train_stage
    from graphonc.search.index import build_index

    root = tmp_path_factory.mktemp("hostile_out")
    clin = pd.read_csv(data_dir / "metabric" / "data_clinical_patient.txt", sep="\t", comment="#", dtype=str,
                       keep_default_na=False)
    clin = clin[(clin["OS_MONTHS"] != "") & (clin["OS_STATUS"] != "")].head(300)
    # hostile ids for patients with mutations, so they have neighbours that share something
    maf = pd.read_csv(data_dir / "metabric" / "data_mutations_extended.txt", sep="\t", comment="#", dtype=str,
                      usecols=["Tumor_Sample_Barcode"])
    mutated = [p for p in clin["PATIENT_ID"] if p in set(maf["Tumor_Sample_Barcode"])]
    ids = dict(zip(mutated[:4], (MATH_ID, CLOSE_ID, LINK_ID, BOLD_ID)))
    labels = {p: LABELS.get(lab, lab) for p, lab in zip(clin["PATIENT_ID"], clin["CLAUDIN_SUBTYPE"])}
    cfg = write_metabric_tables(data_dir, root / "in", n=300, ids=ids, labels=labels)
    # a display value with markup and HTML for the report
    t = pd.read_csv(root / "in" / "clinical.tsv", sep="\t", dtype=str, keep_default_na=False)
    t.loc[t["PATIENT_ID"] == MATH_ID, "COHORT"] = "<b>[bold]1[/bold]</b>"
    t.to_csv(root / "in" / "clinical.tsv", sep="\t", index=False)
    build_run(cfg, root / "run")
    train_stage(root / "run", hidden=16, embedding_dim=8, epochs=6, patience=6)
    build_index(root / "run", "flat", device="cpu")
    return GraphRun.open(root / "run"), ids


def _no_escape_codes(text: str) -> None:
    assert "\x1b" not in text and "\x9b" not in text, repr(text[:500])


@pytest.mark.slow
def test_similar_shows_ids_and_labels_literally(hostile_ids):
    run, ids = hostile_ids
    for pid in ids.values():
        res = _cli("similar", "--run", str(run.root), "--patient", pid, "-k", "5", "--device", "cpu")
        assert res.returncode == 0, res.stderr
        _no_escape_codes(res.stdout + res.stderr)
        assert f"most similar to {pid}" in res.stdout
    # the labels, their escape codes shown as text, in a neighbour table
    res = _cli("similar", "--run", str(run.root), "--patient", MATH_ID, "-k", "40", "--device", "cpu")
    assert res.returncode == 0, res.stderr
    _no_escape_codes(res.stdout)
    assert "Basal\\x1b[2J" in res.stdout or "LumA\\x1b]8;;https://evil.example/\\x1b\\click" in res.stdout
    # JSON: the exact values
    res = _cli("similar", "--run", str(run.root), "--patient", CLOSE_ID, "--patient", LINK_ID, "-k", "300",
               "--json", "--device", "cpu")
    assert res.returncode == 0, res.stderr
    _no_escape_codes(res.stdout)
    doc = json.loads(res.stdout)
    assert [d["query"]["id"] for d in doc] == [CLOSE_ID, LINK_ID]
    seen = {n["id"] for n in doc[0]["neighbours"]} | {n["label"] for n in doc[0]["neighbours"]}
    assert {MATH_ID, BOLD_ID, LINK_ID} <= seen and set(LABELS.values()) <= seen


@pytest.mark.slow
def test_errors_show_the_id_literally(hostile_ids):
    run, _ = hostile_ids
    for bad in (f"MB{CLEAR}[/]nope", f"[link=https://evil.example/]x[/link]{HYPERLINK}", "MB$\\foo$Y"):
        res = _cli("similar", "--run", str(run.root), "--patient", bad, "--device", "cpu")
        assert res.returncode == 2, res.stderr
        assert "Traceback" not in res.stderr
        _no_escape_codes(res.stderr)
        shown = bad.replace("\x1b", "\\x1b")
        assert shown in res.stderr.replace("\\\\", "\\"), res.stderr
        assert res.stderr.startswith("error: ")


@pytest.mark.slow
def test_explain_and_report_render_hostile_ids(hostile_ids, tmp_path):
    run, _ = hostile_ids
    res = _cli("explain", "--run", str(run.root), "--patient", LINK_ID, "--steps", "4", "--top", "3")
    assert res.returncode == 0, res.stderr
    _no_escape_codes(res.stdout)
    assert f"{LINK_ID}: risk" in res.stdout
    out = tmp_path / "report.html"
    res = _cli("report", "--run", str(run.root), "--patient", MATH_ID, "--out", str(out), "--no-explain", "-k", "5")
    assert res.returncode == 0, res.stderr  # the KM plot's title holds the id: no mathtext
    html = out.read_text(encoding="utf-8")
    assert MATH_ID in html and "data:image/png;base64," in html
    assert "&lt;b&gt;[bold]1[/bold]&lt;/b&gt;" in html and "<b>[bold]" not in html  # HTML escaped, not markup
    assert "<script>x</script>" not in html


def test_matplotlib_draws_dollar_ids(tmp_path):
    """Text from data is never mathtext (it raised ValueError on MB$\\foo$X)."""
    import numpy as np

    import matplotlib

    from graphonc.report.search_plots import embedding_map

    xy, labels = np.random.default_rng(0).random((20, 2)), [MATH_ID] * 10 + ["a$b$^c"] * 10
    with matplotlib.rc_context({"text.parse_math": True}), pytest.raises(ValueError):  # the payload is live
        embedding_map(xy, labels, tmp_path / "bad.png", title=MATH_ID)
    path = embedding_map(xy, labels, tmp_path / "m.png", title=f"{MATH_ID} $\\frac$ {{")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_term_shows_markup_and_control_codes_literally():
    from rich.console import Console

    from graphonc.cli_common import term

    con = Console(record=True, width=300, force_terminal=True, color_system=None)
    for value in (CLOSE_ID, LINK_ID, BOLD_ID, f"a{CLEAR}b", HYPERLINK, "x\u202eevil", "a\x9bb", None):
        con.print(term(value))
    out = con.export_text()
    assert CLOSE_ID in out and LINK_ID in out and BOLD_ID in out
    assert "a\\x1b[2Jb" in out and "\\x1b]8;;https://evil.example/\\x1b\\click" in out
    assert "x\\u202eevil" in out and "a\\x9bb" in out
    _no_escape_codes(out)


@pytest.mark.neo4j
@pytest.mark.slow
def test_cypher_run_shows_results_literally(hostile_ids, neo4j_settings, tmp_path):
    from graphonc.store.neo4j_load import load_run

    run, ids = hostile_ids
    load_run(run, neo4j_settings)
    q = tmp_path / "odd_ids.cypher"
    q.write_text("// Patients with odd ids\n// @param cohort: str  cohort\n"
                 "MATCH (p:Patient {cohort: $cohort}) WHERE NOT p.id STARTS WITH 'MB-'\n"
                 "RETURN p.id AS id, p.label AS label ORDER BY id\n", encoding="utf-8")
    env = {"NEO4J_URI": neo4j_settings.uri, "NEO4J_USER": neo4j_settings.user,
           "NEO4J_PASSWORD": neo4j_settings.password}
    res = _cli("cypher", "run", str(q), "-p", f"cohort={run.cohort}", env=env)
    assert res.returncode == 0, res.stderr
    _no_escape_codes(res.stdout)
    for pid in ids.values():
        assert pid in res.stdout
    res = _cli("cypher", "run", str(q), "-p", f"cohort={run.cohort}", "--json", env=env)
    assert res.returncode == 0, res.stderr
    _no_escape_codes(res.stdout)
    assert sorted(r["id"] for r in json.loads(res.stdout)) == sorted(ids.values())
    p = run.nodes(S.PATIENT).set_index(S.ID)
    assert {r["id"]: r["label"] for r in json.loads(res.stdout)} == {i: p.loc[i, "label"] for i in ids.values()}
