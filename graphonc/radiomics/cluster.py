"""Radiomics extraction as tasks on a Dask distributed cluster.

A task extracts one case or a few (``cases_per_task``): the worker reads each image and mask by
path (so every worker must see the same file system as the client, e.g. a shared mount) and
returns each case's features or its failure; the client
(:func:`graphonc.radiomics.extract.extract_cases`) alone writes the cache and the outputs. Two
ways to get workers:

* no scheduler address: a :class:`distributed.LocalCluster` on this machine, ``n`` worker
  processes with one thread each (Dask's nanny starts them with ``OMP_NUM_THREADS=1`` and its
  siblings; SimpleITK is set to one thread and glibc's allocator tuned in each worker by
  :func:`graphonc.radiomics.worker._init_worker`), bound to 127.0.0.1, with :data:`DASK_SETTINGS`;
* ``tcp://host:8786``: an existing cluster (``dask scheduler`` + ``dask worker`` on several
  machines, dask-jobqueue on SLURM/PBS, dask-kubernetes). Every worker needs graphonc installed;
  :func:`dask_config_yaml` is the Dask config file its machines should have.

Dask reruns the tasks of a worker that dies on the remaining workers (up to
``distributed.scheduler.allowed-failures`` times per task). A task of several cases that fails
as a whole (it kept killing workers) is resubmitted one case per task, so only the case that
crashes becomes an ``extraction_failed`` row of the errors table, as without chunking.
"""
from __future__ import annotations

import logging
import uuid
from contextlib import contextmanager
from typing import Iterator, Mapping

from graphonc.errors import InputError
from graphonc.threads import THREAD_ENV

log = logging.getLogger("graphonc")

#: Seconds to wait for an external scheduler to answer before giving up.
CONNECT_TIMEOUT_S = 10

#: Dask settings of the clusters graphonc starts (dotted keys of ``dask.config``), measured on 2
#: cores (docs/scaling.md): with Dask's defaults an idle 2-worker LocalCluster (scheduler, 2
#: nannies, 2 workers) uses 0.08-0.1 of a core, with these 0.01-0.02:
#:
#: * the statistical profiler off: it samples every thread's stack every 10 ms (1% of a core per
#:   idle worker, more inside pyradiomics' deep stacks);
#: * event-loop health ticks every 1 s instead of 20 ms, and the system monitor every 2 s.
#:
#: (Dask's ``MALLOC_TRIM_THRESHOLD_`` is not unset here: the nanny also exports it into the
#: client's own environment, where a later cluster inherits it; each worker fixes glibc's
#: thresholds itself instead, :func:`graphonc.radiomics.worker.tune_malloc`.)
DASK_SETTINGS: dict[str, object] = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}

#: Automatic ``cases_per_task``: at least this many tasks per worker thread, so the workers' last
#: tasks end close together (a worker idles half a task at the end on average: < 0.5% of the run) ...
TASKS_PER_WORKER = 100
#: ... and at most this many cases per task: Dask's 3.4-5 ms of CPU per task (client, scheduler and
#: worker together, measured) is then about 0.3 ms per case, and a client killed mid-run loses at most
#: this many cases per worker (extracted but not yet cached).
MAX_CASES_PER_TASK = 16


def dask_config_yaml() -> str:
    """:data:`DASK_SETTINGS` as a Dask config file, for the machines of an existing cluster
    (``~/.config/dask/graphonc.yaml``, or any file named by ``DASK_CONFIG``)."""
    import yaml

    nested: dict = {}
    for dotted, value in DASK_SETTINGS.items():
        *parents, leaf = dotted.split(".")
        node = nested
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return yaml.safe_dump(nested, sort_keys=True)


def auto_cases_per_task(n_cases: int, n_threads: int) -> int:
    """Cases per task from the number of cases and of worker threads (see :data:`TASKS_PER_WORKER`)."""
    return max(1, min(MAX_CASES_PER_TASK, n_cases // max(1, n_threads * TASKS_PER_WORKER)))


def _init_this_worker() -> None:
    from graphonc.radiomics import worker

    if not worker._WORKER.get("initialised"):
        worker._init_worker(single_thread=True)  # one thread per task: a worker's threads are its cores
        worker._WORKER["initialised"] = True


def warm_up(job: dict) -> float:
    """Import pyradiomics and build the extractor of ``job``'s parameters on a worker, without
    extracting; returns the seconds it took (a worker's one-off start-up cost)."""
    import time

    t0 = time.perf_counter()
    _init_this_worker()
    from graphonc.radiomics import images, worker  # noqa: F401  (the imports a first case pays)
    from graphonc.radiomics_config import ExtractionSettings

    worker._extractor(ExtractionSettings.model_validate(job["params"]))
    return time.perf_counter() - t0


def _extract_tasks(jobs: list[dict]) -> list[dict]:
    """The cases of one task, run on a worker (see :func:`graphonc.radiomics.worker._extract_one`)."""
    from graphonc.radiomics import worker

    _init_this_worker()
    return [worker._extract_one(job) for job in jobs]


@contextmanager
def extraction_client(scheduler: str | None, n_workers: int,
                      settings: Mapping[str, object] = DASK_SETTINGS) -> Iterator["distributed.Client"]:  # noqa: F821
    """A Dask client: on the cluster at ``scheduler``, or on a new local cluster of ``n_workers``
    started with the Dask config ``settings`` (dotted keys; ``{}``: Dask's defaults).

    Raises:
        InputError: nothing answered at ``scheduler``.
    """
    import dask
    from distributed import Client, LocalCluster

    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise InputError(f"--scheduler {scheduler}: no Dask scheduler answered within {CONNECT_TIMEOUT_S} s "
                             f"({reason}). Fix: start one (`dask scheduler`, then `dask worker {scheduler}` on "
                             "each machine) or leave out --scheduler to use a local cluster.") from None
    else:
        with dask.config.set(dict(settings)):  # read when the scheduler and nannies start; nannies pass it on
            # one BLAS/OpenMP thread per worker even when this process exported more (set_threads):
            # the nanny's own default yields to the parent's environment
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR,
                                   env={var: "1" for var in THREAD_ENV})
        client = Client(cluster, set_as_default=False)
    try:
        info = client.scheduler_info()
        dashboard = client.dashboard_link if "dashboard" in info.get("services", {}) else "none (needs bokeh)"
        log.warning("radiomics extract: Dask scheduler %s, %d worker(s), dashboard %s",
                    client.scheduler.address, len(info.get("workers", {})), dashboard)
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def worker_threads(client) -> int:
    """Task slots of the cluster now: the sum of its workers' threads (at least 1)."""
    workers = client.scheduler_info().get("workers", {})
    return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))


def _failed(job: dict, exc: BaseException) -> dict:
    return {"ok": False, "reason": "extraction_failed", "seconds": 0.0,
            "message": f"extracting image {job['image']} failed on the cluster ({type(exc).__name__}: "
            f"{str(exc)[:200]}): the worker died (out of memory, a crash in a native library) or was "
            "lost. Fix: rerun; finished cases are cached."}


def run_jobs(client, jobs: dict[str, dict], cases_per_task: int = 1) -> Iterator[tuple[str, dict]]:
    """Submit the jobs (``{case_id: job}``), ``cases_per_task`` per task, and yield ``(case_id,
    result)`` as tasks finish (a task's cases together).

    A task that raised or kept killing its workers is resubmitted one case per task when it held
    several; a single case's task that failed yields a failed result (never raises), so every
    other case still finishes.
    """
    from distributed import as_completed

    run = uuid.uuid4().hex[:12]  # task keys unique to this run; case ids may be any text
    ids = list(jobs)
    n = max(1, int(cases_per_task))
    tasks = [ids[i:i + n] for i in range(0, len(ids), n)]

    def submit(key: str, case_ids: list[str]):
        # the jobs of a task share their params/geometry dicts: pickled once per task
        return client.submit(_extract_tasks, [jobs[c] for c in case_ids], key=key, pure=False)

    futures = {submit(f"graphonc-radiomics-{run}-{i}", chunk): chunk for i, chunk in enumerate(tasks)}
    queue = as_completed(list(futures), loop=client.loop)
    for fut in queue:
        chunk = futures.pop(fut)
        try:
            results = fut.result()
        except Exception as exc:  # KilledWorker, CommClosedError, a crash in the task itself
            fut.release()
            if len(chunk) > 1:
                log.warning("radiomics extract: a task of %d cases failed on the cluster (%s); rerunning them one "
                            "case per task", len(chunk), type(exc).__name__)
                for case_id in chunk:
                    retry = submit(f"graphonc-radiomics-{run}-retry-{uuid.uuid4().hex[:8]}", [case_id])
                    futures[retry] = [case_id]
                    queue.add(retry)
                continue
            results = [_failed(jobs[chunk[0]], exc)]
        else:
            fut.release()
        yield from zip(chunk, results)
