"""Model settings of a run (the patch QNN or a classical net) and :func:`build_model`, which builds that model."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

from torch import nn

from qlandscape.core.errors import ConfigError, check_choice, is_finite_number, is_integer
from qlandscape.models.classical import build_classical
from qlandscape.models.qnn import PatchQNN

__all__ = ["MODEL_KINDS", "AGGREGATIONS", "ModelConfig", "build_model", "count_parameters"]

MODEL_KINDS = ("qnn", "mlp", "cnn")
AGGREGATIONS = ("mean", "linear")


@dataclass(frozen=True)
class ModelConfig:
    """Which network a run trains. ``model`` picks the kind; the QNN settings apply to ``qnn``, the classical ones
    to ``mlp`` and ``cnn`` (the others are kept, so that a sweep may switch kinds, and ignored)."""

    model: str = "qnn"
    # patch QNN
    ansatz: str = "hea"
    qubits: int = 4
    layers: int = 2
    patch_size: int = 4
    stride: int | None = None
    patches: int | None = None
    backend: str = "torch"
    device: str = "cpu"  # where the engine simulates: "cpu" | "cuda" | "cuda:N" | "auto"
    aggregation: str = "mean"
    output_scale: float = 5.0
    observables: tuple[str, ...] | None = None
    measure_qubits: tuple[int, ...] | None = None
    encoding_scale: float = 1.0
    positional_bias: bool = False
    # classical nets
    width: int = 32
    depth: int = 2
    activation: str = "relu"
    channels: tuple[int, ...] = (8, 16)
    batch_norm: bool = False
    dropout: float = 0.0

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The settings, in declaration order."""
        return tuple(f.name for f in fields(cls))

    def validate(self, source: str | None = None) -> ModelConfig:
        """Cheap checks of every setting, before a model is built; a bad value raises :class:`ConfigError`.

        The ansatz and the backend are checked where the model is built (a sweep may be written on a machine
        that lacks a backend its workers have)."""
        check_choice("model", self.model, MODEL_KINDS, source=source)
        for name, low in (("qubits", 1), ("layers", 0), ("patch_size", 1), ("width", 1), ("depth", 0)):
            value = getattr(self, name)
            if not is_integer(value) or value < low:
                raise ConfigError(name, value, f"expected an integer >= {low}", source=source)
        for name in ("stride", "patches"):
            value = getattr(self, name)
            if value is not None and (not is_integer(value) or value < 1):
                raise ConfigError(name, value, "expected a positive integer or nothing", source=source)
        for name in ("output_scale", "encoding_scale", "dropout"):
            if not is_finite_number(getattr(self, name)):
                raise ConfigError(name, getattr(self, name), "expected a finite number", source=source)
        for name in ("positional_bias", "batch_norm"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, getattr(self, name), "expected true or false", source=source)
        for name in ("ansatz", "backend", "activation"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(name, getattr(self, name), "expected a string", source=source)
        for name, kind, what in (
            ("channels", is_integer, "integers"),
            ("measure_qubits", is_integer, "integers"),
            ("observables", lambda v: isinstance(v, str), "strings"),
        ):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (list, tuple)) and all(kind(v) for v in value)):
                raise ConfigError(name, value, f"expected a list of {what}", source=source)
        if self.stride is not None and self.patches is not None:
            raise ConfigError("patches", self.patches, "give either stride or patches, not both", source=source)
        if not self.output_scale > 0:
            raise ConfigError("output_scale", self.output_scale, "expected a finite positive number", source=source)
        if not 0 <= self.dropout < 1:
            raise ConfigError("dropout", self.dropout, "expected a probability in [0, 1)", source=source)
        check_choice("aggregation", self.aggregation, AGGREGATIONS, source=source)
        # syntax only: availability is checked where the model is built, on the machine that runs it (a sweep
        # may be written on a CPU node for GPU workers)
        if not (isinstance(self.device, str) and re.fullmatch(r"cpu|auto|cuda(:\d+)?", self.device)):
            raise ConfigError("device", self.device, "expected 'cpu', 'cuda', 'cuda:N' or 'auto'", source=source)
        if self.device != "cpu" and self.model != "qnn":
            raise ConfigError(
                "device",
                self.device,
                "the device option moves the QNN engine's simulation; classical models run on the CPU here",
                source=source,
            )
        return self


def build_model(config: ModelConfig, image_shape: tuple[int, int], n_classes: int, *, seed: int) -> nn.Module:
    """The ``nn.Module`` ``config`` describes for images of ``image_shape`` and ``n_classes`` classes; ``seed``
    draws its initial parameters."""
    check_choice("model", config.model, MODEL_KINDS)
    if config.model == "qnn":
        return PatchQNN(
            image_shape,
            n_classes,
            ansatz=config.ansatz,
            n_qubits=config.qubits,
            n_layers=config.layers,
            patch_size=config.patch_size,
            stride=config.stride,
            n_patches=config.patches,
            backend=config.backend,
            device=config.device,
            aggregation=config.aggregation,
            output_scale=config.output_scale,
            observables=config.observables,
            measure_qubits=config.measure_qubits,
            encoding_scale=config.encoding_scale,
            positional_bias=config.positional_bias,
            seed=seed,
        )
    return build_classical(config, image_shape, n_classes, seed=seed)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
