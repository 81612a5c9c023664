"""The ``modes`` run metric: the four landscape properties of Khan et al. (SoK, arXiv 2410.12927) around a run.

The metric needs several models; it trains them from the run's own config (same data, network and training
settings), so ``qlandscape modes RUN`` is all a user types:

* connectivity: the run's model and ``seeds`` − 1 more, each trained with the next seeds after the run's (the seed
  sets the initialisation and the data order), every pair: linear, aligned and (unless ``curve = "none"``) a trained
  ``curve`` to the aligned model, evaluated at ``points`` points on the test split with both barrier definitions;
* convexity and directedness: the parameters the run recorded nearest ``spawn_fraction`` of its training are a
  parent; ``children`` models continue from it for the remaining epochs with other data orders (a fresh optimiser
  state): the Jensen gap of the children on the test split, uniform and greedy soups against the best child (chosen
  on the training split, scored on the test split), and the cosines of their displacements from the parent;
* determinism (``determinism = true``): barriers between a run with the run's seed and runs with another
  initialisation seed, another data-order seed, or both.

Results accumulate by variant (:mod:`qlandscape.runs.variants`): ``modes_seeds<S>_children<C>_<curve>``; the files
are ``<variant>_connectivity``, ``_convexity``, ``_directedness`` and ``_determinism``, the figures
``<variant>_properties`` (one panel per property) and ``<variant>_paths`` (the paths of the first pair). The
computation is :mod:`qlandscape.runs.metric_hooks.modes`, loaded when first used.
"""

from __future__ import annotations

from dataclasses import dataclass

from qlandscape.core.errors import ConfigError
from qlandscape.runs.metric_spec import Headline, MetricSpec, choice, flag, hook, integer, value

__all__ = ["CURVES", "ModesSettings", "variant_name", "SPEC"]

CURVES = ("bezier", "polychain", "none")
_HOOKS = "qlandscape.runs.metric_hooks.modes"


def _is_fraction(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1


@dataclass(frozen=True)
class ModesSettings:
    """Settings of the ``modes`` metric."""

    seeds: int = integer(3, 2, "independently trained models for connectivity (the run and seeds - 1 more)")
    children: int = integer(3, 2, "children spawned from the run's trajectory for convexity and directedness")
    spawn_fraction: float = value(
        0.5, _is_fraction, "expected a number in (0, 1)", "where the parent is, as a fraction of training"
    )
    curve: str = choice("bezier", CURVES, "the trained curve between aligned models (none: only straight lines)")
    curve_epochs: int = integer(20, 1, "epochs of curve training (one t per minibatch)")
    points: int = integer(61, 3, "points along every path")
    determinism: bool = flag(True, "train the runs that differ in one source of randomness and compare them")
    figures: bool = flag(True, "draw the figures")
    progress: bool = flag(False, "progress bar", cli=False)


def variant_name(s: ModesSettings) -> str:
    """The variant the results are kept under (see the module docstring)."""
    return f"modes_seeds{s.seeds}_children{s.children}_{s.curve}"


def check_against_run(s: ModesSettings, n_train: int, n_params: int) -> None:
    """The children need training left after the spawn point, which a run of at least one epoch has."""
    if n_train < 2:
        raise ConfigError("training set", n_train, "the modes metric trains models: expected at least 2 samples")


SPEC = MetricSpec(
    name="modes",
    help="mode connectivity, convexity, determinism and directedness around a run (trains extra seeds and children)",
    settings=ModesSettings,
    compute=hook(f"{_HOOKS}:compute"),
    figures=hook(f"{_HOOKS}:figures"),
    headline=(
        Headline("modes.variant", "kept as (its files start with this name)", "variant", summary=False),
        Headline(
            "modes.linear_barrier",
            "loss barrier between seeds, straight line (excess, mean over pairs)",
            "linear barrier",
        ),
        Headline(
            "modes.aligned_barrier",
            "loss barrier between seeds after alignment (excess, mean over pairs)",
            "aligned barrier",
        ),
        Headline(
            "modes.curve_barrier", "loss barrier along the trained curve (excess, mean over pairs)", "curve barrier"
        ),
        Headline("modes.jensen_gap", "Jensen gap of the children: L(mean) - mean L (test)", "Jensen gap"),
        Headline("modes.soup_minus_best", "greedy soup minus best child, test accuracy", "soup - best"),
        Headline(
            "modes.determinism_order_barrier",
            "loss barrier when only the data order differs",
            "order barrier",
            summary=False,
        ),
        Headline(
            "modes.determinism_init_barrier",
            "loss barrier when only the initialisation differs",
            "init barrier",
            summary=False,
        ),
        Headline("modes.mean_cosine", "mean cosine of the children's displacements from the parent", "mean cosine"),
    ),
    check_against_run=check_against_run,
    sweep_figures=hook(f"{_HOOKS}:sweep_figures"),
)
