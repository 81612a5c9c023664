"""Landscape results: slices, interpolations and spawning experiments, as frozen dataclasses of numpy arrays.

These classes hold numbers and labels only. They import numpy and the error type, nothing that computes, so
figures (:mod:`qlandscape.plots`) take them without importing torch, a model or an Objective. The functions that
build them are :mod:`qlandscape.metrics.landscape.slices` (``Slice1D``, ``Slice2D``),
:mod:`~qlandscape.metrics.landscape.fourier` (``FourierSpectrum``),
:mod:`~qlandscape.metrics.landscape.connectivity` (``Interpolation``) and
:mod:`~qlandscape.metrics.landscape.spawning` (``SpawnResult``).

Grid steps in radians: for a model with circuit angles, a slice records ``radians_per_step``, the root-mean-square
change of a circuit angle between neighbouring grid points along each axis (the grid spacing times the RMS of the
direction's non-zero angle entries: the angles it moves), and a note in ``notes`` when it exceeds 0.3 rad, where a
slice may miss the landscape's structure (an angle's period is 2π). NaN for a model without angles.

Grid layout convention: 2-D grids have shape ``(len(betas), len(alphas))`` -- row i is β = betas[i], column j is
α = alphas[j] -- the layout of ``np.meshgrid(alphas, betas)`` and of matplotlib's ``contour(alphas, betas, Z)``.
Multi-split results stack splits first: ``losses[s]`` is split ``splits[s]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from qlandscape.core.errors import ConfigError

__all__ = ["FourierSpectrum", "Interpolation", "Slice1D", "Slice2D", "SpawnResult", "SplitResults", "split_index"]


def split_index(splits: Sequence[str], split: str | None) -> int:
    """The position of ``split`` in ``splits`` (None: 0, the objective's own data); ConfigError if absent."""
    if split is None:
        return 0
    if split not in splits:
        raise ConfigError("split", split, f"expected one of {', '.join(map(repr, splits))}")
    return list(splits).index(split)


class SplitResults:
    """Accessors shared by results that hold ``losses``/``errors`` stacked over ``splits`` (first axis)."""

    splits: tuple[str, ...]
    losses: np.ndarray
    errors: np.ndarray

    @property
    def accuracies(self) -> np.ndarray:
        """1 − error, same shape as ``errors``."""
        return 1.0 - self.errors

    def loss(self, split: str | None = None) -> np.ndarray:
        """The losses of one split (default: the first, the objective's own data)."""
        return self.losses[split_index(self.splits, split)]

    def error(self, split: str | None = None) -> np.ndarray:
        """The error rates of one split."""
        return self.errors[split_index(self.splits, split)]


@dataclass(frozen=True)
class Slice1D(SplitResults):
    """Loss and error along ``center + α·direction``.

    ``losses``/``errors`` have shape (n_splits, len(alphas)); ``center_losses`` (n_splits,) is L(center) computed
    on its own, a check on the α = 0 grid point. ``direction_kind`` is one of random/hessian/pca/custom and
    ``normalization`` one of filter/patch/layer/none.
    """

    alphas: np.ndarray
    losses: np.ndarray
    errors: np.ndarray
    center_losses: np.ndarray
    splits: tuple[str, ...]
    direction_kind: str
    normalization: str
    direction_norm: float
    loss_name: str
    radians_per_step: float = float("nan")
    notes: tuple[str, ...] = ()


def _no_steps() -> np.ndarray:
    return np.full(2, np.nan)


@dataclass(frozen=True)
class Slice2D(SplitResults):
    """Loss and error on the plane ``center + α·d1 + β·d2``.

    ``losses``/``errors``: (n_splits, len(betas), len(alphas)) -- rows are β, columns α (see the module docs).
    ``trajectory``: (T, 2) (α, β) coordinates of a path to overlay, or shape (0, 2) when there is none.
    ``explained_variance_ratio``: (2,) for a PCA plane, NaN otherwise. ``direction_cosine``: cos∠(d1, d2).
    ``radians_per_step`` (2,): the RMS circuit-angle change per grid step along α and β (NaN without angles), and
    ``notes``: what a reader must know (a step above 0.3 rad); see the module docs.
    """

    alphas: np.ndarray
    betas: np.ndarray
    losses: np.ndarray
    errors: np.ndarray
    center_losses: np.ndarray
    splits: tuple[str, ...]
    direction_kind: str
    normalization: str
    direction_norms: np.ndarray
    direction_cosine: float
    trajectory: np.ndarray
    explained_variance_ratio: np.ndarray
    loss_name: str
    radians_per_step: np.ndarray = field(default_factory=_no_steps)
    notes: tuple[str, ...] = ()

    @property
    def has_trajectory(self) -> bool:
        """Whether a projected trajectory is attached for overlay."""
        return self.trajectory.shape[0] > 0


@dataclass(frozen=True)
class FourierSpectrum:
    """The 2-D Fourier power spectrum of a full-period grid (α, β each over [-π, π) without the endpoint).

    ``power[i, j]`` is |c|² of the coefficient at β frequency ``freq_beta[i]`` and α frequency ``freq_alpha[j]``,
    in cycles per 2π (integers, ascending, zero in the middle), where the grid is Σ c·exp(i(k_α α + k_β β)); so a
    term A·cos(k α) puts A²/4 at ±k. ``mean`` is the (0, 0) coefficient (the grid's mean) and ``variance`` the
    power at every other frequency, the variance of the grid values (Parseval). ``low_fraction``: the share of
    ``variance`` at frequencies with max(|k_α|, |k_β|) <= ``low_cutoff`` (NaN for a constant grid). ``quantity``
    (loss or error) of the split ``split``.
    """

    freq_alpha: np.ndarray
    freq_beta: np.ndarray
    power: np.ndarray
    mean: float
    variance: float
    low_cutoff: int
    low_fraction: float
    split: str
    quantity: str
    loss_name: str
    direction_kind: str

    def power_at(self, k_alpha: int, k_beta: int) -> float:
        """The power at (k_α, k_β) cycles per 2π (0 beyond the grid's frequencies)."""
        i = np.flatnonzero(self.freq_beta == k_beta)
        j = np.flatnonzero(self.freq_alpha == k_alpha)
        return float(self.power[i[0], j[0]]) if i.size and j.size else 0.0


@dataclass(frozen=True)
class Interpolation(SplitResults):
    """Loss and error on the segment θ_a → θ_b.

    ``losses``/``errors``: (n_splits, n_points) at ``ts``; ``loss_barriers``/``error_barriers`` (n_splits,) and
    the t where each is attained (``loss_barrier_ts``/``error_barrier_ts``). ``distance`` = ‖θ_b − θ_a‖.
    The properties ``loss_barrier``/``error_barrier`` give the first split's (the objective's own data).
    """

    ts: np.ndarray
    losses: np.ndarray
    errors: np.ndarray
    loss_barriers: np.ndarray
    error_barriers: np.ndarray
    loss_barrier_ts: np.ndarray
    error_barrier_ts: np.ndarray
    splits: tuple[str, ...]
    distance: float
    loss_name: str
    label_a: str = "θ_a"
    label_b: str = "θ_b"

    @property
    def loss_barrier(self) -> float:
        """Loss barrier on the first split."""
        return float(self.loss_barriers[0])

    @property
    def error_barrier(self) -> float:
        """Error barrier on the first split."""
        return float(self.error_barriers[0])


@dataclass(frozen=True)
class SpawnResult:
    """Barrier, function distance and accuracies between two children, one row per spawn time.

    ``ts``/``test_losses``/``test_errors`` are the interpolation curves behind the barriers. Spawn times are sorted
    and unique; ``spawn_steps`` is the optimiser step each one was rounded to.
    """

    spawn_epochs: np.ndarray  # (S,)
    spawn_steps: np.ndarray  # (S,) int
    error_barrier: np.ndarray  # (S,)
    loss_barrier: np.ndarray  # (S,)
    function_distance: np.ndarray  # (S,) fraction of test inputs where the two children disagree
    child_test_accuracy: np.ndarray  # (S, 2)
    child_test_loss: np.ndarray  # (S, 2)
    parameter_distance: np.ndarray  # (S,) ||θ_1 − θ_2||
    parent_child_distance: np.ndarray  # (S, 2) ||θ_child − θ_parent|| at the end of training
    ts: np.ndarray  # (n_points,)
    test_losses: np.ndarray  # (S, n_points)
    test_errors: np.ndarray  # (S, n_points)
    parent_test_accuracy: float
    parent_seed: int
    child_seeds: tuple[int, ...]
    n_points: int
    bn_reset: bool
    model: str
    n_params: int
    seconds: float
    train_config: dict = field(default_factory=dict)
