"""Extreme eigenpairs from Hessian-vector products: converging Lanczos (ARPACK as fallback and option) and power
iteration (the PyHessian baseline), with per-iteration histories so the cost to any accuracy can be compared."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import scipy.linalg
import scipy.sparse.linalg as spla
import torch

from qlandscape.core.errors import check_choice, check_positive_int, require
from qlandscape.core.objective import Objective
from qlandscape.core.operators import LinearOperator, as_operator, to_dense, to_scipy
from qlandscape.metrics.curvature.results import EigenResult

__all__ = ["WHICH", "top_eigenvalues", "power_iteration", "matvecs_to_tolerance"]

log = logging.getLogger(__name__)
WHICH = ("largest", "smallest", "both")


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


def _wanted(theta: np.ndarray, k: int, which: str) -> np.ndarray:
    # eigh_tridiagonal returns ascending Ritz values, so the wanted ends are column ranges
    m = theta.size
    if which == "largest":
        return np.arange(m - k, m)
    if which == "smallest":
        return np.arange(k)
    return np.unique(np.concatenate([np.arange(k), np.arange(m - k, m)]))


def _lanczos_extremes(
    op: LinearOperator,
    start: np.ndarray,
    k: int,
    which: str,
    tol: float,
    max_basis: int,
    history: list[float],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Lanczos with full reorthogonalisation until the wanted Ritz pairs converge; None if they do not within
    ``max_basis`` vectors. Residual norms come from the Lanczos relation, ‖Hy − θy‖ = |β_m s_m|. Appends the
    leading wanted Ritz value of every step to ``history``.

    When the Krylov space closes (an invariant subspace) its Ritz pairs are exact, but one start vector sees only
    one direction of each eigenspace: further copies of those eigenvalues (a null space, say) lie in the
    orthogonal complement. Lanczos then restarts there from a random vector (a new block, coupled by β = 0) until
    a closed block holds no value beyond the current wanted ends, since only copies of its values remain."""
    n = op.size
    m_max = min(n, max_basis)
    need = 2 * k if which == "both" else k
    basis = np.zeros((m_max, n))
    basis[0] = start / np.linalg.norm(start)
    alpha: list[float] = []
    beta: list[float] = []
    rel_tol = max(tol, 1e-14)
    block = 0  # index of the first vector of the current Krylov block
    for j in range(m_max):
        w = op.matvec(basis[j])
        alpha.append(float(w @ basis[j]))
        w -= alpha[-1] * basis[j] + (beta[-1] * basis[j - 1] if j > block else 0.0)
        for _ in range(2):  # twice is enough (Kahan–Parlett)
            w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
        b = float(np.linalg.norm(w))
        if j > 0:
            theta, ritz = scipy.linalg.eigh_tridiagonal(np.array(alpha), np.array(beta))
        else:
            theta, ritz = np.array(alpha), np.ones((1, 1))
        history.append(float(theta[0] if which == "smallest" else theta[-1]))
        scale = max(float(np.abs(theta).max()), np.finfo(float).tiny)
        # b below the tolerance bounds every Ritz residual: the space is invariant to the accuracy asked for
        closed = b <= max(rel_tol, 1e-12) * scale
        sel = _wanted(theta, k, which) if j + 1 >= need else None
        if sel is not None and j + 1 == n:  # the basis spans everything: the Ritz pairs are exact
            return theta[sel], basis[: j + 1].T @ ritz[:, sel], np.abs(b * ritz[-1, sel])
        if closed:
            if sel is not None and not _copies_matter(
                theta, _block_values(alpha, beta, block), k, which, max(rel_tol, 1e-12) * scale
            ):
                return theta[sel], basis[: j + 1].T @ ritz[:, sel], np.abs(b * ritz[-1, sel])
            if j + 1 < m_max:
                restart = rng.standard_normal(n)
                for _ in range(2):
                    restart -= basis[: j + 1].T @ (basis[: j + 1] @ restart)
                beta.append(0.0)
                basis[j + 1] = restart / np.linalg.norm(restart)
                block = j + 1
            continue
        if sel is not None:
            residuals = np.abs(b * ritz[-1, sel])
            if bool((residuals <= rel_tol * scale).all()):
                return theta[sel], basis[: j + 1].T @ ritz[:, sel], residuals
        if j + 1 < m_max:
            beta.append(b)
            basis[j + 1] = w / b
    return None


def _complete_ends(
    op: LinearOperator,
    found: tuple[np.ndarray, np.ndarray, np.ndarray],
    k: int,
    which: str,
    tol: float,
    max_basis: int,
    steps: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Check converged wanted pairs against the rest of the space; None if a check does not converge.

    Small residuals prove eigenpairs, not the k most extreme ones: one start vector sees one direction of each
    eigenspace, so further copies of a repeated eigenvalue (a null space, say) can be missing while an interior
    eigenvalue has converged in their place. For k >= 2 each wanted end is therefore searched by Lanczos (k = 1,
    where copies cannot matter) on H deflated by the found vectors, and an eigenvalue beyond the end replaces the
    innermost found one until none is left. The search first runs for the ``steps`` the main run needed: a copy
    is as extreme in the deflated space as the value it copies was in the whole one, and its Ritz value passes
    the end long before it converges; only a detected copy is then converged to ``tol``."""
    if k == 1:
        return found
    vals, vecs, residuals = (a.copy() for a in found)
    n = op.size
    slack = max(tol, 1e-14) * max(float(np.abs(vals).max()), np.finfo(float).tiny)
    for end in ("smallest", "largest") if which == "both" else (which,):
        while True:
            x = vecs

            def apply(v: np.ndarray, x: np.ndarray = x) -> np.ndarray:
                hv = op.matvec(v - x @ (x.T @ v))
                return hv - x @ (x.T @ hv)

            deflated = LinearOperator(n, apply, name="deflated")
            start = rng.standard_normal(n)
            for _ in range(2):
                start -= x @ (x.T @ start)
            if np.linalg.norm(start) <= 1e-8 * np.sqrt(n):  # the found vectors span the space
                break
            order = np.argsort(vals)
            inner = order[-k] if end == "largest" else order[k - 1]
            sign = 1.0 if end == "largest" else -1.0
            seen: list[float] = []
            extra = _lanczos_extremes(deflated, start, 1, end, tol, max(steps, 2), seen, rng)
            if extra is None:
                if not any(sign * (value - vals[inner]) > slack for value in seen):
                    break
                extra = _lanczos_extremes(deflated, start, 1, end, tol, max_basis, [], rng)
                if extra is None:
                    return None
            value = float(extra[0][0])
            if sign * (value - vals[inner]) <= slack:
                break
            vals[inner], vecs[:, inner], residuals[inner] = value, extra[1][:, 0], extra[2][0]
    order = np.argsort(vals)
    return vals[order], vecs[:, order], residuals[order]


def _block_values(alpha: list[float], beta: list[float], block: int) -> np.ndarray:
    a = np.array(alpha[block:])
    return a if a.size == 1 else scipy.linalg.eigvalsh_tridiagonal(a, np.array(beta[block : len(alpha) - 1]))


def _copies_matter(theta: np.ndarray, values: np.ndarray, k: int, which: str, slack: float) -> bool:
    """Whether another copy of one of a closed block's ``values`` would change the wanted ends of ``theta``."""
    beyond_top = which != "smallest" and bool((values > theta[-k] + slack).any())
    beyond_bottom = which != "largest" and bool((values < theta[k - 1] - slack).any())
    return beyond_top or beyond_bottom


def top_eigenvalues(
    source: Objective | LinearOperator,
    k: int = 1,
    *,
    which: Literal["largest", "smallest", "both"] = "largest",
    theta: np.ndarray | torch.Tensor | None = None,
    tol: float = 1e-10,
    max_iter: int | None = None,
    ncv: int | None = None,
    seed: int = 0,
    solver: Literal["lanczos", "arpack"] = "lanczos",
) -> EigenResult:
    """The k algebraically largest, smallest (most negative), or both (k of each end) eigenpairs by Lanczos on
    Hessian-vector products, from a seeded Gaussian start.

    ``solver="lanczos"`` (default): plain Lanczos with full reorthogonalisation that stops as soon as every wanted
    Ritz pair has a residual ‖Hy − θy‖ = |β_m s_m| below ``tol``·max|θ| (tol 0: 1e-14), so a well separated top
    eigenvalue costs a handful of HVPs; if the Krylov basis reaches ``max_iter`` vectors (default
    max(100, 20k)) without converging it hands over to ARPACK. For k >= 2 each wanted end is then searched once
    more in the space orthogonal to the found vectors, so a repeated eigenvalue (a null space) is counted as often
    as it occurs (about twice the HVPs of the first run). ``solver="arpack"``: SciPy ``eigsh`` (implicitly
    restarted Lanczos, at least ``ncv`` ≥ 20 HVPs; ``tol`` its relative accuracy, ``max_iter`` its restart limit).
    Residuals are then checked with k explicit matvecs. When k (2k for "both") reaches P − 1 the operator is
    applied to the identity (P matvecs) and diagonalised densely instead. On non-convergence the converged pairs
    are returned with ``converged=False`` and a warning is logged.
    """
    check_choice("which", which, WHICH)
    check_choice("solver", solver, ("lanczos", "arpack"))
    k = check_positive_int("k", k)
    require(np.isfinite(tol) and tol >= 0, "tol", tol, "expected a finite tolerance >= 0")
    if max_iter is not None:
        max_iter = check_positive_int("max_iter", max_iter)
    n = source.size if isinstance(source, LinearOperator) else getattr(source, "n_params", None)
    if isinstance(n, int):
        need = 2 * k if which == "both" else k
        require(
            need <= n,
            "k",
            k,
            f"expected {'2k' if which == 'both' else 'k'} <= {n}, the parameter count (which={which!r})",
        )
        if ncv is not None:
            ncv = check_positive_int("ncv", ncv)
            require(need < ncv <= n, "ncv", ncv, f"expected {need} < ncv <= {n} (ARPACK's Krylov basis size)")
    op = as_operator(source, theta)
    start = op.n_matvecs
    need = 2 * k if which == "both" else k
    converged = True
    if need >= op.size - 1:
        vals, vecs = np.linalg.eigh(to_dense(op))
        vals, vecs = _pick(vals, vecs, k, which)
        method = "dense"
    else:
        rng = np.random.default_rng(seed)
        v0 = rng.standard_normal(op.size)
        if solver == "lanczos":
            history: list[float] = []
            basis_limit = max_iter or max(100, 20 * need)
            found = _lanczos_extremes(op, v0, k, which, tol, basis_limit, history, rng)
            if found is not None:
                found = _complete_ends(op, found, k, which, tol, basis_limit, len(history), rng)
            if found is not None:
                vals, vecs, residuals = found
                return EigenResult(
                    eigenvalues=vals,
                    eigenvectors=vecs,
                    residual_norms=residuals,
                    n_matvecs=op.n_matvecs - start,
                    converged=True,
                    tol=float(tol),
                    which=which,
                    method="lanczos",
                    n_params=op.size,
                    history=np.array(history),
                )
            max_iter = None  # ARPACK takes over with its own restart limit
        mode = {"largest": "LA", "smallest": "SA", "both": "BE"}[which]
        try:
            vals, vecs = spla.eigsh(to_scipy(op), k=need, which=mode, v0=v0, tol=tol, maxiter=max_iter, ncv=ncv)
        except spla.ArpackNoConvergence as err:
            vals, vecs, converged = err.eigenvalues, err.eigenvectors, False
            log.warning("Lanczos (eigsh, which=%s) did not converge: %d of %d pairs converged", which, len(vals), need)
        order = np.argsort(vals)
        vals, vecs = vals[order], vecs[:, order]
        method = "lanczos"
    residuals = _residuals(op, vals, vecs)
    return EigenResult(
        eigenvalues=vals,
        eigenvectors=vecs,
        residual_norms=residuals,
        n_matvecs=op.n_matvecs - start,
        converged=converged,
        tol=float(tol),
        which=which,
        method=method,
        n_params=op.size,
    )


def power_iteration(
    source: Objective | LinearOperator,
    *,
    theta: np.ndarray | torch.Tensor | None = None,
    tol: float = 1e-6,
    max_iter: int = 1000,
    seed: int = 0,
) -> EigenResult:
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
    return EigenResult(
        eigenvalues=np.array([eigenvalue]),
        eigenvectors=measured[:, None],
        residual_norms=np.array([residual]),
        n_matvecs=op.n_matvecs - start,
        converged=converged,
        tol=float(tol),
        which="magnitude",
        method="power",
        n_params=op.size,
        history=np.array(history),
    )


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
