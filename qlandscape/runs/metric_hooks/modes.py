"""What the ``modes`` run metric (:mod:`qlandscape.runs.metric_specs.modes`) does: it trains the extra seeds, the
children and the determinism runs from the run's config, computes the four properties and draws them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import torch
from matplotlib.figure import Figure

from qlandscape.core.progress import logged_step
from qlandscape.data.datasets import to_torch
from qlandscape.merging.parameters import with_parameters
from qlandscape.metrics.modes.connectivity import mode_connectivity
from qlandscape.metrics.modes.convexity import mode_convexity
from qlandscape.metrics.modes.determinism import mode_determinism
from qlandscape.metrics.modes.directedness import mode_directedness
from qlandscape.metrics.modes.results import ConnectivityResult
from qlandscape.metrics.sweeps import varying_axes
from qlandscape.models.classical import has_batch_norm
from qlandscape.models.config import build_model
from qlandscape.plots.modes import plot_connectivity_across_runs, plot_mode_paths, plot_mode_properties
from qlandscape.runs.metric_spec import MetricOutput, MetricRun, SavedResult, SweepView
from qlandscape.runs.metric_specs.modes import ModesSettings, variant_name
from qlandscape.train.trainer import TrainConfig, train

__all__ = ["compute", "figures", "sweep_figures"]

log = logging.getLogger(__name__)


def _train_config(run: MetricRun) -> TrainConfig:
    training = run.config.training
    return training if isinstance(training, TrainConfig) else TrainConfig(**dict(vars(training)))  # a config part


def compute(run: MetricRun, s: ModesSettings) -> MetricOutput:
    """Train the extra models and compute the four properties (see the spec's module docstring)."""
    x_train, y_train, x_test, y_test = to_torch(run.dataset)
    config = _train_config(run)
    seed = int(config.seed)
    data = run.dataset

    def build(init_seed: int) -> torch.nn.Module:
        return build_model(run.config.network, data.image_shape, data.n_classes, seed=init_seed)

    models = [run.model]
    with logged_step(log, f"training {s.seeds - 1} more seeds"):
        for i in range(1, s.seeds):
            config_i = replace(config, seed=seed + i)
            models.append(train(build(seed + i), x_train, y_train, x_test, y_test, config_i, progress=s.progress)[0])
    curve = None if s.curve == "none" else s.curve
    with logged_step(log, f"connectivity between {s.seeds} models"):
        connectivity = mode_connectivity(
            models, x_train, y_train, x_test, y_test, curve=curve, curve_epochs=s.curve_epochs,
            batch_size=config.batch_size, n_points=s.points, loss=config.loss, progress=s.progress,
        )  # fmt: skip
    times = np.asarray(run.result.times)
    at = int(np.argmin(np.abs(times - s.spawn_fraction * config.epochs)))
    parent = with_parameters(run.model, torch.as_tensor(run.result.trajectory[at]))
    remaining = max(1, int(round(config.epochs - float(times[at]))))
    with logged_step(log, f"training {s.children} children from epoch {float(times[at]):g}"):
        children = [
            train(
                parent, x_train, y_train, x_test, y_test, replace(config, epochs=remaining, seed=seed + 100 + i),
                progress=s.progress,
            )[0]
            for i in range(s.children)
        ]  # fmt: skip
    x_stats = x_train if has_batch_norm(run.model) else None
    convexity = mode_convexity(
        children, x_test, y_test, x_select=x_train, y_select=y_train, x_stats=x_stats, loss=config.loss
    )
    directedness = mode_directedness(children, parent)
    variant = variant_name(s)
    results = [
        SavedResult(f"{variant}_connectivity", "modes.connectivity", connectivity),
        SavedResult(f"{variant}_convexity", "modes.convexity", convexity),
        SavedResult(f"{variant}_directedness", "modes.directedness", directedness),
    ]
    scalars = {
        "modes.variant": variant,
        "modes.linear_barrier": float(np.mean(connectivity.barrier("linear"))),
        "modes.aligned_barrier": float(np.mean(connectivity.barrier("aligned"))),
        "modes.curve_barrier": float(np.mean(connectivity.barrier(curve))) if curve else float("nan"),
        "modes.jensen_gap": convexity.jensen_gap_loss,
        "modes.soup_minus_best": convexity.soup_minus_best,
        "modes.mean_cosine": directedness.mean_cosine,
        "modes.spawn_epoch": float(times[at]),
    }
    if s.determinism:
        with logged_step(log, "determinism: runs differing in the initialisation, the data order, both"):
            determinism = mode_determinism(
                build, x_train, y_train, x_test, y_test, config, seeds=(seed, seed + 1), n_points=s.points,
                progress=s.progress,
            )  # fmt: skip
        results.append(SavedResult(f"{variant}_determinism", "modes.determinism", determinism))
        scalars["modes.determinism_order_barrier"] = determinism.barrier("order")
        scalars["modes.determinism_init_barrier"] = determinism.barrier("init")
    return MetricOutput(scalars, tuple(results), variant=variant)


def figures(output: MetricOutput, s: ModesSettings) -> Iterator[tuple[str, Figure]]:
    """The four properties on one figure (when determinism was computed) and the paths of the first pair."""
    variant = output.variant or "modes"
    connectivity = output.result(f"{variant}_connectivity")
    yield f"{variant}_paths", plot_mode_paths(connectivity)
    determinism = output.result(f"{variant}_determinism")
    if determinism is not None:
        yield (
            f"{variant}_properties",
            plot_mode_properties(
                connectivity,
                output.result(f"{variant}_convexity"),
                determinism,
                output.result(f"{variant}_directedness"),
            ),
        )


def sweep_figures(view: SweepView) -> Iterator[tuple[str, str, Figure]]:
    """The report's figure: every run's mean linear, aligned and curved barriers (each run's default variant)."""
    rows = view.rows_with_result("modes", "_connectivity")
    load = view.result_loader("modes", "_connectivity", ConnectivityResult)
    pairs = [(row, load(row)) for row in rows]
    pairs = [(row, result) for row, result in pairs if result is not None]
    if pairs:
        axes = varying_axes([row for row, _ in pairs], view.fields, replicates=True)
        labels = [", ".join(f"{a}={row.get(a)}" for a in axes) or str(row["path"]) for row, _ in pairs]
        yield (
            "modes_connectivity",
            "Mode connectivity: loss barrier (excess over the endpoints' chord) between seeds, straight, aligned and "
            "along the trained curve; mean over pairs",
            plot_connectivity_across_runs(labels, [result for _, result in pairs]),
        )
