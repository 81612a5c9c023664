"""NTK results: an empirical kernel, its evolution along a trajectory, and the kernel machines built from it, as
frozen dataclasses of numpy arrays.

These classes hold numbers and labels only (numpy, no torch, no Objective), so figures
(:mod:`qlandscape.plots.ntk`) take them without importing compute code. They are built by
:mod:`qlandscape.metrics.ntk.kernels` (``NTK``, ``KernelEvolution``) and
:mod:`qlandscape.metrics.ntk.kernel_machines` (``KernelMachineCurve``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["NTK", "KernelEvolution", "KernelMachineCurve"]


@dataclass(frozen=True, eq=False)
class NTK:
    """An empirical NTK at one parameter vector.

    ``kernel`` is (n, n) for the ``"trace"`` form and (n·C, n·C), row ``i*C + c``, for the ``"full"`` form.
    """

    kernel: np.ndarray
    form: str
    n_inputs: int
    n_outputs: int
    n_params: int
    theta_norm: float
    kernel_trace: float
    kernel_frobenius_norm: float
    chunk_size: int


@dataclass(frozen=True, eq=False)
class KernelEvolution:
    """NTK evolution along a trajectory, at the recorded times used.

    ``distance`` is S(t, t′) over the used times (NaN off the diagonal, first row/column and first off-diagonals
    when computed with ``pairwise=False``); ``distance_from_init`` is S(times[0], t) relative to the first used
    time; ``velocity`` sits at ``velocity_times`` (midpoints of consecutive used times). ``alignment`` is NaN
    when no labels were given. ``kernels`` is None when not stored.
    """

    times: np.ndarray
    indices: np.ndarray
    distance: np.ndarray
    distance_from_init: np.ndarray
    velocity: np.ndarray
    velocity_times: np.ndarray
    alignment: np.ndarray
    kernel_norms: np.ndarray
    kernel_traces: np.ndarray
    param_distance_from_init: np.ndarray
    kernels: np.ndarray | None
    form: str
    n_inputs: int
    n_outputs: int
    n_params: int
    n_classes: int
    every: int
    pairwise: bool
    centered_alignment: bool


@dataclass(frozen=True, eq=False)
class KernelMachineCurve:
    """Test accuracy of the kernel machine built from Θ_t at each used recorded time, with the network's own.

    ``linearised_accuracy`` is NaN when the residual NTK regression was not requested. ``effective_ridge`` is the
    ridge actually added to the trace-form training kernel at each time.
    """

    times: np.ndarray
    indices: np.ndarray
    kernel_accuracy: np.ndarray
    kernel_train_accuracy: np.ndarray
    network_accuracy: np.ndarray
    network_train_accuracy: np.ndarray
    linearised_accuracy: np.ndarray
    effective_ridge: np.ndarray
    final_network_accuracy: float
    final_time: float
    ridge: float
    ridge_relative: bool
    linearised: bool
    n_train: int
    n_test: int
    n_outputs: int
    n_classes: int
    n_params: int
    every: int
    form: str = "trace"
