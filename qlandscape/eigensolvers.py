"""Extreme eigenpairs from Hessian-vector products: converging Lanczos (ARPACK as fallback and option) and power
iteration (the PyHessian baseline), with per-iteration histories so the cost to any accuracy can be compared."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.linalg
import scipy.sparse.linalg as spla
import torch

from .errors import check_choice, check_positive_int, require
from .objective import Objective
from .operators import LinearOperator, as_operator, to_dense, to_scipy

log = logging.getLogger(__name__)
WHICH = ("largest", "smallest", "both")


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
