"""One case's extraction, the code a worker process runs.

Kept apart from :mod:`graphonc.radiomics.extract` so a spawned worker imports only pydantic,
SimpleITK and pyradiomics (not pandas/pyarrow): worker start-up is part of every batch's time.
"""
from __future__ import annotations

import ctypes
import logging
import platform
import time
from pathlib import Path

from graphonc.errors import ConfigError
from graphonc.radiomics_config import ExtractionSettings, GeometrySpec


def pyradiomics_version() -> str:
    import radiomics

    return str(radiomics.__version__)


def _quiet_pyradiomics() -> None:
    import radiomics

    radiomics.setVerbosity(logging.CRITICAL)
    for name in ("radiomics", "pykwalify"):  # parameter loading and schema validation chatter
        logging.getLogger(name).setLevel(logging.ERROR)


def make_extractor(params: ExtractionSettings, source: Path | None = None):
    """A ``RadiomicsFeatureExtractor`` for ``params``.

    Raises:
        ConfigError: pyradiomics refused the parameters (unknown setting, feature class …).
    """
    _quiet_pyradiomics()
    from radiomics import featureextractor

    try:
        return featureextractor.RadiomicsFeatureExtractor(params.as_params())
    except Exception as exc:  # pyradiomics raises ValueError/KeyError/pykwalify errors on bad params
        where = f"{source}: " if source else ""
        raise ConfigError(f"{where}key 'pyradiomics': pyradiomics refused the parameters: {str(exc)[:300]}. Fix: "
                          "use the setting, imageType and featureClass names of the pyradiomics documentation "
                          "(see configs/radiomics.yaml).") from None


_WORKER: dict = {}


#: glibc ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Freed blocks up to this size stay in the heap for reuse: the ceiling of glibc's own adaptive
#: mmap threshold on 64-bit (its trim threshold is then twice this).
MMAP_THRESHOLD = 32 << 20


def tune_malloc() -> bool:
    """Let glibc keep pyradiomics' freed NumPy buffers for reuse; returns whether it applied (glibc only).

    Dask's nanny starts every worker with ``MALLOC_TRIM_THRESHOLD_=65536`` (to hand freed memory
    back to the OS at once). Setting it freezes glibc's mmap threshold at 128 kB, so each of the
    many temporaries of a few MB that pyradiomics makes per case is mmapped, page-faulted and
    unmapped again: ~17k page faults and +12-14% CPU per 2 mm IBSI case, measured. Fixing the
    thresholds here works whatever the worker's environment (a LocalCluster, an existing
    cluster's ``dask worker``, a worker the nanny restarted).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
            bool(libc.mallopt(_M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD))
    except (OSError, AttributeError):  # no mallopt in this C library
        return False


def _init_worker(single_thread: bool) -> None:
    """Set up this process for extraction. ``single_thread``: a Dask worker process (one case per
    thread): SimpleITK on one thread and glibc's allocator tuned (:func:`tune_malloc`)."""
    import SimpleITK as sitk

    if single_thread:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
        _WORKER["malloc_tuned"] = tune_malloc()
    _quiet_pyradiomics()


def _extractor(params: ExtractionSettings):
    """This process's extractor for ``params``, built once per parameter set."""
    canon = params.canonical()
    if _WORKER.get("key") != canon:
        _WORKER["key"], _WORKER["extractor"] = canon, make_extractor(params)
    return _WORKER["extractor"]


def _extract_one(job: dict) -> dict:
    """Extract one case. ``job``: image, mask, label, params (dict), geometry (dict).

    Returns ``{"ok": True, "features": {name: float}, "label": int, "notes": [...], "seconds": s}`` or
    ``{"ok": False, "reason": code, "message": text, "seconds": s}``.
    """
    from graphonc.radiomics.images import CaseError, prepare

    t0 = time.perf_counter()
    params = ExtractionSettings.model_validate(job["params"])
    extractor = _extractor(params)
    try:
        prep = prepare(Path(job["image"]), Path(job["mask"]), job["label"], int(params.setting.get("label", 1)),
                       GeometrySpec.model_validate(job["geometry"]))
        try:
            raw = extractor.execute(prep.image, prep.mask, label=prep.label)
        except Exception as exc:  # pyradiomics: ROI too small, 1-D ROI, resampling failures, …
            msg = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise CaseError("extraction_failed", f"pyradiomics failed on image {job['image']} with mask "
                            f"{job['mask']} (label {prep.label}): {msg}. Fix: check the region of interest is "
                            "large enough in every direction, or the extraction settings.") from None
    except CaseError as exc:
        return {"ok": False, "reason": exc.reason, "message": exc.message, "seconds": time.perf_counter() - t0}
    feats = {k: float(v) for k, v in raw.items() if not k.startswith("diagnostics_")}
    return {"ok": True, "features": feats, "label": prep.label, "notes": prep.notes,
            "seconds": time.perf_counter() - t0}
