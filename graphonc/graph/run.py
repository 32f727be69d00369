"""The run folder: one Parquet file per node/edge type plus ``manifest.json``.

::

    runs/<name>/
      manifest.json                              version, config hash, input checksums, counts, timings
      config.yaml                                the config the run was built from, verbatim
      graph/nodes/<Label>.parquet                column ``id`` + properties
      graph/edges/<Src>__<TYPE>__<Dst>.parquet   columns ``src``, ``dst`` + properties

Every stage writes into a temporary sibling folder and renames it into place, so a crash
never leaves half a stage behind and the previous run stays intact until the new one is
complete; the folders and files are readable by their owner only unless the config's
``permissions:`` widens them, and an existing ``--out`` that is not a graphonc run is refused
(:mod:`graphonc.graph.outputs`). Each later stage records what it was made from
(:mod:`graphonc.graph.lineage`).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import graphonc
from graphonc.errors import GraphoncError
from graphonc import layout as L
from graphonc.graph import schema as S
from graphonc.graph.outputs import MANIFEST, PARQUET_STAMP, PRIVATE, Modes, atomic_dir, atomic_file  # noqa: F401


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Deterministic Parquet: no pandas index, fixed compression, no timestamps in metadata; stamped
    as graphonc's (schema metadata ``graphonc``) so an ``--out`` over it is recognised as ours."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), PARQUET_STAMP: b"1"})
    pq.write_table(table, path, compression="zstd", write_statistics=True)


def _node_path(root: Path, label: str) -> Path:
    return L.RunLayout(root).nodes(label)


def _edge_path(root: Path, edge: S.EdgeType) -> Path:
    return L.RunLayout(root).edges(S.edge_name(edge))


def write_graph_run(out: Path, tables, cfg, config_text: str | None, seconds: float, force: bool = False) -> dict:
    """Write a built graph (see :class:`graphonc.graph.build.GraphTables`) as a run folder.

    ``out`` must be absent, an empty folder or a graphonc run; a run holding later stages is
    only replaced with ``force``. Returns the manifest.
    """
    modes = run_modes(cfg)
    refuse_inputs_inside(out, tables.files)
    with atomic_dir(out, "run", force=force, modes=modes) as tmp:
        layout = L.RunLayout(tmp)
        layout.nodes_dir.mkdir(parents=True)
        layout.edges_dir.mkdir(parents=True)
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
            layout.config.write_text(config_text, encoding="utf-8")
        for rel, text in getattr(tables, "artifacts", {}).items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(text, encoding="utf-8")
        column_keys = getattr(tables, "column_keys", {})
        key = column_keys.get(S.PATIENT, {}).get
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
            # columns whose names are not Cypher identifiers, per table: {original name: key}
            "column_keys": column_keys,
            "table_sha256": hashes,
            # the Patient columns by their keys in the tables (see column_keys)
            "patient_columns": {
                "numeric": [key(c, c) for c in cfg.clinical.numeric_features()],
                "categorical": [key(c, c) for c in cfg.clinical.categorical],
                "display": [key(c, c) for c in cfg.clinical.display],
                "leakage_excluded": list(cfg.clinical.leakage),
                "after_diagnosis": [key(c, c) for c in cfg.clinical.after_diagnosis],
                "expression_derived": [key(c, c) for c in cfg.clinical.expression_derived],
                "label": L.LABEL if cfg.clinical.label else None,
                "survival": [L.OS_MONTHS, L.OS_EVENT] if cfg.clinical.survival else None,
                "extra_survival": sorted(cfg.clinical.extra_survival),
                **({"pool_rare": cfg.clinical.pool_rare} if cfg.clinical.pool_rare else {}),
                **({"units": {key(c, c): u for c, u in cfg.clinical.units.items()}} if cfg.clinical.units else {}),
                **getattr(tables, "patient_features", {}),
            },
            "stats": tables.stats,
            "artifacts": sorted(getattr(tables, "artifacts", {})),
            "permissions": modes.to_json(),
            "graph_stats": getattr(tables, "graph_stats", {}),
            "build_seconds": round(seconds, 3),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str), encoding="utf-8")
    return manifest


def refuse_inputs_inside(out: Path, inputs) -> None:
    """A rebuild replaces the whole run folder: refuse when this build reads a file inside it (a
    features table extracted into the run, say), which the rebuild would delete even with --force."""
    root = Path(out).resolve()
    inside = sorted(str(p) for p in map(Path, set(inputs)) if p.resolve().is_relative_to(root))
    if inside:
        raise GraphoncError(f"--out {out}: this build reads {inside[0]}"
                            f"{f' (and {len(inside) - 1} more input(s))' if len(inside) > 1 else ''} from inside "
                            "the run folder it would replace, which would delete it; nothing was written. "
                            "Fix: move the input out of the run folder and point the config at it.")


def run_modes(cfg) -> Modes:
    """The folder/file modes of a run: the config's ``permissions:`` else owner-only."""
    perms = getattr(cfg, "permissions", None)
    return Modes(int(perms.folders, 8), int(perms.files, 8)) if perms is not None else PRIVATE


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

    @property
    def layout(self) -> L.RunLayout:
        """Where this run's stage folders and files are (:class:`graphonc.layout.RunLayout`)."""
        return L.RunLayout(self.root)

    def patient_columns(self) -> dict:
        """The manifest's ``patient_columns``: the Patient table's column roles by their keys
        (numeric, categorical, display, label, survival, extra_survival, …; see write_graph_run)."""
        return self.manifest["patient_columns"]

    def column_keys(self, table: str = S.PATIENT) -> dict[str, str]:
        """{original column name: key} of the columns of ``table`` (a node label or edge table
        stem) that were renamed to valid Cypher identifiers at build time (empty: none were)."""
        return dict(self.manifest.get("column_keys", {}).get(table, {}))

    def column_names(self, table: str = S.PATIENT) -> dict[str, str]:
        """{key: original column name}: the names to show users (keys missing here are their own name)."""
        return {k: c for c, k in self.column_keys(table).items()}

    def node_types(self) -> list[str]:
        return sorted(p.stem for p in self.layout.nodes_dir.glob("*.parquet"))

    def edge_types(self) -> list[S.EdgeType]:
        return sorted(S.parse_edge_name(p.stem) for p in self.layout.edges_dir.glob("*.parquet"))

    def nodes(self, label: str) -> pd.DataFrame:
        return pd.read_parquet(_node_path(self.root, label))

    def edges(self, edge: S.EdgeType) -> pd.DataFrame:
        return pd.read_parquet(_edge_path(self.root, edge))
