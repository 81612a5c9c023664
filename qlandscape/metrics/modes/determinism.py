"""Mode determinism: how far apart do runs end that differ in one source of randomness only?

A reference run (initialisation seed s, data-order seed s) is compared with three runs: another initialisation
seed with the same data order (``init``), the same initialisation with another data order (``order``) and both
changed (``both``): barriers along the straight line and after alignment, parameter and function distances. Full-
batch training has no data order, so its ``order`` barrier is exactly 0: a known answer the tests use. The fourth
source, the time at which two runs part, is parent-child spawning
(:func:`qlandscape.metrics.landscape.spawning.spawn_experiment`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from torch import Tensor, nn

from qlandscape.core.errors import ConfigError, is_integer
from qlandscape.core.objective import Objective
from qlandscape.merging.alignment import align
from qlandscape.merging.curves import DEFAULT_CURVE_POINTS, evaluate_path
from qlandscape.merging.parameters import flat_parameters
from qlandscape.metrics.modes.connectivity import barrier_row
from qlandscape.metrics.modes.results import DeterminismResult
from qlandscape.models.classical import has_batch_norm, recompute_bn_statistics
from qlandscape.train.trainer import TrainConfig, train

__all__ = ["DETERMINISM_SOURCES", "mode_determinism"]

DETERMINISM_SOURCES = ("init", "order", "both")


def _predictions(model: nn.Module, x: Tensor, x_stats: Tensor | None) -> Tensor:
    if x_stats is not None:
        model = recompute_bn_statistics(model, None, x_stats)
    return Objective(model, x, torch.zeros(x.shape[0], dtype=torch.long)).outputs().argmax(-1)


def mode_determinism(
    build_model: Callable[[int], nn.Module],
    x_train: Tensor,
    y_train: Tensor,
    x_eval: Tensor,
    y_eval: Tensor,
    config: TrainConfig,
    *,
    seeds: tuple[int, int] = (0, 1),
    n_points: int = DEFAULT_CURVE_POINTS,
    split: str = "test",
    progress: bool = False,
) -> DeterminismResult:
    """Train the reference run and the three variants (see the module docstring) and compare them.

    ``build_model(seed)`` returns a fresh model initialised from ``seed``; ``config.seed`` is replaced by each run's
    data-order seed. ``seeds``: (reference seed, the other seed), different non-negative integers. ``progress``:
    progress bars over each run's training.
    """
    if len(seeds) != 2 or not all(is_integer(s) and s >= 0 for s in seeds) or seeds[0] == seeds[1]:
        raise ConfigError("seeds", seeds, "expected two different non-negative integer seeds")
    s0, s1 = int(seeds[0]), int(seeds[1])
    config = config.validate()
    runs = {"reference": (s0, s0), "init": (s1, s0), "order": (s0, s1), "both": (s1, s1)}
    trained = {}
    for name, (init_seed, order_seed) in runs.items():
        model, _ = train(
            build_model(init_seed),
            x_train,
            y_train,
            x_eval,
            y_eval,
            replace(config, seed=order_seed),
            progress=progress,
        )
        trained[name] = model
    reference = trained["reference"]
    x_stats = torch.as_tensor(x_train) if has_batch_norm(reference) else None
    common = {"n_points": n_points, "x_stats": x_stats, "loss": config.loss, "split": split}
    barriers, distances, functions, accuracies = [], [], [], []
    ref_pred = _predictions(reference, x_eval, x_stats)
    accuracies.append(float((ref_pred == y_eval).double().mean()))
    for source in DETERMINISM_SOURCES:
        other = trained[source]
        linear = evaluate_path(reference, other, x_eval, y_eval, **common)
        aligned = evaluate_path(reference, align(reference, other), x_eval, y_eval, **common)
        barriers.append([barrier_row(linear), barrier_row(aligned)])
        distances.append(float(torch.linalg.norm(flat_parameters(other) - flat_parameters(reference))))
        pred = _predictions(other, x_eval, x_stats)
        functions.append(float((pred != ref_pred).double().mean()))
        accuracies.append(float((pred == y_eval).double().mean()))
    return DeterminismResult(
        sources=DETERMINISM_SOURCES,
        reference_seeds=(s0, s0),
        other_seeds=(s1, s1),
        barriers=np.asarray(barriers),
        parameter_distance=np.asarray(distances),
        function_distance=np.asarray(functions),
        accuracies=np.asarray(accuracies),
        split=split,
        loss_name=str(config.loss),
    )
