"""v2e-style DVS event simulator of Zhou et al., *Deblurring Low-Light Images with Events* (IJCV 2023).

Follows ``DVSModelSimulator`` in ``scripts/script_utils/Events.py`` of
fourson/Deblurring-Low-Light-Images-with-Events, itself a port of v2e (Hu, Liu & Delbruck,
CVPRW 2021, Sec. 3); equations and constants carry over, the code (vectorised over pixels *and*
over the event iterations of a frame) is our own:

* lin-log intensity ``L = log(I)`` for ``I >= 20`` and ``I / 20 * log(20)`` below
  (``I`` in DN, 0..255 and above for HDR);
* per-pixel ON/OFF thresholds ``~ N(0.3, 0.03)`` clipped at 0.01;
* intensity-dependent photoreceptor low-pass: two first-order stages,
  ``f_3dB = cutoff_hz * (I + 20) / 275``, ``eps = min(dt * 2 pi f_3dB, 1)``,
  ``L1 <- (1 - eps) L1 + eps L``, ``Llp <- (1 - eps) Llp + eps L1``;
* leak: the memorised level drops by ``dt * leak_rate_hz * p_th`` per frame;
* a pixel with ``|Llp - Lmem|`` spanning ``n`` thresholds emits ``n`` events spread evenly over
  the frame interval (the official iteration ``k`` of ``K = max n`` is at
  ``t_old + dt (k + 1) / K``), and ``Lmem`` moves by ``n`` thresholds;
* shot noise in every iteration: ``u ~ U(0, 1)`` per pixel, ON if ``u > 1 - p``, OFF if ``u < p``,
  ``p = R/2 ((F - 1) luma + 1) dt / K * p_th / theta_on`` with ``F = 0.25``.

Official quirks, reproduced only behind flags (off by default, i.e. fixed):

* ``official_leak_offset``: at start the official code lowers the memorised level (and the
  low-pass filter states, which then converge back to the true level) by ``u ~ U(0, p_th)`` per
  pixel, so a pixel's first ON event needs only ``theta - u`` of brightening and its first OFF
  ``theta + u`` of darkening; pixels with ``theta < u`` fire ON events on a static scene. With
  the official leak rate (0.1 Hz over a 0.1 s exposure: 0.3 % of a threshold) this offset, not
  the leak, dominates. Default: all states start at the true log intensity (the offset is still
  drawn, so the random stream is unchanged).
* ``official_shot_noise_polarity``: the official code records OFF shot-noise events with
  polarity ``+1`` (while lowering the memorised level). Default: ``-1``.
* the per-sample reset of NumPy's global seed to 42 is a property of the caller (see
  :func:`deblurkit.synth.evsample.make_event_sample`, ``official_seed``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

__all__ = ["DVSParams", "DVSSimulator", "lin_log", "LIN_LOG_THRESHOLD"]

LIN_LOG_THRESHOLD = 20.0  # DN; Events.py lin_log(th=20)
SHOT_NOISE_F = 0.25  # Events.py: shot noise intensity factor

RandomSource = Union[np.random.Generator, np.random.RandomState]


def lin_log(intensity: np.ndarray, threshold: float = LIN_LOG_THRESHOLD) -> np.ndarray:
    """Lin-log mapping: linear below ``threshold`` DN (matching ``log`` at it), log above.

    Args:
        intensity: array in DN (0..255, more for HDR), >= 0.

    Returns:
        float32 array of the same shape.
    """
    x = np.asarray(intensity, dtype=np.float32)
    lin = x * np.float32(np.log(threshold) / threshold)
    return np.where(x < threshold, lin, np.log(np.maximum(x, threshold))).astype(np.float32)


@dataclass
class DVSParams:
    """Simulator settings; defaults = ``dvs_model_simulator_args`` of ``scripts/make_dataset.py``.

    Thresholds in log intensity, rates in Hz (per pixel).
    """

    p_th: float = 0.3
    n_th: float = 0.3
    sigma_th: float = 0.03
    cutoff_hz: float = 30.0
    leak_rate_hz: float = 0.1
    shot_noise_rate_hz: float = 0.1
    official_leak_offset: bool = False
    official_shot_noise_polarity: bool = False


class DVSSimulator:
    """Frame-driven DVS simulator (see the module docstring for the model).

    Usage: ``sim = DVSSimulator(params, rng); sim.initialize(I0, t0)``, then
    ``events = sim.simulate(I, t)`` for each later frame. Intensities are ``(H, W)`` arrays in
    DN (the official scripts pass ``APS * 255``), times in seconds.

    Args:
        params: :class:`DVSParams`.
        rng: ``numpy.random.Generator`` or ``RandomState`` (per-pixel thresholds, leak offset,
            shot noise). Draw order matches the official code (leak offset, ON thresholds,
            OFF thresholds, then per iteration one uniform image).
        shuffle: shuffle each iteration's events like the official code (consumes random
            numbers; used to keep the official random stream). Default: events of a frame
            come out sorted by time.

    Attributes after :meth:`initialize`: ``theta_on``, ``theta_off`` ``(H, W)`` float32
    thresholds; ``reference`` the memorised level; ``lowpass`` the filter output.
    """

    def __init__(self, params: DVSParams = DVSParams(), rng: Optional[RandomSource] = None, *, shuffle: bool = False):
        self.params = params
        self.rng = rng if rng is not None else np.random.default_rng()
        self.shuffle = shuffle
        self.reference: Optional[np.ndarray] = None
        self.t_old: Optional[float] = None
        self.num_on = 0
        self.num_off = 0

    def initialize(self, intensity: np.ndarray, t: float) -> None:
        """Set the memorised level and filter states from the first frame; draw thresholds.

        Args:
            intensity: ``(H, W)`` DN. t: its time in seconds.

        Raises:
            ValueError: not a 2-D array, or negative / non-finite values.
        """
        p = self.params
        i0 = self._check(intensity)
        level = lin_log(i0)
        if p.leak_rate_hz > 0:
            offset = self.rng.uniform(0, p.p_th, level.shape).astype(np.float32)
            if p.official_leak_offset:
                level = level - offset  # filter states start offset too (official)
        self.reference = level.copy()
        self.stage1 = level.copy()
        self.lowpass = level.copy()
        shape = level.shape
        self.theta_on = np.maximum(self.rng.normal(p.p_th, p.sigma_th, shape).astype(np.float32), np.float32(0.01))
        self.theta_off = np.maximum(self.rng.normal(p.n_th, p.sigma_th, shape).astype(np.float32), np.float32(0.01))
        self.t_old = float(t)

    @staticmethod
    def _check(intensity: np.ndarray) -> np.ndarray:
        x = np.asarray(intensity, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"DVS frames must be (H, W) intensity arrays, got shape {x.shape}")
        if not np.isfinite(x).all() or (x < 0).any():
            raise ValueError("DVS frames must be finite and >= 0 (DN)")
        return x

    def simulate(self, intensity: np.ndarray, t: float) -> np.ndarray:
        """Advance to the frame ``intensity`` at time ``t`` and return the events since the last.

        Args:
            intensity: ``(H, W)`` DN, same size as the first frame. t: seconds, > previous time.

        Returns:
            ``(N, 4)`` float32 rows ``(t, x, y, polarity)`` (``x`` column, ``y`` row, polarity
            +1/-1), ``N`` may be 0.

        Raises:
            RuntimeError: :meth:`initialize` not called. ValueError: time not increasing, bad frame.
        """
        if self.reference is None or self.t_old is None:
            raise RuntimeError("call initialize() with the first frame before simulate()")
        if t <= self.t_old:
            raise ValueError(f"frame time {t} must be later than the previous frame time {self.t_old}")
        p = self.params
        frame = self._check(intensity)
        if frame.shape != self.reference.shape:
            raise ValueError(f"frame size {frame.shape} differs from the first frame {self.reference.shape}")
        level = lin_log(frame)
        dt = t - self.t_old
        luma = (frame + np.float32(20)) / np.float32(275)
        if p.cutoff_hz > 0:
            tau = 1.0 / (np.float32(2 * np.pi) * luma * np.float32(p.cutoff_hz))
            eps = np.minimum(np.float32(dt) / tau, np.float32(1)).astype(np.float32)
        else:
            eps = np.float32(1)
        self.stage1 = (1 - eps) * self.stage1 + eps * level
        self.lowpass = (1 - eps) * self.lowpass + eps * self.stage1
        if p.leak_rate_hz > 0:
            self.reference -= np.float32(dt * p.leak_rate_hz * p.p_th)

        change = self.lowpass - self.reference
        n_on = np.where(change > 0, change, np.float32(0)) // self.theta_on
        n_off = np.where(change < 0, -change, np.float32(0)) // self.theta_off
        self.reference += n_on * self.theta_on - n_off * self.theta_off
        n_on = n_on.astype(np.int64)
        n_off = n_off.astype(np.int64)
        iters = int(max(n_on.max(initial=0), n_off.max(initial=0)))
        if iters == 0:
            self.t_old = float(t)
            return np.zeros((0, 4), np.float32)

        signal = np.concatenate([self._expand(n_on, +1.0), self._expand(n_off, -1.0)])
        signal = signal[np.argsort(signal[:, 0], kind="stable")]  # by iteration; ON before OFF within one
        bounds = np.searchsorted(signal[:, 0], np.arange(iters + 1))
        shot = self._shot_noise_probability(luma, dt, iters)
        blocks = []
        for k in range(iters):
            block = [signal[bounds[k]:bounds[k + 1]]]
            if shot is not None:  # official order: signal ON, OFF, shot-noise ON, shot-noise OFF
                block.extend(self._shot_noise(shot, k))
            block = np.concatenate(block)
            if self.shuffle:
                self.rng.shuffle(block)
            blocks.append(block)
        cat = np.concatenate(blocks)
        times = self.t_old + dt * (cat[:, 0] + 1) / iters
        self.num_on += int((cat[:, 3] > 0).sum())
        self.num_off += int((cat[:, 3] < 0).sum())
        self.t_old = float(t)
        return np.stack([times, cat[:, 2], cat[:, 1], cat[:, 3]], axis=1).astype(np.float32)

    @staticmethod
    def _expand(counts: np.ndarray, polarity: float) -> np.ndarray:
        """Pixel with count n -> n rows ``(k, y, x, polarity)``, k = 0..n-1 (iteration index)."""
        ys, xs = np.nonzero(counts)
        n = counts[ys, xs]
        total = int(n.sum())
        rep_y, rep_x = np.repeat(ys, n), np.repeat(xs, n)
        starts = np.repeat(np.cumsum(n) - n, n)
        k = np.arange(total) - starts
        return np.stack([k, rep_y, rep_x, np.full(total, polarity)], axis=1).astype(np.float64)

    def _shot_noise_probability(self, luma: np.ndarray, dt: float, iters: int) -> Optional[np.ndarray]:
        p = self.params
        if p.shot_noise_rate_hz <= 0:
            return None
        rate = p.shot_noise_rate_hz / 2 * ((SHOT_NOISE_F - 1) * luma + 1)
        return (rate * (dt / iters) * p.p_th / self.theta_on).astype(np.float32)

    def _shot_noise(self, prob: np.ndarray, k: int) -> list[np.ndarray]:
        """One iteration's shot noise: rows ``(k, y, x, polarity)`` for ON and OFF; updates the
        memorised level."""
        off_pol = 1.0 if self.params.official_shot_noise_polarity else -1.0
        u = self.rng.uniform(size=prob.shape).astype(np.float32)
        on = u > 1 - prob
        off = u < prob
        self.reference[on] += self.theta_on[on]
        self.reference[off] -= self.theta_off[off]
        out = []
        for mask, pol in ((on, 1.0), (off, off_pol)):
            ys, xs = np.nonzero(mask)
            out.append(np.stack([np.full(len(ys), k), ys, xs, np.full(len(ys), pol)], axis=1).astype(np.float64))
        return out
