"""The adversarial training setting in run configs: recorded in run.json, part of the run id (standard runs keep
theirs), validated before training, one cell of the runs table."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from qlandscape.core.errors import ConfigError
from qlandscape.runs.config import RunConfig, load_config, with_overrides
from qlandscape.runs.run import execute_run, load_run
from qlandscape.runs.sweep import sweep_from_dict
from qlandscape.runs.tables import load_runs
from qlandscape.train.adversarial import AdversarialTraining

TINY = dict(classes=[0, 1], max_train=24, max_test=12, model="mlp", width=4, depth=1, epochs=1, batch_size=8)
ADV = {"attack": "pgd", "eps": 0.2, "steps": 2, "alpha": 0.1, "mix": 0.5}


def test_standard_runs_keep_their_ids_and_adversarial_runs_get_new_ones():
    demo = load_config("benchmarks/demo.toml")
    assert demo.run_id() == "32b0893bfca5"
    assert with_overrides(demo, [("adversarial", {"mix": 0})]).run_id() == "32b0893bfca5"
    adversarial = with_overrides(demo, [("adversarial", ADV)])
    assert adversarial.run_id() != "32b0893bfca5"
    assert adversarial.adversarial == AdversarialTraining(eps=0.2, steps=2, alpha=0.1, mix=0.5)
    other = with_overrides(demo, [("adversarial", {**ADV, "mix": 1.0})])
    assert len({adversarial.run_id(), other.run_id()}) == 2
    assert with_overrides(demo, [("adversarial", {**ADV, "eps": 0.2})]).run_id() == adversarial.run_id()


@pytest.mark.parametrize(("table", "field"), [({"mix": 2.0}, "adversarial.mix"), ({"eps": -1}, "adversarial.eps")])
def test_a_bad_setting_is_refused_with_the_config_source(tmp_path, table, field):
    path = tmp_path / "bad.toml"
    body = ", ".join(f"{k} = {v}" for k, v in table.items())
    path.write_text(f'model = "mlp"\nadversarial = {{ {body} }}\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.field == field and info.value.source == str(path)
    with pytest.raises(ConfigError, match="adversarial.epsilon"):
        RunConfig.from_dict({**TINY, "adversarial": {"epsilon": 0.1}})


def test_an_adversarial_run_records_its_setting_and_loads(tmp_path):
    config = RunConfig.from_dict({**TINY, "adversarial": ADV})
    path = execute_run(config, tmp_path)
    info = json.loads((path / "run.json").read_text())
    assert info["config"]["adversarial"] == {**AdversarialTraining().to_dict(), **ADV}
    run = load_run(path)
    assert run.config.run_id() == config.run_id() == path.name
    assert run.dataset.input_range == (0.0, math.pi)
    standard = execute_run(RunConfig.from_dict(TINY), tmp_path)
    assert "adversarial" not in json.loads((standard / "run.json").read_text())["config"]
    assert not np.allclose(load_run(standard).result.trajectory[-1], run.result.trajectory[-1])
    rows = {row["id"]: row for row in load_runs(tmp_path)}
    assert rows[path.name]["adversarial"] == "pgd linf eps=0.2 steps=2 alpha=0.1 random start mix=0.5"
    assert rows[standard.name]["adversarial"] is None


def test_a_sweep_axis_over_adversarial_settings_keeps_the_standard_run_id():
    sweep = sweep_from_dict({"base": TINY, "grid": {"adversarial": [{"mix": 0.0}, ADV, {**ADV, "mix": 1.0}]}})
    ids = sweep.run_ids()
    assert len(ids) == 3 and ids[0] == RunConfig.from_dict(TINY).run_id()
    assert [c.adversarial.mix if c.adversarial else 0.0 for c in sweep.runs] == [0.0, 0.5, 1.0]
