"""Paths between two models: the straight line and trained curves (Garipov et al. 2018), evaluated with
batch-norm statistics recomputed at every point.

Curves with endpoints θ_a, θ_b fixed and one trainable point θ_c:

* quadratic Bezier: θ(t) = (1−t)² θ_a + 2t(1−t) θ_c + t² θ_b;
* polygonal chain with one bend: θ_a → θ_c for t in [0, 1/2], θ_c → θ_b for t in [1/2, 1].

Training minimises the expected loss over t ~ U[0, 1], one t drawn per minibatch, starting from the midpoint of the
line (Adam on θ_c; batch-norm layers in train mode use the batch's statistics, as Garipov et al. do). Evaluation:
``n_points`` (default 61) evenly spaced t; at each a copy of the model with the point's parameters and, with batch
norm, its statistics recomputed on ``x_stats`` (:func:`qlandscape.models.classical.recompute_bn_statistics`);
without batch norm all points go through one :meth:`qlandscape.core.objective.Objective.losses` call.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from qlandscape.core.errors import ConfigError, check_choice, check_positive_int, is_finite_number
from qlandscape.core.losses import resolve_loss
from qlandscape.core.objective import Objective
from qlandscape.core.progress import progress_bar
from qlandscape.merging.barriers import barriers
from qlandscape.merging.parameters import check_models, flat_parameters
from qlandscape.merging.results import PATH_KINDS, PathResult
from qlandscape.models.classical import has_batch_norm, recompute_bn_statistics

__all__ = ["DEFAULT_CURVE_POINTS", "path_points", "evaluate_path", "train_curve", "linear_path", "curve_path"]

DEFAULT_CURVE_POINTS = 61


def path_points(kind: str, ts: Tensor, theta_a: Tensor, theta_b: Tensor, control: Tensor | None = None) -> Tensor:
    """θ(t) for each t of ``ts`` (K,) -> (K, P); the ends are exactly θ_a and θ_b."""
    check_choice("kind", kind, PATH_KINDS)
    t = torch.as_tensor(ts, dtype=torch.float64).reshape(-1, 1)
    if kind == "linear":
        points = theta_a + t * (theta_b - theta_a)
    else:
        if control is None:
            raise ConfigError("control", None, f"a {kind} path needs its control point θ_c")
        if kind == "bezier":
            points = (1 - t) ** 2 * theta_a + 2 * t * (1 - t) * control + t**2 * theta_b
        else:
            first = theta_a + 2 * t * (control - theta_a)
            second = control + (2 * t - 1) * (theta_b - control)
            points = torch.where(t <= 0.5, first, second)
    # exact endpoints whatever the round-off of the formulas
    points = torch.where(t == 0, theta_a.expand_as(points), points)
    return torch.where(t == 1, theta_b.expand_as(points), points)


def _check_data(x: Tensor, y: Tensor, what: str) -> tuple[Tensor, Tensor]:
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if x.ndim == 0 or x.shape[0] == 0 or y.shape[0] != x.shape[0]:
        raise ConfigError(what, (tuple(x.shape), tuple(y.shape)), "expected a non-empty split, one label per input")
    return x, y


def evaluate_path(
    model_a: nn.Module,
    model_b: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    kind: str = "linear",
    control: Tensor | None = None,
    n_points: int = DEFAULT_CURVE_POINTS,
    x_stats: Tensor | None = None,
    loss: str = "cross_entropy",
    split: str = "test",
    training_loss: np.ndarray | None = None,
    progress: bool = False,
) -> PathResult:
    """Loss and error on (x, y) at ``n_points`` evenly spaced points of the path, and both barriers.

    ``x_stats``: inputs to recompute batch-norm statistics on at each point (needed for a model with batch norm;
    ignored without). ``n_points`` >= 3.
    """
    check_choice("kind", kind, PATH_KINDS)
    n_points = check_positive_int("n_points", n_points, minimum=3)
    model_a, model_b = check_models([model_a, model_b], minimum=2, field="model_a, model_b")
    x, y = _check_data(x, y, "evaluation split")
    bn = has_batch_norm(model_a)
    if bn and x_stats is None:
        raise ConfigError("x_stats", None, "a model with batch norm needs inputs to recompute its statistics on")
    theta_a, theta_b = flat_parameters(model_a), flat_parameters(model_b)
    ctrl = None if control is None else torch.as_tensor(control, dtype=torch.float64)
    ts = torch.linspace(0.0, 1.0, n_points, dtype=torch.float64)
    points = path_points(kind, ts, theta_a, theta_b, ctrl)
    if bn:
        losses, errors = np.zeros(n_points), np.zeros(n_points)
        with progress_bar(n_points, f"{kind} path (BN reset)", enabled=progress, unit="point") as bar:
            for i, theta in enumerate(points):
                objective = Objective(recompute_bn_statistics(model_a, theta, x_stats), x, y, loss)
                losses[i], errors[i] = float(objective.loss()), objective.error()
                bar.update(1)
    else:
        objective = Objective(model_a, x, y, loss)
        loss_t, error_t = objective.losses(points)
        losses, errors = loss_t.numpy(), error_t.numpy()
    ts_np = ts.numpy()
    return PathResult(
        kind=kind,
        ts=ts_np,
        losses=losses,
        errors=errors,
        barriers=barriers(ts_np, losses, errors),
        control=np.zeros(0) if ctrl is None else ctrl.numpy(),
        training_loss=np.zeros(0) if training_loss is None else np.asarray(training_loss, dtype=np.float64),
        split=split,
        loss_name=str(loss),
        bn_reset=bn,
        distance=float(torch.linalg.norm(theta_b - theta_a)),
        length=float(torch.linalg.norm(points[1:] - points[:-1], dim=1).sum()),
    )


def train_curve(
    model_a: nn.Module,
    model_b: nn.Module,
    x_train: Tensor,
    y_train: Tensor,
    *,
    kind: str = "bezier",
    epochs: int = 20,
    lr: float = 0.01,
    batch_size: int = 32,
    loss: str = "cross_entropy",
    seed: int = 0,
    progress: bool = False,
) -> tuple[Tensor, np.ndarray]:
    """Train the control point θ_c of a ``bezier`` or ``polychain`` curve from θ_a to θ_b on (x_train, y_train).

    Returns θ_c and the mean minibatch loss of each epoch. The models are not changed; the global RNG is left as
    it was (t and the data order draw from a generator seeded by ``seed``).
    """
    check_choice("kind", kind, ("bezier", "polychain"))
    model_a, model_b = check_models([model_a, model_b], minimum=2, field="model_a, model_b")
    x_train, y_train = _check_data(x_train, y_train, "training split")
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    if not is_finite_number(lr) or lr <= 0:
        raise ConfigError("lr", lr, "expected a finite learning rate > 0")
    loss_fn = resolve_loss(loss)
    theta_a, theta_b = flat_parameters(model_a), flat_parameters(model_b)
    control = ((theta_a + theta_b) / 2).clone().requires_grad_(True)
    model = copy.deepcopy(model_a).to(torch.float64).train()
    for p in model.parameters():
        p.requires_grad_(False)  # only θ_c is trained
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    optimizer = torch.optim.Adam([control], lr=float(lr))
    generator = torch.Generator().manual_seed(int(seed))
    x_train = x_train.to(torch.float64) if x_train.is_floating_point() else x_train
    history = []
    n = x_train.shape[0]
    with (
        torch.random.fork_rng(devices=[]),
        progress_bar(epochs, f"{kind} curve", enabled=progress, unit="epoch") as bar,
    ):
        torch.manual_seed(int(seed))  # dropout in train mode
        for _ in range(epochs):
            order = torch.randperm(n, generator=generator)
            total = 0.0
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                t = torch.rand(1, generator=generator, dtype=torch.float64)
                theta = path_points(kind, t, theta_a, theta_b, control)[0]
                params = {
                    name: part.reshape(shape)
                    for name, part, shape in zip(names, torch.split(theta, sizes), shapes, strict=True)
                }
                value = loss_fn(functional_call(model, params, (x_train[idx],)), y_train[idx])
                optimizer.zero_grad()
                value.backward()
                optimizer.step()
                total += float(value.detach()) * idx.shape[0]
            history.append(total / n)
            bar.update(1)
    return control.detach().clone(), np.asarray(history)


def linear_path(model_a: nn.Module, model_b: nn.Module, x: Tensor, y: Tensor, **options: object) -> PathResult:
    """The straight line from A to B, evaluated as :func:`evaluate_path` does (options as there)."""
    return evaluate_path(model_a, model_b, x, y, kind="linear", **options)  # type: ignore[arg-type]


def curve_path(
    model_a: nn.Module,
    model_b: nn.Module,
    x_train: Tensor,
    y_train: Tensor,
    x: Tensor,
    y: Tensor,
    *,
    kind: str = "bezier",
    epochs: int = 20,
    lr: float = 0.01,
    batch_size: int = 32,
    n_points: int = DEFAULT_CURVE_POINTS,
    x_stats: Tensor | None = None,
    loss: str = "cross_entropy",
    split: str = "test",
    seed: int = 0,
    progress: bool = False,
) -> PathResult:
    """Train a ``bezier`` or ``polychain`` curve on (x_train, y_train) and evaluate it on (x, y)."""
    control, history = train_curve(
        model_a,
        model_b,
        x_train,
        y_train,
        kind=kind,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        loss=loss,
        seed=seed,
        progress=progress,
    )
    return evaluate_path(
        model_a,
        model_b,
        x,
        y,
        kind=kind,
        control=control,
        n_points=n_points,
        x_stats=x_stats,
        loss=loss,
        split=split,
        training_loss=history,
        progress=progress,
    )
