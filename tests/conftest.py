"""Shared fixtures: real data from ../shared/data, runs built once per test session."""
from __future__ import annotations

from pathlib import Path

import pytest

from graphonc.graph.build import build_run
from graphonc.graph.run import GraphRun

REPO = Path(__file__).resolve().parents[1]
DATA = (REPO.parent / "shared" / "data").resolve()
CONFIGS = REPO / "configs"


def pytest_collection_modifyitems(config, items):
    if not DATA.is_dir():  # fail loudly rather than skip: the suite is about real data
        raise pytest.UsageError(f"real data folder {DATA} not found (expected ../shared/data beside the repo)")


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
