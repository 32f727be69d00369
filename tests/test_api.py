"""graphonc.api is the one Python API under the command line.

* every command's ``--help`` shows an example;
* graphonc/cli.py and graphonc/cli_radiomics.py reach the stages only through graphonc.api (read with ``ast``);
* a notebook-style session on METABRIC (build → train → index → similar) gives the command line's result.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from graphonc import api
from graphonc.cli import app

PACKAGE = Path(__file__).resolve().parents[1] / "graphonc"
CONFIGS = PACKAGE.parent / "configs"

#: What the command-line modules may import from graphonc: the api, the shared CLI code and the
#: foundation; the web service (``serve``, ``report --new-patient``) is their own layer.
CLI_MAY_IMPORT = ("graphonc.api", "graphonc.cli_common", "graphonc.errors", "graphonc.threads",
                  "graphonc.cli_radiomics", "graphonc.serve")


def _commands(group, prefix: tuple[str, ...] = ()):
    for name, cmd in sorted(group.commands.items()):
        if hasattr(cmd, "commands"):  # a command group (typer may use its own click)
            yield from _commands(cmd, prefix + (name,))
        else:
            yield prefix + (name,)


def test_every_command_help_shows_an_example():
    root = typer.main.get_command(app)
    commands = list(_commands(root))
    assert ("similar",) in commands and ("radiomics", "extract") in commands and ("neo4j", "start") in commands
    runner = CliRunner()
    missing = []
    for path in commands:
        res = runner.invoke(app, [*path, "--help"], terminal_width=200)
        assert res.exit_code == 0, (path, res.output)
        if "Example:" not in res.output or "$ graphonc " + " ".join(path) not in res.output:
            missing.append(" ".join(path))
    assert not missing, f"--help without an example of the command: {missing}"


def _graphonc_imports(path: Path) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out += [(f"{node.module}.{a.name}" if node.module == "graphonc" else node.module, node.lineno)
                    for a in node.names]
    return [(m, n) for m, n in out if m == "graphonc" or m.startswith("graphonc.")]


@pytest.mark.parametrize("module", ["cli.py", "cli_radiomics.py"])
def test_the_cli_reaches_the_stages_only_through_the_api(module):
    imports = _graphonc_imports(PACKAGE / module)
    assert ("graphonc.api", imports[0][1]) in imports or any(m == "graphonc.api" for m, _ in imports)
    stray = [f"{m} (line {n})" for m, n in imports
             if not any(m == ok or m.startswith(ok + ".") for ok in CLI_MAY_IMPORT)]
    assert not stray, f"graphonc/{module} imports stage modules directly: {stray}; call graphonc.api instead"


def test_the_import_check_sees_stage_imports():
    """The checker above reads lazy imports inside functions too (so it can fail)."""
    src = "def f():\n    from graphonc.search.similar import similar_patients\n"
    tree_imports = [(node.module, node.lineno) for node in ast.walk(ast.parse(src)) if isinstance(node, ast.ImportFrom)]
    assert tree_imports == [("graphonc.search.similar", 2)]


def test_every_api_function_is_documented_with_an_example():
    public = [n for n in dir(api) if not n.startswith("_") and callable(getattr(api, n))
              and getattr(getattr(api, n), "__module__", "") == "graphonc.api" and not isinstance(getattr(api, n), type)]
    assert {"build_graph", "info", "train", "evaluate", "embed", "explain", "index", "similar", "report", "export",
            "evaluate_similarity", "load_neo4j", "radiomics_extract", "radiomics_phenotype",
            "radiomics_assign"} <= set(public)
    undocumented = [n for n in public if not (getattr(api, n).__doc__ or "").strip()]
    assert not undocumented, undocumented
    stages = ["build_graph", "info", "train", "evaluate", "embed", "explain", "index", "similar", "report", "export",
              "evaluate_similarity", "load_neo4j", "radiomics_extract", "radiomics_phenotype", "radiomics_assign"]
    no_example = [n for n in stages if "Example::" not in getattr(api, n).__doc__]
    assert not no_example, no_example


@pytest.mark.slow
def test_python_api_matches_the_cli_on_metabric(tmp_path):
    """build → train (2 epochs) → index → similar, once from Python and once through the CLI, in two
    run folders: the same graph, the same embeddings, the same neighbours and reasons."""
    a, b = tmp_path / "api", tmp_path / "cli"
    manifest = api.build_graph(CONFIGS / "metabric.yaml", a)
    metrics = api.train(a, epochs=2, device="cpu")
    idx = api.index(a, device="cpu")
    results = api.similar(a, ["MB-0005", "MB-0010"], k=5, device="cpu")

    runner = CliRunner()
    for argv in (["build-graph", "--config", str(CONFIGS / "metabric.yaml"), "--out", str(b)],
                 ["train", "--run", str(b), "--epochs", "2", "--device", "cpu"],
                 ["index", "--run", str(b), "--device", "cpu"]):
        res = runner.invoke(app, ["-q", *argv])
        assert res.exit_code == 0, (argv, res.output)
    res = runner.invoke(app, ["-q", "similar", "--run", str(b), "-p", "MB-0005", "-p", "MB-0010", "-k", "5",
                              "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    cli_results = json.loads(res.output)

    assert manifest["counts"] == api.info(b).manifest["counts"]
    assert manifest["table_sha256"] == api.info(b).manifest["table_sha256"]
    assert metrics["epochs_run"] == 2 and idx.n == manifest["counts"]["nodes"]["Patient"]
    ea = pd.read_parquet(api.open_run(a).layout.embeddings)
    eb = pd.read_parquet(api.open_run(b).layout.embeddings)
    assert ea["id"].tolist() == eb["id"].tolist()
    assert all((x == y).all() for x, y in zip(ea["embedding"], eb["embedding"]))

    mine = json.loads(json.dumps([r.to_dict() for r in results], default=str))
    assert [r["query"]["id"] for r in mine] == ["MB-0005", "MB-0010"]
    assert all(len(r["neighbours"]) == 5 for r in mine)
    assert mine == cli_results


def test_run_is_an_option_everywhere_and_k_means_neighbours(metabric_run, tmp_path):
    runner = CliRunner()
    by_option = runner.invoke(app, ["info", "--run", str(metabric_run.root)], terminal_width=200)
    by_position = runner.invoke(app, ["info", str(metabric_run.root)], terminal_width=200)
    assert by_option.exit_code == by_position.exit_code == 0, by_option.output
    assert by_option.output == by_position.output and "Patient" in by_option.output
    got = api.info(metabric_run.root)
    assert got.manifest["counts"] == metabric_run.manifest["counts"] and got.graph_stats is None
    # load-neo4j: --run like every command (the positional form kept); both or neither is refused before connecting
    for argv in (["load-neo4j"], ["load-neo4j", str(metabric_run.root), "--run", str(metabric_run.root)]):
        res = runner.invoke(app, argv)
        assert res.exit_code == 2 and "give the run folder once" in res.output, res.output
    # -k is a number of neighbours; folds are --folds (evaluate no longer takes -k)
    res = runner.invoke(app, ["evaluate", "--run", str(metabric_run.root), "-k", "3"])
    assert res.exit_code == 2 and "No such option" in res.output
