"""Mode directedness: do the displacements of k models from a shared point (their parent, their common
initialisation) point the same way? Pairwise cosines and the spread of the displacements over principal
directions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from qlandscape.core.errors import ConfigError
from qlandscape.merging.merges import task_vectors
from qlandscape.metrics.modes.results import DirectednessResult

__all__ = ["mode_directedness", "directedness_of_vectors"]


def directedness_of_vectors(vectors: np.ndarray | torch.Tensor) -> DirectednessResult:
    """Cosines and explained variance of the rows of ``vectors`` (k, P), k >= 2, each non-zero."""
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] < 2:
        raise ConfigError("vectors", v.shape, "expected at least two displacement vectors (k >= 2, P)")
    norms = np.linalg.norm(v, axis=1)
    if np.any(norms == 0) or not np.all(np.isfinite(norms)):
        raise ConfigError("vectors", norms.tolist(), "expected finite, non-zero displacements (a cosine needs both)")
    unit = v / norms[:, None]
    cosines = np.clip(unit @ unit.T, -1.0, 1.0)
    k = v.shape[0]
    singular = np.linalg.svd(v, compute_uv=False)
    explained = np.zeros(k)
    explained[: singular.shape[0]] = singular**2 / np.sum(singular**2)
    return DirectednessResult(
        cosines=cosines,
        mean_cosine=float((cosines.sum() - k) / (k * (k - 1))),
        explained_variance=explained,
        norms=norms,
    )


def mode_directedness(models: Sequence[nn.Module], base: nn.Module) -> DirectednessResult:
    """Directedness of the displacements θ_i − θ_base (periodic differences on circuit angles)."""
    return directedness_of_vectors(task_vectors(models, base).numpy())
