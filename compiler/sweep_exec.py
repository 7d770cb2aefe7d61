"""Where a sweep's points are compiled: a local process pool (the default) or a Ray cluster.

Both run the same function, :func:`evaluate`, on the same plain-data task, so a point gives the
same result whichever executor ran it. The parent process is the only one that writes results:
executors hand back ``(task, result)`` pairs as points finish, in any order.

This module is imported by every worker before anything else of nncc, so it imports nothing
heavy at the top: ``OPENBLAS_NUM_THREADS`` must be set before numpy is first imported
(multithreaded OpenBLAS is 50-100x slower on a shared 2-core machine, and workers already use
every core between them).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import pathlib
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

from nncc.machine import usable_cpus

WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# A loopback address Ray keeps as given (it replaces 127.0.0.1 and localhost by the machine's address).
LOCAL_NODE_ADDRESS = "127.0.0.2"
CRASHED = "worker process died (a crash, a signal or out of memory) while compiling this point"


_PLUGINS: set[str] = set()


class PointTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise PointTimeout()


def evaluate(task: dict[str, Any]) -> dict[str, Any]:
    """One full compile of one point, in a worker: a result row's fields, never an exception
    (a point that fails is a result too: status ``error`` or ``timeout`` with its one line)."""
    os.environ.update(WORKER_ENV)
    start = time.perf_counter()
    try:
        result = _compile(task)
    except PointTimeout:
        result = {"status": "timeout", "error": f"no result within --timeout {task['timeout_s']:g} s"}
    except Exception as e:  # noqa: BLE001 - one point's failure is recorded; the sweep goes on
        from nncc.errors import NnccError

        line = str(e) if isinstance(e, NnccError) else f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
        result = {"status": "error", "error": line}
    result["seconds"] = time.perf_counter() - start
    return result


@contextlib.contextmanager
def _time_limit(seconds: float | None):
    """A Python-level limit: SIGALRM interrupts the compile between bytecodes (a long C call,
    e.g. one onnxruntime run, finishes first). Only the main thread may set it; pool and Ray
    workers run tasks there."""
    armed = False
    if seconds:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGALRM, _alarm)
            signal.setitimer(signal.ITIMER_REAL, float(seconds))
            armed = True
    try:
        yield
    finally:
        if armed:
            signal.setitimer(signal.ITIMER_REAL, 0)


def _compile(task: dict[str, Any]) -> dict[str, Any]:
    import nncc
    from nncc import reuse
    from nncc.driver import CompileOptions, compile_model
    from nncc.pipeline import PassContext, parse_pass_spec
    from nncc.registry import TARGETS, load_plugin

    for path in task.get("plugins") or ():
        if path not in _PLUGINS:  # a worker compiles many points; a plugin registers once
            load_plugin(path)
            _PLUGINS.add(path)
    # Imports (the target's and passes' modules: seconds in a new worker on a loaded machine)
    # happen here, before the --timeout clock starts.
    target = TARGETS.get(task["target"], "--target").configure(task.get("config_file"), dict(task["sets"]))
    passes = [parse_pass_spec(spec) for spec in task["passes"]]
    # No random-input verification: hardware keys do not change the numbers; with --eval the
    # compiled model's top-1 is measured instead.
    options = CompileOptions({k: tuple(v) for k, v in (task.get("input_shapes") or {}).items()}, verify_samples=0,
                             eval_data=task.get("eval_data"), context=PassContext())
    with _time_limit(task.get("timeout_s")):
        # A worker compiles many points of one model: loaded and its shared pipeline heads run
        # once (nncc.reuse); each point compiles its own copy, as a fresh process would.
        loaded = reuse.loaded_model(task["model"], options.input_shapes)
        data = task.get("eval_data")
        shared = reuse.shared_heads(loaded, pathlib.Path(task["model"]), (reuse.file_version(data),) if data else ())
        report = compile_model(task["model"], target, passes, options, loaded=loaded, shared=shared).report
    accuracy = report["verification"].get("accuracy", {}).get("top1_compiled")
    return {"status": "ok", "error": None, "totals": report["totals"], "accuracy": accuracy,
            "warnings": len(report["warnings"]), "nncc_version": nncc.__version__}


def _init_worker(env: dict[str, str], parent: int, busy_workers) -> None:
    os.environ.update(env)
    from nncc import calibration  # numpy comes in after OPENBLAS_NUM_THREADS is set

    calibration.share_cores(busy_workers)
    # A Ctrl-C in the terminal reaches the whole process group: the parent stops the sweep,
    # workers should not print a traceback each.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A pool worker waits for work forever; when the sweep is killed (SIGKILL: no clean-up
    # runs) it would stay behind. It is the sweep's child (spawn), so it watches its parent.
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _busy(fn, task: dict[str, Any]) -> dict[str, Any]:
    """``fn(task)`` in a pool's worker, counted busy meanwhile."""
    from nncc import calibration

    with calibration.working():
        return fn(task)


class LocalPool:
    """``jobs`` worker processes, started with spawn: never a fork of the parent, whose
    onnxruntime and torch threads a fork would copy half-alive (and not forkserver, whose
    server process would outlive a killed sweep).

    At most ``jobs`` points are in flight, so when a worker dies (a segfault in a native
    library, the OOM killer), the points in flight are known: each is then rerun alone in a
    fresh one-worker pool, and only the one that kills its worker again is recorded crashed."""

    name = "local"

    def __init__(self, jobs: int):
        self.jobs = max(1, jobs)
        self.context = multiprocessing.get_context("spawn")

    def _pool(self, workers: int) -> cf.ProcessPoolExecutor:
        # Each worker calibrates (onnxruntime, reram's ADC search) on its share of the cores.
        os.environ.update(WORKER_ENV)  # inherited by every worker spawned from here on
        # Calibration in each worker (onnxruntime, reram's ADC search) takes its share of the
        # cores among the workers busy at the time (nncc.calibration.threads).
        return cf.ProcessPoolExecutor(workers, mp_context=self.context, initializer=_init_worker,
                                      initargs=(WORKER_ENV, os.getpid(), self.context.Value("i", 0)))

    def run(self, tasks: list[dict[str, Any]], fn=evaluate) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """``(task, fn(task))`` as each finishes; ``fn``: a module-level function (workers import it)."""
        queue = list(reversed(tasks))
        pool = self._pool(min(self.jobs, len(tasks)) or 1)
        running: dict[cf.Future, dict[str, Any]] = {}
        try:
            while queue or running:
                try:
                    while queue and len(running) < self.jobs:
                        future = pool.submit(_busy, fn, queue[-1])  # taken off the queue only once submitted
                        running[future] = queue.pop()
                except cf.process.BrokenProcessPool:  # broke since the last wait: the futures in flight say so
                    if not running:
                        pool = self._pool(self.jobs)
                        continue
                done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                broken = []
                for future in done:
                    task = running.pop(future)
                    try:
                        yield task, future.result()
                    except cf.process.BrokenProcessPool:
                        broken.append(task)
                if broken:
                    broken += list(running.values())  # every point in flight when the pool broke
                    running.clear()
                    pool.shutdown(wait=False, cancel_futures=True)
                    for task in broken:
                        yield task, self._alone(task, fn)
                    pool = self._pool(self.jobs)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _alone(self, task: dict[str, Any], fn) -> dict[str, Any]:
        with self._pool(1) as pool:
            try:
                return pool.submit(fn, task).result()
            except cf.process.BrokenProcessPool:
                return {"status": "crashed", "error": CRASHED, "seconds": None}

    def close(self) -> None:
        pass


class RayPool:
    """Points as Ray tasks (one CPU each, no automatic retry: a point that crashes is recorded,
    like the local pool's). ``address``: ``auto`` connects to the cluster running on this
    machine (or RAY_ADDRESS) and starts a local one when there is none; ``local`` always starts
    one; anything else (``HOST:6379``, ``ray://HOST:10001``) is an existing cluster's address.

    A local instance has ``jobs`` CPUs, no dashboard, and its session files in a temporary
    folder removed at the end. On Linux its node address is on the loopback, ``127.0.0.2``
    (LOCAL_NODE_ADDRESS): Ray rewrites ``127.0.0.1`` and ``localhost`` to the machine's own
    address (``resolve_ip_for_localhost``) but not the rest of 127.0.0.0/8, which Linux routes
    to the loopback interface; elsewhere Ray picks the address. Ray's gRPC servers still listen
    on every interface whatever the node address (no setting binds them), so what keeps other
    machines out is Ray's token authentication (on by default for a local instance since Ray
    2.5x, token in ~/.ray/auth_token). Connecting to a cluster by its address with token
    authentication needs RAY_AUTH_MODE=token, as Ray asks.

    Model, config and data paths must be readable at the same place on every node (a shared
    file system), and nncc installed there."""

    name = "ray"

    def __init__(self, address: str, jobs: int):
        from nncc.errors import NnccError

        try:
            import ray
        except ImportError:
            raise NnccError("--ray", "Ray is not installed: pip install 'nncc[ray]'") from None
        self.ray = ray
        runtime_env = {"env_vars": dict(WORKER_ENV)}
        common = {"runtime_env": runtime_env, "log_to_driver": False, "configure_logging": False, "logging_level": "ERROR"}
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network call home from a sweep
        started, self.temp_dir = False, None
        if address != "local":
            try:
                ray.init(address=address, **common)
                started = True
            except ConnectionError as e:
                if address != "auto":
                    raise NnccError("--ray", f"cannot connect to a Ray cluster at '{address}': {' '.join(str(e).split())[:200]} "
                                             "(a cluster with token authentication also needs RAY_AUTH_MODE=token)") from None
        if not started:
            # Ray's socket paths must stay under 107 bytes: a short folder, not one inside DIR.
            self.temp_dir = tempfile.mkdtemp(prefix="nncc-ray-", dir="/tmp" if os.path.isdir("/tmp") else None)
            loopback = {"_node_ip_address": LOCAL_NODE_ADDRESS} if sys.platform.startswith("linux") else {}
            ray.init(num_cpus=max(1, jobs), include_dashboard=False, _temp_dir=self.temp_dir, **loopback, **common)
        self.remotes: dict[Any, Any] = {}

    def run(self, tasks: list[dict[str, Any]], fn=evaluate) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        ray = self.ray
        if fn not in self.remotes:
            self.remotes[fn] = ray.remote(num_cpus=1, max_retries=0)(fn)
        pending = {self.remotes[fn].remote(task): task for task in tasks}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    task = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as e:  # the worker died (WorkerCrashedError, OOM)
                        result = {"status": "crashed", "error": f"{CRASHED} ({type(e).__name__})", "seconds": None}
                    yield task, result
        finally:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)

    def close(self) -> None:
        self.ray.shutdown()
        if self.temp_dir:  # the local instance's session files and logs: nothing worth keeping
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def make_executor(jobs: int | None, ray_address: str | None):
    """``--ray ADDRESS``: Ray; else a local pool of ``--jobs`` workers (default: one per CPU)."""
    jobs = jobs or usable_cpus()
    return RayPool(ray_address, jobs) if ray_address else LocalPool(jobs)
