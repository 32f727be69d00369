"""What each stage was made from, and refusing stages whose inputs changed underneath them.

Every stage folder (``<run>/model``, ``index``, ``features``, ``eval``, ``similarity``,
``export/<format>``, an ``embed --out`` folder ...) holds ``lineage.json``::

    {"stage": "train", "graphonc_version": "...", "rerun": "graphonc train --run {run}",
     "consumed": {"graph": "<sha256 of the run's table_sha256>",
                  "model/embeddings.parquet": "<sha256>"}}

``rerun`` is the command that remakes the folder (``{run}`` stands for the run's path, which
may have moved). ``consumed`` maps ``"graph"`` (the run's graph tables, one digest over the manifest's
``table_sha256``) and files (relative to the run, else absolute) to the sha256 the stage read.

* :func:`record` is the last thing a stage does inside its atomic folder: it first checks the
  run still holds what the stage read (a rebuild while ``train`` ran must not leave a model of
  one graph in a run holding another), then writes ``lineage.json``.
* :func:`check` is what a consumer does before trusting a stage folder (``index`` before the
  model's embeddings, ``similar`` before the index ...): it recomputes ``consumed`` and refuses
  a mismatch with one line saying which stage to rerun.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import graphonc
from graphonc.errors import GraphoncError
from graphonc.graph.outputs import LINEAGE, read_run_manifest
from graphonc.graph.run import sha256_file

GRAPH = "graph"


class StaleStageError(GraphoncError):
    """A stage folder was made from inputs the run no longer holds."""


def graph_digest(manifest: dict) -> str:
    """One sha256 over a run's graph tables (the manifest's per-table ``table_sha256``)."""
    tables = manifest.get("table_sha256") or {}
    return hashlib.sha256(json.dumps(tables, sort_keys=True).encode()).hexdigest()


def input_key(run_root: Path | None, path: Path) -> str:
    path = Path(path).resolve()
    if run_root is not None:
        try:
            return path.relative_to(Path(run_root).resolve()).as_posix()
        except ValueError:
            pass
    return str(path)


def _path(run_root: Path | None, key: str) -> Path:
    p = Path(key)
    return p if p.is_absolute() or run_root is None else Path(run_root) / p


def _current_graph(run_root: Path) -> str | None:
    manifest = read_run_manifest(run_root)
    return graph_digest(manifest) if manifest is not None else None


def fingerprint(run_root: Path | None, *files: Path, manifest: dict | None = None) -> dict[str, str]:
    """``consumed`` for a stage about to read the run's graph and ``files``.

    ``manifest``: the manifest the stage opened (default: read now). Pass the one read at the
    stage's start, so :func:`record` notices a rebuild that happened while the stage ran.
    """
    consumed: dict[str, str] = {}
    if run_root is not None:
        manifest = manifest if manifest is not None else read_run_manifest(run_root)
        if manifest is None:
            raise GraphoncError(f"{run_root}: not a graphonc run folder (no manifest.json). "
                                "Fix: build one with `graphonc build-graph --config ... --out ...`.")
        consumed[GRAPH] = graph_digest(manifest)
    for f in files:
        consumed[input_key(run_root, f)] = sha256_file(f)
    return consumed


def _changed(run_root: Path | None, consumed: dict[str, str]) -> str | None:
    """The first input in ``consumed`` the run no longer holds (as a phrase), or None."""
    for key, sha in consumed.items():
        if key == GRAPH:
            if run_root is None or _current_graph(run_root) != sha:
                return f"the graph of {run_root} (the run was rebuilt)"
            continue
        p = _path(run_root, key)
        if not p.is_file():
            return f"{p} (now missing)"
        if sha256_file(p) != sha:
            return f"{p} (it was rewritten)"
    return None


def _command(template: str, run_root: Path | None) -> str:
    return template.replace("{run}", str(run_root))


def record(stage_dir: Path, stage: str, consumed: dict[str, str], *, run_root: Path | None = None,
           rerun: str | None = None) -> dict:
    """Write ``stage_dir/lineage.json`` after checking ``consumed`` is still what the run holds.

    ``rerun``: the command that remakes this folder, ``{run}`` for the run's path (default
    ``graphonc <stage> --run {run}``). Raises :class:`StaleStageError` (so the caller's atomic
    folder is discarded) when an input changed while the stage ran. Returns the record.
    """
    rerun = rerun or f"graphonc {stage} --run {{run}}"
    changed = _changed(run_root, consumed)
    if changed:
        raise StaleStageError(f"{changed} changed while `{stage}` ran, so its output was not written. "
                              f"Fix: rerun `{_command(rerun, run_root)}`.")
    doc = {"stage": stage, "graphonc_version": graphonc.__version__, "rerun": rerun, "consumed": consumed}
    (Path(stage_dir) / LINEAGE).write_text(json.dumps(doc, indent=2, sort_keys=True), encoding="utf-8")
    return doc


def read(stage_dir: Path) -> dict | None:
    try:
        doc = json.loads((Path(stage_dir) / LINEAGE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("consumed"), dict) else None


def check(run_root: Path, stage_dir: Path, *, rerun: str) -> dict:
    """Refuse ``stage_dir`` unless everything it was made from is still what ``run_root`` holds.

    ``rerun``: the command that remakes ``stage_dir`` (``{run}`` for the run's path), suggested
    when it has no lineage record (made by an older graphonc, or by hand). Returns the record.
    """
    doc = read(stage_dir)
    if doc is None:
        raise StaleStageError(f"{stage_dir}: no {LINEAGE}, so graphonc cannot tell which graph it was made from "
                              f"(an older graphonc, or copied by hand). Fix: rerun `{_command(rerun, run_root)}`.")
    changed = _changed(run_root, doc["consumed"])
    if changed:
        fix = _command(str(doc.get("rerun") or rerun), run_root)
        raise StaleStageError(f"{stage_dir} was made by `{doc.get('stage')}` from another version of {changed}; "
                              f"using it would mix up patients of different graphs. Fix: rerun `{fix}`.")
    return doc
