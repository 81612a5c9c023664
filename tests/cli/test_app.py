"""The command line as a whole: every option has help and shows its default, global options go before or after the
subcommand, lists are comma-separated everywhere, ``--version`` and ``python -m qlandscape``, and a command's start
loads only its own code."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

import qlandscape
from qlandscape import cli
from qlandscape.cli.app import COMMANDS, HelpFormatter, build_parser, scan, stray_values
from qlandscape.cli.commands import BUILTIN
from qlandscape.runs import registry

ROOT = Path(__file__).resolve().parents[2]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
    )
    return done.stdout.strip()


def test_every_option_of_every_subcommand_has_help_and_shows_its_default():
    parser = build_parser()
    subs = _subparsers(parser)
    assert set(subs) == set(COMMANDS) | {spec.name for spec in registry.specs()}
    checked = 0
    for name, sub in [("qlandscape", parser), *subs.items()]:
        formatter = HelpFormatter(prog=name)
        for action in sub._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                continue
            assert action.help, (name, action.dest)
            shown = formatter._expand_help(action)
            if action.option_strings and action.nargs != 0:  # a flag is off unless given; the rest say
                assert "(default: " in shown, (name, action.option_strings, shown)
            checked += 1
        text = sub.format_help()
        assert "-v, --verbose" in text and "--threads N" in text and "-q, --quiet" in text, name
    assert checked > 80


def test_defaults_are_shown_as_they_are_typed():
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
    parser.add_argument("--layers", default=(1, 2), help="layer counts")
    parser.add_argument("--out", default="runs", help="folder")
    parser.add_argument("--grid", default=21, help="points (default: 21 per axis)")
    text = " ".join(parser.format_help().split())
    assert "layer counts (default: 1,2)" in text and "folder (default: runs)" in text
    assert "points (default: 21 per axis)" in text and "(default: 21 per axis) (default" not in text


@pytest.mark.parametrize(
    "argv",
    [
        ["-v", "--threads", "2", "circuits", "--qubits", "3"],
        ["circuits", "--qubits", "3", "-v", "--threads", "2"],
        ["-v", "circuits", "--threads=2", "--qubits", "3"],
        ["--threads", "2", "circuits", "--verbose", "--qubits", "3"],
    ],
)
def test_global_options_go_before_or_after_the_subcommand(argv):
    args = build_parser(["circuits"]).parse_args(argv)
    assert args.verbose is True and args.threads == 2 and args.quiet is False and args.qubits == 3
    args = build_parser(["circuits"]).parse_args(["circuits", "-q"])
    assert args.quiet is True and args.verbose is False and args.threads is None


def test_scan_finds_the_subcommand_behind_global_options():
    assert scan(["-v", "--threads", "2", "run", "x.toml"]) == ("run", False)
    assert scan(["--threads=2", "-q", "hessian", "RUN"]) == ("hessian", False)
    assert scan(["--version"]) == (None, True)
    assert scan(["--help"]) == (None, False)
    assert scan([]) == (None, False)


def test_a_space_separated_list_is_refused_with_the_comma_form(capsys):
    assert cli.main(["circuits", "--layers", "1", "2", "4", "--qubits", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "qlandscape circuits: error: --layers = '1 2 4' is not allowed; expected one argument; list items are "
        "comma-separated, without spaces: --layers 1,2,4"
    )
    assert cli.main(["gradvar", "--qubits", "2", "3", "--layers", "1"]) == 2
    assert "--qubits 2,3" in capsys.readouterr().err
    assert cli.main(["run", "--set", "lr=0.1", "epochs=2"]) == 2
    assert "config = 'epochs=2'" in (err := capsys.readouterr().err) and "one per --set" in err
    assert str(stray_values(["run", "--set", "a=1", "b=2"], ["b=2"])).startswith("--set = 'a=1 b=2'")
    assert stray_values(["run", "--bogus"], ["--bogus"]) is None
    with pytest.raises(SystemExit):
        cli.main(["circuits", "--bogus"])


def test_every_list_option_reads_commas_and_integer_ranges(capsys):
    assert cli.main(["circuits", "--qubits", "3", "--layers", "1:3"]) == 0
    header = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("ansatz"))
    assert header.split()[2:] == ["L=1", "L=2", "L=3"]
    assert cli.main(["circuits", "--qubits", "3", "--layers", "1,4:5"]) == 0
    header = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("ansatz"))
    assert header.split()[2:] == ["L=1", "L=4", "L=5"]
    assert cli.main(["circuits", "--layers", "1;2"]) == 2
    assert "--layers = '1;2' is not allowed; expected comma-separated integers" in capsys.readouterr().err


def test_threads_is_checked_before_any_work(tmp_path, capsys):
    assert cli.main(["run", "--out", str(tmp_path), "--threads", "0"]) == 2
    assert "--threads = 0 is not allowed; expected an integer >= 1" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_version_and_python_dash_m(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"qlandscape {qlandscape.__version__}"
    for module in ("qlandscape", "qlandscape.cli"):
        done = subprocess.run(
            [sys.executable, "-m", module, "--version"],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env={"PYTHONPATH": str(ROOT)},
        )
        assert done.stdout.strip() == f"qlandscape {qlandscape.__version__}"


def test_top_level_help_lists_every_command_with_its_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for command in BUILTIN:
        assert f"{command.name} {command.help}" in text
    for spec in registry.specs():
        assert f"{spec.name} {spec.help}" in text
    assert "global options (before or after the command)" in text


def test_a_command_loads_only_its_own_code():
    # --version needs nothing; circuits needs neither the metric registry nor the run machinery
    code = (
        "import sys; from qlandscape.cli.app import main; main(['--version']); "
        "print(sorted(m for m in ('torch', 'matplotlib', 'qlandscape.runs.registry') if m in sys.modules))"
    )
    assert _run_python(code).splitlines()[-1] == "[]"
    code = (
        "import sys; from qlandscape.cli.app import main; main(['circuits', '--qubits', '2']); "
        "print(sorted(m for m in ('qlandscape.runs.registry', 'qlandscape.runs.run', 'qlandscape.cli.run') "
        "if m in sys.modules))"
    )
    assert _run_python(code).splitlines()[-1] == "[]"


def test_the_table_names_each_module_that_implements_a_command():
    parser = build_parser()
    subs = _subparsers(parser)
    for command in BUILTIN:
        assert subs[command.name].get_default("func").__module__ == command.module
        assert subs[command.name].description == command.help
