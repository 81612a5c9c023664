"""Patch grids, coverage, and the reduction of patches to circuit features."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qlandscape.core.errors import ConfigError
from qlandscape.models.patches import (
    PatchGrid,
    coverage,
    extract_patches,
    feature_map,
    patch_features,
    patch_grid,
    pooling_shape,
)

FAST = settings(max_examples=60, deadline=None)


@st.composite
def stride_grids(draw):
    h, w = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    ph, pw = draw(st.integers(1, h)), draw(st.integers(1, w))
    sh, sw = draw(st.integers(1, 10)), draw(st.integers(1, 10))
    return (h, w), (ph, pw), (sh, sw)


@st.composite
def count_grids(draw):
    h, w = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    ph, pw = draw(st.integers(1, h)), draw(st.integers(1, w))
    rows, cols = draw(st.integers(1, h - ph + 1)), draw(st.integers(1, w - pw + 1))
    return (h, w), (ph, pw), rows * cols


# ---------------------------------------------------------------------------------------------------- grids


@pytest.mark.parametrize(
    "image, patch, strides, counts",
    [
        ((8, 8), 4, (4, 2, 1), (4, 9, 25)),
        ((14, 14), 8, (6, 3, 2), (4, 9, 16)),
    ],
)
def test_known_cases(image, patch, strides, counts):
    for s, n in zip(strides, counts, strict=True):
        grid = patch_grid(image, patch, stride=s)
        assert grid.n_patches == n and grid.stride == (s, s)
        # The count-based grid with the same N lands on the very same corners.
        assert patch_grid(image, patch, n_patches=n).positions == grid.positions


def test_default_stride_is_non_overlapping_tiling():
    grid = patch_grid((8, 8), 4)
    assert grid.stride == (4, 4)
    assert grid.positions == ((0, 0), (0, 4), (4, 0), (4, 4))
    np.testing.assert_array_equal(coverage(grid), np.ones((8, 8), int))


def test_rectangular_patch_and_stride():
    grid = patch_grid((6, 9), (2, 3), stride=(2, 3))
    assert grid.patch_shape == (2, 3) and grid.n_patches == 9
    np.testing.assert_array_equal(coverage(grid), np.ones((6, 9), int))


def test_uncovered_border_when_stride_does_not_tile():
    grid = patch_grid((8, 8), 4, stride=3)  # corners 0, 3; pixel row/col 7 is left out
    cov = coverage(grid)
    assert grid.n_patches == 4 and cov[7].sum() == 0 and cov[:, 7].sum() == 0 and cov[:7, :7].min() >= 1


def test_single_patch_is_centred():
    grid = patch_grid((8, 8), 4, n_patches=1)
    assert grid.positions == ((2, 2),) and grid.stride is None
    assert patch_grid((8, 8), 8, n_patches=1).positions == ((0, 0),)


def test_count_prefers_covering_and_square():
    assert patch_grid((8, 8), 4, n_patches=4).positions == ((0, 0), (0, 4), (4, 0), (4, 4))
    # 8x28 image: 4 patches along the long axis rather than 2x2.
    grid = patch_grid((8, 28), 8, n_patches=4)
    assert {r for r, _ in grid.positions} == {0} and grid.n_patches == 4
    assert coverage(grid).min() >= 1


@FAST
@given(stride_grids())
def test_stride_grid_properties(case):
    (h, w), (ph, pw), (sh, sw) = case
    grid = patch_grid((h, w), (ph, pw), stride=(sh, sw))
    rows, cols = (h - ph) // sh + 1, (w - pw) // sw + 1
    assert grid.n_patches == rows * cols
    assert all(0 <= r <= h - ph and 0 <= c <= w - pw for r, c in grid.positions)
    assert list(grid.positions) == sorted(grid.positions)  # row-major
    for (r0, c0), (r1, c1) in itertools.pairwise(grid.positions):
        if r1 == r0:  # neighbours in a row overlap by exactly pw - sw columns (or are sw - pw apart)
            assert c1 - c0 == sw and (c0 + pw) - c1 == pw - sw
        else:
            assert r1 - r0 == sh and (r0 + ph) - r1 == ph - sh and c1 == 0
    cov = coverage(grid)
    assert cov.sum() == grid.n_patches * ph * pw
    if (h - ph) % sh == 0 and (w - pw) % sw == 0 and sh <= ph and sw <= pw:
        assert cov.min() >= 1


@FAST
@given(count_grids())
def test_count_grid_properties(case):
    (h, w), (ph, pw), n = case
    grid = patch_grid((h, w), (ph, pw), n_patches=n)
    assert grid.n_patches == n
    assert len(set(grid.positions)) == n
    assert all(0 <= r <= h - ph and 0 <= c <= w - pw for r, c in grid.positions)
    rows = sorted({r for r, _ in grid.positions})
    cols = sorted({c for _, c in grid.positions})
    assert len(rows) * len(cols) == n
    if len(rows) > 1:
        assert rows[0] == 0 and rows[-1] == h - ph
    if len(cols) > 1:
        assert cols[0] == 0 and cols[-1] == w - pw
    if (len(rows) * ph >= h) and (len(cols) * pw >= w):
        assert coverage(grid).min() >= 1


@FAST
@given(st.integers(1, 12), st.integers(1, 6))
def test_count_grid_covers_whenever_a_tiling_count_is_asked(h, p):
    p = min(p, h)
    tiles = math.ceil(h / p)
    if tiles > h - p + 1:
        return
    grid = patch_grid((h, h), p, n_patches=tiles * tiles)
    assert coverage(grid).min() >= 1


# ---------------------------------------------------------------------------------------------------- features


def test_flatten_is_exact_row_major():
    grid = patch_grid((8, 8), 4, stride=2)
    x = np.random.default_rng(0).normal(size=(3, 8, 8))
    feats = patch_features(x, grid, 16)
    patches = extract_patches(x, grid)
    np.testing.assert_array_equal(feats, patches.reshape(3, grid.n_patches, 16))
    a = feature_map(grid, 16)
    assert set(np.unique(a)) == {0.0, 1.0} and np.all(a.sum(axis=2) == 1)


def test_extract_patches_matches_slicing_numpy_and_torch():
    grid = patch_grid((7, 9), (3, 4), stride=(2, 3))
    x = np.arange(2 * 7 * 9, dtype=float).reshape(2, 7, 9)
    out = extract_patches(x, grid)
    assert isinstance(out, np.ndarray) and out.shape == (2, grid.n_patches, 3, 4)
    for p, (r, c) in enumerate(grid.positions):
        np.testing.assert_array_equal(out[:, p], x[:, r : r + 3, c : c + 4])
    out_t = extract_patches(torch.as_tensor(x), grid)
    assert isinstance(out_t, torch.Tensor)
    np.testing.assert_array_equal(out_t.numpy(), out)


@FAST
@given(st.integers(1, 9), st.integers(1, 9), st.data())
def test_pooling_matches_adaptive_avg_pool2d(ph, pw, data):
    n = data.draw(st.integers(1, ph * pw))
    try:
        fh, fw = pooling_shape((ph, pw), n)
    except ConfigError:
        assert not any(n % r == 0 and r <= ph and n // r <= pw for r in range(1, n + 1))
        return
    assert fh * fw == n and fh <= ph and fw <= pw
    h, w = ph + 2, pw + 1
    grid = patch_grid((h, w), (ph, pw), stride=1)
    a = feature_map(grid, n)
    assert a.shape == (grid.n_patches, n, h * w)
    np.testing.assert_allclose(a.sum(axis=2), 1.0, atol=1e-14)  # every feature is an average
    x = torch.rand(2, h, w, dtype=torch.float64)
    expected = torch.nn.functional.adaptive_avg_pool2d(extract_patches(x, grid).reshape(-1, 1, ph, pw), (fh, fw))
    got = patch_features(x, grid, n)
    torch.testing.assert_close(got, expected.reshape(2, grid.n_patches, n), rtol=0, atol=1e-13)


def test_pooling_shape_follows_patch_aspect():
    assert pooling_shape((8, 8), 16) == (4, 4)
    assert pooling_shape((4, 4), 8) == (2, 4)  # tie: fewer rows
    assert pooling_shape((8, 2), 8) == (4, 2)
    assert pooling_shape((2, 8), 4) == (1, 4)


def test_patch_features_is_differentiable():
    grid = patch_grid((8, 8), 4, stride=2)
    x = torch.rand(2, 8, 8, dtype=torch.float64, requires_grad=True)
    feats = patch_features(x, grid, 4)
    feats.sum().backward()
    # d(sum of features)/dx = sum over patches and features of A: coverage / 4 pixels per 2x2 bin
    np.testing.assert_allclose(x.grad[0].numpy(), coverage(grid) / 4)


def test_feature_map_returns_a_fresh_array():
    grid = patch_grid((4, 4), 2)
    a = feature_map(grid, 4)
    a[:] = 7.0
    assert feature_map(grid, 4).max() == 1.0


# ---------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call, bad",
    [
        (lambda: patch_grid((8, 8), 9), "9"),
        (lambda: patch_grid((8, 8), (4, 10)), "(4, 10)"),
        (lambda: patch_grid((8, 8), 0), "0"),
        (lambda: patch_grid((8, 8), -2), "-2"),
        (lambda: patch_grid((8, 8), 4, stride=0), "0"),
        (lambda: patch_grid((8, 8), 4, stride=(2, -1)), "(2, -1)"),
        (lambda: patch_grid((8, 8), 4, n_patches=26), "26"),
        (lambda: patch_grid((8, 8), 4, n_patches=0), "0"),
        (lambda: patch_grid((8, 8), 4, n_patches=7), "7"),  # 1x7 / 7x1 do not fit 5x5 corners
        (lambda: patch_grid((8, 8), 4, stride=2, n_patches=9), "2"),
        (lambda: patch_grid((0, 8), 1), "(0, 8)"),
        (lambda: feature_map(patch_grid((8, 8), 4), 17), "17"),
        (lambda: feature_map(patch_grid((8, 8), 4), 7), "7"),
        (lambda: feature_map(patch_grid((8, 8), 4), 0), "0"),
    ],
)
def test_impossible_requests_raise_config_error(call, bad):
    with pytest.raises(ConfigError) as e:
        call()
    assert bad in str(e.value)


def test_too_few_pixels_message():
    with pytest.raises(ConfigError, match="needs 17 features but a 4x4 patch has only 16 pixels"):
        feature_map(patch_grid((8, 8), 4), 17)


def test_wrong_image_shape_and_bad_positions():
    grid = patch_grid((8, 8), 4)
    with pytest.raises(ConfigError, match=r"\(2, 7, 8\)"):
        extract_patches(np.zeros((2, 7, 8)), grid)
    with pytest.raises(ConfigError, match=r"\(5, 0\)"):
        PatchGrid((8, 8), (4, 4), ((5, 0),))
