"""Post-training metrics on a run directory: the ``metrics`` table of a run config, and the CLI subcommands.

Each metric reads a :class:`~qlandscape.runs.LoadedRun`, computes result objects with the library functions,
saves them under ``RUN/results/<name>.json|.npz`` (open formats), merges headline scalars into ``run.json`` and
arrays into ``arrays.npz`` (prefixed ``<metric>.``), and draws its figures into ``RUN/figures`` (PNG + PDF).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping

import matplotlib

matplotlib.use("Agg")  # figures are written to files; never open a window from a sweep worker

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from qlandscape.core import io  # noqa: E402
from qlandscape.core.errors import ConfigError, check_choice, is_finite_number, is_integer  # noqa: E402
from qlandscape.runs.run import LoadedRun, register_metric  # noqa: E402

DEFAULTS: dict[str, dict[str, Any]] = {
    "hessian": {"point": "final", "top_k": 5, "density": True, "trajectory": False, "method": "auto",
                "max_params": 3000, "n_probes": 100, "chunk_size": None, "split": "train", "seed": 0,
                "structure": False, "figures": True, "summary": True, "progress": False},
    "landscape": {"directions": "random", "normalization": "filter", "grid": 21, "range": 1.0, "point": "final",
                  "splits": ["train"], "seed": 0, "chunk_size": None, "padding": 5.0, "log_scale": False,
                  "batch": None, "figures": True, "progress": False},
    "ntk": {"subset": 100, "every": 1, "form": "trace", "ridge": 1e-6, "seed": 0, "figures": True},
}


def settings_for(metric: str, given: dict[str, Any]) -> dict[str, Any]:
    """Defaults updated with ``given``; unknown keys raise :class:`ConfigError` naming them."""
    allowed = DEFAULTS[metric]
    for key in given:
        if key not in allowed:
            raise ConfigError(f"metrics.{metric}.{key}", given[key], f"expected settings among {sorted(allowed)}")
    return {**allowed, **given}


# Settings with a fixed set of values, checked up front so that a typo fails before hours of training.
METRIC_CHOICES = {("hessian", "point"): ("final", "best", "init"), ("landscape", "point"): ("final", "best", "init"),
                  ("landscape", "directions"): ("random", "hessian", "pca"), ("ntk", "form"): ("trace", "full"),
                  ("hessian", "method"): ("auto", "dense", "lanczos"), ("hessian", "split"): ("train", "test"),
                  ("landscape", "normalization"): ("filter", "patch", "layer", "none")}
# Integer settings and their minimum (None allowed where the default is None).
METRIC_INTS = {("hessian", "top_k"): 0, ("hessian", "max_params"): 1, ("hessian", "n_probes"): 1,
               ("hessian", "chunk_size"): 1, ("hessian", "seed"): 0, ("landscape", "grid"): 2,
               ("landscape", "chunk_size"): 1, ("landscape", "batch"): 1, ("landscape", "seed"): 0,
               ("ntk", "subset"): 1, ("ntk", "every"): 1, ("ntk", "seed"): 0}


def check_metrics(metrics: Any, source: str | None = None) -> None:
    """Metric names against the registered hooks and each metric's settings (unknown keys, fixed choices)."""
    from qlandscape.runs.run import METRIC_HOOKS

    if not isinstance(metrics, Mapping):
        raise ConfigError("metrics", metrics, "expected a table of metric settings", source=source)
    for name, given in metrics.items():
        if name not in METRIC_HOOKS:
            raise ConfigError("metrics", name, f"expected metric tables among {sorted(METRIC_HOOKS)}", source=source)
        if not isinstance(given, Mapping):
            raise ConfigError(f"metrics.{name}", given, "expected a table of settings", source=source)
        if name not in DEFAULTS:  # a hook registered by the user: its settings are its own business
            continue
        try:
            settings = settings_for(name, dict(given))
        except ConfigError as exc:
            raise ConfigError(exc.field, exc.value, exc.allowed, source=source) from None
        for (metric, key), choices in METRIC_CHOICES.items():
            if metric == name:
                check_choice(f"metrics.{name}.{key}", settings[key], choices, source=source)
        _check_setting_types(name, settings, DEFAULTS[name], source)


def _check_setting_types(name: str, settings: dict, defaults: dict, source: str | None) -> None:
    def bad(key: str, allowed: str) -> ConfigError:
        return ConfigError(f"metrics.{name}.{key}", settings[key], allowed, source=source)

    for key, default in defaults.items():
        value = settings[key]
        if isinstance(default, bool) and not isinstance(value, bool):
            raise bad(key, "expected true or false")
        low = METRIC_INTS.get((name, key))
        if low is not None and not (value is None and default is None) \
                and (not is_integer(value) or value < low):
            raise bad(key, f"expected an integer >= {low}" + (" or nothing" if default is None else ""))
    if name == "landscape":
        span = settings["range"]
        if not ((is_finite_number(span) and span > 0) or (isinstance(span, (list, tuple)) and len(span) == 2
                                                and all(map(is_finite_number, span)) and span[0] < span[1])):
            raise bad("range", "expected a positive half-width or [low, high] with low < high")
        if not (is_finite_number(settings["padding"]) and settings["padding"] >= 0):
            raise bad("padding", "expected a finite number >= 0")
        splits = settings["splits"]
        if not (isinstance(splits, (list, tuple)) and splits and all(sp in ("train", "test") for sp in splits)):
            raise bad("splits", "expected a non-empty list of 'train' and/or 'test'")
    if name == "ntk" and not (is_finite_number(settings["ridge"]) and settings["ridge"] >= 0):
        raise bad("ridge", "expected a finite number >= 0")


def check_against_run(metrics: dict[str, Any], *, n_train: int, n_params: int) -> None:
    """Settings that depend on the data or the model (known before training), so they fail before it."""
    ntk = metrics.get("ntk")
    if isinstance(ntk, dict):
        subset = int(settings_for("ntk", dict(ntk))["subset"])
        if subset > n_train:
            raise ConfigError("metrics.ntk.subset", subset, f"expected at most the {n_train} training samples")
    hessian = metrics.get("hessian")
    if isinstance(hessian, dict):
        s = settings_for("hessian", dict(hessian))
        if s["method"] == "dense" and n_params > s["max_params"]:
            raise ConfigError("metrics.hessian.method", "dense", f"the model has {n_params} parameters, above "
                              f"max_params = {s['max_params']}; raise max_params or use 'lanczos' or 'auto'")


def _point(run: LoadedRun, point: str) -> tuple[int, np.ndarray]:
    """Trajectory index and parameters of ``final``, ``best`` (lowest training loss epoch) or ``init``."""
    traj = run.result.trajectory
    if point == "final":
        return traj.shape[0] - 1, traj[-1]
    if point == "init":
        return 0, traj[0]
    if point == "best":
        epoch = float(run.result.epochs[run.result.best_train_index])
        matches = np.flatnonzero(np.isclose(run.result.times, epoch))
        if matches.size == 0:
            raise ConfigError("point", point, f"epoch {epoch:g} was not recorded in the trajectory")
        return int(matches[0]), traj[int(matches[0])]
    raise ConfigError("point", point, "expected 'final', 'best' or 'init'")


def _save(run: LoadedRun, name: str, result: Any, prefix: str) -> dict[str, np.ndarray]:
    io.save_result(result, run.path / "results" / name)
    _, arrays = io.result_to_dicts(result)
    return {f"{prefix}.{k}": v for k, v in arrays.items() if v.dtype != object}


def _figure(run: LoadedRun, settings: dict, name: str, draw: Callable[[], Any]) -> None:
    # Drawing PNG + PDF dominates small runs; sweeps can turn it off with figures = false.
    if not settings["figures"]:
        return
    from qlandscape.plots import save_figure

    fig = draw()
    (run.path / "figures").mkdir(exist_ok=True)
    save_figure(fig, run.path / "figures" / name)
    plt.close(fig)


@register_metric("hessian")
def hessian_metric(run: LoadedRun, given: dict) -> tuple[dict, dict]:
    """Hessian summary (+ top-k, SLQ density, optional curvature along the trajectory and G + R split)."""
    from qlandscape.metrics.curvature.hessian import dense_spectrum, hessian_along_trajectory, hessian_summary
    from qlandscape.metrics.curvature.spectral_density import spectral_density
    from qlandscape.metrics.curvature.hessian import spectrum_of_matrix, summary_from_spectrum
    from qlandscape.metrics.curvature.eigensolvers import top_eigenvalues
    from qlandscape.metrics.curvature.spectral_density import density_from_eigenvalues
    from qlandscape.plots import hessian as hplots

    s = settings_for("hessian", given)
    obj = run.objective(s["split"], chunk_size=s["chunk_size"], progress=bool(s["progress"]))
    index, theta = _point(run, s["point"])
    scalars: dict[str, Any] = {"hessian.point": s["point"], "hessian.time": float(run.result.times[index])}
    arrays: dict[str, np.ndarray] = {}
    method = s["method"]
    if method == "auto":
        method = "dense" if obj.n_params <= s["max_params"] else "lanczos"
    spectrum = top = decomposition = None
    if s["structure"]:
        from qlandscape.metrics.curvature.structured import decompose

        decomposition = decompose(obj, theta)
    if method == "dense":
        # The decomposition already holds the exact Hessian: no second dense Hessian for the spectrum.
        spectrum = (spectrum_of_matrix(decomposition.hessian, keep_eigenvectors=False) if decomposition is not None
                    else dense_spectrum(obj, theta, max_params=s["max_params"], keep_eigenvectors=False))
        arrays |= _save(run, "hessian_spectrum", spectrum, "hessian.spectrum")
        _figure(run, s, "hessian_spectrum", lambda: hplots.plot_spectrum(spectrum))
    elif s["top_k"]:
        top = top_eigenvalues(obj, min(int(s["top_k"]), obj.n_params - 1), theta=theta, seed=s["seed"])
        arrays |= _save(run, "hessian_top_k", top, "hessian.top_k")
        _figure(run, s, "hessian_spectrum", lambda: hplots.plot_spectrum(top))
        scalars |= {"hessian.lambda_max": float(top.eigenvalues[-1]), "hessian.top_k_matvecs": int(top.n_matvecs),
                    "hessian.top_k_residual": float(top.residual_norms[-1]), "hessian.method": "lanczos",
                    "hessian.n_params": obj.n_params}
    if spectrum is not None or s["summary"]:
        # The summary reuses a dense spectrum; with Lanczos it adds lambda_min, a Hutchinson trace and SLQ.
        summary = (summary_from_spectrum(spectrum) if spectrum is not None else
                   hessian_summary(obj, theta, method=method, max_params=s["max_params"], n_probes=s["n_probes"],
                                   seed=s["seed"]))
        scalars |= {f"hessian.{k}": v for k, v in dataclasses.asdict(summary).items()}
        arrays |= _save(run, "hessian_summary", summary, "hessian.summary")
    if s["density"]:
        # With the dense spectrum at hand the exact (broadened) density is free; SLQ only when it is not.
        density = (density_from_eigenvalues(spectrum.eigenvalues) if spectrum is not None
                   else spectral_density(obj, theta=theta, seed=s["seed"]))
        arrays |= _save(run, "hessian_density", density, "hessian.density")
        _figure(run, s, "hessian_density", lambda: hplots.plot_density(density))
    if s["trajectory"]:
        curv = hessian_along_trajectory(obj, run.result.trajectory, run.result.times, method=s["method"],
                                        max_params=s["max_params"], n_probes=s["n_probes"], seed=s["seed"])
        arrays |= _save(run, "hessian_trajectory", curv, "hessian.trajectory")
        _figure(run, s, "hessian_over_training", lambda: hplots.plot_curvature_over_training(curv))
    if decomposition is not None:
        from qlandscape.metrics.curvature.structured import structure_summary

        scale = getattr(run.model, "output_scale", None) if getattr(run.model, "head", 1) is None else None
        parts = structure_summary(decomposition, output_scale=scale)
        scalars |= {f"hessian.structure.{k}": v for k, v in dataclasses.asdict(parts).items()
                    if not isinstance(v, np.ndarray)}
        arrays |= _save(run, "hessian_structure", parts, "hessian.structure")
    return scalars, arrays


@register_metric("landscape")
def landscape_metric(run: LoadedRun, given: dict) -> tuple[dict, dict]:
    """A 2D slice (random, Hessian-eigenvector or PCA-of-trajectory plane) with contour and surface figures."""
    from qlandscape.metrics.landscape.slices import grid_from_range
    from qlandscape.metrics.landscape.directions import hessian_directions, orthogonalize, pca_directions, random_direction
    from qlandscape.metrics.landscape.slices import project_onto_plane, slice_2d, slice_pca
    from qlandscape.plots import landscape as lplots

    s = settings_for("landscape", given)
    if s["directions"] not in ("random", "hessian", "pca"):
        raise ConfigError("directions", s["directions"], "expected 'random', 'hessian' or 'pca'")
    splits = list(s["splits"])
    for split in splits:
        if split not in ("train", "test"):
            raise ConfigError("splits", split, "expected 'train' and/or 'test'")
    obj = run.objective(splits[0], chunk_size=s["chunk_size"], progress=bool(s["progress"]))
    others = {sp: run.objective(sp, chunk_size=s["chunk_size"]) for sp in splits[1:]}
    index, theta = _point(run, s["point"])
    if s["directions"] == "pca":
        result = slice_pca(obj, pca_directions(run.result.trajectory[: index + 1]), resolution=int(s["grid"]),
                           padding=float(s["padding"]), eval_objectives=others, split=splits[0],
                           batch=s["batch"])
    else:
        if s["directions"] == "random":
            d1 = random_direction(obj, normalization=s["normalization"], seed=s["seed"], center=theta)
            d2 = random_direction(obj, normalization=s["normalization"], seed=s["seed"] + 1, center=theta)
            d1, d2 = orthogonalize(d1, d2)
            normalization = s["normalization"]
        else:
            hd = hessian_directions(obj, theta, k=2, seed=s["seed"])
            d1, d2 = hd.directions[-1], hd.directions[0]
            normalization = "none"
        grid = grid_from_range(float(s["range"]), int(s["grid"]))
        trajectory = project_onto_plane(run.result.trajectory, theta, d1, d2)
        result = slice_2d(obj, d1, d2, center=theta, alphas=grid, betas=grid, eval_objectives=others,
                          split=splits[0], trajectory=trajectory, direction_kind=s["directions"],
                          normalization=normalization, batch=s["batch"])
    arrays = _save(run, "landscape", result, "landscape")
    _figure(run, s, "landscape_contour", lambda: lplots.plot_contour(result, log_scale=bool(s["log_scale"])))
    _figure(run, s, "landscape_surface", lambda: lplots.plot_surface(result, log_scale=bool(s["log_scale"])))
    if result.has_trajectory:
        _figure(run, s, "landscape_trajectory", lambda: lplots.plot_trajectory(result))
    scalars = {"landscape.directions": s["directions"], "landscape.grid": int(s["grid"]),
               "landscape.center_loss": float(result.center_losses[0]),
               "landscape.max_loss": float(np.max(result.losses[0])),
               "landscape.min_loss": float(np.min(result.losses[0]))}
    return scalars, arrays


@register_metric("ntk")
def ntk_metric(run: LoadedRun, given: dict) -> tuple[dict, dict]:
    """Kernel evolution and kernel-machine accuracy along the recorded trajectory."""
    from qlandscape.data.datasets import to_torch
    from qlandscape.metrics.ntk.kernel_machines import kernel_machine_curve
    from qlandscape.metrics.ntk.kernels import kernel_evolution
    from qlandscape.plots import ntk as nplots

    s = settings_for("ntk", given)
    obj = run.objective("train")
    x_train, y_train, x_test, y_test = to_torch(run.dataset)
    subset = int(s["subset"])
    if subset > x_train.shape[0]:
        raise ConfigError("subset", subset, f"expected at most the {x_train.shape[0]} training samples")
    evo = kernel_evolution(obj, run.result.trajectory, run.result.times, subset, every=int(s["every"]),
                           form=s["form"], store_kernels=False)
    curve = kernel_machine_curve(obj, run.result.trajectory, run.result.times, x_train[:subset], y_train[:subset],
                                 x_test, y_test, every=int(s["every"]), ridge=float(s["ridge"]))
    arrays = _save(run, "ntk_evolution", evo, "ntk.evolution") | _save(run, "ntk_kernel_machine", curve, "ntk.machine")
    _figure(run, s, "ntk_distance", lambda: nplots.plot_kernel_distance_matrix(evo))
    _figure(run, s, "ntk_velocity", lambda: nplots.plot_kernel_velocity(evo))
    _figure(run, s, "ntk_kernel_machine", lambda: nplots.plot_kernel_machine_accuracy(curve))
    scalars = {"ntk.final_distance_from_init": float(evo.distance_from_init[-1]),
               "ntk.kernel_accuracy_init": float(curve.kernel_accuracy[0]),
               "ntk.kernel_accuracy_final": float(curve.kernel_accuracy[-1])}
    return scalars, arrays


def run_metric(path: str | Path, metric: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Compute one metric on an existing run directory and save it there; returns the scalars."""
    from qlandscape.runs.run import METRIC_HOOKS, load_run

    check_metrics({metric: settings})
    run = load_run(path)
    earlier = _metric_files(run.path, metric)
    scalars, arrays = METRIC_HOOKS[metric](run, settings)
    _forget_metric(run, metric, earlier)
    run.save_metrics(scalars, arrays)
    return scalars


def _metric_files(path: Path, metric: str) -> dict[Path, int]:
    """The files a metric wrote under ``results/`` and ``figures/``, with their inode numbers."""
    return {f: f.stat().st_ino for folder in ("results", "figures") for pattern in (f"{metric}.*", f"{metric}_*")
            for f in (path / folder).glob(pattern)}


def _forget_metric(run: LoadedRun, metric: str, earlier: dict[Path, int]) -> None:
    # A metric computed again replaces the earlier one as a whole: merging would leave, e.g., the G + R split or
    # the density of an earlier point beside a "hessian.point" that names the new one (and the report reads both).
    from qlandscape.runs.run import ARRAYS_FILE

    prefix = f"{metric}."
    run.info["metrics"] = {k: v for k, v in run.info.get("metrics", {}).items() if not k.startswith(prefix)}
    arrays = io.read_npz(run.path / ARRAYS_FILE)
    if any(k.startswith(prefix) for k in arrays):
        io.write_npz(run.path / ARRAYS_FILE, {k: v for k, v in arrays.items() if not k.startswith(prefix)})
    now = _metric_files(run.path, metric)
    for stale, inode in earlier.items():
        if now.get(stale) == inode:  # every write is a rename onto the name, so a rewritten file has a new inode
            stale.unlink()
