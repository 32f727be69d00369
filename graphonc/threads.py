"""How many CPU threads graphonc's numerical libraries use: the CPUs this process may run on.

One rule for the CLI and the service. ``os.cpu_count()`` counts the machine; a process may be
pinned to fewer cores (``sched_setaffinity``, ``taskset``, a container's cpuset) or throttled to
a share of them (a cgroup v2 ``cpu.max`` quota). More threads than that only oversubscribe.

Nothing here imports NumPy, torch or FAISS: :func:`set_threads` exports the OpenMP/BLAS
variables (read when those libraries load) and tells the ones already loaded.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

#: Environment variables the OpenMP, MKL, OpenBLAS and NumExpr runtimes read at load time.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by a cgroup v2 quota (``cpu.max`` "quota period"), None without one."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(float(quota) / float(period), 0.0) or None
    except (ValueError, ZeroDivisionError):
        return None


def usable_cpus() -> int:
    """CPUs this process may use: its affinity set, capped by a cgroup quota (at least 1)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    quota = cgroup_cpu_limit()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


def set_threads(n: int | None = None) -> int:
    """Use ``n`` threads (default :func:`usable_cpus`) in torch, FAISS, BLAS and OpenMP; returns n.

    An explicit ``n`` (``--threads``) wins; otherwise a value already exported in
    ``OMP_NUM_THREADS`` is kept (the user's), else the usable CPUs.
    """
    if n is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        n = int(env) if env.isdigit() and int(env) > 0 else usable_cpus()
    if n < 1:
        raise ValueError(f"threads must be at least 1, got {n}")
    for var in THREAD_ENV:
        os.environ[var] = str(n)
    if "torch" in sys.modules:  # already loaded: the variables above came too late for it
        torch = sys.modules["torch"]
        torch.set_num_threads(n)
    if "faiss" in sys.modules:
        sys.modules["faiss"].omp_set_num_threads(n)
    return n
