"""Gradient-variance (barren-plateau) results, as frozen dataclasses of numpy arrays.

These classes hold numbers and labels only (numpy, no torch, no circuit), so figures
(:mod:`qlandscape.plots.gradients`) take them without importing compute code. They are built by
:mod:`qlandscape.metrics.gradients`, whose module docs define the estimators, standard errors and fits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GradientVariance", "PatchVarianceCurve", "VarianceCurve"]


@dataclass(frozen=True)
class GradientVariance:
    """Variance of each gradient component over random initialisations, with standard errors and settings."""

    variance: np.ndarray  # (n_params,) unbiased sample variance per component
    variance_se: np.ndarray  # (n_params,) its standard error
    mean_gradient: np.ndarray  # (n_params,) sample mean per component (~0 for uniform angles)
    mean_variance: float  # mean over components of `variance`
    standard_error: float  # standard error of `mean_variance`
    mean_cost: float  # mean cost over the samples (diagnostic)
    n_samples: int
    n_params: int
    ansatz: str
    n_qubits: int
    n_layers: int
    cost: str  # "global" | "local" | "projector" | "loss:<name>" for a PatchQNN
    init: str
    inputs: str
    seed: int
    n_patches: int = 1
    seconds: float = 0.0


@dataclass(frozen=True)
class VarianceCurve:
    """Mean gradient variance over a (layers, qubits) grid and the fitted exponential decay rate per layer count."""

    ansatz: str
    cost: str
    init: str
    inputs: str
    samples: int
    seed: int
    confidence: float
    fit_from: int  # smallest qubit count used in the fits
    qubits: np.ndarray  # (nq,)
    layers: np.ndarray  # (nl,)
    mean_variance: np.ndarray  # (nl, nq)
    standard_error: np.ndarray  # (nl, nq)
    n_params: np.ndarray  # (nl, nq)
    seconds: np.ndarray  # (nl, nq) wall time per cell
    rate: np.ndarray  # (nl,) b in Var ~ exp(a - b n), per qubit
    rate_se: np.ndarray
    rate_low: np.ndarray
    rate_high: np.ndarray
    intercept: np.ndarray
    chi2_reduced: np.ndarray


@dataclass(frozen=True)
class PatchVarianceCurve:
    """Gradient variance of a PatchQNN loss against the number of patches (same circuit on every patch)."""

    ansatz: str
    n_qubits: int
    n_layers: int
    loss: str
    init: str
    samples: int
    seed: int
    aggregation: str
    image_shape: tuple
    n_images: int
    patch_size: np.ndarray  # (m,)
    stride: np.ndarray  # (m,)
    n_patches: np.ndarray  # (m,)
    mean_variance: np.ndarray  # (m,) mean per circuit-parameter component
    standard_error: np.ndarray  # (m,)
    n_params: np.ndarray  # (m,) circuit parameters in the model
    seconds: np.ndarray  # (m,)
    exponent: float  # c in Var ~ N^-c (weighted fit of log Var against log N)
    exponent_low: float
    exponent_high: float
    intercept: float  # a in log Var = a - c log N
