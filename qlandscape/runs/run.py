"""One run: config -> data -> model -> training -> run directory (``run.json`` + ``arrays.npz``).

The directory is ``OUT/<run id>`` where the id is the short hash of the normalised config. ``run.json`` holds the
config, library versions, timings, scalar metrics and a status (``complete`` or ``failed`` with the error);
``arrays.npz`` holds the trajectory and the per-epoch history, and metrics add their arrays to it. Both files are
written atomically, so a killed run leaves no half file, and a rerun of a complete run is skipped.
"""
from __future__ import annotations

import logging
import platform
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from qlandscape.core import io
from qlandscape.runs.config import RunConfig
from qlandscape.data.datasets import Dataset, load_dataset, to_torch
from qlandscape.core.errors import ConfigError
from qlandscape.runs.build import build_model, count_parameters
from qlandscape.core.objective import Objective
from qlandscape.train.trainer import TrainConfig, TrainResult, train

log = logging.getLogger(__name__)
RUN_FILE, ARRAYS_FILE = "run.json", "arrays.npz"


def versions() -> dict[str, str]:
    """Versions of the libraries a result depends on."""
    out = {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
           "numpy": np.__version__}
    for name in ("pennylane", "scipy", "qlandscape"):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # pragma: no cover - a missing optional library is simply not recorded
            pass
    return out


def train_config(config: RunConfig) -> TrainConfig:
    """The training part of a run config."""
    return TrainConfig(optimizer=config.optimizer, lr=config.lr, epochs=config.epochs,
                       batch_size=config.batch_size, weight_decay=config.weight_decay, momentum=config.momentum,
                       schedule=config.schedule, schedule_period=config.schedule_period,
                       schedule_unit=config.schedule_unit, loss=config.loss,
                       seed=config.seed, record_every=config.record_every)


def dataset_for(config: RunConfig) -> Dataset:
    """Load the dataset a run config names."""
    return load_dataset(config.dataset, classes=config.classes, angle_range=tuple(config.angle_range),
                        test_fraction=config.test_fraction, seed=config.data_seed, pool=config.pool,
                        max_train=config.max_train, max_test=config.max_test)


def set_flat_parameters(model: nn.Module, theta: np.ndarray | torch.Tensor) -> nn.Module:
    """Load a flat parameter vector into ``model`` in place (only for models this module built itself)."""
    theta = torch.as_tensor(theta, dtype=torch.float64)
    start = 0
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(theta[start:start + p.numel()].reshape(p.shape))
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

    def objective(self, split: str = "train", *, chunk_size: int | None = None, progress: bool = False
                  ) -> Objective:
        """The run's Objective (its loss) on the ``train`` or ``test`` split, at the final parameters."""
        x_train, y_train, x_test, y_test = to_torch(self.dataset)
        if split not in ("train", "test"):
            raise ConfigError("split", split, "expected 'train' or 'test'")
        x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
        return Objective(self.model, x, y, self.config.loss, chunk_size=chunk_size, progress=progress)

    def save_metrics(self, scalars: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
        """Merge scalar metrics into ``run.json`` and arrays into ``arrays.npz`` (atomically)."""
        if arrays:
            io.update_npz(self.path / ARRAYS_FILE, arrays)
        self.info.setdefault("metrics", {}).update(scalars)
        io.write_json(self.path / RUN_FILE, self.info)


def is_complete(path: Path) -> bool:
    """Whether ``path`` holds a finished run."""
    try:
        return io.read_json(path / RUN_FILE).get("status") == "complete" and (path / ARRAYS_FILE).exists()
    except (OSError, ValueError):
        return False


MetricHook = Callable[[LoadedRun, dict], tuple[dict[str, Any], dict[str, np.ndarray]]]
METRIC_HOOKS: dict[str, MetricHook] = {}


def register_metric(name: str) -> Callable[[MetricHook], MetricHook]:
    """Register a post-training metric that runs when a config's ``metrics`` table names it."""
    def wrap(fn: MetricHook) -> MetricHook:
        METRIC_HOOKS[name] = fn
        return fn
    return wrap


def execute_run(config: RunConfig, out: str | Path, *, force: bool = False, progress: bool = False) -> Path:
    """Train the run ``config`` describes into ``out/<run id>``; skip it when already complete.

    A run that raises is recorded as ``failed`` with the message, and the exception propagates.
    """
    from qlandscape.runs.metric_hooks import check_against_run, check_metrics

    config.validate()
    check_metrics(config.metrics)  # a typo in a metric setting must not surface only after training
    path = Path(out) / config.run_id()
    if is_complete(path) and not force:
        log.info("run %s is complete; skipping", path)
        return path
    path.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"id": config.run_id(), "status": "running", "config": config.to_dict(),
                            "versions": versions(), "timings": {}, "metrics": {}}
    io.write_json(path / RUN_FILE, info)
    try:
        start = time.perf_counter()
        data = dataset_for(config)
        model = build_model(config, data.image_shape, data.n_classes)
        x_train, y_train, x_test, y_test = to_torch(data)
        check_against_run(config.metrics, n_train=x_train.shape[0], n_params=count_parameters(model))
        trained, result = train(model, x_train, y_train, x_test, y_test, train_config(config), progress=progress)
        info["timings"]["train_seconds"] = result.seconds
        info["model"] = {"n_params": count_parameters(trained), **_model_facts(trained)}
        info["metrics"].update({
            "train_loss": float(result.train_loss[-1]), "train_accuracy": float(result.train_accuracy[-1]),
            "test_loss": float(result.test_loss[-1]), "test_accuracy": float(result.test_accuracy[-1]),
            "best_train_epoch": int(result.best_train_index),
        })
        arrays = {"trajectory": result.trajectory, "times": result.times, "steps": result.steps,
                  "epochs": result.epochs, "train_loss": result.train_loss,
                  "train_accuracy": result.train_accuracy, "test_loss": result.test_loss,
                  "test_accuracy": result.test_accuracy}
        io.write_npz(path / ARRAYS_FILE, arrays)
        loaded = LoadedRun(path, config, data, trained, result, info)
        for name, settings in config.metrics.items():
            t0 = time.perf_counter()
            scalars, metric_arrays = METRIC_HOOKS[name](loaded, dict(settings))
            loaded.save_metrics(scalars, metric_arrays)
            info["timings"][f"{name}_seconds"] = time.perf_counter() - t0
        info["timings"]["total_seconds"] = time.perf_counter() - start
        info["status"] = "complete"
        io.write_json(path / RUN_FILE, info)
    except BaseException as exc:
        info["status"] = "failed" if isinstance(exc, Exception) else "interrupted"
        info["error"] = f"{type(exc).__name__}: {exc}"
        info["traceback"] = traceback.format_exc()
        io.write_json(path / RUN_FILE, info)
        raise
    return path


def _model_facts(model: nn.Module) -> dict[str, Any]:
    facts: dict[str, Any] = {"kind": type(model).__name__}
    if hasattr(model, "circuit"):
        facts.update(n_patches=model.n_patches, params_per_circuit=model.circuit.n_params,
                     n_features=model.circuit.n_features, n_outputs=model.circuit.n_outputs)
    return facts


def _load_metric_hooks() -> None:
    # The hooks live beside the metrics; importing registers them.
    from qlandscape.runs import metric_hooks as run_metrics  # noqa: F401


def load_run(path: str | Path) -> LoadedRun:
    """Read a complete run directory back: rebuilds the data and the model at the final parameters."""
    path = Path(path)
    if not (path / RUN_FILE).exists():
        raise ConfigError("run directory", str(path), f"expected a folder containing {RUN_FILE}")
    info = io.read_json(path / RUN_FILE)
    if info.get("status") != "complete":
        raise ConfigError("run directory", str(path), f"the run is {info.get('status')!r}, not complete")
    config = RunConfig.from_dict(info["config"])
    data = dataset_for(config)
    arrays = io.read_npz(path / ARRAYS_FILE)
    model = build_model(config, data.image_shape, data.n_classes)
    set_flat_parameters(model, arrays["trajectory"][-1])
    result = TrainResult(
        trajectory=arrays["trajectory"], times=arrays["times"], steps=arrays["steps"], epochs=arrays["epochs"],
        train_loss=arrays["train_loss"], train_accuracy=arrays["train_accuracy"], test_loss=arrays["test_loss"],
        test_accuracy=arrays["test_accuracy"], seconds=float(info["timings"].get("train_seconds", 0.0)),
        config=info["config"],
    )
    return LoadedRun(path, config, data, model, result, info)
