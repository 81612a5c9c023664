"""Overlapping patch grids and the linear reduction of each patch to a circuit's n features.

Grid (``patch_grid``):

* From a stride ``s``: the top-left corners are 0, s, 2s, ... along each axis while the patch still fits, so the
  count per axis is ``floor((H - ph) / s) + 1``. When the stride does not tile the image exactly
  (``(H - ph) % s != 0``) the last ``(H - ph) % s`` rows (columns) are not covered by any patch. Without stride
  and count the stride is the patch size (non-overlapping tiling). Examples: 8x8 image, 4x4 patches, strides
  4 / 2 / 1 -> 4 / 9 / 25 patches; 14x14 image, 8x8 patches, strides 6 / 3 / 2 -> 4 / 9 / 16 (Kawase 2025).
* From a count ``N``: ``N = rows x cols`` with ``rows <= H - ph + 1`` and ``cols <= W - pw + 1``; among the
  factorisations that fit, the one whose patches cover the whole image is preferred, then the one whose
  rows:cols ratio is closest to that of the available corner positions (square-ish for square images; ties go to
  fewer rows). Corners are evenly spaced integers ``floor(i * (H - ph) / (rows - 1) + 1/2)`` from 0 to ``H - ph``,
  so the grid spans the image edge to edge and covers every pixel whenever ``rows * ph >= H`` and
  ``cols * pw >= W``. An axis holding a single patch centres it (corner ``(H - ph) // 2``), so ``N = 1`` is one
  centred patch.

Feature reduction (``feature_map``), the same rule for every patch:

* ``ph * pw == n_features``: the patch flattened row-major (a 0/1 selection).
* ``ph * pw > n_features``: average pooling onto an ``fh x fw`` grid with ``fh * fw = n_features``, ``fh <= ph``,
  ``fw <= pw`` and ``fh / fw`` closest to ``ph / pw`` (ties: fewer rows); bin i along an axis of length ``ph``
  spans ``floor(i * ph / fh)`` to ``ceil((i + 1) * ph / fh)`` (the bins of ``torch.nn.AdaptiveAvgPool2d``, which
  may overlap). Features are ordered row-major over the ``fh x fw`` grid.
* ``ph * pw < n_features``, or no factorisation fits: :class:`ConfigError`.

The map is linear: ``features[b, p, f] = sum_j x.reshape(B, -1)[b, j] * A[p, f, j]``, so it sits inside a model
and differentiates (``patch_features`` works on torch tensors).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from qlandscape.core.errors import ConfigError, require

__all__ = ["PatchGrid", "patch_grid", "feature_map", "extract_patches", "patch_features", "coverage", "pooling_shape"]


@dataclass(frozen=True)
class PatchGrid:
    """Where the patches sit: top-left ``positions`` (row, col) in row-major order.

    ``stride`` is the (row, col) step between neighbouring corners; None when the grid came from a patch count
    and its corners are not evenly spaced (or an axis holds a single patch).
    """

    image_shape: tuple[int, int]
    patch_shape: tuple[int, int]
    positions: tuple[tuple[int, int], ...]
    stride: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        (h, w), (ph, pw) = self.image_shape, self.patch_shape
        require(len(self.positions) > 0, "positions", self.positions, "expected at least one patch")
        for r, c in self.positions:
            require(
                0 <= r <= h - ph and 0 <= c <= w - pw,
                "patch position",
                (r, c),
                f"a {ph}x{pw} patch must lie inside the {h}x{w} image",
            )

    @property
    def n_patches(self) -> int:
        """Number of patches P."""
        return len(self.positions)


def _pair(field: str, value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        pair = (int(value), int(value))
    elif (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in value)
    ):
        pair = (int(value[0]), int(value[1]))
    else:
        raise ConfigError(field, value, "expected a positive integer or a pair of positive integers")
    require(pair[0] >= 1 and pair[1] >= 1, field, value, "expected positive integers")
    return pair


def _spaced(count: int, span: int) -> list[int]:
    """``count`` integer corners evenly spread over 0..span (rounded half up); one corner sits in the middle."""
    if count == 1:
        return [span // 2]
    return [math.floor(i * span / (count - 1) + 0.5) for i in range(count)]


def _closest_factorisation(
    n: int, max_rows: int, max_cols: int, target: tuple[int, int], covers=lambda r, c: False
) -> tuple[int, int] | None:
    """``rows x cols = n`` within the bounds, preferring covering ones, then rows:cols closest to
    ``target[0]:target[1]`` (compared exactly, as the ratio of the larger to the smaller), then fewer rows."""
    options = [(r, n // r) for r in range(1, n + 1) if n % r == 0 and r <= max_rows and n // r <= max_cols]
    if not options:
        return None

    def mismatch(r: int, c: int) -> Fraction:
        a, b = r * target[1], c * target[0]
        return Fraction(max(a, b), min(a, b))

    return min(options, key=lambda rc: (not covers(*rc), mismatch(*rc), rc[0]))


def patch_grid(
    image_shape: Sequence[int],
    patch_size: int | Sequence[int],
    *,
    stride: int | Sequence[int] | None = None,
    n_patches: int | None = None,
) -> PatchGrid:
    """The patch grid for square or rectangular patches, from a ``stride`` or a requested count ``n_patches``.

    Give at most one of ``stride`` / ``n_patches``; with neither the stride is the patch size. See the module
    docstring for the placement rules.
    """
    h, w = _pair("image_shape", tuple(image_shape) if not isinstance(image_shape, int) else image_shape)
    ph, pw = _pair("patch_size", patch_size)
    if ph > h or pw > w:
        raise ConfigError("patch_size", patch_size, f"the patch must fit in the {h}x{w} image")
    if stride is not None and n_patches is not None:
        raise ConfigError("stride", stride, f"give either stride or n_patches (= {n_patches!r}), not both")
    rows_max, cols_max = h - ph + 1, w - pw + 1
    if n_patches is None:
        sh, sw = _pair("stride", (ph, pw) if stride is None else stride)
        rows, cols = list(range(0, rows_max, sh)), list(range(0, cols_max, sw))
        return PatchGrid((h, w), (ph, pw), tuple((r, c) for r in rows for c in cols), (sh, sw))

    if isinstance(n_patches, (bool, np.bool_)) or not isinstance(n_patches, (int, np.integer)) or n_patches < 1:
        raise ConfigError("n_patches", n_patches, "expected a positive integer")
    n_patches = int(n_patches)
    if n_patches > rows_max * cols_max:
        raise ConfigError(
            "n_patches", n_patches, f"a {h}x{w} image has only {rows_max * cols_max} positions for a {ph}x{pw} patch"
        )
    shape = _closest_factorisation(
        n_patches, rows_max, cols_max, (rows_max, cols_max), covers=lambda r, c: (r * ph >= h) and (c * pw >= w)
    )
    if shape is None:
        raise ConfigError(
            "n_patches",
            n_patches,
            f"no rows x cols factorisation fits the {rows_max}x{cols_max} corner positions of a "
            f"{ph}x{pw} patch in a {h}x{w} image",
        )
    rows, cols = _spaced(shape[0], h - ph), _spaced(shape[1], w - pw)
    steps = [set(np.diff(axis).tolist()) for axis in (rows, cols)]
    regular = all(len(s) == 1 for s in steps)
    grid_stride = (steps[0].pop(), steps[1].pop()) if regular else None
    return PatchGrid((h, w), (ph, pw), tuple((r, c) for r in rows for c in cols), grid_stride)


def _check_n_features(n_features: int) -> int:
    if isinstance(n_features, (bool, np.bool_)) or not isinstance(n_features, (int, np.integer)) or n_features < 1:
        raise ConfigError("n_features", n_features, "expected a positive integer")
    return int(n_features)


def pooling_shape(patch_shape: Sequence[int], n_features: int) -> tuple[int, int]:
    """The ``(fh, fw)`` grid a patch is reduced to (``fh * fw = n_features``; see the module docstring)."""
    ph, pw = (int(v) for v in patch_shape)
    n_features = _check_n_features(n_features)
    if ph * pw < n_features:
        raise ConfigError(
            "n_features",
            n_features,
            f"the circuit needs {n_features} features but a {ph}x{pw} patch has only {ph * pw} "
            f"pixels; use a larger patch or fewer qubits",
        )
    if ph * pw == n_features:
        return ph, pw
    shape = _closest_factorisation(n_features, ph, pw, (ph, pw))
    if shape is None:
        raise ConfigError(
            "n_features",
            n_features,
            f"cannot average-pool a {ph}x{pw} patch onto fh x fw = {n_features} features with "
            f"fh <= {ph} and fw <= {pw}; choose a feature count with such a factorisation",
        )
    return shape


@functools.lru_cache(maxsize=64)
def _feature_map_cached(grid: PatchGrid, n_features: int) -> np.ndarray:
    (h, w), (ph, pw) = grid.image_shape, grid.patch_shape
    fh, fw = pooling_shape((ph, pw), n_features)

    # Pooling matrix for one patch: (fh*fw, ph*pw), bins as in AdaptiveAvgPool2d.
    def bins(size: int, out: int) -> list[tuple[int, int]]:
        return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]

    local = np.zeros((fh, fw, ph, pw))
    for i, (r0, r1) in enumerate(bins(ph, fh)):
        for j, (c0, c1) in enumerate(bins(pw, fw)):
            local[i, j, r0:r1, c0:c1] = 1.0 / ((r1 - r0) * (c1 - c0))
    local = local.reshape(fh * fw, ph, pw)
    out = np.zeros((grid.n_patches, fh * fw, h, w))
    for p, (r, c) in enumerate(grid.positions):
        out[p, :, r : r + ph, c : c + pw] = local
    out = out.reshape(grid.n_patches, fh * fw, h * w)
    out.flags.writeable = False
    return out


def feature_map(grid: PatchGrid, n_features: int) -> np.ndarray:
    """The linear map ``A`` of shape ``(P, n_features, H*W)`` from a flattened image to each patch's features."""
    return _feature_map_cached(grid, _check_n_features(n_features)).copy()


def _check_images(x, grid: PatchGrid) -> None:
    if x.ndim != 3 or tuple(x.shape[1:]) != tuple(grid.image_shape):
        raise ConfigError("images shape", tuple(x.shape), f"expected (B, {grid.image_shape[0]}, {grid.image_shape[1]})")


def extract_patches(x: np.ndarray | torch.Tensor, grid: PatchGrid) -> np.ndarray | torch.Tensor:
    """Cut images ``x (B, H, W)`` into patches ``(B, P, ph, pw)`` (numpy in, numpy out; torch in, torch out)."""
    _check_images(x, grid)
    (h, w), (ph, pw) = grid.image_shape, grid.patch_shape
    corners = np.array([r * w + c for r, c in grid.positions])
    offsets = np.arange(ph)[:, None] * w + np.arange(pw)[None, :]
    index = corners[:, None, None] + offsets[None]
    flat = x.reshape(x.shape[0], h * w)
    if isinstance(x, torch.Tensor):
        return flat[:, torch.as_tensor(index, device=x.device)]
    return flat[:, index]


def patch_features(x: np.ndarray | torch.Tensor, grid: PatchGrid, n_features: int) -> np.ndarray | torch.Tensor:
    """Each patch's features ``(B, P, n_features)`` for images ``x (B, H, W)``; differentiable on torch input."""
    _check_images(x, grid)
    a = _feature_map_cached(grid, _check_n_features(n_features))
    flat = x.reshape(x.shape[0], -1)
    if isinstance(x, torch.Tensor):
        dtype = x.dtype if x.is_floating_point() else torch.float64
        return torch.einsum("bj,pfj->bpf", flat.to(dtype), torch.tensor(a, dtype=dtype, device=x.device))
    return np.einsum("bj,pfj->bpf", np.asarray(flat, dtype=np.float64), a)


def coverage(grid: PatchGrid) -> np.ndarray:
    """How many patches cover each pixel, an int array of shape (H, W)."""
    counts = np.zeros(grid.image_shape, dtype=np.int64)
    ph, pw = grid.patch_shape
    for r, c in grid.positions:
        counts[r : r + ph, c : c + pw] += 1
    return counts
