"""The ``hessian`` run metric: the Hessian at one point of the trajectory (dense spectrum or Lanczos top-k, the
summary scalars, the spectral density), optionally along the whole trajectory and split into Gauss-Newton and
residual parts.

This module declares it (settings, variants, headline scalars); the computation and the figures are
:mod:`qlandscape.runs.metric_hooks.hessian`, loaded when first used.

Results accumulate by variant (:mod:`qlandscape.runs.variants`), named by :func:`variant_name`:
``hessian_<method>`` (``dense`` or ``lanczos``: ``auto`` resolved against ``max_params``), then ``_init`` /
``_best`` off the final point, ``_test`` on the test split, ``_structure`` with the Gauss-Newton + residual split,
``_trajectory`` with the curvature along the trajectory, ``_seed<n>`` for another seed of a Lanczos computation and
``_adv_<attack>_<norm>_eps<eps>`` on a fixed adversarial set (the ``adversarial`` setting,
:mod:`qlandscape.runs.adversarial_data`) (``hessian_dense``, ``hessian_dense_init``, ``hessian_lanczos_test_seed3``,
``hessian_dense_adv_pgd_linf_eps0.1``). The other settings (``top_k``,
``density``, ``summary``, ``n_probes``) say how much is computed: the same variant computed again with others
replaces it as a whole. A variant's files are ``results/<variant>_spectrum`` (dense) or ``_top_k`` (Lanczos),
``_summary``, ``_density``, ``_trajectory``, ``_structure``, and the figures ``<variant>_spectrum``, ``_top_k`` (the
largest eigenvalues: Lanczos with residuals, or the top of the dense spectrum), ``_density`` (titled exact or SLQ,
as computed), ``_structure`` (the spectra of H, G and R overlaid) and ``_over_training``. Run directories of
qlandscape 0.2.0 and earlier hold one variant named ``hessian`` (``results/hessian_spectrum.json``, ...).

``hessian.epoch`` is the training epoch of the point (``hessian.time`` in run directories of qlandscape 0.2.0 and
earlier, which :func:`epoch_of` still reads).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qlandscape.runs.adversarial_data import adversarial_setting, variant_suffix
from qlandscape.runs.metric_spec import (
    POINTS,
    SPLITS,
    Headline,
    MetricSpec,
    budget_setting,
    choice,
    flag,
    hook,
    integer,
    value,
)

__all__ = ["METHODS", "HessianSettings", "resolved_method", "variant_name", "epoch_of", "SPEC"]

METHODS = ("auto", "dense", "lanczos")
_HOOKS = "qlandscape.runs.metric_hooks.hessian"


@dataclass(frozen=True)
class HessianSettings:
    """Settings of the ``hessian`` metric."""

    point: str = choice(
        "final", POINTS, "where: the final parameters, the epoch of lowest training loss, or the initialisation"
    )
    top_k: int = integer(5, 0, "largest eigenvalues: by Lanczos when the Hessian is not dense (drawn either way)")
    # On the command line the density is asked for: with Lanczos it costs a stochastic Lanczos quadrature.
    density: bool = flag(
        True,
        "spectral density: exact (dense eigenvalues, Gaussian broadening) when the Hessian is dense, else by "
        "stochastic Lanczos quadrature (SLQ)",
        cli_default=False,
    )
    trajectory: bool = flag(False, "also at every recorded point of the trajectory")
    method: str = choice(
        "auto",
        METHODS,
        "dense up to max_params parameters (auto), or always dense, or always Lanczos",
    )
    max_params: int = integer(3000, 1, "the largest parameter count for a dense Hessian")
    n_probes: int = integer(100, 1, "probe vectors of the Hutchinson trace (Lanczos)")
    chunk_size: int | None = integer(
        None, 1, "at most this many samples per chunk (none: as many as the memory budget allows)"
    )
    memory_budget: int | str | None = budget_setting()
    dask: str | None = value(
        None,
        lambda v: v is None or (isinstance(v, str) and bool(v.strip())),
        "expected a Dask scheduler address such as 'tcp://10.0.0.5:8786', or nothing",
        "a Dask scheduler address: the HVPs of Lanczos, the trace and SLQ split the evaluation set over its workers "
        "(needs qlandscape[dask]; method lanczos, no structure or trajectory)",
    )
    workers: int | None = integer(
        None,
        1,
        "local worker processes (one torch thread each) that split the evaluation set for the HVPs of Lanczos, the "
        "trace and SLQ (method lanczos, no structure or trajectory; not with dask); none or 1: this process",
    )
    split: str = choice("train", SPLITS, "the evaluation set")
    seed: int = integer(0, 0, "seed of the random start vectors and probes")
    structure: bool = flag(False, "also the Gauss-Newton + residual decomposition")
    figures: bool = flag(True, "draw the figures")
    summary: bool = flag(True, "the summary scalars (λ_min, trace, ...) also with Lanczos")
    progress: bool = flag(False, "progress bar", cli=False)
    adversarial: dict[str, Any] | None = adversarial_setting()


def resolved_method(s: HessianSettings, n_params: int) -> str:
    """``dense`` or ``lanczos``: the setting, or for ``auto`` dense up to ``max_params`` parameters."""
    if s.method != "auto":
        return s.method
    return "dense" if n_params <= s.max_params else "lanczos"


def variant_name(s: HessianSettings, method: str) -> str:
    """The variant a Hessian result is kept under (see the module docstring); ``method`` is the resolved one."""
    parts = ["hessian", method]
    if s.point != "final":
        parts.append(s.point)
    if s.split != "train":
        parts.append(s.split)
    if s.structure:
        parts.append("structure")
    if s.trajectory:
        parts.append("trajectory")
    if method == "lanczos" and s.seed != 0:  # the seed draws Lanczos start vectors and probes; a dense result has none
        parts.append(f"seed{s.seed}")
    return "_".join(parts) + variant_suffix(s.adversarial)


def epoch_of(scalars: dict[str, Any]) -> float | None:
    """The training epoch of the point the Hessian was computed at: ``hessian.epoch``, or ``hessian.time`` as run
    directories written by qlandscape 0.2.0 and earlier call it."""
    value = scalars.get("hessian.epoch", scalars.get("hessian.time"))
    return None if value is None else float(value)


SPEC = MetricSpec(
    name="hessian",
    help="Hessian metrics of a run (added to its run directory; each point, split and method is kept)",
    settings=HessianSettings,
    compute=hook(f"{_HOOKS}:compute"),
    figures=hook(f"{_HOOKS}:figures"),
    headline=(
        Headline("hessian.variant", "kept as (its files start with this name)", "variant", summary=False),
        Headline("hessian.lambda_max", "λ_max (top Hessian eigenvalue)", "λ_max", plot=True, power_law=True),
        Headline("hessian.lambda_min", "λ_min (lowest Hessian eigenvalue)", "λ_min"),
        Headline("hessian.trace", "trace of the Hessian", "tr H", plot=True),
        Headline("hessian.trace_stderr", "standard error of the trace", "SE(tr H)", summary=False),
        Headline("hessian.ratio", "|λ_min| / λ_max", "|λ_min|/λ_max", summary=False),
        Headline("hessian.fraction_negative", "fraction of negative eigenvalues", "negative fraction", summary=False),
        Headline(
            "hessian.structure.lambda_max_normalised",
            "λ_max over the aggregation scale c²/N",
            "λ_max / (c²/N)",
            power_law=True,
        ),
        Headline("hessian.structure.n_outliers", "outlier eigenvalues of H (G + R split)", "outliers"),
        Headline("hessian.structure.lambda_max", "λ_max of H (dense, with the G + R split)", "λ_max(H)", summary=False),
        Headline(
            "hessian.structure.lambda_max_gauss_newton",
            "λ_max of G (Gauss-Newton part)",
            "λ_max(G)",
            summary=False,
        ),
        Headline(
            "hessian.structure.lambda_max_residual", "λ_max of R = H − G (residual part)", "λ_max(R)", summary=False
        ),
        Headline("hessian.epoch", "epoch of the point", "epoch", summary=False),
    ),
    check_against_run=hook(f"{_HOOKS}:check_against_run"),
    sweep_figures=hook(f"{_HOOKS}:sweep_figures"),
)
