"""Symmetric linear operators: the one interface every Hessian-vector-product source plugs into.

Lanczos, power iteration, Hutchinson and stochastic Lanczos quadrature need nothing but ``v -> H v``, so they take
a :class:`LinearOperator` (size + float64 matvec + a count of the matvecs used) rather than a model. Sources:

* :func:`hessian_operator`: exact HVPs of an :class:`~qlandscape.core.objective.Objective` (double backward through our
  engine, any autograd model, or a parameter-shift differentiable PennyLane model);
* :func:`gradient_difference_operator`: central differences of the gradient (with parameter-shift gradients this
  is the hardware-faithful HVP, 2 gradient evaluations per product);
* :func:`matrix_operator`: a dense symmetric matrix (tests, analytic cases);
* the Gauss-Newton and residual parts of the Hessian, in :mod:`qlandscape.metrics.curvature.structured`.

Every matvec is counted, so results can report how many HVPs they cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse.linalg as spla
import torch

from qlandscape.core.errors import ConfigError, require
from qlandscape.core.objective import Objective, check_finite_loss

__all__ = [
    "Matvec",
    "LinearOperator",
    "as_operator",
    "checked_theta",
    "hessian_operator",
    "gradient_difference_operator",
    "matrix_operator",
    "to_dense",
    "to_scipy",
]

Matvec = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False)
class LinearOperator:
    """A symmetric operator on float64 vectors of length ``size``.

    ``apply`` is the raw product; call :meth:`matvec`, which validates the vector, converts to float64, rejects
    non-finite products and counts the call (``n_matvecs``).
    """

    size: int
    apply: Matvec
    name: str = "operator"
    _calls: list[int] = field(default_factory=lambda: [0], init=False, repr=False)

    def matvec(self, v: np.ndarray) -> np.ndarray:
        """H v as a float64 vector of length ``size`` (counted)."""
        v = np.asarray(v, dtype=np.float64).reshape(-1)
        if v.shape != (self.size,):
            raise ConfigError("v", v.shape, f"expected a vector of length {self.size}")
        out = np.asarray(self.apply(v), dtype=np.float64).reshape(-1)
        self._calls[0] += 1
        if not np.isfinite(out).all():
            raise ValueError(
                f"{self.name}: the matrix-vector product contains non-finite values "
                f"({int((~np.isfinite(out)).sum())} of {self.size}); the loss or its derivatives are "
                "not finite at this point"
            )
        return out

    def matmat(self, vs: np.ndarray) -> np.ndarray:
        """H V for the columns of ``vs`` (n, m): one counted matvec per column."""
        vs = np.asarray(vs, dtype=np.float64)
        return np.stack([self.matvec(vs[:, j]) for j in range(vs.shape[1])], axis=1)

    @property
    def n_matvecs(self) -> int:
        """How many matvecs this operator has performed since it was made."""
        return self._calls[0]

    def __repr__(self) -> str:
        return f"LinearOperator({self.name!r}, size={self.size}, n_matvecs={self.n_matvecs})"


def as_operator(source: Objective | LinearOperator, theta: np.ndarray | torch.Tensor | None = None) -> LinearOperator:
    """``source`` itself if it is an operator, else the Hessian operator of the Objective at ``theta``."""
    if isinstance(source, LinearOperator):
        require(
            theta is None,
            "theta",
            "<given>",
            "theta only applies to an Objective; an operator is already evaluated at its point",
        )
        return source
    if isinstance(source, Objective):
        return hessian_operator(source, theta)
    raise ConfigError("source", type(source).__name__, "expected an Objective or a qlandscape LinearOperator")


def checked_theta(objective: Objective, theta: np.ndarray | torch.Tensor | None) -> torch.Tensor:
    """θ as a float64 tensor (None: the model's own), after checking its shape and values (ConfigError) and that
    the loss there is finite (ValueError): the guard every curvature computation passes first."""
    if isinstance(theta, torch.Tensor):
        theta = theta.detach().to(torch.float64)
    elif theta is not None:
        theta = torch.as_tensor(np.asarray(theta, dtype=np.float64))
    theta_t = objective.as_theta(theta)
    check_finite_loss(objective, theta_t)
    return theta_t.clone()


def hessian_operator(objective: Objective, theta: np.ndarray | torch.Tensor | None = None) -> LinearOperator:
    """Exact Hessian-vector products of the Objective's mean loss at θ (None: the model's own parameters).

    Raises ConfigError on non-finite parameters and ValueError when the loss at θ is NaN or infinite.
    """
    theta_t = checked_theta(objective, theta)

    def apply(v: np.ndarray) -> np.ndarray:
        hv: np.ndarray = objective.hvp(theta_t, torch.from_numpy(np.ascontiguousarray(v))).numpy()
        return hv

    return LinearOperator(objective.n_params, apply, name=f"Hessian of {objective!r}")


def gradient_difference_operator(
    objective: Objective, theta: np.ndarray | torch.Tensor | None = None, *, eps: float = 1e-4
) -> LinearOperator:
    """H v ≈ |v| (g(θ + ε v̂) − g(θ − ε v̂)) / (2ε): central differences of the gradient (2 gradients per product).

    With a parameter-shift Objective the gradients are exact circuit derivatives, which makes this the
    hardware-faithful HVP. Error O(ε²) from truncation plus O(machine ε / ε) from round-off.
    """
    require(np.isfinite(eps) and eps > 0, "eps", eps, "expected a positive finite step")
    theta_t = checked_theta(objective, theta)

    def apply(v: np.ndarray) -> np.ndarray:
        norm = float(np.linalg.norm(v))
        if norm == 0.0:
            return np.zeros_like(v)
        step = torch.from_numpy(v / norm) * eps
        diff: np.ndarray = (objective.grad(theta_t + step) - objective.grad(theta_t - step)).numpy()
        return (diff / (2 * eps)) * norm

    return LinearOperator(objective.n_params, apply, name=f"gradient differences of {objective!r} (eps={eps:g})")


def matrix_operator(matrix: np.ndarray, *, check_symmetric: bool = True) -> LinearOperator:
    """The operator of a dense symmetric matrix (float64 copy; asymmetry beyond 1e-10 relative is rejected)."""
    a = np.array(matrix, dtype=np.float64)
    require(
        a.ndim == 2 and a.shape[0] == a.shape[1] and a.shape[0] > 0,
        "matrix",
        a.shape,
        "expected a non-empty square matrix",
    )
    require(bool(np.isfinite(a).all()), "matrix", "non-finite entries", "expected finite entries")
    if check_symmetric:
        asym = float(np.abs(a - a.T).max())
        scale = max(float(np.abs(a).max()), 1e-300)
        require(asym <= 1e-10 * scale, "matrix", f"asymmetry {asym:.3g}", "expected a symmetric matrix")
    return LinearOperator(a.shape[0], lambda v: a @ v, name=f"dense {a.shape[0]}x{a.shape[0]} matrix")


def to_dense(op: LinearOperator) -> np.ndarray:
    """The operator as a dense (n, n) matrix, by applying it to the identity (n counted matvecs), symmetrised."""
    dense = op.matmat(np.eye(op.size))
    symmetric: np.ndarray = (dense + dense.T) / 2
    return symmetric


def to_scipy(op: LinearOperator) -> spla.LinearOperator:
    """A :class:`scipy.sparse.linalg.LinearOperator` view whose products go through (and count on) ``op``."""
    return spla.LinearOperator((op.size, op.size), matvec=op.matvec, rmatvec=op.matvec, dtype=np.float64)
