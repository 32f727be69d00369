"""The run folder: one Parquet file per node/edge type plus ``manifest.json``.

::

    runs/<name>/
      manifest.json                              version, config hash, input checksums, counts, timings
      config.yaml                                the config the run was built from, verbatim
      graph/nodes/<Label>.parquet                column ``id`` + properties
      graph/edges/<Src>__<TYPE>__<Dst>.parquet   columns ``src``, ``dst`` + properties

Every stage writes into a temporary sibling folder and renames it into place, so a crash
never leaves half a stage behind and the previous run stays intact until the new one is
complete.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import graphonc
from graphonc.errors import GraphoncError
from graphonc.graph import schema as S

MANIFEST = "manifest.json"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


#: The process's umask, read once at import (reading it means setting it, which is not thread-safe
#: later): temp files and folders get the mode an ordinary new file or folder would have.
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temp folder next to ``target``; on success it replaces ``target`` in one rename.

    On an exception the temp folder is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700: give it an ordinary new folder's mode
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}-{time.time_ns()}"
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yield a temp path next to ``target`` (same suffix, so writers can infer the format); on
    success it replaces ``target`` in one rename, with the permissions of an ordinary new file.

    On an exception the temp file is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Deterministic Parquet: no pandas index, fixed compression, no timestamps in metadata."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, path, compression="zstd", write_statistics=True)


def _node_path(root: Path, label: str) -> Path:
    return root / "graph" / "nodes" / f"{label}.parquet"


def _edge_path(root: Path, edge: S.EdgeType) -> Path:
    return root / "graph" / "edges" / f"{S.edge_name(edge)}.parquet"


def write_graph_run(out: Path, tables, cfg, config_text: str | None, seconds: float) -> dict:
    """Write a built graph (see :class:`graphonc.graph.build.GraphTables`) as a run folder.

    Returns the manifest.
    """
    with atomic_dir(out) as tmp:
        (tmp / "graph" / "nodes").mkdir(parents=True)
        (tmp / "graph" / "edges").mkdir(parents=True)
        hashes = {}
        for label, df in tables.nodes.items():
            p = _node_path(tmp, label)
            write_parquet(df, p)
            hashes[f"nodes/{label}"] = sha256_file(p)
        for edge, df in tables.edges.items():
            p = _edge_path(tmp, edge)
            write_parquet(df, p)
            hashes[f"edges/{S.edge_name(edge)}"] = sha256_file(p)
        if config_text is not None:
            (tmp / "config.yaml").write_text(config_text, encoding="utf-8")
        for rel, text in getattr(tables, "artifacts", {}).items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(text, encoding="utf-8")
        manifest = {
            "graphonc_version": graphonc.__version__,
            "stage": "build-graph",
            "cohort": cfg.cohort,
            "config_hash": cfg.hash(),
            "config_file": cfg.source_path.name if cfg.source_path else None,
            # where relative paths in config.yaml resolve (embedding new patients re-reads the config)
            "config_path": str(cfg.source_path) if cfg.source_path else None,
            "inputs": {f"{p.parent.name}/{p.name}": {"sha256": sha256_file(p), "bytes": p.stat().st_size}
                       for p in sorted(set(tables.files))},
            "counts": tables.counts(),
            "table_sha256": hashes,
            "patient_columns": {
                "numeric": cfg.clinical.numeric_features(),
                "categorical": list(cfg.clinical.categorical),
                "display": list(cfg.clinical.display),
                "leakage_excluded": list(cfg.clinical.leakage),
                "after_diagnosis": list(cfg.clinical.after_diagnosis),
                "expression_derived": list(cfg.clinical.expression_derived),
                "label": "label" if cfg.clinical.label else None,
                "survival": ["os_months", "os_event"] if cfg.clinical.survival else None,
                "extra_survival": sorted(cfg.clinical.extra_survival),
                **({"pool_rare": cfg.clinical.pool_rare} if cfg.clinical.pool_rare else {}),
                **getattr(tables, "patient_features", {}),
            },
            "stats": tables.stats,
            "build_seconds": round(seconds, 3),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str), encoding="utf-8")
    return manifest


@dataclass
class GraphRun:
    """A run folder on disk; tables are read on demand."""

    root: Path
    manifest: dict

    @classmethod
    def open(cls, root: str | Path) -> "GraphRun":
        root = Path(root)
        mf = root / MANIFEST
        if not mf.exists():
            raise GraphoncError(f"{root}: not a graphonc run folder (no {MANIFEST}). "
                                "Fix: build one with `graphonc build-graph --config ... --out ...`.")
        return cls(root, json.loads(mf.read_text(encoding="utf-8")))

    @property
    def cohort(self) -> str:
        return self.manifest["cohort"]

    def node_types(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "graph" / "nodes").glob("*.parquet"))

    def edge_types(self) -> list[S.EdgeType]:
        return sorted(S.parse_edge_name(p.stem) for p in (self.root / "graph" / "edges").glob("*.parquet"))

    def nodes(self, label: str) -> pd.DataFrame:
        return pd.read_parquet(_node_path(self.root, label))

    def edges(self, edge: S.EdgeType) -> pd.DataFrame:
        return pd.read_parquet(_edge_path(self.root, edge))
