"""A fast start: the command line lists every subcommand and builds every metric subcommand's options from the
registry without loading torch, matplotlib, scipy or scikit-learn (the metric specs are declarations; their
computation is loaded when it runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "matplotlib", "scipy", "sklearn", "pennylane")


def _loaded_after(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; the heavy libraries and the metric hook modules it loaded, and what it
    printed before."""
    probe = (
        "import json, sys\n"
        f"{code}\n"
        "print(json.dumps({'heavy': sorted({m.split('.')[0] for m in sys.modules} & set(" + repr(HEAVY) + ")), "
        "'hooks': sorted(m for m in sys.modules if m.startswith('qlandscape.runs.metric_hooks'))}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_app_the_registry_and_every_metric_parser_load_no_heavy_library():
    code = (
        "import qlandscape.cli.app, qlandscape.runs.registry\n"
        "from qlandscape.cli.app import build_parser\n"
        "from qlandscape.runs.registry import specs\n"
        "names = [s.name for s in specs()]\n"
        "assert {'hessian', 'landscape', 'ntk'} <= set(names)\n"
        "build_parser([]).format_help()\n"  # what qlandscape --help builds: every command listed
        "parser = build_parser(names)\n"  # every metric subcommand with all its options
        "sub = next(a for a in parser._actions if a.dest == 'command')\n"
        "for name in names:\n"
        "    sub.choices[name].format_help()\n"
    )
    assert _loaded_after(code) == {"heavy": [], "hooks": []}


@pytest.mark.parametrize("argv", [["--help"], ["hessian", "--help"], ["landscape", "--help"], ["ntk", "--help"]])
def test_help_loads_no_heavy_library(argv):
    code = (
        "from qlandscape.cli.app import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit as exit_:\n"
        "    assert exit_.code == 0\n"
    )
    assert _loaded_after(code) == {"heavy": [], "hooks": []}


def test_parsing_a_metric_command_loads_nothing_of_its_computation():
    # the settings are parsed and checked from the spec alone, before the run is read
    code = (
        "from qlandscape.cli.app import build_parser\n"
        "args = build_parser(['landscape']).parse_args(['landscape', 'RUN', '--grid', '5', '--directions', 'pca'])\n"
        "from qlandscape.cli.metric import settings_from_args\n"
        "from qlandscape.runs.registry import get\n"
        "spec = get('landscape')\n"
        "assert spec.parse(settings_from_args(spec, args)).grid == 5\n"
    )
    assert _loaded_after(code) == {"heavy": [], "hooks": []}
