"""The results of the curvature metrics: frozen dataclasses of numpy arrays and numbers, nothing else.

The compute modules (:mod:`~qlandscape.metrics.curvature.hessian`, ``eigensolvers``, ``spectral_density``,
``structured``) return these, and :mod:`qlandscape.plots.hessian` draws them; this module imports only numpy and
dataclasses, so plotting and loading saved results never import torch or a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "CurvatureDecomposition",
    "DenseSpectrum",
    "EigenResult",
    "HessianSummary",
    "SpectralDensity",
    "StructureSummary",
    "TraceResult",
    "TrajectoryCurvature",
]


@dataclass(frozen=True, eq=False)
class EigenResult:
    """Extreme eigenpairs (eigenvalues ascending, eigenvectors as columns) with per-pair residuals ‖Hv − λv‖.

    ``which`` is largest / smallest / both (k of each end) / magnitude (power iteration). ``n_matvecs`` counts
    every matvec the call used, including the k that check the residuals. ``history`` is the estimate of the
    leading wanted eigenvalue after each iteration (the largest Ritz value for "largest"/"both", the smallest for
    "smallest", the Rayleigh quotient for power iteration; empty for ARPACK and dense), so the cost to any
    accuracy can be read off afterwards.
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    residual_norms: np.ndarray
    n_matvecs: int
    converged: bool
    tol: float
    which: str
    method: str
    n_params: int
    history: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass(frozen=True, eq=False)
class DenseSpectrum:
    """All eigenvalues (ascending) of the dense Hessian, with eigenvectors as columns and optionally H itself."""

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray | None
    hessian: np.ndarray | None
    n_params: int

    @property
    def lambda_max(self) -> float:
        return float(self.eigenvalues[-1])

    @property
    def lambda_min(self) -> float:
        return float(self.eigenvalues[0])

    @property
    def trace(self) -> float:
        return float(self.eigenvalues.sum())

    def fraction_negative(self, negative_tol: float = 1e-9) -> float:
        """Fraction of eigenvalues below −negative_tol · max|λ| (round-off of a zero eigenvalue is not negative)."""
        return float(np.mean(self.eigenvalues < -negative_tol * np.abs(self.eigenvalues).max()))


@dataclass(frozen=True, eq=False)
class HessianSummary:
    """Scalar curvature at one point. ``trace_stderr`` is 0 when exact (dense); ``ratio`` = |λ_min| / λ_max (NaN
    when λ_max = 0); ``fraction_negative`` is exact (dense) or the SLQ quadrature mass below −negative_tol·‖H‖."""

    lambda_max: float
    lambda_min: float
    trace: float
    trace_stderr: float
    ratio: float
    fraction_negative: float
    n_params: int
    method: str
    n_matvecs: int
    converged: bool
    negative_tol: float


@dataclass(frozen=True, eq=False)
class TrajectoryCurvature:
    """Curvature at each recorded point of a trajectory: ``top_k`` (T, k) ascending (λ_max is the last column),
    ``lambda_min``, ``trace`` (± ``trace_stderr``, 0 when exact) and the matvecs used per point."""

    times: np.ndarray
    top_k: np.ndarray
    lambda_max: np.ndarray
    lambda_min: np.ndarray
    trace: np.ndarray
    trace_stderr: np.ndarray
    n_matvecs: np.ndarray
    converged: np.ndarray
    method: str
    k: int
    n_params: int


@dataclass(frozen=True, eq=False)
class TraceResult:
    """Hutchinson estimate of tr(H) = E[zᵀHz] over ``n_probes`` probes z, with its standard error std/√n."""

    estimate: float
    stderr: float
    samples: np.ndarray
    n_probes: int
    n_params: int
    n_matvecs: int
    probe: str
    seed: int


@dataclass(frozen=True, eq=False)
class SpectralDensity:
    """Spectral density of a symmetric operator, normalised to integrate to 1 over ``grid``: exact (every
    eigenvalue of a dense matrix, ``probe == "exact"``) or by stochastic Lanczos quadrature; :attr:`method` says
    which.

    ``nodes``/``weights`` (n_starts, lanczos_steps) are the Gauss quadrature of each start (Ritz values and squared
    first eigenvector components; each row of weights sums to 1). A start whose Krylov space closed early (an
    invariant subspace, exact) has ``steps[s]`` < lanczos_steps real nodes; the rest are padded with node 0 and
    weight 0, which changes no sum. ``density`` is the quadrature broadened by Gaussians of width ``sigma``.
    """

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    steps: np.ndarray
    sigma: float
    n_params: int
    n_starts: int
    lanczos_steps: int
    n_matvecs: int
    probe: str
    seed: int

    @property
    def method(self) -> str:
        """``"exact"`` (broadened dense eigenvalues) or ``"slq"`` (stochastic Lanczos quadrature)."""
        return "exact" if self.probe == "exact" else "slq"

    @property
    def mean(self) -> float:
        """Quadrature mean Σ w θ averaged over starts: an unbiased estimate of tr(H)/P."""
        return float(np.mean(np.sum(self.weights * self.nodes, axis=1)))

    @property
    def trace_estimate(self) -> float:
        """mean × P, the SLQ estimate of tr(H)."""
        return self.mean * self.n_params

    @property
    def grid_mean(self) -> float:
        """∫ x ρ(x) dx of the broadened density on its grid (equals ``mean`` up to the grid's accuracy)."""
        return float(np.trapezoid(self.grid * self.density, self.grid))

    def mass_below(self, threshold: float = 0.0) -> float:
        """Quadrature mass strictly below ``threshold``: the estimated fraction of eigenvalues < threshold
        (unbroadened, so a large cluster at 0 does not leak across it)."""
        return float(np.mean(np.sum(self.weights * (self.nodes < threshold), axis=1)))


@dataclass(frozen=True)
class CurvatureDecomposition:
    """H = G + R at one parameter point, with how it was computed.

    ``aggregation_scale``: c²/N of a parameter-free patch-mean readout (logits = c · patch mean over N patches),
    the factor by which averaging alone scales G; NaN for a model without one (a linear head, a classical net).
    """

    hessian: np.ndarray
    gauss_newton: np.ndarray
    residual: np.ndarray
    method: str  # "structured" (per-patch assembly) or "generic" (R = H - G)
    n_params: int
    n_patches: int
    n_classes: int
    seconds: float
    aggregation_scale: float = float("nan")


@dataclass(frozen=True)
class StructureSummary:
    """Spectra of H, G and R with outlier counts and the aggregation-normalised top eigenvalue.

    ``aggregation_scale`` is c²/N for the parameter-free mean rule (logits = c · patch mean), the factor by which
    averaging alone scales G; ``lambda_max_normalised`` = λ_max(H) / aggregation_scale separates that trivial 1/N
    from a genuine change of the landscape. Outliers: the number of eigenvalues above the largest multiplicative
    gap among the top ``4·C`` positive eigenvalues (a bulk near zero plus separated outliers, Papyan 2020).
    """

    eigenvalues_hessian: np.ndarray
    eigenvalues_gauss_newton: np.ndarray
    eigenvalues_residual: np.ndarray
    lambda_max: float
    lambda_min: float
    lambda_max_gauss_newton: float
    lambda_max_residual: float
    lambda_min_residual: float
    n_outliers: int
    n_outliers_gauss_newton: int
    n_classes: int
    n_patches: int
    aggregation_scale: float
    lambda_max_normalised: float
    method: str
