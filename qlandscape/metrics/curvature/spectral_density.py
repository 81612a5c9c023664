"""Stochastic estimators that need only Hessian-vector products: Hutchinson's trace and the spectral density by
stochastic Lanczos quadrature (SLQ; Ghorbani, Krishnan & Xiao 2019, as in PyHessian).

Both draw their probe vectors from one seeded generator (:func:`probe_vectors`), so with Rademacher probes and the
same seed the SLQ mean times P equals the Hutchinson estimate over the same number of probes, to round-off: the
quadrature of a start v satisfies Σ_i w_i θ_i = e₁ᵀ T e₁ = vᵀHv / |v|², and |v|² = P for a Rademacher vector.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.linalg

from qlandscape.core.errors import ConfigError, check_choice, check_positive_int, require
from qlandscape.core.objective import Objective
from qlandscape.core.operators import LinearOperator, as_operator
from qlandscape.metrics.curvature.results import SpectralDensity, TraceResult

__all__ = [
    "PROBES",
    "Probe",
    "probe_vectors",
    "hutchinson_trace",
    "lanczos_tridiagonal",
    "spectral_density",
    "density_from_eigenvalues",
]

PROBES = ("rademacher", "gaussian")
Probe = Literal["rademacher", "gaussian"]


def probe_vectors(n: int, count: int, *, seed: int = 0, probe: Probe = "rademacher") -> np.ndarray:
    """``count`` probe vectors of length ``n`` as rows (Rademacher ±1, or standard Gaussian), from one seed."""
    check_choice("probe", probe, PROBES)
    rng = np.random.default_rng(seed)
    if probe == "rademacher":
        return rng.choice(np.array([-1.0, 1.0]), size=(count, n))
    return rng.standard_normal((count, n))


def hutchinson_trace(
    source: Objective | LinearOperator,
    *,
    theta: np.ndarray | None = None,
    n_probes: int = 100,
    seed: int = 0,
    probe: Probe = "rademacher",
) -> TraceResult:
    """Hutchinson's estimate of tr(H): the mean of zᵀHz over probes z (Rademacher by default: least variance
    among i.i.d. probes, Var = 2 Σ_{i≠j} H_ij²), with standard error std/√n_probes. Costs n_probes matvecs."""
    n_probes = check_positive_int("n_probes", n_probes, minimum=2)
    check_choice("probe", probe, PROBES)
    op = as_operator(source, theta)
    start = op.n_matvecs
    probes = probe_vectors(op.size, n_probes, seed=seed, probe=probe)
    samples = np.array([z @ op.matvec(z) for z in probes])
    return TraceResult(
        estimate=float(samples.mean()),
        stderr=float(samples.std(ddof=1) / np.sqrt(n_probes)),
        samples=samples,
        n_probes=n_probes,
        n_params=op.size,
        n_matvecs=op.n_matvecs - start,
        probe=probe,
        seed=seed,
    )


def lanczos_tridiagonal(
    op: LinearOperator, start: np.ndarray, steps: int, *, breakdown_tol: float = 1e-10
) -> tuple[np.ndarray, np.ndarray]:
    """Lanczos with full reorthogonalisation from ``start``: the tridiagonal (alpha (m,), beta (m-1,)), m <= steps.

    Stops early when the Krylov space closes (beta below ``breakdown_tol`` times the largest coefficient seen):
    the quadrature is then exact. Stores the m basis vectors (memory m·P floats).
    """
    n = op.size
    steps = min(steps, n)
    basis = np.zeros((steps, n))
    basis[0] = start / np.linalg.norm(start)
    alpha, beta = [], []
    scale = 0.0
    for j in range(steps):
        w = op.matvec(basis[j])
        a = float(w @ basis[j])
        w -= a * basis[j]
        if j > 0:
            w -= beta[-1] * basis[j - 1]
        # twice is enough (Kahan–Parlett): keeps the basis orthogonal to machine precision
        for _ in range(2):
            w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
        alpha.append(a)
        b = float(np.linalg.norm(w))
        scale = max(scale, abs(a), b)
        if j + 1 == steps or b <= breakdown_tol * scale:
            break
        beta.append(b)
        basis[j + 1] = w / b
    return np.array(alpha), np.array(beta)


def _quadrature(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if alpha.size == 1:
        return alpha.copy(), np.ones(1)
    nodes, vecs = scipy.linalg.eigh_tridiagonal(alpha, beta)
    weights = vecs[0] ** 2
    return nodes, weights / weights.sum()


def spectral_density(
    source: Objective | LinearOperator,
    *,
    theta: np.ndarray | None = None,
    n_starts: int = 10,
    lanczos_steps: int = 80,
    sigma: float | None = None,
    grid_size: int = 1000,
    seed: int = 0,
    probe: Probe = "rademacher",
) -> SpectralDensity:
    """Spectral density by stochastic Lanczos quadrature: ``n_starts`` unit starts, ``lanczos_steps`` Lanczos steps
    each (capped at P), Gaussian broadening of width ``sigma`` (default 1% of the Ritz-value range), evaluated on
    ``grid_size`` points spanning the nodes ± 6σ and normalised numerically to integrate to 1.

    Costs n_starts × lanczos_steps matvecs (fewer if a Krylov space closes early).
    """
    n_starts = check_positive_int("n_starts", n_starts)
    lanczos_steps = check_positive_int("lanczos_steps", lanczos_steps)
    grid_size = check_positive_int("grid_size", grid_size, minimum=2)
    check_choice("probe", probe, PROBES)
    if sigma is not None:
        require(np.isfinite(sigma) and sigma > 0, "sigma", sigma, "expected a positive width or None")
    op = as_operator(source, theta)
    start_count = op.n_matvecs
    steps = min(lanczos_steps, op.size)
    nodes = np.zeros((n_starts, steps))
    weights = np.zeros((n_starts, steps))
    used = np.zeros(n_starts, dtype=np.int64)
    for s, v in enumerate(probe_vectors(op.size, n_starts, seed=seed, probe=probe)):
        if not np.any(v):  # a Gaussian draw cannot be 0; guard anyway against a zero start
            raise ConfigError("probe", probe, "drew a zero start vector; use another seed")
        node, weight = _quadrature(*lanczos_tridiagonal(op, v, steps))
        nodes[s, : node.size], weights[s, : node.size], used[s] = node, weight, node.size
    real = np.concatenate([nodes[s, : used[s]] for s in range(n_starts)])
    grid, density, sigma = _broaden(real, nodes, weights, sigma, grid_size)
    return SpectralDensity(
        grid=grid,
        density=density,
        nodes=nodes,
        weights=weights,
        steps=used,
        sigma=float(sigma),
        n_params=op.size,
        n_starts=n_starts,
        lanczos_steps=steps,
        n_matvecs=op.n_matvecs - start_count,
        probe=probe,
        seed=seed,
    )


def _broaden(
    real: np.ndarray, nodes: np.ndarray, weights: np.ndarray, sigma: float | None, grid_size: int
) -> tuple[np.ndarray, np.ndarray, float]:
    lo, hi = float(real.min()), float(real.max())
    if sigma is None:
        spread = hi - lo
        sigma = 0.01 * spread if spread > 0 else 0.01 * max(abs(hi), 1.0)
    grid = np.linspace(lo - 6 * sigma, hi + 6 * sigma, grid_size)
    gauss = np.exp(-0.5 * ((grid[:, None] - nodes.reshape(-1)[None, :]) / sigma) ** 2)
    density = gauss @ weights.reshape(-1) / (nodes.shape[0] * sigma * np.sqrt(2 * np.pi))
    density /= np.trapezoid(density, grid)
    return grid, density, float(sigma)


def density_from_eigenvalues(
    eigenvalues: np.ndarray, *, sigma: float | None = None, grid_size: int = 1000
) -> SpectralDensity:
    """The exact spectral density of a dense spectrum, broadened like SLQ's: one "start" whose nodes are all P
    eigenvalues with weight 1/P each (what SLQ converges to). No matvecs."""
    grid_size = check_positive_int("grid_size", grid_size, minimum=2)
    if sigma is not None:
        require(np.isfinite(sigma) and sigma > 0, "sigma", sigma, "expected a positive width or None")
    eig = np.asarray(eigenvalues, dtype=np.float64).reshape(1, -1)
    require(eig.size > 0 and bool(np.isfinite(eig).all()), "eigenvalues", eig.size, "expected finite eigenvalues")
    weights = np.full_like(eig, 1.0 / eig.size)
    grid, density, sigma = _broaden(eig[0], eig, weights, sigma, grid_size)
    return SpectralDensity(
        grid=grid,
        density=density,
        nodes=eig,
        weights=weights,
        steps=np.array([eig.size]),
        sigma=sigma,
        n_params=eig.size,
        n_starts=1,
        lanczos_steps=eig.size,
        n_matvecs=0,
        probe="exact",
        seed=0,
    )
