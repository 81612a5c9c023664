"""Run tables: one flat row per run directory (config fields, model facts, scalar metrics, timings) and CSV.

Every row has ``id``, ``status`` (see :mod:`qlandscape.runs.layout`: ``complete``, ``diverged``, ``failed``, ...,
or ``damaged``) and ``error``: a failed run's error, or for a damaged run the file and what is wrong with it. A
diverged run's row says where in ``divergence``. A damaged run whose ``run.json`` is unreadable has no config
fields (:func:`has_config` tells).
"""

from __future__ import annotations

import csv
import io as _io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from qlandscape.core import io
from qlandscape.core.errors import ConfigError
from qlandscape.runs.config import LATER_FIELDS
from qlandscape.runs.layout import RUN_FILE, check_run, describe_divergence

__all__ = ["MODEL_FACTS", "adversarial_label", "run_row", "has_config", "load_runs", "rows_of", "write_csv"]

MODEL_FACTS = ("n_params", "n_patches", "params_per_circuit", "kind")


def adversarial_label(setting: dict[str, Any]) -> str:
    """A run's ``adversarial`` training setting as one table cell: ``pgd linf eps=0.1 steps=7 alpha=0.02 mix=0.5``
    (``random start`` added when on)."""
    text = f"{setting.get('attack')} {setting.get('norm')} eps={setting.get('eps')}"
    if setting.get("attack") == "pgd":
        text += f" steps={setting.get('steps')} alpha={setting.get('alpha')}"
        text += " random start" if setting.get("random_start") else ""
    return f"{text} mix={setting.get('mix')}"


def run_row(path: Path, root: Path | None = None) -> dict[str, Any] | None:
    """One flat row for a run directory: id, status, config fields, model facts, scalar metrics, timings; None when
    it has no ``run.json``. The directory is checked (:func:`qlandscape.runs.layout.check_run`)."""
    state = check_run(path)
    if state.status == "missing":
        return None
    row: dict[str, Any] = {
        "id": path.name,
        "status": state.status,
        "path": str(path.relative_to(root)) if root else str(path),
        "error": state.problem if state.status == "damaged" else (state.info or {}).get("error"),
    }
    if state.status == "damaged" and state.file == path / RUN_FILE:
        return row  # nothing of run.json can be trusted
    info = state.info or {}
    row["id"] = info.get("id", path.name)
    if state.status == "diverged":
        row["divergence"] = describe_divergence(info.get("divergence", {}))
    config = info.get("config", {})
    if config:
        # A run written before a field existed keeps its id (the id leaves such fields out at their default), so
        # a resumed sweep mixes old and new run.json files: fill the default in, or the report would split the
        # seeds of one group on a field that does not vary.
        row.update(LATER_FIELDS)
    row.update(config)
    if isinstance(row.get("adversarial"), dict):  # one cell, and a value the report can group runs by
        row["adversarial"] = adversarial_label(row["adversarial"])
    model = info.get("model", {})
    for key in MODEL_FACTS:
        row["model_kind" if key == "kind" else key] = model.get(key)
    for key, value in info.get("metrics", {}).items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            row[f"metric.{key}" if key in row else key] = value
    for key, value in info.get("timings", {}).items():
        row[f"time.{key}"] = value
    return row


def has_config(row: Mapping[str, Any]) -> bool:
    """Whether a row carries its run's config fields (all rows but those of an unreadable ``run.json``)."""
    return "model" in row


def load_runs(directory: str | Path) -> list[dict[str, Any]]:
    """One flat row per run directory below ``directory`` (any depth), sorted by path."""
    root = Path(directory)
    if not root.is_dir():
        raise ConfigError("directory", str(root), "no such folder")
    rows = [
        run_row(p.parent, root)
        for p in sorted(root.rglob(RUN_FILE))
        if not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return [row for row in rows if row is not None]


def rows_of(out: Path, run_ids: Iterable[str]) -> list[dict[str, Any]]:
    """The rows of the runs ``run_ids`` below ``out``, in that order; a run without a directory is ``missing``."""
    rows = []
    for rid in run_ids:
        row = run_row(out / rid, out)
        rows.append(row if row is not None else {"id": rid, "status": "missing", "path": rid})
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_csv(rows: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    """Write rows as CSV (columns: the union of keys in first-seen order; lists and tables as JSON), atomically."""
    rows = list(rows)
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    buffer = _io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    io.atomic_write_bytes(path, buffer.getvalue().encode())
    return Path(path)
