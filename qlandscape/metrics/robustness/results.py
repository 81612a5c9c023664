"""Robustness results: accuracy and loss under attack against eps, and input-space curvature, as frozen dataclasses
of numpy arrays and plain values (no torch), so that figures (:mod:`qlandscape.plots.robustness`) take them
without compute code. Built by :mod:`qlandscape.metrics.robustness.evaluation` and
:mod:`qlandscape.metrics.robustness.input_curvature`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RobustnessCurve", "InputCurvature"]


@dataclass(frozen=True, eq=False)
class RobustnessCurve:
    """Clean, FGSM and PGD accuracy and mean loss at each ``eps`` (model input units; ``eps_pixels`` the same in
    the data's pixel units, NaN when unknown), on ``n_samples`` samples of ``split``.

    PGD ran ``steps`` steps of ``alpha_fraction * eps`` each (``norm`` ball, ``random_start`` seeded by ``seed``),
    clipped into ``bounds`` (``(nan, nan)``: unbounded)."""

    eps: np.ndarray
    eps_pixels: np.ndarray
    clean_accuracy: float
    clean_loss: float
    fgsm_accuracy: np.ndarray
    fgsm_loss: np.ndarray
    pgd_accuracy: np.ndarray
    pgd_loss: np.ndarray
    norm: str
    steps: int
    alpha_fraction: float
    random_start: bool
    seed: int
    bounds: tuple[float, float]
    split: str
    n_samples: int
    loss: str


@dataclass(frozen=True, eq=False)
class InputCurvature:
    """Input-space curvature of the loss over ``n_samples`` samples of ``split``, per sample: ``top_eigenvalues[i]``
    is the largest eigenvalue of the Hessian of sample i's loss with respect to its own input, ∇²_x ℓ(x_i)
    (``dimension`` x ``dimension``), found by Lanczos on input Hessian-vector products (``iterations`` steps, full
    reorthogonalisation; exact when ``iterations`` equals ``dimension``), with the Ritz residual bound
    ``residuals[i]``; ``gradient_norms[i]`` is |∇_x ℓ(x_i)|₂. The means are over samples (what CURE-style work
    reports as the curvature and gradient size)."""

    top_eigenvalues: np.ndarray
    residuals: np.ndarray
    gradient_norms: np.ndarray
    mean_top_eigenvalue: float
    max_top_eigenvalue: float
    mean_gradient_norm: float
    dimension: int
    iterations: int
    hvp_count: int
    split: str
    n_samples: int
    loss: str
