"""Run configs shipped with the package, so that an installed qlandscape runs its quick start without a checkout.

``qlandscape run --example demo`` trains the README's main job (a 4-patch QNN on the built-in digits 0 vs 1) and
computes its Hessian metrics and a landscape slice; ``qlandscape spawn --example demo`` takes the same config. In
a checkout, ``benchmarks/demo.toml`` is the same file (a test checks that they are identical).
"""

from __future__ import annotations

from pathlib import Path

from qlandscape.core.errors import ConfigError

__all__ = ["example_names", "example_path"]

_FOLDER = Path(__file__).parent


def example_names() -> list[str]:
    """The names of the shipped run configs (``demo``, ...)."""
    return sorted(path.stem for path in _FOLDER.glob("*.toml"))


def example_path(name: str) -> Path:
    """The file of the shipped run config ``name``.

    Raises:
        ConfigError: for a name that is not shipped, naming the ones that are.
    """
    names = example_names()
    if name not in names:
        raise ConfigError("example", name, f"expected one of {', '.join(map(repr, names))}")
    return _FOLDER / f"{name}.toml"
