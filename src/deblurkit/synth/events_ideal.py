"""Ideal event simulator for video: events exactly at log-intensity threshold crossings.

A noise-free event camera with one contrast threshold ``C`` (ESIM-style; Rebecq et al., CoRL
2018): between two consecutive frames at ``t0``, ``t1`` the log intensity of each pixel is taken
as linear in time, and a pixel whose memorised level is ``R`` emits an ON event at every level
``R + k C`` (OFF: ``R - k C``) that the segment ``L(t0) -> L(t1)`` reaches, at the time the line
reaches it; ``R`` then moves to the last level crossed. Hence, per pixel, at every frame
``|L(t) - R| < C`` and ``C * sum(polarities) = R_end - R_start``: the events integrate to the
log-intensity change within one threshold.

Frames of ordinary (25 fps) video are far apart for this linear model, so
:func:`video_events` first raises the frame rate with optical-flow interpolation
(:func:`deblurkit.synth.interpolate.interpolate_frames`). The log mapping is the lin-log curve
of the DVS model (:func:`deblurkit.synth.events.lin_log`, intensities in DN = 255 x [0, 1]).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from .events import lin_log

__all__ = ["IdealEventSimulator", "video_events", "grey_dn"]


class IdealEventSimulator:
    """Noise-free threshold-crossing simulator (see the module docstring).

    Same interface as :class:`deblurkit.synth.events.DVSSimulator`: :meth:`initialize` with the
    first frame, then :meth:`simulate` per later frame; intensities ``(H, W)`` in DN, times in
    seconds.

    Args:
        threshold: contrast threshold ``C`` in log intensity for ON and OFF (> 0), or a pair
            ``(C_on, C_off)``.
    """

    def __init__(self, threshold: float | tuple[float, float] = 0.3):
        c_on, c_off = (threshold, threshold) if np.isscalar(threshold) else threshold
        if not (c_on > 0 and c_off > 0):
            raise ValueError(f"thresholds must be > 0, got {threshold}")
        self.c_on, self.c_off = float(c_on), float(c_off)
        self.level: Optional[np.ndarray] = None
        self.reference: Optional[np.ndarray] = None
        self.t_old: Optional[float] = None

    def initialize(self, intensity: np.ndarray, t: float) -> None:
        """Memorise the first frame ``(H, W)`` (DN, >= 0) at time ``t`` seconds."""
        x = self._check(intensity)
        self.level = lin_log(x).astype(np.float64)
        self.reference = self.level.copy()
        self.t_old = float(t)

    @staticmethod
    def _check(intensity: np.ndarray) -> np.ndarray:
        x = np.asarray(intensity, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"frames must be (H, W) intensity arrays, got shape {x.shape}")
        if not np.isfinite(x).all() or (x < 0).any():
            raise ValueError("frames must be finite and >= 0 (DN)")
        return x

    def simulate(self, intensity: np.ndarray, t: float) -> np.ndarray:
        """Events between the previous frame and this one.

        Returns:
            ``(N, 4)`` float64 rows ``(t, x, y, polarity)`` sorted by time (``x`` column,
            ``y`` row, polarity +1/-1); ``t`` in ``(t_prev, t]``.

        Raises:
            RuntimeError: not initialised. ValueError: time not increasing, size change, bad frame.
        """
        if self.level is None or self.t_old is None:
            raise RuntimeError("call initialize() with the first frame before simulate()")
        if t <= self.t_old:
            raise ValueError(f"frame time {t} must be later than the previous frame time {self.t_old}")
        new = lin_log(self._check(intensity)).astype(np.float64)
        if new.shape != self.level.shape:
            raise ValueError(f"frame size {new.shape} differs from the first frame {self.level.shape}")
        old, ref = self.level, self.reference
        n_on = np.floor(np.maximum(new - ref, 0) / self.c_on).astype(np.int64)
        n_off = np.floor(np.maximum(ref - new, 0) / self.c_off).astype(np.int64)
        parts = []
        for counts, sign, c in ((n_on, 1.0, self.c_on), (n_off, -1.0, self.c_off)):
            ys, xs = np.nonzero(counts)
            n = counts[ys, xs]
            k = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n) + 1  # 1..n per pixel
            ys, xs = np.repeat(ys, n), np.repeat(xs, n)
            crossing = ref[ys, xs] + sign * k * c
            # fraction of the interval at which the line old -> new reaches the level
            frac = (crossing - old[ys, xs]) / (new[ys, xs] - old[ys, xs])
            ts = self.t_old + np.clip(frac, 0.0, 1.0) * (t - self.t_old)
            parts.append(np.stack([ts, xs, ys, np.full(len(ys), sign)], axis=1))
        self.reference = ref + n_on * self.c_on - n_off * self.c_off
        self.level = new
        self.t_old = float(t)
        ev = np.concatenate(parts) if parts else np.zeros((0, 4))
        return ev[np.argsort(ev[:, 0], kind="stable")]


def grey_dn(frames: torch.Tensor) -> np.ndarray:
    """``(T, 3, H, W)`` or ``(T, 1, H, W)`` float in [0, 1] -> ``(T, H, W)`` float32 DN (BT.601 grey x 255)."""
    if frames.dim() != 4 or frames.shape[1] not in (1, 3):
        raise ValueError(f"frames must be (T, 1|3, H, W), got {tuple(frames.shape)}")
    f = frames.float()
    if f.shape[1] == 3:
        f = 0.299 * f[:, 0] + 0.587 * f[:, 1] + 0.114 * f[:, 2]
    else:
        f = f[:, 0]
    return (f * 255).numpy().astype(np.float32)


def video_events(
    frames: torch.Tensor,
    times: Sequence[float] | np.ndarray,
    *,
    factor: int = 1,
    threshold: float | tuple[float, float] = 0.3,
) -> tuple[np.ndarray, torch.Tensor, np.ndarray]:
    """Ideal events of a clip, after ``factor``-times flow interpolation.

    Args:
        frames: ``(T, C, H, W)`` float in [0, 1], ``C`` in {1, 3}, ``T >= 2``.
        times: ``(T,)`` strictly increasing frame times in seconds.
        factor: temporal up-sampling factor (1 = use the frames as they are).
        threshold: contrast threshold(s), see :class:`IdealEventSimulator`.

    Returns:
        ``events`` ``(N, 4)`` float64 ``(t, x, y, polarity)`` sorted by time,
        ``dense`` ``((T - 1) factor + 1, C, H, W)`` the interpolated frames, and
        ``dense_times`` their times (linear between the original times).

    Raises:
        ValueError: bad shapes, times not increasing, factor < 1.
    """
    from .interpolate import interpolate_frames

    times = np.asarray(times, dtype=np.float64)
    if frames.dim() != 4 or frames.shape[0] < 2:
        raise ValueError(f"need (T, C, H, W) frames with T >= 2, got {tuple(frames.shape)}")
    if times.shape != (frames.shape[0],) or not (np.diff(times) > 0).all():
        raise ValueError("times must hold one strictly increasing time per frame")
    if factor == 1:
        dense = frames.float()
    elif frames.shape[1] == 1:  # interpolate_frames needs colour frames (cv2.remap drops a size-1 channel axis)
        dense = interpolate_frames(frames.float().expand(-1, 3, -1, -1), factor)[:, :1]
    else:
        dense = interpolate_frames(frames, factor)
    frac = np.arange(factor) / factor
    dense_times = np.append((times[:-1, None] + frac[None] * np.diff(times)[:, None]).ravel(), times[-1])
    grey = grey_dn(dense)
    sim = IdealEventSimulator(threshold)
    sim.initialize(grey[0], dense_times[0])
    events = [sim.simulate(g, t) for g, t in zip(grey[1:], dense_times[1:])]
    return np.concatenate(events), dense, dense_times
