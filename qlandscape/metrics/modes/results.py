"""Results of the four mode properties, as frozen dataclasses of numpy arrays and plain values (no torch), so that
figures (:mod:`qlandscape.plots.modes`) take them without importing compute code.

Barrier definitions (both reported, labelled): ``excess`` is the largest excess of the path over the straight
interpolation of its endpoint values (0 on a convex loss); ``max_minus_mean`` is the path's maximum minus the mean of
its endpoint values (Frankle et al. 2020, Ainsworth et al. 2023). Arrays of barriers have a last axis of length 4:
:data:`BARRIER_FIELDS` (loss excess, loss max-minus-mean, error excess, error max-minus-mean).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "BARRIER_FIELDS",
    "ConnectivityResult",
    "ConvexityResult",
    "DeterminismResult",
    "DirectednessResult",
]

BARRIER_FIELDS = ("loss_excess", "loss_max_minus_mean", "error_excess", "error_max_minus_mean")


@dataclass(frozen=True)
class ConnectivityResult:
    """Mode connectivity between pairs of models along paths of several ``kinds``.

    ``kinds``: ``linear`` (the models as given), ``aligned`` (straight line to B aligned to A,
    :func:`qlandscape.merging.align`) and a trained curve to aligned B (``bezier`` or ``polychain``).
    ``pairs`` (n_pairs, 2) index the models; ``barriers`` (n_pairs, n_kinds, 4) follow :data:`BARRIER_FIELDS`;
    ``losses``/``errors`` (n_pairs, n_kinds, n_points) are the curves on ``split`` at ``ts``; ``distances``
    (n_pairs, n_kinds) are ||θ_b − θ_a|| of each path's endpoints (aligned and curved share theirs).
    """

    kinds: tuple[str, ...]
    pairs: np.ndarray
    ts: np.ndarray
    losses: np.ndarray
    errors: np.ndarray
    barriers: np.ndarray
    distances: np.ndarray
    split: str
    loss_name: str
    bn_reset: bool
    curve_epochs: int

    def barrier(self, kind: str, field: str = "loss_excess") -> np.ndarray:
        """The barriers (n_pairs,) of one path kind and one of :data:`BARRIER_FIELDS`."""
        return self.barriers[:, self.kinds.index(kind), BARRIER_FIELDS.index(field)]


@dataclass(frozen=True)
class ConvexityResult:
    """Mode convexity of k models (children of one parent, or any set): the Jensen gap and soups.

    ``jensen_gap_loss`` = L(mean of the k models) − mean_i L(model_i) (negative: the mean is better than its
    ingredients, the loss is convex between them); ``jensen_gap_error`` the same on the error rate. Soups (on the
    held-out ``split``): the uniform soup's and greedy soup's accuracy against the best ingredient's
    (``soup_minus_best`` = greedy − best, >= 0 by construction of the greedy soup on that split).
    """

    k: int
    member_loss: np.ndarray
    member_error: np.ndarray
    mean_model_loss: float
    mean_model_error: float
    jensen_gap_loss: float
    jensen_gap_error: float
    ingredient_accuracy: np.ndarray
    uniform_soup_accuracy: float
    greedy_soup_accuracy: float
    greedy_chosen: tuple[int, ...]
    best_ingredient_accuracy: float
    soup_minus_best: float
    aligned: bool
    split: str
    loss_name: str
    selection_split: str = ""


@dataclass(frozen=True)
class DeterminismResult:
    """Mode determinism: barriers between a reference run and runs that differ from it in one source of randomness.

    ``sources``: ``init`` (initialisation seed only), ``order`` (data-order seed only), ``both``. ``barriers``
    (n_sources, 2, 4): linear and aligned paths, :data:`BARRIER_FIELDS`; ``parameter_distance`` (n_sources,) and
    ``function_distance`` (fraction of ``split`` inputs whose predicted class differs) against the reference;
    ``accuracies`` (n_sources + 1,): the reference first. The barrier against spawn time is
    :func:`qlandscape.metrics.landscape.spawning.spawn_experiment`'s.
    """

    sources: tuple[str, ...]
    reference_seeds: tuple[int, int]
    other_seeds: tuple[int, int]
    barriers: np.ndarray
    parameter_distance: np.ndarray
    function_distance: np.ndarray
    accuracies: np.ndarray
    split: str
    loss_name: str

    def barrier(self, source: str, aligned: bool = False, field: str = "loss_excess") -> float:
        """One barrier: ``source`` in :attr:`sources`, linear or aligned path, one of :data:`BARRIER_FIELDS`."""
        return float(self.barriers[self.sources.index(source), int(aligned), BARRIER_FIELDS.index(field)])


@dataclass(frozen=True)
class DirectednessResult:
    """Mode directedness: how the displacements θ_i − θ_0 of k models from a shared point θ_0 (their parent or
    initialisation) point.

    ``cosines`` (k, k): pairwise cosine similarities; ``mean_cosine``: their mean off the diagonal;
    ``explained_variance`` (k,): the fractions σ_j² / Σ σ² of the singular values of the uncentred (k, P) matrix of
    displacements, largest first (a common direction shows as a first fraction near 1; k orthogonal displacements
    of equal length give 1/k each); ``norms`` (k,): ||θ_i − θ_0||. Circuit angles enter as periodic differences.
    """

    cosines: np.ndarray
    mean_cosine: float
    explained_variance: np.ndarray
    norms: np.ndarray
