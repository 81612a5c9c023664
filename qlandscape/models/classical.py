"""Classical baselines: a fully connected :class:`MLP` and a small :class:`CNN`, float64 and seeded.

Both take images ``(B, H, W)`` (or ``(B, C, H, W)``) and return class logits, so every metric that works for the
patch QNN works for them unchanged.

Batch norm and metrics: an :class:`~qlandscape.core.objective.Objective` evaluates in eval mode, i.e. with the
batch-norm running statistics recorded during training. Those statistics belong to one parameter vector; at any
other point (an interpolated point between two networks, a point of a landscape slice) they are stale, which
inflates the measured loss. :func:`recompute_bn_statistics` gives a copy of the model whose statistics are
recomputed at θ on some inputs; :func:`qlandscape.metrics.landscape.connectivity.interpolate_with_bn_reset` uses
it at every point of a straight line.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from qlandscape.core.errors import ConfigError, check_choice

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "CNN",
    "build_classical",
    "batch_norm_layers",
    "has_batch_norm",
    "recompute_bn_statistics",
]

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def _activation(name: str) -> nn.Module:
    check_choice("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]()


def _in_shape(in_shape: Sequence[int]) -> tuple[int, int, int]:
    """(C, H, W) from (H, W) or (C, H, W)."""
    shape = tuple(int(s) for s in in_shape)
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ConfigError("image_shape", tuple(in_shape), "expected (H, W) or (C, H, W) with positive sizes")
    return (1, *shape) if len(shape) == 2 else shape  # type: ignore[return-value]


def _check_dropout(dropout: float) -> None:
    if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        raise ConfigError("dropout", dropout, "expected a probability in [0, 1)")


def _check_classes(n_classes: int) -> None:
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ConfigError("n_classes", n_classes, "expected an integer >= 2")


class _Seeded(nn.Module):
    """Shared helpers: parameter count and the input-shape check."""

    in_shape: tuple[int, int, int]

    @property
    def n_params(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _as_chw(self, x: Tensor) -> Tensor:
        c, h, w = self.in_shape
        if x.ndim == 3 and c == 1:
            x = x.unsqueeze(1)
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, h, w):
            expected = f"(B, {h}, {w}) or (B, 1, {h}, {w})" if c == 1 else f"(B, {c}, {h}, {w})"
            raise ConfigError("input shape", tuple(x.shape), f"expected {expected}")
        return x


class MLP(_Seeded):
    """Flatten the image, ``depth`` hidden layers of ``width`` units with ``activation``, then a linear head.

    Args:
        in_shape: (H, W) or (C, H, W) of one input.
        n_classes: number of outputs (logits).
        width, depth: hidden layer size and count (depth 0: a linear classifier).
        activation: ``"relu"``, ``"tanh"`` or ``"gelu"``.
        dropout: dropout probability after every hidden activation (active only in train mode).
        seed: seeds the initialisation through a local RNG context (the global RNG state is left as it was).
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        n_classes: int,
        width: int = 32,
        depth: int = 2,
        activation: str = "relu",
        dropout: float = 0.0,
        *,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.in_shape = _in_shape(in_shape)
        _check_classes(n_classes)
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ConfigError("width", width, "expected an integer >= 1")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise ConfigError("depth", depth, "expected an integer >= 0")
        check_choice("activation", activation, ACTIVATIONS)
        _check_dropout(dropout)
        self.width, self.depth, self.activation, self.dropout = width, depth, activation, float(dropout)
        n_in = math.prod(self.in_shape)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            layers: list[nn.Module] = []
            for _ in range(depth):
                layers += [nn.Linear(n_in, width, dtype=torch.float64), _activation(activation)]
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
                n_in = width
            layers.append(nn.Linear(n_in, n_classes, dtype=torch.float64))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self._as_chw(x)
        return self.net(x.reshape(x.shape[0], -1))


class CNN(_Seeded):
    """Conv blocks (3x3 conv, padding 1 -> optional BatchNorm2d -> activation -> 2x2 max pool while the spatial
    size is at least 2x2), then dropout and a linear head on the flattened feature map.

    Args:
        in_shape: (H, W) or (C, H, W); inputs ``(B, H, W)`` get a channel axis when C = 1.
        n_classes: number of outputs (logits).
        channels: output channels of each conv block (at least one block).
        batch_norm: add ``BatchNorm2d`` after each convolution.
        dropout: dropout before the head (active only in train mode).
        activation: ``"relu"``, ``"tanh"`` or ``"gelu"``.
        seed: seeds the initialisation through a local RNG context.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        n_classes: int,
        channels: Sequence[int] = (8, 16),
        batch_norm: bool = False,
        dropout: float = 0.0,
        activation: str = "relu",
        *,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.in_shape = _in_shape(in_shape)
        _check_classes(n_classes)
        channels = tuple(channels)
        if not channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels):
            raise ConfigError("channels", channels, "expected a non-empty list of positive integers")
        check_choice("activation", activation, ACTIVATIONS)
        _check_dropout(dropout)
        self.channels, self.batch_norm = channels, bool(batch_norm)
        self.dropout, self.activation = float(dropout), activation
        c_in, h, w = self.in_shape
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            blocks: list[nn.Module] = []
            for c in channels:
                blocks.append(nn.Conv2d(c_in, c, 3, padding=1, dtype=torch.float64))
                if batch_norm:
                    blocks.append(nn.BatchNorm2d(c, dtype=torch.float64))
                blocks.append(_activation(activation))
                if h >= 2 and w >= 2:  # pool only while there is something left to pool
                    blocks.append(nn.MaxPool2d(2))
                    h, w = h // 2, w // 2
                c_in = c
            self.features = nn.Sequential(*blocks)
            self.head = nn.Sequential(
                nn.Flatten(),
                nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
                nn.Linear(c_in * h * w, n_classes, dtype=torch.float64),
            )
        self.feature_shape = (c_in, h, w)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(self._as_chw(x)))


def build_classical(config: Any, image_shape: Sequence[int], n_classes: int, *, seed: int | None = None) -> nn.Module:
    """The MLP or CNN a model config describes (``model = "mlp"`` or ``"cnn"``, with its ``width``, ``depth``,
    ``activation``, ``channels``, ``batch_norm`` and ``dropout``); ``seed`` draws the initial parameters (default:
    the config's own ``seed``, which a run config has)."""
    check_choice("model", config.model, ("mlp", "cnn"))
    seed = config.seed if seed is None else seed
    if config.model == "mlp":
        return MLP(
            image_shape,
            n_classes,
            width=config.width,
            depth=config.depth,
            activation=config.activation,
            dropout=config.dropout,
            seed=seed,
        )
    return CNN(
        image_shape,
        n_classes,
        channels=tuple(config.channels),
        batch_norm=config.batch_norm,
        dropout=config.dropout,
        activation=config.activation,
        seed=seed,
    )


# ------------------------------------------------------------------------------------------------- batch norm
def batch_norm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The model's batch-norm layers that track running statistics."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def has_batch_norm(model: nn.Module) -> bool:
    """Whether ``model`` has batch-norm layers with running statistics."""
    return bool(batch_norm_layers(model))


def recompute_bn_statistics(
    model: nn.Module, theta: Tensor | np.ndarray | None, x: Tensor, *, batch_size: int | None = None
) -> nn.Module:
    """A float64 copy of ``model`` with parameters θ and batch-norm running statistics recomputed on ``x``.

    The statistics are reset and accumulated in one pass over ``x`` without gradients, as the average of the
    batches' statistics weighted by batch size (one batch: exactly the batch statistics of ``x``; the variance
    is the unbiased batch variance, as ``BatchNorm`` records it). Only the batch-norm layers are put in
    train mode, so dropout stays off while the statistics are gathered. The copy is returned in eval mode with the
    original momenta restored; the caller's model is not touched. ``theta=None`` keeps the model's parameters.
    """
    x = torch.as_tensor(x)
    if x.shape[0] == 0:
        raise ConfigError("x", tuple(x.shape), "expected at least one input for the statistics")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError("batch_size", batch_size, "expected a positive integer or None")
    out = copy.deepcopy(model).to(torch.float64)
    if theta is not None:
        theta = torch.as_tensor(theta, dtype=torch.float64)
        params = list(out.parameters())
        n = sum(p.numel() for p in params)
        if theta.shape != (n,):
            raise ConfigError("theta", tuple(theta.shape), f"expected a flat vector of shape ({n},)")
        with torch.no_grad():
            for p, value in zip(params, torch.split(theta, [p.numel() for p in params]), strict=True):
                p.copy_(value.reshape(p.shape))
    out.eval()
    layers = batch_norm_layers(out)
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.train()
    x = x.to(torch.float64) if x.is_floating_point() else x
    size = x.shape[0] if batch_size is None else batch_size
    seen = 0
    with torch.no_grad():
        for start in range(0, x.shape[0], size):
            batch = x[start : start + size]
            # momentum b / (seen + b) makes the running values the sample-weighted mean of the batch statistics
            for m in layers:
                m.momentum = batch.shape[0] / (seen + batch.shape[0])
            out(batch)
            seen += batch.shape[0]
    for m, momentum in zip(layers, momenta, strict=True):
        m.momentum = momentum
    return out.eval()
