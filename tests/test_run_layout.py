"""The run layout has one owner (graphonc/layout.py): stages ask it for folders, files and the
Patient table's fixed columns instead of spelling them, and read ``patient_columns`` through
GraphRun.patient_columns()."""
from __future__ import annotations

import re
from pathlib import Path

from graphonc import layout as L
from graphonc.layout import RunLayout

PACKAGE = Path(__file__).resolve().parents[1] / "graphonc"
OWNER = PACKAGE / "layout.py"

#: Hand-spelled layout: a path joined with a stage folder or file name, a stage file name as a
#: string, the survival columns as strings, the manifest's patient_columns read by key.
FORBIDDEN = {
    "stage folder joined by hand": re.compile(
        r'/\s*"(model|index|reports|eval|similarity|export|features|graph|nodes|edges|new)"'),
    "stage file name": re.compile(r'"(predictions|embeddings)\.parquet"|"weights\.pt"|"manifest\.json"|"lineage\.json"'),
    "run config joined by hand": re.compile(r'(root|run_dir|Path\(run\)|Path\(run_dir\))\s*/\s*"config\.yaml"'),
    "survival column": re.compile(r'"os_(months|event)"|f"\{name\}_(months|event)"'),
    "patient_columns by key": re.compile(r'(?<!self\.)manifest\[\s*"patient_columns"\s*\]'),
}


def offences() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == OWNER:
            continue
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for what, rx in FORBIDDEN.items():
                if rx.search(line):
                    out.append(f"{path.relative_to(PACKAGE.parent)}:{no}: {what}: {line.strip()}")
    return out


def test_no_stage_spells_the_layout_by_hand():
    found = offences()
    assert not found, "use graphonc.layout (RunLayout, OS_MONTHS, months(), …) instead:\n" + "\n".join(found)


def test_the_check_catches_what_it_forbids(tmp_path):
    """The patterns match the spellings they exist for (so the test above can fail)."""
    samples = ['p = run.root / "model" / "x"', 'x = "predictions.parquet"', 'df["os_months"]',
               'cols = run.manifest["patient_columns"]', 'path = Path(run_dir) / "config.yaml"', 'f"{name}_event"']
    for s in samples:
        assert any(rx.search(s) for rx in FORBIDDEN.values()), s
    assert not any(rx.search('run.layout.predictions') for rx in FORBIDDEN.values())


def test_layout_paths(tmp_path):
    lay = RunLayout(tmp_path)
    assert lay.predictions == tmp_path / "model" / "predictions.parquet"
    assert lay.weights.parent == lay.embeddings.parent == lay.model_dir
    assert lay.nodes("Patient") == tmp_path / "graph" / "nodes" / "Patient.parquet"
    assert lay.report("a/b") == tmp_path / "reports" / "a%2Fb.html"
    assert lay.new_report("x") == tmp_path / "reports" / "new" / "x.html"
    assert lay.export_dir("npy") == tmp_path / "export" / "npy"
    assert lay.model_or(None) == lay.model_dir and lay.model_or(tmp_path / "m") == tmp_path / "m"
    assert (L.OS_MONTHS, L.OS_EVENT, L.months("dfs"), L.event("dfs")) == ("os_months", "os_event", "dfs_months",
                                                                           "dfs_event")


def test_a_built_run_matches_its_layout(metabric_run):
    """The folders the stages wrote are where the layout says (a real METABRIC run, built once)."""
    run = metabric_run
    assert run.layout.manifest.is_file() and run.layout.config.is_file()
    assert run.layout.nodes("Patient").is_file()
    assert run.patient_columns()["survival"] == [L.OS_MONTHS, L.OS_EVENT]
    assert {L.OS_MONTHS, L.OS_EVENT} <= set(run.nodes("Patient").columns)
