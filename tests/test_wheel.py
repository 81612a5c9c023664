"""The wheel: what it ships (every module, the type information, the demo's config, the license and an SPDX license
expression), and that the wheel installed in a fresh virtual environment runs the README's quick start (about 7 s
on 2 cores, the demo's training and metrics included).

The wheel is built offline from a copy of the sources (``pip wheel --no-build-isolation`` with this environment's
setuptools), so the checkout gets no ``build/`` folder. The fresh environment sees this environment's packages
(torch, PennyLane, ...) through a ``.pth`` file instead of installing them, and nothing of the checkout.
"""

from __future__ import annotations

import email.parser
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from qlandscape.cli.app import main
from qlandscape.core.errors import ConfigError
from qlandscape.examples import example_names, example_path
from qlandscape.runs.config import load_config

ROOT = Path(__file__).parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "qlandscape", "circuits")
QUICK_START = "qlandscape --threads 1 run --example demo --out runs/demo"  # as the README writes it


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """The built wheel and pip's build log."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation", "--no-index"]
    out = subprocess.run([*command, "-w", str(base / "dist"), str(source)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    (built,) = (base / "dist").glob("qlandscape-*.whl")
    return built, out.stdout + out.stderr


def test_the_wheel_ships_the_package_its_types_the_demo_and_the_license(wheel):
    built, log = wheel
    names = set(zipfile.ZipFile(built).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "qlandscape").rglob("*.py")}
    assert modules <= names
    catalogue = {f"qlandscape/circuits_catalogue/{p.name}" for p in (ROOT / "circuits").glob("*.toml")}
    assert catalogue and catalogue <= names
    assert {"qlandscape/py.typed", "qlandscape/__init__.pyi", "qlandscape/examples/demo.toml"} <= names
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    assert f"{dist_info}/licenses/LICENSE" in names
    with zipfile.ZipFile(built) as archive:
        metadata = email.parser.Parser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
        assert archive.read("qlandscape/examples/demo.toml") == (ROOT / "benchmarks" / "demo.toml").read_bytes()
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert metadata["License"] is None  # the deprecated free-text field is gone
    assert "deprecated" not in log.lower(), "the build warns about a deprecated setting"


def test_the_build_requirement_has_the_spdx_license_support():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "setuptools>=77" in project["build-system"]["requires"]  # PEP 639 license expressions
    assert project["project"]["license"] == "MIT"
    assert "MIT License" in (ROOT / "LICENSE").read_text()


def test_the_shipped_demo_is_the_checkout_demo():
    shipped = ROOT / "qlandscape" / "examples" / "demo.toml"
    assert shipped.read_bytes() == (ROOT / "benchmarks" / "demo.toml").read_bytes()
    assert load_config(shipped).run_id() == "32b0893bfca5"  # the run directory the README shows


def test_the_readme_gives_the_quick_start_this_test_runs():
    assert QUICK_START in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_installed_wheel_runs_the_quick_start(wheel, tmp_path):
    built, _ = wheel
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # this environment's dependencies, after the fresh environment's own site-packages
    paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(purelib) / "outer_environment.pth").write_text("\n".join(paths) + "\n")
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index"]
    subprocess.run([*install, str(built)], check=True, capture_output=True)

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    where = subprocess.run(
        [python, "-c", "import qlandscape; print(qlandscape.__file__)"], cwd=tmp_path, env=env, capture_output=True
    )
    assert Path(where.stdout.decode().strip()).is_relative_to(venv), "the wheel's package is not the one imported"

    out = subprocess.run(["bash", "-c", QUICK_START], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    run_id = load_config(ROOT / "benchmarks" / "demo.toml").run_id()
    assert f"run directory: runs/demo/{run_id}" in out.stdout
    assert "status: complete" in out.stdout
    run_dir = tmp_path / "runs" / "demo" / run_id
    assert (run_dir / "run.json").is_file() and (run_dir / "figures" / "landscape_random_filter_contour.png").is_file()


def test_an_example_is_named_and_given_instead_of_a_config(tmp_path, capsys):
    assert example_names() == ["demo"]
    with pytest.raises(ConfigError, match="example = 'dem' is not allowed; expected one of 'demo'"):
        example_path("dem")
    config = tmp_path / "mine.toml"
    config.write_text("epochs = 1\n")
    assert main(["run", str(config), "--example", "demo", "--out", str(tmp_path)]) == 2
    assert "--example = 'demo' is not allowed; expected either a config file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--example", "dem", "--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert "invalid choice: 'dem'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [config]  # nothing trained
