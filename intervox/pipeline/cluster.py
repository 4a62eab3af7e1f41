"""The Dask client every stage uses: an existing scheduler, or a LocalCluster of shard workers."""

from __future__ import annotations

import logging


def connect(workers: int, scheduler: str | None = None) -> tuple[object, object | None]:
    """Return (client, cluster): a client of `scheduler` (cluster None), or of a new LocalCluster.

    The LocalCluster has one single-threaded process per worker with OMP_NUM_THREADS=1: the
    shard is the unit of work, and BLAS threads on top would oversubscribe the cores.
    """
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        env={"OMP_NUM_THREADS": "1"},
        silence_logs=logging.WARNING,
    )
    return Client(cluster), cluster
