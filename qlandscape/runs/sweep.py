"""Sweeps: a ``[base]`` run config plus ``[grid]`` axes whose Cartesian product gives the runs.

The whole sweep is validated before any run starts: every grid point's :class:`~qlandscape.runs.config.RunConfig`
is built (so a bad axis name or value fails naming it and the sweep file) and every metric table is checked against
the registered run metrics and their settings. Each run is :func:`qlandscape.runs.run.execute_run`, a pure function
of its config writing ``OUT/<run id>`` atomically, so finished runs are skipped on a rerun and a killed sweep loses only
the runs in flight. Executors: in-process (``workers=1``), local processes (one torch thread each), or a Dask
distributed cluster (``dask=ADDRESS`` or a ``distributed.Client``; the optional extra ``qlandscape[dask]``).
After every finished run the manifest ``OUT/sweep.json`` (the sweep config, the run ids, each run's status) is
rewritten atomically; it describes the latest sweep over ``OUT``, while :func:`qlandscape.runs.tables.load_runs`
reads every run there.
"""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import torch
from tqdm.auto import tqdm

from qlandscape.core import io
from qlandscape.core.errors import ConfigError
from qlandscape.runs.config import RunConfig
from qlandscape.runs.layout import RUN_FILE, is_complete
from qlandscape.runs.registry import check_metrics
from qlandscape.runs.run import execute_run
from qlandscape.runs.tables import rows_of
from qlandscape.sim.backends import available_devices
from qlandscape.sim.circuits import build_circuit

log = logging.getLogger(__name__)
MANIFEST = "sweep.json"


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
    """Validate a sweep given as ``{"base": {...}, "grid": {axis: [values]}}`` and build every run's config."""
    where = source or "sweep"
    if not isinstance(data, Mapping):
        raise ConfigError("sweep", data, "expected a table with [base] and [grid]", source=source)
    for key in data:
        if key not in ("base", "grid", "zip"):
            raise ConfigError(key, data[key], "is not a sweep table; expected [base], [grid] and [zip]", source=source)
    base = dict(data.get("base", {}))
    grid = dict(data.get("grid", {}))
    zipped = dict(data.get("zip", {}))
    fields = RunConfig.fields()
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
    """Read and validate a sweep config (TOML with ``[base]`` and ``[grid]``)."""
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

    def watch() -> None:
        # A sweep killed with SIGKILL cannot stop its pool: the workers would go on with the runs already queued
        # and then wait forever. What they leave half done stays "running" and is redone on the next sweep.
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="qlandscape-parent-watch", daemon=True).start()


def run_one(config: dict, out: str, threads: int | None = None) -> dict[str, Any]:
    """Execute one run (in whichever process or Dask worker calls this); never raises for a failed run."""
    if threads is not None:
        _init_worker(threads)
    start = time.perf_counter()
    run_config = RunConfig.from_dict(config)
    try:
        execute_run(run_config, out)
        status, error = "complete", None
    except Exception as exc:  # recorded in run.json by execute_run; the sweep goes on
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    return {"id": run_config.run_id(), "status": status, "error": error, "seconds": time.perf_counter() - start}


class _Manifest:
    """``sweep.json``: rewritten atomically whenever a run's status changes."""

    def __init__(self, sweep: Sweep, out: Path) -> None:
        self.path = out / MANIFEST
        self.sweep = sweep
        self.entries = {
            rid: {"id": rid, "point": point, "status": "pending"}
            for rid, point in zip(sweep.run_ids(), sweep.points, strict=True)
        }

    def update(self, rid: str, **fields: Any) -> None:
        self.entries[rid].update({k: v for k, v in fields.items() if v is not None})
        if fields.get("status") == "complete":
            self.entries[rid].pop("error", None)

    def write(self) -> None:
        counts: dict[str, int] = {}
        for entry in self.entries.values():
            counts[entry["status"]] = counts.get(entry["status"], 0) + 1
        io.write_json(
            self.path,
            {
                "sweep": self.sweep.to_dict(),
                "n_runs": len(self.entries),
                "counts": counts,
                "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "run_ids": list(self.entries),
                "runs": list(self.entries.values()),
            },
        )


def _progress_bar(total: int, initial: int, enabled: bool) -> tqdm:
    return tqdm(total=total, initial=initial, desc="sweep", unit="run", disable=not enabled, dynamic_ncols=True)


def run_sweep(
    config: Sweep | str | Path | Mapping[str, Any],
    out: str | Path,
    *,
    workers: int | None = None,
    dask: Any = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run every grid point of a sweep into ``out`` (skipping complete runs); one row per run, in grid order.

    ``workers``: 1 runs in this process; more uses that many local processes (spawned, one torch thread each);
    None means one per CPU core. ``dask``: a scheduler address, ``"local"`` (a LocalCluster of ``workers``
    processes) or a ``distributed.Client``; ``out`` must then be on a filesystem every worker sees.
    A failed run is recorded (its run.json and the manifest carry the error) and the others go on.
    """
    sweep = as_sweep(config)
    out = Path(out).resolve()
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError("workers", workers, "expected a positive integer")
    out.mkdir(parents=True, exist_ok=True)
    manifest = _Manifest(sweep, out)
    todo = []
    for config_, rid in zip(sweep.runs, sweep.run_ids(), strict=True):
        if is_complete(out / rid):
            manifest.update(rid, status="complete", skipped=True)
        else:
            todo.append(config_)
    manifest.write()
    bar = _progress_bar(len(sweep.runs), len(sweep.runs) - len(todo), progress)
    failed = 0

    def finished(result: dict[str, Any]) -> None:
        nonlocal failed
        manifest.update(
            result["id"],
            status=result["status"],
            error=result["error"],
            seconds=round(result["seconds"], 3),
            skipped=False,
        )
        manifest.write()
        failed += result["status"] != "complete"
        bar.update(1)
        if failed:
            bar.set_postfix(failed=failed)
        if result["status"] != "complete":
            log.warning("run %s failed: %s", result["id"], result["error"])

    try:
        if not todo:
            pass
        elif dask is not None:
            _run_dask(todo, out, dask, workers, finished)
        elif (workers or os.cpu_count() or 1) == 1 or (len(todo) == 1 and workers is None):
            for config_ in todo:
                finished(run_one(config_.to_dict(), str(out)))
        else:
            _run_processes(todo, out, min(workers or os.cpu_count() or 1, len(todo)), finished)
    finally:
        bar.close()
    return rows_of(out, sweep.run_ids())


def _run_processes(todo: list[RunConfig], out: Path, workers: int, finished) -> None:
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
        futures: dict[Future, RunConfig] = {pool.submit(run_one, c.to_dict(), str(out)): c for c in pending}
        broken: list[RunConfig] = []
        try:
            remaining = set(futures)
            while remaining:
                done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
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
        return (path / "run.json").stat().st_mtime >= since - 1.0
    except OSError:
        return False


def _mark_failed(path: Path, error: str, status: str = "failed") -> None:
    try:
        info = io.read_json(path / RUN_FILE)
    except (OSError, ValueError):
        return
    if info.get("status") == "running":
        info.update(status=status, error=error)
        io.write_json(path / RUN_FILE, info)


def _run_dask(todo: list[RunConfig], out: Path, dask: Any, workers: int | None, finished) -> None:
    try:  # Dask is an optional dependency (the extra qlandscape[dask]): imported only when a sweep asks for it
        from dask.distributed import Client, LocalCluster, as_completed  # noqa: PLC0415 (optional dependency)
    except ImportError as exc:
        raise ConfigError(
            "dask", dask, "needs the optional extra: pip install 'qlandscape[dask]' (dask.distributed is not installed)"
        ) from exc
    own_client = not isinstance(dask, Client)
    if dask == "local":
        cluster = LocalCluster(
            n_workers=workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        client = Client(cluster)
    elif own_client:
        try:
            cluster, client = None, Client(dask, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError("dask", dask, f"could not connect to a Dask scheduler there ({exc})") from exc
    else:
        cluster, client = None, dask
    futures = {}
    try:
        for config_ in todo:
            future = client.submit(
                run_one,
                config_.to_dict(),
                str(out),
                1,
                pure=False,
                key=f"qlandscape-run-{config_.run_id()}-{time.time_ns()}",
            )
            futures[future] = config_
        for future in as_completed(futures):
            try:
                finished(future.result())
            except Exception as exc:  # the worker died (KilledWorker) or the task could not run there
                error = f"{type(exc).__name__}: {exc}"
                _mark_failed(out / futures[future].run_id(), error)
                finished({"id": futures[future].run_id(), "status": "failed", "error": error, "seconds": 0.0})
    finally:
        if own_client:
            client.cancel([f for f in futures if not f.done()])
            client.close()
            if cluster is not None:
                cluster.close()
