"""The ``ntk`` run metric: how the empirical neural tangent kernel moves along the recorded trajectory, and how well
the kernel machine of the kernel at each point classifies the test split."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from matplotlib.figure import Figure

from qlandscape.core.errors import ConfigError
from qlandscape.data.datasets import to_torch
from qlandscape.metrics.ntk.kernel_machines import kernel_machine_curve
from qlandscape.metrics.ntk.kernels import kernel_evolution
from qlandscape.metrics.ntk.results import KernelEvolution, KernelMachineCurve
from qlandscape.metrics.sweeps import kernel_curves
from qlandscape.plots import ntk as nplots
from qlandscape.plots.sweeps import plot_kernel_curves
from qlandscape.runs.metric_spec import (
    Headline,
    MetricOutput,
    MetricRun,
    MetricSpec,
    SavedResult,
    SweepView,
    choice,
    flag,
    integer,
    number,
)

__all__ = ["NTKSettings", "SPEC"]


@dataclass(frozen=True)
class NTKSettings:
    """Settings of the ``ntk`` metric."""

    subset: int = integer(100, 1, "training inputs for the kernel (the first ones)")
    every: int = integer(1, 1, "use every k-th recorded point")
    form: str = choice("trace", ("trace", "full"), "the kernel's form: trace over outputs, or the full block kernel")
    ridge: float = number(1e-6, 0, "kernel ridge (relative to the mean diagonal)")
    seed: int = integer(0, 0, "accepted for configs that set it; the kernel uses the first inputs, no draw", cli=False)
    figures: bool = flag(True, "draw the figures")
    progress: bool = flag(False, "progress bar", cli=False)


def compute(run: MetricRun, s: NTKSettings) -> MetricOutput:
    """Kernel evolution and kernel-machine accuracy along the trajectory."""
    obj = run.objective("train")
    x_train, y_train, x_test, y_test = to_torch(run.dataset)
    evo = kernel_evolution(
        obj,
        run.result.trajectory,
        run.result.times,
        s.subset,
        every=s.every,
        form=s.form,
        store_kernels=False,
        progress=s.progress,
    )
    curve = kernel_machine_curve(
        obj,
        run.result.trajectory,
        run.result.times,
        x_train[: s.subset],
        y_train[: s.subset],
        x_test,
        y_test,
        every=s.every,
        ridge=float(s.ridge),
        progress=s.progress,
    )
    scalars = {
        "ntk.final_distance_from_init": float(evo.distance_from_init[-1]),
        "ntk.kernel_accuracy_init": float(curve.kernel_accuracy[0]),
        "ntk.kernel_accuracy_final": float(curve.kernel_accuracy[-1]),
    }
    return MetricOutput(
        scalars,
        (SavedResult("ntk_evolution", "ntk.evolution", evo), SavedResult("ntk_kernel_machine", "ntk.machine", curve)),
    )


def figures(output: MetricOutput, s: NTKSettings) -> Iterator[tuple[str, Figure]]:
    """Kernel distances between recorded points, kernel velocity, and kernel-machine accuracy."""
    evo, curve = output.result("ntk_evolution"), output.result("ntk_kernel_machine")
    yield "ntk_distance", nplots.plot_kernel_distance_matrix(evo)
    yield "ntk_velocity", nplots.plot_kernel_velocity(evo)
    yield "ntk_kernel_machine", nplots.plot_kernel_machine_accuracy(curve)


def check_against_run(s: NTKSettings, n_train: int, n_params: int) -> None:
    """The kernel's inputs come from the training split: at most all of it."""
    if s.subset > n_train:
        raise ConfigError("metrics.ntk.subset", s.subset, f"expected at most the {n_train} training samples")


def sweep_figures(view: SweepView) -> Iterator[tuple[str, str, Figure]]:
    """Every run's kernel curves on one figure."""
    curves = kernel_curves(
        view.rows_with("ntk_evolution"),
        view.loader("ntk_evolution", KernelEvolution),
        view.loader("ntk_kernel_machine", KernelMachineCurve),
        fields=view.fields,
    )
    if curves is not None:
        yield (
            "ntk_curves",
            "NTK distance from initialisation, kernel velocity and kernel-machine accuracy during training",
            plot_kernel_curves(curves),
        )


SPEC = MetricSpec(
    name="ntk",
    help="neural tangent kernel evolution of a run (added to its run directory)",
    settings=NTKSettings,
    compute=compute,
    figures=figures,
    headline=(
        Headline("ntk.final_distance_from_init", "kernel distance from initialisation at the end", "NTK distance"),
        Headline(
            "ntk.kernel_accuracy_init",
            "kernel-machine test accuracy, initial kernel",
            "initial kernel accuracy",
            summary=False,
        ),
        Headline("ntk.kernel_accuracy_final", "kernel-machine test accuracy, final kernel", "kernel accuracy"),
    ),
    check_against_run=check_against_run,
    sweep_figures=sweep_figures,
)
