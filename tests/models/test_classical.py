"""Classical models: shapes, seeding, config errors, Hessians against a by-hand reference, batch-norm handling."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from qlandscape.core.errors import ConfigError
from qlandscape.core.objective import Objective
from qlandscape.models import build_model, count_parameters
from qlandscape.models.classical import CNN, MLP, build_classical, recompute_bn_statistics
from qlandscape.runs.config import RunConfig


def _data(n=12, shape=(4, 4), classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, *shape, generator=g, dtype=torch.float64), torch.randint(0, classes, (n,), generator=g))


# ------------------------------------------------------------------------------------------- shapes, seeds
def test_mlp_shapes_and_parameter_count():
    model = MLP((8, 8), 10, width=32, depth=2)
    assert model.n_params == 64 * 32 + 32 + 32 * 32 + 32 + 32 * 10 + 10 == count_parameters(model)
    assert model(torch.zeros(5, 8, 8, dtype=torch.float64)).shape == (5, 10)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert MLP((8, 8), 3, depth=0).n_params == 64 * 3 + 3  # a linear classifier
    assert MLP((2, 4, 4), 3, depth=1, width=5).n_params == 32 * 5 + 5 + 5 * 3 + 3


def test_cnn_shapes_pooling_and_channels():
    model = CNN((8, 8), 10, channels=(8, 16))
    assert model.feature_shape == (16, 2, 2)
    assert model.n_params == (8 * 9 + 8) + (16 * 8 * 9 + 16) + (16 * 4 * 10 + 10)
    assert CNN((8, 8), 10, channels=(8, 16), batch_norm=True).n_params == model.n_params + 2 * (8 + 16)
    assert model(torch.zeros(3, 8, 8, dtype=torch.float64)).shape == (3, 10)
    assert model(torch.zeros(3, 1, 8, 8, dtype=torch.float64)).shape == (3, 10)
    # pooling stops once the map is smaller than 2x2
    small = CNN((3, 3), 2, channels=(2, 2, 2))
    assert small.feature_shape == (2, 1, 1)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in small.modules()) == 1
    rgb = CNN((3, 6, 6), 4, channels=(4,))
    assert rgb(torch.zeros(2, 3, 6, 6, dtype=torch.float64)).shape == (2, 4)
    with pytest.raises(ConfigError, match=r"\(2, 6, 6\)"):
        rgb(torch.zeros(2, 6, 6, dtype=torch.float64))


def test_seeded_initialisation_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a, b, c = CNN((8, 8), 3, seed=4), CNN((8, 8), 3, seed=4), CNN((8, 8), 3, seed=5)
    m1, m2 = MLP((8, 8), 3, seed=4), MLP((8, 8), 3, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    va, vb, vc = (torch.nn.utils.parameters_to_vector(m.parameters()) for m in (a, b, c))
    assert torch.equal(va, vb) and not torch.equal(va, vc)
    assert torch.equal(*(torch.nn.utils.parameters_to_vector(m.parameters()) for m in (m1, m2)))


def test_build_classical_from_run_config():
    mlp = build_classical(RunConfig(model="mlp", width=7, depth=3, activation="tanh", seed=2), (8, 8), 4)
    assert isinstance(mlp, MLP) and (mlp.width, mlp.depth, mlp.activation) == (7, 3, "tanh")
    config = RunConfig(model="cnn", channels=(3, 5), batch_norm=True, dropout=0.2)
    cnn = build_model(config.network, (8, 8), 10, seed=config.seed)
    assert isinstance(cnn, CNN) and cnn.channels == (3, 5) and cnn.batch_norm
    assert any(isinstance(m, torch.nn.Dropout) for m in cnn.modules())


@pytest.mark.parametrize(
    "changes, named",
    [
        ({"model": "mlp", "activation": "sigmoid"}, "sigmoid"),
        ({"model": "cnn", "activation": "swish"}, "swish"),
        ({"model": "cnn", "channels": ()}, "channels"),
        ({"model": "cnn", "channels": (4, 0)}, "(4, 0)"),
        ({"model": "mlp", "depth": -1}, "-1"),
        ({"model": "mlp", "width": 0}, "width"),
        ({"model": "qnn"}, "qnn"),
    ],
)
def test_build_classical_bad_values_raise_config_error(changes, named):
    config = RunConfig(**changes)  # constructed without validation: build_classical checks on its own
    with pytest.raises(ConfigError) as info:
        build_classical(config, (8, 8), 3)
    assert named in str(info.value)


def test_bad_constructor_arguments():
    with pytest.raises(ConfigError, match="dropout"):
        MLP((8, 8), 3, dropout=1.0)
    with pytest.raises(ConfigError, match="n_classes"):
        CNN((8, 8), 1)
    with pytest.raises(ConfigError, match="image_shape"):
        CNN((8,), 3)


# ---------------------------------------------------------------------------------- Hessians by hand
def test_mlp_hessian_matches_hand_written_reference():
    x, y = _data(shape=(3, 3))
    model = MLP((3, 3), 3, width=4, depth=2, activation="tanh", seed=1)
    objective = Objective(model, x, y)
    assert objective.names == ("net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias", "net.4.weight", "net.4.bias")

    def loss(theta):
        p = objective.unflatten(theta)
        h = x.reshape(x.shape[0], -1)
        h = torch.tanh(h @ p["net.0.weight"].T + p["net.0.bias"])
        h = torch.tanh(h @ p["net.2.weight"].T + p["net.2.bias"])
        return F.cross_entropy(h @ p["net.4.weight"].T + p["net.4.bias"], y)

    theta = objective.theta0 + 0.1 * torch.randn(objective.n_params, dtype=torch.float64)
    reference = torch.autograd.functional.hessian(loss, theta)
    assert float(loss(theta)) == pytest.approx(float(objective.loss(theta)), abs=1e-14)
    torch.testing.assert_close(objective.hessian(theta), reference, atol=1e-10, rtol=0)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_cnn_hessian_matches_hand_written_reference(batch_norm):
    x, y = _data(n=10, shape=(4, 4))
    model = CNN((4, 4), 3, channels=(2, 3), batch_norm=batch_norm, activation="gelu", seed=3)
    if batch_norm:  # non-trivial running statistics, used as constants in eval mode
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.5, 2.0)
    objective = Objective(model, x, y)
    bn = {n: b for n, b in model.named_buffers()}

    def block(h, p, conv, norm):
        h = F.conv2d(h, p[f"features.{conv}.weight"], p[f"features.{conv}.bias"], padding=1)
        if batch_norm:
            h = F.batch_norm(
                h,
                bn[f"features.{norm}.running_mean"],
                bn[f"features.{norm}.running_var"],
                p[f"features.{norm}.weight"],
                p[f"features.{norm}.bias"],
                training=False,
                eps=1e-5,
            )
        return F.max_pool2d(F.gelu(h), 2)

    def loss(theta):
        p = objective.unflatten(theta)
        first, second = (0, 1), ((4, 5) if batch_norm else (3, None))
        h = block(x.unsqueeze(1), p, *first)
        h = block(h, p, *second).flatten(1)
        head = "head.2"
        return F.cross_entropy(h @ p[f"{head}.weight"].T + p[f"{head}.bias"], y)

    theta = objective.theta0 + 0.1 * torch.randn(objective.n_params, dtype=torch.float64)
    assert float(loss(theta)) == pytest.approx(float(objective.loss(theta)), abs=1e-14)
    torch.testing.assert_close(
        objective.hessian(theta), torch.autograd.functional.hessian(loss, theta), atol=1e-10, rtol=0
    )


# ------------------------------------------------------------------------------------------- batch norm
def _bn_model():
    return CNN((4, 4), 3, channels=(2, 3), batch_norm=True, dropout=0.3, seed=0)


def test_recompute_bn_statistics_leaves_caller_model_unchanged_and_matches_batch_statistics():
    model = _bn_model()
    before = copy.deepcopy(model.state_dict())
    x, _ = _data(n=16)
    theta = torch.nn.utils.parameters_to_vector(model.parameters()).detach() + 0.05
    out = recompute_bn_statistics(model, theta, x)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert model.features[1].momentum == 0.1 and out.features[1].momentum == 0.1
    assert not out.training and all(not m.training for m in out.modules())
    torch.testing.assert_close(torch.nn.utils.parameters_to_vector(out.parameters()), theta, atol=0, rtol=0)
    with torch.no_grad():
        pre_bn = out.features[0](x.unsqueeze(1))
    bn = out.features[1]
    torch.testing.assert_close(bn.running_mean, pre_bn.mean((0, 2, 3)), atol=1e-14, rtol=0)
    torch.testing.assert_close(bn.running_var, pre_bn.var((0, 2, 3), unbiased=True), atol=1e-14, rtol=0)
    assert int(bn.num_batches_tracked) == 1
    # dropout stayed off while gathering statistics: the result is deterministic
    again = recompute_bn_statistics(model, theta, x)
    torch.testing.assert_close(again.features[5].running_mean, out.features[5].running_mean, atol=0, rtol=0)
    # unequal batches (10 + 6): the batch means weighted by batch size, i.e. the mean over all of x
    parts = recompute_bn_statistics(model, theta, x, batch_size=10)
    torch.testing.assert_close(parts.features[1].running_mean, pre_bn.mean((0, 2, 3)), atol=1e-14, rtol=0)
    assert int(parts.features[1].num_batches_tracked) == 2


def test_recompute_bn_statistics_bad_inputs():
    model = _bn_model()
    with pytest.raises(ConfigError, match="theta"):
        recompute_bn_statistics(model, torch.zeros(3, dtype=torch.float64), _data()[0])
    with pytest.raises(ConfigError, match="batch_size"):
        recompute_bn_statistics(model, None, _data()[0], batch_size=0)
