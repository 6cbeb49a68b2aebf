"""Executors: how :func:`latentkit.grid.run_grid` maps its unit of work over the groups of a grid.

The unit is one (network, dataset, trial) group, and the grid is embarrassingly parallel by
group: a group trains (or reads) its dense network, then fine-tunes all its cells, and touches
nothing of any other group. :func:`latentkit.grid.run.run_group` does one group through the
results directory's cache, which is the shared store (every file is written atomically, and
different groups write different files, so concurrent workers are safe).
An executor calls it once per group and reports each group as it finishes; the driver then
assembles the results table from the cache in the config's order, so every executor gives the
same table.

* :class:`SerialExecutor` (default): the groups one after the other in this process.
* :class:`RayExecutor`: one `Ray <https://docs.ray.io>`_ task per group. ``address=None`` starts a
  local Ray (this machine, all its CPUs and GPUs; ``num_cpus`` caps the CPUs); an address
  (``"auto"``, ``"ray://host:10001"``) joins an existing cluster (on-premise, Kubernetes through
  KubeRay, Slurm through Ray's own launchers). A task asks for one GPU when the config's device is
  CUDA (or ``"auto"`` on a cluster with GPUs), and for ``threads_per_group`` CPUs (one when unset).
  Ray is an optional extra: ``pip install 'latentkit[ray]'``.

Resuming a killed run
---------------------
Nothing finished is lost: a group's dense network is cached as soon as it is trained, and its
cells as soon as the group's fine-tuning ends. A killed *worker* is retried by Ray
(``max_retries``); the retried task reads the dense network and the cells already cached. A killed
*driver* (or a lost cluster) is resumed by running the same command again with the same ``--out``
folder (and the same config): finished groups are read from the cache (none is recomputed),
only the groups whose cells are missing run. On a cluster, ``--out`` must be a folder every node
sees (a shared file system), since the results directory is the store.

Examples
--------
>>> from latentkit.grid.executors import make_executor
>>> type(make_executor('serial')).__name__
'SerialExecutor'
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "EXECUTORS",
    "Executor",
    "ProcessExecutor",
    "RayExecutor",
    "SerialExecutor",
    "default_executor",
    "make_executor",
    "shutdown_pools",
    "task_resources",
    "worker_pool",
]

#: Names accepted by :func:`make_executor` (and ``python -m latentkit run --executor``).
EXECUTORS = ("serial", "ray", "local")

Task = tuple[Any, ...]
Done = Callable[[Any], None]


class Executor(Protocol):
    """Maps a picklable function over argument tuples, reporting each result as it arrives."""

    def map(
        self, fn: Callable[..., Any], tasks: Sequence[Task], resources: dict[str, float], on_done: Done
    ) -> list[Any]:
        """Call ``fn(*task)`` for every task; ``on_done(result)`` as each finishes; results in task order."""
        ...  # pragma: no cover - interface


@dataclass(frozen=True)
class SerialExecutor:
    """The groups one after the other in this process (today's behaviour; ``resources`` unused)."""

    def map(
        self, fn: Callable[..., Any], tasks: Sequence[Task], resources: dict[str, float], on_done: Done
    ) -> list[Any]:
        """Run ``fn(*task)`` in order; ``on_done`` after each."""
        results = []
        for task in tasks:
            result = fn(*task)
            on_done(result)
            results.append(result)
        return results


@dataclass(frozen=True)
class ProcessExecutor:
    """The groups in ``workers`` local worker processes (``spawn``ed, so no torch state is inherited).

    Each group sets its own torch thread count (the config's ``threads_per_group``), so with that
    field set a group computes the same bits in a worker as in the serial run (tested), and
    ``workers x threads_per_group`` should not exceed the cores. The workers are this process's
    :func:`worker_pool`, kept for the next map.

    Parameters
    ----------
    workers : int, optional
        Worker processes (default: the machine's CPU count).
    """

    workers: int | None = None

    def __post_init__(self) -> None:
        w = self.workers
        if w is not None and (isinstance(w, bool) or not isinstance(w, int) or w < 1):
            raise ValueError(f"workers must be an int >= 1 or None; got {w!r}")

    def map(
        self, fn: Callable[..., Any], tasks: Sequence[Task], resources: dict[str, float], on_done: Done
    ) -> list[Any]:
        """Submit every task to a process pool; ``on_done`` as each completes; results in task order."""
        if not tasks:
            return []
        workers = min(self.workers or os.cpu_count() or 1, len(tasks))
        if workers == 1:
            return SerialExecutor().map(fn, tasks, resources, on_done)
        pool = worker_pool(workers)
        results: list[Any] = [None] * len(tasks)
        futures: dict[concurrent.futures.Future[Any], int] = {}
        try:
            for i, task in enumerate(tasks):
                futures[pool.submit(fn, *task)] = i
            for fut in concurrent.futures.as_completed(futures):
                results[futures[fut]] = fut.result()
                on_done(results[futures[fut]])
        except BaseException as exc:
            for fut in futures:  # tasks not started are dropped; running ones end in the workers
                fut.cancel()
            if isinstance(exc, concurrent.futures.process.BrokenProcessPool):
                shutdown_pools()  # a worker died: the next map starts fresh workers
            raise
        return results


#: The process's worker pools by size (:func:`worker_pool`).
_POOLS: dict[int, concurrent.futures.ProcessPoolExecutor] = {}


def worker_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """This process's pool of ``workers`` ``spawn``ed worker processes, started on first use and
    reused by every later :meth:`ProcessExecutor.map` (a chapter runs several grids: each worker
    imports torch and latentkit once, about 2 s, instead of once per grid). A task leaves no state
    behind (a group sets its own seeds and thread count), so a reused worker computes the same
    bits as a fresh one (tested). The workers keep the code they imported: after editing latentkit
    in a running session, call :func:`shutdown_pools`. They ignore SIGINT (an interrupted map
    cancels the groups not started; a running group ends and caches its cells) and exit with this
    process.

    Parameters
    ----------
    workers : int
        Worker processes (>= 1).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1; got {workers!r}")
    pool = _POOLS.get(workers)
    if pool is None or getattr(pool, "_broken", False):
        ctx = multiprocessing.get_context("spawn")
        pool = _POOLS[workers] = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_ignore_interrupts
        )
    return pool


def _ignore_interrupts() -> None:
    """Worker initializer: SIGINT is the driver's. An interrupted map stops submitting (the groups not
    started are cancelled; a running one ends and caches its cells), and an idle worker is not
    killed with a traceback when a notebook kernel's process group is interrupted at shutdown."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def shutdown_pools() -> None:
    """Stop the worker processes of :func:`worker_pool` (the next map starts new ones)."""
    while _POOLS:
        _, pool = _POOLS.popitem()
        pool.shutdown(wait=False, cancel_futures=True)


def default_executor(preset: str, device: str, threads_per_group: int | None, groups: int) -> Executor:
    """The executor ``run_grid`` uses when none is named.

    :class:`ProcessExecutor` with ``cpu_count // threads_per_group`` workers for a CPU grid of the
    quick preset whose ``threads_per_group`` is set (results then do not depend on the executor)
    and that has more than one group and more than one such worker; else :class:`SerialExecutor`.
    """
    workers = (os.cpu_count() or 1) // threads_per_group if threads_per_group else 1
    if preset == "quick" and device == "cpu" and groups > 1 and workers > 1:
        return ProcessExecutor(workers=min(workers, groups))
    return SerialExecutor()


@dataclass(frozen=True)
class RayExecutor:
    """One Ray task per group.

    Parameters
    ----------
    address : str, optional
        Ray cluster to join (``ray.init(address=...)``); ``None`` starts a local Ray, shut down
        again after the run (an already initialised Ray is used as it is and left running).
    num_cpus : int, optional
        CPUs of the local Ray started here (default: all of this machine's); not allowed with
        ``address``.
    max_retries : int
        Ray's retries of a task whose worker died (default 3); a retry resumes from the cache.
    runtime_env : dict, optional
        Ray runtime environment of the tasks (e.g. ``{"pip": ["latentkit"]}`` on a fresh cluster).
    """

    address: str | None = None
    num_cpus: int | None = None
    max_retries: int = 3
    runtime_env: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.address is not None and (not isinstance(self.address, str) or not self.address):
            raise TypeError(f"address must be a non-empty string or None; got {self.address!r}")
        if self.num_cpus is not None:
            if isinstance(self.num_cpus, bool) or not isinstance(self.num_cpus, int) or self.num_cpus < 1:
                raise ValueError(f"num_cpus must be an int >= 1 or None; got {self.num_cpus!r}")
            if self.address is not None:
                raise ValueError("num_cpus sizes a local Ray: it cannot be given with address")
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise ValueError(f"max_retries must be an int >= 0; got {self.max_retries!r}")

    def map(
        self, fn: Callable[..., Any], tasks: Sequence[Task], resources: dict[str, float], on_done: Done
    ) -> list[Any]:
        """Submit every task, then collect them with ``ray.wait`` as they complete."""
        ray = _import_ray()
        started = not ray.is_initialized()
        if started:
            ray.init(
                address=self.address,
                num_cpus=self.num_cpus,
                runtime_env=self.runtime_env,
                include_dashboard=False,
                log_to_driver=False,
            )
        try:
            opts = _ray_options(ray, resources)
            remote = ray.remote(_call).options(max_retries=self.max_retries, **opts)
            fn_ref = ray.put(fn)
            refs = [remote.remote(fn_ref, *task) for task in tasks]
            index = {ref: i for i, ref in enumerate(refs)}
            results: list[Any] = [None] * len(refs)
            pending = list(refs)
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    results[index[ref]] = ray.get(ref)
                    on_done(results[index[ref]])
            return results
        finally:
            if started:
                ray.shutdown()


def _call(fn: Callable[..., Any], *task: Any) -> Any:
    """``fn(*task)``: the Ray task (a module-level function; ``fn`` may be any picklable callable)."""
    return fn(*task)


def _import_ray() -> Any:
    """The ``ray`` module, or an ``ImportError`` saying how to install it."""
    try:
        import ray  # optional extra, imported only when the Ray executor runs
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the Ray executor needs Ray: pip install 'latentkit[ray]' (or pip install ray)"
        ) from exc
    return ray


def _ray_options(ray: Any, resources: dict[str, float]) -> dict[str, float]:
    """Ray task options from :func:`task_resources`; ``gpu="auto"`` asks for a GPU if the cluster has one."""
    gpus = resources.get("num_gpus", 0)
    if gpus == "auto":
        gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
    return {"num_cpus": resources.get("num_cpus", 1), "num_gpus": gpus}


def task_resources(device: str, threads_per_group: int | None) -> dict[str, Any]:
    """What one group's task asks of a scheduler.

    ``num_cpus`` = ``threads_per_group`` (1 when unset); ``num_gpus`` = 1 for a CUDA device,
    ``"auto"`` for ``device="auto"`` (one GPU if the cluster has any), 0 otherwise.
    """
    if device == "auto":
        gpus: Any = "auto"
    else:
        gpus = 1 if str(device).startswith("cuda") else 0
    return {"num_cpus": 1 if threads_per_group is None else threads_per_group, "num_gpus": gpus}


def make_executor(
    executor: str | Executor | None = None, *, address: str | None = None, num_cpus: int | None = None
) -> Executor:
    """An executor from its name (``"serial"``, ``"ray"``, ``"local"``: :class:`ProcessExecutor` with
    ``num_cpus`` workers), an executor (returned as is) or ``None`` (serial).

    Raises
    ------
    TypeError
        ``executor`` is neither a name, an executor nor ``None``.
    ValueError
        An unknown name, or ``address`` / ``num_cpus`` given with the serial executor.
    """
    if executor is None or executor == "serial":
        if address is not None or num_cpus is not None:
            raise ValueError("address and num_cpus need executor='ray'; the serial executor takes neither")
        return SerialExecutor()
    if isinstance(executor, str):
        if executor == "ray":
            return RayExecutor(address=address, num_cpus=num_cpus)
        if executor == "local":
            if address is not None:
                raise ValueError("address needs executor='ray'; the local executor takes num_cpus only")
            return ProcessExecutor(workers=num_cpus)
        raise ValueError(f"executor must be one of {list(EXECUTORS)}; got {executor!r}")
    if callable(getattr(executor, "map", None)):
        if address is not None or num_cpus is not None:
            raise ValueError("address and num_cpus are for executor='ray' given by name")
        return executor
    raise TypeError(f"executor must be 'serial', 'ray', an executor or None; got {type(executor).__name__}")
