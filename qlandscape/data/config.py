"""Data settings of a run: the dataset, its classes, how pixels become angles, the split and its sizes."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from qlandscape.core.errors import ConfigError, is_finite_number, is_integer
from qlandscape.data.datasets import Dataset, load_dataset

__all__ = ["DataConfig"]


@dataclass(frozen=True)
class DataConfig:
    """Which data a run trains and evaluates on; :meth:`load` gives the :class:`Dataset`.

    ``dataset``: ``digits``, ``mnist:DIR`` or a ``.npz`` path; ``classes``: the labels kept (None: all; the
    default is 0 and 1, and a config file that leaves ``classes`` out means all, see ``RunConfig.from_dict``);
    ``angle_range``: pixels are scaled linearly onto it; ``pool``: average pooling factor; ``max_train`` /
    ``max_test``: caps on the split sizes; ``data_seed``: the subset and split draw.
    """

    dataset: str = "digits"
    classes: tuple[int, ...] | None = (0, 1)
    angle_range: tuple[float, float] = (0.0, math.pi)
    test_fraction: float = 0.25
    pool: int = 1
    max_train: int | None = None
    max_test: int | None = None
    data_seed: int = 0

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The settings, in declaration order."""
        return tuple(f.name for f in fields(cls))

    def validate(self, source: str | None = None) -> DataConfig:
        """Cheap checks of every setting, before any file is read; a bad value raises :class:`ConfigError`."""
        if not isinstance(self.dataset, str):
            raise ConfigError("dataset", self.dataset, "expected a string", source=source)
        for name, low in (("pool", 1), ("data_seed", 0)):
            value = getattr(self, name)
            if not is_integer(value) or value < low:
                raise ConfigError(name, value, f"expected an integer >= {low}", source=source)
        for name in ("max_train", "max_test"):
            value = getattr(self, name)
            if value is not None and (not is_integer(value) or value < 1):
                raise ConfigError(name, value, "expected a positive integer or nothing", source=source)
        if not is_finite_number(self.test_fraction):
            raise ConfigError("test_fraction", self.test_fraction, "expected a finite number", source=source)
        if not 0 < self.test_fraction < 1:
            raise ConfigError("test_fraction", self.test_fraction, "expected a number in (0, 1)", source=source)
        if not _is_list_of(self.angle_range, is_finite_number):
            raise ConfigError("angle_range", self.angle_range, "expected a list of numbers", source=source)
        if len(self.angle_range) != 2 or not self.angle_range[0] < self.angle_range[1]:
            raise ConfigError("angle_range", self.angle_range, "expected [low, high] with low < high", source=source)
        if self.classes is not None:
            if not _is_list_of(self.classes, is_integer):
                raise ConfigError("classes", self.classes, "expected a list of integers", source=source)
            if len(self.classes) < 2:
                raise ConfigError(
                    "classes", self.classes, "expected at least two classes (or nothing for all)", source=source
                )
        return self

    def describe(self, dataset: Dataset) -> str:
        """Which classes ``dataset`` (loaded from these settings) holds, for a command's output: all of them when
        ``classes`` is None, said so, since the labels were not listed."""
        labels = ", ".join(map(str, dataset.classes))
        if self.classes is None:
            return f"{dataset.name}, all {dataset.n_classes} classes ({labels}): the config lists no classes"
        return f"{dataset.name}, classes {labels}"

    def load(self) -> Dataset:
        """Load, subset, pool, scale and split the dataset these settings name."""
        return load_dataset(
            self.dataset,
            classes=self.classes,
            angle_range=(self.angle_range[0], self.angle_range[1]),
            test_fraction=self.test_fraction,
            seed=self.data_seed,
            pool=self.pool,
            max_train=self.max_train,
            max_test=self.max_test,
        )


def _is_list_of(value: Any, kind: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(kind(v) for v in value)
