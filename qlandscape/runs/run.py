"""One run: config -> data -> model -> training -> run directory, and the run metrics computed on it, then or later.

The directory is ``OUT/<run id>``, where the id is the short hash of the normalised config. What it holds, the
statuses and the schema versions: :mod:`qlandscape.runs.layout`; its lock and transactions:
:mod:`qlandscape.runs.transaction`. Who writes it, and how:

* :func:`execute_run` holds the directory's lock from start to end. It keeps a finished run (complete or diverged,
  undamaged, trained on the same dataset content) unless ``force``. Otherwise it records ``running`` (a finished run
  being recomputed stays visible instead), trains, computes the config's metrics into a staging folder and commits
  the new run as a whole (``run.json``, ``arrays.npz``, results and figures; the files of the earlier run go). A
  failure records ``failed`` with the error (Ctrl-C: ``interrupted``) and removes the earlier run's files.
* :func:`run_metric` loads the complete run and computes the metric into a staging folder without holding the lock
  (two metric commands on one run compute side by side). Under the lock it then reads ``run.json`` and
  ``arrays.npz`` afresh and, in one commit, replaces the earlier result of the same *variant* as a whole (its files
  go entirely, so no file of an earlier computation sits beside the new one's scalars), keeps the metric's other
  variants and their files, sets the metric's scalars in ``run.json`` and its arrays in ``arrays.npz`` to the new
  variant's, and records the call in the manifest; a second command waits for the first one's commit. A metric
  whose run was recomputed meanwhile is refused. Variants are named by the settings that say what was computed
  (``landscape_pca``, ``hessian_dense_init``, ``ntk_trace_subset100``: :mod:`qlandscape.runs.variants`); a metric
  registered without variants keeps one result, replaced as a whole.
* Sweeps claim runs through the same lock (:mod:`qlandscape.runs.sweep`).

A command killed at any moment leaves the old or the new state of the directory, never a mix; the next command or
reader carries out a commit that was under way (:func:`qlandscape.runs.transaction.settle`).

Divergence: training that meets a NaN or infinite loss or parameter stops there
(:class:`~qlandscape.train.trainer.TrainingDiverged`); the run is recorded ``diverged`` with the trajectory so far,
``divergence`` (what became non-finite, the step and epoch, the last finite evaluation and the best finite epoch)
and no metric. It is finished: a rerun keeps it (``force`` recomputes it), and metrics refuse it.

Dataset content: ``run.json`` records the SHA-256 of the dataset's files
(:func:`~qlandscape.data.datasets.dataset_content_hash`). The run id leaves it out, so ids stay what they were. A
finished run whose dataset changed since is recomputed by :func:`execute_run` (and so by a resumed sweep), with a
warning, and :func:`load_run` refuses it, so that no metric evaluates parameters trained on other data. A run
recorded without a hash (0.1) is kept as it is.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import logging
import platform
import sys
import time
import traceback
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

import qlandscape
from qlandscape.core import io
from qlandscape.core.errors import ConfigError
from qlandscape.core.objective import Objective
from qlandscape.core.progress import logged_step, progress_bar
from qlandscape.core.threads import thread_warning
from qlandscape.data.datasets import Dataset, dataset_content_hash, to_torch
from qlandscape.models.config import build_model, count_parameters
from qlandscape.models.qnn import PatchQNN
from qlandscape.plots import save_figure
from qlandscape.runs.config import RunConfig
from qlandscape.runs.layout import (
    ARRAYS_FILE,
    FIGURES_DIR,
    REMEDY,
    RESULTS_DIR,
    RUN_FILE,
    SCHEMA_VERSION,
    RunState,
    check_run,
    lock_run,
    require_run,
)
from qlandscape.runs.metric_spec import MetricOutput, MetricSpec, with_progress
from qlandscape.runs.registry import check_against_run, get
from qlandscape.runs.transaction import Staging, new_call_id
from qlandscape.runs.variants import merged_entry
from qlandscape.train.trainer import TrainingDiverged, TrainResult, train

__all__ = [
    "versions",
    "set_flat_parameters",
    "LoadedRun",
    "stale_reason",
    "Execution",
    "execute_run",
    "execute",
    "load_run",
    "compute_metric",
    "save_metric_figures",
    "run_metric",
]

log = logging.getLogger(__name__)
_UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)  # what reading a damaged .npz raises


def versions() -> dict[str, str]:
    """Versions of the libraries a result depends on."""
    out = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    for name in ("pennylane", "scipy"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:  # a missing optional library is simply not recorded
            pass
    out["qlandscape"] = qlandscape.__version__
    return out


def set_flat_parameters(model: nn.Module, theta: np.ndarray | torch.Tensor) -> nn.Module:
    """Load a flat parameter vector into ``model`` in place (only for models this module built itself)."""
    theta = torch.as_tensor(theta, dtype=torch.float64)
    start = 0
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(theta[start : start + p.numel()].reshape(p.shape))
            start += p.numel()
    if start != theta.numel():
        raise ConfigError("theta", theta.numel(), f"expected {start} parameters for this model")
    return model


@dataclass
class LoadedRun:
    """A finished run read back: its config, data, the model at the final parameters and the training record."""

    path: Path
    config: RunConfig
    dataset: Dataset
    model: nn.Module
    result: TrainResult
    info: dict

    def objective(
        self,
        split: str = "train",
        *,
        chunk_size: int | None = None,
        progress: bool = False,
        memory_budget: int | str | None = None,
    ) -> Objective:
        """The run's Objective (its loss) on the ``train`` or ``test`` split, at the final parameters, with the
        memory budget of its computations (None: the default)."""
        x_train, y_train, x_test, y_test = to_torch(self.dataset)
        if split not in ("train", "test"):
            raise ConfigError("split", split, "expected 'train' or 'test'")
        x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
        return Objective(
            self.model,
            x,
            y,
            self.config.training.loss,
            chunk_size=chunk_size,
            progress=progress,
            memory_budget=memory_budget,
        )

    def model_factory(self) -> functools.partial[nn.Module]:
        """A picklable builder of this run's architecture (its parameters as at initialisation): what data-parallel
        workers build the model from, with the parameters sent as a state dict."""
        data, seed = self.dataset, self.config.training.seed
        return functools.partial(build_model, self.config.network, data.image_shape, data.n_classes, seed=seed)

    def save_metrics(self, scalars: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
        """Merge scalar metrics into ``run.json`` and arrays into ``arrays.npz``, both in one commit under the run
        directory's lock (what is there is read afresh, so a concurrent writer's changes are kept)."""
        with Staging(self.path) as staging, lock_run(self.path, on_wait=_waiting(self.path)):
            info = require_run(self.path)
            info.setdefault("metrics", {}).update(scalars)
            current = _read_arrays(self.path)
            io.write_npz(staging.files / ARRAYS_FILE, current | dict(arrays or {}))
            io.write_json(staging.files / RUN_FILE, info)
            staging.commit(last=(RUN_FILE,))
        self.info = info


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _waiting(path: Path) -> Callable[[], None]:
    return lambda: log.warning("%s is being written by another process; waiting for it to finish", path)


def stale_reason(info: dict[str, Any], config: RunConfig) -> str | None:
    """Why a finished run may not be reused although its id matches: its dataset's content changed since it was
    trained. None when it has not, when the run recorded no hash (0.1) or when the dataset cannot be read now."""
    recorded = (info.get("data") or {}).get("sha256")
    if recorded is None:
        return None
    try:
        current = dataset_content_hash(config.data.dataset)
    except (ConfigError, OSError):
        return None
    if current == recorded:
        return None
    return (
        f"dataset {config.data.dataset!r} has changed since the run was trained "
        f"(content sha256 {recorded[:12]}... then, {current[:12]}... now)"
    )


@dataclass(frozen=True)
class Execution:
    """What :func:`execute` did: the run directory, whether it trained the run there (False: a finished run was
    kept) and the run's status now."""

    path: Path
    computed: bool
    status: str


def execute_run(
    config: RunConfig, out: str | Path, *, force: bool = False, progress: bool = False, wait: bool = True
) -> Path:
    """Train the run ``config`` describes into ``out/<run id>``, holding the directory's lock; a finished run
    (complete or diverged, undamaged, same dataset content) is kept unless ``force``. Returns the run directory.

    ``wait``: when another process writes the directory, wait for it (then keep what it finished), or raise
    :class:`~qlandscape.runs.transaction.LockHeld` at once (``False``: how a sweep claims a run). A run that raises
    is recorded as ``failed`` with the message, and the exception propagates; a diverging one is recorded as
    ``diverged`` and returns normally (see the module docstring).
    """
    return execute(config, out, force=force, progress=progress, wait=wait).path


def execute(
    config: RunConfig, out: str | Path, *, force: bool = False, progress: bool = False, wait: bool = True
) -> Execution:
    """:func:`execute_run`, saying whether the run was trained or kept and its status."""
    _warn_about_threads()
    config.validate()  # the metric settings too: a typo there must not surface only after training
    path = Path(out) / config.run_id()
    before = check_run(path)  # a finished run is kept without its lock: its folder may be read-only
    if not force and _keepable(before, config):
        log.info("run %s is already %s; skipped", path, before.status)
        return Execution(path, False, before.status)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("out", str(out), f"cannot hold the run directory {path} ({exc.strerror or exc})") from exc
    with lock_run(path, timeout=None if wait else 0, on_wait=_waiting(path)):
        state = check_run(path)  # again under the lock: another process may have finished it meanwhile
        if not force and _keepable(state, config):
            log.info("run %s is already %s; skipped", path, state.status)
            return Execution(path, False, state.status)
        if state.finished and not force:
            log.warning("%s: %s; recomputing it", path, stale_reason(state.info or {}, config))
        elif state.status == "damaged":
            log.warning("run %s is damaged (%s); recomputing it", path, state.problem)
        status = _execute(config, path, progress=progress, keep_earlier=state.finished)
    return Execution(path, True, status)


@functools.cache  # once per process
def _warn_about_threads() -> None:
    warning = thread_warning()
    if warning is not None:
        log.warning(warning)


def _keepable(state: RunState, config: RunConfig) -> bool:
    """Whether a rerun keeps what ``state`` describes: a finished, undamaged run of the same dataset content."""
    return state.finished and stale_reason(state.info or {}, config) is None


def _training_arrays(result: TrainResult) -> dict[str, np.ndarray]:
    return {
        "trajectory": result.trajectory,
        "times": result.times,
        "steps": result.steps,
        "epochs": result.epochs,
        "train_loss": result.train_loss,
        "train_accuracy": result.train_accuracy,
        "test_loss": result.test_loss,
        "test_accuracy": result.test_accuracy,
    }


def _divergence_record(diverged: TrainingDiverged) -> dict[str, Any]:
    result, divergence = diverged.result, diverged.divergence
    finite = np.flatnonzero(np.isfinite(result.train_loss))
    last: dict[str, Any] | None = None
    if finite.size:
        i = int(finite[-1])
        last = {"epoch": int(result.epochs[i])} | {
            k: float(getattr(result, k)[i]) for k in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")
        }
    return {
        "quantity": divergence.quantity,
        "value": str(divergence.value),  # "nan", "inf" or "-inf": JSON has no such numbers
        "step": divergence.step,
        "epoch": divergence.epoch,
        "last_finite": last,
        "best_train_epoch": int(finite[np.argmin(result.train_loss[finite])]) if finite.size else None,
        "message": str(diverged),
    }


def _earlier_files(path: Path) -> list[str]:
    """The files of whatever run the directory held: ``arrays.npz``, results and figures."""
    files = [ARRAYS_FILE] if (path / ARRAYS_FILE).exists() else []
    for folder in (RESULTS_DIR, FIGURES_DIR):
        files += sorted(p.relative_to(path).as_posix() for p in (path / folder).rglob("*") if p.is_file())
    return files


def _execute(config: RunConfig, path: Path, *, progress: bool, keep_earlier: bool) -> str:
    """Train and measure into a staging folder and commit the run (the caller holds the lock); returns the
    status."""
    call = new_call_id()
    info: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "id": config.run_id(),
        "status": "running",
        "attempt": {"call": call, "started": _now()},
        "config": config.to_dict(),
        "versions": versions(),
        "timings": {},
        "metrics": {},
        "manifest": {},
    }
    if not keep_earlier:  # a finished run being recomputed stays readable until the new one replaces it
        io.write_json(path / RUN_FILE, info)
    with Staging(path, call) as staging:
        try:
            start = time.perf_counter()
            with logged_step(log, f"loading the data ({config.data.dataset})"):
                info["data"] = {"source": config.data.dataset, "sha256": dataset_content_hash(config.data.dataset)}
                data = config.data.load()
                info["data"]["classes"] = [int(c) for c in data.classes]
                info["data"]["description"] = config.data.describe(data)  # which classes: all, when none are listed
            with logged_step(log, f"building the model ({config.model})"):
                model = build_model(config.network, data.image_shape, data.n_classes, seed=config.training.seed)
                x_train, y_train, x_test, y_test = to_torch(data)
                check_against_run(config.metrics, n_train=x_train.shape[0], n_params=count_parameters(model))
                info["model"] = {"n_params": count_parameters(model), **_model_facts(model)}
            try:
                what = (
                    f"training ({info['model']['n_params']} parameters, {config.epochs} epochs, {len(x_train)} samples)"
                )
                with logged_step(log, what):
                    trained, result = train(
                        model,
                        x_train,
                        y_train,
                        x_test,
                        y_test,
                        config.training,
                        progress=progress,
                        adversarial=config.adversarial,
                        bounds=data.input_range,
                    )
            except TrainingDiverged as diverged:
                log.info("run %s diverged: %s", path, diverged)
                info["status"], info["divergence"] = "diverged", _divergence_record(diverged)
                info["timings"]["train_seconds"] = diverged.result.seconds
                arrays = _training_arrays(diverged.result)
            else:
                info["timings"]["train_seconds"] = result.seconds
                info["metrics"].update(
                    {
                        "train_loss": float(result.train_loss[-1]),
                        "train_accuracy": float(result.train_accuracy[-1]),
                        "test_loss": float(result.test_loss[-1]),
                        "test_accuracy": float(result.test_accuracy[-1]),
                        "best_train_epoch": int(result.best_train_index),
                    }
                )
                arrays = _training_arrays(result)
                loaded = LoadedRun(path, config, data, trained, result, info)
                bar = progress_bar(len(config.metrics), "metrics", enabled=progress and bool(config.metrics))
                with bar:
                    for name, given in config.metrics.items():
                        bar.set_postfix_str(name)
                        t0 = time.perf_counter()
                        spec = get(name)
                        settings = with_progress(spec.parse(given), given, progress)
                        scalars, metric_arrays, entry = _stage_metric(loaded, spec, settings, staging)
                        info["metrics"].update(scalars)
                        info["manifest"][name] = _manifest_entry(info, name, entry, scalars, None)[0]
                        arrays |= metric_arrays
                        info["timings"][f"{name}_seconds"] = time.perf_counter() - t0
                        bar.update(1)
                info["status"] = "complete"
            info["timings"]["total_seconds"] = time.perf_counter() - start
            info["attempt"]["finished"] = _now()
            with logged_step(log, f"writing the run directory {path}"):
                io.write_npz(staging.files / ARRAYS_FILE, arrays)
                io.write_json(staging.files / RUN_FILE, info)
                staging.commit(remove=_earlier_files(path), last=(RUN_FILE,))
            return info["status"]
        except BaseException as exc:
            if staging.committed:
                raise
            info["status"] = "failed" if isinstance(exc, Exception) else "interrupted"
            info["error"] = f"{type(exc).__name__}: {exc}"
            info["traceback"] = traceback.format_exc()
            info["manifest"] = {}
            io.write_json(path / RUN_FILE, info)
            for relative in _earlier_files(path):  # the record says failed: no file of an earlier run may stay
                (path / relative).unlink(missing_ok=True)
            raise


def _model_facts(model: nn.Module) -> dict[str, Any]:
    facts: dict[str, Any] = {"kind": type(model).__name__}
    if isinstance(model, PatchQNN):
        facts.update(
            n_patches=model.n_patches,
            params_per_circuit=model.circuit.n_params,
            n_features=model.circuit.n_features,
            n_outputs=model.circuit.n_outputs,
        )
    return facts


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        return io.read_npz(path / ARRAYS_FILE)
    except _UNREADABLE as exc:
        raise ConfigError("run file", str(path / ARRAYS_FILE), f"cannot be read ({exc}); {REMEDY}") from exc


def load_run(path: str | Path) -> LoadedRun:
    """Read a complete run directory back: rebuilds the data and the model at the final parameters.

    Returns a :class:`LoadedRun`: ``path``, ``config`` (the :class:`~qlandscape.runs.config.RunConfig`),
    ``dataset``, ``model`` (at the last point of the trajectory), ``result`` (the
    :class:`~qlandscape.train.trainer.TrainResult`: trajectory, times, losses and accuracies) and ``info`` (the
    ``run.json``, scalar metrics included); ``run.objective("train")`` is the run's loss on a split, for any metric::

        run = load_run("runs/demo/32b0893bfca5")
        top_eigenvalues(run.objective(), k=3)

    The directory is checked first (:func:`qlandscape.runs.layout.check_run`): a damaged file, a run that is not
    complete or a dataset whose content changed since the run was trained raise :class:`ConfigError` naming the
    file or the setting and what is wrong.
    """
    path = Path(path)
    info = require_run(path)
    config = RunConfig.from_dict(info["config"], check_metric_names=False)
    reason = stale_reason(info, config)
    if reason is not None:
        raise ConfigError(
            "dataset",
            config.data.dataset,
            f"{reason}; its parameters do not belong to this data: {REMEDY}, or restore the file",
        )
    data = config.data.load()
    arrays = _read_arrays(path)
    if not np.all(np.isfinite(arrays["trajectory"])):
        raise ConfigError("run file", str(path / ARRAYS_FILE), f"its trajectory holds non-finite values; {REMEDY}")
    model = build_model(config.network, data.image_shape, data.n_classes, seed=config.training.seed)
    set_flat_parameters(model, arrays["trajectory"][-1])
    result = TrainResult(
        trajectory=arrays["trajectory"],
        times=arrays["times"],
        steps=arrays["steps"],
        epochs=arrays["epochs"],
        train_loss=arrays["train_loss"],
        train_accuracy=arrays["train_accuracy"],
        test_loss=arrays["test_loss"],
        test_accuracy=arrays["test_accuracy"],
        seconds=float(info.get("timings", {}).get("train_seconds", 0.0)),
        config=info["config"],
    )
    return LoadedRun(path, config, data, model, result, info)


def compute_metric(
    run: LoadedRun, spec: MetricSpec, settings: Any, into: str | Path
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Compute ``spec`` on ``run`` and save its results (and figures) under ``into/results`` and ``into/figures``
    (a staging folder: :func:`run_metric` commits them into the run directory); returns the scalars and the arrays
    for ``run.json`` and ``arrays.npz``."""
    output, arrays = _compute_into(run, spec, settings, Path(into))
    return dict(output.scalars), arrays


def _compute_into(
    run: LoadedRun, spec: MetricSpec, settings: Any, into: Path
) -> tuple[MetricOutput, dict[str, np.ndarray]]:
    with logged_step(log, f"computing {spec.name}"):
        output = spec.compute(run, settings)
    arrays: dict[str, np.ndarray] = {}
    for saved in output.results:
        io.save_result(saved.result, into / RESULTS_DIR / saved.file)
        _, fields = io.result_to_dicts(saved.result)
        arrays |= {f"{saved.prefix}.{k}": v for k, v in fields.items() if v.dtype != object}
    if spec.figures is not None and getattr(settings, "figures", True):
        with logged_step(log, f"drawing the {spec.name} figures"):
            save_metric_figures(into, spec, output, settings)
    return output, arrays


def save_metric_figures(path: Path, spec: MetricSpec, output: MetricOutput, settings: Any) -> None:
    """Draw the metric's figures into ``path/figures`` (PNG + PDF); drawing dominates small runs, so sweeps can
    turn it off with ``figures = false``."""
    if spec.figures is None:
        return
    (path / FIGURES_DIR).mkdir(exist_ok=True)
    for name, fig in spec.figures(output, settings):
        try:
            save_figure(fig, path / FIGURES_DIR / name)
        finally:
            plt.close(fig)


def _stage_metric(
    run: LoadedRun, spec: MetricSpec, settings: Any, staging: Staging
) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, Any]]:
    """Compute a metric into ``staging``; returns its scalars, its arrays and the call's manifest entry (with the
    ``variant`` it computed, for a metric whose results come in variants)."""
    started = _now()
    before = set(staging.staged())
    output, arrays = _compute_into(run, spec, settings, staging.files)
    entry = {
        "call": staging.call,
        "settings": dataclasses.asdict(settings),
        "started": started,
        "finished": _now(),
        "files": sorted(set(staging.staged()) - before),
        "arrays": sorted(arrays),
    }
    if output.variant is not None:
        entry["variant"] = output.variant
    return dict(output.scalars), arrays, entry


def _manifest_entry(
    info: dict[str, Any], metric: str, entry: dict[str, Any], scalars: dict[str, Any], path: Path | None
) -> tuple[dict[str, Any], list[str]]:
    """The metric's manifest entry after the call ``entry`` and the files it replaces: all the metric's earlier
    files, or for a variant only those of the earlier result of the same variant (the others are kept)."""
    variant = entry.get("variant")
    if variant is None:
        return entry, _metric_files(path, metric, info) if path is not None else []
    return merged_entry(info, metric, variant, entry, scalars, path)


def run_metric(path: str | Path, metric: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Compute one metric on an existing run directory and commit it there (see the module docstring); returns the
    scalars. The result replaces the earlier result of the same variant, as a whole, and keeps the metric's other
    variants (a metric without variants: its earlier result)."""
    spec = get(metric)
    parsed = spec.parse(settings)
    with logged_step(log, f"loading the run {path}"):
        run = load_run(path)
    if spec.check_against_run is not None:
        spec.check_against_run(parsed, run.dataset.x_train.shape[0], count_parameters(run.model))
    with Staging(run.path) as staging:
        scalars, arrays, entry = _stage_metric(run, spec, parsed, staging)
        with logged_step(log, f"writing {metric} into {run.path}"), lock_run(run.path, on_wait=_waiting(run.path)):
            info = require_run(run.path)  # afresh: another command may have committed meanwhile
            if info.get("attempt") != run.info.get("attempt"):
                raise ConfigError(
                    "run directory",
                    str(run.path),
                    f"the run was recomputed while {metric} was computed on it; compute {metric} again",
                )
            merged, earlier = _manifest_entry(info, metric, entry, scalars, run.path)
            prefix = f"{metric}."
            info["metrics"] = {k: v for k, v in info.get("metrics", {}).items() if not k.startswith(prefix)} | scalars
            info["manifest"] = info.get("manifest", {}) | {metric: merged}
            info["schema"] = SCHEMA_VERSION
            current = {k: v for k, v in _read_arrays(run.path).items() if not k.startswith(prefix)}
            io.write_npz(staging.files / ARRAYS_FILE, current | arrays)
            io.write_json(staging.files / RUN_FILE, info)
            staging.commit(remove=earlier, last=(RUN_FILE,))
    run.info = info
    return scalars


def _metric_files(path: Path, metric: str, info: dict[str, Any]) -> list[str]:
    """The files of the metric's current result: what the manifest lists, or for a run recorded before manifests
    (0.1) the files named after the metric under ``results/`` and ``figures/``."""
    entry = info.get("manifest", {}).get(metric)
    if entry is not None:
        return list(entry.get("files", []))
    return sorted(
        f.relative_to(path).as_posix()
        for folder in (RESULTS_DIR, FIGURES_DIR)
        for pattern in (f"{metric}.*", f"{metric}_*")
        for f in (path / folder).glob(pattern)
    )
