"""The shared ``adversarial`` setting of the Hessian, landscape and NTK metrics: their numbers on a fixed adversarial
set made at the evaluated point, checked against a dense Hessian and losses computed here; variants and titles."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from qlandscape import cli
from qlandscape.attacks import fgsm, pgd
from qlandscape.core.errors import ConfigError
from qlandscape.runs.config import RunConfig
from qlandscape.runs.run import execute_run, load_run, run_metric

TINY = dict(classes=[0, 1], max_train=20, max_test=12, model="mlp", width=4, depth=1, epochs=2, batch_size=10)
PGD = {"attack": "pgd", "eps": 0.2, "steps": 3, "alpha": 0.1}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return execute_run(RunConfig.from_dict(TINY), tmp_path_factory.mktemp("runs"))


def _mean_ce(model, x, y):
    return nn.functional.cross_entropy(model(x), y)


def test_the_hessian_on_adversarial_data_is_the_hessian_of_the_loss_on_inputs_attacked_at_the_point(run_dir):
    scalars = run_metric(run_dir, "hessian", {"adversarial": PGD, "density": False})
    assert scalars["hessian.variant"] == "hessian_dense_adv_pgd_linf_eps0.2"
    assert scalars["hessian.data"].startswith("adversarial inputs (PGD-linf eps=0.2 (3 x 0.1)")
    run = load_run(run_dir)
    model = run.model.double().eval()
    x = torch.as_tensor(run.dataset.x_train)
    y = torch.as_tensor(run.dataset.y_train)
    x_adv = pgd(model, x, y, 0.2, alpha=0.1, steps=3, bounds=run.dataset.input_range)
    params = dict(model.named_parameters())
    names = list(params)
    flat = torch.cat([p.detach().reshape(-1) for p in params.values()])
    sizes = [p.numel() for p in params.values()]

    def loss(theta):
        parts = {n: t.reshape(params[n].shape) for n, t in zip(names, theta.split(sizes), strict=True)}
        return _mean_ce(lambda v: torch.func.functional_call(model, parts, (v,)), x_adv, y)

    eigenvalues = np.linalg.eigvalsh(torch.autograd.functional.hessian(loss, flat).numpy())
    assert scalars["hessian.lambda_max"] == pytest.approx(eigenvalues[-1], rel=1e-9)
    assert scalars["hessian.trace"] == pytest.approx(eigenvalues.sum(), rel=1e-9, abs=1e-12)
    clean = json.loads((run_dir / "run.json").read_text())["manifest"]["hessian"]
    assert "hessian_dense_adv_pgd_linf_eps0.2" in json.dumps(clean)
    assert (run_dir / "figures" / "hessian_dense_adv_pgd_linf_eps0.2_spectrum.png").exists()


def test_the_landscape_on_adversarial_data_is_centred_on_the_adversarial_loss(run_dir):
    table = {"grid": 3, "adversarial": {"attack": "fgsm", "eps": 0.1}, "figures": False}
    scalars = run_metric(run_dir, "landscape", table)
    assert scalars["landscape.variant"] == "landscape_random_filter_adv_fgsm_linf_eps0.1"
    run = load_run(run_dir)
    model = run.model.double().eval()
    x = torch.as_tensor(run.dataset.x_train)
    y = torch.as_tensor(run.dataset.y_train)
    with torch.no_grad():
        expected = float(_mean_ce(model, fgsm(model, x, y, 0.1, bounds=run.dataset.input_range), y))
        clean = float(_mean_ce(model, x, y))
    assert scalars["landscape.center_loss"] == pytest.approx(expected, rel=1e-12)
    assert expected > clean


def test_the_ntk_on_adversarial_data_is_kept_as_its_own_variant(run_dir, capsys):
    assert cli.main(["ntk", str(run_dir), "--subset", "6", "--adversarial", "{attack='fgsm', eps=0.1}"]) == 0
    info = json.loads((run_dir / "run.json").read_text())
    assert info["metrics"]["ntk.variant"] == "ntk_trace_subset6_adv_fgsm_linf_eps0.1"
    assert (run_dir / "figures" / "ntk_trace_subset6_adv_fgsm_linf_eps0.1_kernel_machine.png").exists()


@pytest.mark.parametrize(
    ("table", "field"),
    [({"attack": "cw"}, "metrics.hessian.adversarial"), ({"eps": -1.0}, "metrics.hessian.adversarial")],
)
def test_a_bad_attack_table_fails_before_work(run_dir, table, field):
    with pytest.raises(ConfigError) as info:
        run_metric(run_dir, "hessian", {"adversarial": table})
    assert info.value.field == field
