"""deblurkit.synth.voxel: the official 13-bin voxel grid and its normalisation."""
from __future__ import annotations

import numpy as np
import pytest

from deblurkit.synth.voxel import (
    events_to_voxel_grid,
    from_official_layout,
    normalize_voxel_grid,
    to_official_layout,
)


def random_events(n, h, w, duration=0.1, seed=0, t_start=0.0):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, duration, n)) + t_start
    x = rng.integers(0, w, n)
    y = rng.integers(0, h, n)
    p = rng.choice([-1.0, 1.0], n)
    return np.stack([t, x, y, p], 1).astype(np.float32)


def test_voxel_sums_match_event_counts():
    h, w = 12, 17
    ev = random_events(5000, h, w)
    grid = events_to_voxel_grid(ev, h, w)
    assert grid.shape == (13, h, w) and grid.dtype == np.float32
    on = np.zeros((h, w))
    off = np.zeros((h, w))
    for t, x, y, p in ev:
        (on if p > 0 else off)[int(y), int(x)] += 1
    np.testing.assert_allclose(grid.sum(0), on - off, atol=1e-4)
    # only ON events: the grid sums to the total number of events, pixel by pixel
    ev_on = ev.copy()
    ev_on[:, 3] = 1
    np.testing.assert_allclose(events_to_voxel_grid(ev_on, h, w).sum(0), on + off, atol=1e-4)
    assert events_to_voxel_grid(ev_on, h, w).sum() == pytest.approx(len(ev), rel=1e-6)


def test_bin_placement_is_linear_in_time():
    dt = 0.1 / 12
    ev = np.array(
        [
            [3 * dt, 1, 2, 1],  # exactly on bin 3's centre
            [(5 + 0.25) * dt, 0, 0, -1],  # a quarter of the way from bin 5 to bin 6
            [0.1, 4, 3, 1],  # end of the window -> last bin
            [0.0, 4, 0, 1],  # start -> first bin
        ]
    )
    grid = events_to_voxel_grid(ev, 5, 6)
    assert grid[3, 2, 1] == pytest.approx(1.0, abs=1e-6)
    assert grid[:, 2, 1].sum() == pytest.approx(1.0, abs=1e-6)
    assert grid[5, 0, 0] == pytest.approx(-0.75, abs=1e-6)
    assert grid[6, 0, 0] == pytest.approx(-0.25, abs=1e-6)
    assert grid[12, 3, 4] == pytest.approx(1.0, abs=1e-6)
    assert grid[0, 0, 4] == pytest.approx(1.0, abs=1e-6)
    assert np.count_nonzero(np.abs(grid) > 1e-6) == 5  # float rounding may leave ~1e-16 in a neighbour


def test_window_offset_and_zero_one_polarity():
    h, w = 4, 4
    ev = random_events(300, h, w, duration=0.03, t_start=12.5)
    shifted = ev.copy()
    shifted[:, 0] -= 12.5
    a = events_to_voxel_grid(ev, h, w, t_start=12.5, duration=0.03)
    b = events_to_voxel_grid(shifted, h, w, duration=0.03)
    np.testing.assert_allclose(a, b, atol=1e-3)  # float32 timestamps at 12.5 s lose ~1e-6 s
    zero_one = ev.copy()
    zero_one[:, 3] = (ev[:, 3] > 0).astype(np.float32)  # DAVIS-style 0/1 polarity
    np.testing.assert_array_equal(events_to_voxel_grid(zero_one, h, w, t_start=12.5, duration=0.03), a)


def test_empty_events_give_zero_grid():
    grid = events_to_voxel_grid(np.zeros((0, 4)), 3, 5, num_bins=7)
    assert grid.shape == (7, 3, 5) and not grid.any()


@pytest.mark.parametrize(
    "row, match",
    [
        ([0.05, 6, 0, 1], "out of range"),
        ([0.05, 0, -1, 1], "out of range"),
        ([0.05, 0.5, 0, 1], "integer"),
        ([0.2, 0, 0, 1], "outside the window"),
        ([np.nan, 0, 0, 1], "NaN"),
    ],
)
def test_bad_events_raise(row, match):
    with pytest.raises(ValueError, match=match):
        events_to_voxel_grid(np.array([row]), 4, 6)


def test_bad_shape_raises():
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        events_to_voxel_grid(np.zeros((3, 3)), 4, 4)


def test_normalisation_standardises_nonzero_cells_only():
    h, w = 10, 10
    grid = events_to_voxel_grid(random_events(200, h, w, seed=3), h, w)
    norm = normalize_voxel_grid(grid)
    assert norm.dtype == np.float32
    nz = grid != 0
    assert (norm[~nz] == 0).all()
    vals = norm[nz].astype(np.float64)
    assert vals.mean() == pytest.approx(0.0, abs=1e-5)
    assert vals.std() == pytest.approx(1.0, abs=1e-5)
    # float64 input also comes back float32 (the NumPy-2 promotion of the official loader)
    assert normalize_voxel_grid(grid.astype(np.float64)).dtype == np.float32


def test_normalisation_degenerate_cases():
    assert not normalize_voxel_grid(np.zeros((13, 2, 2))).any()
    const = np.zeros((13, 2, 2), np.float32)
    const[0, 0, 0] = 1.0
    out = normalize_voxel_grid(const)
    assert np.isfinite(out).all() and not out.any()


def test_official_layout_round_trip():
    grid = np.arange(13 * 2 * 3, dtype=np.float32).reshape(13, 2, 3)
    hwc = to_official_layout(grid)
    assert hwc.shape == (2, 3, 13) and hwc[1, 2, 5] == grid[5, 1, 2]
    np.testing.assert_array_equal(from_official_layout(hwc), grid)
