"""Parameterised Cypher files in ``cypher/``: header parsing and running.

A file starts with ``//`` comment lines: a title, what it answers, and one line per parameter::

    // @param patient_id: str  the query patient
    // @param limit: int = 25  rows to return

Values given on the command line are converted to the declared type (str, int, float, bool);
``null`` means no value. They are always sent as query parameters, never pasted into the text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neo4j import Driver

from graphonc.errors import GraphoncError

_PARAM = re.compile(r"^//\s*@param\s+(\w+)\s*:\s*(str|int|float|bool)\s*(?:=\s*(\S+))?\s*(.*)$")
_CASTS = {"str": str, "int": int, "float": float, "bool": lambda v: v.lower() in ("1", "true", "yes")}
_MISSING = object()


@dataclass
class Param:
    name: str
    type: str
    default: Any = _MISSING
    help: str = ""

    def cast(self, raw: str | None) -> Any:
        if raw is None or raw == "null":
            return None
        try:
            return _CASTS[self.type](raw)
        except ValueError:
            raise GraphoncError(f"parameter {self.name}: {raw!r} is not a {self.type}.") from None


@dataclass
class CypherFile:
    path: Path
    title: str
    description: str
    params: dict[str, Param] = field(default_factory=dict)
    statements: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, path: str | Path) -> "CypherFile":
        path = Path(path)
        if not path.exists():
            raise GraphoncError(f"{path}: Cypher file not found. Fix: see the files in cypher/.")
        lines = path.read_text(encoding="utf-8").splitlines()
        header = [ln for ln in lines if ln.startswith("//")]
        body = "\n".join(ln for ln in lines if not ln.startswith("//"))
        title = header[0].lstrip("/ ").strip() if header else path.stem
        desc = " ".join(ln.lstrip("/ ").strip() for ln in header[1:] if "@param" not in ln)
        params = {}
        for ln in header:
            m = _PARAM.match(ln)
            if m:
                name, typ, default, help_ = m.groups()
                p = Param(name, typ, help=help_.strip())
                if default is not None:
                    p.default = p.cast(default)
                params[name] = p
        stmts = [s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]
        return cls(path, title, desc, params, stmts)

    def bind(self, given: dict[str, str]) -> dict[str, Any]:
        """Typed parameter values; errors name missing and unknown parameters."""
        unknown = set(given) - set(self.params)
        if unknown:
            raise GraphoncError(f"{self.path.name}: unknown parameter(s) {sorted(unknown)}; "
                                f"it takes {sorted(self.params)}.")
        values = {}
        for name, p in self.params.items():
            if name in given:
                values[name] = p.cast(given[name])
            elif p.default is not _MISSING:
                values[name] = p.default
            else:
                raise GraphoncError(f"{self.path.name}: missing parameter {name!r} ({p.help}). "
                                    f"Fix: add --param {name}=VALUE.")
        return values

    def run(self, driver: Driver, params: dict[str, Any], database: str = "neo4j") -> tuple[list[str], list[list]]:
        """Run every statement; return (columns, rows) of the last one."""
        keys, rows = [], []
        for stmt in self.statements:
            res = driver.execute_query(stmt, parameters_=params, database_=database)
            keys, rows = list(res.keys), [list(r.values()) for r in res.records]
        return keys, rows


def parse_param_args(items: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` → dict; a value may itself contain '='."""
    out = {}
    for item in items:
        if "=" not in item:
            raise GraphoncError(f"--param {item!r}: expected NAME=VALUE.")
        k, v = item.split("=", 1)
        out[k.strip()] = v
    return out
