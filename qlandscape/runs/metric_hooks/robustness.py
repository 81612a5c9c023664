"""What the ``robustness`` run metric (:mod:`qlandscape.runs.metric_specs.robustness`) does: attacks at a list of
eps and the input-space curvature at a point of the trajectory, and their figures. Loaded when the metric is first
computed, drawn or checked."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from matplotlib.figure import Figure

from qlandscape.core.errors import ConfigError
from qlandscape.metrics.robustness.evaluation import robustness_curve
from qlandscape.metrics.robustness.input_curvature import input_curvature
from qlandscape.plots import robustness as rplots
from qlandscape.runs.metric_spec import MetricOutput, MetricRun, SavedResult, point_on_trajectory
from qlandscape.runs.metric_specs.robustness import RobustnessSettings, eps_key, variant_name

__all__ = ["compute", "figures", "check_against_run"]


def compute(run: MetricRun, s: RobustnessSettings) -> MetricOutput:
    """The robustness curve (and the input curvature) at the settings' point, kept as the variant
    :func:`~qlandscape.runs.metric_specs.robustness.variant_name` names."""
    obj = run.objective(s.split, progress=s.progress)
    if s.max_samples is not None and s.max_samples < obj.n_samples:
        obj = obj.with_data(obj.x[: s.max_samples], obj.y[: s.max_samples])
    index, theta = point_on_trajectory(run.result, s.point)
    curve = robustness_curve(
        obj,
        s.eps,
        theta=theta,
        norm=s.norm,
        steps=s.steps,
        alpha_fraction=float(s.alpha_fraction),
        random_start=s.random_start,
        seed=s.seed,
        bounds=run.dataset.input_range,
        pixels_per_input_unit=run.dataset.pixels_per_input_unit,
        split=s.split,
        progress=s.progress,
    )
    variant = variant_name(s)
    scalars: dict[str, Any] = {
        "robustness.variant": variant,
        "robustness.point": s.point,
        "robustness.epoch": float(run.result.times[index]),
        "robustness.norm": s.norm,
        "robustness.n_samples": curve.n_samples,
        "robustness.clean_accuracy": curve.clean_accuracy,
        "robustness.clean_loss": curve.clean_loss,
        "robustness.eps_max": float(curve.eps[-1]),
        "robustness.fgsm_accuracy": float(curve.fgsm_accuracy[-1]),
        "robustness.pgd_accuracy": float(curve.pgd_accuracy[-1]),
        "robustness.pgd_loss": float(curve.pgd_loss[-1]),
    }
    for i, e in enumerate(curve.eps):
        for attack in ("fgsm", "pgd"):
            scalars[f"robustness.{attack}_accuracy_{eps_key(e)}"] = float(getattr(curve, f"{attack}_accuracy")[i])
            scalars[f"robustness.{attack}_loss_{eps_key(e)}"] = float(getattr(curve, f"{attack}_loss")[i])
    results = [SavedResult(f"{variant}_curve", "robustness.curve", curve)]
    if s.curvature:
        curvature = input_curvature(
            obj,
            theta,
            iterations=s.curvature_iterations,
            n_samples=s.curvature_samples,
            seed=s.seed,
            split=s.split,
            progress=s.progress,
        )
        scalars |= {
            "robustness.input_curvature": curvature.mean_top_eigenvalue,
            "robustness.input_curvature_max": curvature.max_top_eigenvalue,
            "robustness.input_gradient_norm": curvature.mean_gradient_norm,
        }
        results.append(SavedResult(f"{variant}_input_curvature", "robustness.input_curvature", curvature))
    return MetricOutput(scalars, tuple(results), variant=variant)


def figures(output: MetricOutput, s: RobustnessSettings) -> Iterator[tuple[str, Figure]]:
    """Accuracy against eps per attack, and the per-sample input curvature."""
    variant = output.variant or "robustness"
    yield f"{variant}_accuracy", rplots.plot_robustness(output.result(f"{variant}_curve"))
    curvature = output.result(f"{variant}_input_curvature")
    if curvature is not None:
        yield f"{variant}_input_curvature", rplots.plot_input_curvature(curvature)


def check_against_run(s: RobustnessSettings, n_train: int, n_params: int) -> None:
    """The curvature's samples come from the split: asked for more training samples than there are fails early."""
    if s.split == "train" and s.curvature and s.curvature_samples > n_train:
        raise ConfigError(
            "metrics.robustness.curvature_samples", s.curvature_samples, f"expected at most the {n_train} samples"
        )
