"""Run configuration: the data, model and training settings of a run and the metrics computed after training.

A :class:`RunConfig` is composed of a :class:`~qlandscape.data.config.DataConfig`, a
:class:`~qlandscape.models.config.ModelConfig` and a :class:`~qlandscape.train.trainer.TrainConfig` (each validates
its own settings) plus the ``metrics`` table (checked against :mod:`qlandscape.runs.registry`). Written down it is
flat: one namespace of setting names, unique across the three parts, as in a TOML config, ``--set key=value`` and
``run.json``. The flat dict is normalised (defaults filled in, tuples as lists) and hashed; the short hash names the
run directory, so the same config always lands in the same place.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qlandscape.core.errors import ConfigError
from qlandscape.core.io import read_toml
from qlandscape.data.config import DataConfig
from qlandscape.models.config import ModelConfig
from qlandscape.runs.registry import check_metrics
from qlandscape.runs.values import parse_value
from qlandscape.train.adversarial import AdversarialTraining, adversarial_training
from qlandscape.train.trainer import TrainConfig

__all__ = [
    "FIELDS",
    "OPTIONAL_FIELDS",
    "SETTINGS",
    "PART_OF",
    "LATER_FIELDS",
    "RunConfig",
    "load_config",
    "parse_override",
    "with_overrides",
]

_TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
# The flat layout, in the order run.json and runs.csv have always had: the model kind, the data, the rest of the
# model, the training (seed last) and the metrics.
FIELDS: tuple[str, ...] = (
    "model",
    *DataConfig.field_names(),
    *ModelConfig.field_names()[1:],
    *(name for name in _TRAIN_FIELDS if name != "seed"),
    "seed",
    "metrics",
)
# Table settings written into run.json (and so hashed into the run id) only when set: a config without them keeps
# the run.json and the id it has always had. adversarial: the adversarial training (qlandscape.train.adversarial).
OPTIONAL_FIELDS: tuple[str, ...] = ("adversarial",)
# every setting a run config file may hold, optional ones included (sweep axes, report grouping)
SETTINGS: tuple[str, ...] = (*FIELDS[:-1], *OPTIONAL_FIELDS, FIELDS[-1])
# setting -> the part of a RunConfig that holds it
PART_OF: dict[str, str] = {
    **dict.fromkeys(DataConfig.field_names(), "data"),
    **dict.fromkeys(ModelConfig.field_names(), "network"),
    **dict.fromkeys(_TRAIN_FIELDS, "training"),
}
# A whole number in one of these is stored as a float (lr = 1 is lr = 1.0), so that both spellings give one run id.
_FLOAT_FIELDS = (
    "test_fraction",
    "output_scale",
    "encoding_scale",
    "dropout",
    "lr",
    "weight_decay",
    "momentum",
    "schedule_period",
)
_UNSET = object()
# field -> default that the run id ignores (and that a runs table fills in for run.json files without it)
LATER_FIELDS = {"schedule_unit": "step", "device": "cpu", "adversarial": None}


@dataclass(frozen=True, init=False)
class RunConfig:
    """Everything one run depends on: ``data``, ``network`` and ``training`` settings and the ``metrics`` table.

    Build it from its parts, ``RunConfig(data=DataConfig(...), network=ModelConfig(...), training=...)``, or from
    flat setting names, ``RunConfig(lr=0.1, qubits=3)`` (the two mix: flat names override the parts). A flat name
    also reads the setting, ``config.lr`` being ``config.training.lr``: the flat names are the config's stable
    vocabulary (files, overrides, run ids), so they stay, without a deprecation. Construction does not validate;
    :meth:`from_dict`, :meth:`replace` and :meth:`validate` do. See README.md for each setting.

    ``adversarial`` (None: standard training) is the adversarial training setting, an
    :class:`~qlandscape.train.adversarial.AdversarialTraining` (a table of its settings is converted; ``mix = 0``
    is standard training): one of :data:`OPTIONAL_FIELDS`, in ``run.json`` and the run id only when set.
    """

    data: DataConfig
    network: ModelConfig
    training: TrainConfig
    # metrics to compute after training, e.g. {"hessian": {"top_k": 3}, "landscape": {...}}
    metrics: dict = field(hash=False)
    adversarial: AdversarialTraining | None

    def __init__(
        self,
        data: DataConfig | None = None,
        network: ModelConfig | None = None,
        training: TrainConfig | None = None,
        metrics: dict | None = None,
        adversarial: AdversarialTraining | Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        parts: dict[str, Any] = {
            "data": DataConfig() if data is None else data,
            "network": ModelConfig() if network is None else network,
            "training": TrainConfig() if training is None else training,
        }
        changes: dict[str, dict[str, Any]] = {part: {} for part in parts}
        for name, value in settings.items():
            if name not in PART_OF:
                raise TypeError(f"RunConfig() got an unexpected keyword argument {name!r}")
            changes[PART_OF[name]][name] = value
        for part, current in parts.items():
            updates = changes[part]
            # Booleans are left for validation to reject.
            for name in _FLOAT_FIELDS:
                if PART_OF[name] == part and _is_int(updates.get(name, getattr(current, name))):
                    updates[name] = float(updates.get(name, getattr(current, name)))
            if part == "data":
                span = updates.get("angle_range", current.angle_range)
                if isinstance(span, (list, tuple)) and any(_is_int(v) for v in span):
                    updates["angle_range"] = type(span)(float(v) if _is_int(v) else v for v in span)
            object.__setattr__(self, part, dataclasses.replace(current, **updates) if updates else current)
        object.__setattr__(self, "metrics", {} if metrics is None else metrics)
        # a table's unknown keys fail here; its values when the config is validated
        object.__setattr__(self, "adversarial", adversarial_training(adversarial, validate=False))

    def __getattr__(self, name: str) -> Any:
        # Called only for names that are not attributes: the flat setting names.
        part = PART_OF.get(name)
        if part is None:
            raise AttributeError(f"'RunConfig' object has no attribute {name!r}")
        return getattr(object.__getattribute__(self, part), name)

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """The flat setting names (and ``metrics``), in the order of ``run.json``."""
        return FIELDS

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], source: str | None = None, *, check_metric_names: bool = True
    ) -> RunConfig:
        """Build and validate a config from a flat dict; unknown fields and bad values raise :class:`ConfigError`.
        ``check_metric_names=False`` leaves the ``metrics`` table as it is (what a finished run recorded).

        A dict without ``classes`` means every class of the dataset (``classes = None``), as a config file that
        leaves it out; the ``RunConfig()`` defaults themselves train classes 0 and 1 (the binary digits task,
        which the default four-output QNN can classify), and hash as they always have."""
        if not isinstance(data, Mapping):
            raise ConfigError("run", data, "expected a table of run settings", source=source)
        kwargs: dict[str, Any] = {"classes": None}
        for key, value in data.items():
            if key not in SETTINGS:
                raise ConfigError(
                    key, value, f"is not a run field; expected one of {', '.join(SETTINGS)}", source=source
                )
            kwargs[key] = tuple(value) if isinstance(value, list) else value
        try:
            config = cls(**kwargs)
        except ConfigError as exc:  # a table setting (adversarial) with an unknown key
            raise ConfigError(exc.field, exc.value, exc.allowed, source=source) from None
        config.validate(source, check_metric_names=check_metric_names)
        return config

    def validate(self, source: str | None = None, *, check_metric_names: bool = True) -> RunConfig:
        """Cheap checks of every setting, before any data is loaded or a model built."""
        # A config is hashed as JSON (run_id) and written to run.json, which numpy scalars are not.
        for name, value in self.to_dict().items():
            # the metrics and the optional table settings are tables, checked by their own parts
            if name != "metrics" and name not in OPTIONAL_FIELDS and not _is_plain(value):
                raise ConfigError(
                    name,
                    value,
                    "expected a number, a string, true/false, nothing or a list of them "
                    "(a run config is written as JSON)",
                    source=source,
                )
        self.data.validate(source)
        self.network.validate(source)
        try:
            self.training.validate()
        except ConfigError as exc:
            raise ConfigError(exc.field, exc.value, exc.allowed, source=source) from None
        if self.adversarial is not None:
            try:
                self.adversarial.validate()
            except ConfigError as exc:
                raise ConfigError(exc.field, exc.value, exc.allowed, source=source) from None
        if not isinstance(self.metrics, dict):
            raise ConfigError("metrics", self.metrics, "expected a table of metric settings", source=source)
        if check_metric_names:
            check_metrics(self.metrics, source)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The flat, JSON-able dict (tuples as lists), in the order of :meth:`fields`; an optional table setting
        (``adversarial``) that is set comes just before ``metrics``."""
        out = {}
        for name in FIELDS:
            if name == "metrics" and self.adversarial is not None:
                out["adversarial"] = self.adversarial.to_dict()
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    def replace(self, **changes: Any) -> RunConfig:
        """A validated copy with some flat settings changed."""
        return RunConfig.from_dict({**self.to_dict(), **changes})

    def run_id(self) -> str:
        """Short hash of the normalised flat config: the run directory's name. Fields added after the first
        release are left out at their default, so existing run directories keep their ids (and sweeps still
        resume)."""
        flat = {k: v for k, v in self.to_dict().items() if LATER_FIELDS.get(k, _UNSET) != v}
        canonical = json.dumps(flat, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_plain(value: Any) -> bool:
    scalar = (type(None), bool, int, float, str)
    return isinstance(value, scalar) or (isinstance(value, list) and all(isinstance(v, scalar) for v in value))


def load_config(path: str | Path) -> RunConfig:
    """Read a run config from TOML: top-level fields or a ``[run]`` table (not both), validated."""
    data = read_toml(path, "config")
    if "run" in data:
        table = data["run"]
        if not isinstance(table, dict):
            raise ConfigError("run", table, "expected a [run] table of run settings", source=str(path))
        others = sorted(k for k in data if k != "run")
        if others:
            raise ConfigError(
                "top-level keys",
                others,
                "a [run] table holds the settings, so keys beside it would be ignored; put every setting inside "
                "[run] (metric tables as [run.metrics.NAME]) or drop the [run] header",
                source=str(path),
            )
        data = table
    return RunConfig.from_dict(data, source=str(path))


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key=value`` from the command line, the value read by :func:`parse_value` (``lr=0.1``,
    ``classes=[0,1]``, ``classes=0,1``); the key may be a metric's setting, ``metrics.landscape.grid``."""
    if "=" not in text:
        raise ConfigError("--set", text, "expected key=value (e.g. lr=0.1, classes=0,1 or metrics.landscape.grid=31)")
    key, raw = text.split("=", 1)
    return key.strip(), parse_value(raw.strip())


def with_overrides(base: RunConfig, changes: Iterable[tuple[str, Any]]) -> RunConfig:
    """``base`` with ``changes`` applied in order, validated. A key is a run setting (``lr``), the whole ``metrics``
    table, one metric's table (``metrics.landscape``) or one metric setting (``metrics.landscape.grid``); a metric
    the config does not compute yet is added with that setting."""
    flat = base.to_dict()
    metrics = copy.deepcopy(flat.pop("metrics"))
    for key, value in changes:
        parts = key.split(".")
        if parts == ["metrics"]:
            if not isinstance(value, dict):
                raise ConfigError("metrics", value, "expected a table of metric settings, e.g. {hessian={top_k=3}}")
            metrics = copy.deepcopy(value)
        elif len(parts) == 1:
            flat[key] = value
        elif parts[0] == "metrics" and len(parts) in (2, 3) and all(parts[1:]):
            name = parts[1]
            if len(parts) == 2:
                metrics[name] = value
                continue
            table = metrics.setdefault(name, {})
            if not isinstance(table, dict):
                raise ConfigError(f"metrics.{name}", table, "expected a table of settings")
            table[parts[2]] = value
        else:
            raise ConfigError(
                key, value, "expected a run setting (lr), metrics, metrics.<metric> or metrics.<metric>.<setting>"
            )
    return RunConfig.from_dict({**flat, "metrics": metrics})
