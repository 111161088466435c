"""The vectorised DVS simulator against a plain per-iteration loop of the official algorithm.

The reference below is a direct, slow restatement of ``DVSModelSimulator`` (``initialize`` /
``simulate``) of ``scripts/script_utils/Events.py`` in fourson/Deblurring-Low-Light-Images-with-Events
(written for this test from the algorithm, one event iteration at a time, with the global-seed
``RandomState(42)`` and its draw order). With every official quirk switched on, deblurkit's
simulator must give the same events, bit for bit; with the quirks off it must differ exactly
where the quirks act.
"""
from __future__ import annotations

import cv2
import numpy as np

from deblurkit.synth.events import DVSParams, DVSSimulator


def _lin_log(x, th=20):
    x = x.astype(np.float32)
    out = np.empty_like(x)
    low = x < th
    out[low] = x[low] / th * np.log(th)
    out[~low] = np.log(x[~low])
    return out


def reference_events(frames, times, p_th=0.3, n_th=0.3, sigma_th=0.03, cutoff_hz=30, leak_hz=0.1, shot_hz=0.1):
    rs = np.random.RandomState(42)
    shape = frames[0].shape
    mem = _lin_log(frames[0])
    if leak_hz > 0:
        mem -= rs.uniform(0, p_th, shape)
    stage1, lowpass = mem.copy(), mem.copy()
    pos = np.clip(rs.normal(p_th, sigma_th, shape).astype(np.float32), 0.01, None)
    neg = np.clip(rs.normal(n_th, sigma_th, shape).astype(np.float32), 0.01, None)
    t_old = times[0]
    out = []
    for frame, t in zip(frames[1:], times[1:]):
        frame = frame.astype(np.float32)
        new = _lin_log(frame)
        dt = t - t_old
        luma = (frame + 20) / 275
        if cutoff_hz > 0:
            eps = np.clip(dt / (1 / (2 * np.pi * (luma * cutoff_hz))), None, 1)
        else:
            eps = 1
        stage1 = (1 - eps) * stage1 + eps * new
        lowpass = (1 - eps) * lowpass + eps * stage1
        if leak_hz > 0:
            mem -= dt * leak_hz * p_th
        diff = lowpass - mem
        n_on = (diff * (diff > 0)) // pos
        n_off = (-diff * (diff < 0)) // neg
        iters = int(max(n_on.max(), n_off.max()))
        mem[n_on > 0] += n_on[n_on > 0] * pos[n_on > 0]
        mem[n_off > 0] -= n_off[n_off > 0] * neg[n_off > 0]
        for i in range(iters):
            ti = t_old + dt * (i + 1) / iters
            rows = []
            for mask, sign in ((n_on >= i + 1, 1.0), (n_off >= i + 1, -1.0)):
                for y, x in zip(*np.nonzero(mask)):
                    rows.append((ti, x, y, sign))
            if rows and shot_hz > 0:
                r = shot_hz / 2 * ((0.25 - 1) * luma + 1)
                p = r * (dt / iters) * p_th / pos
                u = rs.uniform(size=shape).astype(np.float32)
                shot_on, shot_off = u > 1 - p, u < p
                for y, x in zip(*np.nonzero(shot_on)):
                    rows.append((ti, x, y, 1.0))
                for y, x in zip(*np.nonzero(shot_off)):
                    rows.append((ti, x, y, 1.0))  # the official polarity of OFF shot noise
                mem[shot_on] += pos[shot_on]
                mem[shot_off] -= neg[shot_off]
            block = np.array(rows, dtype=np.float32).reshape(-1, 4)
            rs.shuffle(block)
            out.append(block)
        t_old = t
    return np.concatenate(out)


def scene(n=9, h=20, w=24):
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.uniform(0, 1, (h, w + 12)).astype(np.float32), (0, 0), 1.5)
    base = (base - base.min()) / (base.max() - base.min()) * 400  # 0..400 DN: lin and log parts, HDR
    frames = [cv2.warpAffine(base, np.float32([[1, 0, -0.7 * k], [0, 1, 0.2 * k]]), (w + 12, h))[:, :w]
              for k in range(n)]
    return np.stack(frames), [k * 0.1 / (n - 1) for k in range(n)]


def run(params, frames, times, shuffle=True):
    sim = DVSSimulator(params, np.random.RandomState(42), shuffle=shuffle)
    sim.initialize(frames[0], times[0])
    return np.concatenate([sim.simulate(f, t) for f, t in zip(frames[1:], times[1:])])


def test_official_mode_reproduces_the_official_simulator_exactly():
    frames, times = scene()
    shot = 400.0  # far above the official 0.1 Hz so that shot noise actually occurs in the test
    ref = reference_events(frames, times, shot_hz=shot)
    params = DVSParams(shot_noise_rate_hz=shot, official_leak_offset=True, official_shot_noise_polarity=True)
    got = run(params, frames, times)
    assert len(ref) > 500
    np.testing.assert_array_equal(got, ref)


def test_default_mode_differs_only_by_the_quirks():
    frames, times = scene()
    shot = 400.0
    ref = reference_events(frames, times, shot_hz=shot)
    fixed = run(DVSParams(shot_noise_rate_hz=shot), frames, times)
    # without the leak offset no pixel starts closer to an ON event: fewer ON, more OFF events
    assert (fixed[:, 3] > 0).sum() < (ref[:, 3] > 0).sum()
    assert (fixed[:, 3] < 0).sum() > 0
    # only the shot-noise polarity quirk on: same events, some OFF instead of ON
    only_pol = run(DVSParams(shot_noise_rate_hz=shot, official_leak_offset=True), frames, times)
    np.testing.assert_array_equal(only_pol[:, :3], ref[:, :3])
    assert (only_pol[:, 3] < 0).sum() > (ref[:, 3] < 0).sum()
