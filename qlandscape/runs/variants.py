"""What a run directory holds of each metric: its variants, read from the manifest of ``run.json``.

A metric keeps one result per *variant*: a variant is named by the settings that say what was computed, and
results of different variants accumulate in the run directory. The built-in metrics name them so:

* ``landscape``: ``landscape_random_none`` (random directions in radians), ``landscape_random_filter``,
  ``landscape_pca``, ``landscape_hessian``, ``landscape_periodic`` (the full-period scan), with ``_init`` /
  ``_best`` for another point of the trajectory and ``_seed<n>`` for other random directions;
* ``hessian``: ``hessian_dense`` or ``hessian_lanczos`` (the method used, ``auto`` resolved), with ``_init`` /
  ``_best`` for another point, ``_test`` for the test split, ``_structure`` with the Gauss-Newton + residual split,
  ``_trajectory`` with the curvature along the trajectory and ``_seed<n>`` for other Lanczos start vectors and
  probes (``hessian_dense_init_structure``);
* ``ntk``: ``ntk_<form>_subset<n>`` (the kernel's form and its number of training inputs), with ``_every<k>`` when
  only every k-th recorded point is used (``ntk_trace_subset100``).

The other settings say how finely or how much is computed (a landscape's grid and range, the Hessian's ``top_k``,
``density`` and ``n_probes``, the kernel machine's ``ridge``, figures, chunks): computing a variant again with other
such settings replaces that variant, as a whole; the others stay. A variant's result and figure files start with its
name: ``results/landscape_pca.json``, ``figures/landscape_pca_contour.png``,
``results/hessian_dense_init_spectrum.json``, ``figures/ntk_trace_subset100_velocity.png`` (a metric's files of
0.2.0, with the metric's name replaced by the variant's).

The manifest entry of a metric keeps, besides the latest call's ``call``, ``settings``, ``started``, ``finished``
and ``arrays``, the name of the latest variant (``variant``), every variant (``variants``: its call, settings, times,
files and scalars) and, in ``files``, the files of all of them. The scalars in ``run.json``'s ``metrics`` and the
arrays in ``arrays.npz`` are the latest variant's.

The *default* variant of a run (:func:`default`; what the report shows) is the one its own config computed (the
``[metrics.<name>]`` table, computed with the run by ``qlandscape run`` or a sweep), or the latest where the metric
was only added later.

Run directories written by qlandscape 0.1 and 0.2.0 hold one result per metric under the metric's own name
(``results/landscape.json``, ``results/hessian_spectrum.json``, ``results/ntk_evolution.json``); it reads as one
variant named like the metric (``hessian``). A metric registered with a spec whose ``compute`` names no variant
keeps one result per run under its own name, replaced as a whole.

This module reads dictionaries and file names only: the run directory code (:mod:`qlandscape.runs.run`), the
``show`` command, the report and the metric specs share it without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Variant", "default", "latest", "merged_entry", "variants"]

# The run directory's folders of result objects and figures (as in qlandscape.runs.layout, which this module may
# not import: the metric specs read variants and the layout module imports the registry of the specs).
RESULTS, FIGURES = "results", "figures"


@dataclass(frozen=True)
class Variant:
    """One result of a metric in a run directory: its name (the stem of its files), the settings it was computed
    with, its files (relative to the run directory), its scalars, the call that wrote it and when it finished;
    ``latest``: the one whose scalars ``run.json`` shows."""

    metric: str
    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    scalars: dict[str, Any] = field(default_factory=dict)
    call: str | None = None
    finished: str | None = None
    latest: bool = False

    def result_file(self, suffix: str = "") -> str | None:
        """The result ``results/<name><suffix>`` (without ``.json``) that this variant saved, or None."""
        relative = f"{RESULTS}/{self.name}{suffix}"
        return relative if f"{relative}.json" in self.files else None


def _legacy_files(path: Path | None, metric: str) -> list[str]:
    """Files named after ``metric`` in a run directory recorded without a manifest (0.1)."""
    if path is None:
        return []
    return sorted(
        f.relative_to(path).as_posix()
        for folder in (RESULTS, FIGURES)
        for pattern in (f"{metric}.*", f"{metric}_*")
        for f in (path / folder).glob(pattern)
        if f.is_file()
    )


def _scalars_of(info: Mapping[str, Any], metric: str) -> dict[str, Any]:
    prefix = f"{metric}."
    return {k: v for k, v in (info.get("metrics") or {}).items() if k.startswith(prefix)}


def variants(info: Mapping[str, Any], metric: str, path: Path | None = None) -> list[Variant]:
    """The variants of ``metric`` that the run record ``info`` lists, the latest last; for a run recorded without a
    manifest (0.1), the files named after the metric below ``path`` as one variant (none when there are none)."""
    entry = (info.get("manifest") or {}).get(metric)
    if entry is None:
        files = _legacy_files(path, metric)
        if not files:
            return []
        settings = ((info.get("config") or {}).get("metrics") or {}).get(metric) or {}
        return [Variant(metric, metric, dict(settings), tuple(files), _scalars_of(info, metric), latest=True)]
    if "variants" not in entry:
        return [
            Variant(
                metric,
                metric,
                dict(entry.get("settings") or {}),
                tuple(entry.get("files") or ()),
                _scalars_of(info, metric),
                entry.get("call"),
                entry.get("finished"),
                latest=True,
            )
        ]
    latest = entry.get("variant")
    out = [
        Variant(
            metric,
            name,
            dict(v.get("settings") or {}),
            tuple(v.get("files") or ()),
            dict(v.get("scalars") or {}),
            v.get("call"),
            v.get("finished"),
            latest=name == latest,
        )
        for name, v in entry["variants"].items()
    ]
    return sorted(out, key=lambda v: (v.latest, v.finished or ""))


def latest(info: Mapping[str, Any], metric: str, path: Path | None = None) -> Variant | None:
    """The variant of ``metric`` whose scalars ``run.json`` shows, or None when the run has none."""
    found = variants(info, metric, path)
    return found[-1] if found else None


def default(info: Mapping[str, Any], metric: str, path: Path | None = None) -> Variant | None:
    """The variant of ``metric`` that the run's own config computed (written by the call that trained the run), or
    else the latest; None when the run has none."""
    found = variants(info, metric, path)
    trained_by = (info.get("attempt") or {}).get("call")
    own = [v for v in found if trained_by is not None and v.call == trained_by]
    return own[-1] if own else (found[-1] if found else None)


def merged_entry(
    info: Mapping[str, Any], metric: str, name: str, entry: Mapping[str, Any], scalars: Mapping[str, Any], path: Path
) -> tuple[dict[str, Any], list[str]]:
    """The manifest entry of ``metric`` once the variant ``name`` (computed by the call ``entry``: call, settings,
    started, finished, files, arrays) joins the variants the run holds, and the files of the variant it replaces
    (the earlier result of the same name) to remove."""
    kept: dict[str, Any] = {}
    replaced: list[str] = []
    for old in variants(info, metric, path):
        if old.name == name:
            replaced += old.files
        else:
            kept[old.name] = {
                "call": old.call,
                "settings": old.settings,
                "finished": old.finished,
                "files": list(old.files),
                "scalars": old.scalars,
            }
    kept[name] = {
        "call": entry.get("call"),
        "settings": dict(entry.get("settings") or {}),
        "started": entry.get("started"),
        "finished": entry.get("finished"),
        "files": list(entry.get("files") or ()),
        "scalars": dict(scalars),
    }
    merged = dict(entry) | {
        "variant": name,
        "variants": kept,
        "files": sorted({f for v in kept.values() for f in v["files"]}),
    }
    return merged, sorted(set(replaced) - set(entry.get("files") or ()))
