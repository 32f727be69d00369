"""Radiomics extraction as tasks on a Dask distributed cluster.

One task per case: the worker reads the image and mask by path (so every worker must see the
same file system as the client, e.g. a shared mount) and returns the case's features or its
failure; the client (:func:`graphonc.radiomics.extract.extract_cases`) alone writes the cache and
the outputs. Two ways to get workers:

* no scheduler address: a :class:`distributed.LocalCluster` on this machine, ``n`` worker
  processes with one thread each (Dask's nanny starts them with ``OMP_NUM_THREADS=1`` and its
  siblings; SimpleITK is set to one thread in each task), bound to 127.0.0.1;
* ``tcp://host:8786``: an existing cluster (``dask scheduler`` + ``dask worker`` on several
  machines, dask-jobqueue on SLURM/PBS, dask-kubernetes). Every worker needs graphonc installed.

Dask reruns the tasks of a worker that dies on the remaining workers (up to
``distributed.scheduler.allowed-failures`` times per task); a case whose task kept killing
workers becomes an ``extraction_failed`` row of the errors table.
"""
from __future__ import annotations

import logging
import uuid
from contextlib import contextmanager
from typing import Iterator

from graphonc.errors import InputError

log = logging.getLogger("graphonc")

#: Seconds to wait for an external scheduler to answer before giving up.
CONNECT_TIMEOUT_S = 10


def _extract_task(job: dict) -> dict:
    """A case's extraction, run on a worker (see :func:`graphonc.radiomics.worker._extract_one`)."""
    from graphonc.radiomics import worker

    if not worker._WORKER.get("initialised"):
        worker._init_worker(single_thread=True)  # one thread per task: a worker's threads are its cores
        worker._WORKER["initialised"] = True
    return worker._extract_one(job)


@contextmanager
def extraction_client(scheduler: str | None, n_workers: int) -> Iterator["distributed.Client"]:  # noqa: F821
    """A Dask client: on the cluster at ``scheduler``, or on a new local cluster of ``n_workers``.

    Raises:
        InputError: nothing answered at ``scheduler``.
    """
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
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
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


def run_jobs(client, jobs: dict[str, dict]) -> Iterator[tuple[str, dict]]:
    """Submit one task per job (``{case_id: job}``) and yield ``(case_id, result)`` as they finish.

    A task that raised, or that kept killing its workers, yields a failed result (never raises),
    so every other case still finishes.
    """
    from distributed import as_completed

    run = uuid.uuid4().hex[:12]  # task keys unique to this run; case ids may be any text
    futures = {client.submit(_extract_task, job, key=f"graphonc-radiomics-{run}-{i}", pure=False): case_id
               for i, (case_id, job) in enumerate(jobs.items())}
    for fut in as_completed(futures, loop=client.loop):
        case_id = futures[fut]
        try:
            res = fut.result()
        except Exception as exc:  # KilledWorker, CommClosedError, a crash in the task itself
            job = jobs[case_id]
            res = {"ok": False, "reason": "extraction_failed", "seconds": 0.0,
                   "message": f"extracting image {job['image']} failed on the cluster ({type(exc).__name__}: "
                   f"{str(exc)[:200]}): the worker died (out of memory, a crash in a native library) or was "
                   "lost. Fix: rerun; finished cases are cached."}
        fut.release()
        yield case_id, res
