"""Seeded torch training for any ``nn.Module``, recording the parameter trajectory.

:func:`train` is the one-call loop. :class:`Trainer` is the same loop as a resumable object: it can run to a
fractional epoch, be forked into children that continue with another data order (parent-child spawning), and
records flat float64 parameter vectors at every recorded point. The caller's model is never changed: the trainer
works on its own copy.

Divergence: training stops at the first non-finite value it meets, the minibatch loss of a step (before the step is
taken), a parameter after a step, or a loss of the per-epoch evaluation. The trainer records a :class:`Divergence`
(what, where, the value) and :meth:`Trainer.run_until` (and so :func:`train`) raises :class:`TrainingDiverged`,
carrying it and the :class:`TrainResult` so far: the trajectory holds only the finite points recorded before, and
the evaluation history every evaluation made (the last one non-finite when an evaluation found the divergence).
A run directory records such a run as ``diverged`` (:mod:`qlandscape.runs.run`).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from qlandscape.attacks.projections import check_bounds
from qlandscape.core.dtypes import default_dtype
from qlandscape.core.errors import ConfigError, check_choice, is_finite_number, is_integer
from qlandscape.core.losses import LOSSES, resolve_loss
from qlandscape.train.adversarial import AdversarialTraining, adversarial_training, mixed_batch, step_seed

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "SCHEDULE_UNITS",
    "TrainConfig",
    "TrainResult",
    "Divergence",
    "TrainingDiverged",
    "flat_parameters",
    "evaluate",
    "Trainer",
    "train",
]

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine", "cosine_restarts")
SCHEDULE_UNITS = ("step", "epoch")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings. ``record_every`` counts optimiser steps (None: once per epoch). Adversarial training is
    the ``adversarial`` argument of :class:`Trainer` and :func:`train`."""

    optimizer: str = "adam"
    lr: float = 0.05
    epochs: int = 10
    batch_size: int = 32
    weight_decay: float = 0.0
    momentum: float = 0.0
    schedule: str = "constant"
    # cosine: lr·(1 + cos(π s / T))/2 as torch's CosineAnnealingLR (periodic with period 2T, no restarts);
    # cosine_restarts: the same restarted every T (SGDR). T = schedule_period epochs (None: the whole run).
    schedule_period: float | None = None
    # the schedule's clock s: optimiser steps (smooth), or whole epochs (lr constant within an epoch, as a
    # scheduler stepped once per epoch, e.g. Kawase 2025)
    schedule_unit: str = "step"
    loss: str = "cross_entropy"
    seed: int = 0
    record_every: int | None = None

    def validate(self) -> TrainConfig:
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("schedule_unit", self.schedule_unit, SCHEDULE_UNITS)
        if not callable(self.loss):  # a callable is the caller's own loss
            check_choice("loss", self.loss, LOSSES)
        if not (is_finite_number(self.lr) and self.lr > 0):
            raise ConfigError("lr", self.lr, "expected a finite positive learning rate")
        if not is_integer(self.epochs) or self.epochs < 0:
            raise ConfigError("epochs", self.epochs, "expected an integer >= 0")
        if not is_integer(self.batch_size) or self.batch_size < 1:
            raise ConfigError("batch_size", self.batch_size, "expected an integer >= 1")
        for name in ("weight_decay", "momentum"):
            value = getattr(self, name)
            if not (is_finite_number(value) and value >= 0):
                raise ConfigError(name, value, "expected a finite number >= 0")
        # a fractional count would record only at the steps that happen to be its multiples
        if self.record_every is not None and (not is_integer(self.record_every) or self.record_every < 1):
            raise ConfigError("record_every", self.record_every, "expected a positive number of steps or None")
        period = self.schedule_period
        if period is not None and not (is_finite_number(period) and period > 0):
            raise ConfigError("schedule_period", self.schedule_period, "expected a positive number of epochs")
        if not is_integer(self.seed) or self.seed < 0:
            raise ConfigError("seed", self.seed, "expected an integer >= 0")
        return self


@dataclass(frozen=True)
class TrainResult:
    """What a training run recorded. ``times`` are in epochs (fractional between epoch ends)."""

    trajectory: np.ndarray  # (T, P) flat float64 parameters at the recorded points
    times: np.ndarray  # (T,) epochs
    steps: np.ndarray  # (T,) optimiser steps
    epochs: np.ndarray  # (E+1,) 0 .. E: evaluation points
    train_loss: np.ndarray
    train_accuracy: np.ndarray
    test_loss: np.ndarray
    test_accuracy: np.ndarray
    seconds: float
    config: dict = field(default_factory=dict)

    @property
    def final_test_accuracy(self) -> float:
        """Test accuracy at the last evaluation (NaN when nothing was evaluated)."""
        return float(self.test_accuracy[-1]) if self.test_accuracy.size else float("nan")

    @property
    def best_train_index(self) -> int:
        """Index (into ``epochs``) of the evaluation point with the lowest finite training loss (NaN and infinite
        losses of a diverging run are skipped); ValueError when no training loss is finite."""
        finite = np.flatnonzero(np.isfinite(self.train_loss))
        if finite.size == 0:
            raise ValueError("no finite training loss was recorded")
        return int(finite[np.argmin(self.train_loss[finite])])


@dataclass(frozen=True)
class Divergence:
    """Where training met a non-finite value: after ``step`` optimiser steps (``epoch`` in epochs), ``quantity``
    (``"training loss"``, ``"parameters"``, ``"evaluated training loss"`` or ``"evaluated test loss"``) became
    ``value`` (NaN or an infinity; for parameters the first non-finite entry)."""

    step: int
    epoch: float
    quantity: str
    value: float

    def describe(self) -> str:
        """``training loss became nan at step 12 (epoch 1.50)``."""
        return f"{self.quantity} became {self.value} at step {self.step} (epoch {self.epoch:.2f})"


class TrainingDiverged(FloatingPointError):
    """Training stopped at a non-finite value; ``divergence`` says where, ``result`` holds what was recorded."""

    def __init__(self, divergence: Divergence, result: TrainResult, lr: float) -> None:
        super().__init__(f"{divergence.describe()}; lower the learning rate (lr={lr})")
        self.divergence = divergence
        self.result = result


def _cosine_factor(period: float, schedule: str, steps_per_tick: int = 1):
    """lr factor at an optimiser step; the clock ticks every ``steps_per_tick`` steps, ``period`` in ticks."""
    restart = schedule == "cosine_restarts"

    def factor(step: int) -> float:
        tick = step // steps_per_tick
        return 0.5 * (1 + math.cos(math.pi * ((tick % period) if restart else tick) / period))

    return factor


def flat_parameters(model: nn.Module) -> Tensor:
    """The model's parameters as one flat float64 vector (``named_parameters`` order)."""
    return torch.cat([p.detach().reshape(-1).to(torch.float64) for p in model.parameters()])


def evaluate(
    model: nn.Module, x: Tensor, y: Tensor, loss: str = "cross_entropy", batch_size: int = 1024
) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on ``(x, y)`` in eval mode, without gradients."""
    loss_fn = resolve_loss(loss)
    was_training = model.training
    model.eval()
    total, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            out = model(x[start : start + batch_size])
            yb = y[start : start + batch_size]
            total += float(loss_fn(out, yb)) * yb.shape[0]
            correct += int((out.argmax(-1) == yb).sum())
    model.train(was_training)
    return total / x.shape[0], correct / x.shape[0]


class Trainer:
    """A resumable, forkable training loop over (x_train, y_train); evaluation on train and test each epoch."""

    def __init__(
        self,
        model: nn.Module,
        x_train: Tensor,
        y_train: Tensor,
        x_test: Tensor | None = None,
        y_test: Tensor | None = None,
        config: TrainConfig = TrainConfig(),
        *,
        progress: bool = False,
        adversarial: AdversarialTraining | Mapping[str, Any] | None = None,
        bounds: tuple[float, float] | None = None,
    ) -> None:
        self.config = config.validate()
        # None (or mix 0): standard training; else each batch mixes in adversarial examples (train.adversarial)
        self.adversarial = adversarial_training(adversarial)
        # the valid input range that adversarial examples are clipped to (e.g. Dataset.input_range)
        self.bounds = check_bounds(bounds)
        if x_train.shape[0] == 0:
            raise ConfigError("training set", tuple(x_train.shape), "expected at least one sample")
        if y_train.shape[0] != x_train.shape[0]:
            raise ConfigError("y_train", tuple(y_train.shape), f"expected {x_train.shape[0]} labels, one per input")
        # one without the other would score the test inputs against the training labels
        if (x_test is None) != (y_test is None):
            raise ConfigError(
                "y_test" if y_test is None else "x_test",
                None,
                "give both x_test and y_test, or neither (then the training set is evaluated)",
            )
        if x_test is not None and y_test.shape[0] != x_test.shape[0]:
            raise ConfigError("y_test", tuple(y_test.shape), f"expected {x_test.shape[0]} labels, one per input")
        if self.adversarial is not None and self.bounds is not None:
            low, high = float(x_train.min()), float(x_train.max())
            if low < self.bounds[0] or high > self.bounds[1]:
                raise ConfigError(
                    "bounds",
                    self.bounds,
                    f"the training inputs span [{low:.6g}, {high:.6g}]; the bounds must hold them",
                )
        self.model = copy.deepcopy(model)
        self.model.train()
        self.x_train, self.y_train = x_train, y_train.long()
        self.x_test = x_test if x_test is not None else x_train
        self.y_test = (y_test if y_test is not None else y_train).long()
        self.loss_fn = resolve_loss(config.loss)
        self.progress = progress
        self.dtype = next((p.dtype for p in self.model.parameters() if p.is_floating_point()), torch.float64)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if config.optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(
                params, lr=config.lr, weight_decay=config.weight_decay
            )
        else:
            self.optimizer = torch.optim.SGD(
                params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
            )
        self.steps_per_epoch = math.ceil(x_train.shape[0] / config.batch_size)
        if config.schedule_unit == "epoch":
            tick = self.steps_per_epoch
            period = max(1, config.epochs) if config.schedule_period is None else config.schedule_period
        else:
            tick = 1
            total = max(1, config.epochs * self.steps_per_epoch)
            period = (
                total
                if config.schedule_period is None
                else max(1, round(config.schedule_period * self.steps_per_epoch))
            )
        self.scheduler = None
        if config.schedule != "constant":
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, _cosine_factor(period, config.schedule, tick)
            )
        self.generator = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed)  # dropout and other in-model randomness draw from the global generator
        self.step = 0
        self.order = torch.randperm(x_train.shape[0], generator=self.generator)
        self.trajectory: list[np.ndarray] = [flat_parameters(self.model).numpy()]
        self.record_steps: list[int] = [0]
        self.history: dict[str, list[float]] = {
            k: [] for k in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")
        }
        self.seconds = 0.0
        self.divergence: Divergence | None = None
        self._evaluate()

    @property
    def epoch(self) -> float:
        """Training time in epochs (fractional between epoch boundaries)."""
        return self.step / self.steps_per_epoch

    def _evaluate(self) -> None:
        tl, ta = evaluate(self.model, self.x_train, self.y_train, self.config.loss)
        vl, va = evaluate(self.model, self.x_test, self.y_test, self.config.loss)
        for key, value in zip(self.history, (tl, ta, vl, va), strict=True):
            self.history[key].append(value)
        for quantity, value in (("evaluated training loss", tl), ("evaluated test loss", vl)):
            if not math.isfinite(value):
                self._diverge(quantity, value)
                return

    def _diverge(self, quantity: str, value: float) -> None:
        if self.divergence is None:
            self.divergence = Divergence(self.step, self.epoch, quantity, float(value))

    def _first_nonfinite_parameter(self) -> float | None:
        params = [p.detach() for p in self.model.parameters()]
        # one reduction and one host sync per step; a sum is non-finite when any entry is (or when it overflows,
        # which only parameters near the float limit can do)
        if not params or bool(torch.isfinite(torch.stack([p.sum().to(torch.float64) for p in params]).sum())):
            return None
        for p in params:
            bad = p[~torch.isfinite(p)]
            if bad.numel():
                return float(bad.reshape(-1)[0])
        return float("inf")  # finite entries whose sum overflows

    def record(self) -> None:
        """Record the current parameters (once per step)."""
        self._record()

    def _record(self) -> None:
        if self.record_steps[-1] != self.step:
            self.trajectory.append(flat_parameters(self.model).numpy())
            self.record_steps.append(self.step)

    def _one_step(self) -> None:
        within = self.step % self.steps_per_epoch
        if within == 0 and self.step > 0:
            self.order = torch.randperm(self.x_train.shape[0], generator=self.generator)
        idx = self.order[within * self.config.batch_size : (within + 1) * self.config.batch_size]
        xb, yb = self.x_train[idx], self.y_train[idx]
        if self.adversarial is not None:  # made at the current parameters, before the gradient is cleared
            seed = step_seed(self.config.seed, self.step)
            xb = mixed_batch(self.model, xb, yb, self.adversarial, bounds=self.bounds, loss=self.loss_fn, seed=seed)
        self.optimizer.zero_grad(set_to_none=True)
        with default_dtype(self.dtype):  # PennyLane devices differentiate inside backward (qlandscape.core.dtypes)
            loss = self.loss_fn(self.model(xb), yb)
            if not torch.isfinite(loss):
                self._diverge("training loss", float(loss.detach()))  # the step is not taken
                return
            loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.step += 1
        bad = self._first_nonfinite_parameter()
        if bad is not None:
            self._diverge("parameters", bad)  # neither evaluated nor recorded
            return
        every = self.config.record_every
        at_epoch_end = self.step % self.steps_per_epoch == 0
        if at_epoch_end:
            self._evaluate()
            if self.divergence is not None:
                return
        if (every is not None and self.step % every == 0) or (every is None and at_epoch_end):
            self._record()

    def run_until(self, epoch: float) -> Trainer:
        """Train until ``epoch`` (fractional allowed, rounded to a whole step); returns self. A non-finite value
        stops training and raises :class:`TrainingDiverged` (see the module docstring), now or at any later call."""
        if epoch > self.config.epochs + 1e-12:
            raise ConfigError("epoch", epoch, f"expected at most the configured epochs ({self.config.epochs})")
        target = round(epoch * self.steps_per_epoch)
        start = time.perf_counter()
        bar = tqdm(
            total=max(0, target - self.step), desc="training", unit="step", disable=not self.progress, leave=False
        )
        while self.step < target and self.divergence is None:
            self._one_step()
            bar.update(1)
            if self.step % self.steps_per_epoch == 0:
                bar.set_postfix(
                    loss=f"{self.history['train_loss'][-1]:.4f}", test_acc=f"{self.history['test_accuracy'][-1]:.3f}"
                )
        bar.close()
        self.seconds += time.perf_counter() - start
        if self.divergence is not None:
            raise TrainingDiverged(self.divergence, self.result(), self.config.lr)
        return self

    def fork(self, seed: int) -> Trainer:
        """A child continuing from this exact state (parameters, optimiser, schedule) with another data order.

        The rest of the current epoch is reshuffled with the child's generator, so children differ from the
        first step after the fork.
        """
        child = copy.copy(self)
        child.model = copy.deepcopy(self.model)
        params = [p for p in child.model.parameters() if p.requires_grad]
        child.optimizer = type(self.optimizer)(params, **self.optimizer.defaults)
        if self.scheduler is not None:
            # Built before the optimiser state is loaded: the constructor resets the lr to the schedule's start
            # value, and the scheduler's own load_state_dict does not put the current lr back.
            child.scheduler = torch.optim.lr_scheduler.LambdaLR(child.optimizer, self.scheduler.lr_lambdas[0])
        child.optimizer.load_state_dict(copy.deepcopy(self.optimizer.state_dict()))
        if self.scheduler is not None:
            child.scheduler.load_state_dict(self.scheduler.state_dict())
        child.generator = torch.Generator().manual_seed(seed)
        within = self.step % self.steps_per_epoch
        done = within * self.config.batch_size
        rest = self.order[done:]
        child.order = torch.cat([self.order[:done], rest[torch.randperm(rest.numel(), generator=child.generator)]])
        child.trajectory = list(self.trajectory)
        child.record_steps = list(self.record_steps)
        child.history = {k: list(v) for k, v in self.history.items()}
        return child

    def result(self) -> TrainResult:
        """The recorded trajectory and per-epoch evaluation history so far."""
        steps = np.asarray(self.record_steps)
        return TrainResult(
            trajectory=np.stack(self.trajectory),
            times=steps / self.steps_per_epoch,
            steps=steps,
            epochs=np.arange(len(self.history["train_loss"]), dtype=np.float64),
            **{k: np.asarray(v) for k, v in self.history.items()},
            seconds=self.seconds,
            config={
                **vars(self.config),
                **({} if self.adversarial is None else {"adversarial": self.adversarial.to_dict()}),
            },
        )


def train(
    model: nn.Module,
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor | None = None,
    y_test: Tensor | None = None,
    config: TrainConfig = TrainConfig(),
    *,
    progress: bool = False,
    adversarial: AdversarialTraining | Mapping[str, Any] | None = None,
    bounds: tuple[float, float] | None = None,
) -> tuple[nn.Module, TrainResult]:
    """Train a copy of ``model``; return (trained copy, :class:`TrainResult`). The caller's model is unchanged.
    A non-finite loss or parameter raises :class:`TrainingDiverged` with the result so far.

    ``adversarial``: None for standard training, or an
    :class:`~qlandscape.train.adversarial.AdversarialTraining` (or a table of its settings, e.g.
    ``{"attack": "pgd", "eps": 0.1, "steps": 7, "alpha": 0.02, "mix": 0.5}``), validated before training, that
    replaces a fraction ``mix`` of every batch by adversarial examples made at the current parameters. ``bounds``:
    the valid input range those are clipped to (e.g. ``dataset.input_range``; None: unbounded)."""
    trainer = Trainer(
        model, x_train, y_train, x_test, y_test, config, progress=progress, adversarial=adversarial, bounds=bounds
    )
    trainer.run_until(config.epochs)
    trainer._record()  # the final point is always part of the trajectory
    return trainer.model, trainer.result()
