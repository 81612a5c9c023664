"""Build the API reference from the docstrings with pdoc, and fail on any pdoc warning or broken reference.

    python docs/build_api.py                 # HTML into docs/api (open docs/api/index.html)
    python docs/build_api.py --out DIR
    python docs/build_api.py --check-only    # the checks without writing HTML

``make docs`` runs it; ``make check`` and CI (``.ci/run``) include it. It fails (exit 1, one line per problem) when

* pdoc warns: a name in an ``__all__`` that does not resolve, a docstring or annotation pdoc cannot read, ...;
* a reference ``qlandscape.x.y`` in a documented docstring, ``README.md``, ``CONTRIBUTING.md`` or ``docs/*.md``
  does not resolve to a module or an object, names an internal object (one left out of its module's
  ``__all__``), or, in a docstring, uses a 0.1 module path (``qlandscape.objective``: deprecated, kept by
  ``qlandscape._compat``). ``CHANGELOG.md`` is history and names old paths on purpose.

The reference documents every public module: those whose dotted names have no leading underscore, except the
internal modules of ``INTERNAL_MODULES``. Within a module only the names of its ``__all__`` are documented.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType

import pdoc
import pdoc.doc
import pdoc.extract
import pdoc.render

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "qlandscape"
# Modules that implement one layer and are no one's API: the engine's lowering and kernels, and the modules of
# the command's subcommands (the command line is their interface: `qlandscape NAME --help`).
INTERNAL_MODULES = (
    "qlandscape.sim.lowering",
    "qlandscape.sim.gate_matrices",
    "qlandscape.sim.blocks",
    "qlandscape.sim.product_readout",
    # the command line's modules: their interface is the command itself
    "qlandscape.cli.circuits",
    "qlandscape.cli.commands",
    "qlandscape.cli.gradvar",
    "qlandscape.cli.lists",
    "qlandscape.cli.metric",
    "qlandscape.cli.metric_run",
    "qlandscape.cli.report",
    "qlandscape.cli.run",
    "qlandscape.cli.runtime",
    "qlandscape.cli.show",
    "qlandscape.cli.spawn",
    "qlandscape.cli.sweep",
)
MARKDOWN = ("README.md", "CONTRIBUTING.md", "docs/*.md")
# a dotted name under the package, not part of a longer name, a path or a file name
REFERENCE = re.compile(r"(?<![\w./-])~?(qlandscape(?:\.[A-Za-z_]\w*)+)")


def all_modules() -> list[str]:
    """Every module of the package (private ones included, ``__main__`` modules left out: importing one runs the
    command), in walk order."""
    package = importlib.import_module(PACKAGE)
    walked = (m.name for m in pkgutil.walk_packages(package.__path__, PACKAGE + "."))
    return [PACKAGE, *(name for name in walked if not name.endswith(".__main__"))]


def public_modules() -> list[str]:
    """The modules the reference documents."""
    return [
        name
        for name in all_modules()
        if not any(part.startswith("_") for part in name.split(".")) and name not in INTERNAL_MODULES
    ]


def materialise_lazy_names(modules: Iterable[str]) -> None:
    """Set the names a package face loads lazily (module ``__getattr__``) as attributes: pdoc looks names of an
    ``__all__`` up in the module's ``__dict__``."""
    for name in modules:
        module = importlib.import_module(name)
        if "__getattr__" in vars(module):
            for attr in getattr(module, "__all__", ()):
                setattr(module, attr, getattr(module, attr))


def deprecated_prefixes() -> tuple[str, ...]:
    """The 0.1 module paths that ``qlandscape._compat`` still resolves, with a DeprecationWarning."""
    compat = importlib.import_module("qlandscape._compat")
    return tuple(compat.MOVED)


def resolve(reference: str) -> tuple[object | None, str | None]:
    """The object a dotted reference names, or None with the reason it does not resolve or is not public."""
    parts = reference.split(".")
    module: ModuleType | None = None
    depth = 0
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                module = importlib.import_module(name)
            depth = i
        except ImportError:
            break
    if module is None:
        return None, "no such module"
    obj: object = module
    for i, part in enumerate(parts[depth:]):
        owner = obj
        try:
            obj = getattr(owner, part)
        except AttributeError:
            return None, f"{'.'.join(parts[: depth + i])} has no attribute {part!r}"
        public = getattr(owner, "__all__", None)
        dunder = part.startswith("__") and part.endswith("__")  # __all__, __version__: every module's
        if isinstance(owner, ModuleType) and public is not None and part not in public and not dunder:
            if not isinstance(obj, ModuleType):
                return None, f"{part!r} is internal: not in {owner.__name__}.__all__"
    return obj, None


def check_text(text: str, where: str, *, allow_deprecated: bool) -> Iterator[str]:
    """One problem line for each reference in ``text`` that does not resolve or is not public."""
    old = deprecated_prefixes()
    for match in REFERENCE.finditer(text):
        reference = match.group(1)
        if not allow_deprecated and any(reference == p or reference.startswith(p + ".") for p in old):
            yield f"{where}: {reference} is a 0.1 module path; use its new home (qlandscape._compat.MOVED)"
            continue
        _, problem = resolve(reference)
        if problem is not None:
            yield f"{where}: {reference} does not resolve ({problem})"


def docstring_problems(modules: Iterable[str]) -> Iterator[str]:
    """Broken references in the docstrings pdoc documents: each module's and its own public members'."""
    for name in modules:
        module = pdoc.doc.Module.from_name(name)
        yield from check_text(module.docstring, name, allow_deprecated=False)
        for member in module.flattened_own_members:
            yield from check_text(member.docstring, member.fullname, allow_deprecated=False)


def markdown_problems(root: Path = ROOT) -> Iterator[str]:
    """Broken references in the user and contributor documentation (0.1 paths allowed: they are explained)."""
    for pattern in MARKDOWN:
        for path in sorted(root.glob(pattern)):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                yield from check_text(line, f"{path.relative_to(root)}:{number}", allow_deprecated=True)


def pdoc_specs(modules: list[str]) -> list[str]:
    """The fewest module names that make pdoc walk to every module of ``modules`` (pdoc walks into the
    submodules of a package, except those its ``__all__`` leaves out), plus exclusions of the rest."""
    wanted = set(modules)
    specs: list[str] = []
    reached: set[str] = set()
    for name in modules:
        if name not in reached:
            specs.append(name)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reached.update(pdoc.extract.walk_specs([name]))
    specs += [f"!{re.escape(name)}$" for name in sorted(reached - wanted)]
    return specs


def build(out: Path | None) -> list[str]:
    """Render the reference into ``out`` (a temporary folder when None); every problem found, as text."""
    modules = public_modules()
    materialise_lazy_names(all_modules())
    pdoc_dir = str(Path(pdoc.__file__).parent)
    pdoc.render.configure(docformat="restructuredtext", show_source=False, search=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tempfile.TemporaryDirectory() as scratch:
            pdoc.pdoc(*pdoc_specs(modules), output_directory=out or Path(scratch))
    problems = [
        f"pdoc: {str(w.message).strip()}" for w in caught if str(Path(w.filename).resolve()).startswith(pdoc_dir)
    ]
    problems += docstring_problems(modules)
    problems += markdown_problems()
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "api", help="output folder (default: docs/api)")
    parser.add_argument("--check-only", action="store_true", help="run the checks, write no HTML")
    args = parser.parse_args(argv)
    problems = build(None if args.check_only else args.out)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"API reference: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"API reference: {len(public_modules())} modules" + ("" if args.check_only else f" in {args.out}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
