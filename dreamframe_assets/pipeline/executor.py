"""Where per-movie work runs: this process, worker processes, or Ray tasks.

A stage hands ``run_all`` one picklable call per movie and gets each result back as
soon as that movie finishes (so it can be written and forgotten: memory stays
bounded). What the work waits on decides where it runs:

- ``cpu`` (the offline backends): ``workers`` processes (``auto``: this machine's
  cores, started only once the movies left would take longer alone than starting them:
  a small stage runs here), or Ray tasks of one CPU each;
- ``gpu`` (diffusion, textual inversion, local transformers): one worker per GPU
  (one on a machine without any), or Ray tasks that ask for ``num_gpus=1``;
- ``io`` (a model server): threads of this process, as many as the requests the
  server may have in flight; every movie shares one client, so ``llm.concurrency``
  is a limit on the whole run. Ray adds nothing to waiting on a server, so these
  stay in the driver under ``kind: ray`` too.

Models are loaded once per worker process (``models.device.load_once``) and reused
by every movie that process runs. A movie's result depends only on its inputs and
seeds, never on which worker ran it, so outputs are byte-identical whatever the
executor and the worker count.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from typing import Any, Literal

from ..core.params import ExecutorParams

Work = Literal["cpu", "gpu", "io"]
Call = tuple[Callable[..., Any], tuple]  # a picklable top-level function and its arguments


def machine_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def gpu_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def worker_count(params: ExecutorParams, work: Work, io_limit: int = 1) -> int:
    """How many movies run at once on this machine for ``work``."""
    if work == "io":
        return io_limit
    if work == "gpu":
        return max(1, gpu_count())
    return machine_cores() if params.workers == "auto" else params.workers


def run_all(calls: Sequence[Call], params: ExecutorParams, work: Work, io_limit: int = 1) -> Iterator[tuple[int, Any]]:
    """``(index, result)`` of each call as it finishes; a call that raised yields its exception."""
    if not calls:
        return
    if params.kind == "ray" and work != "io":
        yield from _ray(calls, params, work)
        return
    workers = worker_count(params, work, io_limit)
    if workers <= 1 or len(calls) == 1:  # nothing to share: no pool to start
        for i, (fn, args) in enumerate(calls):
            yield i, _call(fn, args)
        return
    first = 0
    if work == "cpu" and params.workers == "auto" and work not in _POOLS:
        first = yield from _until_worth_a_pool(calls, workers)
        if first == len(calls):
            return
    pool = _pool(work, workers)
    futures: dict[Future, int] = {pool.submit(_call, fn, args): i for i, (fn, args) in enumerate(calls) if i >= first}
    pending = set(futures)
    try:
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            batch = sorted(done, key=futures.__getitem__)
            del done
            while batch:
                # let go of each future as it is handed back: a finished future holds its result,
                # and a stage of 1,000 movies of 4 MB keyframe shards would otherwise keep 4 GB
                future = batch.pop(0)
                index = futures.pop(future)
                error = future.exception()
                if isinstance(error, BrokenExecutor):  # a worker died (out of memory, a crash): start afresh next time
                    _POOLS.pop(work, None)
                result = error if error is not None else future.result()
                del future
                yield index, result
                del result
    finally:
        for future in pending:
            future.cancel()


# What starting a worker process costs, in seconds of wall time: a spawned worker imports the
# project, Dagster, polars, pandera (and torch where its work needs it) before its first movie.
WORKER_START_SECONDS = 4.0


def _until_worth_a_pool(calls: Sequence[Call], workers: int) -> Iterator[tuple[int, Any]]:
    """Run movies here, one after another, until the rest would take long enough alone to pay
    for starting ``workers`` processes; return how many ran. A small stage (a dozen cheap
    movies) is over before a pool would have started; a large one starts its pool after two.
    The first movie's time is not counted: it loads this process's models."""
    spent, i = [], 0
    while i < len(calls):
        t0 = time.perf_counter()
        result = _call(*calls[i])
        spent.append(time.perf_counter() - t0)
        yield i, result
        del result
        i += 1
        if len(spent) >= 2:
            per_movie = sum(spent[1:]) / len(spent[1:])
            # the pool wins when start + rest / workers < rest
            if per_movie * (len(calls) - i) > WORKER_START_SECONDS * workers / (workers - 1):
                break
    return i


# Worker pools live as long as this process, so the models a worker loaded serve the next
# stage and the next run too; a pool of another size replaces the old one.
_POOLS: dict[str, tuple[int, Any]] = {}


def _pool(work: Work, workers: int) -> Any:
    size, pool = _POOLS.get(work, (0, None))
    if pool is not None and size == workers:
        return pool
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)
    if work == "io":
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dreamframe-io")
    else:
        import multiprocessing

        # spawn: a forked copy of a process holding torch threads or a GPU context is unsafe
        context = multiprocessing.get_context("spawn")
        if work == "gpu":
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_pin_gpu,
                                       initargs=(context.Value("i", 0),))
        else:
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_share_cores,
                                       initargs=(max(1, machine_cores() // workers),))
    _POOLS[work] = (workers, pool)
    return pool


def shutdown() -> None:
    """Stop the worker pools (they also stop when this process exits)."""
    for _, pool in _POOLS.values():
        pool.shutdown(wait=True, cancel_futures=True)
    _POOLS.clear()


def _call(fn: Callable[..., Any], args: tuple) -> Any:
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - handed back to the stage, which names the movie
        return exc


def _share_cores(threads: int) -> None:
    """Each CPU worker's math libraries use its share of the cores, not all of them: N workers
    each starting one thread per core would fight over them."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)  # for libraries not loaded yet
    from threadpoolctl import threadpool_limits  # and for those the worker's imports already started

    threadpool_limits(threads)
    if "torch" in sys.modules:  # torch imported later reads OMP_NUM_THREADS
        sys.modules["torch"].set_num_threads(threads)


def _pin_gpu(counter) -> None:
    """Each worker process sees one GPU: the n-th worker to start gets GPU n."""
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    os.environ["CUDA_VISIBLE_DEVICES"] = str(index)


LOOPBACK = "127.0.0.1"


def ray_init_kwargs(params: ExecutorParams) -> dict[str, Any]:
    """What ``ray.init`` is given: join ``params.address``, or start a local cluster for this run
    without the dashboard (a web server that would run code for whoever reaches it), its host
    kept on loopback should a Ray version start it anyway. Ray's own gRPC ports listen on every
    interface whatever is asked; its token authentication (on by default) is what guards them."""
    if params.address:
        return {"address": params.address, "log_to_driver": False}
    workers = machine_cores() if params.workers == "auto" else params.workers
    return {"num_cpus": workers, "include_dashboard": False, "dashboard_host": LOOPBACK, "log_to_driver": False}


def _ray(calls: Sequence[Call], params: ExecutorParams, work: Work) -> Iterator[tuple[int, Any]]:
    """Each call as a Ray task; a GPU task asks for one GPU, so Ray places one per GPU."""
    import ray

    if not ray.is_initialized():
        ray.init(**ray_init_kwargs(params))
    # a GPU task asks for a GPU where the cluster has one; on a CPU-only cluster it would wait forever
    gpus = 1 if work == "gpu" and ray.cluster_resources().get("GPU", 0) > 0 else 0
    task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(_call)
    refs = {task.remote(fn, args): i for i, (fn, args) in enumerate(calls)}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            index = refs.pop(ref)  # the object store may free a result once no reference is left
            try:
                result = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - a worker that died (out of memory, a node lost): that movie failed
                result = exc
            del ref
            yield index, result
            del result
