"""Run configs on their own: composition of data, model and training settings, the flat view, validation messages,
run ids (against ids computed by qlandscape 0.1) and overrides."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from qlandscape.core.errors import ConfigError
from qlandscape.core.io import read_toml
from qlandscape.data.config import DataConfig
from qlandscape.models.config import ModelConfig
from qlandscape.runs.config import RunConfig, load_config, parse_override
from qlandscape.runs.sweep import load_sweep
from qlandscape.train.trainer import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(
    classes=[0, 1], max_train=40, max_test=20, qubits=2, layers=1, patch_size=4, stride=4, epochs=1, batch_size=10
)

# Run ids that qlandscape 0.1 computed for the committed benchmark configs (a run config: its id; a sweep: the ids
# of its grid points in grid order), so that their run directories and resumable sweeps keep their names.
IDS_0_1 = {
    "benchmarks/demo.toml": "32b0893bfca5",
    "benchmarks/dqnn_params_patches.toml": (
        "eeeeec308d49 446fd48ebe41 69c0ec4e2f48 95acf3ed22b2 69b52fe663ea faa8326d9051 dee55bde1ffc e65a301cd20d "
        "676dd88ca368 1f55e7ada5aa 162715b88cf0 53c013e00c90 a980281e1684 d2a13961d0e7 b723861aa202 028cd93cfae2 "
        "8ac5b78b70ae 60f57ab9ae05 83ae0e9a3606 bd4e81671870 87740c4168ba 42c11b91ee2f 800c2a65391f 2f966082acfb "
        "4d03da006ae4 b595effb527b 2fd32542ab86 6635bc5d2db7 ac820b6b6433 f3b2f480a938 1187dbf7c373 ac05affae1ff "
        "c8e5a4e1d8e0 2d5fd6849615 17069b3dce16 5f642c3a0b25 2cafbfc6b487 417c8078e6b8 7072dd2daf9c 10d2c0ea009d "
        "52c89a0eb599 20bffab77b0e 53b1be93c9be 0d7374faa108 c018c67fb5cd 51391633e72d 403e57cfa967 68867ca91dee"
    ),
    "benchmarks/fort_ntk.toml": "059dfac71644 952dabf3065d ca56bf88a85e 2de3089ab85b aab611d4dab2 603ff6d14fb9",
    "benchmarks/kawase/digits.toml": (
        "3cb7578d2831 7b0d6b4c58cf d8554f5fe789 39e89ff7b5bd 057eb3c23a5f 6e4c30fc0ecc 725ae84daf38 8e6f5d80e781 "
        "29c35b4bd82a 3d559700a60e 4cfa7993535c b357c3dbff25 e17c76ba2ed7 00d44b8a5e95 a4b885a8aeee 48d2d504bc98 "
        "e4bdf6e1b014 5819fd9cbf04 6a2ce5afd3d2 2dd276b13e01 7846927a19b1 4b4b1478e37c d28b64e8c147 c9771cfdb1fd "
        "e7c77965fb41 e8fc438e8f8b c9be06e1842a"
    ),
    "benchmarks/kawase/paper.toml": (
        "0a31b909e8d8 c5d9d6d913c1 ada225123976 936202cab5fd 255f03ca4259 477f2a6abb73 1520e1fd2895 19f6b23b8e38 "
        "ca9481d51d82 989c5c59fcb9 b86fecdcf78b 20713662207e"
    ),
}


def test_every_committed_benchmark_config_keeps_its_0_1_run_ids(monkeypatch):
    monkeypatch.chdir(ROOT)  # sweeps name their ansatz files relative to the repository root
    configs = sorted(
        str(p.relative_to(ROOT)) for p in [*ROOT.glob("benchmarks/*.toml"), *ROOT.glob("benchmarks/kawase/*.toml")]
    )
    run_configs = [p for p in configs if "block" not in read_toml(p, "config")]  # not circuit specs
    assert sorted(IDS_0_1) == run_configs  # a new benchmark config gets its ids here too
    for path, expected in IDS_0_1.items():
        data = read_toml(path, "config")
        ids = load_sweep(path).run_ids() if "grid" in data else [load_config(path).run_id()]
        assert ids == expected.split(), path


def test_a_run_config_is_its_data_model_and_training_settings():
    config = RunConfig.from_dict({**TINY, "lr": 0.1, "dataset": "digits", "width": 7})
    assert isinstance(config.data, DataConfig) and isinstance(config.network, ModelConfig)
    assert isinstance(config.training, TrainConfig)
    assert config.data.classes == (0, 1) and config.data.max_train == 40
    assert (config.network.qubits, config.network.width, config.network.stride) == (2, 7, 4)
    assert (config.training.lr, config.training.epochs, config.training.batch_size) == (0.1, 1, 10)
    # the flat names read the parts
    assert (config.lr, config.qubits, config.max_train, config.model) == (0.1, 2, 40, "qnn")
    with pytest.raises(AttributeError, match="colour"):
        config.colour  # noqa: B018
    # composed and flat construction give the same config, and flat names override a part
    composed = RunConfig(
        data=DataConfig(classes=(0, 1), max_train=40, max_test=20),
        network=ModelConfig(qubits=2, layers=1, patch_size=4, stride=4, width=7),
        training=TrainConfig(lr=0.1, epochs=1, batch_size=10),
    )
    assert composed == config and composed.run_id() == config.run_id()
    assert RunConfig(training=TrainConfig(lr=0.1), lr=0.2).lr == 0.2
    with pytest.raises(TypeError, match="colour"):
        RunConfig(colour="red")


def test_flat_names_are_one_namespace_in_the_order_of_0_1():
    parts = [
        DataConfig.field_names(),
        ModelConfig.field_names(),
        tuple(f.name for f in dataclasses.fields(TrainConfig)),
    ]
    names = [n for part in parts for n in part]
    assert len(names) == len(set(names))  # no setting name in two parts
    assert sorted(RunConfig.fields()) == sorted([*names, "metrics"])
    assert list(RunConfig().to_dict()) == list(RunConfig.fields())
    assert RunConfig.fields()[:3] == ("model", "dataset", "classes") and RunConfig.fields()[-3:] == (
        "record_every",
        "seed",
        "metrics",
    )


def test_config_hash_is_stable_and_sensitive():
    a, b = RunConfig.from_dict(TINY), RunConfig.from_dict(dict(TINY))
    assert a.run_id() == b.run_id() and len(a.run_id()) == 12
    assert a.replace(seed=1).run_id() != a.run_id()


@pytest.mark.parametrize(
    "field,value",
    [
        ("model", "transformer"),
        ("qubits", 0),
        ("patch_size", -1),
        ("lr", 0.0),
        ("test_fraction", 1.5),
        ("classes", [3]),
        ("optimizer", "lbfgs"),
        ("schedule_unit", "batch"),
        ("colour", "red"),
    ],
)
def test_bad_config_names_value(field, value):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict({field: value})
    assert str(value).strip("[]") in str(err.value) and field in str(err.value)


@pytest.mark.parametrize(
    "field,value",
    [
        ("angle_range", 5),
        ("angle_range", [0, "x"]),
        ("classes", 3),
        ("test_fraction", "a"),
        ("dropout", "x"),
        ("output_scale", "x"),
        ("encoding_scale", "x"),
        ("momentum", "0.9"),
        ("weight_decay", -1),
        ("schedule_period", 0),
        ("lr", True),
        ("positional_bias", "false"),
        ("batch_norm", 3),
        ("observables", "Z"),
        ("loss", "hinge"),
        ("seed", np.int64(3)),
    ],
)
def test_bad_field_types_are_config_errors(field, value):
    # "false" from `--set positional_bias=False` (not TOML, so kept as text) used to switch the bias on
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict({field: value})
    assert err.value.field == field


def test_each_part_validates_its_own_settings_once(monkeypatch):
    # the training settings are checked by TrainConfig itself (its message), with the config file named
    with pytest.raises(ConfigError, match="c.toml: lr = -1.0 is not allowed; expected a finite positive learning rate"):
        RunConfig.from_dict({"lr": -1}, source="c.toml")
    calls = {DataConfig: 0, ModelConfig: 0, TrainConfig: 0}
    for part in calls:
        check = part.validate

        def counted(self, *args, _check=check, _part=part, **kwargs):
            calls[_part] += 1
            return _check(self, *args, **kwargs)

        monkeypatch.setattr(part, "validate", counted)
    RunConfig.from_dict(TINY)
    assert calls == {DataConfig: 1, ModelConfig: 1, TrainConfig: 1}
    with pytest.raises(ConfigError, match="max_train"):
        DataConfig(max_train=0).validate()
    with pytest.raises(ConfigError, match="give either stride or patches"):
        ModelConfig(stride=2, patches=3).validate()
    with pytest.raises(ConfigError, match="loss = 'hinge'"):
        TrainConfig(loss="hinge").validate()


def test_metric_tables_are_checked_with_the_config():
    with pytest.raises(ConfigError, match="metrics.hessian.method = 'dens'"):
        RunConfig.from_dict({"metrics": {"hessian": {"method": "dens"}}})
    among = r"among \['hessian', 'landscape', 'modes', 'ntk', 'robustness'\]"
    with pytest.raises(ConfigError, match=rf"metrics = 'hesian'.*{among}"):
        RunConfig.from_dict({"metrics": {"hesian": {}}})
    # what a finished run recorded loads without its metrics being registered
    config = RunConfig.from_dict({"metrics": {"gone": {"x": 1}}}, check_metric_names=False)
    assert config.metrics == {"gone": {"x": 1}}


def test_run_ids_survive_fields_added_later():
    """Ids hash the whole config, except fields added after the first release while at their default, so run
    directories written before schedule_unit existed keep their names and old sweeps still resume."""
    assert RunConfig().run_id() == "502ac814add8"
    assert RunConfig(model="mlp", seed=3).run_id() == "a6fed072fbbf"
    assert RunConfig(schedule_unit="epoch").run_id() != RunConfig().run_id()


def test_whole_numbers_in_float_fields_give_one_run_id():
    """lr = 1 and lr = 1.0 are the same setting, so the same run (a sweep's grid [1, 1.0] is one run)."""
    assert RunConfig(lr=1).run_id() == RunConfig(lr=1.0).run_id()
    assert (
        RunConfig.from_dict({"angle_range": [0, 3], "output_scale": 5}).run_id()
        == RunConfig.from_dict({"angle_range": [0.0, 3.0], "output_scale": 5.0}).run_id()
    )
    assert RunConfig(lr=1).lr == 1.0 and isinstance(RunConfig(lr=1).lr, float)
    assert RunConfig(training=TrainConfig(lr=1)).lr == 1.0  # given as a part too
    assert RunConfig().run_id() == "502ac814add8"  # defaults are floats already: old ids are kept


def test_toml_config_and_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("qubits = 3\nclasses = [0, 1, 2]\n[metrics]\n")
    config = load_config(path)
    assert config.qubits == 3 and config.classes == (0, 1, 2)
    assert parse_override("classes=[1,7]") == ("classes", [1, 7])
    assert parse_override("backend=default.qubit") == ("backend", "default.qubit")
    with pytest.raises(ConfigError, match="nope.toml"):
        load_config(tmp_path / "nope.toml")
    changed = config.replace(lr=0.2, epochs=3)
    assert (changed.lr, changed.epochs, changed.qubits) == (0.2, 3, 3) and config.lr == 0.05
    with pytest.raises(ConfigError, match="epochs = -1"):
        config.replace(epochs=-1)
