"""Hessian spectrum of the mean loss: dense eigendecomposition, Lanczos extremes, power iteration (baseline),
Hutchinson trace, SLQ spectral density, a one-call summary and curvature along a training trajectory.

Everything except :func:`dense_spectrum` needs only Hessian-vector products and takes an Objective or any
:class:`~qlandscape.operators.LinearOperator` (see :mod:`qlandscape.operators` for HVP sources). Eigenvalues are
always returned in ascending order, as ``numpy.linalg.eigh`` and SciPy's ``eigsh`` give them. Every result reports
the matvecs (HVPs) it used.

Before any curvature is computed at a point, its parameters must be finite (ConfigError) and its loss finite
(ValueError), so a diverged run never produces a plotted NaN.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.linalg
import scipy.sparse.linalg as spla
import torch
from tqdm.auto import tqdm

from .errors import ConfigError, check_choice, check_positive_int, require
from .objective import Objective
from .operators import LinearOperator, as_operator, checked_theta, hessian_operator, to_dense, to_scipy
from .spectral_density import SpectralDensity, TraceResult, hutchinson_trace, spectral_density

__all__ = ["DenseSpectrum", "EigenResult", "HessianSummary", "SpectralDensity", "TraceResult", "TrajectoryCurvature",
           "dense_spectrum", "hessian_along_trajectory", "hessian_summary", "summary_from_spectrum", "spectrum_of_matrix", "hutchinson_trace", "power_iteration",
           "spectral_density", "top_eigenvalues", "DEFAULT_MAX_PARAMS"]

log = logging.getLogger(__name__)
DEFAULT_MAX_PARAMS = 3000
WHICH = ("largest", "smallest", "both")
METHODS = ("auto", "dense", "lanczos")


# ---------------------------------------------------------------------------------------------- results
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


# ---------------------------------------------------------------------------------------------- dense
def _check_dense_size(n: int, max_params: int) -> None:
    if n > max_params:
        raise ConfigError("n_params", n, f"the dense Hessian is limited to max_params = {max_params} parameters "
                          "(memory P², time P³); use top_eigenvalues / hessian_summary(method='lanczos'), "
                          "which need only Hessian-vector products, or raise max_params")


def dense_spectrum(source: Objective | LinearOperator, theta: np.ndarray | torch.Tensor | None = None, *,
                   max_params: int = DEFAULT_MAX_PARAMS, keep_eigenvectors: bool = True,
                   keep_hessian: bool = False) -> DenseSpectrum:
    """Full eigendecomposition (``numpy.linalg.eigh``) of the Hessian from ``objective.hessian`` (or of an
    operator applied to the identity). Raises ConfigError above ``max_params`` parameters."""
    max_params = check_positive_int("max_params", max_params)
    if isinstance(source, LinearOperator):
        require(theta is None, "theta", "<given>", "theta only applies to an Objective")
        _check_dense_size(source.size, max_params)
        h = to_dense(source)
    elif isinstance(source, Objective):
        _check_dense_size(source.n_params, max_params)
        h = source.hessian(checked_theta(source, theta)).numpy()
        if not np.isfinite(h).all():
            raise ValueError("the Hessian contains non-finite entries at this point although the loss is finite")
    else:
        raise ConfigError("source", type(source).__name__, "expected an Objective or a qlandscape LinearOperator")
    return spectrum_of_matrix(h, keep_eigenvectors=keep_eigenvectors, keep_hessian=keep_hessian)


def spectrum_of_matrix(h: np.ndarray, *, keep_eigenvectors: bool = True, keep_hessian: bool = False
                       ) -> DenseSpectrum:
    """The :class:`DenseSpectrum` of a Hessian already at hand (e.g. from a structured decomposition)."""
    if keep_eigenvectors:
        vals, vecs = np.linalg.eigh(h)
    else:
        vals, vecs = np.linalg.eigvalsh(h), None
    return DenseSpectrum(eigenvalues=vals, eigenvectors=vecs, hessian=h if keep_hessian else None,
                         n_params=h.shape[0])


# ---------------------------------------------------------------------------------------------- Lanczos
def _residuals(op: LinearOperator, vals: np.ndarray, vecs: np.ndarray) -> np.ndarray:
    if vals.size == 0:
        return np.zeros(0)
    return np.linalg.norm(op.matmat(vecs) - vecs * vals[None, :], axis=0)


def _pick(vals: np.ndarray, vecs: np.ndarray, k: int, which: str) -> tuple[np.ndarray, np.ndarray]:
    if which == "largest":
        idx = np.arange(len(vals) - k, len(vals))
    elif which == "smallest":
        idx = np.arange(k)
    else:
        idx = np.unique(np.concatenate([np.arange(k), np.arange(len(vals) - k, len(vals))]))
    return vals[idx], vecs[:, idx]


def _lanczos_extremes(op: LinearOperator, start: np.ndarray, k: int, which: str, tol: float, max_basis: int,
                      history: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Lanczos with full reorthogonalisation until the wanted Ritz pairs converge; None if they do not within
    ``max_basis`` vectors. Residual norms come from the Lanczos relation, ‖Hy − θy‖ = |β_m s_m|. Appends the
    leading wanted Ritz value of every step to ``history``."""
    n = op.size
    m_max = min(n, max_basis)
    need = 2 * k if which == "both" else k
    basis = np.zeros((m_max, n))
    basis[0] = start / np.linalg.norm(start)
    alpha: list[float] = []
    beta: list[float] = []
    rel_tol = max(tol, 1e-14)
    for j in range(m_max):
        w = op.matvec(basis[j])
        alpha.append(float(w @ basis[j]))
        w -= alpha[-1] * basis[j] + (beta[-1] * basis[j - 1] if j > 0 else 0.0)
        for _ in range(2):  # twice is enough (Kahan–Parlett)
            w -= basis[:j + 1].T @ (basis[:j + 1] @ w)
        b = float(np.linalg.norm(w))
        if j > 0:
            theta, ritz = scipy.linalg.eigh_tridiagonal(np.array(alpha), np.array(beta))
        else:
            theta, ritz = np.array(alpha), np.ones((1, 1))
        history.append(float(theta[0] if which == "smallest" else theta[-1]))
        if j + 1 >= need:
            # eigh_tridiagonal returns ascending Ritz values, so the wanted ends are column ranges
            sel = (np.arange(j + 1 - k, j + 1) if which == "largest" else np.arange(k) if which == "smallest"
                   else np.unique(np.concatenate([np.arange(k), np.arange(j + 1 - k, j + 1)])))
            residuals = np.abs(b * ritz[-1, sel])
            scale = max(float(np.abs(theta).max()), np.finfo(float).tiny)
            closed = b <= 1e-12 * scale or j + 1 == n  # the Krylov space is invariant: the Ritz pairs are exact
            if closed or bool((residuals <= rel_tol * scale).all()):
                return theta[sel], basis[:j + 1].T @ ritz[:, sel], residuals
        if j + 1 < m_max:
            beta.append(b)
            basis[j + 1] = w / b
    return None


def top_eigenvalues(source: Objective | LinearOperator, k: int = 1, *,
                    which: Literal["largest", "smallest", "both"] = "largest",
                    theta: np.ndarray | torch.Tensor | None = None, tol: float = 1e-10, max_iter: int | None = None,
                    ncv: int | None = None, seed: int = 0,
                    solver: Literal["lanczos", "arpack"] = "lanczos") -> EigenResult:
    """The k algebraically largest, smallest (most negative), or both (k of each end) eigenpairs by Lanczos on
    Hessian-vector products, from a seeded Gaussian start.

    ``solver="lanczos"`` (default): plain Lanczos with full reorthogonalisation that stops as soon as every wanted
    Ritz pair has a residual ‖Hy − θy‖ = |β_m s_m| below ``tol``·max|θ| (tol 0: 1e-14), so a well separated top
    eigenvalue costs a handful of HVPs; if the Krylov basis reaches ``max_iter`` vectors (default
    max(100, 20k)) without converging it hands over to ARPACK. ``solver="arpack"``: SciPy ``eigsh`` (implicitly
    restarted Lanczos, at least ``ncv`` ≥ 20 HVPs; ``tol`` its relative accuracy, ``max_iter`` its restart limit).
    Residuals are then checked with k explicit matvecs. When k (2k for "both") reaches P − 1 the operator is
    applied to the identity (P matvecs) and diagonalised densely instead. On non-convergence the converged pairs
    are returned with ``converged=False`` and a warning is logged.
    """
    check_choice("which", which, WHICH)
    k = check_positive_int("k", k)
    require(np.isfinite(tol) and tol >= 0, "tol", tol, "expected a finite tolerance >= 0")
    if max_iter is not None:
        max_iter = check_positive_int("max_iter", max_iter)
    n = source.size if isinstance(source, LinearOperator) else getattr(source, "n_params", None)
    if isinstance(n, int):
        need = 2 * k if which == "both" else k
        require(need <= n, "k", k, f"expected {'2k' if which == 'both' else 'k'} <= {n}, the parameter count "
                f"(which={which!r})")
    op = as_operator(source, theta)
    start = op.n_matvecs
    need = 2 * k if which == "both" else k
    converged = True
    if need >= op.size - 1:
        vals, vecs = np.linalg.eigh(to_dense(op))
        vals, vecs = _pick(vals, vecs, k, which)
        method = "dense"
    else:
        check_choice("solver", solver, ("lanczos", "arpack"))
        v0 = np.random.default_rng(seed).standard_normal(op.size)
        if solver == "lanczos":
            history: list[float] = []
            found = _lanczos_extremes(op, v0, k, which, tol, max_iter or max(100, 20 * need), history)
            if found is not None:
                vals, vecs, residuals = found
                return EigenResult(eigenvalues=vals, eigenvectors=vecs, residual_norms=residuals,
                                   n_matvecs=op.n_matvecs - start, converged=True, tol=float(tol), which=which,
                                   method="lanczos", n_params=op.size, history=np.array(history))
            max_iter = None  # ARPACK takes over with its own restart limit
        mode = {"largest": "LA", "smallest": "SA", "both": "BE"}[which]
        try:
            vals, vecs = spla.eigsh(to_scipy(op), k=need, which=mode, v0=v0, tol=tol, maxiter=max_iter, ncv=ncv)
        except spla.ArpackNoConvergence as err:
            vals, vecs, converged = err.eigenvalues, err.eigenvectors, False
            log.warning("Lanczos (eigsh, which=%s) did not converge: %d of %d pairs converged", which, len(vals),
                        need)
        order = np.argsort(vals)
        vals, vecs = vals[order], vecs[:, order]
        method = "lanczos"
    residuals = _residuals(op, vals, vecs)
    return EigenResult(eigenvalues=vals, eigenvectors=vecs, residual_norms=residuals,
                       n_matvecs=op.n_matvecs - start, converged=converged, tol=float(tol), which=which,
                       method=method, n_params=op.size)


def power_iteration(source: Objective | LinearOperator, *, theta: np.ndarray | torch.Tensor | None = None,
                    tol: float = 1e-6, max_iter: int = 1000, seed: int = 0) -> EigenResult:
    """Power iteration as in PyHessian: v ← Hv/‖Hv‖ until the Rayleigh quotient's relative change is below ``tol``.

    Finds the eigenvalue of largest magnitude (λ_max only when it dominates |λ_min|); converges at the rate
    (λ₂/λ₁)², so it is slow when the top gap is small. Kept as a baseline for Lanczos. One matvec per iteration.
    """
    require(np.isfinite(tol) and tol > 0, "tol", tol, "expected a positive tolerance")
    max_iter = check_positive_int("max_iter", max_iter)
    op = as_operator(source, theta)
    start = op.n_matvecs
    v = np.random.default_rng(seed).standard_normal(op.size)
    v /= np.linalg.norm(v)
    eigenvalue, previous, residual, converged = np.nan, None, np.nan, False
    measured, history = v, []
    for _ in range(max_iter):
        hv = op.matvec(v)
        measured, eigenvalue = v, float(v @ hv)
        history.append(eigenvalue)
        residual = float(np.linalg.norm(hv - eigenvalue * v))
        if previous is not None and abs(eigenvalue - previous) / (abs(previous) + 1e-12) < tol:
            converged = True
            break
        previous = eigenvalue
        norm = float(np.linalg.norm(hv))
        if norm == 0.0:  # v lies in the null space: H v = 0 v exactly
            converged = True
            break
        v = hv / norm
    # the reported vector is the one whose Rayleigh quotient and residual were measured
    return EigenResult(eigenvalues=np.array([eigenvalue]), eigenvectors=measured[:, None],
                       residual_norms=np.array([residual]), n_matvecs=op.n_matvecs - start, converged=converged,
                       tol=float(tol), which="magnitude", method="power", n_params=op.size,
                       history=np.array(history))


def matvecs_to_tolerance(result: EigenResult, exact: float, rel_tol: float = 1e-6) -> int | None:
    """Matvecs after which ``result.history`` stays within ``rel_tol``·|exact| of ``exact`` (None: never).

    The cost of an eigensolver to a given accuracy, read off its history: a method's own stopping rule can
    stop early (power iteration at a slow rate) or late (Lanczos's residual test is stricter than the
    eigenvalue error it implies, which is about residual²/gap).
    """
    require(np.isfinite(rel_tol) and rel_tol > 0, "rel_tol", rel_tol, "expected a positive tolerance")
    error = np.abs(np.asarray(result.history) - exact) > rel_tol * max(abs(exact), np.finfo(float).tiny)
    if error.size == 0 or error[-1]:
        return None
    bad = np.flatnonzero(error)
    return int(bad[-1] + 2) if bad.size else 1


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


def hessian_summary(source: Objective | LinearOperator, theta: np.ndarray | torch.Tensor | None = None, *,
                    method: Literal["auto", "dense", "lanczos"] = "auto", max_params: int = DEFAULT_MAX_PARAMS,
                    tol: float = 1e-10, n_probes: int = 100, n_starts: int = 10, lanczos_steps: int = 80,
                    seed: int = 0, negative_tol: float = 1e-9) -> HessianSummary:
    """λ_max, λ_min, trace, |λ_min|/λ_max and the fraction of negative eigenvalues at one point.

    ``"dense"`` (what ``"auto"`` picks up to ``max_params`` parameters): everything exact from ``eigh``.
    ``"lanczos"``: extremes by :func:`top_eigenvalues` (which="both"), trace by Hutchinson (``n_probes``, with
    standard error), negative fraction from the SLQ quadrature (``n_starts`` × ``lanczos_steps`` matvecs).
    Eigenvalues below −negative_tol · max|λ| count as negative.
    """
    max_params = check_positive_int("max_params", max_params)
    require(np.isfinite(negative_tol) and negative_tol >= 0, "negative_tol", negative_tol, "expected >= 0")
    method = _resolve_method(method, _size(source), max_params)
    if method == "dense":
        spec = dense_spectrum(source, theta, max_params=max_params, keep_eigenvectors=False)
        return summary_from_spectrum(spec, negative_tol=negative_tol,
                                     n_matvecs=source.size if isinstance(source, LinearOperator) else 0)
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
    return HessianSummary(lambda_max=float(lmax), lambda_min=float(lmin), trace=float(trace),
                          trace_stderr=float(stderr), ratio=float(ratio), fraction_negative=float(negative),
                          n_params=_size(source), method=method, n_matvecs=int(n_matvecs), converged=bool(converged),
                          negative_tol=float(negative_tol))


def summary_from_spectrum(spec: DenseSpectrum, *, negative_tol: float = 1e-9, n_matvecs: int = 0) -> HessianSummary:
    """The exact :class:`HessianSummary` of a dense spectrum (no further Hessian work)."""
    lmax, lmin = spec.lambda_max, spec.lambda_min
    return HessianSummary(lambda_max=lmax, lambda_min=lmin, trace=spec.trace, trace_stderr=0.0,
                          ratio=float(abs(lmin) / lmax if lmax != 0 else np.nan),
                          fraction_negative=spec.fraction_negative(negative_tol), n_params=spec.n_params,
                          method="dense", n_matvecs=int(n_matvecs), converged=True, negative_tol=float(negative_tol))


def _check_trajectory(objective: Objective, trajectory: np.ndarray, times: np.ndarray | None
                      ) -> tuple[np.ndarray, np.ndarray]:
    traj = np.asarray(trajectory.detach() if isinstance(trajectory, torch.Tensor) else trajectory, dtype=np.float64)
    require(traj.ndim == 2 and traj.shape[0] >= 1 and traj.shape[1] == objective.n_params, "trajectory",
            traj.shape, f"expected shape (T, {objective.n_params}) with T >= 1")
    bad = np.argwhere(~np.isfinite(traj))
    if bad.size:
        t, j = (int(i) for i in bad[0])
        raise ConfigError(f"trajectory[{t}, {j}]", float(traj[t, j]), "parameters must be finite")
    t_arr = np.arange(traj.shape[0], dtype=np.float64) if times is None else np.asarray(times, dtype=np.float64)
    require(t_arr.shape == (traj.shape[0],) and bool(np.isfinite(t_arr).all()), "times", t_arr.shape,
            f"expected {traj.shape[0]} finite times, one per trajectory row")
    return traj, t_arr


def hessian_along_trajectory(objective: Objective, trajectory: np.ndarray, times: np.ndarray | None = None, *,
                             k: int = 1, method: Literal["auto", "dense", "lanczos"] = "auto",
                             max_params: int = DEFAULT_MAX_PARAMS, tol: float = 1e-10, n_probes: int = 100,
                             seed: int = 0, progress: bool = False) -> TrajectoryCurvature:
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
        raise ValueError(f"the loss at trajectory point {i} (time {t_arr[i]:g}) is {float(losses[i])}; curvature "
                         "metrics need a finite loss")
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
            top[i, k - high.eigenvalues.size:] = high.eigenvalues
            lmin[i] = low.eigenvalues[0] if low.eigenvalues.size else np.nan
        tr = hutchinson_trace(op, n_probes=n_probes, seed=seed)
        trace[i], stderr[i], n_matvecs[i], converged[i] = tr.estimate, tr.stderr, op.n_matvecs, ok
    return TrajectoryCurvature(times=t_arr, top_k=top, lambda_max=top[:, -1].copy(), lambda_min=lmin, trace=trace,
                               trace_stderr=stderr, n_matvecs=n_matvecs, converged=converged, method=method, k=k,
                               n_params=objective.n_params)
