"""What a run metric is: one :class:`MetricSpec` ties a metric's settings, its computation, its figures and its
headline scalars together, and everything that offers run metrics reads the specs (run configs' ``[metrics.<name>]``
tables, the ``qlandscape <name> RUN_DIR`` subcommands, the ``run`` command's summary and the sweep report).

A spec's settings are a frozen dataclass whose fields are declared with :func:`flag`, :func:`choice`,
:func:`integer`, :func:`number` or :func:`value`: each gives the default, the check and the help text once, and the
config validation and the command-line options are derived from them. ``compute`` turns a finished run and the
settings into a :class:`MetricOutput` (headline scalars and result objects); the run directory code saves the
results under ``RUN/results`` (their arrays also join ``arrays.npz``) and draws ``figures`` into ``RUN/figures``.

A spec is a declaration: its behaviour (``compute``, ``figures``, ``check_against_run``, ``sweep_figures``) may be
given as a :func:`hook`, a reference ``"package.module:function"`` that is imported when it is first called. The
built-in specs (:mod:`qlandscape.runs.metric_specs`) name their functions in :mod:`qlandscape.runs.metric_hooks`,
so that the registry, and with it ``qlandscape --help`` and every subcommand's ``--help``, loads neither torch nor
matplotlib, scipy or scikit-learn. Any callable is accepted as well: a user's spec in one module keeps working.
:meth:`Hook.resolve` (an :func:`importlib.import_module` call) is the second exception to "imports at module
level", next to :func:`qlandscape.cli.app.load`.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from qlandscape.core import io
from qlandscape.core.errors import ConfigError, check_choice, is_finite_number, is_integer
from qlandscape.runs.variants import Variant, default

if TYPE_CHECKING:  # annotations only: this module stays free of torch and matplotlib (a cheap registry import)
    from matplotlib.figure import Figure
    from torch import nn

    from qlandscape.core.objective import Objective
    from qlandscape.data.datasets import Dataset
    from qlandscape.train.trainer import TrainResult

__all__ = [
    "SETTING",
    "POINTS",
    "SPLITS",
    "CONFIG_DEFAULT",
    "Setting",
    "flag",
    "choice",
    "integer",
    "number",
    "value",
    "settings_of",
    "Hook",
    "hook",
    "MetricRun",
    "SavedResult",
    "MetricOutput",
    "Headline",
    "SweepView",
    "MetricSpec",
    "point_on_trajectory",
]

SETTING = "qlandscape.setting"  # the dataclass field metadata key of a Setting
POINTS = ("final", "best", "init")  # where on the trajectory a metric looks
SPLITS = ("train", "test")  # the data a metric evaluates the loss on
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_REFERENCE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
HOOKS = ("compute", "figures", "check_against_run", "sweep_figures")  # a spec's behaviour: callables or hooks
CONFIG_DEFAULT: Any = object()  # a subcommand option's default is the config's


@dataclass(frozen=True)
class Setting:
    """How one setting is checked and offered on the command line (kept in its dataclass field's metadata)."""

    help: str
    allowed: str  # the end of the error message: what is allowed
    check: Callable[[Any], bool]
    choices: tuple[Any, ...] | None = None
    cli: bool = True  # offered as a --option of the metric's subcommand
    cli_default: Any = CONFIG_DEFAULT  # the subcommand's default where it differs from a config's


def _setting(default: Any, meta: Setting) -> Any:
    if isinstance(default, list):
        raise TypeError("a list default is shared between instances: give a tuple")
    return field(default=default, metadata={SETTING: meta})


def flag(default: bool, help: str, *, cli: bool = True, cli_default: Any = CONFIG_DEFAULT) -> Any:
    """A true/false setting (``--name`` / ``--no-name`` on the command line)."""
    meta = Setting(help, "expected true or false", lambda v: isinstance(v, bool), cli=cli, cli_default=cli_default)
    return _setting(default, meta)


def choice(default: str, choices: Iterable[str], help: str, *, cli: bool = True) -> Any:
    """A setting with a fixed set of values."""
    options = tuple(choices)
    allowed = "expected one of " + ", ".join(map(repr, options))
    return _setting(default, Setting(help, allowed, lambda v: v in options, choices=options, cli=cli))


def integer(default: int | None, minimum: int, help: str, *, cli: bool = True) -> Any:
    """An integer setting ``>= minimum``; a None default means that nothing is allowed too."""

    def check(v: Any) -> bool:
        return (v is None and default is None) or (is_integer(v) and v >= minimum)

    allowed = f"expected an integer >= {minimum}" + (" or nothing" if default is None else "")
    return _setting(default, Setting(help, allowed, check, cli=cli))


def number(default: float, minimum: float, help: str, *, cli: bool = True) -> Any:
    """A finite number ``>= minimum``."""
    allowed = f"expected a finite number >= {minimum:g}"
    return _setting(default, Setting(help, allowed, lambda v: is_finite_number(v) and v >= minimum, cli=cli))


def value(default: Any, check: Callable[[Any], bool], allowed: str, help: str, *, cli: bool = True) -> Any:
    """Any other setting: ``check`` says whether a value is allowed, ``allowed`` says what is (for the message).
    On the command line the value is read as TOML (``[-1, 2]``), or as comma-separated items when the default is
    a tuple (``train,test``)."""
    return _setting(default, Setting(help, allowed, check, cli=cli))


def with_progress(settings: Any, given: Mapping[str, Any], progress: bool) -> Any:
    """``settings`` with its ``progress`` setting switched on when ``progress`` is asked for (a command writing to a
    terminal), the settings class has one, and ``given`` (what the config set) does not set it."""
    names = {f.name for f in dataclasses.fields(settings)}
    if progress and "progress" in names and "progress" not in given:
        return dataclasses.replace(settings, progress=True)
    return settings


def settings_of(cls: type) -> tuple[tuple[dataclasses.Field, Setting | None], ...]:
    """The settings of a settings class with their :class:`Setting` (None for a field declared without one)."""
    return tuple((f, f.metadata.get(SETTING)) for f in dataclasses.fields(cls))


class Hook:
    """A function named by a reference ``"package.module:function"``, imported on its first call and kept.

    Calling the hook calls the function. A spec names its behaviour this way so that declaring it (and listing it on
    the command line) loads none of the libraries its computation needs. A reference that does not name a function
    raises :class:`ConfigError` naming the reference, when it is first called or resolved (:meth:`resolve`)."""

    __slots__ = ("reference", "_function")

    def __init__(self, reference: str) -> None:
        if not (isinstance(reference, str) and _REFERENCE.fullmatch(reference)):
            raise ConfigError("hook", reference, "expected a reference 'package.module:function'")
        self.reference = reference
        self._function: Callable[..., Any] | None = None

    def resolve(self) -> Callable[..., Any]:
        """The function: its module is imported the first time (the documented exception to module-level
        imports: loading the computation only when it runs)."""
        if self._function is None:
            module_name, _, name = self.reference.partition(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                missing = exc.name or ""
                if not (module_name == missing or module_name.startswith(missing + ".")):
                    raise  # the module exists but one of its own imports is missing: that error, as it is
                raise ConfigError("hook", self.reference, f"no module {module_name!r}") from exc
            function = getattr(module, name, None)
            if not callable(function):
                raise ConfigError("hook", self.reference, f"module {module_name!r} has no function {name!r}")
            self._function = function
        return self._function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"hook({self.reference!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Hook) and other.reference == self.reference

    def __hash__(self) -> int:
        return hash(self.reference)


def hook(reference: str) -> Hook:
    """A spec's function by reference, ``hook("qlandscape.runs.metric_hooks.hessian:compute")``: imported when first
    called (see :class:`Hook`)."""
    return Hook(reference)


class MetricRun(Protocol):
    """What a metric's ``compute`` reads of a finished run (:class:`qlandscape.runs.run.LoadedRun` is one)."""

    @property
    def path(self) -> Path: ...

    @property
    def config(self) -> Any: ...

    @property
    def dataset(self) -> Dataset: ...

    @property
    def model(self) -> nn.Module: ...

    @property
    def result(self) -> TrainResult: ...

    def objective(
        self, split: str = "train", *, chunk_size: int | None = None, progress: bool = False
    ) -> Objective: ...


@dataclass(frozen=True)
class SavedResult:
    """A result object to keep: ``RUN/results/<file>.json|.npz``, its arrays also in ``arrays.npz`` as
    ``<prefix>.<field>``."""

    file: str
    prefix: str
    result: Any


@dataclass(frozen=True)
class MetricOutput:
    """What ``compute`` returns: scalars for ``run.json`` (named ``<metric>.<what>``) and the results to keep.

    ``variant``: None for a metric that keeps one result per run (computing it again replaces it as a whole), or
    the name of this result among the metric's variants (e.g. ``landscape_pca``), which then accumulate: a result of
    another variant is kept beside it, one of the same variant replaced. The result and figure files of a variant
    start with its name (see :mod:`qlandscape.runs.variants`)."""

    scalars: dict[str, Any]
    results: tuple[SavedResult, ...] = ()
    variant: str | None = None

    def result(self, file: str) -> Any:
        """The result saved as ``file``, or None."""
        return next((r.result for r in self.results if r.file == file), None)


@dataclass(frozen=True)
class Headline:
    """A scalar worth showing: the ``run`` command and the metric's subcommand print it, the report's summary
    table has a column for it (``summary``), its "metrics against model size" figure a panel (``plot``), and its
    power-law figure fits it against the patch count (``power_law``)."""

    key: str  # the scalar's name in run.json, e.g. "hessian.lambda_max"
    label: str  # a phrase: panel titles, printed lines
    short: str = ""  # an axis label (default: the key)
    summary: bool = True
    plot: bool = False
    power_law: bool = False

    @property
    def axis_label(self) -> str:
        return self.short or self.key


@dataclass(frozen=True)
class SweepView:
    """The complete runs below a report's folder, as a metric's report figures see them: their rows, the config
    fields that may vary, the axes the report lays grids out on (None: no such axis) and, for each row (by its
    ``path``) and metric, the variant the report shows (:func:`qlandscape.runs.variants.default`; a row missing
    from ``chosen`` is read from its ``run.json``)."""

    directory: Path
    rows: tuple[dict, ...]
    fields: tuple[str, ...]
    row_axis: str | None
    col_axis: str | None
    chosen: Mapping[str, Mapping[str, Variant | None]] = field(default_factory=dict)

    def rows_with(self, file: str) -> list[dict]:
        """The rows whose run saved the result ``file``."""
        return [r for r in self.rows if (self.directory / r["path"] / "results" / f"{file}.json").exists()]

    def loader(self, file: str, cls: type) -> Callable[[dict], Any]:
        """A function reading the result ``file`` (a ``cls``) of a row's run; None where it has none."""

        def load(row: dict) -> Any:
            path = self.directory / row["path"] / "results" / file
            return io.load_result(cls, path) if path.with_suffix(".json").exists() else None

        return load

    def variant(self, row: dict, metric: str) -> Variant | None:
        """The variant of ``metric`` that the report shows for ``row``, or None when its run has none."""
        chosen = self.chosen.get(row["path"])
        if chosen is not None and metric in chosen:
            return chosen[metric]
        folder = self.directory / row["path"]
        try:
            info = io.read_json(folder / "run.json")
        except (OSError, ValueError):
            return None
        return default(info, metric, folder) if isinstance(info, dict) else None

    def rows_with_result(self, metric: str, suffix: str) -> list[dict]:
        """The rows whose shown variant of ``metric`` saved the result ``<variant><suffix>``."""
        return [r for r in self.rows if (v := self.variant(r, metric)) is not None and v.result_file(suffix)]

    def result_loader(self, metric: str, suffix: str, cls: type) -> Callable[[dict], Any]:
        """A function reading the result ``<variant><suffix>`` (a ``cls``) of the variant of ``metric`` shown for a
        row; None where it has none."""

        def load(row: dict) -> Any:
            variant = self.variant(row, metric)
            relative = None if variant is None else variant.result_file(suffix)
            return None if relative is None else io.load_result(cls, self.directory / row["path"] / relative)

        return load


@dataclass(frozen=True)
class MetricSpec:
    """One run metric.

    ``name``: the ``[metrics.<name>]`` table, the subcommand and the prefix of its scalars and arrays.
    ``settings``: a frozen dataclass of its settings (see the module docstring); a ``progress: bool`` setting is
    switched on by the subcommand when it writes to a terminal, and a ``figures: bool`` setting lets a config skip
    the figures. ``compute(run, settings)``: the work. ``figures(output, settings)``: ``(name, Figure)`` pairs
    drawn into ``RUN/figures``. ``check_against_run(settings, n_train, n_params)``: checks that need the data and
    the model, made before training. ``sweep_figures(view)``: ``(name, caption, Figure)`` triples for the report
    over many runs. Each of these four is a callable or a :func:`hook` (loaded when first called).
    """

    name: str
    help: str
    settings: type
    compute: Callable[[MetricRun, Any], MetricOutput]
    figures: Callable[[MetricOutput, Any], Iterable[tuple[str, Figure]]] | None = None
    headline: tuple[Headline, ...] = ()
    check_against_run: Callable[[Any, int, int], None] | None = None
    sweep_figures: Callable[[SweepView], Iterable[tuple[str, str, Figure]]] | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.name, str) and _NAME.fullmatch(self.name)):
            raise ConfigError(
                "metric name",
                self.name,
                "expected lower-case letters, digits and _ (a TOML key, a subcommand and a prefix of scalar names)",
            )
        if not (dataclasses.is_dataclass(self.settings) and isinstance(self.settings, type)):
            raise ConfigError(f"{self.name} settings", self.settings, "expected a dataclass of settings")
        missing = [
            f.name
            for f in dataclasses.fields(self.settings)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise ConfigError(f"{self.name} settings", missing, "expected a default for every setting")
        for h in self.headline:
            if not h.key.startswith(f"{self.name}."):
                raise ConfigError(f"{self.name} headline", h.key, f"expected a scalar named {self.name}.<what>")
        for what in HOOKS:
            function = getattr(self, what)
            if not (callable(function) or (function is None and what != "compute")):
                raise ConfigError(
                    f"{self.name} {what}", function, "expected a function or hook('package.module:function')"
                )

    def hooks(self) -> dict[str, Hook]:
        """The spec's functions given by reference (:class:`Hook`), by what they do (``compute``, ...)."""
        return {what: f for what in HOOKS if isinstance(f := getattr(self, what), Hook)}

    def resolve(self) -> MetricSpec:
        """Import every function the spec names by reference (a bad reference raises :class:`ConfigError`);
        returns the spec."""
        for function in self.hooks().values():
            function.resolve()
        return self

    def parse(self, given: Mapping[str, Any], source: str | None = None) -> Any:
        """The settings with ``given`` over the defaults, checked; a bad key or value raises :class:`ConfigError`
        naming ``metrics.<name>.<key>``."""
        if not isinstance(given, Mapping):
            raise ConfigError(f"metrics.{self.name}", given, "expected a table of settings", source=source)
        allowed = [f.name for f in dataclasses.fields(self.settings)]
        for key in given:
            if key not in allowed:
                raise ConfigError(
                    f"metrics.{self.name}.{key}",
                    given[key],
                    f"expected settings among {sorted(allowed)}",
                    source=source,
                )
        settings = self.settings(**given)
        for f, meta in settings_of(self.settings):
            if meta is None:
                continue
            where, current = f"metrics.{self.name}.{f.name}", getattr(settings, f.name)
            if meta.choices is not None:
                check_choice(where, current, meta.choices, source=source)
            elif not meta.check(current):
                raise ConfigError(where, current, meta.allowed, source=source)
        return settings


def point_on_trajectory(result: TrainResult, point: str) -> tuple[int, np.ndarray]:
    """Trajectory index and parameters of ``final``, ``best`` (the epoch of lowest training loss) or ``init``."""
    traj = result.trajectory
    if point == "final":
        return traj.shape[0] - 1, traj[-1]
    if point == "init":
        return 0, traj[0]
    if point == "best":
        epoch = float(result.epochs[result.best_train_index])
        matches = np.flatnonzero(np.isclose(result.times, epoch))
        if matches.size == 0:
            raise ConfigError("point", point, f"epoch {epoch:g} was not recorded in the trajectory")
        return int(matches[0]), traj[int(matches[0])]
    raise ConfigError("point", point, "expected 'final', 'best' or 'init'")
