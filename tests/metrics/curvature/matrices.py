"""Symmetric test matrices with a chosen spectrum, shared by the curvature tests."""

from __future__ import annotations

import numpy as np


def symmetric_with_spectrum(eigenvalues, seed: int = 0) -> np.ndarray:
    """Q diag(eigenvalues) Qᵀ for a random orthogonal Q (seeded): a dense matrix whose spectrum is known exactly."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((len(eigenvalues), len(eigenvalues))))
    return (q * np.asarray(eigenvalues, dtype=np.float64)) @ q.T
