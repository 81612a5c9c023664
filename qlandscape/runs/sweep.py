"""Sweeps: a ``[base]`` run config plus ``[grid]`` axes whose Cartesian product gives the runs.

A ``[zip]`` table adds axes that advance together: its lists (run fields that are not ``[grid]`` axes, all of one
length) give one combination per position, and each is crossed with the grid. ``[grid] seed = [0, 1]`` with
``[zip] layers = [1, 2, 4]`` and ``lr = [0.1, 0.05, 0.02]`` gives 6 runs: each (layers, lr) pair for both seeds.

The whole sweep is validated before any run starts: every grid point's :class:`~qlandscape.runs.config.RunConfig`
is built (so a bad axis name or value fails naming it and the sweep file) and every metric table is checked against
the registered run metrics and their settings. Each run is :func:`qlandscape.runs.run.execute_run`, a pure function
of its config committing ``OUT/<run id>`` as a whole, so finished runs are kept on a rerun and a killed sweep loses
only the runs in flight.

Resume and shared work: a run is kept when its directory holds a finished (complete or diverged), undamaged run of
the same dataset content (:mod:`qlandscape.runs.layout`); a damaged run, a failed one and one whose dataset changed
are computed again. Workers claim a run by taking its directory's lock without waiting; one that another process
holds (a second sweep over the same ``OUT``, a ``qlandscape run``) is skipped and taken up again once the rest is
done, waiting for it then. Two sweeps over one folder thus compute each run once between them.

Executors: in-process (``workers=1``), local processes (one torch thread each), or a Dask distributed cluster
(``dask=ADDRESS`` or a ``distributed.Client``; the optional extra ``qlandscape[dask]``). A Dask sweep stops with one
message when its scheduler goes away or when every worker has been gone for ``worker_timeout`` seconds.
After every finished run the manifest ``OUT/sweep.json`` (the sweep config, the run ids, each run's status) is
rewritten atomically under the lock of ``OUT``; it describes the latest sweep over ``OUT``, while
:func:`qlandscape.runs.tables.load_runs` reads every run there.
"""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import torch
from tqdm.auto import tqdm

from qlandscape.core import io
from qlandscape.core.errors import ConfigError, is_finite_number
from qlandscape.core.threads import usable_cpus
from qlandscape.runs.config import SETTINGS, RunConfig
from qlandscape.runs.layout import FINISHED, RUN_FILE, check_run, lock_run, read_info
from qlandscape.runs.registry import check_metrics
from qlandscape.runs.run import execute, stale_reason
from qlandscape.runs.tables import rows_of
from qlandscape.runs.transaction import LockHeld, locked
from qlandscape.sim.allocator import retain_freed_memory
from qlandscape.sim.backends import available_devices
from qlandscape.sim.circuits import build_circuit

__all__ = ["MANIFEST", "Sweep", "sweep_from_dict", "load_sweep", "as_sweep", "run_one", "run_sweep", "ClusterLost"]

log = logging.getLogger(__name__)
MANIFEST = "sweep.json"
_MARK_TIMEOUT = 5.0  # seconds to wait for a dead worker's run lock before leaving its status as it is
_DASK_POLL = 0.1  # seconds between looks at the Dask futures
_DASK_CHECK_EVERY = 1.0  # seconds between asking the scheduler for its workers
_DASK_CLOSE_TIMEOUT = 5  # seconds to close a client whose scheduler may be gone
_DASK_GATHER_TIMEOUT = 10.0  # seconds to fetch a finished run's row before looking at the cluster again


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: the base fields, the grid axes (in file order) and the runs they give."""

    base: dict
    grid: dict
    runs: tuple[RunConfig, ...]
    points: tuple[dict, ...]  # the grid values of each run, same order as ``runs``
    source: str | None = None
    zipped: dict | None = None  # [zip] axes: lists of one length that advance together

    def to_dict(self) -> dict[str, Any]:
        """The sweep config as plain JSON (what ``sweep.json`` records)."""
        return {"base": self.base, "grid": self.grid, "zip": self.zipped or {}, "source": self.source}

    def run_ids(self) -> list[str]:
        """Run directory names, in grid order."""
        return [config.run_id() for config in self.runs]


def sweep_from_dict(data: Mapping[str, Any], source: str | None = None) -> Sweep:
    """Validate a sweep given as ``{"base": {...}, "grid": {axis: [values]}, "zip": {axis: [values]}}`` (``grid``
    and ``zip`` optional) and build every run's config, in grid order with the zipped positions innermost."""
    where = source or "sweep"
    if not isinstance(data, Mapping):
        raise ConfigError("sweep", data, "expected a table with [base] and [grid]", source=source)
    for key in data:
        if key not in ("base", "grid", "zip"):
            raise ConfigError(key, data[key], "is not a sweep table; expected [base], [grid] and [zip]", source=source)
    base = dict(data.get("base", {}))
    grid = dict(data.get("grid", {}))
    zipped = dict(data.get("zip", {}))
    fields = SETTINGS
    for axis, values in zipped.items():
        if axis not in fields or axis in grid:
            raise ConfigError(
                f"zip.{axis}", values, "expected a run field that is not also a [grid] axis", source=source
            )
        lengths = {len(v) if isinstance(v, list) else -1 for v in zipped.values()}
        if len(lengths) != 1 or lengths == {-1} or lengths == {0}:
            raise ConfigError(
                f"zip.{axis}",
                values,
                "expected non-empty lists of one common length (zipped "
                "axes advance together, e.g. a learning rate per layer count)",
                source=source,
            )
    for axis, values in grid.items():
        if axis not in fields:
            raise ConfigError(
                f"grid.{axis}",
                values,
                f"'{axis}' is not a run field; expected one of {', '.join(fields)}",
                source=source,
            )
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid.{axis}", values, "expected a non-empty list of values", source=source)
        seen = [json.dumps(v, sort_keys=True) for v in values]
        if len(set(seen)) != len(seen):
            raise ConfigError(f"grid.{axis}", values, "expected distinct values", source=source)
    try:
        RunConfig.from_dict(base, source=f"{where} [base]")
    except ConfigError as exc:
        if exc.field not in grid and exc.field not in zipped:  # a field the axes set anyway may be off in [base]
            raise
    check_metrics(base.get("metrics", {}), f"{where} [base]")
    runs, points, ids = [], [], set()
    zip_rows = [dict(zip(zipped, row, strict=True)) for row in zip(*zipped.values(), strict=True)] if zipped else [{}]
    for combo in itertools.product(*grid.values(), zip_rows):
        point = {**dict(zip(grid, combo[:-1], strict=True)), **combo[-1]}
        label = ", ".join(f"{k}={json.dumps(v)}" for k, v in point.items())
        config = RunConfig.from_dict({**base, **point}, source=f"{where} [grid point {label}]")
        if config.run_id() in ids:  # e.g. equal values spelt differently (1 and 1.0)
            continue
        ids.add(config.run_id())
        runs.append(config)
        points.append(point)
    _check_circuits(runs, points, where)
    return Sweep(base=base, grid=grid, runs=tuple(runs), points=tuple(points), source=source, zipped=zipped)


def _check_circuits(runs: list[RunConfig], points: list[dict], where: str) -> None:
    # The ansatz (with its qubits, layers and readout) and the backend name are otherwise only checked when a
    # run builds its model, so a typo in one grid value would fail that run after the others had trained.
    seen: set[str] = set()
    devices = available_devices()
    for config, point in zip(runs, points, strict=True):
        key = json.dumps(
            [config.ansatz, config.qubits, config.layers, config.observables, config.measure_qubits, config.backend]
        )
        if config.model != "qnn" or key in seen:
            continue
        seen.add(key)
        label = ", ".join(f"{k}={json.dumps(v)}" for k, v in point.items())
        try:
            build_circuit(
                config.ansatz,
                config.qubits,
                config.layers,
                observables=config.observables,
                measure_qubits=config.measure_qubits,
            )
            if config.backend not in devices:
                raise ConfigError("backend", config.backend, f"expected one of {devices}")
        except ConfigError as exc:
            raise ConfigError(exc.field, exc.value, exc.allowed, source=f"{where} [grid point {label}]") from None


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep config (TOML with ``[base]``, ``[grid]`` and optionally ``[zip]``)."""
    data = io.read_toml(path, "sweep config")
    return sweep_from_dict(data, source=str(path))


def as_sweep(config: Sweep | str | Path | Mapping[str, Any]) -> Sweep:
    """A :class:`Sweep` from itself, a TOML path or a dict."""
    if isinstance(config, Sweep):
        return config
    if isinstance(config, (str, os.PathLike)):
        return load_sweep(config)
    return sweep_from_dict(config)


# ---------------------------------------------------------------------------------------------------- execution


def _init_worker(threads: int = 1) -> None:
    torch.set_num_threads(threads)


def _init_local_worker(threads: int, parent: int) -> None:
    """Initializer of the local process pool: one torch thread, and exit when the sweep process ``parent`` is gone
    (also when it went while this worker was still starting: its pid is passed, not read here)."""
    _init_worker(threads)
    matplotlib.use("Agg")  # the worker writes figures to files; it never opens a window
    try:
        retain_freed_memory()  # a process of the sweep's own: malloc keeps freed memory (qlandscape.sim.allocator)
    except ConfigError:
        pass  # a bad QLANDSCAPE_MALLOC then fails each run with its message instead of breaking the pool

    def watch() -> None:
        # A sweep killed with SIGKILL cannot stop its pool: the workers would go on with the runs already queued
        # and then wait forever. What they leave half done stays "running" and is redone on the next sweep.
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="qlandscape-parent-watch", daemon=True).start()


def run_one(config: dict, out: str, threads: int | None = None, wait: bool = False) -> dict[str, Any]:
    """Execute one run (in whichever process or Dask worker calls this), claiming its directory through its lock;
    never raises for a failed run. The row's ``status`` is the run's status afterwards, or ``busy`` when another
    process holds the run and ``wait`` is False; ``computed`` says whether this call trained it."""
    if threads is not None:
        _init_worker(threads)
    start = time.perf_counter()
    run_config = RunConfig.from_dict(config)
    error = None
    try:
        done = execute(run_config, out, wait=wait)
        status, computed = done.status, done.computed
    except LockHeld:
        status, computed = "busy", False
    except Exception as exc:  # recorded in run.json by execute; the sweep goes on
        status, computed, error = "failed", True, f"{type(exc).__name__}: {exc}"
    return {
        "id": run_config.run_id(),
        "status": status,
        "error": error,
        "computed": computed,
        "seconds": time.perf_counter() - start,
    }


class _Manifest:
    """``sweep.json``: rewritten atomically, under the lock of ``OUT``, whenever a run's status changes."""

    def __init__(self, sweep: Sweep, out: Path) -> None:
        self.out = out
        self.path = out / MANIFEST
        self.sweep = sweep
        self.entries = {
            rid: {"id": rid, "point": point, "status": "pending"}
            for rid, point in zip(sweep.run_ids(), sweep.points, strict=True)
        }

    def update(self, rid: str, **fields: Any) -> None:
        self.entries[rid].update({k: v for k, v in fields.items() if v is not None})
        if fields.get("status") in FINISHED:
            self.entries[rid].pop("error", None)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self.entries.values():
            counts[entry["status"]] = counts.get(entry["status"], 0) + 1
        return counts

    def write(self) -> None:
        record = {
            "sweep": self.sweep.to_dict(),
            "n_runs": len(self.entries),
            "counts": self.counts(),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "run_ids": list(self.entries),
            "runs": list(self.entries.values()),
        }
        with locked(self.out):  # two sweeps over one OUT: whole writes, and the .tmp files of dead ones tidied
            io.write_json(self.path, record)


def _progress_bar(total: int, initial: int, enabled: bool) -> tqdm:
    return tqdm(total=total, initial=initial, desc="sweep", unit="run", disable=not enabled, dynamic_ncols=True)


def run_sweep(
    config: Sweep | str | Path | Mapping[str, Any],
    out: str | Path,
    *,
    workers: int | None = None,
    dask: Any = None,
    progress: bool = True,
    worker_timeout: float = 60.0,
) -> list[dict[str, Any]]:
    """Run every grid point of a sweep into ``out``, keeping finished runs; one row per run, in grid order, with
    ``computed``: whether this sweep trained it.

    ``workers``: 1 runs in this process (on its torch threads); more uses that many local processes (spawned, one
    torch thread each); None means one per CPU this process may use (:func:`qlandscape.core.threads.usable_cpus`:
    the affinity mask and the cgroup CPU quota, which ``os.cpu_count()`` ignores). ``dask``: a scheduler address,
    ``"local"`` (a LocalCluster of ``workers`` processes) or a ``distributed.Client``; ``out`` must then be on a
    filesystem every worker sees.
    ``worker_timeout``: seconds a Dask sweep goes on after its last worker left before it stops with a message
    (a cluster that never had a worker is waited for); that, or a scheduler gone, raises :class:`ClusterLost`.

    Runs are claimed through their directories' locks: a run that another process (a second sweep over ``out``, a
    ``qlandscape run``) is computing is skipped and taken up again at the end, when the sweep waits for it and keeps
    what it finished. A failed run is recorded (its run.json and the manifest carry the error), the others go on,
    and a rerun retries it; complete and diverged runs are kept, damaged ones and ones whose dataset changed are
    computed again. The manifest's entries say whether this sweep computed a run (``skipped``: it did not).
    """
    sweep = as_sweep(config)
    out = Path(out).resolve()
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError("workers", workers, "expected a positive integer")
    if not (is_finite_number(worker_timeout) and worker_timeout > 0):
        raise ConfigError("worker_timeout", worker_timeout, "expected a positive number of seconds")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("out", str(out), f"cannot be created as a folder ({exc.strerror or exc})") from exc
    manifest = _Manifest(sweep, out)
    todo = []
    for config_, rid in zip(sweep.runs, sweep.run_ids(), strict=True):
        state = check_run(out / rid)
        reason = stale_reason(state.info or {}, config_) if state.finished else None
        if state.finished and reason is None:
            manifest.update(rid, status=state.status, skipped=True)
            continue
        if state.status == "damaged":
            log.warning("run %s is damaged (%s); computing it again", rid, state.problem)
        elif reason is not None:
            log.warning("run %s: %s; computing it again", rid, reason)
        todo.append(config_)
    manifest.write()
    n_workers = workers or usable_cpus()
    log.info(
        "sweep of %d runs into %s: %d already complete or diverged (skipped), %d to compute (%s)",
        len(sweep.runs),
        out,
        len(sweep.runs) - len(todo),
        len(todo),
        f"Dask at {dask}" if dask is not None else f"{min(n_workers, max(1, len(todo)))} worker(s)",
    )
    bar = _progress_bar(len(sweep.runs), len(sweep.runs) - len(todo), progress)
    by_id = {c.run_id(): c for c in todo}
    busy: list[RunConfig] = []
    failed = 0

    def finished(result: dict[str, Any]) -> None:
        nonlocal failed
        if result["status"] == "busy":
            busy.append(by_id[result["id"]])
            return
        manifest.update(
            result["id"],
            status=result["status"],
            error=result["error"],
            seconds=round(result["seconds"], 3),
            skipped=not result.get("computed", True),
        )
        manifest.write()
        bar.update(1)
        log.info("run %s: %s in %.1f s", result["id"], result["status"], result["seconds"])
        if result["status"] not in FINISHED:
            failed += 1
            bar.set_postfix(failed=failed)
            log.warning("run %s %s: %s", result["id"], result["status"], result["error"])

    try:
        if not todo:
            pass
        elif dask is not None:
            with _dask_client(dask, workers) as (client, address):
                _in_rounds(
                    todo,
                    busy,
                    lambda batch, wait: _run_dask(client, address, batch, out, wait, finished, worker_timeout),
                )
        elif n_workers == 1 or (len(todo) == 1 and workers is None):
            _in_rounds(
                todo, busy, lambda batch, wait: [finished(run_one(c.to_dict(), str(out), wait=wait)) for c in batch]
            )
        else:
            _in_rounds(
                todo, busy, lambda batch, wait: _run_processes(batch, out, min(n_workers, len(batch)), finished, wait)
            )
    finally:
        bar.close()
    rows = rows_of(out, sweep.run_ids())
    for row in rows:
        row["computed"] = manifest.entries[row["id"]].get("skipped") is False
    return rows


def _in_rounds(todo: list[RunConfig], busy: list[RunConfig], run_batch: Callable[[list[RunConfig], bool], Any]) -> None:
    """Claim every run without waiting, then come back to those another process held (``busy``, filled by the
    batch's callback) and wait for them."""
    busy.clear()
    run_batch(todo, False)
    if busy:
        held = list(busy)
        log.warning("%d runs are being computed by another process; waiting for them", len(held))
        busy.clear()
        run_batch(held, True)


def _run_processes(todo: list[RunConfig], out: Path, workers: int, finished, wait: bool) -> None:
    """Local processes; a worker that dies (killed, out of memory) fails the runs it had in flight, the rest go on."""
    pending = list(todo)
    context = multiprocessing.get_context("spawn")
    while pending:
        started = time.time()
        pool = ProcessPoolExecutor(
            max_workers=min(workers, len(pending)),
            mp_context=context,
            initializer=_init_local_worker,
            initargs=(1, os.getpid()),
        )
        futures: dict[Future, RunConfig] = {pool.submit(run_one, c.to_dict(), str(out), None, wait): c for c in pending}
        broken: list[RunConfig] = []
        try:
            remaining = set(futures)
            while remaining:
                done, remaining = wait_futures(remaining, return_when=FIRST_COMPLETED)
                for future in done:
                    try:
                        finished(future.result())
                    except BrokenProcessPool:
                        broken.append(futures[future])
        except BaseException:  # Ctrl-C: stop now; queued runs would otherwise still start in the workers
            _stop_workers(pool)  # before shutdown(), which forgets the processes
            pool.shutdown(wait=False, cancel_futures=True)
            for config_ in pending:
                if _started_since(out / config_.run_id(), started):
                    _mark_failed(out / config_.run_id(), "the sweep was interrupted", status="interrupted")
            raise
        pool.shutdown(wait=True)
        in_flight = [c for c in broken if _started_since(out / c.run_id(), started)]
        if broken and not in_flight:
            in_flight = broken  # cannot tell which one killed the pool: fail them all rather than loop
        for config_ in in_flight:
            error = "worker process died while this run was in flight (killed, out of memory or a crash)"
            _mark_failed(out / config_.run_id(), error)
            finished({"id": config_.run_id(), "status": "failed", "error": error, "seconds": 0.0})
        pending = [c for c in broken if c not in in_flight]


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    stop = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if stop is not None:
        stop()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()


def _started_since(path: Path, since: float) -> bool:
    try:
        return (path / RUN_FILE).stat().st_mtime >= since - 1.0
    except OSError:
        return False


def _mark_failed(path: Path, error: str, status: str = "failed") -> None:
    """Record a run whose worker went away as failed, unless its lock shows that someone still computes it."""
    try:
        with lock_run(path, timeout=_MARK_TIMEOUT):
            info = read_info(path)
            if info.get("status") == "running":
                info.update(status=status, error=error)
                io.write_json(path / RUN_FILE, info)
    except (LockHeld, ConfigError, OSError, ValueError):
        return


# ---------------------------------------------------------------------------------------------------- Dask


@contextmanager
def _dask_client(dask: Any, workers: int | None) -> Iterator[tuple[Any, str]]:
    """A Dask client for ``dask`` (a scheduler address, ``"local"`` or a client) and a name for messages; closes
    what it opened."""
    try:  # Dask is an optional dependency (the extra qlandscape[dask]): imported only when a sweep asks for it
        from dask.distributed import Client, LocalCluster  # noqa: PLC0415 (optional dependency)
    except ImportError as exc:
        raise ConfigError(
            "dask", dask, "needs the optional extra: pip install 'qlandscape[dask]' (dask.distributed is not installed)"
        ) from exc
    if isinstance(dask, Client):
        yield dask, str(getattr(dask.scheduler, "address", "the client's scheduler"))
        return
    cluster = None
    if dask == "local":
        cluster = LocalCluster(
            n_workers=workers or usable_cpus(),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        client = Client(cluster)
    else:
        try:
            client = Client(dask, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError("dask", dask, f"could not connect to a Dask scheduler there ({exc})") from exc
    try:
        yield client, str(dask)
    finally:
        try:
            client.close(timeout=_DASK_CLOSE_TIMEOUT)
        except Exception as exc:  # a scheduler that went away: nothing is left to close
            log.debug("closing the Dask client: %s", exc)
        if cluster is not None:
            cluster.close()


def _dask_workers(client: Any) -> int | None:
    """The number of workers the scheduler knows, or None when it cannot be reached."""
    if client.status not in ("running", "newly-created"):
        return None
    try:
        return len(client.scheduler_info(n_workers=-1)["workers"])
    except Exception:  # the scheduler went away (CommClosedError, OSError, a timeout): said by the caller
        return None


class ClusterLost(RuntimeError):
    """A Dask sweep stopped because its scheduler went away or its workers have all been gone too long; the
    message says which and how many runs are not finished (finished ones are kept: rerun the sweep to resume)."""


def _unfinished(out: Path, todo: list[RunConfig]) -> int:
    return sum(not check_run(out / c.run_id()).finished for c in todo)


def _scheduler_gone(address: str, out: Path, todo: list[RunConfig]) -> ClusterLost:
    return ClusterLost(
        f"the Dask scheduler at {address} went away; {_unfinished(out, todo)} of {len(todo)} runs are not "
        "finished (finished runs are kept): start the scheduler and workers again and rerun the sweep to resume"
    )


def _run_dask(
    client: Any, address: str, todo: list[RunConfig], out: Path, wait: bool, finished, worker_timeout: float
) -> None:
    """Submit the runs and collect them, watching the cluster: the sweep stops with one message when the scheduler
    goes away or when no worker has been connected for ``worker_timeout`` seconds after the last one left."""
    pending: dict[Any, RunConfig] = {}
    for config_ in todo:
        future = client.submit(
            run_one,
            config_.to_dict(),
            str(out),
            1,
            wait,
            pure=False,
            key=f"qlandscape-run-{config_.run_id()}-{time.time_ns()}",
        )
        pending[future] = config_
    had_workers, gone_since, told, checked = False, None, False, 0.0
    try:
        while pending:
            for future in [f for f in pending if f.done()]:
                config_ = pending.pop(future)
                try:
                    result = future.result(timeout=_DASK_GATHER_TIMEOUT)
                except (TimeoutError, OSError):
                    # No answer, or a connection failed (CommClosedError is an OSError): the scheduler went away,
                    # or the worker holding the result did and the scheduler computes it again. Not a failed run.
                    if _dask_workers(client) is None:
                        raise _scheduler_gone(address, out, todo) from None
                    pending[future] = config_
                    continue
                except Exception as exc:  # the worker died (KilledWorker), the task could not run, or no scheduler
                    if _dask_workers(client) is None:
                        raise _scheduler_gone(address, out, todo) from None
                    error = f"{type(exc).__name__}: {exc}"
                    _mark_failed(out / config_.run_id(), error)
                    result = {"id": config_.run_id(), "status": "failed", "error": error, "seconds": 0.0}
                finished(result)
            if not pending:
                break
            now = time.monotonic()
            if now - checked >= _DASK_CHECK_EVERY:
                checked = now
                n_workers = _dask_workers(client)
                if n_workers is None:
                    raise _scheduler_gone(address, out, todo)
                if n_workers:
                    had_workers, gone_since = True, None
                elif had_workers:
                    gone_since = gone_since if gone_since is not None else now
                    if now - gone_since > worker_timeout:
                        raise ClusterLost(
                            f"every Dask worker of {address} is gone (none for {worker_timeout:g} s); "
                            f"{_unfinished(out, todo)} of {len(todo)} runs are not finished (finished runs are "
                            "kept): start workers and rerun the sweep to resume"
                        )
                elif not told:
                    log.warning("waiting for Dask workers to connect to %s", address)
                    told = True
            time.sleep(_DASK_POLL)
    finally:
        if pending:
            try:
                client.cancel(list(pending))
            except Exception as exc:  # no scheduler left to cancel them on
                log.debug("cancelling Dask futures: %s", exc)
