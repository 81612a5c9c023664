"""Circuit angles are periodic: their periods, periodic alignment, circular means and redundant parameters.

A rotation ``R(a) = exp(a G / 2)`` of the gate table (:mod:`qlandscape.sim.gates`) has a generator G with
eigenvalues ``i λ_1, i λ_2``; ``R(a + 4π / |λ_1 − λ_2|)`` equals ``R(a)`` up to a global phase, which no expectation
value sees. So the loss is periodic in the angle with period ``4π / |λ_1 − λ_2|`` (2π for the Pauli rotations RX,
RY, RZ, whose G = −iP has λ = ±1). A generator with ``λ_1 = λ_2`` is a global phase: the angle has no effect and no
finite period (reported as redundant, never moved).

* :func:`angle_periods`: the period of every entry of a model's flat parameter vector (NaN where an entry is not a
  circuit angle: positional bias, linear head, classical weights);
* :func:`periodic_align`: each angle of B moved by whole periods to the copy nearest A's angle (same function);
* :func:`circular_mean`: the weighted circular mean ``atan2(Σ w sin, Σ w cos)`` in units of each period, the
  representative nearest the first point's angle (the arithmetic mean of 0.1 and 2π − 0.1 is π, a different
  circuit; the circular mean is 0);
* :func:`redundant_parameters`: entries on which no output depends (zero gradient and curvature at every point),
  found from the output Jacobian at the model's point and at random points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from qlandscape.core.errors import ConfigError, check_positive_int, is_finite_number
from qlandscape.core.objective import Objective
from qlandscape.models.qnn import PatchQNN
from qlandscape.sim.gates import rotation

__all__ = [
    "generator_period",
    "angle_periods",
    "periodic_difference",
    "periodic_align",
    "circular_mean",
    "RedundancyReport",
    "redundant_parameters",
    "parameter_names",
]


def generator_period(name: str) -> float:
    """The loss period of the table's rotation ``name``: 4π / (spread of G's eigenvalues); inf for a global phase."""
    g = rotation(name).generator
    lam = np.linalg.eigvals(g).imag  # G is anti-Hermitian: its eigenvalues are i λ with λ real
    spread = float(abs(lam[0] - lam[1]))
    return math.inf if spread < 1e-12 else 4 * math.pi / spread


def angle_periods(model: nn.Module) -> np.ndarray:
    """Per entry of the flat parameter vector: the loss period of a circuit angle, NaN for anything else."""
    blocks = []
    for name, p in model.named_parameters():
        periods = np.full(p.numel(), np.nan)
        if isinstance(model, PatchQNN) and name == model.patch_layout().circuit:
            per_index = np.full(model.circuit.n_params, np.nan)
            for gate in model.circuit.gates:
                if gate.source == "param":
                    per_index[gate.index] = generator_period(gate.name)
            periods = np.broadcast_to(per_index, tuple(p.shape)).reshape(-1).copy()
        blocks.append(periods)
    return np.concatenate(blocks) if blocks else np.zeros(0)


def _as_periods(periods: np.ndarray | Tensor, n: int) -> Tensor:
    periods = torch.as_tensor(np.asarray(periods, dtype=np.float64))
    if periods.shape != (n,):
        raise ConfigError("periods", tuple(periods.shape), f"expected one period per parameter, shape ({n},)")
    if bool(((periods <= 0) & ~torch.isnan(periods)).any()):
        raise ConfigError("periods", periods.tolist(), "expected positive periods, inf or NaN (not an angle)")
    return periods


def _periodic_mask(periods: Tensor) -> Tensor:
    return torch.isfinite(periods)


def periodic_difference(theta: Tensor, reference: Tensor, periods: np.ndarray | Tensor) -> Tensor:
    """``theta − reference`` with each periodic entry wrapped into [−period/2, period/2) (others unchanged)."""
    theta, reference = torch.as_tensor(theta, dtype=torch.float64), torch.as_tensor(reference, dtype=torch.float64)
    periods = _as_periods(periods, theta.shape[-1])
    diff = theta - reference
    mask = _periodic_mask(periods)
    p = periods[mask]
    diff[..., mask] = diff[..., mask] - p * torch.floor(diff[..., mask] / p + 0.5)
    return diff


def periodic_align(theta_a: Tensor, theta_b: Tensor, periods: np.ndarray | Tensor) -> Tensor:
    """θ_b with every periodic entry moved by whole periods to the copy nearest θ_a's entry (others unchanged)."""
    theta_a = torch.as_tensor(theta_a, dtype=torch.float64)
    theta_b = torch.as_tensor(theta_b, dtype=torch.float64)
    if theta_a.shape != theta_b.shape:
        raise ConfigError("theta_a, theta_b", (tuple(theta_a.shape), tuple(theta_b.shape)), "expected one shape")
    periods = _as_periods(periods, theta_b.shape[-1])
    mask = _periodic_mask(periods)
    out = theta_b.clone()
    p = periods[mask]
    # whole periods only: the new angle is b − k·p with integer k, the same circuit
    out[mask] = theta_b[mask] - p * torch.round((theta_b[mask] - theta_a[mask]) / p)
    return out


def circular_mean(thetas: Tensor, periods: np.ndarray | Tensor, weights: Tensor | np.ndarray | None = None) -> Tensor:
    """Weighted mean of the rows of ``thetas`` (K, P): circular on periodic entries, arithmetic elsewhere.

    A periodic entry's mean is ``atan2(Σ w sin φ, Σ w cos φ)`` with φ = 2π θ / period, mapped back to the copy
    nearest row 0's angle; ``weights`` (K,) or (K, P), non-negative, are normalised per entry (default: equal).
    Where the weighted resultant vanishes (angles spread evenly round the circle) the mean is undefined and atan2
    returns its convention for (0, 0).
    """
    thetas = torch.as_tensor(thetas, dtype=torch.float64)
    if thetas.ndim != 2 or thetas.shape[0] == 0:
        raise ConfigError("thetas", tuple(thetas.shape), "expected a non-empty (K, P) stack of parameter vectors")
    periods = _as_periods(periods, thetas.shape[1])
    w = _weights(weights, thetas.shape)
    mean = (w * thetas).sum(0)
    mask = _periodic_mask(periods)
    if bool(mask.any()):
        p = periods[mask]
        phi = thetas[:, mask] * (2 * math.pi / p)
        angle = torch.atan2((w[:, mask] * torch.sin(phi)).sum(0), (w[:, mask] * torch.cos(phi)).sum(0))
        mean[mask] = periodic_align(thetas[0, mask], angle * p / (2 * math.pi), p)
    return mean


def _weights(weights: Tensor | np.ndarray | None, shape: torch.Size) -> Tensor:
    k, n = shape
    if weights is None:
        return torch.full((k, n), 1.0 / k, dtype=torch.float64)
    w = torch.as_tensor(np.asarray(weights, dtype=np.float64))
    if w.shape == (k,):
        w = w[:, None].expand(k, n)
    if w.shape != (k, n) or not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ConfigError(
            "weights", w.tolist() if w.numel() < 20 else tuple(w.shape), f"expected {k} finite weights >= 0"
        )
    total = w.sum(0)
    if bool((total <= 0).any()):
        raise ConfigError("weights", w.tolist() if w.numel() < 20 else tuple(w.shape), "expected a positive sum")
    return w / total


def parameter_names(model: nn.Module) -> list[str]:
    """A name per entry of the flat parameter vector: ``circuit_params[2, 5]``, ``net.0.weight[3, 1]``."""
    names = []
    for name, p in model.named_parameters():
        for index in np.ndindex(*tuple(p.shape)):
            names.append(f"{name}[{', '.join(map(str, index))}]" if index else name)
    return names


@dataclass(frozen=True)
class RedundancyReport:
    """Parameters no output depends on: ``indices`` into the flat vector and their ``names``.

    ``max_abs_jacobian`` (P,) is the largest |∂ output / ∂ θ_j| seen over the inputs and the ``n_points`` points
    (the model's own and random ones); an entry is redundant when it is at most ``tolerance`` everywhere. Such an
    entry has an exactly zero gradient and Hessian row, and its value never matters to alignment or merging.
    """

    indices: np.ndarray
    names: tuple[str, ...]
    max_abs_jacobian: np.ndarray
    tolerance: float
    n_points: int
    n_inputs: int


def redundant_parameters(
    model: nn.Module, x: Tensor, *, n_random: int = 2, tolerance: float = 1e-10, seed: int = 0
) -> RedundancyReport:
    """Which parameters of ``model`` no output depends on, on inputs ``x``, at its point and ``n_random`` others.

    The random points draw periodic angles uniformly over their period and move other entries by a standard
    normal step, so a direction that is flat only where the model sits (a dead ReLU unit) is not reported.
    """
    n_random = check_positive_int("n_random", n_random, minimum=0)
    if not is_finite_number(tolerance) or tolerance < 0:
        raise ConfigError("tolerance", tolerance, "expected a finite number >= 0")
    x = torch.as_tensor(x)
    if x.ndim == 0 or x.shape[0] == 0:
        raise ConfigError("x", tuple(x.shape), "expected a non-empty batch of inputs")
    objective = Objective(model, x, torch.zeros(x.shape[0], dtype=torch.long))
    theta = objective.as_theta(None)
    periods = torch.as_tensor(angle_periods(model))
    angles = _periodic_mask(periods)
    generator = torch.Generator().manual_seed(int(seed))
    points = [theta]
    for _ in range(n_random):
        point = theta + torch.randn(theta.shape, generator=generator, dtype=torch.float64)
        point[angles] = torch.rand(int(angles.sum()), generator=generator, dtype=torch.float64) * periods[angles]
        points.append(point)
    biggest = torch.zeros_like(theta)
    for point in points:
        jac = objective.jacobian(point)
        biggest = torch.maximum(biggest, jac.abs().reshape(-1, theta.shape[0]).amax(0))
    names = parameter_names(model)
    indices = torch.nonzero(biggest <= tolerance).reshape(-1).numpy()
    return RedundancyReport(
        indices=indices.astype(np.int64),
        names=tuple(names[i] for i in indices),
        max_abs_jacobian=biggest.numpy(),
        tolerance=float(tolerance),
        n_points=len(points),
        n_inputs=int(x.shape[0]),
    )
