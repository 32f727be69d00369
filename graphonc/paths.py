"""Paths written in config files: ``$VAR`` / ``${VAR}`` and ``~`` expanded, relative to the file.

Shared by cohort configs (:mod:`graphonc.config`) and radiomics parameter files
(:mod:`graphonc.radiomics_config`), so an unset variable is the same one-line error in both.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

from graphonc.errors import ConfigError

_VAR = re.compile(r"\$(?:\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def expand_vars(text: str) -> str:
    """``$VAR`` / ``${VAR}`` replaced from the environment; an unset one is a ConfigError naming it."""
    def sub(m: re.Match) -> str:
        name = m.group(1) if m.group(1) is not None else m.group(2)
        if name not in os.environ:
            raise ConfigError(f"path {text!r} uses ${{{name}}}, which is not set in the environment. "
                              f"Fix: export {name}=... before running, or write the path out in the config.")
        return os.environ[name]

    return _VAR.sub(sub, text)


def resolve_against(base: Path) -> Callable[[Path | None], Path | None]:
    """A path resolver relative to ``base`` (environment variables and ``~`` expanded)."""

    def res(p: Path | None) -> Path | None:
        if p is None:
            return None
        p = Path(expand_vars(str(p))).expanduser()
        return p if p.is_absolute() else (base / p).resolve()

    return res
