"""The run-metric registry: a metric defined outside the package, registered, is validated in run configs, computed
by execute_run, offered as a subcommand and summarised by the report; the rules a spec and its settings follow."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from qlandscape import cli
from qlandscape.core import io
from qlandscape.core.errors import ConfigError
from qlandscape.runs import registry
from qlandscape.runs.config import RunConfig
from qlandscape.runs.metric_spec import (
    Headline,
    MetricOutput,
    MetricRun,
    MetricSpec,
    SavedResult,
    choice,
    flag,
    integer,
    number,
)
from qlandscape.runs.report import write_report
from qlandscape.runs.run import execute_run, load_run

TINY = dict(
    classes=[0, 1], max_train=30, max_test=20, qubits=2, layers=1, patch_size=4, patches=2, epochs=1, batch_size=10
)


# ----------------------------------------------------------------------------- a metric from outside the package
@dataclass(frozen=True)
class NormCurve:
    times: np.ndarray
    norms: np.ndarray


@dataclass(frozen=True)
class ParamNormSettings:
    order: int = integer(2, 1, "the norm's order p")
    scale: float = number(1.0, 0, "a factor on the norm")
    point: str = choice("final", ("final", "init"), "the headline point")
    figures: bool = flag(True, "draw the figure")


def compute(run: MetricRun, s: ParamNormSettings) -> MetricOutput:
    norms = s.scale * np.linalg.norm(run.result.trajectory, ord=s.order, axis=1)
    value = norms[-1] if s.point == "final" else norms[0]
    return MetricOutput(
        {"param_norm.value": float(value), "param_norm.n_points": int(norms.size)},
        (SavedResult("param_norm", "param_norm", NormCurve(run.result.times, norms)),),
    )


def figures(output: MetricOutput, s: ParamNormSettings) -> Iterator[tuple[str, Figure]]:
    curve = output.result("param_norm")
    fig, ax = plt.subplots()
    ax.plot(curve.times, curve.norms)
    yield "param_norm", fig


PARAM_NORM = MetricSpec(
    name="param_norm",
    help="p-norm of the parameters along the trajectory",
    settings=ParamNormSettings,
    compute=compute,
    figures=figures,
    headline=(Headline("param_norm.value", "parameter norm", "‖θ‖_p", plot=True),),
)


@pytest.fixture
def param_norm():
    registry.register(PARAM_NORM)
    yield PARAM_NORM
    registry.unregister(PARAM_NORM.name)


def _model_norm(path, order: int) -> float:
    # independent of the trajectory array: the parameters of the model rebuilt from the run directory
    flat = torch.cat([p.detach().reshape(-1) for p in load_run(path).model.parameters()])
    return float(torch.linalg.vector_norm(flat, ord=order))


def test_an_outside_metric_is_validated_in_a_run_config(param_norm):
    config = RunConfig.from_dict({**TINY, "metrics": {"param_norm": {"order": 1}}})
    assert config.metrics == {"param_norm": {"order": 1}}
    for given, needle in [
        ({"order": 0}, "metrics.param_norm.order = 0 is not allowed; expected an integer >= 1"),
        ({"scale": "x"}, "metrics.param_norm.scale = 'x' is not allowed; expected a finite number >= 0"),
        ({"point": "best"}, "metrics.param_norm.point = 'best' is not allowed; expected one of 'final', 'init'"),
        ({"figures": "no"}, "metrics.param_norm.figures = 'no' is not allowed; expected true or false"),
        ({"ordre": 2}, "metrics.param_norm.ordre = 2 is not allowed; expected settings among ['figures', 'order',"),
    ]:
        with pytest.raises(ConfigError) as err:
            RunConfig.from_dict({**TINY, "metrics": {"param_norm": given}}, source="c.toml")
        assert str(err.value).startswith(f"c.toml: {needle}")


def test_an_unregistered_metric_is_a_config_error():
    with pytest.raises(ConfigError, match="metrics = 'param_norm' is not allowed; expected metric tables among"):
        RunConfig.from_dict({"metrics": {"param_norm": {}}})


def test_an_outside_metric_runs_in_execute_run_the_cli_and_the_report(param_norm, tmp_path, capsys):
    config = RunConfig.from_dict({**TINY, "metrics": {"param_norm": {"order": 2, "scale": 2.0}}})
    path = execute_run(config, tmp_path)
    info = io.read_json(path / "run.json")
    assert info["metrics"]["param_norm.value"] == pytest.approx(2.0 * _model_norm(path, 2), rel=1e-12)
    assert info["metrics"]["param_norm.n_points"] == 2 and "param_norm_seconds" in info["timings"]
    assert io.read_npz(path / "arrays.npz")["param_norm.norms"].shape == (2,)
    assert io.load_result(NormCurve, path / "results" / "param_norm").norms[-1] == info["metrics"]["param_norm.value"]
    assert (path / "figures" / "param_norm.png").exists()

    # a subcommand with the settings as options
    with pytest.raises(SystemExit) as exit_help:
        cli.main(["param_norm", "--help"])
    assert exit_help.value.code == 0
    usage = capsys.readouterr().out
    assert "--order ORDER" in usage and "{final,init}" in usage and "--no-figures" in usage
    assert cli.main(["param_norm", str(path), "--order", "1", "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert "parameter norm" in out
    assert io.read_json(path / "run.json")["metrics"]["param_norm.value"] == pytest.approx(_model_norm(path, 1))
    assert cli.main(["param_norm", str(path), "--order", "0"]) == 2
    assert "metrics.param_norm.order = 0" in capsys.readouterr().err

    # the run command prints its headline
    args = ["run", "--out", str(tmp_path), "--quiet", "--seed", "1", "--set", "metrics={param_norm={figures=false}}"]
    args += [f"--set={k}={v}" for k, v in TINY.items()]
    assert cli.main(args) == 0
    assert "param_norm: ‖θ‖_p " in capsys.readouterr().out

    # the report's summary has a column for it, and its figure a panel
    files = write_report(tmp_path)
    with open(files.summary_csv) as handle:
        summary = list(csv.DictReader(handle))
    assert {"param_norm.value.mean", "param_norm.value.std"} <= set(summary[0])
    assert "param_norm.value" in files.markdown.read_text()


def test_a_metric_name_is_registered_once(param_norm):
    with pytest.raises(ConfigError, match="registered already"):
        registry.register(MetricSpec("param_norm", "another", ParamNormSettings, compute))
    assert registry.register(PARAM_NORM) is PARAM_NORM  # the same spec again is fine
    assert [s.name for s in registry.specs()][:3] == ["hessian", "landscape", "ntk"]
    assert registry.get("param_norm") is PARAM_NORM


@dataclass(frozen=True)
class _NoDefault:
    n: int


@pytest.mark.parametrize(
    "changes,needle",
    [
        ({"name": "Param-Norm"}, "metric name = 'Param-Norm'"),
        ({"settings": dict}, "expected a dataclass of settings"),
        ({"settings": _NoDefault}, "expected a default for every setting"),
        ({"headline": (Headline("hessian.lambda_max", "x"),)}, "expected a scalar named param_norm.<what>"),
    ],
)
def test_a_spec_is_checked_when_made(changes, needle):
    kwargs = dict(name="param_norm", help="h", settings=ParamNormSettings, compute=compute)
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.").replace("(", r"\(")):
        MetricSpec(**{**kwargs, **changes})


def test_a_metric_named_like_a_command_is_refused_by_the_cli():
    spec = MetricSpec("report", "clashes with the report command", ParamNormSettings, compute)
    registry.register(spec)
    try:
        with pytest.raises(ConfigError, match="is a qlandscape command"):
            cli.build_parser()
    finally:
        registry.unregister("report")
