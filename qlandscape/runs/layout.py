"""What a run directory ``OUT/<run id>`` holds, and checking that it holds it.

Files:

* ``run.json``: the schema version (``schema``), the run id, the ``status``, the config, library versions, the
  training call (``attempt``), the dataset's content hash (``data``), timings, the scalar metrics (``metrics``:
  ``train_loss``, ``hessian.lambda_max``, ...) and the ``manifest``: for each metric, the call that computed it,
  its settings, when it started and finished, and the files and arrays it wrote. A diverged run also has
  ``divergence`` (where and what became non-finite, and the last finite evaluation); a failed one ``error`` and
  ``traceback``.
* ``arrays.npz``: the trajectory (one flat float64 parameter vector per recorded point), its times and steps, the
  per-epoch losses and accuracies, and each metric's arrays (``<metric>.<result>.<field>``).
* ``results/``: each metric's result objects (JSON + ``.npz``); ``figures/``: its figures (PNG + PDF).
* ``.lock`` (the directory's lock) and, while a command writes, ``.txn-*`` staging folders
  (:mod:`qlandscape.runs.transaction`).

Statuses: ``running`` (or a run killed while it ran), ``complete``, ``diverged`` (training stopped at a NaN or
infinite loss or parameter; the trajectory up to there is kept, no metric is computed), ``failed`` (with the error),
``interrupted`` (Ctrl-C). ``complete`` and ``diverged`` are *finished*: a rerun or a resumed sweep keeps them. A
finished status promises ``arrays.npz`` with the training arrays, and ``complete`` promises the result files the
manifest lists.

Schema versions: 1 is what 0.1 wrote (no ``schema`` key, no manifest, no content hash); such runs load and resume
as they are. 2 adds the keys above. A run directory written by a newer version is refused with a message.

:func:`check_run` reads a directory and says what it holds, ``damaged`` with the file and the reason when a file is
missing, truncated, not what its status promises or edited so that the config no longer gives the run id; it never
raises. :func:`require_run` raises :class:`~qlandscape.core.errors.ConfigError` with that reason instead.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qlandscape.core import io
from qlandscape.core.errors import ConfigError
from qlandscape.runs.config import RunConfig
from qlandscape.runs.transaction import locked, settle

__all__ = [
    "RUN_FILE",
    "ARRAYS_FILE",
    "RESULTS_DIR",
    "FIGURES_DIR",
    "SCHEMA_VERSION",
    "STATUSES",
    "FINISHED",
    "TRAINING_ARRAYS",
    "REMEDY",
    "lock_run",
    "Damaged",
    "RunState",
    "check_run",
    "require_run",
    "describe",
    "describe_divergence",
    "is_complete",
    "is_finished",
    "read_info",
]

RUN_FILE, ARRAYS_FILE = "run.json", "arrays.npz"
RESULTS_DIR, FIGURES_DIR = "results", "figures"
SCHEMA_VERSION = 2
STATUSES = ("running", "complete", "diverged", "failed", "interrupted")
FINISHED = ("complete", "diverged")
TRAINING_ARRAYS = (
    "trajectory",
    "times",
    "steps",
    "epochs",
    "train_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
)
REMEDY = "recompute the run (qlandscape run --force, or rerun its sweep) or delete its folder"


@contextmanager
def lock_run(path: Path, *, timeout: float | None = None, on_wait: Callable[[], None] | None = None) -> Iterator[Path]:
    """Hold the lock of the run directory ``path`` (see :func:`qlandscape.runs.transaction.locked`), tidying
    ``results/`` and ``figures/`` as well."""
    with locked(path, timeout=timeout, on_wait=on_wait, tidy=(RESULTS_DIR, FIGURES_DIR)) as held:
        yield held


class Damaged(Exception):
    """A file of a run directory is not what it should be (:attr:`file` and :attr:`reason`)."""

    def __init__(self, file: Path, reason: str) -> None:
        super().__init__(f"{file}: {reason}")
        self.file = file
        self.reason = reason


@dataclass(frozen=True)
class RunState:
    """What a run directory holds: its ``status`` (one of :data:`STATUSES`, or ``damaged``, or ``missing`` when
    there is no ``run.json``), the parsed ``run.json`` (None when unreadable), and for a damaged run the file and
    the reason."""

    path: Path
    status: str
    info: dict[str, Any] | None
    file: Path | None = None
    reason: str | None = None

    @property
    def finished(self) -> bool:
        """Complete or diverged: what a rerun keeps."""
        return self.status in FINISHED

    @property
    def problem(self) -> str | None:
        """``<file>: <reason>`` for a damaged run, else None."""
        return None if self.file is None else f"{self.file}: {self.reason}"


def _read_json_object(file: Path, what: str) -> dict[str, Any]:
    if not file.exists():
        raise Damaged(file, "is missing")
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise Damaged(file, f"cannot be read ({exc.strerror or exc})") from exc
    if not data.strip():
        raise Damaged(file, "is empty")
    try:
        parsed = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise Damaged(file, f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise Damaged(file, f"is not valid JSON, truncated or edited ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(parsed, dict):
        raise Damaged(file, f"holds a JSON {type(parsed).__name__}, expected an object ({what})")
    return parsed


def _check_info(info: dict[str, Any], file: Path) -> None:
    schema = info.get("schema", 1)
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise Damaged(file, f"schema = {schema!r}: expected a positive integer")
    if schema > SCHEMA_VERSION:
        raise Damaged(
            file,
            f"was written with run-directory schema {schema}, newer than this qlandscape reads ({SCHEMA_VERSION}); "
            "upgrade qlandscape",
        )
    status = info.get("status")
    if status not in STATUSES:
        raise Damaged(file, f"status = {status!r}: expected one of {', '.join(STATUSES)}")
    if "config" not in info:
        raise Damaged(file, "has no config")
    if not isinstance(info["config"], dict):
        raise Damaged(file, f"config = {info['config']!r}: expected a table of run settings")
    try:
        # The metrics table records what ran; a metric registered in another process must not stop the load.
        config = RunConfig.from_dict(info["config"], check_metric_names=False)
    except (ConfigError, TypeError, ValueError) as exc:
        raise Damaged(file, f"its config is not a valid run config ({exc})") from exc
    if info.get("id") != config.run_id():
        raise Damaged(
            file,
            f"id = {info.get('id')!r}, but its config gives the run id {config.run_id()!r} (was the file edited?)",
        )
    for key in ("metrics", "timings", "model", "versions", "manifest", "data", "attempt", "divergence"):
        if key in info and not isinstance(info[key], dict):
            raise Damaged(file, f"{key} = {info[key]!r}: expected a table")
    for key, value in info.get("metrics", {}).items():
        if not (value is None or isinstance(value, (str, int, float, bool))):
            raise Damaged(file, f"metrics.{key} = {value!r}: expected a number, a string, true/false or nothing")
    for key, value in info.get("timings", {}).items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise Damaged(file, f"timings.{key} = {value!r}: expected a number of seconds")
    if status in FINISHED:
        n_params = info.get("model", {}).get("n_params")
        if not isinstance(n_params, int) or isinstance(n_params, bool) or n_params < 1:
            raise Damaged(file, f"model.n_params = {n_params!r}: expected the parameter count of a finished run")
    for name, entry in info.get("manifest", {}).items():
        if not (isinstance(entry, dict) and isinstance(entry.get("files", []), list)):
            raise Damaged(file, f"manifest.{name} = {entry!r}: expected a table with a list of files")


def _npy_shape(archive: zipfile.ZipFile, member: str) -> tuple[int, ...]:
    with archive.open(member) as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, _ = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, _, _ = np.lib.format.read_array_header_2_0(handle)
    return tuple(shape)


def _check_arrays(file: Path, info: dict[str, Any]) -> None:
    """The training arrays a finished status promises: present, the trajectory (T, n_params) with T times. Reads
    the archive's directory and the array headers, not the data."""
    if not file.exists():
        raise Damaged(file, f"is missing, but the run is {info['status']}")
    try:
        with zipfile.ZipFile(file) as archive:
            names = {n[: -len(".npy")] for n in archive.namelist() if n.endswith(".npy")}
            missing = [k for k in TRAINING_ARRAYS if k not in names]
            if missing:
                raise Damaged(file, f"has no {', '.join(missing)} (arrays: {', '.join(sorted(names)) or 'none'})")
            trajectory, times = _npy_shape(archive, "trajectory.npy"), _npy_shape(archive, "times.npy")
            for name, entry in info.get("manifest", {}).items():
                absent = [a for a in entry.get("arrays", []) if a not in names]
                if absent:
                    raise Damaged(file, f"has no {', '.join(absent)}, which the manifest lists for {name}")
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise Damaged(file, f"is not a readable .npz archive, truncated or overwritten ({exc})") from exc
    n_params = info["model"]["n_params"]
    if len(trajectory) != 2 or trajectory[1] != n_params or trajectory[0] < 1 or times != trajectory[:1]:
        raise Damaged(
            file,
            f"trajectory has shape {trajectory} and times {times}: expected (T, {n_params}) with T >= 1 and (T,)",
        )


def _check_results(path: Path, info: dict[str, Any]) -> None:
    """Every result file (JSON object + readable .npz), and the ones the manifest lists exist."""
    for name, entry in info.get("manifest", {}).items():
        for relative in entry.get("files", []):
            if relative.startswith(f"{RESULTS_DIR}/") and not (path / relative).exists():
                raise Damaged(path / relative, f"is missing, but the manifest lists it for {name}")
    folder = path / RESULTS_DIR
    for file in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        _read_json_object(file, "a saved result")
    for file in sorted(folder.glob("*.npz")) if folder.is_dir() else ():
        try:
            with zipfile.ZipFile(file) as archive:
                archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise Damaged(file, f"is not a readable .npz archive, truncated or overwritten ({exc})") from exc


def check_run(path: str | Path) -> RunState:
    """What the run directory ``path`` holds (see :class:`RunState`); never raises for a damaged directory.

    Committed changes not yet carried out (a writer killed mid-commit) are carried out first.
    """
    path = Path(path)
    if not (path / RUN_FILE).exists():
        return RunState(path, "missing", None)
    settle(path, tidy=(RESULTS_DIR, FIGURES_DIR))
    info: dict[str, Any] | None = None
    try:
        info = _read_json_object(path / RUN_FILE, "the run record")
        _check_info(info, path / RUN_FILE)
        if info["status"] in FINISHED:
            _check_arrays(path / ARRAYS_FILE, info)
        if info["status"] == "complete":
            _check_results(path, info)
    except Damaged as damage:
        return RunState(path, "damaged", info, damage.file, damage.reason)
    return RunState(path, info["status"], info)


def require_run(path: str | Path, statuses: Iterable[str] = ("complete",)) -> dict[str, Any]:
    """The checked ``run.json`` of ``path``, whose status must be one of ``statuses``; anything else raises
    :class:`ConfigError` naming the folder or the damaged file and what is wrong."""
    path = Path(path)
    statuses = tuple(statuses)
    if not path.is_dir() or not (path / RUN_FILE).exists():
        raise ConfigError("run directory", str(path), f"expected a folder containing {RUN_FILE}")
    state = check_run(path)
    if state.status == "damaged":
        raise ConfigError("run file", str(state.file), f"{state.reason}; {REMEDY}")
    assert state.info is not None
    if state.status not in statuses:
        raise ConfigError(
            "run directory",
            str(path),
            f"the run is {state.status!r} ({describe(state)}), expected {' or '.join(map(repr, statuses))}",
        )
    return state.info


def describe(state: RunState) -> str:
    """One line saying what a run directory holds, for messages and the report."""
    info = state.info or {}
    if state.status == "damaged":
        return f"damaged: {state.problem}"
    if state.status == "missing":
        return f"no {RUN_FILE}"
    if state.status == "diverged":
        return "diverged: " + describe_divergence(info.get("divergence", {}))
    if state.status in ("failed", "interrupted"):
        return f"{state.status}: {info.get('error') or 'no error recorded'}"
    if state.status == "running":
        return "running, or killed while it ran"
    return state.status


def describe_divergence(divergence: dict[str, Any]) -> str:
    """``training loss became nan at step 12 (epoch 1.50); last finite training loss 0.512 (epoch 1)``."""
    text = (
        f"{divergence.get('quantity', 'a value')} became {divergence.get('value')} at step {divergence.get('step')} "
        f"(epoch {float(divergence.get('epoch', float('nan'))):.2f})"
    )
    last = divergence.get("last_finite") or {}
    if last.get("train_loss") is not None:
        text += f"; last finite training loss {last['train_loss']:.4g} (epoch {last.get('epoch')})"
    return text


def is_complete(path: Path) -> bool:
    """Whether ``path`` holds a complete, undamaged run."""
    return check_run(path).status == "complete"


def is_finished(path: Path) -> bool:
    """Whether ``path`` holds a complete or diverged, undamaged run (what a rerun keeps)."""
    return check_run(path).finished


def read_info(path: Path) -> dict[str, Any]:
    """``run.json`` as it is, unchecked (for status bookkeeping of runs in flight); raises OSError/ValueError."""
    info = io.read_json(path / RUN_FILE)
    if not isinstance(info, dict):
        raise ValueError(f"{path / RUN_FILE} holds no JSON object")
    return info
