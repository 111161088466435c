"""Event voxel grid of Zhou et al., *Deblurring Low-Light Images with Events* (IJCV 2023).

The network's event input is a voxel grid of ``num_bins = 13`` temporal bins spanning the exposure
of the blurry frame. Each event is split between the two bins whose centres enclose its timestamp
with linear (bilinear-in-time) weights, and the grid is then normalised like E2VID: mean and
standard deviation of the *non-zero* cells only, applied to those cells only.

Source (facts only; the code here is our own):

* binning: ``stack_events_to_voxel_grid`` in ``scripts/script_utils/Events.py`` of
  fourson/Deblurring-Low-Light-Images-with-Events: bin spacing ``dt = duration / (num_bins - 1)``,
  bin centres at ``0, dt, ..., duration``; an event at relative time ``t`` adds
  ``polarity * (1 - frac)`` to bin ``floor(t / dt)`` and ``polarity * frac`` to the next bin
  (clamped to the last one), ``frac = (t mod dt) / dt``. The official script stores the grid as
  ``(H, W, bins)`` ``.npy`` files (``subnetwork1/events_voxel_grid/``); here the array is
  ``(bins, H, W)`` (the network's channel order) and :func:`to_official_layout` converts.
* normalisation: ``normalize_events`` in ``utils/util.py`` (called by the data loader
  ``data_loader/dataset/dataset_full.py`` on every sample, never at synthesis time).
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "NUM_BINS",
    "EXPOSURE_S",
    "events_to_voxel_grid",
    "normalize_voxel_grid",
    "to_official_layout",
    "from_official_layout",
]

NUM_BINS = 13  # scripts/make_dataset.py: maker_args['temporal_bins']
EXPOSURE_S = 0.1  # scripts/make_dataset.py: maker_args['total_time'] (seconds)

_TIME_TOLERANCE = 1e-5  # relative slack for float32 timestamps that land just past the window end


def events_to_voxel_grid(
    events: np.ndarray,
    height: int,
    width: int,
    num_bins: int = NUM_BINS,
    *,
    t_start: float = 0.0,
    duration: float = EXPOSURE_S,
) -> np.ndarray:
    """Accumulate events into the official bilinear-in-time voxel grid (not normalised).

    Args:
        events: ``(N, 4)`` array of rows ``(t, x, y, polarity)``: ``t`` timestamp in seconds,
            ``x`` column and ``y`` row (integer pixel coordinates, ``0 <= x < width``,
            ``0 <= y < height``), polarity ``+1`` (ON) or ``-1``/``0`` (OFF; any value
            ``<= 0`` counts as OFF). Any float or integer dtype; ``N`` may be 0.
        height, width: sensor size in pixels.
        num_bins: number of temporal bins (13 in the official system), >= 2.
        t_start: start of the window in seconds (the exposure start); events are placed by
            ``t - t_start``.
        duration: window length in seconds (> 0); the last bin is centred at its end.

    Returns:
        ``(num_bins, height, width)`` float32. Summed over bins, each pixel holds its number of
        ON events minus its number of OFF events (the two weights of an event sum to 1).

    Raises:
        ValueError: wrong shape, non-finite values, non-integer or out-of-range coordinates,
            timestamps outside ``[t_start, t_start + duration]``, ``num_bins < 2`` or
            ``duration <= 0``.
    """
    ev = np.asarray(events)
    if ev.ndim != 2 or ev.shape[1] != 4:
        raise ValueError(f"events must be an (N, 4) array of (t, x, y, polarity), got shape {ev.shape}")
    if num_bins < 2:
        raise ValueError(f"num_bins must be >= 2, got {num_bins}")
    if not duration > 0:
        raise ValueError(f"duration must be > 0 seconds, got {duration}")
    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    # float64 arithmetic on the (possibly float32) timestamps, as the official per-event loop
    # did under NumPy 1's scalar promotion.
    ev = ev.astype(np.float64, copy=False)
    if not np.isfinite(ev).all():
        raise ValueError("events contain NaN or infinite values")
    t = ev[:, 0] - t_start
    x, y = ev[:, 1], ev[:, 2]
    if ev.shape[0]:
        if (x != np.round(x)).any() or (y != np.round(y)).any():
            raise ValueError("event coordinates x, y must be integer pixel positions")
        if x.min() < 0 or x.max() >= width or y.min() < 0 or y.max() >= height:
            raise ValueError(
                f"event coordinates out of range: x in [{x.min():g}, {x.max():g}], y in "
                f"[{y.min():g}, {y.max():g}] for a {width}x{height} (width x height) sensor"
            )
        slack = _TIME_TOLERANCE * duration
        if t.min() < -slack or t.max() > duration + slack:
            raise ValueError(
                f"event timestamps [{t.min() + t_start:g}, {t.max() + t_start:g}] s fall outside the "
                f"window [{t_start:g}, {t_start + duration:g}] s"
            )
    t = np.clip(t, 0.0, duration)
    pol = np.where(ev[:, 3] > 0, 1.0, -1.0)
    dt = duration / (num_bins - 1)
    last = num_bins - 1
    prev_bin = np.minimum(np.floor(t / dt), last).astype(np.int64)
    next_bin = np.minimum(prev_bin + 1, last)
    frac = np.mod(t, dt) / dt
    pixel = y.astype(np.int64) * width + x.astype(np.int64)
    n_cells = num_bins * height * width
    grid = np.bincount(prev_bin * height * width + pixel, weights=pol * (1.0 - frac), minlength=n_cells)
    grid += np.bincount(next_bin * height * width + pixel, weights=pol * frac, minlength=n_cells)
    return grid.reshape(num_bins, height, width).astype(np.float32)


def normalize_voxel_grid(voxel: np.ndarray) -> np.ndarray:
    """E2VID-style normalisation of a voxel grid, as the official data loader applies it.

    With ``m`` and ``s`` the mean and (population) standard deviation of the non-zero cells,
    non-zero cells become ``(v - m) / s`` and zero cells stay 0. Layout-independent (works on
    ``(bins, H, W)`` and on the official ``(H, W, bins)``).

    Differences from ``normalize_events`` (``utils/util.py``), both fixes: the result is always
    float32 (under NumPy 2 the official function promotes to float64, which the float32 network
    rejects), and a grid whose non-zero cells are all equal (``s == 0``) gives zeros instead of
    NaN. Statistics are accumulated in float64.

    Args:
        voxel: float array of any shape.

    Returns:
        float32 array of the same shape. An all-zero grid is returned unchanged.
    """
    v = np.asarray(voxel, dtype=np.float32)
    nonzero = v != 0
    n = int(nonzero.sum())
    if n == 0:
        return v.copy()
    v64 = v.astype(np.float64)
    mean = v64.sum() / n
    var = (v64 * v64).sum() / n - mean * mean
    std = np.sqrt(max(var, 0.0))
    if std <= 0:
        return np.zeros_like(v)
    return np.where(nonzero, (v64 - mean) / std, 0.0).astype(np.float32)


def to_official_layout(voxel: np.ndarray) -> np.ndarray:
    """``(bins, H, W)`` -> ``(H, W, bins)`` (the layout of the official ``.npy`` files), contiguous."""
    if np.ndim(voxel) != 3:
        raise ValueError(f"voxel grid must be 3-D (bins, H, W), got shape {np.shape(voxel)}")
    return np.ascontiguousarray(np.moveaxis(np.asarray(voxel), 0, -1))


def from_official_layout(voxel: np.ndarray) -> np.ndarray:
    """``(H, W, bins)`` (official ``.npy``) -> ``(bins, H, W)``, contiguous."""
    if np.ndim(voxel) != 3:
        raise ValueError(f"voxel grid must be 3-D (H, W, bins), got shape {np.shape(voxel)}")
    return np.ascontiguousarray(np.moveaxis(np.asarray(voxel), -1, 0))
