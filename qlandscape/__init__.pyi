"""Types of the package face for type checkers: the names ``qlandscape/__init__.py`` loads on first use (its
``__all__`` re-exports them; tests/test_public_api.py checks that both files list the same names)."""

from qlandscape.core.errors import ConfigError
from qlandscape.core.io import load_result, save_result
from qlandscape.core.objective import Objective
from qlandscape.data.config import DataConfig
from qlandscape.data.datasets import Dataset, load_dataset, to_torch
from qlandscape.metrics.curvature.eigensolvers import top_eigenvalues
from qlandscape.metrics.curvature.hessian import (
    dense_spectrum,
    hessian_along_trajectory,
    hessian_summary,
)
from qlandscape.metrics.curvature.spectral_density import hutchinson_trace
from qlandscape.metrics.curvature.structured import (
    decompose,
    exact_hessian,
    structure_summary,
)
from qlandscape.metrics.fits import fit_power_law
from qlandscape.metrics.gradients import (
    gradient_variance,
    qnn_gradient_variance,
    variance_curve,
)
from qlandscape.metrics.landscape.connectivity import (
    function_space_distance,
    interpolate,
)
from qlandscape.metrics.landscape.directions import (
    hessian_directions,
    pca_directions,
    random_direction,
)
from qlandscape.metrics.landscape.slices import (
    grid_from_range,
    slice_1d,
    slice_2d,
    slice_pca,
)
from qlandscape.metrics.landscape.spawning import spawn_experiment
from qlandscape.metrics.ntk.kernel_machines import kernel_machine_curve
from qlandscape.metrics.ntk.kernels import empirical_ntk, kernel_evolution
from qlandscape.models.classical import CNN, MLP
from qlandscape.models.config import ModelConfig, build_model
from qlandscape.models.qnn import PatchQNN
from qlandscape.plots import save_figure
from qlandscape.plots.connectivity import plot_interpolation
from qlandscape.plots.hessian import plot_density, plot_spectrum
from qlandscape.plots.landscape import (
    plot_contour,
    plot_slice_1d,
    plot_surface,
    plot_trajectory,
)
from qlandscape.runs.config import RunConfig, load_config
from qlandscape.runs.report import write_report
from qlandscape.runs.run import (
    LoadedRun,
    execute_run,
    load_run,
    run_metric,
)
from qlandscape.runs.sweep import load_sweep, run_sweep
from qlandscape.runs.tables import load_runs
from qlandscape.sim.allocator import retain_freed_memory
from qlandscape.sim.backends.registry import make_backend
from qlandscape.sim.circuits import build_circuit
from qlandscape.train.trainer import TrainConfig, Trainer, TrainResult

__version__: str
__all__ = [
    "__version__",
    "ConfigError",
    "Objective",
    "save_result",
    "load_result",
    "retain_freed_memory",
    "make_backend",
    "build_circuit",
    "Dataset",
    "load_dataset",
    "to_torch",
    "DataConfig",
    "PatchQNN",
    "MLP",
    "CNN",
    "ModelConfig",
    "build_model",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "dense_spectrum",
    "hessian_summary",
    "hessian_along_trajectory",
    "top_eigenvalues",
    "hutchinson_trace",
    "decompose",
    "exact_hessian",
    "structure_summary",
    "random_direction",
    "hessian_directions",
    "pca_directions",
    "grid_from_range",
    "slice_1d",
    "slice_2d",
    "slice_pca",
    "interpolate",
    "function_space_distance",
    "spawn_experiment",
    "empirical_ntk",
    "kernel_evolution",
    "kernel_machine_curve",
    "gradient_variance",
    "qnn_gradient_variance",
    "variance_curve",
    "fit_power_law",
    "save_figure",
    "plot_spectrum",
    "plot_density",
    "plot_slice_1d",
    "plot_contour",
    "plot_surface",
    "plot_trajectory",
    "plot_interpolation",
    "RunConfig",
    "load_config",
    "LoadedRun",
    "execute_run",
    "load_run",
    "run_metric",
    "load_sweep",
    "run_sweep",
    "load_runs",
    "write_report",
]
