"""Result classes apart from the compute code: plots and saved results load without torch; 0.1 paths still work."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import numpy as np
import pytest

from qlandscape.core.io import load_result, save_result
from qlandscape.metrics.curvature import eigensolvers, hessian, results, spectral_density, structured

# The public names of the 0.1 curvature modules, each of which must still resolve through its old path.
OLD_NAMES = {
    "qlandscape.hessian": [
        "DEFAULT_MAX_PARAMS", "DenseSpectrum", "EigenResult", "HessianSummary", "METHODS", "SpectralDensity",
        "TraceResult", "TrajectoryCurvature", "dense_spectrum", "hessian_along_trajectory", "hessian_summary",
        "hutchinson_trace", "power_iteration", "spectral_density", "spectrum_of_matrix", "summary_from_spectrum",
        "top_eigenvalues",
    ],
    "qlandscape.eigensolvers": ["EigenResult", "WHICH", "matvecs_to_tolerance", "power_iteration", "top_eigenvalues"],
    "qlandscape.spectral_density": [
        "PROBES", "SpectralDensity", "TraceResult", "density_from_eigenvalues", "hutchinson_trace",
        "lanczos_tridiagonal", "probe_vectors", "spectral_density",
    ],
    "qlandscape.structured": [
        "CurvatureDecomposition", "PowerLawFit", "StructureSummary", "count_outliers", "decompose", "fit_power_law",
        "gauss_newton", "gauss_newton_vector_product", "is_patch_model", "residual_vector_product",
        "structure_summary", "structured_hessian",
    ],
    "qlandscape.objective": [
        "DEFAULT_POINTS_PER_CALL", "MAX_POINTS_PER_CALL", "Objective", "POINTS_STATE_BYTES", "STRUCTURED_MIN_PATCHES",
        "check_finite_loss", "uses_torch_func",
    ],
}  # fmt: skip


@pytest.mark.parametrize("module", ["qlandscape.metrics.curvature.results", "qlandscape.plots.hessian"])
def test_results_and_their_plots_import_no_torch(module):
    code = f"import sys, {module}; bad = [m for m in ('torch', 'qlandscape.core.objective') if m in sys.modules]; "
    code += "print(bad); sys.exit(1 if bad else 0)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compute_modules_hand_out_the_result_classes():
    # one class per result, whichever module it is imported from
    assert eigensolvers.EigenResult is results.EigenResult
    assert spectral_density.SpectralDensity is results.SpectralDensity
    assert spectral_density.TraceResult is results.TraceResult
    assert hessian.DenseSpectrum is results.DenseSpectrum and hessian.TrajectoryCurvature is results.TrajectoryCurvature
    assert structured.CurvatureDecomposition is results.CurvatureDecomposition
    assert structured.StructureSummary is results.StructureSummary


@pytest.mark.parametrize("old", sorted(OLD_NAMES))
def test_old_module_paths_resolve_every_public_name(old):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sys.modules.pop(old, None)
        module = importlib.import_module(old)
    assert any(issubclass(w.category, DeprecationWarning) and old in str(w.message) for w in caught)
    assert [name for name in OLD_NAMES[old] if not hasattr(module, name)] == []
    sys.modules.pop(old, None)


def test_decomposition_with_its_aggregation_scale_round_trips(tmp_path):
    dec = results.CurvatureDecomposition(
        hessian=np.eye(2), gauss_newton=np.eye(2), residual=np.zeros((2, 2)), method="generic", n_params=2,
        n_patches=1, n_classes=2, seconds=0.1,
    )  # fmt: skip
    assert np.isnan(dec.aggregation_scale)  # the default: no patch-mean readout
    save_result(dec, tmp_path / "dec")
    back = load_result(results.CurvatureDecomposition, tmp_path / "dec")
    assert np.isnan(back.aggregation_scale) and back.method == "generic"
    np.testing.assert_array_equal(back.gauss_newton, dec.gauss_newton)
