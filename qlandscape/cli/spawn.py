"""``qlandscape spawn CONFIG.toml --spawn-epochs 0,0.5,1,2``: parent-child spawning for one run config."""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt

from qlandscape.cli.commands import help_of
from qlandscape.cli.lists import integers, numbers
from qlandscape.cli.run import add_config_arguments, config_from_args
from qlandscape.core import io
from qlandscape.core.errors import ConfigError
from qlandscape.data.datasets import to_torch
from qlandscape.metrics.landscape.results import SpawnResult
from qlandscape.metrics.landscape.spawning import check_spawn_epochs, spawn_experiment
from qlandscape.models.config import build_model
from qlandscape.plots import save_figure
from qlandscape.plots.spawning import plot_barrier_vs_spawn_time

__all__ = ["DEFAULT_SPAWN_EPOCHS", "add_parser", "run"]

DEFAULT_SPAWN_EPOCHS = "0,0.25,0.5,1,2,4,8"


def parse_numbers(option: str, text: str, kind: type = float) -> list:
    """Comma-separated numbers from the command line (integers may also be ranges ``1:4``); a bad item raises
    :class:`ConfigError` naming it (the command line's list syntax, :mod:`qlandscape.cli.lists`)."""
    return integers(option, text) if kind is int else numbers(option, text)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("spawn", help=help_of("spawn"), description=help_of("spawn"))
    add_config_arguments(p)
    p.add_argument(
        "--spawn-epochs",
        default=DEFAULT_SPAWN_EPOCHS,
        help="comma-separated spawn times in epochs, each <= epochs",
    )
    p.add_argument("--child-seeds", default="1,2", help="two seeds for the children's data order, comma-separated")
    p.add_argument("--parent-seed", type=int, default=None, help="parent seed (default: the config's seed)")
    p.add_argument("--n-points", type=int, default=11, help="points on each interpolation line")
    p.add_argument("--out", default="runs", help="parent folder of the output directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    spawn_epochs = parse_numbers("--spawn-epochs", args.spawn_epochs)
    child_seeds = parse_numbers("--child-seeds", args.child_seeds, int)
    if len(child_seeds) != 2:
        raise ConfigError("--child-seeds", args.child_seeds, "expected exactly two seeds, e.g. 1,2")
    check_spawn_epochs(spawn_epochs, config.epochs)  # fail before loading data or training
    parent_seed = config.seed if args.parent_seed is None else args.parent_seed

    data = config.data.load()
    model = build_model(config.network, data.image_shape, data.n_classes, seed=config.training.seed)
    x_train, y_train, x_test, y_test = to_torch(data)
    result = spawn_experiment(
        model,
        x_train,
        y_train,
        x_test,
        y_test,
        config.training,
        spawn_epochs,
        parent_seed=parent_seed,
        child_seeds=child_seeds,
        n_points=args.n_points,
        progress=args.progress,
    )

    out = Path(args.out) / f"spawn-{config.run_id()}"
    out.mkdir(parents=True, exist_ok=True)
    io.save_result(result, out / "spawn")
    io.write_json(out / "config.json", config.to_dict())
    fig = plot_barrier_vs_spawn_time(result, [f"{config.model}, parent seed {parent_seed}"])
    try:
        save_figure(fig, out / "spawn")
    finally:
        plt.close(fig)

    print(f"spawn directory: {out}")
    print(f"data: {config.data.describe(data)}")
    print(
        f"model: {config.model} ({result.n_params} parameters), {config.epochs} epochs, parent seed "
        f"{parent_seed}, child seeds {child_seeds[0]},{child_seeds[1]}; parent test accuracy "
        f"{result.parent_test_accuracy:.4f}; {result.seconds:.1f} s"
    )
    print(spawn_table(result))
    print(f"figure (barrier, function distance, children's accuracies): {out / 'spawn.png'}")
    return 0


def spawn_table(result: SpawnResult) -> str:
    """The printed table: per spawn time (epochs), the test error and loss barriers between the two children
    along the straight line between them, their function distance (fraction of test inputs they classify
    differently) and each child's final test accuracy."""
    lines = [
        f"{'t_s (epochs)':>12} {'error barrier':>14} {'loss barrier':>13} {'fn distance':>12} "
        f"{'child 1 acc':>12} {'child 2 acc':>12}"
    ]
    for i, t_s in enumerate(result.spawn_epochs):
        acc = result.child_test_accuracy[i]
        lines.append(
            f"{t_s:12.3g} {result.error_barrier[i]:14.4f} {result.loss_barrier[i]:13.4f} "
            f"{result.function_distance[i]:12.4f} {acc[0]:12.4f} {acc[1]:12.4f}"
        )
    return "\n".join(lines)
