"""Directions in parameter space for landscape slices: random (normalised), Hessian eigenvectors, PCA of a trajectory.

Normalisations of a random Gaussian direction d around a centre θ (Li et al. 2018, "Visualizing the loss
landscape of neural nets"):

* ``"filter"``: every parameter tensor with ``ndim >= 2`` is cut into slices along dim 0 (a conv filter, a row of
  a Linear weight, or -- for a :class:`~qlandscape.models.qnn.PatchQNN`, whose angles are one
  ``(n_patches, n_per_patch)`` tensor ``circuit_params`` -- one patch circuit's block); each slice of d is rescaled
  to the norm of the same slice of θ. A slice whose centre norm is zero therefore gets a zero direction.
* ``"patch"``: the same rule, named for QNN users; it requires at least one tensor with ``ndim >= 2``.
* ``"layer"``: every whole tensor of d is rescaled to the norm of that tensor of θ.
* ``"none"``: the raw Gaussian (for QNN angles: radians, a natural scale).
* ``"auto"`` (the default of :func:`random_direction`): ``"none"`` for a model whose parameters include circuit
  angles (one that offers its patch layout, :class:`~qlandscape.core.capabilities.PatchStructured`, as
  :class:`~qlandscape.models.qnn.PatchQNN` does), ``"filter"`` otherwise. Angles are 2π-periodic, so rescaling a
  direction to the norm of the angles makes its length depend on which multiple of 2π each angle happens to sit
  at; in radians a step means the same thing everywhere.

Tensors with ``ndim <= 1`` (biases, batch-norm weights, scalars) are zeroed by the three normalising rules when
``zero_1d=True`` (Li et al.'s default, applied to every rule as in their code); with ``zero_1d=False`` each is
rescaled as a whole to its centre norm.

Full-period scans (:func:`periodic_directions`): two orthogonal directions with entries -1, 0 or +1 on the circuit
angles (each angle moved by one of them) and 0 on every other parameter. Every angle then moves by a whole multiple
of 2π when α (or β) moves by 2π, so the loss is periodic in α and β with period 2π and a scan over [-π, π)² sees the
whole landscape of that plane.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh

from qlandscape.core.capabilities import PatchStructured
from qlandscape.core.errors import ConfigError, check_choice, check_positive_int
from qlandscape.core.objective import Objective
from qlandscape.metrics.curvature.structured import exact_hessian

__all__ = [
    "NORMALIZATIONS",
    "DIRECTION_KINDS",
    "as_center",
    "as_direction",
    "normalize_direction",
    "random_direction",
    "orthogonalize",
    "HessianDirections",
    "hessian_directions",
    "PCADirections",
    "pca_directions",
    "NORMALIZATION_CHOICES",
    "circuit_angles",
    "periodic_directions",
    "resolve_normalization",
]

NORMALIZATIONS = ("filter", "patch", "layer", "none")
NORMALIZATION_CHOICES = ("auto", *NORMALIZATIONS)  # what callers may ask for; results record the resolved rule
DIRECTION_KINDS = ("random", "hessian", "pca", "periodic", "custom")
Normalization = Literal["auto", "filter", "patch", "layer", "none"]


def circuit_angles(objective: Objective) -> slice | None:
    """Where the circuit angles (radians, 2π-periodic) sit in the objective's flat parameter vector: the block of
    the circuit-parameter tensor of a model that offers its patch layout
    (:class:`~qlandscape.core.capabilities.PatchStructured`, e.g. a PatchQNN); None for any other model."""
    model = objective.model
    if not isinstance(model, PatchStructured):
        return None
    return objective.parameter_blocks()[model.patch_layout().circuit]


def resolve_normalization(objective: Objective, normalization: str) -> str:
    """The rule ``normalization`` stands for on this objective: ``"auto"`` is ``"none"`` (radians) for a model
    with circuit angles and ``"filter"`` otherwise (see the module docs); any other rule is itself."""
    check_choice("normalization", normalization, NORMALIZATION_CHOICES)
    if normalization != "auto":
        return normalization
    return "none" if circuit_angles(objective) is not None else "filter"


def as_center(
    objective: Objective, center: np.ndarray | torch.Tensor | Sequence[float] | None, field: str = "center"
) -> np.ndarray:
    """The centre point as a float64 numpy vector (None: the objective's own parameters), validated."""
    if center is None:
        return objective.theta0.detach().cpu().numpy().astype(np.float64)
    arr = np.asarray(center.detach().cpu() if isinstance(center, torch.Tensor) else center, dtype=np.float64)
    if arr.shape != (objective.n_params,):
        raise ConfigError(field, arr.shape, f"expected a flat vector of shape ({objective.n_params},)")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ConfigError(f"{field}[{bad}]", float(arr[bad]), "every entry must be finite")
    return arr


def as_direction(
    objective: Objective, direction: np.ndarray | torch.Tensor | Sequence[float], field: str = "direction"
) -> np.ndarray:
    """A direction as a float64 numpy vector of the objective's size, finite and not all zero."""
    arr = as_center(objective, direction, field)
    if not np.any(arr):
        raise ConfigError(field, "all zeros", "a slice direction must have at least one non-zero entry")
    return arr


def normalize_direction(
    objective: Objective,
    direction: np.ndarray,
    *,
    normalization: Normalization = "filter",
    center: np.ndarray | None = None,
    zero_1d: bool = True,
) -> np.ndarray:
    """Rescale ``direction`` blockwise to the centre's norms (see the module docs for the rules)."""
    normalization = resolve_normalization(objective, normalization)
    theta = as_center(objective, center)
    d = as_center(objective, direction, "direction").copy()
    if normalization == "none":
        return d
    if normalization == "patch" and not any(len(s) >= 2 for s in objective.shapes):
        shapes = {n: tuple(s) for n, s in zip(objective.names, objective.shapes, strict=True)}
        raise ConfigError(
            "normalization",
            normalization,
            f"'patch' needs a parameter tensor with >= 2 dims (one row per patch block) but the model "
            f"has {shapes}; use 'layer' or 'none'",
        )
    for shape, block in zip(objective.shapes, objective.parameter_blocks().values(), strict=True):
        if block.stop == block.start:
            continue
        if len(shape) <= 1 and zero_1d:
            d[block] = 0.0
            continue
        rows = shape[0] if (len(shape) >= 2 and normalization in ("filter", "patch")) else 1
        d_rows = d[block].reshape(rows, -1)
        t_rows = theta[block].reshape(rows, -1)
        d_norm = np.linalg.norm(d_rows, axis=1, keepdims=True)
        t_norm = np.linalg.norm(t_rows, axis=1, keepdims=True)
        scale = np.divide(t_norm, d_norm, out=np.zeros_like(d_norm), where=d_norm > 0)
        d[block] = (d_rows * scale).reshape(-1)
    return d


def random_direction(
    objective: Objective,
    *,
    normalization: Normalization = "auto",
    seed: int = 0,
    zero_1d: bool = True,
    center: np.ndarray | None = None,
) -> np.ndarray:
    """A seeded Gaussian direction (P,), normalised around ``center`` (default: ``objective.theta0``).

    ``normalization="auto"`` leaves a QNN's direction in radians and filter-normalises a classical net's (see the
    module docs; :func:`resolve_normalization` says which rule it was). Raises ConfigError when the normalised
    direction is all zero (e.g. every tensor is 1-D and ``zero_1d`` is on, or the centre's filters are all zero),
    since a slice along it would be flat by construction.
    """
    normalization = resolve_normalization(objective, normalization)
    theta = as_center(objective, center)
    raw = np.random.default_rng(seed).standard_normal(objective.n_params)
    d = normalize_direction(objective, raw, normalization=normalization, center=theta, zero_1d=zero_1d)
    if not np.any(d):
        raise ConfigError(
            "normalization",
            normalization,
            "it gives an all-zero direction here (1-D tensors zeroed by zero_1d=True, or the centre's "
            "blocks have zero norm); use zero_1d=False, another normalisation, or 'none'",
        )
    return d


def orthogonalize(d1: np.ndarray, d2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gram-Schmidt: return ``(d1, d2')`` with d2' ⟂ d1 and ‖d2'‖ = ‖d2‖."""
    d1 = np.asarray(d1, dtype=np.float64)
    d2 = np.asarray(d2, dtype=np.float64)
    if d1.shape != d2.shape or d1.ndim != 1:
        raise ConfigError("directions", (d1.shape, d2.shape), "expected two flat vectors of the same shape")
    n1, n2 = np.linalg.norm(d1), np.linalg.norm(d2)
    if n1 == 0 or n2 == 0:
        raise ConfigError("direction norms", (float(n1), float(n2)), "both directions must be non-zero")
    residual = d2 - (d1 @ d2) / (n1 * n1) * d1
    norm = np.linalg.norm(residual)
    if norm <= 1e-12 * n2:
        raise ConfigError("directions", "parallel", "d2 must not be parallel to d1 to be orthogonalised")
    return d1, residual * (n2 / norm)


def periodic_directions(objective: Objective, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two orthogonal integer directions over the circuit angles for a full-period scan (see the module docs).

    The angles are split at random into two halves: d1 is a seeded random ±1 on the first half and 0 elsewhere, d2
    the same on the second half, so d1 · d2 = 0 and every angle moves along one axis by ±1 rad per unit. (Two ±1
    vectors over all the angles would make the scan repeat itself: shifting both α and β by π moves every angle by 0
    or ±2π.) Every other parameter (a head, a positional bias) is 0 in both: it is not periodic. Raises
    :class:`ConfigError` for a model without circuit angles, or with fewer than two.
    """
    block = circuit_angles(objective)
    if block is None:
        raise ConfigError(
            "directions",
            "periodic",
            f"a full-period scan needs circuit angles (a PatchQNN); {type(objective.model).__name__} has none",
        )
    n = block.stop - block.start
    if n < 2:
        raise ConfigError("directions", "periodic", f"a full-period scan needs two or more circuit angles, not {n}")
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=n)
    first = np.zeros(n, dtype=bool)
    first[rng.permutation(n)[: (n + 1) // 2]] = True
    d1, d2 = np.zeros(objective.n_params), np.zeros(objective.n_params)
    d1[block], d2[block] = np.where(first, signs, 0.0), np.where(first, 0.0, signs)
    return d1, d2


def _fix_signs(vectors: np.ndarray) -> np.ndarray:
    """Flip each row so that its largest-magnitude entry is positive (a deterministic sign)."""
    idx = np.argmax(np.abs(vectors), axis=1)
    signs = np.sign(vectors[np.arange(len(vectors)), idx])
    signs[signs == 0] = 1.0
    return vectors * signs[:, None]


@dataclass(frozen=True)
class HessianDirections:
    """Top-k Hessian eigenpairs at ``theta``: ``directions`` (k, P) unit rows, ``eigenvalues`` (k,) in the order of
    ``which`` (descending for "largest", ascending for "smallest")."""

    directions: np.ndarray
    eigenvalues: np.ndarray
    theta: np.ndarray
    which: str
    method: str


def hessian_directions(
    objective: Objective,
    theta: np.ndarray | None = None,
    k: int = 2,
    *,
    which: Literal["largest", "smallest"] = "largest",
    seed: int = 0,
) -> HessianDirections:
    """Top-k (algebraically largest, or smallest) Hessian eigenvectors by Lanczos (SciPy ``eigsh``) on HVPs.

    The Krylov start vector is seeded. Falls back to a dense ``eigh`` when ``k >= P - 1`` (``eigsh`` needs k < P).
    Eigenvectors are unit-norm, with the sign making the largest-magnitude entry positive.
    """
    k = check_positive_int("k", k)
    check_choice("which", which, ("largest", "smallest"))
    p = objective.n_params
    if k > p:
        raise ConfigError("k", k, f"expected at most the parameter count {p}")
    center = as_center(objective, theta, "theta")
    center_t = torch.as_tensor(center)
    if k >= p - 1:
        vals, vecs = np.linalg.eigh(exact_hessian(objective, center_t).numpy())
        method = "dense"
    else:
        op = LinearOperator(
            (p, p), dtype=np.float64, matvec=lambda v: objective.hvp(center_t, torch.as_tensor(np.ravel(v))).numpy()
        )
        v0 = np.random.default_rng(seed).standard_normal(p)
        vals, vecs = eigsh(op, k=k, which="LA" if which == "largest" else "SA", v0=v0)
        method = "lanczos"
    order = np.argsort(vals)[::-1][:k] if which == "largest" else np.argsort(vals)[:k]
    directions = _fix_signs(vecs[:, order].T.copy())
    return HessianDirections(
        directions=directions, eigenvalues=vals[order].copy(), theta=center, which=which, method=method
    )


@dataclass(frozen=True)
class PCADirections:
    """Top-2 principal directions of a trajectory around its final point (Li et al. 2018, Kawase 2025).

    ``directions`` (2, P) orthonormal rows; ``singular_values`` (2,) and ``explained_variance_ratio`` (2,) from the
    SVD of the matrix of θ_t − θ_final centred on its mean (a PCA, as Li et al.'s code fits scikit-learn's ``PCA``
    to these rows); ``coordinates`` (T, 2) the uncentred θ_t − θ_final projected on the plane (dot products, the
    directions being orthonormal), so θ_final is the origin; ``center`` (P,) = θ_final.
    """

    directions: np.ndarray
    explained_variance_ratio: np.ndarray
    singular_values: np.ndarray
    coordinates: np.ndarray
    center: np.ndarray
    n_points: int


def pca_directions(
    trajectory: np.ndarray | torch.Tensor, final: np.ndarray | torch.Tensor | None = None
) -> PCADirections:
    """PCA plane of a trajectory ``(T, P)`` around ``final`` (default: its last point)."""
    traj = np.asarray(
        trajectory.detach().cpu() if isinstance(trajectory, torch.Tensor) else trajectory, dtype=np.float64
    )
    if traj.ndim != 2 or traj.shape[0] < 2 or traj.shape[1] < 2:
        raise ConfigError("trajectory", traj.shape, "expected shape (T, P) with at least 2 points and 2 parameters")
    if not np.all(np.isfinite(traj)):
        raise ConfigError("trajectory", "non-finite entries", "every parameter of every point must be finite")
    if final is None:
        center = traj[-1].copy()
    else:
        center = np.asarray(final.detach().cpu() if isinstance(final, torch.Tensor) else final, dtype=np.float64)
        if center.shape != (traj.shape[1],) or not np.all(np.isfinite(center)):
            raise ConfigError("final", center.shape, f"expected a finite vector of shape ({traj.shape[1]},)")
    diffs = traj - center
    # principal components are those of the mean-centred rows (Li et al. 2018 fit sklearn's PCA, which centres);
    # the uncentred SVD would mostly pick up the direction from θ_final to the trajectory's mean
    _, s, vt = np.linalg.svd(diffs - diffs.mean(axis=0), full_matrices=False)
    total = float(np.sum(s**2))
    if total == 0.0 or not math.isfinite(total):
        raise ConfigError("trajectory", "constant", "the trajectory points do not vary; nothing to PCA")
    directions = _fix_signs(vt[:2].copy())
    return PCADirections(
        directions=directions,
        explained_variance_ratio=s[:2] ** 2 / total,
        singular_values=s[:2].copy(),
        coordinates=diffs @ directions.T,
        center=center,
        n_points=int(traj.shape[0]),
    )
