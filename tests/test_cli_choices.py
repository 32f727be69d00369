"""The CLI's choice lists match the values the modules behind them accept.

The Typer enums live in the CLI modules, which import no NumPy/pandas/FAISS at start-up (the
commands import their stage lazily, so `graphonc --help` stays fast); this test keeps the two
lists from drifting apart.
"""
from __future__ import annotations

import typing

from graphonc import cli
from graphonc.export import FORMATS, PROJECTIONS
from graphonc import cli_radiomics as radiomics_cli
from graphonc.radiomics_config import FeatureTableSpec, GeometrySpec
from graphonc.search.index import DEVICES, KINDS


def _values(choice) -> tuple[str, ...]:
    return tuple(member.value for member in choice)


def test_cli_choices_match_the_modules():
    assert _values(cli.IndexKind) == KINDS
    assert _values(cli.SearchDevice) == DEVICES
    assert _values(cli.ExportFormat) == FORMATS
    assert _values(cli.Projection) == PROJECTIONS
    assert _values(radiomics_cli.OnMismatch) == typing.get_args(GeometrySpec.model_fields["on_mismatch"].annotation)
    assert _values(radiomics_cli.Aggregate) == typing.get_args(FeatureTableSpec.model_fields["aggregate"].annotation)


def test_the_cli_imports_no_numerical_stack_at_start_up():
    import subprocess
    import sys

    code = ("import sys, graphonc.cli; "
            "print(sorted(m for m in ('numpy', 'pandas', 'faiss', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
