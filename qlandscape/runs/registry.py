"""The run metrics: the built-in ones (hessian, landscape, ntk), registered here, and any a user registers.

A run config's ``[metrics.<name>]`` table, the ``qlandscape <name> RUN_DIR`` subcommand and the report's summary
all look metrics up here. Adding a metric is one :class:`~qlandscape.runs.metric_spec.MetricSpec` and a call of
:func:`register`. Importing the registry loads the built-in specs, which are declarations: their computation
(:mod:`qlandscape.runs.metric_hooks`) is loaded when a metric is first computed, drawn or checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qlandscape.core.errors import ConfigError
from qlandscape.runs.metric_spec import MetricSpec
from qlandscape.runs.metric_specs import hessian, landscape, modes, ntk, robustness

__all__ = ["register", "unregister", "get", "specs", "check_metrics", "check_against_run"]

_SPECS: dict[str, MetricSpec] = {}


def register(spec: MetricSpec) -> MetricSpec:
    """Make ``spec`` available to run configs, the command line and the report; a second metric of the same name
    raises :class:`ConfigError` (:func:`unregister` the first one to replace it)."""
    if not isinstance(spec, MetricSpec):
        raise ConfigError("metric", spec, "expected a MetricSpec")
    known = _SPECS.get(spec.name)
    if known is not None and known is not spec:
        raise ConfigError("metric", spec.name, f"is registered already; expected a new name (not {sorted(_SPECS)})")
    _SPECS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Forget the metric ``name`` (nothing happens when it is not registered)."""
    _SPECS.pop(name, None)


def get(name: str, source: str | None = None) -> MetricSpec:
    """The metric ``name``; an unknown one raises :class:`ConfigError` listing the registered ones."""
    if name not in _SPECS:
        raise ConfigError("metrics", name, f"expected metric tables among {sorted(_SPECS)}", source=source)
    return _SPECS[name]


def specs() -> tuple[MetricSpec, ...]:
    """Every registered metric, the built-ins first, then in order of registration."""
    return tuple(_SPECS.values())


def check_metrics(metrics: Any, source: str | None = None) -> dict[str, Any]:
    """Check a run config's ``metrics`` table (names and every setting); returns each metric's settings."""
    if not isinstance(metrics, Mapping):
        raise ConfigError("metrics", metrics, "expected a table of metric settings", source=source)
    return {name: get(name, source).parse(given, source) for name, given in metrics.items()}


def check_against_run(metrics: Mapping[str, Any], *, n_train: int, n_params: int) -> None:
    """Settings that depend on the data or the model (known before training), so that they fail before it."""
    for name, settings in check_metrics(metrics).items():
        spec = get(name)
        if spec.check_against_run is not None:
            spec.check_against_run(settings, n_train, n_params)


for _builtin in (hessian.SPEC, landscape.SPEC, ntk.SPEC, modes.SPEC, robustness.SPEC):
    register(_builtin)
