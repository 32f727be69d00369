"""Hostile and careless input (issue #13, items 3 and 5): every case is refused with graphonc's own
error naming the file, the line and the column, exit code 2 through the real CLI and nothing
written; or accepted where it is harmless (a UTF-8 byte-order mark, a header-only MAF).

Every input starts as real data: a 60-patient cut of METABRIC (tests/cohort_files.py), the
plain-table cohort built from the same rows, the real Hallmark GMT and the real config, each
with one thing broken. Environment failures are real too: a full disk is a 64 KiB tmpfs in a
user namespace, permission denied is the CLI run as ``nobody``, Neo4j is the test server with a
wrong password or a closed port.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from graphonc.cli import app
from graphonc.config import load_config
from graphonc.errors import ConfigError, GraphoncError, InputError
from graphonc.graph.build import build_graph, build_run
from graphonc.store import neo4j_server as ns

from cohort_files import N_PATIENTS, file_lines, write_small_metabric
from conftest import CONFIGS, FAST_MODEL, REPO

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
