"""Content-addressed cache of per-case extraction results.

A case's key is the sha256 of: the cache format, the pyradiomics version, the canonical
extraction parameters, the geometry settings, the requested label, and the *contents* of the
image and mask (every file of a DICOM folder). Renaming or moving files keeps the key;
changing a voxel or a setting changes it. Only successful results are stored, one JSON file
per case written atomically (temp file + rename) as soon as the case finishes, so a crashed
or interrupted run resumes where it stopped.

Layout: ``<cache dir>/<key[:2]>/<key>.json``. Default folder: ``$GRAPHONC_RADIOMICS_CACHE`` or
``~/.cache/graphonc/radiomics``; safe to delete at any time.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from graphonc.graph.run import atomic_file

FORMAT = 1


def default_cache_dir() -> Path:
    env = os.environ.get("GRAPHONC_RADIOMICS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "graphonc" / "radiomics"


def content_hash(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, or of a folder's files (relative names + bytes, sorted)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def case_key(image_hash: str, mask_hash: str, params_canonical: str, geometry_canonical: str,
             label: int | None, pyradiomics_version: str) -> str:
    blob = json.dumps([FORMAT, pyradiomics_version, params_canonical, geometry_canonical, label, image_hash,
                       mask_hash]).encode()
    return hashlib.sha256(blob).hexdigest()


class ResultCache:
    """Get/put one JSON document per key."""

    def __init__(self, root: Path | None) -> None:
        self.root = Path(root) if root is not None else None

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        if self.root is None:
            return None
        p = self._path(key)
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):  # absent, or a torn file from another writer
            return None

    def put(self, key: str, doc: dict) -> None:
        if self.root is None:
            return
        with atomic_file(self._path(key)) as tmp:
            tmp.write_text(json.dumps(doc, sort_keys=True), encoding="utf-8")
