"""The Dask client every stage uses: an existing scheduler, or a LocalCluster of shard workers."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

# Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536 (return freed memory to the OS
# at once). That also turns off glibc's adaptive mmap threshold, so every audio-sized array is a
# fresh mmap with fresh page faults: measured, a shard task ran 12-15% slower in such a worker
# than in a plain process (and as slow in a plain process with the variable set). A shard task's
# memory is bounded by its shard, so workers keep glibc's default.
WORKER_ENV_UNSET = ("MALLOC_TRIM_THRESHOLD_",)


@contextlib.contextmanager
def _unset_for_workers(names: tuple[str, ...]) -> Iterator[None]:
    """Keep `names` out of the environment that worker processes spawned here inherit.

    Both ways in: Dask's pre-spawn config, and this process's own environment, where every
    nanny started before (in tests, in a notebook) left its pre-spawn variables behind.
    """
    import dask

    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{name}": None for name in names}):
            yield
    finally:
        os.environ.update(saved)


def connect(workers: int, scheduler: str | None = None) -> tuple[object, object | None]:
    """Return (client, cluster): a client of `scheduler` (cluster None), or of a new LocalCluster.

    The LocalCluster has one single-threaded process per worker with OMP_NUM_THREADS=1: the
    shard is the unit of work, and BLAS threads on top would oversubscribe the cores. It serves
    no dashboard (its periodic updates cost the driver CPU that 2-core machines lack).
    """
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    with _unset_for_workers(WORKER_ENV_UNSET):
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            env={"OMP_NUM_THREADS": "1"},
            silence_logs=logging.WARNING,
        )
    return Client(cluster), cluster
