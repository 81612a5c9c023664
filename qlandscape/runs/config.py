"""Run configuration: one flat, validated record of everything a run depends on.

A run is a pure function of its config. The config is normalised (defaults filled in, tuples as lists) and hashed;
the short hash names the run directory, so the same config always lands in the same place.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from qlandscape.core.errors import ConfigError, check_choice
from qlandscape.core.io import read_toml

MODEL_KINDS = ("qnn", "mlp", "cnn")


@dataclass(frozen=True)
class RunConfig:
    """Everything one run depends on. See README.md for each field."""

    # model
    model: str = "qnn"
    # data
    dataset: str = "digits"
    classes: tuple[int, ...] | None = (0, 1)
    angle_range: tuple[float, float] = (0.0, math.pi)
    test_fraction: float = 0.25
    pool: int = 1
    max_train: int | None = None
    max_test: int | None = None
    data_seed: int = 0
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
    # training
    optimizer: str = "adam"
    lr: float = 0.05
    epochs: int = 10
    batch_size: int = 32
    weight_decay: float = 0.0
    momentum: float = 0.0
    schedule: str = "constant"
    schedule_period: float | None = None
    schedule_unit: str = "step"
    loss: str = "cross_entropy"
    record_every: int | None = None
    seed: int = 0
    # metrics to compute after training, e.g. {"hessian": {"top_k": 3}, "landscape": {...}}
    metrics: dict = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # A whole number in a float field is the same setting as its float (lr = 1 is lr = 1.0): store it as a
        # float so that both spellings give one run id. Booleans are left for validate() to reject.
        for name in _FLOAT_FIELDS:
            if _is_int(getattr(self, name)):
                object.__setattr__(self, name, float(getattr(self, name)))
        if isinstance(self.angle_range, (list, tuple)):
            object.__setattr__(self, "angle_range", tuple(float(v) if _is_int(v) else v for v in self.angle_range))

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | None = None) -> "RunConfig":
        """Build and validate a config from a dict; unknown fields and bad values raise :class:`ConfigError`."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise ConfigError(key, value, f"is not a run field; expected one of {', '.join(known)}",
                                  source=source)
            if isinstance(value, list):
                value = tuple(value)
            kwargs[key] = value
        config = cls(**kwargs)
        config.validate(source)
        return config

    def validate(self, source: str | None = None) -> "RunConfig":
        """Cheap checks of every field, before any data is loaded or a model built."""
        check_choice("model", self.model, MODEL_KINDS, source=source)
        ints = {"qubits": 1, "layers": 0, "patch_size": 1, "epochs": 0, "batch_size": 1, "pool": 1, "width": 1,
                "depth": 0, "seed": 0, "data_seed": 0}
        for name, low in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(name, value, f"expected an integer >= {low}", source=source)
        for name in ("stride", "patches", "max_train", "max_test", "record_every"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(name, value, "expected a positive integer or nothing", source=source)
        # Types first, so that a string or a boolean where a number belongs is named here rather than surfacing
        # as a TypeError (or, for booleans, as a silently truthy "false") once data and model are built.
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if name == "schedule_period" and value is None:
                continue
            if not _is_number(value) or not math.isfinite(value):
                raise ConfigError(name, value, "expected a finite number", source=source)
        for name in ("positional_bias", "batch_norm"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, getattr(self, name), "expected true or false", source=source)
        for name in ("dataset", "ansatz", "backend", "activation"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(name, getattr(self, name), "expected a string", source=source)
        for name, kind, what in (("angle_range", _is_number, "numbers"), ("classes", _is_int, "integers"),
                                 ("channels", _is_int, "integers"), ("measure_qubits", _is_int, "integers"),
                                 ("observables", lambda v: isinstance(v, str), "strings")):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (list, tuple)) and all(kind(v) for v in value)):
                raise ConfigError(name, value, f"expected a list of {what}", source=source)
        if self.stride is not None and self.patches is not None:
            raise ConfigError("patches", self.patches, "give either stride or patches, not both", source=source)
        if not 0 < self.test_fraction < 1:
            raise ConfigError("test_fraction", self.test_fraction, "expected a number in (0, 1)", source=source)
        if len(self.angle_range) != 2 or not self.angle_range[0] < self.angle_range[1]:
            raise ConfigError("angle_range", self.angle_range, "expected [low, high] with low < high", source=source)
        if not self.lr > 0:
            raise ConfigError("lr", self.lr, "expected a finite positive number", source=source)
        if not self.output_scale > 0:
            raise ConfigError("output_scale", self.output_scale, "expected a finite positive number", source=source)
        for name in ("weight_decay", "momentum"):
            if getattr(self, name) < 0:
                raise ConfigError(name, getattr(self, name), "expected a finite number >= 0", source=source)
        if self.schedule_period is not None and not self.schedule_period > 0:
            raise ConfigError("schedule_period", self.schedule_period, "expected a positive number of epochs",
                              source=source)
        if self.classes is not None and len(self.classes) < 2:
            raise ConfigError("classes", self.classes, "expected at least two classes (or nothing for all)",
                              source=source)
        if not 0 <= self.dropout < 1:
            raise ConfigError("dropout", self.dropout, "expected a probability in [0, 1)", source=source)
        check_choice("optimizer", self.optimizer, ("adam", "sgd"), source=source)
        check_choice("schedule", self.schedule, ("constant", "cosine", "cosine_restarts"), source=source)
        check_choice("schedule_unit", self.schedule_unit, ("step", "epoch"), source=source)
        check_choice("loss", self.loss, ("cross_entropy", "mse"), source=source)
        check_choice("aggregation", self.aggregation, ("mean", "linear"), source=source)
        # syntax only: availability is checked where the model is built, on the machine that runs it (a sweep
        # may be written on a CPU node for GPU workers)
        if not (isinstance(self.device, str) and re.fullmatch(r"cpu|auto|cuda(:\d+)?", self.device)):
            raise ConfigError("device", self.device, "expected 'cpu', 'cuda', 'cuda:N' or 'auto'", source=source)
        if self.device != "cpu" and self.model != "qnn":
            raise ConfigError("device", self.device, "the device option moves the QNN engine's simulation; "
                              "classical models run on the CPU here", source=source)
        if not isinstance(self.metrics, dict):
            raise ConfigError("metrics", self.metrics, "expected a table of metric settings", source=source)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples as lists)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def replace(self, **changes: Any) -> "RunConfig":
        """A validated copy with some fields changed."""
        return RunConfig.from_dict({**self.to_dict(), **changes})

    def run_id(self) -> str:
        """Short hash of the normalised config: the run directory's name. Fields added after the first release
        are left out at their default, so existing run directories keep their ids (and sweeps still resume)."""
        fields = {k: v for k, v in self.to_dict().items() if LATER_FIELDS.get(k, _UNSET) != v}
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


# Stricter than errors.is_integer / is_finite_number: a config is hashed as JSON (run_id) and written to run.json,
# which numpy scalars are not, so only Python numbers are allowed here.
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_FLOAT_FIELDS = ("test_fraction", "output_scale", "encoding_scale", "dropout", "lr", "weight_decay", "momentum",
                 "schedule_period")
_UNSET = object()
LATER_FIELDS = {"schedule_unit": "step", "device": "cpu"}  # field -> default that the run id ignores


def load_config(path: str | Path) -> RunConfig:
    """Read a run config from TOML: top-level fields (or a ``[run]`` table), validated."""
    data = read_toml(path, "config")
    data = data.get("run", data)
    return RunConfig.from_dict(data, source=str(path))


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key=value`` from the command line; the value is read as TOML (``lr=0.1``, ``classes=[0,1]``)."""
    if "=" not in text:
        raise ConfigError("--set", text, "expected key=value")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip(), value
