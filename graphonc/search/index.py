"""FAISS index over patient embeddings: cosine similarity as the inner product of L2-normalised vectors.

::

    <run>/index/
      faiss.index    the FAISS index (always saved as a CPU index)
      ids.parquet    row position → patient id: columns ``position`` (int64), ``id``, ``split``
      index.json     kind, parameters, dimension, size, sha256 of the embeddings it was built from

Index kinds (``kind``):

* ``flat``  exact search (``IndexFlatIP``); the default below :data:`FLAT_MAX` vectors.
* ``hnsw``  graph-based approximate search (``IndexHNSWFlat``, inner product); default from
  :data:`FLAT_MAX` up to :data:`HNSW_MAX` vectors. CPU only (FAISS has no GPU HNSW).
* ``ivf``   inverted lists over exact vectors (``IndexIVFFlat``).
* ``ivfpq`` inverted lists over product-quantised codes (``IndexIVFPQ``); default above :data:`HNSW_MAX`.

Scores are cosines in [-1, 1] (approximate for ``ivfpq``). On a machine with CUDA and the
faiss-gpu build, ``flat``/``ivf``/``ivfpq`` are moved to the GPU with
``faiss.index_cpu_to_gpu``; exact (``flat``) results are the same on either device up to
float rounding. The saved index is always the CPU form, so a run moves between machines.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import yaml
from pydantic import ValidationError

from graphonc import layout as L
from graphonc.config import SearchSpec
from graphonc.errors import ConfigError, GraphoncError
from graphonc.graph import lineage
from graphonc.graph import schema as S
from graphonc.graph.run import GraphRun, atomic_dir, sha256_file, write_parquet
from graphonc.validation import format_validation_error

log = logging.getLogger("graphonc")

KINDS = ("auto", "flat", "hnsw", "ivf", "ivfpq")
#: ``auto`` uses exact search below this many vectors ...
FLAT_MAX = 50_000
#: ... HNSW up to this many, IVF-PQ above (HNSW keeps every vector in RAM plus its graph).
HNSW_MAX = 2_000_000
INDEX_FILE, IDS_FILE, META_FILE = "faiss.index", "ids.parquet", "index.json"
DEVICES = ("auto", "cpu", "gpu")
#: FAISS's GPU k-selection handles at most this many neighbours per query (GPU_MAX_SELECTION_K);
#: a larger k (a filtered search widening towards the whole cohort) runs on the CPU copy instead.
GPU_MAX_K = 2048


@functools.cache  # once: setLevel clears logging's caches, tens of µs on every search otherwise
def _faiss():
    logging.getLogger("faiss").setLevel(logging.WARNING)  # its loader logs which CPU build it picked at INFO
    import faiss  # imported lazily: it pulls in OpenMP and is only needed by search stages

    return faiss


#: Run in a child process by :func:`gpu_status`: one small exact search on GPU 0.
GPU_PROBE = """
import numpy as np, faiss
res = faiss.StandardGpuResources()
index = faiss.GpuIndexFlatIP(res, 8)
index.add(np.eye(8, dtype="float32"))
_, rows = index.search(np.eye(8, dtype="float32"), 1)
assert (rows[:, 0] == np.arange(8)).all(), rows
"""


def probe_in_child(code: str, timeout_s: float = 120.0) -> tuple[bool, str]:
    """Run ``code`` in a fresh Python; (it exited cleanly, the last line it printed to stderr)."""
    import subprocess
    import sys

    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False, f"the probe did not finish in {timeout_s:.0f} s"
    except OSError as e:  # no interpreter to start (an embedded Python, say)
        return False, f"the probe could not start: {e}"
    lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
    return done.returncode == 0, (lines[-1] if lines else f"exit status {done.returncode}")[:500]


class GpuStatus(NamedTuple):
    usable: bool  # FAISS can search on the GPU here
    seen: bool    # this faiss build has GPU support and sees a GPU (usable or not)
    why: str      # why it is not usable ("" when it is)


@functools.cache  # one probe per process: a second one would find the same build and the same GPU
def gpu_status() -> GpuStatus:
    """Whether FAISS can search on the GPU here, and why not when it cannot.

    Beyond the build having GPU support and seeing a GPU, one small search runs on it in a child
    process: a faiss build without kernels for this GPU's architecture (PyPI's faiss-gpu-cu12
    wheels have none for Hopper, compute capability 9.0) aborts the whole process on its first
    GPU call rather than raising, so it must not be tried in this one.
    """
    faiss = _faiss()
    if not hasattr(faiss, "StandardGpuResources"):
        return GpuStatus(False, False, "this faiss build has no GPU support")
    if faiss.get_num_gpus() == 0:
        return GpuStatus(False, False, "faiss sees no GPU")
    ok, why = probe_in_child(GPU_PROBE)
    return GpuStatus(True, True, "") if ok else GpuStatus(False, True, f"faiss-gpu cannot run on this GPU ({why})")


def gpu_available() -> bool:
    """True when this faiss build has GPU support, sees a GPU and can run its kernels there."""
    return gpu_status().usable


def choose_kind(n: int, kind: str = "auto") -> str:
    """The index kind for ``n`` vectors: ``kind`` itself unless it is ``auto``."""
    if kind not in KINDS:
        raise GraphoncError(f"unknown index type {kind!r}; expected one of {', '.join(KINDS)}.")
    if kind != "auto":
        return kind
    return "flat" if n < FLAT_MAX else "hnsw" if n < HNSW_MAX else "ivfpq"


@dataclass
class IndexParams:
    """Build/search parameters; unused ones are ignored by the other kinds.

    ``hnsw_m`` links per node, ``ef_construction``/``ef_search`` HNSW beam widths;
    ``nlist`` IVF cells (default ≈ √n), ``nprobe`` cells visited per query;
    ``pq_m`` sub-quantisers (must divide the dimension; default d/4, i.e. d bytes per vector),
    ``pq_bits`` bits per code.
    """

    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    nlist: int | None = None
    nprobe: int = 16
    pq_m: int | None = None
    pq_bits: int = 8

    def resolved(self, n: int, d: int) -> "IndexParams":
        nlist = self.nlist or max(1, min(int(round(math.sqrt(n))), n // 39 or 1))
        pq_m = self.pq_m or next(m for m in (d // 4, d // 2, 8, 4, 2, 1) if m >= 1 and d % m == 0 and m <= 64)
        return IndexParams(self.hnsw_m, self.ef_construction, self.ef_search, nlist, min(self.nprobe, nlist), pq_m,
                           self.pq_bits)


#: Similarities equal to this many decimals are one tie (broken by patient id). Identical
#: database rows do not get bit-identical dot products: BLAS sums a column differently by where it
#: falls in a block and by the thread count (float32: 8% of the pairs of 100 duplicated random rows
#: differed in the last bits), so patients with the same embedding were ranked by position and
#: scores moved between runs. Scores are float64 before rounding, whose noise (~1e-16) this merges.
TIE_DECIMALS = 9


def id_ranks(ids) -> np.ndarray:
    """Each id's place in sorted id order (ids unique): what breaks a tie of similarities."""
    return np.argsort(np.argsort(np.asarray(ids).astype(str), kind="stable"), kind="stable")


def best_first(scores: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Column order of each row of ``scores`` (m, c), highest first; scores equal to
    ``TIE_DECIMALS`` decimals are a tie, broken by ``ranks`` (m, c) (see :func:`id_ranks`)."""
    return np.lexsort((ranks, -np.round(np.asarray(scores, dtype=np.float64), TIE_DECIMALS)), axis=1)


#: Candidate vector values :meth:`PatientIndex.rescored` holds at once (16M float64: 128 MB).
RESCORE_BLOCK = 1 << 24


def normalised(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, float32 C-contiguous copy, shape (n, d). Zero rows stay zero."""
    x = np.array(x, dtype=np.float32, copy=True, order="C")
    if x.ndim != 2:
        raise GraphoncError(f"embeddings must be a 2-D array (n, d), got shape {x.shape}")
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if len(bad):
        raise GraphoncError(f"{len(bad)} embedding row(s) hold NaN or infinite values (first row {bad[0]}). "
                            "Fix: retrain the model (`graphonc train`).")
    if x.size:
        _faiss().normalize_L2(x)  # in place; norm-0 rows stay 0
    return x


def build_faiss(x: np.ndarray, kind: str, params: IndexParams, seed: int = 0):
    """A CPU FAISS index over the (already normalised) rows of ``x`` (n, d) float32."""
    faiss = _faiss()
    n, d = x.shape
    p = params.resolved(n, d)
    ip = faiss.METRIC_INNER_PRODUCT
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, p.hnsw_m, ip)
        index.hnsw.efConstruction = p.ef_construction
        index.hnsw.efSearch = p.ef_search
    elif kind in ("ivf", "ivfpq"):
        quantizer = faiss.IndexFlatIP(d)
        if kind == "ivf":
            index = faiss.IndexIVFFlat(quantizer, d, p.nlist, ip)
        else:
            index = faiss.IndexIVFPQ(quantizer, d, p.nlist, p.pq_m, p.pq_bits, ip)
        index.cp.seed = seed
        # enough training points for the coarse and the PQ codebooks, drawn reproducibly
        want = min(n, max(p.nlist * 40, (1 << p.pq_bits) * 40 if kind == "ivfpq" else 0, 10_000))
        rng = np.random.default_rng(seed)
        sample = x if want >= n else x[np.sort(rng.choice(n, want, replace=False))]
        index.train(sample)
        index.nprobe = p.nprobe
    else:
        raise GraphoncError(f"unknown index type {kind!r}")
    index.add(x)
    return index


@dataclass
class PatientIndex:
    """A FAISS index and the patient id of each of its rows.

    Attributes:
        index: the CPU FAISS index (what is saved).
        ids: patient id per index row, shape (n,).
        kind: flat | hnsw | ivf | ivfpq.
        meta: what ``index.json`` holds.
        device: "cpu" or "gpu" (where searches run).
    """

    index: object
    ids: np.ndarray
    kind: str
    meta: dict = field(default_factory=dict)
    device: str = "cpu"
    split: np.ndarray | None = None
    _search_index: object = None
    _pos: pd.Index | None = None

    @functools.cached_property
    def n(self) -> int:
        """Number of indexed patients (the index is never added to after it is built)."""
        return int(self.index.ntotal)

    @functools.cached_property
    def dim(self) -> int:
        return int(self.index.d)

    def position(self, ids) -> np.ndarray:
        """Index row of each id, −1 where the id is not in the index."""
        if self._pos is None:
            self._pos = pd.Index(self.ids)
        return self._pos.get_indexer(pd.Index(list(ids), dtype=object))

    def vectors(self, positions: np.ndarray) -> np.ndarray:
        """The stored vectors of the given rows, unit length, (m, d) float32 (approximate for ivfpq)."""
        positions = np.asarray(positions, dtype=np.int64)
        if not len(positions):
            return np.empty((0, self.dim), np.float32)
        if positions.min() < 0 or positions.max() >= self.n:
            raise GraphoncError(f"index rows must lie in 0..{self.n - 1}")
        out = self._reconstructor.reconstruct_batch(positions)
        # exact kinds store the unit vectors themselves, product-quantised codes only near them
        return normalised(out) if self.kind == "ivfpq" else out

    @functools.cached_property
    def _reconstructor(self):
        """The CPU index with what reconstruction needs (inverted lists keep a row → list map)."""
        if self.kind in ("ivf", "ivfpq"):
            self.index.make_direct_map()
        return self.index

    def set_ef_search(self, ef: int) -> None:
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = int(ef)

    @functools.cached_property
    def _ids_then_none(self) -> np.ndarray:
        return np.append(self.ids.astype(object), None)  # row −1 (FAISS's "no result") picks the None

    def ids_at(self, rows: np.ndarray) -> np.ndarray:
        """Patient ids of index ``rows`` (any shape, object array), None where a row is −1 (no result)."""
        return self._ids_then_none[rows]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw FAISS search: (scores (m, k) float32 cosines, rows (m, k) int64; −1 = no result).

        ``queries`` (m, d) are normalised here; ``k`` is capped at the index size. The one way
        every search goes: FAISS's Python ``Index.search``.
        """
        q = normalised(queries)
        if q.shape[1] != self.dim:
            raise GraphoncError(f"query vectors have {q.shape[1]} dimensions, the index {self.dim}. "
                                "Fix: rebuild the index from the current model (`graphonc index`).")
        k = max(1, min(int(k), self.n))
        if self.kind == "hnsw" and self.index.hnsw.efSearch < k:  # HNSW finds at most efSearch neighbours
            self.set_ef_search(k)
        return self._searcher(k).search(q, k)

    def rescored(self, queries: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The candidates ``rows`` (m, c) of a :meth:`search`, scored exactly and ranked the same way
        whatever the batch, thread count or row position: (scores (m, c) float64, rows (m, c)).

        FAISS scores in float32, and BLAS (batches of 20 queries and more) gives two identical
        stored vectors slightly different scores depending on where they sit, so twins (patients
        with the same embedding) came back in row order, and a batch could rank near-ties unlike
        a single query. Here each score is the float64 cosine of the query with the stored
        vector, rounded to ``TIE_DECIMALS`` decimals; rows sort by score, ties by patient id;
        −1 rows (no result) go last with score −inf.
        """
        rows = np.asarray(rows, np.int64)
        q = normalised(queries).astype(np.float64)
        valid = rows >= 0
        s = np.full(rows.shape, -np.inf)
        # the candidates' vectors a block of queries at a time: a batch with filters may ask for
        # thousands of candidates each, and (m, c, d) float64 at once would take gigabytes
        step = max(1, RESCORE_BLOCK // max(rows.shape[1] * self.dim, 1))
        for i in range(0, len(rows), step):
            r, ok = rows[i:i + step], valid[i:i + step]
            v = np.zeros(r.shape + (self.dim,), np.float64)
            if ok.any():
                v[ok] = self._reconstructor.reconstruct_batch(r[ok])
            s[i:i + step] = np.where(ok, np.round(np.einsum("md,mcd->mc", q[i:i + step], v), TIE_DECIMALS), -np.inf)
        rank = np.where(valid, self._id_rank[np.clip(rows, 0, None)], len(self._id_rank))
        order = best_first(s, rank)
        return np.take_along_axis(s, order, 1), np.take_along_axis(rows, order, 1)

    @functools.cached_property
    def _id_rank(self) -> np.ndarray:
        """Each index row's place in patient-id order (how ties are broken)."""
        return id_ranks(self.ids)

    def _searcher(self, k: int = 1):
        """The FAISS index a search of ``k`` neighbours runs on: the GPU clone when there is one and k fits."""
        return self._search_index if self._search_index is not None and k <= GPU_MAX_K else self.index

    def to_device(self, device: str = "auto") -> "PatientIndex":
        """Search on the GPU when asked (or ``auto`` and available); HNSW stays on the CPU."""
        if device not in DEVICES:
            raise GraphoncError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}.")
        # HNSW has no GPU form, so `auto` keeps it on the CPU without spawning the GPU probe
        on_cpu = device == "cpu" or (device == "auto" and self.kind == "hnsw")
        gpu = GpuStatus(False, False, "") if on_cpu else gpu_status()
        if device == "gpu" and not gpu.usable:
            raise GraphoncError(f"--device gpu: {gpu.why}. Fix: install faiss-gpu >= 1.15.1 in place of faiss-cpu "
                                "(`GRAPHONC_FAISS=gpu bash scripts/setup.sh`) on a CUDA machine, or a faiss build "
                                "for this GPU's architecture; or use --device cpu.")
        if device == "auto" and gpu.seen and not gpu.usable:
            log.warning("searching on the CPU: %s", gpu.why)
        if not gpu.usable:
            self._search_index, self.device = None, "cpu"
            return self
        if self.kind == "hnsw":
            log.info("FAISS has no GPU HNSW; searching on the CPU")
            self._search_index, self.device = None, "cpu"
            return self
        faiss = _faiss()
        res = faiss.StandardGpuResources()
        opts = faiss.GpuClonerOptions()
        opts.useFloat16 = self.kind == "ivfpq"  # PQ lookup tables in fp16 allow more sub-quantisers
        self._search_index = faiss.index_cpu_to_gpu(res, 0, self.index, opts)
        self._gpu_resources = res
        self.device = "gpu"
        return self

    # ------------------------------------------------------------------ persistence

    def save(self, folder: Path, extra_meta: dict | None = None) -> None:
        """Write faiss.index, ids.parquet and index.json into ``folder`` (an atomic stage folder)."""
        faiss = _faiss()
        folder.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(folder / INDEX_FILE))
        ids = pd.DataFrame({"position": np.arange(self.n, dtype=np.int64), S.ID: self.ids.astype(object)})
        if self.split is not None:
            ids["split"] = self.split
        write_parquet(ids, folder / IDS_FILE)
        self.meta = {**self.meta, **(extra_meta or {})}
        (folder / META_FILE).write_text(json.dumps(self.meta, indent=2, sort_keys=True), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, device: str = "cpu") -> "PatientIndex":
        faiss = _faiss()
        folder = Path(folder)
        if not (folder / INDEX_FILE).exists():
            raise GraphoncError(f"{folder}: no FAISS index. Fix: build it with `graphonc index --run {folder.parent}`.")
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        index = faiss.read_index(str(folder / INDEX_FILE))
        ids = pd.read_parquet(folder / IDS_FILE)
        if len(ids) != index.ntotal:
            raise GraphoncError(f"{folder}: {IDS_FILE} has {len(ids)} rows but the index {index.ntotal} vectors. "
                                f"Fix: rebuild with `graphonc index --run {folder.parent}`.")
        if meta.get("kind") == "hnsw" and "params" in meta:
            index.hnsw.efSearch = int(meta["params"]["ef_search"])
        if meta.get("kind") in ("ivf", "ivfpq") and "params" in meta:
            index.nprobe = int(meta["params"]["nprobe"])
        split = ids["split"].to_numpy(object) if "split" in ids.columns else None
        out = cls(index, ids[S.ID].to_numpy(object), meta["kind"], meta, split=split)
        return out.to_device(device)

    @classmethod
    def build(cls, embeddings: np.ndarray, ids, kind: str = "auto", params: IndexParams | None = None,
              device: str = "cpu", seed: int = 0, split=None) -> "PatientIndex":
        """Index ``embeddings`` (n, d) with one id per row (ids must be unique)."""
        ids = np.asarray(list(ids), dtype=object)
        emb = np.asarray(embeddings)
        if emb.ndim != 2 or emb.shape[0] != len(ids):
            raise GraphoncError(f"embeddings of shape {emb.shape} do not match {len(ids)} ids")
        if len(ids) == 0:
            raise GraphoncError("no embeddings to index")
        dup = pd.Index(ids).duplicated()
        if dup.any():
            raise GraphoncError(f"{dup.sum()} duplicate patient id(s) among the embeddings, e.g. {ids[dup][0]!r}")
        kind = choose_kind(len(ids), kind)
        params = (params or IndexParams()).resolved(*emb.shape)
        t0 = time.perf_counter()
        index = build_faiss(normalised(emb), kind, params, seed)
        meta = {"kind": kind, "metric": "cosine (inner product of L2-normalised vectors)", "dim": int(emb.shape[1]),
                "n": int(len(ids)), "params": params.__dict__, "seed": seed,
                "build_seconds": round(time.perf_counter() - t0, 3), "faiss_version": _faiss().__version__}
        out = cls(index, ids, kind, meta, split=None if split is None else np.asarray(split, dtype=object))
        return out.to_device(device)


# ---------------------------------------------------------------------- the run's index stage


def index_dir(run_dir: Path) -> Path:
    return L.RunLayout(run_dir).index_dir


def _remake(folder: Path) -> str:
    """The command that remakes an embeddings folder (``{run}``: the run; see graphonc.graph.lineage)."""
    return ("graphonc index --run {run} --from features" if Path(folder).name == FEATURES_DIR
            else "graphonc train --run {run}")


def read_embeddings(run_dir: Path, model_dir: Path | None = None) -> pd.DataFrame:
    """``<model>/embeddings.parquet``: columns id, split, embedding (float32 list of length D).

    Refuses embeddings made from another graph than the run holds now.
    """
    folder = L.RunLayout(run_dir).model_or(model_dir)
    path = folder / L.EMBEDDINGS
    if not path.exists():
        raise GraphoncError(f"{path}: no patient embeddings. Fix: train a model first "
                            f"(`graphonc train --run {run_dir}`).")
    lineage.check(Path(run_dir), folder, rerun=_remake(folder))
    return pd.read_parquet(path)


def embedding_matrix(emb: pd.DataFrame) -> np.ndarray:
    """The ``embedding`` column as an (n, D) float32 array."""
    if emb.empty:
        return np.zeros((0, 0), np.float32)
    return np.stack(emb["embedding"].to_numpy()).astype(np.float32)


FEATURES_DIR = L.FEATURES


def write_feature_embeddings(run_dir: Path) -> Path:
    """``<run>/features/embeddings.parquet``: each patient's encoded input features as its vector.

    For cohorts a model cannot be trained on (no diagnosis label, no survival: e.g. an imaging
    cohort without outcomes), similarity falls back to the scaled clinical (+ radiomic)
    feature vector, the encoding the GNN itself starts from (fitted on all patients here: there
    is no held-out set to protect). Same format as ``<run>/model/embeddings.parquet``.
    """
    from graphonc.graph.hetero import to_hetero  # torch/PyG only when this path is used

    run = GraphRun.open(run_dir)
    consumed = lineage.fingerprint(run.root, manifest=run.manifest)
    hg = to_hetero(run)
    x = hg.data[S.PATIENT].x.numpy().astype(np.float32)
    emb = pd.DataFrame({S.ID: hg.ids[S.PATIENT], "split": "all", "embedding": list(x)})
    with atomic_dir(run.layout.features_dir) as tmp:
        write_parquet(emb, tmp / L.EMBEDDINGS)
        (tmp / "feature_names.json").write_text(json.dumps(hg.feature_names[S.PATIENT], indent=1), encoding="utf-8")
        lineage.record(tmp, "features", consumed, run_root=run.root, rerun=_remake(tmp.parent / FEATURES_DIR))
    return run.layout.features_dir


def index_settings(run_dir: Path, **overrides) -> tuple[str, str, IndexParams]:
    """(kind, device, parameters) for the run's index: ``overrides`` that are not None (the command
    line), else the ``search:`` section of the config the run was built from, else the defaults."""
    path = L.RunLayout(run_dir).config
    raw = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.exists() else {}
    try:
        spec = SearchSpec.model_validate(raw.get("search") or {})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc, SearchSpec, prefix=("search",))) from None
    merged = {**spec.model_dump(exclude_none=True), **{k: v for k, v in overrides.items() if v is not None}}
    kind, device = merged.pop("kind"), merged.pop("device")
    return kind, device, IndexParams(**merged)


def build_index(run_dir: Path, kind: str = "auto", params: IndexParams | None = None, device: str = "auto",
                model_dir: Path | None = None, seed: int = 0, source: str = "model") -> PatientIndex:
    """Build the run's patient index and save it to ``<run>/index/``.

    ``source``: "model" (the trained model's embeddings, ``model_dir`` or ``<run>/model``) or
    "features" (the encoded input features, see :func:`write_feature_embeddings`).
    """
    run = GraphRun.open(run_dir)
    if source not in ("model", "features"):
        raise GraphoncError(f"unknown index source {source!r}; expected 'model' or 'features'.")
    if source == "features":
        model_dir = write_feature_embeddings(run.root)
    mdir = run.layout.model_or(model_dir)
    emb = read_embeddings(run.root, mdir)
    consumed = lineage.fingerprint(run.root, mdir / L.EMBEDDINGS, manifest=run.manifest)
    idx = PatientIndex.build(embedding_matrix(emb), emb[S.ID], kind, params, device=device, seed=seed,
                             split=emb["split"] if "split" in emb.columns else None)
    extra = {"cohort": run.cohort, "model_dir": os.path.relpath(mdir.resolve(), run.root.resolve()),
             "embeddings_sha256": consumed[lineage.input_key(run.root, mdir / L.EMBEDDINGS)],
             "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "device": idx.device}
    with atomic_dir(index_dir(run.root)) as tmp:
        idx.save(tmp, extra)
        lineage.record(tmp, "index", consumed, run_root=run.root,
                       rerun="graphonc index --run {run}" + (" --from features" if source == "features" else ""))
    return idx


def load_index(run_dir: Path, device: str = "auto", check_fresh: bool = True) -> PatientIndex:
    """Reload ``<run>/index/`` (no rebuild). Refuses (``check_fresh``) an index whose embeddings
    were made from another graph than the run holds, or that was built from other embeddings
    (the model was retrained): the earliest stale stage is named."""
    folder = index_dir(run_dir)
    idx = PatientIndex.load(folder, device)
    if check_fresh:
        source = Path(run_dir) / idx.meta.get("model_dir", "model")
        if source.is_dir():
            lineage.check(Path(run_dir), source, rerun=_remake(source))
        lineage.check(Path(run_dir), folder, rerun="graphonc index --run {run}")
    return idx


def digest(values) -> str:
    """Short stable hash of a list of strings (used to name a model in SIMILAR_TO)."""
    h = hashlib.sha256()
    for v in values:
        h.update(str(v).encode())
        h.update(b"\0")
    return h.hexdigest()[:12]
