"""Where per-song work runs: local worker processes by default, a Ray cluster when asked.

The per-song stages (segment, featurize) hand their work to :func:`map_ordered`: a
function, a list of items, and an initializer that sets up each worker process once.
Results always come back **in input order**, so a stage writes the same shards in the
same order, byte for byte, whichever backend ran the work.

- Local (default): a process pool of ``workers`` processes (0: one per CPU core; 1: in
  this process, no pool). On Linux the workers are forked, so large read-only objects
  such as filterbanks are shared copy-on-write.
- Ray: when ``compute.ray_address`` (params) or the ``RAY_ADDRESS`` environment variable
  is set, every item becomes one Ray task (``pip install -e ".[ray]"``). The address is
  passed to ``ray.init``: ``auto`` joins the cluster this machine belongs to,
  ``ray://host:10001`` a remote one, ``local`` starts a private instance. If this process
  has already called ``ray.init``, that session is used as it is. Workers need the
  ``musiclust`` package importable and the stage's input paths readable (a shared file
  system) on every node; at most ``2 x`` the cluster's CPUs tasks are in flight, so
  memory stays bounded however long the list.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing as mp
import os
import sys
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: the environment variable Ray itself reads; it selects the Ray backend like ``compute.ray_address``
RAY_ADDRESS_ENV = "RAY_ADDRESS"


def resolve_ray_address(compute: object | None) -> str | None:
    """The Ray address to use: ``compute.ray_address``, else ``$RAY_ADDRESS``, else ``None`` (local)."""
    address = getattr(compute, "ray_address", None) if compute is not None else None
    address = address or os.environ.get(RAY_ADDRESS_ENV) or None
    return str(address).strip() or None if address else None


def map_ordered(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
    cleanup: Callable[[], None] | None = None,
    ray_address: str | None = None,
) -> Iterator[R]:
    """``fn(item)`` for every item, yielded in input order.

    ``initializer(*initargs)`` runs once in every process that calls ``fn`` (each pool
    worker, each Ray worker, or this process when ``workers`` is 1, followed then by
    ``cleanup()`` so this process is left as it was). ``fn`` and ``initializer`` must be
    module-level functions (they are pickled by reference).
    """
    items = list(items)
    if not items:
        return
    if ray_address:
        yield from _ray_map(fn, items, initializer, initargs, ray_address)
        return
    n = int(workers) if workers > 0 else (os.cpu_count() or 1)
    n = max(1, min(n, len(items)))
    if n == 1:
        if initializer is not None:
            initializer(*initargs)
        try:
            for item in items:
                yield fn(item)
        finally:
            if cleanup is not None:
                cleanup()
        return
    # fork: workers start in milliseconds and share read-only state copy-on-write;
    # elsewhere spawn (macOS/Windows) pickles the initargs once per worker
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    # Objects that exist at fork time are shared copy-on-write; the cyclic garbage collector
    # writes to every object it scans, which slowly turns those shared pages into private
    # copies in each process (memory then grows with run time). Freezing them first keeps
    # them out of the collector's reach for the life of the pool.
    gc.freeze()
    try:
        with ctx.Pool(n, initializer=initializer, initargs=initargs) as pool:
            yield from pool.imap(fn, items, chunksize=1)
    finally:
        gc.unfreeze()


# --------------------------------------------------------------------------- Ray

#: tokens of the map calls whose initializer already ran in this (Ray worker) process
_INITIALIZED: set[str] = set()


def _ray_task(token: str, setup: list, fn: Callable[[T], R], item: T) -> R:
    """One item in a Ray worker; the map call's initializer runs on the worker's first item."""
    if token not in _INITIALIZED:
        import ray

        initializer, initargs = ray.get(setup[0])  # nested in a list: fetched once, not per task
        if initializer is not None:
            initializer(*initargs)
        _INITIALIZED.add(token)
    return fn(item)


def _ray_map(
    fn: Callable[[T], R],
    items: list[T],
    initializer: Callable[..., None] | None,
    initargs: tuple[Any, ...],
    address: str,
) -> Iterator[R]:
    try:
        import ray
    except ImportError:
        raise RuntimeError(
            f"compute.ray_address / ${RAY_ADDRESS_ENV} is {address!r} but ray is not installed; "
            'install the extra (pip install -e ".[ray]") or unset both to run locally'
        ) from None
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
        log.info("ray: connected to %s", address)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    window = max(2, 2 * cpus)
    task = ray.remote(num_cpus=1)(_ray_task)
    token = uuid.uuid4().hex
    setup = [ray.put((initializer, initargs))]
    pending: deque = deque()
    for item in items:
        pending.append(task.remote(token, setup, fn, item))
        if len(pending) >= window:
            yield ray.get(pending.popleft())
    while pending:
        yield ray.get(pending.popleft())
