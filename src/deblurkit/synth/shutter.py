"""Shutter models: global shutter (GS), rolling shutter (RS) and global-reset-release (GRR) blur.

A blurry frame is the time integral of the scene over each row's exposure window. Here the scene
is a sequence of sharp frames sampled densely and uniformly in time (real 25 fps clips need frame
interpolation first); frame ``i`` stands for the interval ``[i, i + 1)`` in frame units, so
windows may start and end at fractional times and are integrated exactly (piecewise-constant
scene), which keeps row exposures continuous in the row index.

- GS: every row integrates ``[start, start + exposure)`` (the frame average of GoPro-style data).
- RS: row ``r`` integrates ``[start + r * readout / (H - 1), ... + exposure)`` (same length,
  shifted start).
- GRR (Ji et al., ICCV 2023, Sec. 3, the RSS-T paper): all rows are reset together at ``start``
  and released one after another, so row ``r`` integrates ``[start, start + t_r)`` with
  ``t_r = exposure + readout * r / (H - 1)``: the exposure (and blur) grows linearly from the top
  row to the bottom row.

All functions take frames (T, C, H, W) float in [0, 1] and return one (C, H, W) image in [0, 1].
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["integrate_rows", "global_shutter_blur", "rolling_shutter_blur", "grr_blur", "grr_exposures"]


def _check(frames: Tensor) -> None:
    if not isinstance(frames, Tensor) or frames.dim() != 4:
        raise ValueError(f"frames must be a (T, C, H, W) tensor, got {getattr(frames, 'shape', type(frames))}")


def integrate_rows(frames: Tensor, t0: Tensor, t1: Tensor) -> Tensor:
    """Mean of the piecewise-constant scene over ``[t0[r], t1[r])`` for every row ``r``.

    Args:
        frames: (T, C, H, W); frame ``i`` covers time ``[i, i + 1)`` (frame units).
        t0, t1: (H,) start and end times per row, ``0 <= t0 < t1 <= T``.

    Returns:
        (C, H, W) float32.

    Raises:
        ValueError: bad shapes, or a window outside ``[0, T]`` or of non-positive length.
    """
    _check(frames)
    T, C, H, W = frames.shape
    t0 = torch.as_tensor(t0, dtype=torch.float64).reshape(-1)
    t1 = torch.as_tensor(t1, dtype=torch.float64).reshape(-1)
    if t0.numel() != H or t1.numel() != H:
        raise ValueError(f"t0 and t1 need one time per row ({H}), got {t0.numel()} and {t1.numel()}")
    if bool((t0 < 0).any()) or bool((t1 > T + 1e-9).any()) or bool((t1 <= t0).any()):
        raise ValueError(f"every row window must satisfy 0 <= t0 < t1 <= {T} (number of frames)")
    f = frames.double().permute(2, 0, 1, 3)  # (H, T, C, W)
    cum = torch.cat([torch.zeros_like(f[:, :1]), f.cumsum(dim=1)], dim=1)  # (H, T+1, C, W)

    def integral(t: Tensor) -> Tensor:  # integral from 0 to t, per row: (H, C, W)
        i = t.floor().clamp(max=T - 1).long()
        frac = (t - i.double()).view(H, 1, 1)
        rows = torch.arange(H)
        return cum[rows, i] + frac * f[rows, i]

    out = (integral(t1) - integral(t0)) / (t1 - t0).view(H, 1, 1)
    return out.permute(1, 0, 2).float()


def global_shutter_blur(frames: Tensor, exposure: float | None = None, start: float = 0.0) -> Tensor:
    """GS blur: every row averages ``[start, start + exposure)`` (default: all frames)."""
    _check(frames)
    T, _, H, _ = frames.shape
    exposure = float(T - start) if exposure is None else float(exposure)
    t0 = torch.full((H,), float(start), dtype=torch.float64)
    return integrate_rows(frames, t0, t0 + exposure)


def rolling_shutter_blur(frames: Tensor, exposure: float, readout: float, start: float = 0.0) -> Tensor:
    """RS blur: row ``r`` averages ``[start + r * readout / (H-1), ... + exposure)``.

    ``readout`` is the delay between the first and the last row's start (frame units).
    """
    _check(frames)
    H = frames.shape[2]
    t0 = float(start) + float(readout) * torch.arange(H, dtype=torch.float64) / max(H - 1, 1)
    return integrate_rows(frames, t0, t0 + float(exposure))


def grr_exposures(height: int, exposure: float, readout: float) -> Tensor:
    """Per-row integration time of a GRR shutter: ``t_r = exposure + readout * r / (height - 1)``
    (frame units), as (height,) float64."""
    return float(exposure) + float(readout) * torch.arange(height, dtype=torch.float64) / max(height - 1, 1)


def grr_blur(frames: Tensor, exposure: float, readout: float, start: float = 0.0) -> Tensor:
    """GRR blur: all rows reset at ``start``; row ``r`` integrates ``[start, start + t_r)`` with
    :func:`grr_exposures` (RSS-T paper, Sec. 3: blur magnitude grows row by row)."""
    _check(frames)
    H = frames.shape[2]
    t0 = torch.full((H,), float(start), dtype=torch.float64)
    return integrate_rows(frames, t0, t0 + grr_exposures(H, exposure, readout))
