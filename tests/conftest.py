"""Shared fixtures: real data from ../shared/data, runs built once per test session."""
from __future__ import annotations

import importlib.util
import secrets
import shutil
from pathlib import Path

import pytest

from graphonc.graph.build import build_run
from graphonc.graph.run import GraphRun
from graphonc.store import neo4j_server as ns
from graphonc.store.neo4j_load import Neo4jSettings

REPO = Path(__file__).resolve().parents[1]


def load_script(name: str):
    """The module of ``scripts/<name>.py`` (the benchmark scripts are not part of the package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
DATA = (REPO.parent / "shared" / "data").resolve()
CONFIGS = REPO / "configs"


#: Fixtures that start the real Neo4j server: a test using one needs Neo4j whatever its markers say.
NEO4J_FIXTURES = {"neo4j_local", "neo4j_server", "neo4j_settings"}


def pytest_collection_modifyitems(config, items):
    if not DATA.is_dir():  # fail loudly rather than skip: the suite is about real data
        raise pytest.UsageError(f"real data folder {DATA} not found (expected ../shared/data beside the repo)")
    # The fast tier (`pytest -m "not slow"`) must run without a Neo4j server: a test that needs
    # one is `neo4j` and therefore `slow`, whether it is marked or only uses a server fixture.
    for item in items:
        if item.get_closest_marker("neo4j") or NEO4J_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.neo4j)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def metabric_run(tmp_path_factory) -> GraphRun:
    out = tmp_path_factory.mktemp("runs") / "metabric"
    build_run(CONFIGS / "metabric.yaml", out)
    return GraphRun.open(out)


@pytest.fixture(scope="session")
def prostate_run(tmp_path_factory) -> GraphRun:
    out = tmp_path_factory.mktemp("runs") / "prostate"
    build_run(CONFIGS / "prostate_msk_2024.yaml", out)
    return GraphRun.open(out)


#: Small, quick model settings for tests that need a trained model (not for quality claims).
FAST_MODEL = dict(hidden=32, embedding_dim=16, epochs=25, patience=25, ensemble=1)


@pytest.fixture(scope="session")
def metabric_trained(metabric_run, tmp_path_factory) -> tuple[GraphRun, dict]:
    """A copy of the METABRIC run with a quickly trained model in <run>/model; (run, train metrics)."""
    from graphonc.model.stages import train_stage

    root = tmp_path_factory.mktemp("trained") / "metabric"
    shutil.copytree(metabric_run.root, root)
    metrics = train_stage(root, **FAST_MODEL)
    return GraphRun.open(root), metrics


def indexed_copy(run: GraphRun, folder: Path) -> GraphRun:
    """A copy of a trained run in ``folder`` (without derived outputs) with its own ``auto`` index (CPU)."""
    from graphonc.search.index import build_index

    root = folder / run.root.name
    shutil.copytree(run.root, root, ignore=shutil.ignore_patterns("index", "eval", "reports", "export", "similarity"))
    build_index(root, "auto", device="cpu")
    return GraphRun.open(root)


def _two_free_ports() -> tuple[int, int]:
    a = ns.free_port()
    b = ns.free_port()
    while b == a:
        b = ns.free_port()
    return a, b


@pytest.fixture(scope="session")
def neo4j_local(tmp_path_factory):
    """A started server on free ports in a temp folder, with a random password; stopped at the end."""
    bolt, http = _two_free_ports()
    cfg = ns.Neo4jServerConfig(data_dir=tmp_path_factory.mktemp("neo4j"), bolt_port=bolt, http_port=http,
                               password=secrets.token_urlsafe(16))
    status = ns.start(cfg, timeout=180)
    yield cfg, status
    ns.stop(cfg)


@pytest.fixture(scope="session")
def neo4j_server(neo4j_local) -> ns.ServerStatus:
    return neo4j_local[1]


@pytest.fixture(scope="session")
def neo4j_settings(neo4j_local) -> Neo4jSettings:
    cfg, status = neo4j_local
    return Neo4jSettings(uri=status.bolt_uri, user="neo4j", password=cfg.password)


def drop_cohorts(settings: Neo4jSettings, cohorts) -> None:
    """Remove every node (and so every relationship) of ``cohorts`` from the session's server: a test
    that loads a cohort of its own leaves the database as the other Neo4j tests expect it."""
    with settings.driver() as driver, driver.session(database=settings.database) as session:
        for cohort in cohorts:
            session.run("MATCH (n {cohort: $c}) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS",
                        c=cohort).consume()
