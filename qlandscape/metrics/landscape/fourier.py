"""The 2-D Fourier spectrum of a full-period landscape scan (:func:`~qlandscape.metrics.landscape.slices.slice_period`).

A QNN's loss is 2π-periodic in every circuit angle, so on a plane of integer directions it is a periodic function
of (α, β), and its Fourier coefficients say at which frequencies the landscape varies: power at a few low
frequencies means a smooth landscape that a coarse grid resolves, power spread to high frequencies means fine
structure (orqviz offers the same view). The grid must be one period: ``n`` points spaced 2π/n on each axis, the
endpoint left out, so that the discrete Fourier transform of the grid is the Fourier series of the landscape up to
aliasing above n/2 cycles.
"""

from __future__ import annotations

import numpy as np

from qlandscape.core.errors import ConfigError, check_choice, check_positive_int
from qlandscape.metrics.landscape.results import FourierSpectrum, Slice2D, split_index

__all__ = ["fourier_spectrum", "is_full_period"]

QUANTITIES = ("loss", "error")


def is_full_period(values: np.ndarray) -> bool:
    """Whether ``values`` are n points spaced 2π/n (one period without its endpoint)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size < 2:
        return False
    step = 2.0 * np.pi / values.size
    return bool(np.allclose(np.diff(values), step, rtol=0.0, atol=1e-9))


def fourier_spectrum(
    result: Slice2D, *, split: str | None = None, quantity: str = "loss", low_cutoff: int = 2
) -> FourierSpectrum:
    """Power per frequency pair of one split's loss (or error) grid of a full-period scan (numpy's FFT), with the
    share of the variance at max(|k_α|, |k_β|) <= ``low_cutoff`` cycles per 2π. Raises :class:`ConfigError` for a
    grid that is not one full period on both axes."""
    check_choice("quantity", quantity, QUANTITIES)
    low_cutoff = check_positive_int("low_cutoff", low_cutoff, minimum=0)
    for name, values in (("alphas", result.alphas), ("betas", result.betas)):
        if not is_full_period(values):
            raise ConfigError(
                name,
                f"{len(values)} values over [{float(np.min(values)):.4g}, {float(np.max(values)):.4g}]",
                "expected a full period: n points spaced 2π/n, the endpoint left out (qlandscape's slice_period)",
            )
    i = split_index(result.splits, split)
    grid = np.asarray((result.losses if quantity == "loss" else result.errors)[i], dtype=np.float64)
    if not np.all(np.isfinite(grid)):
        raise ConfigError(quantity, "non-finite values", "the Fourier spectrum needs a finite grid")
    n_beta, n_alpha = grid.shape
    coefficients = np.fft.fftshift(np.fft.fft2(grid)) / grid.size
    power = np.abs(coefficients) ** 2
    freq_alpha = np.fft.fftshift(np.fft.fftfreq(n_alpha, 1.0 / n_alpha)).round().astype(int)
    freq_beta = np.fft.fftshift(np.fft.fftfreq(n_beta, 1.0 / n_beta)).round().astype(int)
    kb, ka = np.meshgrid(freq_beta, freq_alpha, indexing="ij")
    dc = (ka == 0) & (kb == 0)
    variance = float(power[~dc].sum())
    low = (np.maximum(np.abs(ka), np.abs(kb)) <= low_cutoff) & ~dc
    return FourierSpectrum(
        freq_alpha=freq_alpha,
        freq_beta=freq_beta,
        power=power,
        mean=float(coefficients[dc].real[0]),
        variance=variance,
        low_cutoff=low_cutoff,
        low_fraction=float(power[low].sum() / variance) if variance > 0 else float("nan"),
        split=result.splits[i],
        quantity=quantity,
        loss_name=result.loss_name,
        direction_kind=result.direction_kind,
    )
