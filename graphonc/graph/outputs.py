"""How graphonc writes anything to disk: atomically, readable by its owner only, and never over
something it did not make.

* :func:`atomic_dir` / :func:`atomic_file` write into a temp sibling and rename it into place,
  so a crash never leaves half an output and the previous one stays until the new one is whole.
  Temp names are ``.<name>.tmp-<pid>-<random>``; a replaced folder is parked as
  ``.<name>.old-<pid>-<ns>`` for the instant of the swap. Leftovers of killed processes with
  exactly these names (their pid dead, or, for names without a pid, older than this call) are
  removed the next time the same output is written; nothing else is ever removed.
* Run folders hold patient data: every folder graphonc creates gets :class:`Modes` ``folders``
  (default 0700) and every file ``files`` (default 0600), whatever the umask. A run's modes come
  from its config's ``permissions:`` and are recorded in its manifest; stage folders and files
  written later into the run use the recorded modes, outputs outside any run the default.
* :func:`claim_dir` / :func:`claim_file` refuse an output path that holds something graphonc did
  not write (the input study folder, a user's file, a non-empty folder): a folder is ours when it
  holds our run ``manifest.json`` or a ``lineage.json`` of the same kind of output; a file when it
  carries our stamp (Parquet schema metadata ``graphonc``, the HTML generator tag, a JSON or
  GraphML ``graphonc_version``) or our JSON sidecar names it (:func:`listed_in`). Rebuilding a run that holds later stages (model/, index/, reports/ …)
  needs ``force``, since they were made from the graph being replaced.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from graphonc.errors import GraphoncError
from graphonc.layout import CONFIG, GRAPH, LINEAGE, MANIFEST

log = logging.getLogger("graphonc")

#: Schema metadata key that marks a Parquet file as written by graphonc (see write_parquet).
PARQUET_STAMP = b"graphonc"
#: What ``build-graph`` itself writes into a run; anything else there is a later stage.
BUILD_ENTRIES = frozenset({MANIFEST, CONFIG, GRAPH})
#: How many folders up from an output a run's manifest (its permissions) is looked for:
#: <run>/export/npy is the deepest stage folder.
_RUN_DEPTH = 3


# ---------------------------------------------------------------------------------- permissions


@dataclass(frozen=True)
class Modes:
    """Permission bits for the folders and files graphonc creates (default: owner only)."""

    folders: int = 0o700
    files: int = 0o600

    def to_json(self) -> dict[str, str]:
        return {"folders": f"{self.folders:04o}", "files": f"{self.files:04o}"}

    @classmethod
    def from_json(cls, doc: dict | None) -> "Modes":
        if not isinstance(doc, dict):
            return PRIVATE
        try:
            return cls(int(str(doc["folders"]), 8), int(str(doc["files"]), 8))
        except (KeyError, ValueError):
            return PRIVATE


PRIVATE = Modes()


def read_run_manifest(folder: Path) -> dict | None:
    """The manifest of a graphonc run folder, or None when ``folder`` is not one."""
    try:
        doc = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(doc, dict) and doc.get("stage") == "build-graph" and "graphonc_version" in doc:
        return doc
    return None


def enclosing_run(path: Path) -> Path | None:
    """The run folder ``path`` lies in (up to <run>/a/b/c), or None."""
    for parent in list(Path(path).parents)[:_RUN_DEPTH]:
        if read_run_manifest(parent) is not None:
            return parent
    return None


def modes_for(target: Path) -> Modes:
    """The modes of the run ``target`` is written into, else :data:`PRIVATE`."""
    run = enclosing_run(target)
    return Modes.from_json(read_run_manifest(run).get("permissions")) if run is not None else PRIVATE


def apply_modes(root: Path, modes: Modes) -> None:
    """chmod ``root`` and everything under it (symbolic links are left alone, never followed)."""
    root = Path(root)
    if root.is_symlink():
        return
    if not root.is_dir():
        os.chmod(root, modes.files)
        return
    os.chmod(root, modes.folders)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, modes.folders)
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, modes.files)


def make_dirs(folder: Path, modes: Modes) -> None:
    """``mkdir -p`` that gives the folders it creates ``modes.folders`` (existing ones are not touched)."""
    folder = Path(folder)
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        os.chmod(d, modes.folders)


# --------------------------------------------------------------------------------- ownership


def _refuse(target: Path, flag: str, what: str, fix: str) -> GraphoncError:
    return GraphoncError(f"{flag} {target}: {what}; graphonc never replaces what it did not create, so nothing "
                         f"was written. Fix: {fix}")


def folder_kind(folder: Path) -> str | None:
    """``"run"`` for a run folder, the stage named in its ``lineage.json`` for another graphonc
    output folder, else None."""
    if read_run_manifest(folder) is not None:
        return "run"
    try:
        doc = json.loads((Path(folder) / LINEAGE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc.get("stage") if isinstance(doc, dict) and isinstance(doc.get("stage"), str) else None


def later_stages(run_root: Path) -> list[str]:
    """What a run holds besides what build-graph writes (model/, index/, reports/ …), sorted."""
    manifest = read_run_manifest(run_root) or {}
    own = BUILD_ENTRIES | {Path(a).parts[0] for a in manifest.get("artifacts", ["radiomics/"])}
    out = []
    for p in sorted(Path(run_root).iterdir()):
        if p.name in own or _leftover_pid(p.name) is not None:
            continue
        out.append(p.name + ("/" if p.is_dir() else ""))
    return out


def _managed_area(target: Path) -> str | None:
    """The part of a run ``target`` lies in when graphonc manages it (``graph/``, ``manifest.json``,
    a stage folder such as ``model/``), else None. A user-named output may not go there: it would
    replace a graph table or a stage's file behind the lineage records' back."""
    run = enclosing_run(target)
    if run is None:
        return None
    parts = target.relative_to(run).parts
    if parts[0] in BUILD_ENTRIES or (len(parts) > 1 and folder_kind(run / parts[0]) is not None):
        return f"{run / parts[0]}"
    return None


def _refuse_managed(target: Path, flag: str) -> None:
    area = _managed_area(target)
    if area is not None:
        raise _refuse(target, flag, f"lies in {area}, which graphonc manages", "write it outside the run's "
                      "graph/ and stage folders, e.g. beside them in the run folder.")


def claim_dir(target: Path, kind: str | None = None, *, force: bool = False, flag: str = "--out") -> None:
    """Refuse to write the folder ``target`` over anything graphonc did not make.

    ``kind``: ``"run"`` (build-graph) or the stage name recorded in ``lineage.json`` of a
    user-named output folder (e.g. ``"embed"``); None for a stage folder graphonc names itself
    inside a run (model/, index/ …), which may also be replaced when it predates lineage records.
    A missing target or an empty folder is always accepted. Replacing a run that holds later
    stages needs ``force``.
    """
    target = Path(target)
    restore_parked(target)
    if target.is_symlink():
        raise _refuse(target, flag, "is a symbolic link", "give a new or empty folder.")
    if kind not in (None, "run"):
        _refuse_managed(Path(os.path.abspath(target)), flag)
    if not target.exists():
        return
    if not target.is_dir():
        raise _refuse(target, flag, "is a file, not a folder", "give a new or empty folder.")
    entries = sorted(p.name for p in target.iterdir())
    if not entries:
        return
    found = folder_kind(target)
    if kind is None:
        if found is None and enclosing_run(target / "x") is None:
            raise _refuse(target, flag, "exists and is not a graphonc output folder",
                          "remove it yourself or move it away.")
        return
    if found != kind:
        what = (f"is a graphonc {found} folder, not an output of `{kind}`" if found else
                f"exists and is not a graphonc {'run' if kind == 'run' else kind + ' output'} folder "
                f"({len(entries)} entries, e.g. {entries[0]!r})")
        raise _refuse(target, flag, what, "give a new or empty folder, or remove this one yourself.")
    if kind == "run" and not force:
        later = later_stages(target)
        if later:
            raise GraphoncError(
                f"{flag} {target}: the run holds later stages made from its current graph ({', '.join(later)}), "
                "which a rebuild would drop; nothing was written. Fix: add --force to rebuild and drop them, "
                "or build into a new --out folder.")


def is_graphonc_file(path: Path) -> bool:
    """Whether ``path`` carries graphonc's stamp (see the module doc)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            meta = pq.read_schema(path).metadata or {}
            return PARQUET_STAMP in meta
        if suffix in (".html", ".htm"):
            with open(path, "rb") as fh:
                return b'<meta name="generator" content="graphonc' in fh.read(4096)
        if suffix == ".graphml":  # networkx declares each graph attribute's key in the header
            with open(path, "rb") as fh:
                return b'attr.name="graphonc_version"' in fh.read(65536)
        if suffix == ".json":
            if path.stat().st_size > 64 << 20:
                return False
            doc = json.loads(path.read_text(encoding="utf-8"))
            return isinstance(doc, dict) and "graphonc_version" in doc
    except Exception:  # unreadable, not Parquet, not UTF-8 JSON ...: not ours
        return False
    return False


def listed_in(sidecar: Path, key: str) -> Callable[[Path], bool]:
    """An ``ours`` test for a file that carries no stamp of its own (a CSV, a GEXF): it is ours
    when graphonc's JSON ``sidecar`` beside it names it under ``key``."""

    def ours(path: Path) -> bool:
        if not is_graphonc_file(sidecar):
            return False
        return json.loads(Path(sidecar).read_text(encoding="utf-8")).get(key) == str(path)

    return ours


def claim_file(target: Path, *, flag: str = "--out", ours: Callable[[Path], bool] = is_graphonc_file) -> None:
    """Refuse to write the file ``target`` over anything graphonc did not write (``ours`` decides)."""
    target = Path(target)
    if target.is_symlink():
        raise _refuse(target, flag, "is a symbolic link", "give the path of a new file.")
    _refuse_managed(Path(os.path.abspath(target)), flag)
    if not target.exists():
        return
    if target.is_dir():
        raise _refuse(target, flag, "is a folder, not a file", "give the path of a new file.")
    if not target.is_file() or not ours(target):
        raise _refuse(target, flag, "exists and was not written by graphonc",
                      "give the path of a new file, or remove this one yourself.")


# ---------------------------------------------------------------------------------- leftovers


_PID_PART = re.compile(r"^(\d+)-")


def _leftover_pid(name: str, target_name: str | None = None) -> int | None:
    """For a temp/parked name of ours (``.<target>.tmp-…`` / ``.<target>.old-…``): its pid, or 0
    when the name carries none (older graphonc); None for any other name."""
    if target_name is not None:
        m = re.match(rf"^\.{re.escape(target_name)}\.(?:tmp|old)-([A-Za-z0-9_.-]+)$", name)
    else:
        m = re.match(r"^\.[^/]+?\.(?:tmp|old)-([A-Za-z0-9_.-]+)$", name)
    if not m:
        return None
    pid = _PID_PART.match(m.group(1))
    return int(pid.group(1)) if pid else 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def clean_leftovers(target: Path, started: float | None = None) -> list[Path]:
    """Remove ``.<name>.tmp-*`` / ``.<name>.old-*`` siblings of ``target`` left by killed processes.

    One with a pid is removed when that process is gone; one without (older graphonc) when it is
    older than ``started`` (default: now). Returns what was removed.
    """
    target = Path(target)
    started = time.time() if started is None else started
    removed: list[Path] = []
    try:
        siblings = sorted(target.parent.iterdir())
    except OSError:
        return removed
    for p, st in _stale(target, siblings, started):
        try:
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(p)
            else:
                p.unlink()
        except OSError:
            continue
        removed.append(p)
    return removed


def restore_parked(target: Path) -> Path | None:
    """A process killed between the two renames of :func:`atomic_dir`'s swap leaves no ``target``,
    only the previous version parked as ``.<name>.old-<pid>-<ns>``: put the newest such one of a
    dead process back (rather than let :func:`clean_leftovers` delete it). Returns it, or None."""
    target = Path(target)
    if target.exists() or target.is_symlink():
        return None
    try:
        siblings = sorted(target.parent.iterdir())
    except OSError:
        return None
    parked = [p for p, _ in _stale(target, siblings, time.time()) if p.name.startswith(f".{target.name}.old-")]
    if not parked:
        return None
    newest = max(parked, key=lambda p: p.lstat().st_mtime_ns)
    try:
        os.replace(newest, target)
    except OSError:
        return None
    log.warning("%s: put back the last complete version, left parked by a killed process", target)
    return newest


def _stale(target: Path, siblings: list[Path], started: float) -> list[tuple[Path, os.stat_result]]:
    """Our leftovers of ``target`` among ``siblings`` whose process is gone (see clean_leftovers)."""
    prefix = f".{target.name}."
    stale = []
    for p in siblings:
        if not p.name.startswith(prefix):  # cheap first: a cache folder holds thousands of files
            continue
        pid = _leftover_pid(p.name, target.name)
        if pid is None or pid == os.getpid():
            continue
        try:
            st = p.lstat()
        except OSError:
            continue
        if pid and _pid_alive(pid):
            continue
        if not pid and st.st_mtime >= started:
            continue
        stale.append((p, st))
    return stale


# ---------------------------------------------------------------------------------- atomic writes


@contextmanager
def atomic_dir(target: Path, kind: str | None = None, *, force: bool = False, modes: Modes | None = None,
               flag: str = "--out") -> Iterator[Path]:
    """Yield a temp folder next to ``target``; on success it replaces ``target`` in one rename.

    ``target`` is checked with :func:`claim_dir` (``kind``, ``force``) before anything is written
    and again just before the swap. Everything inside gets ``modes`` (default: the enclosing
    run's, see :func:`modes_for`). On an exception the temp folder is removed and ``target`` is
    untouched.
    """
    target = Path(target)
    started = time.time()
    claim_dir(target, kind, force=force, flag=flag)
    modes = modes or modes_for(target)
    make_dirs(target.parent, modes)
    clean_leftovers(target, started)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        yield tmp
        claim_dir(target, kind, force=force, flag=flag)
        apply_modes(tmp, modes)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists() or target.is_symlink():
        old = target.parent / f".{target.name}.old-{os.getpid()}-{time.time_ns()}"
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_file(target: Path, *, claim: bool = False, modes: Modes | None = None, flag: str = "--out",
                ours: Callable[[Path], bool] = is_graphonc_file) -> Iterator[Path]:
    """Yield a temp path next to ``target`` (same suffix, so writers can infer the format); on
    success it replaces ``target`` in one rename with ``modes.files``.

    ``claim``: ``target`` is a path the user named: refuse it (before and again at the swap)
    unless it is absent or a file graphonc wrote (:func:`claim_file`). On an exception the temp
    file is removed and ``target`` is untouched.
    """
    target = Path(target)
    started = time.time()
    if claim:
        claim_file(target, flag=flag, ours=ours)
    modes = modes or modes_for(target)
    make_dirs(target.parent, modes)
    clean_leftovers(target, started)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.tmp-{os.getpid()}-", suffix=target.suffix,
                                dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if claim:
            claim_file(target, flag=flag, ours=ours)
        os.chmod(tmp, modes.files)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
