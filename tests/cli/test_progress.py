"""What the command shows while it works: progress bars on a terminal only (none when piped or with ``--quiet``)
for every long step, "already complete, skipped" for a reused run, and ``-v`` logs naming each step with its
duration."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from qlandscape import cli
from qlandscape.runs.config import RunConfig
from qlandscape.runs.run import execute_run

TINY = dict(
    classes=[0, 1], max_train=30, max_test=20, qubits=2, layers=1, patch_size=4, patches=2, epochs=2, batch_size=10
)
METRICS = (
    "metrics={hessian={trajectory=true,figures=false},landscape={grid=3,batch=2,figures=false},"
    "ntk={subset=5,figures=false}}"
)


class Terminal(io.StringIO):
    """A stderr that says it is a terminal, so that the command draws its progress bars into it."""

    def isatty(self) -> bool:
        return True


def _terminal(monkeypatch) -> Terminal:
    # in the test's body: pytest points sys.stderr at its capture when the test starts, after the fixtures
    tty = Terminal()
    monkeypatch.setattr(sys, "stderr", tty)
    return tty


def _run_args(out) -> list[str]:
    return ["run", "--out", str(out), "--set", METRICS] + [f"--set={k}={json.dumps(v)}" for k, v in TINY.items()]


# the bars of training, the metric phase and each metric's long loop (their tqdm descriptions)
RUN_BARS = ("training", "metrics", "Hessian along trajectory", "2-D slice", "NTK", "kernel machine")


def test_run_draws_a_bar_for_every_long_step_on_a_terminal(tmp_path, monkeypatch, capsys):
    terminal = _terminal(monkeypatch)
    assert cli.main(_run_args(tmp_path)) == 0
    drawn = terminal.getvalue()
    for desc in RUN_BARS:
        assert f"{desc}:" in drawn, desc
    assert "already complete" not in capsys.readouterr().out


def test_run_draws_no_bar_with_quiet_or_when_piped(tmp_path, monkeypatch, capsys):
    terminal = _terminal(monkeypatch)
    assert cli.main([*_run_args(tmp_path / "a"), "--quiet"]) == 0
    assert cli.main(["-q", *_run_args(tmp_path / "b")]) == 0
    assert terminal.getvalue() == ""
    capsys.readouterr()


def test_no_bar_when_stderr_is_not_a_terminal(tmp_path, capsys):
    assert cli.main(_run_args(tmp_path)) == 0
    assert not any(f"{desc}:" in capsys.readouterr().err for desc in RUN_BARS)


def test_a_reused_run_says_already_complete_skipped(tmp_path, capsys):
    assert cli.main([*_run_args(tmp_path), "-q"]) == 0
    first = capsys.readouterr().out
    assert "already complete" not in first
    assert cli.main([*_run_args(tmp_path), "-q"]) == 0
    second = capsys.readouterr().out.splitlines()
    assert second[1] == "already complete, skipped (--force trains it again)"
    assert cli.main([*_run_args(tmp_path), "-q", "--force"]) == 0
    assert "already complete" not in capsys.readouterr().out


def test_verbose_logs_each_step_with_its_duration(tmp_path, caplog, capsys):
    with caplog.at_level(logging.INFO):
        assert cli.main(["-v", *_run_args(tmp_path), "-q"]) == 0
    messages = [r.getMessage() for r in caplog.records]
    for step in (
        "loading the data (digits)",
        "building the model (qnn)",
        "training (8 parameters, 2 epochs, 30 samples)",  # 2 patches x 2 qubits x 1 layer x 2 angles
        "computing hessian",
        "computing landscape",
        "computing ntk",
        "writing the run directory",
    ):
        assert any(m.startswith(step) and ": done in " in m for m in messages), step
    assert any(m.startswith("qlandscape run on 1 torch thread") for m in messages)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert cli.main([*_run_args(tmp_path), "-q"]) == 0
    assert any("already complete; skipped" in r.getMessage() for r in caplog.records)
    capsys.readouterr()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return execute_run(RunConfig.from_dict(TINY), tmp_path_factory.mktemp("runs"))


@pytest.mark.parametrize(
    "args,desc",
    [
        (["hessian", "--trajectory", "--no-figures"], "Hessian along trajectory"),
        (["landscape", "--grid", "3", "--batch", "2", "--no-figures"], "2-D slice"),
        (["landscape", "--directions", "pca", "--grid", "3", "--batch", "2", "--no-figures"], "2-D slice"),
        (["ntk", "--subset", "5", "--no-figures"], "NTK"),
    ],
)
def test_metric_commands_draw_their_bars(run_dir, args, desc, monkeypatch, capsys):
    terminal = _terminal(monkeypatch)
    assert cli.main([args[0], str(run_dir), *args[1:]]) == 0
    assert f"{desc}:" in terminal.getvalue()
    terminal.seek(0)
    terminal.truncate()
    assert cli.main([args[0], str(run_dir), *args[1:], "--quiet"]) == 0
    assert terminal.getvalue() == ""
    capsys.readouterr()


def test_report_and_sweep_draw_their_bars(tmp_path, monkeypatch, capsys):
    terminal = _terminal(monkeypatch)
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(
        "[base]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in TINY.items()) + "[grid]\nseed = [0, 1]\n"
    )
    assert cli.main(["sweep", str(sweep), "--out", str(tmp_path / "runs"), "--workers", "1"]) == 0
    assert "sweep:" in terminal.getvalue()
    assert cli.main(["report", str(tmp_path / "runs"), "--no-pdf"]) == 0
    assert "report figures:" in terminal.getvalue()
    capsys.readouterr()
    assert cli.main(["sweep", str(sweep), "--out", str(tmp_path / "runs"), "--workers", "1"]) == 0
    assert "2 of 2 runs already complete or diverged" in capsys.readouterr().out
