"""Hessian spectrum of the mean loss: dense eigendecomposition, Lanczos extremes, power iteration (baseline),
Hutchinson trace, SLQ spectral density, a one-call summary and curvature along a training trajectory. The
eigensolvers (:mod:`~qlandscape.metrics.curvature.eigensolvers`), the stochastic estimators
(:mod:`~qlandscape.metrics.curvature.spectral_density`) and the result classes
(:mod:`~qlandscape.metrics.curvature.results`) live in modules of their own.

Everything except :func:`dense_spectrum` needs only Hessian-vector products and takes an Objective or any
:class:`~qlandscape.core.operators.LinearOperator` (see :mod:`qlandscape.core.operators` for HVP sources, and
:mod:`~qlandscape.metrics.curvature.structured` for the Gauss-Newton and residual operators). Eigenvalues are
always returned in ascending order, as ``numpy.linalg.eigh`` and SciPy's ``eigsh`` give them. Every result reports
the matvecs (HVPs) it used.

Before any curvature is computed at a point, its parameters must be finite (ConfigError) and its loss finite
(ValueError), so a diverged run never produces a plotted NaN.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from qlandscape.core.errors import ConfigError, check_choice, check_positive_int, require
from qlandscape.core.objective import Objective
from qlandscape.core.operators import LinearOperator, as_operator, checked_theta, hessian_operator, to_dense
from qlandscape.metrics.curvature.eigensolvers import (
    top_eigenvalues,
)
from qlandscape.metrics.curvature.results import (
    DenseSpectrum,
    HessianSummary,
    TrajectoryCurvature,
)
from qlandscape.metrics.curvature.spectral_density import hutchinson_trace, spectral_density
from qlandscape.metrics.curvature.structured import exact_hessian

__all__ = [
    "DEFAULT_MAX_PARAMS",
    "METHODS",
    "dense_spectrum",
    "hessian_along_trajectory",
    "hessian_summary",
    "spectrum_of_matrix",
    "summary_from_spectrum",
]

DEFAULT_MAX_PARAMS = 3000
METHODS = ("auto", "dense", "lanczos")


# ---------------------------------------------------------------------------------------------- results
# ---------------------------------------------------------------------------------------------- dense
def _check_dense_size(n: int, max_params: int) -> None:
    if n > max_params:
        raise ConfigError(
            "n_params",
            n,
            f"the dense Hessian is limited to max_params = {max_params} parameters "
            "(memory P², time P³); use top_eigenvalues / hessian_summary(method='lanczos'), "
            "which need only Hessian-vector products, or raise max_params",
        )


def dense_spectrum(
    source: Objective | LinearOperator,
    theta: np.ndarray | torch.Tensor | None = None,
    *,
    max_params: int = DEFAULT_MAX_PARAMS,
    keep_eigenvectors: bool = True,
    keep_hessian: bool = False,
) -> DenseSpectrum:
    """Full eigendecomposition (``numpy.linalg.eigh``) of the exact Hessian from
    :func:`~qlandscape.metrics.curvature.structured.exact_hessian` (per-patch assembly for patch models, else
    autograd), or of an operator applied to the identity. Raises ConfigError above ``max_params`` parameters."""
    max_params = check_positive_int("max_params", max_params)
    if isinstance(source, LinearOperator):
        require(theta is None, "theta", "<given>", "theta only applies to an Objective")
        _check_dense_size(source.size, max_params)
        h = to_dense(source)
    elif isinstance(source, Objective):
        _check_dense_size(source.n_params, max_params)
        h = exact_hessian(source, checked_theta(source, theta)).numpy()
        if not np.isfinite(h).all():
            raise ValueError("the Hessian contains non-finite entries at this point although the loss is finite")
    else:
        raise ConfigError("source", type(source).__name__, "expected an Objective or a qlandscape LinearOperator")
    return spectrum_of_matrix(h, keep_eigenvectors=keep_eigenvectors, keep_hessian=keep_hessian)


def spectrum_of_matrix(h: np.ndarray, *, keep_eigenvectors: bool = True, keep_hessian: bool = False) -> DenseSpectrum:
    """The :class:`DenseSpectrum` of a Hessian already at hand (e.g. from a structured decomposition)."""
    if keep_eigenvectors:
        vals, vecs = np.linalg.eigh(h)
    else:
        vals, vecs = np.linalg.eigvalsh(h), None
    return DenseSpectrum(eigenvalues=vals, eigenvectors=vecs, hessian=h if keep_hessian else None, n_params=h.shape[0])


# ---------------------------------------------------------------------------------------------- summaries
def _resolve_method(method: str, n_params: int, max_params: int) -> str:
    check_choice("method", method, METHODS)
    if method == "auto":
        return "dense" if n_params <= max_params else "lanczos"
    if method == "dense":
        _check_dense_size(n_params, max_params)
    return method


def _size(source: Objective | LinearOperator) -> int:
    if isinstance(source, LinearOperator):
        return source.size
    if isinstance(source, Objective):
        return source.n_params
    raise ConfigError("source", type(source).__name__, "expected an Objective or a qlandscape LinearOperator")


def hessian_summary(
    source: Objective | LinearOperator,
    theta: np.ndarray | torch.Tensor | None = None,
    *,
    method: Literal["auto", "dense", "lanczos"] = "auto",
    max_params: int = DEFAULT_MAX_PARAMS,
    tol: float = 1e-10,
    n_probes: int = 100,
    n_starts: int = 10,
    lanczos_steps: int = 80,
    seed: int = 0,
    negative_tol: float = 1e-9,
) -> HessianSummary:
    """λ_max, λ_min, trace, |λ_min|/λ_max and the fraction of negative eigenvalues at one point.

    ``"dense"`` (what ``"auto"`` picks up to ``max_params`` parameters): everything exact from ``eigh``.
    ``"lanczos"``: extremes by :func:`top_eigenvalues` (which="both"), trace by Hutchinson (``n_probes``, with
    standard error), negative fraction from the SLQ quadrature (``n_starts`` × ``lanczos_steps`` matvecs).
    Eigenvalues below −negative_tol · max|λ| count as negative.
    """
    max_params = check_positive_int("max_params", max_params)
    require(np.isfinite(negative_tol) and negative_tol >= 0, "negative_tol", negative_tol, "expected >= 0")
    method = _resolve_method(method, _size(source), max_params)
    require(
        method == "dense" or _size(source) >= 2,
        "method",
        method,
        "λ_min and λ_max by Lanczos need at least 2 parameters; use method='dense'",
    )
    if method == "dense":
        spec = dense_spectrum(source, theta, max_params=max_params, keep_eigenvectors=False)
        return summary_from_spectrum(
            spec, negative_tol=negative_tol, n_matvecs=source.size if isinstance(source, LinearOperator) else 0
        )
    else:
        op = as_operator(source, theta)
        extremes = top_eigenvalues(op, 1, which="both", tol=tol, seed=seed)
        found = extremes.eigenvalues
        lmin, lmax = (float(found[0]), float(found[-1])) if found.size == 2 else (np.nan, np.nan)
        trace_result = hutchinson_trace(op, n_probes=n_probes, seed=seed)
        density = spectral_density(op, n_starts=n_starts, lanczos_steps=lanczos_steps, seed=seed)
        scale = max(abs(lmin), abs(lmax)) if found.size == 2 else 0.0
        trace, stderr = trace_result.estimate, trace_result.stderr
        negative = density.mass_below(-negative_tol * scale)
        n_matvecs = extremes.n_matvecs + trace_result.n_matvecs + density.n_matvecs
        converged = extremes.converged and found.size == 2
    ratio = abs(lmin) / lmax if lmax != 0 else np.nan
    return HessianSummary(
        lambda_max=float(lmax),
        lambda_min=float(lmin),
        trace=float(trace),
        trace_stderr=float(stderr),
        ratio=float(ratio),
        fraction_negative=float(negative),
        n_params=_size(source),
        method=method,
        n_matvecs=int(n_matvecs),
        converged=bool(converged),
        negative_tol=float(negative_tol),
    )


def summary_from_spectrum(spec: DenseSpectrum, *, negative_tol: float = 1e-9, n_matvecs: int = 0) -> HessianSummary:
    """The exact :class:`HessianSummary` of a dense spectrum (no further Hessian work)."""
    lmax, lmin = spec.lambda_max, spec.lambda_min
    return HessianSummary(
        lambda_max=lmax,
        lambda_min=lmin,
        trace=spec.trace,
        trace_stderr=0.0,
        ratio=float(abs(lmin) / lmax if lmax != 0 else np.nan),
        fraction_negative=spec.fraction_negative(negative_tol),
        n_params=spec.n_params,
        method="dense",
        n_matvecs=int(n_matvecs),
        converged=True,
        negative_tol=float(negative_tol),
    )


def _check_trajectory(
    objective: Objective, trajectory: np.ndarray, times: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    traj = np.asarray(trajectory.detach() if isinstance(trajectory, torch.Tensor) else trajectory, dtype=np.float64)
    require(
        traj.ndim == 2 and traj.shape[0] >= 1 and traj.shape[1] == objective.n_params,
        "trajectory",
        traj.shape,
        f"expected shape (T, {objective.n_params}) with T >= 1",
    )
    bad = np.argwhere(~np.isfinite(traj))
    if bad.size:
        t, j = (int(i) for i in bad[0])
        raise ConfigError(f"trajectory[{t}, {j}]", float(traj[t, j]), "parameters must be finite")
    t_arr = np.arange(traj.shape[0], dtype=np.float64) if times is None else np.asarray(times, dtype=np.float64)
    require(
        t_arr.shape == (traj.shape[0],) and bool(np.isfinite(t_arr).all()),
        "times",
        t_arr.shape,
        f"expected {traj.shape[0]} finite times, one per trajectory row",
    )
    return traj, t_arr


def hessian_along_trajectory(
    objective: Objective,
    trajectory: np.ndarray,
    times: np.ndarray | None = None,
    *,
    k: int = 1,
    method: Literal["auto", "dense", "lanczos"] = "auto",
    max_params: int = DEFAULT_MAX_PARAMS,
    tol: float = 1e-10,
    n_probes: int = 100,
    seed: int = 0,
    progress: bool = False,
) -> TrajectoryCurvature:
    """Top-k eigenvalues, λ_min and the trace at every row of ``trajectory`` (T, P), recorded at ``times``.

    Dense (exact) up to ``max_params`` parameters under ``"auto"``, else Lanczos + Hutchinson per point with the
    same seed at every point (common random numbers keep the curves smooth). All parameters and losses are
    checked for finiteness before the first Hessian is computed.
    """
    max_params = check_positive_int("max_params", max_params)
    k = check_positive_int("k", k)
    require(k <= objective.n_params, "k", k, f"expected k <= {objective.n_params} (the parameter count)")
    method = _resolve_method(method, objective.n_params, max_params)
    traj, t_arr = _check_trajectory(objective, trajectory, times)
    losses, _ = objective.losses(torch.from_numpy(traj))
    nonfinite = np.flatnonzero(~np.isfinite(losses.numpy()))
    if nonfinite.size:
        i = int(nonfinite[0])
        raise ValueError(
            f"the loss at trajectory point {i} (time {t_arr[i]:g}) is {float(losses[i])}; curvature "
            "metrics need a finite loss"
        )
    n_points = traj.shape[0]
    top = np.full((n_points, k), np.nan)
    lmin, trace, stderr = np.full(n_points, np.nan), np.full(n_points, np.nan), np.zeros(n_points)
    n_matvecs, converged = np.zeros(n_points, dtype=np.int64), np.ones(n_points, dtype=bool)
    for i in tqdm(range(n_points), desc="Hessian along trajectory", disable=not progress):
        if method == "dense":
            spec = dense_spectrum(objective, traj[i], max_params=max_params, keep_eigenvectors=False)
            top[i], lmin[i], trace[i] = spec.eigenvalues[-k:], spec.lambda_min, spec.trace
            continue
        op = hessian_operator(objective, traj[i])
        if k == 1:
            both = top_eigenvalues(op, 1, which="both", tol=tol, seed=seed)
            ok = both.converged and both.eigenvalues.size == 2
            if ok:
                top[i], lmin[i] = both.eigenvalues[-1:], both.eigenvalues[0]
        else:
            high = top_eigenvalues(op, k, which="largest", tol=tol, seed=seed)
            low = top_eigenvalues(op, 1, which="smallest", tol=tol, seed=seed)
            ok = high.converged and low.converged
            top[i, k - high.eigenvalues.size :] = high.eigenvalues
            lmin[i] = low.eigenvalues[0] if low.eigenvalues.size else np.nan
        tr = hutchinson_trace(op, n_probes=n_probes, seed=seed)
        trace[i], stderr[i], n_matvecs[i], converged[i] = tr.estimate, tr.stderr, op.n_matvecs, ok
    return TrajectoryCurvature(
        times=t_arr,
        top_k=top,
        lambda_max=top[:, -1].copy(),
        lambda_min=lmin,
        trace=trace,
        trace_stderr=stderr,
        n_matvecs=n_matvecs,
        converged=converged,
        method=method,
        k=k,
        n_params=objective.n_params,
    )
