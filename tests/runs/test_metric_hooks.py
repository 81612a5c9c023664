"""A metric spec is a declaration: its functions may be references (``hook("module:function")``) imported when first
called. Every built-in reference resolves to the function of its hook module, a bad reference names itself, plain
callables still work, and the choices a spec restates from the computation are the computation's."""

from __future__ import annotations

import dataclasses
import sys
import textwrap

import pytest

from qlandscape.core.errors import ConfigError
from qlandscape.metrics.landscape import directions, slices
from qlandscape.metrics.landscape.directions import NORMALIZATION_CHOICES
from qlandscape.metrics.landscape.slices import PERIOD_RESOLUTION
from qlandscape.runs import registry
from qlandscape.runs.metric_hooks import hessian as hessian_hooks
from qlandscape.runs.metric_hooks import landscape as landscape_hooks
from qlandscape.runs.metric_hooks import ntk as ntk_hooks
from qlandscape.runs.metric_spec import HOOKS, Hook, MetricOutput, MetricSpec, flag, hook
from qlandscape.runs.metric_specs import landscape

HOOK_MODULES = {"hessian": hessian_hooks, "landscape": landscape_hooks, "ntk": ntk_hooks}


@pytest.mark.parametrize("name", sorted(HOOK_MODULES))
def test_every_built_in_reference_resolves_to_its_hook_module_function(name):
    spec = registry.get(name)
    assert set(spec.hooks()) == set(HOOKS)  # the whole behaviour is loaded on first use
    assert spec.resolve() is spec
    for what, function in spec.hooks().items():
        assert function.reference == f"qlandscape.runs.metric_hooks.{name}:{what}"
        assert function.resolve() is getattr(HOOK_MODULES[name], what)


def test_the_spec_restates_the_computation_s_choices():
    assert landscape.NORMALIZATION_CHOICES == NORMALIZATION_CHOICES == directions.NORMALIZATION_CHOICES
    assert landscape.PERIOD_RESOLUTION == PERIOD_RESOLUTION == slices.PERIOD_RESOLUTION
    options = dataclasses.fields(landscape.LandscapeSettings)
    normalization = next(f for f in options if f.name == "normalization")
    assert normalization.metadata["qlandscape.setting"].choices == NORMALIZATION_CHOICES


def test_a_hook_imports_its_module_on_the_first_call_only(tmp_path, monkeypatch):
    (tmp_path / "hook_probe_module.py").write_text(
        textwrap.dedent(
            """
            CALLS = []

            def twice(x):
                CALLS.append(x)
                return 2 * x
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    probe = hook("hook_probe_module:twice")
    assert "hook_probe_module" not in sys.modules  # declaring it imports nothing
    assert probe(21) == 42 and "hook_probe_module" in sys.modules
    module = sys.modules["hook_probe_module"]
    assert probe.resolve() is module.twice and probe(1) == 2 and module.CALLS == [21, 1]
    assert probe == Hook("hook_probe_module:twice") and repr(probe) == "hook('hook_probe_module:twice')"
    monkeypatch.delitem(sys.modules, "hook_probe_module")


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("qlandscape.runs.metric_hooks.hessian", "expected a reference 'package.module:function'"),
        ("qlandscape.runs.metric_hooks.hessian:", "expected a reference 'package.module:function'"),
        ("no such module:compute", "expected a reference 'package.module:function'"),
        (42, "expected a reference 'package.module:function'"),
    ],
)
def test_a_malformed_reference_is_refused_when_declared(reference, message):
    with pytest.raises(ConfigError, match=message) as err:
        hook(reference)
    assert repr(reference) in str(err.value) or str(reference) in str(err.value)


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("qlandscape.runs.metric_hooks.nothing:compute", "no module 'qlandscape.runs.metric_hooks.nothing'"),
        ("qlandscape.runs.metric_hooks.hessian:nothing", "has no function 'nothing'"),
        ("qlandscape.runs.metric_hooks.hessian:__all__", "has no function '__all__'"),
    ],
)
def test_a_reference_to_nothing_names_itself_when_called(reference, message):
    dangling = hook(reference)  # declared fine: nothing is imported yet
    with pytest.raises(ConfigError, match=message) as err:
        dangling()
    assert reference in str(err.value)


@dataclasses.dataclass(frozen=True)
class _Settings:
    figures: bool = flag(False, "draw the figures")


def test_a_spec_takes_callables_and_hooks_and_refuses_anything_else():
    def compute(run, settings):
        return MetricOutput({"plain.value": 1.0})

    plain = MetricSpec(name="plain", help="a plain spec", settings=_Settings, compute=compute)
    assert plain.hooks() == {} and plain.resolve() is plain and plain.compute(None, _Settings()).scalars
    mixed = MetricSpec(
        name="mixed",
        help="a spec naming its report figures by reference",
        settings=_Settings,
        compute=compute,
        sweep_figures=hook("qlandscape.runs.metric_hooks.ntk:sweep_figures"),
    )
    assert set(mixed.hooks()) == {"sweep_figures"}
    with pytest.raises(ConfigError, match="hook") as err:
        MetricSpec(name="text", help="h", settings=_Settings, compute="qlandscape.runs.metric_hooks.ntk:compute")
    assert "text compute" in str(err.value)
    with pytest.raises(ConfigError, match="text figures"):
        MetricSpec(name="text", help="h", settings=_Settings, compute=compute, figures=3)
    with pytest.raises(ConfigError, match="nothing compute"):
        MetricSpec(name="nothing", help="h", settings=_Settings, compute=None)
