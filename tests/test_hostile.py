"""Hostile data and careless hands (issue #13): every case of the issue, each asserting the exact
refusal or that the output stays inert, in four sections:

* bad input refused with file, line and column, exit 2, nothing written (items 3 and 5), and
  property tests' companions in test_readers_property.py;
* Cypher injection through column names and names from data (item 1), on the real Neo4j server;
* ``--out`` never deletes what graphonc did not write, stage lineage, report file names,
  owner-only permissions and leftovers of killed stages (items 2, 3, 5 and 6);
* output is data, never markup: rich markup, terminal codes, mathtext, HTML (item 4).
"""
from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest
import yaml
from hypothesis import given, settings, strategies as st
from typer.testing import CliRunner

from cohort_files import file_lines, N_PATIENTS, write_small_metabric
from conftest import CONFIGS, FAST_MODEL, REPO, drop_cohorts
from graphonc.cli import app
from graphonc.config import load_config
from graphonc.errors import ConfigError, GraphoncError, InputError
from graphonc.graph import lineage, schema as S
from graphonc.graph.build import build_graph, build_run
from graphonc.graph.lineage import StaleStageError
from graphonc.graph.outputs import claim_file, clean_leftovers
from graphonc.graph.run import GraphRun
from graphonc.identifiers import assert_ident, IDENT, is_ident, safe_key, safe_keys
from graphonc.layout import patient_of_report, report_file_name
from graphonc.store import neo4j_server as ns
from hostile_cohorts import HOSTILE_HEADERS, write_hn1_tables, write_metabric_tables


# ================================================================================================
# Bad input refused with file, line and column (issue #13 item 5, ids of item 3)
# ================================================================================================

PATIENT = "data_clinical_patient.txt"
SAMPLE = "data_clinical_sample.txt"
MAF = "data_mutations_extended.txt"
PANEL = "data_gene_panel.txt"


# ------------------------------------------------------------------ helpers that break one thing


def _split(path: Path) -> tuple[list[bytes], bytes]:
    raw = path.read_bytes()
    eol = b"\n" if b"\n" in raw else b"\r"
    return raw.split(eol), eol


def put_cell(path: Path, lineno: int, column: str, value: bytes) -> bytes:
    """Set ``column`` (by header name) on 1-based line ``lineno`` of a TSV to raw ``value``; returns the line."""
    lines, eol = _split(path)
    header = next(ln for ln in lines if not ln.startswith(b"#")).split(b"\t")
    cells = lines[lineno - 1].split(b"\t")
    cells[header.index(column.encode())] = value
    lines[lineno - 1] = b"\t".join(cells)
    path.write_bytes(eol.join(lines))
    return lines[lineno - 1]


def put_line(path: Path, lineno: int, edit: Callable[[bytes], bytes]) -> bytes:
    lines, eol = _split(path)
    lines[lineno - 1] = edit(lines[lineno - 1])
    path.write_bytes(eol.join(lines))
    return lines[lineno - 1]


def last_line(path: Path) -> int:
    lines, _ = _split(path)
    return max(i for i, ln in enumerate(lines, 1) if ln.strip())


def byte_column(line: bytes, bad: bytes) -> int:
    return line.index(bad) + 1


@dataclasses.dataclass
class Setup:
    study: Path
    cfg: Path
    tmp: Path

    def config(self) -> dict:
        return yaml.safe_load(self.cfg.read_text())

    def write_config(self, c: dict) -> None:
        self.cfg.write_text(yaml.safe_dump(c))

    def local_gmt(self) -> Path:
        """The config's Hallmark GMT copied next to the study, the config pointed at the copy."""
        c = self.config()
        src = next(p for p in c["pathways"] if p["name"] == "hallmark")
        dst = self.tmp / "hallmark.gmt"
        shutil.copy(src["path"], dst)
        src["path"] = str(dst)
        self.write_config(c)
        return dst


@pytest.fixture()
def setup(tmp_path, data_dir) -> Setup:
    study, cfg = write_small_metabric(data_dir, tmp_path)
    return Setup(study, cfg, tmp_path)


def plain_cohort(s: Setup) -> tuple[Path, Path, Path]:
    """The same 60 patients as plain tables (clinical CSV + mutation CSV); (config, clinical, mutations)."""
    pat = pd.read_csv(s.study / PATIENT, sep="\t", comment="#", dtype=str, keep_default_na=False)
    maf = pd.read_csv(s.study / MAF, sep="\t", skiprows=1, dtype=str, keep_default_na=False)
    clinical = pat.rename(columns={"PATIENT_ID": "patient_id"})[["patient_id", "AGE_AT_DIAGNOSIS", "OS_MONTHS",
                                                                  "OS_STATUS"]]
    clinical.to_csv(s.tmp / "clinical.csv", index=False)
    pd.DataFrame({"patient_id": maf["Tumor_Sample_Barcode"], "gene": maf["Hugo_Symbol"],
                  "protein_change": maf["HGVSp_Short"], "variant_class": maf["Variant_Classification"]}
                 ).to_csv(s.tmp / "mutations.csv", index=False)
    c = s.config()
    cfg = {"cohort": "plain", "input": {"kind": "tables", "clinical": "clinical.csv", "mutations": "mutations.csv"},
           "clinical": {"numeric": ["AGE_AT_DIAGNOSIS"], "survival": {"time": "OS_MONTHS", "event": "OS_STATUS"}},
           "genes": c["genes"]}
    (s.tmp / "plain.yaml").write_text(yaml.safe_dump(cfg))
    return s.tmp / "plain.yaml", s.tmp / "clinical.csv", s.tmp / "mutations.csv"


# ------------------------------------------------------------------ the refusals


@dataclasses.dataclass
class Case:
    """One broken input: ``breaks`` edits the setup and returns (config to build, expected error).

    The expected error is (class, file name, line, column, text the message must contain).
    """

    id: str
    breaks: Callable[[Setup], tuple[Path, tuple]]


def _utf8_first_row(s):
    line = put_cell(s.study / PATIENT, 6, "AGE_AT_DIAGNOSIS", b"4\xe9")
    return s.cfg, (InputError, PATIENT, 6, byte_column(line, b"\xe9"), "byte b'\\xe9'")


def _utf8_last_maf_row(s):
    n = last_line(s.study / MAF)
    line = put_cell(s.study / MAF, n, "Hugo_Symbol", b"TP53\xff")
    return s.cfg, (InputError, MAF, n, byte_column(line, b"\xff"), "is not UTF-8")


def _utf8_comment_line(s):
    line = put_line(s.study / SAMPLE, 2, lambda ln: ln + b" caf\xe9")
    return s.cfg, (InputError, SAMPLE, 2, byte_column(line, b"\xe9"), "is not UTF-8")


def _utf8_gene_panel(s):
    n = next(i for i, ln in enumerate(_split(s.study / PANEL)[0], 1) if ln.startswith(b"gene_list"))
    line = put_line(s.study / PANEL, n, lambda ln: ln + b"\tBRC\xc3A")  # \xc3 starts a character 'A' cannot end
    return s.cfg, (InputError, PANEL, n, byte_column(line, b"\xc3"), "byte b'\\xc3'")


def _utf8_gmt(s):
    gmt = s.local_gmt()
    line = put_line(gmt, 10, lambda ln: ln.replace(b"\t", b"\t\x96", 1))  # a cp1252 dash
    return s.cfg, (InputError, gmt.name, 10, byte_column(line, b"\x96"), "re-save the file as UTF-8")


def _nul_in_id(s):
    line = put_cell(s.study / PATIENT, 8, "PATIENT_ID", b"MB-00\x0039")
    return s.cfg, (InputError, PATIENT, 8, byte_column(line, b"\x00"), "NUL byte")


def _maf_row_cut_short(s):
    line = put_line(s.study / MAF, 7, lambda ln: b"\t".join(ln.split(b"\t")[:20]))
    del line
    return s.cfg, (InputError, MAF, 7, "HGVSc", "ends before required column 'HGVSc'")


def _cell(file, lineno, column, value, says):
    def breaks(s):
        put_cell(s.study / file, lineno, column, value.encode())
        return s.cfg, (InputError, file, lineno, column, says)
    return breaks


def _control_in_id(file, lineno, column, value, says):
    return _cell(file, lineno, column, value, says)


def _plain_id_with_newline(s):
    cfg, clinical, _ = plain_cohort(s)
    df = pd.read_csv(clinical, dtype=str, keep_default_na=False)
    df.loc[3, "patient_id"] = df.loc[3, "patient_id"] + "\nMB-9999"  # quoted by to_csv: one record, two lines
    df.to_csv(clinical, index=False)
    return cfg, (InputError, "clinical.csv", 5, "patient_id", "contains a control character")


def _plain_mutation_row_cut_short(s):
    cfg, _, muts = plain_cohort(s)
    put_line(muts, 4, lambda ln: b",".join(ln.split(b",")[:2]))
    return cfg, (InputError, "mutations.csv", 4, "protein_change", "ends before required column 'protein_change'")


def _config_not_utf8(s):
    put_line(s.cfg, 3, lambda ln: ln + b" # r\xe9sum\xe9")
    line = _split(s.cfg)[0][2]
    return s.cfg, (ConfigError, s.cfg.name, 3, byte_column(line, b"\xe9"), "re-save the file as UTF-8")


def _config_is_folder(s):
    folder = s.tmp / "configs.d"
    folder.mkdir()
    return folder, (ConfigError, "configs.d", None, None, "is a folder, not a config file")


def _min_genes_over_max(s):
    c = s.config()
    c["pathways"][0]["min_genes"], c["pathways"][0]["max_genes"] = 50, 10
    s.write_config(c)
    return s.cfg, (ConfigError, s.cfg.name, None, None, "min_genes (50) is larger than max_genes (10)")


CASES = [
    Case("non-utf8-first-row", _utf8_first_row),
    Case("non-utf8-last-maf-row", _utf8_last_maf_row),
    Case("non-utf8-comment-line", _utf8_comment_line),
    Case("non-utf8-gene-panel", _utf8_gene_panel),
    Case("non-utf8-gmt", _utf8_gmt),
    Case("nul-byte-in-id", _nul_in_id),
    Case("maf-row-cut-short", _maf_row_cut_short),
    Case("survival-time-inf", _cell(PATIENT, 9, "OS_MONTHS", "inf", "'inf' is not a finite number")),
    Case("survival-time-1e308", _cell(PATIENT, 9, "OS_MONTHS", "1e308", "'1e308' is beyond ±1e+20")),
    Case("age-inf", _cell(PATIENT, 11, "AGE_AT_DIAGNOSIS", "-Infinity", "'-Infinity' is not a finite number")),
    Case("age-1e308", _cell(PATIENT, 11, "AGE_AT_DIAGNOSIS", "1e308", "larger than any measurement")),
    Case("survival-time-negative", _cell(PATIENT, 13, "OS_MONTHS", "-3", "survival time -3.0 is negative")),
    Case("survival-time-over-100-years", _cell(PATIENT, 13, "OS_MONTHS", "1500",
                                               "survival time 1500 months is over 100 years")),
    Case("event-2-maybe", _cell(PATIENT, 14, "OS_STATUS", "2:MAYBE",
                                "'2:MAYBE' is neither an event nor censored (allowed: '1:…' or one of ['DECEASED'")),
    Case("event-code-contradicts-text", _cell(PATIENT, 14, "OS_STATUS", "1:LIVING", "'1:LIVING' is neither")),
    Case("event-unknown-word", _cell(PATIENT, 15, "OS_STATUS", "MAYBE", "censored_values")),
    Case("patient-id-escape-char", _control_in_id(PATIENT, 16, "PATIENT_ID", "MB-\x1b[2J0001",
                                                  "contains a control character")),
    Case("sample-id-bell-char", _control_in_id(SAMPLE, 7, "SAMPLE_ID", "MB-00\x0739", "contains a control character")),
    Case("plain-id-with-newline", _plain_id_with_newline),
    Case("plain-mutation-row-cut-short", _plain_mutation_row_cut_short),
    Case("config-not-utf8", _config_not_utf8),
    Case("config-is-a-folder", _config_is_folder),
    Case("min-genes-over-max-genes", _min_genes_over_max),
]


def _check_message(text: str, expected: tuple) -> None:
    _, name, line, column, says = expected
    flat = " ".join(text.split())
    assert name in flat and says in flat, (expected, flat)
    if line is not None:
        assert f", line {line}," in flat or f", line {line}:" in flat, flat
    if column is not None:
        assert (f"column {column}:" if isinstance(column, int) else f"column {column!r}:") in flat, flat
    assert "Fix" in flat, flat


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refused_by_file_line_and_column(setup, case):
    cfg, expected = case.breaks(setup)
    cls, name, line, column, _ = expected
    # the error class and its fields, from the API
    with pytest.raises(cls) as err:
        build_graph(load_config(cfg))
    assert type(err.value) is cls
    if cls is InputError:
        assert Path(err.value.file).name == name and err.value.line == line and err.value.column == column
    _check_message(str(err.value), expected)
    # the same through the real CLI: one line, exit code 2, nothing written
    out = setup.tmp / "out"
    result = CliRunner().invoke(app, ["-q", "build-graph", "--config", str(cfg), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 4
    assert result.output.lstrip().startswith("error:")
    _check_message(result.output, expected)
    assert not out.exists() and not [p for p in setup.tmp.iterdir() if p.name.startswith(".out.")]


def test_failed_rebuild_keeps_the_previous_run(setup):
    """A refusal (here a non-UTF-8 byte) leaves an existing run byte-for-byte as it was."""
    out = setup.tmp / "run"
    build_run(setup.cfg, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    put_cell(setup.study / PATIENT, 20, "NPI", b"4.\xb5")
    result = CliRunner().invoke(app, ["build-graph", "-c", str(setup.cfg), "-o", str(out)])
    assert result.exit_code == 2 and "is not UTF-8" in result.output
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


# ------------------------------------------------------------------ what is accepted


def _counts(cfg: Path) -> tuple[int, int, int, int]:
    g = build_graph(load_config(cfg))
    return (len(g.nodes["Patient"]), len(g.nodes["Mutation"]), len(g.nodes["Pathway"]),
            int(g.nodes["Patient"]["os_event"].sum()))


BOM = b"\xef\xbb\xbf"
BOM_FILES = [PATIENT, SAMPLE, MAF, PANEL, "hallmark.gmt", "config"]


@pytest.fixture(scope="module")
def unbroken_counts(tmp_path_factory, data_dir) -> tuple[int, int, int, int]:
    """(patients, mutations, pathways, deaths) of the unbroken small study."""
    tmp = tmp_path_factory.mktemp("unbroken")
    s = Setup(*write_small_metabric(data_dir, tmp), tmp)
    s.local_gmt()
    return _counts(s.cfg)


@pytest.mark.parametrize("which", BOM_FILES)
def test_byte_order_mark_is_accepted(setup, which, unbroken_counts):
    """Excel's "UTF-8 with BOM": the same graph as without the mark, whichever file carries it."""
    setup.local_gmt()
    expected = unbroken_counts
    path = setup.cfg if which == "config" else setup.tmp / which if which.endswith(".gmt") else setup.study / which
    path.write_bytes(BOM + path.read_bytes())
    assert _counts(setup.cfg) == expected
    assert expected[0] == N_PATIENTS and expected[1] > 0 and expected[2] > 0


def test_byte_order_mark_is_accepted_in_plain_tables(setup):
    cfg, clinical, muts = plain_cohort(setup)
    expected = _counts(cfg)
    for p in (clinical, muts):
        p.write_bytes(BOM + p.read_bytes())
    assert _counts(cfg) == expected


def test_header_only_maf_warns_and_builds(setup):
    maf = setup.study / MAF
    lines, eol = file_lines(maf)
    maf.write_bytes(eol.join(lines[:2]).encode() + eol.encode())
    result = CliRunner().invoke(app, ["build-graph", "-c", str(setup.cfg), "-o", str(setup.tmp / "run")])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "WARNING" in flat and "has a header but 0 mutations" in flat and MAF in flat.replace(" ", "")


def test_trailing_empty_fields_may_be_dropped(setup, data_dir):
    """OncoKB's real list drops trailing empty fields on 112 of its rows: not a refusal."""
    from graphonc.ingest.gene_roles import read_oncokb
    from graphonc.ingest.symbols import SymbolMap

    path = data_dir / "genes" / "OncoKB_cancerGeneList_2024-12-19.tsv"
    header = path.read_text().splitlines()[0].split("\t")
    short = [ln for ln in path.read_text().splitlines()[1:] if len(ln.split("\t")) < len(header)]
    assert len(short) > 100
    assert len(read_oncokb(path, SymbolMap.identity())) > 1000


# ------------------------------------------------------------------ disk full, permission denied


def _python_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "graphonc.cli", *args]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "300"}


@pytest.mark.slow
def test_disk_full_is_one_line_and_leaves_nothing(setup):
    """A real ENOSPC: a 64 KiB tmpfs mounted in a private user+mount namespace."""
    disk = setup.tmp / "disk"
    disk.mkdir()
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no unprivileged user namespaces here ({probe.stderr.decode().strip()})")
    script = (f"mount -t tmpfs -o size=64k tmpfs {disk} && "
              f"{' '.join(_python_cli('-q', 'build-graph', '-c', str(setup.cfg), '-o', str(disk / 'run')))}; "
              f"rc=$?; echo LEFT:$(ls -A {disk}); exit $rc")
    res = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=_env(),
                         timeout=120)
    assert res.returncode == 2, res.stderr
    err = " ".join(res.stderr.split())
    assert "Traceback" not in res.stderr and err.startswith("error:"), res.stderr
    assert "No space left on device (ENOSPC)" in err and "Fix: free disk space" in err
    assert res.stdout.strip().splitlines()[-1] == "LEFT:"  # no run, no temp folder


@pytest.fixture()
def shared_tmp(setup):
    """A copy of the study + config in a world-readable folder, for a CLI run as ``nobody``."""
    d = Path(tempfile.mkdtemp(prefix="graphonc-hostile-", dir="/tmp"))
    os.chmod(d, 0o755)
    shutil.copytree(setup.study, d / "study")
    c = setup.config()
    c["input"]["study_dir"] = str(d / "study")
    (d / "cfg.yaml").write_text(yaml.safe_dump(c))
    for p in [d / "study", *(d / "study").iterdir(), d / "cfg.yaml"]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _as_nobody(d: Path, *args: str) -> subprocess.CompletedProcess:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv not installed")
    env = {**_env(), "HOME": str(d), "MPLCONFIGDIR": str(d)}
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *_python_cli(*args)],
                          capture_output=True, text=True, env=env, timeout=120)


def _ensure_readable_repo() -> None:
    if not os.access(REPO, os.R_OK | os.X_OK) or (os.stat(REPO).st_mode & 0o005) != 0o005:
        pytest.skip("the repository is not readable by other users here")


@pytest.mark.slow
def test_permission_denied_on_out(shared_tmp):
    _ensure_readable_repo()
    locked = shared_tmp / "locked"
    locked.mkdir(mode=0o555)
    os.chmod(locked, 0o555)
    res = _as_nobody(shared_tmp, "-q", "build-graph", "-c", str(shared_tmp / "cfg.yaml"), "-o", str(locked / "run"))
    err = " ".join(res.stderr.split())
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert err.startswith("error:") and "Permission denied (EACCES)" in err and str(locked) in err.replace(" ", "")
    assert list(locked.iterdir()) == []


@pytest.mark.slow
def test_permission_denied_on_an_input(shared_tmp):
    _ensure_readable_repo()
    os.chmod(shared_tmp / "study" / SAMPLE, 0o000)
    out = shared_tmp / "out"
    os.chmod(shared_tmp, 0o777)
    res = _as_nobody(shared_tmp, "-q", "build-graph", "-c", str(shared_tmp / "cfg.yaml"), "-o", str(out))
    err = " ".join(res.stderr.split())
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "Permission denied (EACCES)" in err and SAMPLE in err.replace(" ", "")
    assert not out.exists()


# ------------------------------------------------------------------ Neo4j down, wrong password, wrong port


@pytest.fixture(scope="module")
def small_trained(tmp_path_factory, data_dir):
    """A built + quickly trained run of the 60-patient study (for load-neo4j and export --format neo4j)."""
    from graphonc.model.stages import train_stage

    tmp = tmp_path_factory.mktemp("hostile-neo4j")
    _, cfg = write_small_metabric(data_dir, tmp)
    build_run(cfg, tmp / "run")
    train_stage(tmp / "run", **{**FAST_MODEL, "epochs": 3, "patience": 3})
    return tmp / "run"


def _neo4j_targets(neo4j_local) -> dict[str, tuple[str, str, str]]:
    """name → (NEO4J_URI, NEO4J_PASSWORD, text the error must contain)."""
    cfg, status = neo4j_local
    closed = ns.free_port()
    return {
        "wrong-password": (status.bolt_uri, "not-the-password", "refused user 'neo4j': wrong user or password"),
        "closed-port": (f"bolt://127.0.0.1:{closed}", cfg.password, "no Bolt server answers there"),
        "http-port": (f"bolt://127.0.0.1:{cfg.http_port}", cfg.password, "no Bolt server answers there"),
    }


COMMANDS = {
    "load-neo4j": lambda run: ["load-neo4j", str(run)],
    "cypher-run": lambda run: ["cypher", "run", str(REPO / "cypher" / "most_mutated_genes.cypher"), "-p",
                               "cohort=metabric"],
    "export-neo4j": lambda run: ["export", "--run", str(run), "--format", "neo4j"],
}


@pytest.mark.neo4j
@pytest.mark.slow
@pytest.mark.parametrize("target", ["wrong-password", "closed-port", "http-port"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_neo4j_unreachable_is_one_line(neo4j_local, small_trained, command, target):
    uri, password, says = _neo4j_targets(neo4j_local)[target]
    env = {"NEO4J_URI": uri, "NEO4J_PASSWORD": password, "NEO4J_USER": "neo4j", "COLUMNS": "300"}
    result = CliRunner().invoke(app, COMMANDS[command](small_trained), env=env)
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split())
    assert flat.startswith("error:") and "Traceback" not in result.output
    assert says in flat and uri in flat and "Fix:" in flat
    assert password not in flat
    assert isinstance(result.exception, SystemExit)
    if target == "wrong-password":
        _wait_until_login_works(neo4j_local)


def _wait_until_login_works(neo4j_local, timeout: float = 30.0) -> None:
    """Neo4j locks a user for a few seconds after failed logins; wait that out so that the
    session's other Neo4j tests, which log in as the same user, are not refused."""
    import time

    from graphonc.store.neo4j_load import Neo4jSettings

    cfg, status = neo4j_local
    deadline = time.monotonic() + timeout
    while True:
        try:
            Neo4jSettings(uri=status.bolt_uri, password=cfg.password).driver().close()
            return
        except GraphoncError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_neo4j_uri_credentials_never_shown():
    from graphonc.store.neo4j_load import Neo4jSettings

    s = Neo4jSettings(uri="bolt://neo4j:s3cret@127.0.0.1:1", password="s3cret")
    with pytest.raises(GraphoncError) as err:
        s.driver()
    assert "s3cret" not in str(err.value) and "bolt://127.0.0.1:1" in str(err.value)


# ------------------------------------------------------------------ a radiomics feature table


@pytest.mark.parametrize("column, value, says", [("Energy", "inf", "'inf' is not a finite number"),
                                                 ("Energy", "1e308", "'1e308' is beyond ±1e+20"),
                                                 ("Energy", "12\x00", "NUL byte"),
                                                 ("id", "HN1\x1b[2J004", "contains a control character")])
def test_radiomics_feature_table_value_refused(tmp_path, data_dir, column, value, says):
    """HN1's published feature table with one GTV-1 cell broken: refused by line and column."""
    src = data_dir / "radiomics" / "hn1" / "HN_Radiomics.csv"
    lines = src.read_bytes().split(b"\n")
    header = lines[0].split(b",")
    row = next(i for i, ln in enumerate(lines) if b",GTV-1," in ln)
    cells = lines[row].split(b",")
    cells[header.index(column.encode())] = value.encode()
    lines[row] = b",".join(cells)
    table = tmp_path / "HN_Radiomics.csv"
    table.write_bytes(b"\n".join(lines))
    c = yaml.safe_load((CONFIGS / "hn1.yaml").read_text())
    c["input"]["clinical"] = str((CONFIGS / c["input"]["clinical"]).resolve())
    c["radiomics"]["features"]["path"] = str(table)
    cfg = tmp_path / "hn1.yaml"
    cfg.write_text(yaml.safe_dump(c))
    result = CliRunner().invoke(app, ["-q", "build-graph", "-c", str(cfg), "-o", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    column = column if "NUL" not in says else lines[row].index(b"\x00") + 1
    _check_message(result.output, (InputError, "HN_Radiomics.csv", row + 1, column, says))
    assert not (tmp_path / "run").exists()


# ================================================================================================
# Cypher injection through column names (item 1)
# ================================================================================================

#: METABRIC clinical column → hostile header (two pairs collide once mapped: ER`IHC / ER IHC, and
#: the payload endpoint name below with an existing column).
METABRIC_HEADERS = {
    "PATIENT_ID": "PATIENT ID`) DETACH DELETE (n) //",
    "AGE_AT_DIAGNOSIS": HOSTILE_HEADERS[0],
    "NPI": HOSTILE_HEADERS[2],
    "TUMOR_SIZE": "TUMOR SIZE",
    "GRADE": "GRADE`",
    "ER_IHC": "ER`IHC",
    "HER2_SNP6": "ER IHC",
    "INFERRED_MENOPAUSAL_STATE": "âge_ménopause",
    "CELLULARITY": HOSTILE_HEADERS[3],
    "ER_STATUS": "5yr grade",
    "COHORT": HOSTILE_HEADERS[1],
    "CLAUDIN_SUBTYPE": "label`}) DETACH DELETE (n) //",
    "OS_MONTHS": "OS MONTHS",
    "CHEMOTHERAPY": "CHEMO`THERAPY",
}
MUTATION_HEADERS = {"patient_id": "patient` id", "gene": "Hugo`Symbol */", "protein_change": "HGVSp\\u0060Short",
                    "variant_class": "class // x", "vaf": "vaf`) DETACH DELETE (n) //"}
METABRIC_ENDPOINT = "dss` = 1 WITH n MATCH (m) DETACH DELETE m //"

HN1_HEADERS = {
    "age_at_diagnosis": "age\nat diagnosis",
    "performance_status_ecog": "ecog` = 1 WITH n MATCH (m) DETACH DELETE m //",
    "clin_t": "clin\\u0060t",
    "clin_n": "clin`t",
    "index_tumour_location": "tumour location */ MATCH (m) DETACH DELETE m /*",
    "dataset": "数据集",
}
HN1_FEATURES = {f: f"{f}` = 1 WITH n MATCH (m) DETACH DELETE m //" for f in
                ("Energy", "Entropy", "Kurtosis", "Skewness", "Uniformity", "Variance", "Sphericity", "Elongation",
                 "Flatness", "MeshVolume", "SurfaceVolumeRatio", "Maximum3DDiameter")}
HN1_ENDPOINT = "rmfs\\u0060 = 1 WITH n MATCH (m) DETACH DELETE m //"


@pytest.fixture(scope="module")
def hostile_runs(tmp_path_factory, data_dir) -> dict[str, GraphRun]:
    root = tmp_path_factory.mktemp("hostile")
    met = write_metabric_tables(data_dir, root / "in_metabric", n=300, columns=METABRIC_HEADERS,
                                mutation_headers=MUTATION_HEADERS, extra_survival=METABRIC_ENDPOINT)
    hn1 = write_hn1_tables(data_dir, root / "in_hn1", HN1_HEADERS, HN1_FEATURES, HN1_ENDPOINT)
    build_run(met, root / "metabric")
    build_run(hn1, root / "hn1")
    return {"metabric": GraphRun.open(root / "metabric"), "hn1": GraphRun.open(root / "hn1")}


# ------------------------------------------------------------------------------- the validator


@pytest.mark.parametrize("name", HOSTILE_HEADERS + [
    "", "1abc", "a b", "a-b", "a.b", "é", "a\x00b", "a\u0060b", "`a`", "a\tb", "a\r\nb", "a;b", "a$b", "a{b}",
    None, 5, b"abc"])
def test_assert_ident_refuses_every_non_identifier(name):
    with pytest.raises(GraphoncError, match="cannot be used in a Cypher query"):
        assert_ident(name)


@pytest.mark.parametrize("name", ["a", "_", "_x1", "AGE_AT_DIAGNOSIS", "rad_shape_MeshVolume", "Patient"])
def test_assert_ident_keeps_identifiers(name):
    assert assert_ident(name) == name


def test_safe_keys_are_readable_and_unique():
    keys = safe_keys(["AGE AT DIAGNOSIS", "AGE_AT_DIAGNOSIS", "AGE-AT-DIAGNOSIS", "5yr", "âge", "数据", "`", "",
                      "ER`IHC", "ER\\u0060IHC", "cohort "], taken=("load_id", "cohort"))
    assert keys == {"AGE AT DIAGNOSIS": "AGE_AT_DIAGNOSIS_2", "AGE_AT_DIAGNOSIS": "AGE_AT_DIAGNOSIS",
                    "AGE-AT-DIAGNOSIS": "AGE_AT_DIAGNOSIS_3", "5yr": "c_5yr", "âge": "age", "数据": "u6570_u636e",
                    "`": "c", "": "c_2", "ER`IHC": "ER_IHC", "ER\\u0060IHC": "ER_u0060IHC", "cohort ": "cohort_2"}
    assert safe_key("x` DETACH DELETE n //") == "x_DETACH_DELETE_n"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=12), unique=True, max_size=12))
def test_safe_keys_always_valid_unique_and_stable(names):
    keys = safe_keys(names, taken=("load_id",))
    assert list(keys) == names
    assert all(IDENT.fullmatch(k) for k in keys.values())
    assert len(set(keys.values())) == len(names)
    assert all(keys[n] == n for n in names if is_ident(n))  # valid names keep themselves
    assert "load_id" not in {keys[n] for n in names if n != "load_id"}
    assert safe_keys(names, taken=("load_id",)) == keys  # deterministic


# ------------------------------------------------------------------------------- the source


#: Functions whose result may be pasted into Cypher as an identifier: the validator and the two
#: schema lookups that end in it (graphonc.store.neo4j_load._label_ident/_rel_ident).
_VALIDATED = {"assert_ident", "_label_ident", "_rel_ident"}
#: Text right before a pasted identifier: a label/type (``:``), a property (``.``), an index or
#: constraint name.
_IDENT_SLOT = re.compile(r"(?:[:.]|\b(?:INDEX|CONSTRAINT)\s)$")
_CYPHER = re.compile(r"\b(?:MATCH|MERGE|CREATE|SET|RETURN|UNWIND|DELETE|REMOVE|CALL|OPTIONS|DROP)\b")


def _python_sources():
    for path in sorted((REPO / "graphonc").rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"))


def _docstrings(tree) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _unsafe_sites(tree, name: str) -> tuple[list[str], list[str]]:
    """(identifiers pasted into Cypher text without the validator, Cypher strings with backticks)."""
    unchecked, quoted = [], []
    docs = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if _CYPHER.search(node.value) and "`" in node.value:
                quoted.append(f"{name}:{node.lineno}")
        if not isinstance(node, ast.JoinedStr):
            continue
        text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        if not _CYPHER.search(text):
            continue
        if "`" in text:
            quoted.append(f"{name}:{node.lineno}")
        before = ""
        for v in node.values:
            if isinstance(v, ast.Constant):
                before = v.value
                continue
            call = v.value
            ok = isinstance(call, ast.Call) and getattr(call.func, "id", getattr(call.func, "attr", None)) in _VALIDATED
            if _IDENT_SLOT.search(before) and not ok:
                unchecked.append(f"{name}:{node.lineno}: {ast.unparse(call)}")
            before = ""
    return unchecked, quoted


def test_no_cypher_is_assembled_from_an_unvalidated_name():
    """Every ``{…}`` pasted where Cypher expects an identifier is a call to the validator, and no
    Cypher string in graphonc/ quotes a name with backticks."""
    unchecked, quoted = [], []
    for path, tree in _python_sources():
        u, q = _unsafe_sites(tree, str(path.relative_to(REPO)))
        unchecked += u
        quoted += q
    assert not unchecked, f"identifiers pasted into Cypher without assert_ident: {unchecked}"
    assert not quoted, f"backtick-quoted names in Cypher text: {quoted}"


def test_the_source_check_catches_unvalidated_names():
    """The walker is not vacuous: the old loader's assembly, a pasted label and index name are caught."""
    old = ast.parse('def q(c, j, label, name):\n'
                    '    a = f"SET n.{property_key(c)} = c{j}[i]"\n'
                    '    b = f"MATCH (n:{label}) RETURN n"\n'
                    '    d = f"CREATE VECTOR INDEX {name} IF NOT EXISTS"\n'
                    '    e = "MATCH (n) SET n.`x` = 1"\n'
                    '    ok = f"MATCH (n:{_label_ident(label)}) SET n.{assert_ident(c)} = c{j}[i]"\n')
    unchecked, quoted = _unsafe_sites(old, "old")
    assert [u.split(": ", 1)[1] for u in unchecked] == ["property_key(c)", "label", "name"]
    assert quoted == ["old:5"]


def test_cypher_files_take_parameters_only():
    """The shipped Cypher files paste nothing: no backticks, every $name is a declared parameter."""
    from graphonc.store.cypher_files import CypherFile

    files = sorted((REPO / "cypher").glob("*.cypher"))
    assert len(files) >= 10
    for path in files:
        cf = CypherFile.read(path)
        body = "\n".join(cf.statements)
        assert "`" not in body, path.name
        used = set(re.findall(r"\$(\w+)", body))
        assert used <= set(cf.params), (path.name, used - set(cf.params))
        with pytest.raises(GraphoncError, match="unknown parameter"):
            cf.bind({"x` DETACH DELETE n //": "1"})


# ------------------------------------------------------------------------------- build-graph


def test_build_maps_hostile_headers_to_safe_keys(hostile_runs, data_dir):
    met, hn1 = hostile_runs["metabric"], hostile_runs["hn1"]
    for run in (met, hn1):
        for label in run.node_types():
            assert all(is_ident(c) for c in run.nodes(label).columns), label
        for edge in run.edge_types():
            assert all(is_ident(c) for c in run.edges(edge).columns), edge
    keys = met.column_keys()
    assert keys["AGE` = 1 WITH n MATCH (m) DETACH DELETE m //"] == "AGE_1_WITH_n_MATCH_m_DETACH_DELETE_m"
    assert keys["AGE\\u0060 = 1 WITH n MATCH (m) DETACH DELETE m //"] == "AGE_u0060_1_WITH_n_MATCH_m_DETACH_DELETE_m"
    assert keys["ER`IHC"] == "ER_IHC" and keys["ER IHC"] == "ER_IHC_2"  # a collision gets a suffix
    assert keys["âge_ménopause"] == "age_menopause" and keys["5yr grade"] == "c_5yr_grade"
    assert keys[METABRIC_ENDPOINT + "_months"] == "dss_1_WITH_n_MATCH_m_DETACH_DELETE_m_months"
    # the config names the columns by their headers; the values arrive under the keys
    p = met.nodes(S.PATIENT).set_index(S.ID)
    src = pd.read_csv(Path(met.manifest["config_path"]).parent / "clinical.tsv", sep="\t", dtype=str,
                      keep_default_na=False).set_index(METABRIC_HEADERS["PATIENT_ID"])
    age = pd.to_numeric(src[METABRIC_HEADERS["AGE_AT_DIAGNOSIS"]]).reindex(p.index)
    assert (p["AGE_1_WITH_n_MATCH_m_DETACH_DELETE_m"] == age).all()
    assert p["ER_IHC"].dropna().isin(set(src["ER`IHC"])).all() and p["ER_IHC_2"].notna().sum() > 200
    cols = met.manifest["patient_columns"]
    assert "AGE_1_WITH_n_MATCH_m_DETACH_DELETE_m" in cols["numeric"] and "ER_IHC_2" in cols["categorical"]
    # mutation headers are read by the config's names and stored under graphonc's own
    assert set(met.nodes(S.MUTATION).columns) == {"id", "gene", "protein_change", "variant_class", "n_patients"}
    assert len(met.nodes(S.MUTATION)) > 100
    # HN1: a newline, non-ASCII, the \u0060 escape, and radiomic feature headers
    hk = hn1.column_keys()
    assert hk["age\nat diagnosis"] == "age_at_diagnosis" and hk["数据集"] == "u6570_u636e_u96c6"
    assert hk["clin\\u0060t"] == "clin_u0060t" and hk["clin`t"] == "clin_t"
    rad = hn1.manifest["patient_columns"]["radiomics"]
    assert rad and all(is_ident(c) for c in rad)
    mapped = [k for c, k in hk.items() if c.startswith("rad_") and "DETACH" in c]
    assert mapped and set(mapped) & set(rad), "a hostile radiomic feature must reach the model features"
    assert hk[HN1_ENDPOINT + "_event"] == "rmfs_u0060_1_WITH_n_MATCH_m_DETACH_DELETE_m_event"


def _cli_cypher(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "250", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "graphonc.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=REPO)


def test_info_shows_the_mapping(hostile_runs):
    res = _cli_cypher("info", str(hostile_runs["hn1"].root))
    assert res.returncode == 0, res.stderr
    assert "columns renamed to safe keys" in res.stdout
    out = re.sub(r"[│┃|\s]+", " ", res.stdout)
    assert "'age\\nat diagnosis' age_at_diagnosis" in out
    assert "'clin\\\\u0060t' clin_u0060t" in out and "'数据集' u6570_u636e_u96c6" in out
    assert "\x1b" not in res.stdout


# ------------------------------------------------------------------------------- Neo4j


def _all_counts(driver) -> dict:
    recs = driver.execute_query("MATCH (n) RETURN coalesce(n.cohort, '-') AS c, labels(n) AS l, count(*) AS n").records
    rels = driver.execute_query("MATCH ()-[r]->() RETURN type(r) AS t, count(*) AS n").records
    return {"nodes": sorted((r["c"], tuple(r["l"]), r["n"]) for r in recs),
            "rels": sorted((r["t"], r["n"]) for r in rels)}


@pytest.fixture()
def canary(neo4j_settings):
    """A cohort no load should touch: a Patient with a mutation, plus a free-standing node."""
    with neo4j_settings.driver() as driver:
        driver.execute_query("MATCH (n {cohort: 'canary'}) DETACH DELETE n")
        driver.execute_query("CREATE (p:Patient {cohort: 'canary', id: 'C1', age: 50})"
                             "-[:HAS_MUTATION]->(:Mutation {cohort: 'canary', id: 'TP53:R175H'}), "
                             "(:Canary {cohort: 'canary', id: 'bird'})")
        yield driver
        driver.execute_query("MATCH (n {cohort: 'canary'}) DETACH DELETE n")


def _canary_alive(driver) -> bool:
    rec = driver.execute_query("MATCH (p:Patient {cohort: 'canary', id: 'C1'})-[:HAS_MUTATION]->(m:Mutation) "
                               "MATCH (c:Canary {cohort: 'canary'}) RETURN p.age AS age, m.id AS m, c.id AS c").records
    return len(rec) == 1 and rec[0]["age"] == 50 and rec[0]["m"] == "TP53:R175H" and rec[0]["c"] == "bird"


@pytest.mark.neo4j
def test_the_payloads_are_live_against_backtick_quoting(canary):
    """What the old loader did (backtick-quote, double inner backticks) lets a header's \\u0060 end the
    name and run its own Cypher: the payloads above are real attacks, not strings that fail anyway."""
    name = "x\\u0060 = 1 WITH n MATCH (m:Canary) DETACH DELETE m //"
    quoted = "`" + name.replace("`", "``") + "`"
    canary.execute_query(f"MATCH (n:Patient {{cohort: 'canary'}})\nSET n.{quoted} = 2\nRETURN count(*) AS n")
    assert canary.execute_query("MATCH (c:Canary) RETURN count(c) AS n").records[0]["n"] == 0
    with pytest.raises(GraphoncError):
        assert_ident(name)


@pytest.fixture(scope="module")
def hostile_cohorts_dropped_after(hostile_runs, neo4j_settings):
    """The hostile cohorts leave the session's server with this module (other Neo4j tests count cohorts)."""
    yield
    drop_cohorts(neo4j_settings, sorted({r.cohort for r in hostile_runs.values()}))


@pytest.mark.neo4j
def test_load_neo4j_of_hostile_runs_executes_nothing(hostile_runs, canary, neo4j_settings,
                                                     hostile_cohorts_dropped_after):
    from graphonc.store.neo4j_load import iter_counts, load_run

    before = _all_counts(canary)
    for run in hostile_runs.values():
        report = load_run(run, neo4j_settings, driver=canary)
        assert report.nodes[S.PATIENT] == run.manifest["counts"]["nodes"][S.PATIENT]
        got = dict(iter_counts(canary, run.cohort))
        assert {k: v for k, v in got.items() if v} == {
            **{k: v for k, v in run.manifest["counts"]["nodes"].items() if v},
            **{k: v for k, v in run.manifest["counts"]["edges"].items() if v}}
    assert _canary_alive(canary)
    after = _all_counts(canary)
    others = lambda c: [x for x in c["nodes"] if x[0] not in {r.cohort for r in hostile_runs.values()}  # noqa: E731
                        and x[1][0] not in ("GraphoncLoad", "GraphoncLoadLock")]
    assert others(after) == others(before)
    # every property key in the database is an identifier; the hostile columns are under their keys
    keys = {r["k"] for r in canary.execute_query("MATCH (n) UNWIND keys(n) AS k RETURN DISTINCT k").records}
    keys |= {r["k"] for r in canary.execute_query("MATCH ()-[r]->() UNWIND keys(r) AS k RETURN DISTINCT k").records}
    assert all(is_ident(k) for k in keys), sorted(k for k in keys if not is_ident(k))
    met = hostile_runs["metabric"]
    p = met.nodes(S.PATIENT).set_index(S.ID)
    pid = p["AGE_1_WITH_n_MATCH_m_DETACH_DELETE_m"].first_valid_index()
    node = canary.execute_query("MATCH (p:Patient {cohort: $c, id: $id}) RETURN properties(p) AS p",
                                c=met.cohort, id=pid).records[0]["p"]
    assert node["AGE_1_WITH_n_MATCH_m_DETACH_DELETE_m"] == p.loc[pid, "AGE_1_WITH_n_MATCH_m_DETACH_DELETE_m"]
    assert node["ER_IHC_2"] == p.loc[pid, "ER_IHC_2"]
    hn1 = hostile_runs["hn1"]
    rad = [k for k in hn1.manifest["patient_columns"]["radiomics"] if "DETACH" in k]
    n = canary.execute_query(f"MATCH (p:Patient {{cohort: $c}}) WHERE p.{assert_ident(rad[0])} IS NOT NULL "
                             "RETURN count(p) AS n", c=hn1.cohort).records[0]["n"]
    assert n == int(hn1.nodes(S.PATIENT)[rad[0]].notna().sum()) > 100
    # loading again changes nothing
    for run in hostile_runs.values():
        assert set(load_run(run, neo4j_settings, driver=canary).modes.values()) == {"skip"}
    assert _all_counts(canary) == after


@pytest.mark.neo4j
def test_write_back_refuses_hostile_names_and_keeps_values_inert(hostile_runs, canary, neo4j_settings,
                                                                  hostile_cohorts_dropped_after):
    import numpy as np

    from graphonc.store.vector_index import ensure_vector_index
    from graphonc.store.neo4j_load import load_run, write_patient_properties, write_similar

    run = hostile_runs["metabric"]
    load_run(run, neo4j_settings, driver=canary)
    ids = run.nodes(S.PATIENT)[S.ID].head(3).tolist()
    before = _all_counts(canary)
    bad = pd.DataFrame({S.ID: ids, "emb` = 1 WITH p MATCH (m) DETACH DELETE m //": [1.0, 2.0, 3.0]})
    with pytest.raises(GraphoncError, match="cannot be used in a Cypher query"):
        write_patient_properties(canary, run.cohort, bad)
    for name in ("idx` IF NOT EXISTS FOR (m) ON (m.x) //", "idx\\u0060", "1idx"):
        with pytest.raises(GraphoncError, match="cannot be used in a Cypher query"):
            ensure_vector_index(canary, "neo4j", name, "embedding", 4)
    with pytest.raises(GraphoncError, match="cannot be used in a Cypher query"):
        ensure_vector_index(canary, "neo4j", "ok_idx", "emb`) DETACH DELETE (n) //", 4)
    assert _all_counts(canary) == before
    # a model name is a value: written literally, runs nothing
    model = "m'}) MATCH (x) DETACH DELETE x //` \\u0060"
    pairs = pd.DataFrame({"src": ids[:2], "dst": ids[1:3], "score": [0.9, 0.8], "rank": [1, 1]})
    assert write_similar(canary, run.cohort, pairs, model) == 2
    got = canary.execute_query("MATCH (:Patient {cohort: $c})-[r:SIMILAR_TO]->() RETURN DISTINCT r.model AS m",
                               c=run.cohort).records
    assert [r["m"] for r in got] == [model]
    ok = pd.DataFrame({S.ID: ids, "prediction_risk": np.array([0.1, 0.2, 0.3])})
    assert write_patient_properties(canary, run.cohort, ok) == 3
    assert _canary_alive(canary)


@pytest.mark.neo4j
def test_cypher_run_sends_values_as_parameters(hostile_runs, canary, neo4j_settings, hostile_cohorts_dropped_after):
    """`graphonc cypher run` with injection attempts in its parameter values: read as values."""
    from graphonc.store.neo4j_load import load_run

    run = hostile_runs["metabric"]
    load_run(run, neo4j_settings, driver=canary)
    before = _all_counts(canary)
    env = {"NEO4J_URI": neo4j_settings.uri, "NEO4J_USER": neo4j_settings.user,
           "NEO4J_PASSWORD": neo4j_settings.password}
    pid = "x'}) MATCH (m) DETACH DELETE m //"
    res = subprocess.run([sys.executable, "-m", "graphonc.cli", "cypher", "run", "cypher/patient_profile.cypher",
                          "-p", f"cohort={run.cohort}", "-p", f"patient_id={pid}", "--json"], capture_output=True,
                         text=True, cwd=REPO, timeout=120,
                         env={**os.environ, **env, "PYTHONPATH": str(REPO)})
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == []
    assert _all_counts(canary) == before and _canary_alive(canary)


# ------------------------------------------------------------------------------- users see the headers


@pytest.mark.slow
def test_model_reads_new_patients_by_header_and_shows_headers(hostile_runs, tmp_path):
    """Train on the mapped keys; embed new patients from a file with the original (hostile) headers;
    the reasons name the columns as the file does."""
    import shutil

    from graphonc.model.stages import train_stage
    from graphonc.search.index import build_index
    from graphonc.search.similar import similar_new_patients, similar_patients

    root = tmp_path / "run"
    shutil.copytree(hostile_runs["metabric"].root, root)
    train_stage(root, hidden=16, embedding_dim=8, epochs=4, patience=4, ensemble=1)
    build_index(root, "flat", device="cpu")
    run = GraphRun.open(root)
    age = METABRIC_HEADERS["AGE_AT_DIAGNOSIS"]
    pid = run.nodes(S.PATIENT)[S.ID].iloc[0]
    res = similar_patients(root, [pid], k=5, device="cpu")[0]
    assert age in res.query.clinical and "ER IHC" in res.query.clinical and "ER`IHC" in res.query.clinical
    assert not any(c in res.query.clinical for c in run.column_keys().values())
    cols = {c["column"] for n in res.neighbours for c in n.clinical_similar + n.clinical_different}
    assert cols and cols <= set(METABRIC_HEADERS.values()) | {"GRADE`"}
    # new patients: the same file layout as the build input, headers as the hospital wrote them
    src = Path(run.manifest["config_path"]).parent
    new = pd.read_csv(src / "clinical.tsv", sep="\t", dtype=str, keep_default_na=False).head(3)
    new[METABRIC_HEADERS["PATIENT_ID"]] = ["NEW-1", "NEW-2", "NEW-3"]
    new.to_csv(tmp_path / "new.tsv", sep="\t", index=False)
    got = similar_new_patients(root, tmp_path / "new.tsv", k=3, device="cpu")
    assert [r.query.id for r in got] == ["NEW-1", "NEW-2", "NEW-3"]
    first = pd.to_numeric(new[age]).iloc[0]
    assert got[0].query.clinical[age] == first
    # explain names the clinical features by header, with the patient's value
    from graphonc.model.explain import explain_patient

    e = explain_patient(root, pid, steps=4)
    clinical = e.table[e.table["kind"] == "clinical"].drop_duplicates("name").set_index("name")
    assert age in clinical.index and "ER IHC" in clinical.index
    assert not set(clinical.index) & set(run.column_keys().values())
    assert clinical.loc[age, "value"] == str(run.nodes(S.PATIENT).set_index(S.ID).loc[pid, run.column_keys()[age]])


# ================================================================================================
# --out never deletes what graphonc did not write, lineage, report names, permissions, leftovers (items 2, 3, 6)
# ================================================================================================

TINY = dict(hidden=8, embedding_dim=8, epochs=3, patience=3)


def _config(tmp: Path, name: str, edit=None) -> Path:
    """configs/hn1.yaml with absolute paths (and ``edit(doc)`` applied), written to ``tmp/name``."""
    doc = yaml.safe_load((CONFIGS / "hn1.yaml").read_text(encoding="utf-8"))
    doc["input"]["clinical"] = str((CONFIGS / doc["input"]["clinical"]).resolve())
    doc["radiomics"]["features"]["path"] = str((CONFIGS / doc["radiomics"]["features"]["path"]).resolve())
    doc["model"].update(TINY)
    if edit is not None:
        edit(doc)
    path = tmp / name
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def configs(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("configs")
    a = _config(tmp, "a.yaml")
    b = _config(tmp, "b.yaml", lambda d: d["clinical"]["after_diagnosis"].remove("radiotherapy_total_treat_time"))
    return a, b


@pytest.fixture(scope="module")
def trained(configs, tmp_path_factory) -> Path:
    """Run A with a trained (tiny) model and its index."""
    from graphonc.model.stages import train_stage
    from graphonc.search.index import build_index

    root = tmp_path_factory.mktemp("trained") / "hn1"
    build_run(configs[0], root)
    train_stage(root)
    build_index(root, "flat", device="cpu")
    return root


def _cli_files(*args: str):
    return CliRunner().invoke(app, ["-q", *args])


def _refused(res, *fragments: str) -> str:
    assert res.exit_code == 2, res.output
    flat = " ".join(res.output.split())
    assert "Traceback" not in res.output and flat.startswith("error:"), res.output
    assert len([ln for ln in res.output.splitlines() if ln.strip()]) <= 4, res.output  # one line, soft-wrapped
    for frag in fragments:
        assert frag in flat, (frag, flat)
    assert "Fix:" in flat
    return flat


def _snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under ``root`` (and root itself): its mode and, for files, its bytes."""
    snap = {".": (root.stat().st_mode, None)}
    for p in sorted(root.rglob("*")):
        snap[str(p.relative_to(root))] = (p.stat().st_mode, p.read_bytes() if p.is_file() else None)
    return snap


# --------------------------------------------------------------------------- item 2: --out


def test_input_study_folder_as_out_is_refused_and_untouched(configs, tmp_path, data_dir):
    study = tmp_path / "study"
    shutil.copytree(data_dir / "radiomics" / "hn1", study, ignore=shutil.ignore_patterns("*.nii*", "*.dcm"))
    doc = yaml.safe_load(configs[0].read_text())
    doc["input"]["clinical"] = str(study / "HN_ClinicalData.csv")
    doc["radiomics"]["features"]["path"] = str(study / "HN_Radiomics.csv")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    before = _snapshot(study)
    parent_before = sorted(p.name for p in tmp_path.iterdir())
    _refused(_cli_files("build-graph", "--config", str(cfg), "--out", str(study)), str(study),
             "not a graphonc run folder", "never replaces what it did not create")
    assert _snapshot(study) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == parent_before  # no temp folder beside it either


@pytest.mark.parametrize("command", ["build-graph", "embed", "radiomics phenotype"])
def test_a_file_or_an_unrelated_folder_as_out_is_refused(command, configs, trained, tmp_path, data_dir):
    hn1 = data_dir / "radiomics" / "hn1"
    argv = {"build-graph": ["build-graph", "--config", str(configs[0])],
            "embed": ["embed", "--run", str(trained), "--patients", str(hn1 / "HN_ClinicalData.csv")],
            "radiomics phenotype": ["radiomics", "phenotype", "--features", str(hn1 / "HN_Radiomics.csv"),
                                    "--config", str(configs[0])]}[command]
    a_file = tmp_path / "notes.txt"
    a_file.write_text("my notes\n")
    _refused(_cli_files(*argv, "--out", str(a_file)), "is a file, not a folder")
    assert a_file.read_text() == "my notes\n"
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "data.csv").write_text("a,b\n1,2\n")
    before = _snapshot(folder)
    _refused(_cli_files(*argv, "--out", str(folder)), "exists and is not a graphonc", "'sub'")
    assert _snapshot(folder) == before
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize("command", ["radiomics extract", "radiomics assign", "report"])
def test_an_existing_file_graphonc_did_not_write_is_refused(command, configs, trained, tmp_path, data_dir):
    hn1 = data_dir / "radiomics" / "hn1"
    target = tmp_path / ("out.html" if command == "report" else "out.parquet")
    target.write_bytes(b"someone else's file\n")
    if command == "radiomics extract":
        argv = ["radiomics", "extract", "--features-csv", str(hn1 / "HN_Radiomics.csv"), "--config", str(configs[0])]
    elif command == "radiomics assign":
        argv = ["radiomics", "assign", "--model", str(trained / "radiomics"), "--features",
                str(hn1 / "HN_Radiomics.csv"), "--config", str(configs[0])]
    else:
        patient = GraphRun.open(trained).nodes("Patient")["id"].iloc[0]
        argv = ["report", "--run", str(trained), "--patient", patient, "--no-explain"]
    _refused(_cli_files(*argv, "--out", str(target)), "exists and was not written by graphonc")
    assert target.read_bytes() == b"someone else's file\n"
    # a file graphonc wrote is replaced
    target.unlink()
    assert _cli_files(*argv, "--out", str(target)).exit_code == 0
    first = target.stat().st_mtime_ns
    res = _cli_files(*argv, "--out", str(target))
    assert res.exit_code == 0, res.output
    assert target.stat().st_mtime_ns >= first


@pytest.mark.parametrize("where", ["graph/nodes/Patient.parquet", "model/embeddings.parquet", "graph/x.html",
                                   "model/new_folder"])
def test_user_named_outputs_never_land_in_what_graphonc_manages(where, configs, trained, tmp_path, data_dir):
    """A graph table or a stage's file is graphonc's, yet no command may write it by --out: that would
    change a graph or a model behind the lineage records' back."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    before = _snapshot(run)
    hn1 = data_dir / "radiomics" / "hn1"
    if where.endswith(".parquet"):
        argv = ["radiomics", "extract", "--features-csv", str(hn1 / "HN_Radiomics.csv"), "--config", str(configs[0])]
    elif where.endswith(".html"):
        argv = ["report", "--run", str(run), "--patient", GraphRun.open(run).nodes("Patient")["id"].iloc[0],
                "--no-explain"]
    else:
        argv = ["embed", "--run", str(run), "--patients", str(hn1 / "HN_ClinicalData.csv")]
    area = run / where.split("/")[0]
    _refused(_cli_files(*argv, "--out", str(run / where)), f"lies in {area}, which graphonc manages")
    assert _snapshot(run) == before


def test_unstamped_side_files_are_ours_only_when_our_report_names_them(tmp_path):
    """radiomics extract writes features.errors.csv beside --out: a CSV carries no stamp, so it is
    replaced only when graphonc's features.extract.json beside it names it."""
    import json

    from graphonc.radiomics.extract import claim_outputs, side_paths

    out = tmp_path / "features.parquet"
    errors, report = side_paths(out)
    errors.write_text("case_id,reason\nmine,1\n")
    with pytest.raises(GraphoncError, match="was not written by graphonc"):
        claim_outputs(out)
    report.write_text(json.dumps({"errors_table": str(errors)}))  # not ours: no graphonc_version
    with pytest.raises(GraphoncError, match="was not written by graphonc"):
        claim_outputs(out)
    report.write_text(json.dumps({"graphonc_version": "x", "errors_table": str(errors)}))
    claim_outputs(out)
    assert errors.read_text() == "case_id,reason\nmine,1\n"


def test_graphml_is_recognised_by_its_graphonc_version(tmp_path):
    import networkx as nx

    from graphonc.graph.outputs import is_graphonc_file

    g = nx.MultiDiGraph([("a", "b")])
    nx.write_graphml(g, tmp_path / "other.graphml")
    g.graph["graphonc_version"] = "0.1"
    nx.write_graphml(g, tmp_path / "ours.graphml")
    assert is_graphonc_file(tmp_path / "ours.graphml") and not is_graphonc_file(tmp_path / "other.graphml")


def test_an_empty_folder_is_accepted(configs, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    res = _cli_files("build-graph", "--config", str(configs[0]), "--out", str(out))
    assert res.exit_code == 0, res.output
    assert GraphRun.open(out).cohort == "hn1"


@pytest.mark.slow
def test_rebuilding_a_trained_run_needs_force(configs, trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "reports").mkdir()
    (run / "reports" / "x.html").write_text("kept")
    before = _snapshot(run)
    flat = _refused(_cli_files("build-graph", "--config", str(configs[1]), "--out", str(run)), "--force",
                    "index/", "model/", "reports/")
    assert "graph/" not in flat and "manifest.json" not in flat  # what build-graph writes is not a "later stage"
    assert _snapshot(run) == before
    res = _cli_files("build-graph", "--config", str(configs[1]), "--out", str(run), "--force")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "graph", "manifest.json", "radiomics"]
    # a run without later stages is rebuilt without --force
    res = _cli_files("build-graph", "--config", str(configs[0]), "--out", str(run))
    assert res.exit_code == 0, res.output


def test_embed_out_over_another_kind_of_graphonc_folder_is_refused(trained, tmp_path, data_dir):
    """A run is a graphonc folder, but not an embed output: embed --out <run> must not replace it."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    before = _snapshot(run)
    _refused(_cli_files("embed", "--run", str(run), "--patients", str(data_dir / "radiomics/hn1/HN_ClinicalData.csv"),
                  "--out", str(run)), "is a graphonc run folder, not an output of `embed`")
    assert _snapshot(run) == before
    out = tmp_path / "emb"
    argv = ["embed", "--run", str(run), "--patients", str(data_dir / "radiomics/hn1/HN_ClinicalData.csv"),
            "--out", str(out)]
    assert _cli_files(*argv).exit_code == 0
    assert lineage.read(out)["stage"] == "embed"
    res = _cli_files(*argv)  # its own earlier output is replaced
    assert res.exit_code == 0, res.output


# --------------------------------------------------------------------------- item 3: lineage


@pytest.fixture(scope="module")
def mixed(configs, trained, tmp_path_factory) -> Path:
    """Run B (the other graph) holding A's model and index, as a copy by hand or an older graphonc leaves it."""
    root = tmp_path_factory.mktemp("mixed") / "hn1"
    build_run(configs[1], root)
    for stage in ("model", "index"):
        shutil.copytree(trained / stage, root / stage)
    return root


@pytest.mark.parametrize("command", ["index", "similar", "explain", "report", "embed", "export"])
def test_every_consumer_refuses_a_model_of_another_graph(command, mixed, tmp_path, data_dir):
    patient = GraphRun.open(mixed).nodes("Patient")["id"].iloc[0]
    argv = {"index": ["index", "--run", str(mixed)],
            "similar": ["similar", "--run", str(mixed), "--patient", patient],
            "explain": ["explain", "--run", str(mixed), "--patient", patient],
            "report": ["report", "--run", str(mixed), "--patient", patient, "--out", str(tmp_path / "r.html")],
            "embed": ["embed", "--run", str(mixed), "--patients", str(data_dir / "radiomics/hn1/HN_ClinicalData.csv")],
            "export": ["export", "--run", str(mixed), "--format", "npy"]}[command]
    before = _snapshot(mixed)
    _refused(_cli_files(*argv), str(mixed / "model"), "made by `train` from another version of the graph",
             f"rerun `graphonc train --run {mixed}`")
    assert _snapshot(mixed) == before
    assert not (tmp_path / "r.html").exists()


def test_an_index_of_other_embeddings_names_index_as_the_stage_to_rerun(configs, trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    from graphonc.model.stages import train_stage

    train_stage(run, seed=7)  # a retrained model (another seed): other embeddings, same graph
    patient = GraphRun.open(run).nodes("Patient")["id"].iloc[0]
    _refused(_cli_files("similar", "--run", str(run), "--patient", patient), str(run / "index"),
             "made by `index`", f"rerun `graphonc index --run {run}`")
    assert _cli_files("index", "--run", str(run)).exit_code == 0
    assert _cli_files("similar", "--run", str(run), "--patient", patient).exit_code == 0


def test_a_stage_without_lineage_is_refused(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "model" / "lineage.json").unlink()
    _refused(_cli_files("index", "--run", str(run)), "no lineage.json", "cannot tell which graph",
             f"rerun `graphonc train --run {run}`")


def test_a_rebuild_never_deletes_its_own_inputs(trained, tmp_path, data_dir):
    """An input kept inside the run folder (a features table extracted into it, say) would vanish
    with the old run: refused even with --force."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    shutil.copy(data_dir / "radiomics/hn1/HN_Radiomics.csv", run / "features.csv")
    cfg = _config(tmp_path, "inside.yaml", lambda d: d["radiomics"]["features"].update(path=str(run / "features.csv")))
    before = _snapshot(run)
    _refused(_cli_files("build-graph", "--config", str(cfg), "--out", str(run), "--force"),
             f"this build reads {run / 'features.csv'} from inside the run folder")
    assert _snapshot(run) == before


@pytest.mark.slow
def test_a_rebuild_while_train_runs_leaves_no_model_of_the_old_graph(configs, tmp_path, monkeypatch):
    """The rebuild lands between train reading the graph and writing model/: train refuses to write."""
    from graphonc.model import stages

    run = tmp_path / "run"
    build_run(configs[0], run)
    real_fit = stages.fit_model

    def fit_then_rebuild(*args, **kwargs):
        fit = real_fit(*args, **kwargs)
        build_run(configs[1], run)  # someone rebuilds the run meanwhile
        return fit

    monkeypatch.setattr(stages, "fit_model", fit_then_rebuild)
    with pytest.raises(StaleStageError, match="changed while `train` ran") as err:
        stages.train_stage(run)
    assert f"graphonc train --run {run}" in str(err.value)
    assert not (run / "model").exists()
    assert not [p for p in run.iterdir() if p.name.startswith(".")]
    assert GraphRun.open(run).manifest["config_file"] == "b.yaml"


def test_stages_record_what_they_consumed(trained):
    graph = lineage.graph_digest(GraphRun.open(trained).manifest)
    model = lineage.read(trained / "model")
    assert model["stage"] == "train" and model["consumed"] == {"graph": graph}
    index = lineage.read(trained / "index")
    assert index["consumed"] == {"graph": graph,
                                 "model/embeddings.parquet": lineage.sha256_file(trained / "model/embeddings.parquet")}
    assert lineage.check(trained, trained / "index", rerun="graphonc index --run {run}")["stage"] == "index"


# --------------------------------------------------------------------------- item 3: report names


def test_report_names_are_distinct_and_reversible():
    ids = ["a/b", "a_b", "a%2Fb", "a b", "A", ".hidden", "..", ".", "x.html", "MB-0001", "é", "a\\b", "~x"]
    names = [report_file_name(i) for i in ids]
    assert len(set(names)) == len(ids)
    assert names[:2] == ["a%2Fb.html", "a_b.html"]
    for i, n in zip(ids, names):
        assert patient_of_report(n) == i
        assert "/" not in n and not n.startswith(".") and n.endswith(".html")
        assert all(c.isascii() and (c.isalnum() or c in "._-%") for c in n)
    with pytest.raises(GraphoncError, match="too long for a file name"):
        report_file_name("\U00010000" * 30)  # 30 × 12 bytes once encoded


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=20), min_size=2, max_size=5, unique=True))  # 20 × 12 bytes fit a name
def test_report_names_never_collide(ids):
    names = [report_file_name(i) for i in ids]
    assert len(set(names)) == len(names)
    assert [patient_of_report(n) for n in names] == ids


def test_default_report_path_uses_the_encoding(trained, tmp_path):
    from graphonc.report.html import write_report

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    patient = GraphRun.open(run).nodes("Patient")["id"].iloc[0]
    path = write_report(run, patient, explain=False)
    assert path == run / "reports" / report_file_name(patient)
    assert patient_of_report(path.name) == patient
    claim_file(path)  # ours: may be rewritten


# --------------------------------------------------------------------------- item 5: leftovers


def test_leftovers_of_killed_stages_are_cleaned_and_nothing_else(configs, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    legacy = runs / ".metabric.tmp-xyz"  # an older graphonc's temp folder (no pid in the name)
    (legacy / "graph").mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed = runs / f".metabric.tmp-{int(dead.stdout)}-abcd1234"  # its process is gone
    killed.mkdir()
    parked = runs / f".metabric.old-{int(dead.stdout)}-1700000000"
    parked.mkdir()
    alive = runs / f".metabric.tmp-{os.getppid()}-live0000"  # a live process's: still being written
    alive.mkdir()
    notes = runs / ".metabric.notes"
    notes.write_text("mine")
    other = runs / ".other.tmp-xyz"  # another output's leftover: cleaned when that output is written
    other.mkdir()
    build_run(configs[0], runs / "metabric")
    left = sorted(p.name for p in runs.iterdir())
    assert left == sorted(["metabric", alive.name, ".metabric.notes", ".other.tmp-xyz"])
    assert notes.read_text() == "mine"


def test_a_run_parked_by_a_process_killed_mid_swap_is_put_back(configs, tmp_path):
    """Killed between its two renames, a rebuild leaves no run but the old one parked as .old-:
    the next write puts it back instead of deleting it, so the run's later stages still count."""
    runs = tmp_path / "runs"
    build_run(configs[0], runs / "hn1")
    (runs / "hn1" / "model").mkdir()  # a later stage
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (runs / "hn1").rename(runs / f".hn1.old-{pid}-1")
    (runs / f".hn1.tmp-{pid}-new00000").mkdir()  # the new, complete one never renamed into place
    res = _cli_files("build-graph", "--config", str(configs[1]), "--out", str(runs / "hn1"))
    assert res.exit_code == 2 and "put back the last complete version" in res.output
    assert "the run holds later stages made from its current graph (model/)" in " ".join(res.output.split())
    assert (runs / "hn1" / "model").is_dir() and GraphRun.open(runs / "hn1").manifest["config_file"] == "a.yaml"
    assert sorted(p.name for p in runs.iterdir()) == [f".hn1.tmp-{pid}-new00000", "hn1"]  # a refusal removes nothing
    assert _cli_files("build-graph", "--config", str(configs[1]), "--out", str(runs / "hn1"), "--force").exit_code == 0
    assert sorted(p.name for p in runs.iterdir()) == ["hn1"]  # the write that went ahead cleaned up


def test_a_leftover_newer_than_the_run_is_kept(tmp_path):
    import time

    (tmp_path / ".x.tmp-abc").mkdir()
    assert clean_leftovers(tmp_path / "x", started=time.time() - 3600) == []
    assert [p.name for p in clean_leftovers(tmp_path / "x")] == [".x.tmp-abc"]


# --------------------------------------------------------------------------- item 6: permissions


def _modes(root: Path) -> tuple[set[int], set[int]]:
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    return ({mode(p) for p in [root, *root.rglob("*")] if p.is_dir()},
            {mode(p) for p in root.rglob("*") if p.is_file()})


@pytest.fixture()
def permissive_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.slow
def test_runs_are_owner_only_whatever_the_umask(configs, tmp_path, permissive_umask):
    from graphonc.model.stages import train_stage
    from graphonc.report.html import write_report

    run = tmp_path / "new" / "runs" / "hn1"
    build_run(configs[0], run)
    train_stage(run)  # model/ with plots/ written by matplotlib, not through atomic_file
    assert _cli_files("index", "--run", str(run)).exit_code == 0
    write_report(run, GraphRun.open(run).nodes("Patient")["id"].iloc[0], explain=False)
    assert (run / "model" / "plots").is_dir() and (run / "reports").is_dir()
    assert _modes(run) == ({0o700}, {0o600})
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700  # parents graphonc had to create
    assert GraphRun.open(run).manifest["permissions"] == {"folders": "0700", "files": "0600"}


@pytest.mark.slow
def test_the_config_widens_permissions(configs, tmp_path, permissive_umask):
    from graphonc.model.stages import train_stage

    cfg = _config(tmp_path, "group.yaml", lambda d: d.update(permissions={"folders": "0750", "files": "0640"}))
    run = tmp_path / "hn1"
    build_run(cfg, run)
    train_stage(run)  # later stages follow the modes the run recorded
    assert _modes(run) == ({0o750}, {0o640})
    # the setting does not change what is built
    from graphonc.config import load_config

    assert load_config(cfg).hash() == load_config(configs[0]).hash()


@pytest.mark.parametrize("perms, fragment", [
    ({"folders": "0777", "files": "0600"}, "writable by everyone"),
    ({"folders": "0500", "files": "0600"}, "owner's rwx"),
    ({"folders": "0700", "files": "0755"}, "not executable"),
    ({"folders": 488, "files": "0600"}, "quoted string"),
])
def test_unsafe_permissions_are_refused_by_the_config(perms, fragment, tmp_path):
    from graphonc.config import load_config

    cfg = _config(tmp_path, "bad.yaml", lambda d: d.update(permissions=perms))
    with pytest.raises(ConfigError, match=fragment):
        load_config(cfg)


def test_refusals_are_graphonc_errors(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(GraphoncError):
        claim_file(tmp_path)


# ================================================================================================
# Output is data, never markup (item 4)
# ================================================================================================

MATH_ID = "MB$\\foo$X"  # mathtext: matplotlib raised on this in a plot title
CLOSE_ID = "MB[/]01"  # a rich closing tag with nothing to close: MarkupError
LINK_ID = "[link=https://evil.example/]MB02[/link]"
BOLD_ID = "[bold red]MB03[/]:smile:"
CLEAR = "\x1b[2J"  # clears the screen
HYPERLINK = "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"  # OSC 8 hyperlink
LABELS = {"Basal": f"Basal{CLEAR}", "LumA": f"LumA{HYPERLINK}", "Her2": "Her2[/]", "LumB": "LumB<script>x</script>"}


def _cli_output(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
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
    train_stage(root / "run", hidden=16, embedding_dim=8, epochs=6, patience=6, ensemble=1)
    build_index(root / "run", "flat", device="cpu")
    return GraphRun.open(root / "run"), ids


def _no_escape_codes(text: str) -> None:
    assert "\x1b" not in text and "\x9b" not in text, repr(text[:500])


@pytest.mark.slow
def test_similar_shows_ids_and_labels_literally(hostile_ids):
    run, ids = hostile_ids
    for pid in ids.values():
        res = _cli_output("similar", "--run", str(run.root), "--patient", pid, "-k", "5", "--device", "cpu")
        assert res.returncode == 0, res.stderr
        _no_escape_codes(res.stdout + res.stderr)
        assert f"most similar to {pid}" in res.stdout
    # the labels, their escape codes shown as text, in a neighbour table
    res = _cli_output("similar", "--run", str(run.root), "--patient", MATH_ID, "-k", "40", "--device", "cpu")
    assert res.returncode == 0, res.stderr
    _no_escape_codes(res.stdout)
    assert "Basal\\x1b[2J" in res.stdout or "LumA\\x1b]8;;https://evil.example/\\x1b\\click" in res.stdout
    # JSON: the exact values
    res = _cli_output("similar", "--run", str(run.root), "--patient", CLOSE_ID, "--patient", LINK_ID, "-k", "300",
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
        res = _cli_output("similar", "--run", str(run.root), "--patient", bad, "--device", "cpu")
        assert res.returncode == 2, res.stderr
        assert "Traceback" not in res.stderr
        _no_escape_codes(res.stderr)
        shown = bad.replace("\x1b", "\\x1b")
        assert shown in res.stderr.replace("\\\\", "\\"), res.stderr
        assert res.stderr.startswith("error: ")


@pytest.mark.slow
def test_explain_and_report_render_hostile_ids(hostile_ids, tmp_path):
    run, _ = hostile_ids
    res = _cli_output("explain", "--run", str(run.root), "--patient", LINK_ID, "--steps", "4", "--top", "3")
    assert res.returncode == 0, res.stderr
    _no_escape_codes(res.stdout)
    assert f"{LINK_ID}: risk" in res.stdout
    out = tmp_path / "report.html"
    res = _cli_output("report", "--run", str(run.root), "--patient", MATH_ID, "--out", str(out), "--no-explain", "-k", "5")
    assert res.returncode == 0, res.stderr  # the KM plot's title holds the id: no mathtext
    html = out.read_text(encoding="utf-8")
    assert MATH_ID in html and "<svg" in html  # the survival curves, drawn with the id in their page
    assert "&lt;b&gt;[bold]1[/bold]&lt;/b&gt;" in html and "<b>[bold]" not in html  # HTML escaped, not markup
    assert "<script>x</script>" not in html


def test_matplotlib_draws_dollar_ids(tmp_path):
    """Text from data is never mathtext (it raised ValueError on MB$\\foo$X)."""
    import numpy as np

    import matplotlib

    from graphonc.plots.search import embedding_map

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
def test_cypher_run_shows_results_literally(hostile_ids, neo4j_settings, tmp_path, request):
    from graphonc.store.neo4j_load import load_run

    run, ids = hostile_ids
    load_run(run, neo4j_settings)
    request.addfinalizer(lambda: drop_cohorts(neo4j_settings, [run.cohort]))  # other tests count the cohorts
    q = tmp_path / "odd_ids.cypher"
    q.write_text("// Patients with odd ids\n// @param cohort: str  cohort\n"
                 "MATCH (p:Patient {cohort: $cohort}) WHERE NOT p.id STARTS WITH 'MB-'\n"
                 "RETURN p.id AS id, p.label AS label ORDER BY id\n", encoding="utf-8")
    env = {"NEO4J_URI": neo4j_settings.uri, "NEO4J_USER": neo4j_settings.user,
           "NEO4J_PASSWORD": neo4j_settings.password}
    res = _cli_output("cypher", "run", str(q), "-p", f"cohort={run.cohort}", env=env)
    assert res.returncode == 0, res.stderr
    _no_escape_codes(res.stdout)
    for pid in ids.values():
        assert pid in res.stdout
    res = _cli_output("cypher", "run", str(q), "-p", f"cohort={run.cohort}", "--json", env=env)
    assert res.returncode == 0, res.stderr
    _no_escape_codes(res.stdout)
    assert sorted(r["id"] for r in json.loads(res.stdout)) == sorted(ids.values())
    p = run.nodes(S.PATIENT).set_index(S.ID)
    assert {r["id"]: r["label"] for r in json.loads(res.stdout)} == {i: p.loc[i, "label"] for i in ids.values()}
