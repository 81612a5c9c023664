"""Parent-child spawning (Fort et al. 2020; Frankle et al. 2020): when does training become stable?

A parent is trained from its seed. At each spawn time t_s (in epochs, fractional allowed) its complete training
state (parameters, optimiser moments, schedule position) is copied into two children that finish training with
different data orders (:meth:`qlandscape.train.trainer.Trainer.fork`). Between the two children's final parameters we
measure, on the test set:

* the error and loss barriers along the straight line θ(t) = (1 − t) θ_1 + t θ_2 (DESIGN.md section 5): a barrier
  near 0 means the children ended in one linearly connected basin;
* the function-space distance: the fraction of test inputs on which the children's predictions differ;
* each child's final test accuracy (the end points of the interpolation curve), and the parent's.

The barrier as a function of t_s shows how early the training trajectory is committed to a basin.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from qlandscape.core.errors import ConfigError, is_integer
from qlandscape.core.objective import Objective
from qlandscape.metrics.landscape.connectivity import function_space_distance, interpolate, interpolate_with_bn_reset
from qlandscape.metrics.landscape.results import SpawnResult
from qlandscape.models.classical import has_batch_norm, recompute_bn_statistics
from qlandscape.train.trainer import TrainConfig, Trainer, flat_parameters

__all__ = ["check_spawn_epochs", "spawn_experiment"]


def check_spawn_epochs(spawn_epochs: Sequence[float], epochs: int) -> np.ndarray:
    """Sorted unique spawn times, each finite and within [0, epochs]; otherwise :class:`ConfigError`."""
    values = list(spawn_epochs)
    if not values:
        raise ConfigError("spawn_epochs", values, "expected at least one spawn time")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ConfigError("spawn_epochs", value, "expected numbers (epochs)")
        if not math.isfinite(value) or value < 0 or value > epochs + 1e-12:
            raise ConfigError("spawn_epochs", value, f"expected a spawn time in [0, {epochs}] (the training epochs)")
    return np.unique(np.asarray(values, dtype=np.float64))


def _child_rng_seed(child_seed: int, spawn_step: int) -> int:
    # In-model randomness (dropout) of each child gets its own stream, fixed by (child seed, spawn step): the
    # same whatever other spawn times are requested and in whichever order the children run.
    return int(np.random.SeedSequence([int(child_seed), int(spawn_step)]).generate_state(1)[0])


def spawn_experiment(
    model: nn.Module,
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    train_config: TrainConfig,
    spawn_epochs: Sequence[float],
    *,
    parent_seed: int = 0,
    child_seeds: Sequence[int] = (1, 2),
    n_points: int = 11,
    bn_reset: bool | None = None,
    progress: bool = False,
) -> SpawnResult:
    """Train a parent, spawn two children at each time in ``spawn_epochs`` and compare the children at the end.

    Args:
        model: any ``nn.Module`` (classical net or :class:`~qlandscape.models.qnn.PatchQNN`); it is copied, not changed.
        x_train, y_train, x_test, y_test: the data; barriers and distances are measured on the test split.
        train_config: training settings; its ``seed`` is replaced by ``parent_seed``.
        spawn_epochs: spawn times in epochs, each in [0, train_config.epochs] (fractional times are rounded to a
            whole optimiser step). Spawning at the final epoch gives two identical children.
        parent_seed: seed of the parent's data order (and of in-model randomness).
        child_seeds: two seeds for the children's data orders after the spawn.
        n_points: points on the interpolation line (including both ends).
        bn_reset: recompute batch-norm statistics on the training inputs at every interpolation point, the two
            children and the parent's accuracy included (default: when the model has batch norm). Without it,
            every point uses child 1's running statistics.
        progress: show a progress bar over spawn times.

    The global torch RNG state is the same after the call as before it.
    """
    config = replace(train_config, seed=int(parent_seed)).validate()
    times = check_spawn_epochs(spawn_epochs, config.epochs)
    seeds = tuple(child_seeds)
    if len(seeds) != 2 or not all(is_integer(s) for s in seeds):
        raise ConfigError("child_seeds", seeds, "expected exactly two integer seeds")
    child_seeds = tuple(int(s) for s in seeds)
    if child_seeds[0] == child_seeds[1]:  # equal seeds give identical children: a barrier of 0 by construction
        raise ConfigError("child_seeds", child_seeds, "expected two different seeds (the children's data orders)")
    if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 3:
        raise ConfigError("n_points", n_points, "expected an integer >= 3")
    if x_test.shape[0] == 0 or y_test.shape[0] != x_test.shape[0]:
        raise ConfigError("test set", (tuple(x_test.shape), tuple(y_test.shape)), "expected matching, non-empty")
    use_bn_reset = has_batch_norm(model) if bn_reset is None else bool(bn_reset)
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with torch.random.fork_rng(devices=[]):
        parent = Trainer(model, x_train, y_train, x_test, y_test, config)
        for t_s in tqdm(times, desc="spawning", unit="spawn", disable=not progress):
            parent.run_until(float(t_s))
            children = []
            for seed in child_seeds:
                child = parent.fork(seed)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(_child_rng_seed(seed, parent.step))
                    child.run_until(config.epochs)
                children.append(child)
            rows.append(_compare(children, x_train, x_test, y_test, config.loss, n_points, use_bn_reset))
            rows[-1]["spawn_step"] = parent.step
        parent.run_until(config.epochs)
    parent_theta = flat_parameters(parent.model)
    parent_accuracy = float(parent.history["test_accuracy"][-1])
    if use_bn_reset:  # measured as the children's ends are, so a child equal to the parent has its accuracy
        parent_accuracy = Objective(
            recompute_bn_statistics(parent.model, None, x_train), x_test, y_test, config.loss
        ).accuracy()
    for row in rows:
        row["parent_child_distance"] = [float(torch.linalg.norm(t - parent_theta)) for t in row.pop("thetas")]
    stack = lambda key: np.asarray([row[key] for row in rows], dtype=np.float64)  # noqa: E731
    return SpawnResult(
        spawn_epochs=times,
        spawn_steps=np.asarray([row["spawn_step"] for row in rows], dtype=np.int64),
        error_barrier=stack("error_barrier"),
        loss_barrier=stack("loss_barrier"),
        function_distance=stack("function_distance"),
        child_test_accuracy=stack("child_test_accuracy"),
        child_test_loss=stack("child_test_loss"),
        parameter_distance=stack("parameter_distance"),
        parent_child_distance=stack("parent_child_distance"),
        ts=rows[0]["ts"],
        test_losses=stack("losses"),
        test_errors=stack("errors"),
        parent_test_accuracy=parent_accuracy,
        parent_seed=int(parent_seed),
        child_seeds=child_seeds,
        n_points=n_points,
        bn_reset=use_bn_reset,
        model=type(model).__name__,
        n_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        seconds=time.perf_counter() - start,
        train_config=dict(vars(config)),
    )


def _compare(
    children: list[Trainer], x_train: Tensor, x_test: Tensor, y_test: Tensor, loss: str, n_points: int, bn_reset: bool
) -> dict[str, Any]:
    """Barriers, function distance and accuracies between two finished children.

    Everything is read off one evaluation, the interpolation curve, so accuracies, distance and barrier agree at
    the end points: with ``bn_reset`` each end is the child with statistics recomputed on ``x_train``.
    """
    thetas = [flat_parameters(c.model) for c in children]
    objective = Objective(children[0].model, x_test, y_test, loss)
    if bn_reset:
        curve = interpolate_with_bn_reset(objective, thetas[0], thetas[1], x_train, n_points, split="test")
        ends = [Objective(recompute_bn_statistics(c.model, None, x_train), x_test, y_test, loss) for c in children]
        predictions = [o.outputs().argmax(-1) for o in ends]
        distance = float((predictions[0] != predictions[1]).double().mean())
    else:
        curve = interpolate(objective, thetas[0], thetas[1], n_points=n_points, split="test")
        distance = function_space_distance(objective, thetas[0], thetas[1])
    losses, errors = curve.loss(), curve.error()
    return {
        "thetas": thetas,
        "ts": curve.ts,
        "losses": losses,
        "errors": errors,
        "error_barrier": curve.error_barrier,
        "loss_barrier": curve.loss_barrier,
        "function_distance": distance,
        "child_test_accuracy": [1.0 - errors[0], 1.0 - errors[-1]],
        "child_test_loss": [losses[0], losses[-1]],
        "parameter_distance": float(torch.linalg.norm(thetas[0] - thetas[1])),
    }
