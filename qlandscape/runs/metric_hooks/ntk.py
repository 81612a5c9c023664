"""What the ``ntk`` run metric (:mod:`qlandscape.runs.metric_specs.ntk`) does: the kernel along the trajectory, its
figures and its report figure. Loaded when the metric is first computed, drawn or checked."""

from __future__ import annotations

from collections.abc import Iterator

from matplotlib.figure import Figure

from qlandscape.core.errors import ConfigError
from qlandscape.data.datasets import to_torch
from qlandscape.metrics.ntk.kernel_machines import kernel_machine_curve
from qlandscape.metrics.ntk.kernels import kernel_evolution
from qlandscape.metrics.ntk.results import KernelEvolution, KernelMachineCurve
from qlandscape.metrics.sweeps import kernel_curves
from qlandscape.plots import ntk as nplots
from qlandscape.plots.sweeps import plot_kernel_curves
from qlandscape.runs.adversarial_data import describe_data
from qlandscape.runs.metric_hooks.evaluation_data import evaluation_objective, titled
from qlandscape.runs.metric_spec import MetricOutput, MetricRun, SavedResult, SweepView
from qlandscape.runs.metric_specs.ntk import NTKSettings, variant_name

__all__ = ["compute", "figures", "check_against_run", "sweep_figures"]


def compute(run: MetricRun, s: NTKSettings) -> MetricOutput:
    """Kernel evolution and kernel-machine accuracy along the trajectory, kept as the variant
    :func:`~qlandscape.runs.metric_specs.ntk.variant_name` names."""
    x_train, y_train, x_test, y_test = to_torch(run.dataset)
    obj = run.objective("train", memory_budget=s.memory_budget)
    if s.adversarial is not None:  # the kernel's inputs and the test inputs, attacked at the final point
        final = run.result.trajectory[-1]
        budget = s.memory_budget
        obj = evaluation_objective(run, "train", s.adversarial, final, "ntk", n_samples=s.subset, memory_budget=budget)
        x_train = obj.x
        x_test = evaluation_objective(run, "test", s.adversarial, final, "ntk", memory_budget=budget).x
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
    variant = variant_name(s)
    scalars = {
        "ntk.variant": variant,
        "ntk.final_distance_from_init": float(evo.distance_from_init[-1]),
        "ntk.kernel_accuracy_init": float(curve.kernel_accuracy[0]),
        "ntk.kernel_accuracy_final": float(curve.kernel_accuracy[-1]),
    }
    if s.adversarial is not None:
        scalars["ntk.data"] = describe_data(s.adversarial)
    return MetricOutput(
        scalars,
        (
            SavedResult(f"{variant}_evolution", "ntk.evolution", evo),
            SavedResult(f"{variant}_kernel_machine", "ntk.machine", curve),
        ),
        variant=variant,
    )


def figures(output: MetricOutput, s: NTKSettings) -> Iterator[tuple[str, Figure]]:
    """Kernel distances between recorded points, kernel velocity, and kernel-machine accuracy; titled with the
    adversarial inputs where the metric used them."""
    return titled(_figures(output, s), s.adversarial)


def _figures(output: MetricOutput, s: NTKSettings) -> Iterator[tuple[str, Figure]]:
    variant = output.variant or "ntk"
    evo, curve = output.result(f"{variant}_evolution"), output.result(f"{variant}_kernel_machine")
    yield f"{variant}_distance", nplots.plot_kernel_distance_matrix(evo)
    yield f"{variant}_velocity", nplots.plot_kernel_velocity(evo)
    yield f"{variant}_kernel_machine", nplots.plot_kernel_machine_accuracy(curve)


def check_against_run(s: NTKSettings, n_train: int, n_params: int) -> None:
    """The kernel's inputs come from the training split: at most all of it."""
    if s.subset > n_train:
        raise ConfigError("metrics.ntk.subset", s.subset, f"expected at most the {n_train} training samples")


def sweep_figures(view: SweepView) -> Iterator[tuple[str, str, Figure]]:
    """Every run's kernel curves on one figure, each run's default variant
    (:func:`qlandscape.runs.variants.default`: the one its config computed, else the latest)."""
    curves = kernel_curves(
        view.rows_with_result("ntk", "_evolution"),
        view.result_loader("ntk", "_evolution", KernelEvolution),
        view.result_loader("ntk", "_kernel_machine", KernelMachineCurve),
        fields=view.fields,
    )
    if curves is not None:
        yield (
            "ntk_curves",
            "NTK distance from initialisation, kernel velocity and kernel-machine accuracy during training",
            plot_kernel_curves(curves),
        )
