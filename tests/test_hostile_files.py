"""Careless hands on the file system (issue 13, items 2, 3, 5 and 6), on the real HN1 cohort.

* ``--out`` never replaces what graphonc did not write: the input study folder, a file, an
  unrelated folder are refused (exit 2, one line, byte-for-byte untouched); an empty folder is
  accepted; rebuilding a run with later stages needs ``--force``.
* Patient mix-ups: every stage records the sha256 of what it consumed; a model, index or
  embeddings made from another graph are refused by every consumer, naming the stage to rerun;
  a rebuild while ``train`` runs does not leave a model of one graph in a run of another.
  Report file names are distinct per id and decode back.
* Leftovers of killed stages (``.<name>.tmp-*``, ``.<name>.old-*``) are removed by the next run,
  nothing else is.
* Runs are owner-only (0700/0600) whatever the umask; the config's ``permissions:`` widens them.

HN1 builds in about two seconds and trains a tiny model in a few more, so the graphs here are
real graphs: A is configs/hn1.yaml, B the same cohort with one display column fewer (another
Patient table, hence another graph).
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import CONFIGS
from graphonc.cli import app
from graphonc.errors import ConfigError, GraphoncError
from graphonc.graph import lineage
from graphonc.graph.build import build_run
from graphonc.graph.lineage import StaleStageError
from graphonc.graph.outputs import claim_file, clean_leftovers
from graphonc.graph.run import GraphRun
from graphonc.report.names import patient_of_report, report_file_name

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


def _cli(*args: str):
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
    _refused(_cli("build-graph", "--config", str(cfg), "--out", str(study)), str(study),
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
    _refused(_cli(*argv, "--out", str(a_file)), "is a file, not a folder")
    assert a_file.read_text() == "my notes\n"
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "data.csv").write_text("a,b\n1,2\n")
    before = _snapshot(folder)
    _refused(_cli(*argv, "--out", str(folder)), "exists and is not a graphonc", "'sub'")
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
    _refused(_cli(*argv, "--out", str(target)), "exists and was not written by graphonc")
    assert target.read_bytes() == b"someone else's file\n"
    # a file graphonc wrote is replaced
    target.unlink()
    assert _cli(*argv, "--out", str(target)).exit_code == 0
    first = target.stat().st_mtime_ns
    res = _cli(*argv, "--out", str(target))
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
    _refused(_cli(*argv, "--out", str(run / where)), f"lies in {area}, which graphonc manages")
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
    res = _cli("build-graph", "--config", str(configs[0]), "--out", str(out))
    assert res.exit_code == 0, res.output
    assert GraphRun.open(out).cohort == "hn1"


@pytest.mark.slow
def test_rebuilding_a_trained_run_needs_force(configs, trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "reports").mkdir()
    (run / "reports" / "x.html").write_text("kept")
    before = _snapshot(run)
    flat = _refused(_cli("build-graph", "--config", str(configs[1]), "--out", str(run)), "--force",
                    "index/", "model/", "reports/")
    assert "graph/" not in flat and "manifest.json" not in flat  # what build-graph writes is not a "later stage"
    assert _snapshot(run) == before
    res = _cli("build-graph", "--config", str(configs[1]), "--out", str(run), "--force")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "graph", "manifest.json", "radiomics"]
    # a run without later stages is rebuilt without --force
    res = _cli("build-graph", "--config", str(configs[0]), "--out", str(run))
    assert res.exit_code == 0, res.output


def test_embed_out_over_another_kind_of_graphonc_folder_is_refused(trained, tmp_path, data_dir):
    """A run is a graphonc folder, but not an embed output: embed --out <run> must not replace it."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    before = _snapshot(run)
    _refused(_cli("embed", "--run", str(run), "--patients", str(data_dir / "radiomics/hn1/HN_ClinicalData.csv"),
                  "--out", str(run)), "is a graphonc run folder, not an output of `embed`")
    assert _snapshot(run) == before
    out = tmp_path / "emb"
    argv = ["embed", "--run", str(run), "--patients", str(data_dir / "radiomics/hn1/HN_ClinicalData.csv"),
            "--out", str(out)]
    assert _cli(*argv).exit_code == 0
    assert lineage.read(out)["stage"] == "embed"
    res = _cli(*argv)  # its own earlier output is replaced
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
    _refused(_cli(*argv), str(mixed / "model"), "made by `train` from another version of the graph",
             f"rerun `graphonc train --run {mixed}`")
    assert _snapshot(mixed) == before
    assert not (tmp_path / "r.html").exists()


def test_an_index_of_other_embeddings_names_index_as_the_stage_to_rerun(configs, trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    from graphonc.model.stages import train_stage

    train_stage(run, seed=7)  # a retrained model (another seed): other embeddings, same graph
    patient = GraphRun.open(run).nodes("Patient")["id"].iloc[0]
    _refused(_cli("similar", "--run", str(run), "--patient", patient), str(run / "index"),
             "made by `index`", f"rerun `graphonc index --run {run}`")
    assert _cli("index", "--run", str(run)).exit_code == 0
    assert _cli("similar", "--run", str(run), "--patient", patient).exit_code == 0


def test_a_stage_without_lineage_is_refused(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "model" / "lineage.json").unlink()
    _refused(_cli("index", "--run", str(run)), "no lineage.json", "cannot tell which graph",
             f"rerun `graphonc train --run {run}`")


def test_a_rebuild_never_deletes_its_own_inputs(trained, tmp_path, data_dir):
    """An input kept inside the run folder (a features table extracted into it, say) would vanish
    with the old run: refused even with --force."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    shutil.copy(data_dir / "radiomics/hn1/HN_Radiomics.csv", run / "features.csv")
    cfg = _config(tmp_path, "inside.yaml", lambda d: d["radiomics"]["features"].update(path=str(run / "features.csv")))
    before = _snapshot(run)
    _refused(_cli("build-graph", "--config", str(cfg), "--out", str(run), "--force"),
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
    res = _cli("build-graph", "--config", str(configs[1]), "--out", str(runs / "hn1"))
    assert res.exit_code == 2 and "put back the last complete version" in res.output
    assert "the run holds later stages made from its current graph (model/)" in " ".join(res.output.split())
    assert (runs / "hn1" / "model").is_dir() and GraphRun.open(runs / "hn1").manifest["config_file"] == "a.yaml"
    assert sorted(p.name for p in runs.iterdir()) == [f".hn1.tmp-{pid}-new00000", "hn1"]  # a refusal removes nothing
    assert _cli("build-graph", "--config", str(configs[1]), "--out", str(runs / "hn1"), "--force").exit_code == 0
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
    assert _cli("index", "--run", str(run)).exit_code == 0
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
