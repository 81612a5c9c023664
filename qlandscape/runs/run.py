"""One run: config -> data -> model -> training -> run directory (``run.json`` + ``arrays.npz``), and the run
metrics computed on it, then or later.

The directory is ``OUT/<run id>`` where the id is the short hash of the normalised config (layout:
:mod:`qlandscape.runs.layout`). Both files are written atomically, so a killed run leaves no half file, and a rerun
of a complete run is skipped.
"""

from __future__ import annotations

import importlib.metadata
import logging
import platform
import sys
import time
import traceback
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
from qlandscape.data.datasets import Dataset, to_torch
from qlandscape.models.config import build_model, count_parameters
from qlandscape.models.qnn import PatchQNN
from qlandscape.plots import save_figure
from qlandscape.runs.config import RunConfig
from qlandscape.runs.layout import ARRAYS_FILE, FIGURES_DIR, RESULTS_DIR, RUN_FILE, is_complete
from qlandscape.runs.metric_spec import MetricOutput, MetricSpec
from qlandscape.runs.registry import check_against_run, get
from qlandscape.train.trainer import TrainResult, train

log = logging.getLogger(__name__)


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

    def objective(self, split: str = "train", *, chunk_size: int | None = None, progress: bool = False) -> Objective:
        """The run's Objective (its loss) on the ``train`` or ``test`` split, at the final parameters."""
        x_train, y_train, x_test, y_test = to_torch(self.dataset)
        if split not in ("train", "test"):
            raise ConfigError("split", split, "expected 'train' or 'test'")
        x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
        return Objective(self.model, x, y, self.config.training.loss, chunk_size=chunk_size, progress=progress)

    def save_metrics(self, scalars: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
        """Merge scalar metrics into ``run.json`` and arrays into ``arrays.npz`` (atomically)."""
        if arrays:
            io.update_npz(self.path / ARRAYS_FILE, arrays)
        self.info.setdefault("metrics", {}).update(scalars)
        io.write_json(self.path / RUN_FILE, self.info)


def execute_run(config: RunConfig, out: str | Path, *, force: bool = False, progress: bool = False) -> Path:
    """Train the run ``config`` describes into ``out/<run id>``; skip it when already complete.

    A run that raises is recorded as ``failed`` with the message, and the exception propagates.
    """
    config.validate()  # the metric settings too: a typo there must not surface only after training
    path = Path(out) / config.run_id()
    if is_complete(path) and not force:
        log.info("run %s is complete; skipping", path)
        return path
    path.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {
        "id": config.run_id(),
        "status": "running",
        "config": config.to_dict(),
        "versions": versions(),
        "timings": {},
        "metrics": {},
    }
    io.write_json(path / RUN_FILE, info)
    try:
        start = time.perf_counter()
        data = config.data.load()
        model = build_model(config.network, data.image_shape, data.n_classes, seed=config.training.seed)
        x_train, y_train, x_test, y_test = to_torch(data)
        check_against_run(config.metrics, n_train=x_train.shape[0], n_params=count_parameters(model))
        trained, result = train(model, x_train, y_train, x_test, y_test, config.training, progress=progress)
        info["timings"]["train_seconds"] = result.seconds
        info["model"] = {"n_params": count_parameters(trained), **_model_facts(trained)}
        info["metrics"].update(
            {
                "train_loss": float(result.train_loss[-1]),
                "train_accuracy": float(result.train_accuracy[-1]),
                "test_loss": float(result.test_loss[-1]),
                "test_accuracy": float(result.test_accuracy[-1]),
                "best_train_epoch": int(result.best_train_index),
            }
        )
        arrays = {
            "trajectory": result.trajectory,
            "times": result.times,
            "steps": result.steps,
            "epochs": result.epochs,
            "train_loss": result.train_loss,
            "train_accuracy": result.train_accuracy,
            "test_loss": result.test_loss,
            "test_accuracy": result.test_accuracy,
        }
        io.write_npz(path / ARRAYS_FILE, arrays)
        loaded = LoadedRun(path, config, data, trained, result, info)
        for name, given in config.metrics.items():
            t0 = time.perf_counter()
            spec = get(name)
            scalars, metric_arrays = compute_metric(loaded, spec, spec.parse(given))
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
    if isinstance(model, PatchQNN):
        facts.update(
            n_patches=model.n_patches,
            params_per_circuit=model.circuit.n_params,
            n_features=model.circuit.n_features,
            n_outputs=model.circuit.n_outputs,
        )
    return facts


def load_run(path: str | Path) -> LoadedRun:
    """Read a complete run directory back: rebuilds the data and the model at the final parameters."""
    path = Path(path)
    if not (path / RUN_FILE).exists():
        raise ConfigError("run directory", str(path), f"expected a folder containing {RUN_FILE}")
    info = io.read_json(path / RUN_FILE)
    if info.get("status") != "complete":
        raise ConfigError("run directory", str(path), f"the run is {info.get('status')!r}, not complete")
    # The metrics table records what ran; a metric registered in another process must not stop the run loading.
    config = RunConfig.from_dict(info["config"], check_metric_names=False)
    data = config.data.load()
    arrays = io.read_npz(path / ARRAYS_FILE)
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
        seconds=float(info["timings"].get("train_seconds", 0.0)),
        config=info["config"],
    )
    return LoadedRun(path, config, data, model, result, info)


def compute_metric(run: LoadedRun, spec: MetricSpec, settings: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Compute ``spec`` on ``run``, save its results (and figures) in the run directory; returns the scalars and
    the arrays for ``run.json`` and ``arrays.npz``."""
    output = spec.compute(run, settings)
    arrays: dict[str, np.ndarray] = {}
    for saved in output.results:
        io.save_result(saved.result, run.path / RESULTS_DIR / saved.file)
        _, fields = io.result_to_dicts(saved.result)
        arrays |= {f"{saved.prefix}.{k}": v for k, v in fields.items() if v.dtype != object}
    if spec.figures is not None and getattr(settings, "figures", True):
        save_metric_figures(run.path, spec, output, settings)
    return dict(output.scalars), arrays


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


def run_metric(path: str | Path, metric: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Compute one metric on an existing run directory and save it there; returns the scalars. A metric computed
    again replaces the earlier one as a whole."""
    spec = get(metric)
    parsed = spec.parse(settings)
    run = load_run(path)
    if spec.check_against_run is not None:
        spec.check_against_run(parsed, run.dataset.x_train.shape[0], count_parameters(run.model))
    earlier = _metric_files(run.path, metric)
    scalars, arrays = compute_metric(run, spec, parsed)
    _forget_metric(run, metric, earlier)
    run.save_metrics(scalars, arrays)
    return scalars


def _metric_files(path: Path, metric: str) -> dict[Path, int]:
    """The files a metric wrote under ``results/`` and ``figures/``, with their inode numbers."""
    return {
        f: f.stat().st_ino
        for folder in (RESULTS_DIR, FIGURES_DIR)
        for pattern in (f"{metric}.*", f"{metric}_*")
        for f in (path / folder).glob(pattern)
    }


def _forget_metric(run: LoadedRun, metric: str, earlier: dict[Path, int]) -> None:
    # Merging would leave, e.g., the G + R split or the density of an earlier point beside a "hessian.point" that
    # names the new one (and the report reads both).
    prefix = f"{metric}."
    run.info["metrics"] = {k: v for k, v in run.info.get("metrics", {}).items() if not k.startswith(prefix)}
    arrays = io.read_npz(run.path / ARRAYS_FILE)
    if any(k.startswith(prefix) for k in arrays):
        io.write_npz(run.path / ARRAYS_FILE, {k: v for k, v in arrays.items() if not k.startswith(prefix)})
    now = _metric_files(run.path, metric)
    for stale, inode in earlier.items():
        if now.get(stale) == inode:  # every write is a rename onto the name, so a rewritten file has a new inode
            stale.unlink()
