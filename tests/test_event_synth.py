"""Event / low-light synthesis of the evdeblur system (deblurkit.synth events, motion, lowlight)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deblurkit.cli import app
from deblurkit.synth.events import DVSParams, DVSSimulator, lin_log
from deblurkit.synth.events_ideal import IdealEventSimulator, video_events
from deblurkit.synth.evsample import EventSynthConfig, aps_from_rgb, hdr_boost, make_event_sample
from deblurkit.synth.lowlight import LowLightNoise, rgb_to_bayer_rggb
from deblurkit.synth.motion import (
    ArcParams,
    PatchWarpParams,
    arc_trajectory,
    bidirectional_flow,
    patchwise_trajectories,
    sample_camera_motion,
    trajectory_kernel,
    warp_patchwise,
)
from deblurkit.synth.voxel import events_to_voxel_grid, from_official_layout

NOISELESS = DVSParams(cutoff_hz=0, leak_rate_hz=0, shot_noise_rate_hz=0)


def textured(h, w, seed=0):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 1, (h, w)).astype(np.float32), (0, 0), 2)
    return (img - img.min()) / (img.max() - img.min())


def moving_frames(n=13, h=24, w=30, seed=0):
    """A textured image sliding 0.4 px per frame, in DN (10..240)."""
    base = textured(h, w + 10, seed) * 230 + 10
    out = []
    for k in range(n):
        m = np.float32([[1, 0, -0.4 * k], [0, 1, 0]])
        out.append(cv2.warpAffine(base, m, (w + 10, h), flags=cv2.INTER_LINEAR)[:, :w])
    return np.stack(out)


def per_pixel_sum(events, h, w, weights):
    acc = np.zeros((h, w))
    np.add.at(acc, (events[:, 2].astype(int), events[:, 1].astype(int)), weights)
    return acc


# ---------------------------------------------------------------- DVS simulator physics
def test_dvs_events_integrate_to_log_change_within_one_threshold():
    frames = moving_frames()
    h, w = frames.shape[1:]
    sim = DVSSimulator(NOISELESS, np.random.default_rng(1))
    sim.initialize(frames[0], 0.0)
    ev = np.concatenate([sim.simulate(f, k * 0.01) for k, f in enumerate(frames[1:], 1)])
    assert len(ev) > 200
    on = ev[:, 3] > 0
    steps = per_pixel_sum(ev, h, w, np.where(on, sim.theta_on[ev[:, 2].astype(int), ev[:, 1].astype(int)],
                                            -sim.theta_off[ev[:, 2].astype(int), ev[:, 1].astype(int)]))
    change = lin_log(frames[-1]) - lin_log(frames[0])
    err = change - steps
    assert (err < sim.theta_on).all() and (err > -sim.theta_off).all()
    # thresholds: N(0.3, 0.03) per pixel
    assert abs(sim.theta_on.mean() - 0.3) < 0.01 and 0.02 < sim.theta_on.std() < 0.04
    # timestamps inside their frame interval and sorted
    assert ev[:, 0].min() > 0 and ev[:, 0].max() <= 0.12 + 1e-6
    assert (np.diff(ev[:, 0]) >= 0).all()


def test_dvs_lowpass_is_intensity_dependent():
    # a +1 log step at a dark (21 -> 57 DN) and a bright (100 -> 272 DN) pixel, 30 Hz cut-off
    params = DVSParams(sigma_th=0, leak_rate_hz=0, shot_noise_rate_hz=0, cutoff_hz=30)
    before = np.array([[21.0, 100.0]], np.float32)
    after = before * np.float32(np.e)
    sim = DVSSimulator(params, np.random.default_rng(0))
    sim.initialize(before, 0.0)
    first = sim.simulate(after, 0.1 / 24)
    counts = [int((first[:, 1] == x).sum()) for x in (0, 1)]
    assert counts[1] >= 2 and counts[0] == 0  # the bright pixel follows at once, the dark one lags
    total = [first]
    for k in range(2, 200):
        total.append(sim.simulate(after, k * 0.1 / 24))
    total = np.concatenate(total)
    assert [int((total[:, 1] == x).sum()) for x in (0, 1)] == [3, 3]  # both settle: floor(1 / 0.3)


def test_dvs_static_scene_is_silent_by_default_and_leak_offset_quirk_fires():
    img = textured(40, 40) * 200 + 30
    counts = {}
    for quirk in (False, True):
        for gain in (1.0, np.exp(0.2)):  # static, then a uniform brightening by 0.2 (< one threshold)
            params = DVSParams(shot_noise_rate_hz=0, official_leak_offset=quirk)
            sim = DVSSimulator(params, np.random.default_rng(3))
            sim.initialize(img, 0.0)
            ev = np.concatenate([sim.simulate(img * gain, k * 0.1 / 24) for k in range(1, 25)])
            counts[quirk, gain > 1] = (int((ev[:, 3] > 0).sum()), int((ev[:, 3] < 0).sum()))
    assert counts[False, False] == (0, 0) and counts[False, True] == (0, 0)
    assert counts[True, False][0] > 0 and counts[True, False][1] == 0  # ON events only (hot pixels)
    assert counts[True, True][0] > 0.4 * 1600 and counts[True, True][1] == 0  # theta - u < 0.2 for most pixels


def test_shot_noise_polarity_quirk():
    frames = moving_frames(n=6)
    res = {}
    for quirk in (False, True):
        params = DVSParams(leak_rate_hz=0, cutoff_hz=0, shot_noise_rate_hz=2000.0, official_shot_noise_polarity=quirk)
        sim = DVSSimulator(params, np.random.default_rng(5))
        sim.initialize(frames[0], 0.0)
        res[quirk] = np.concatenate([sim.simulate(f, k * 0.01) for k, f in enumerate(frames[1:], 1)])
    # same random stream, same events (times, positions); the quirk only flips OFF shot noise to ON
    np.testing.assert_array_equal(res[False][:, :3], res[True][:, :3])
    flipped = res[False][:, 3] != res[True][:, 3]
    assert flipped.any() and (res[False][flipped, 3] < 0).all() and (res[True][flipped, 3] > 0).all()


def test_shot_noise_rate_matches_model():
    # one frame of a dark static scene; one toggled pixel keeps the event iterations running
    h, w = 128, 128
    rate = 50.0
    params = DVSParams(sigma_th=0, leak_rate_hz=0, cutoff_hz=0, shot_noise_rate_hz=rate)
    sim = DVSSimulator(params, np.random.default_rng(0))
    img = np.zeros((h, w), np.float32)  # luma factor = 20 / 275
    sim.initialize(img, 0.0)
    frame = img.copy()
    frame[0, 0] = 100.0
    dt = 0.05
    ev = sim.simulate(frame, dt)
    noise = ev[(ev[:, 1] != 0) | (ev[:, 2] != 0)]
    luma = 20 / 275
    per_polarity = rate / 2 * ((0.25 - 1) * luma + 1) * dt * (h * w - 1)
    for pol in (1, -1):
        n = int((noise[:, 3] == pol).sum())
        assert abs(n - per_polarity) < 5 * np.sqrt(per_polarity)


# ---------------------------------------------------------------- ideal simulator
def test_ideal_events_integrate_within_one_threshold_and_cross_on_time():
    frames = moving_frames(n=9)
    h, w = frames.shape[1:]
    sim = IdealEventSimulator(0.2)
    sim.initialize(frames[0], 0.0)
    ev = np.concatenate([sim.simulate(f, k * 0.01) for k, f in enumerate(frames[1:], 1)])
    steps = per_pixel_sum(ev, h, w, 0.2 * ev[:, 3])
    err = (lin_log(frames[-1]).astype(np.float64) - lin_log(frames[0])) - steps
    assert len(ev) > 200 and np.abs(err).max() < 0.2
    # a linear log ramp: crossings exactly where the line meets ref + k C
    sim = IdealEventSimulator(0.25)
    sim.initialize(np.array([[100.0]]), 0.0)
    ev = sim.simulate(np.array([[100.0 * np.exp(1.0)]]), 1.0)
    np.testing.assert_allclose(ev[:, 0], [0.25, 0.5, 0.75, 1.0], atol=1e-6)
    assert (ev[:, 3] == 1).all()


def test_video_events_with_interpolation():
    frames = torch.from_numpy(moving_frames(n=3) / 255.0).float()[:, None]
    ev, dense, times = video_events(frames, [0.0, 0.04, 0.08], factor=4)
    assert dense.shape[0] == 9 and np.allclose(times, np.arange(9) * 0.01)
    assert len(ev) > 0 and ev[:, 0].min() > 0 and ev[:, 0].max() <= 0.08 + 1e-9
    with pytest.raises(ValueError, match="increasing"):
        video_events(frames, [0.0, 0.04, 0.04])


# ---------------------------------------------------------------- motion
def test_arc_trajectory_geometry():
    rng = np.random.default_rng(0)
    p = ArcParams()
    traj = None
    while traj is None:
        traj = arc_trajectory(rng, p)
    assert traj.shape == (25,)
    steps = np.abs(np.diff(traj))
    assert np.allclose(steps, steps[0])  # uniform speed along the arc
    # arc length ~ 0.7 canvas (+-5 %): 24 chords of a circle a bit shorter than the arc
    assert 0.6 * 48 < steps.sum() <= 0.75 * 48
    # constant turning angle between consecutive steps (a circle)
    turn = np.angle(np.diff(traj)[1:] / np.diff(traj)[:-1])
    assert np.allclose(turn, turn[0]) and 0 < abs(turn[0]) * 24 <= np.pi + 1e-9
    assert traj.real.min() > 0 and traj.imag.min() > 0 and traj.real.max() < 45 and traj.imag.max() < 45
    assert traj[0].real == int(traj[0].real) and traj[0].imag == int(traj[0].imag)


def test_patchwise_trajectories_and_flow():
    rng = np.random.default_rng(1)
    base, pw = sample_camera_motion(rng)
    assert pw.shape == (16, 20, 25)
    fixed = patchwise_trajectories(base, rng, PatchWarpParams(z_center=(8, 10), z_translation_size=0.002,
                                                               z_rotation_angle=0.3, z_rotation_size=0.003))
    assert fixed is not None
    np.testing.assert_allclose(fixed[8, 10], base)  # the z-centre patch follows the base motion
    assert not np.allclose(fixed[0, 0], base)
    flow = bidirectional_flow(pw / 3, 256, 320, 16)
    d1 = (pw[5, 7, 12] - pw[5, 7, 0]) / 3
    np.testing.assert_allclose(flow[5 * 16 + 3, 7 * 16 + 9, :2], [d1.real, -d1.imag], rtol=1e-5)


def test_warp_patchwise_matches_per_patch_warp_affine():
    rng = np.random.default_rng(2)
    img = rng.uniform(0, 3, (48, 60, 3)).astype(np.float32)
    shifts = rng.uniform(-4, 4, (4, 5)) + 1j * rng.uniform(-4, 4, (4, 5))
    got = warp_patchwise(img, shifts, 12)
    ref = np.zeros_like(img)
    for r in range(4):
        for c in range(5):
            m = np.float64([[1, 0, shifts[r, c].real], [0, 1, shifts[r, c].imag]])
            full = cv2.warpAffine(img, m, (60, 48), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            ref[r * 12:(r + 1) * 12, c * 12:(c + 1) * 12] = full[r * 12:(r + 1) * 12, c * 12:(c + 1) * 12]
    # OpenCV quantises positions to 1/32 px in both; in practice the results are identical
    assert np.abs(got - ref).max() < 1e-4


def test_trajectory_kernel():
    k = trajectory_kernel(np.array([2 + 3j, 3.5 + 3j]), 8)
    assert k.shape == (8, 8) and abs(k.sum() - 1) < 1e-6 and (k >= 0).all()
    # y up -> flipped rows: point (x=2, y=3) lands in row 8 - 1 - 3 = 4, column 2
    assert k[4, 2] == pytest.approx(0.5) and k[4, 3] == pytest.approx(0.25) and k[4, 4] == pytest.approx(0.25)


# ---------------------------------------------------------------- low-light noise, APS, sample
def test_lowlight_noise_quantised_and_unbiased():
    rng = np.random.default_rng(0)
    noise = LowLightNoise.draw(rng)
    assert 0.01 <= noise.sigma1 <= 0.02 and 0.65 <= noise.w <= 0.75
    grey = np.full((64, 64), 0.3, np.float32)
    out = noise.apply(grey, rng)
    assert np.allclose(out * 255, np.round(out * 255), atol=1e-4) and out.min() >= 0 and out.max() <= 1
    assert abs(out.mean() - 0.3 + 0.5 / 255) < 1 / 255  # floor quantisation: -0.5 DN bias
    assert 0.3 * 0.01 < out.std() < 0.3 * 0.04
    rgb = np.dstack([np.full((64, 64), v, np.float32) for v in (0.2, 0.5, 0.8)])
    out_rgb = noise.apply(rgb, rng)
    assert np.allclose(out_rgb.reshape(-1, 3).mean(0), [0.2, 0.5, 0.8], atol=0.01)
    sat = noise.apply(np.full((8, 8), 3.0, np.float32), rng)  # HDR saturates (then the sigma3 noise)
    assert sat.max() == 1 and sat.mean() > 0.97
    mosaic = rgb_to_bayer_rggb(rgb)
    assert mosaic[0, 0] == 0.2 and mosaic[0, 1] == 0.5 and mosaic[1, 0] == 0.5 and mosaic[1, 1] == 0.8


def test_hdr_boost_and_aps_sampling():
    rgb = np.full((6, 9, 3), 0.5, np.float32)
    rgb[0, 0] = 1.0
    boosted = hdr_boost(rgb, np.random.default_rng(0))
    assert 2.25 <= boosted[0, 0, 0] <= 3.5 and boosted[1, 1, 0] == 0.5
    ramp = np.tile(np.arange(9, dtype=np.float32)[None, :, None], (6, 1, 3))
    aps = aps_from_rgb(ramp, 3)
    assert aps.shape == (2, 3)
    np.testing.assert_allclose(aps[0], [1, 4, 7], atol=1e-5)  # centre pixel of each 3x3 block


def small_sample(seed, config=EventSynthConfig(), size=(96, 120)):
    rng = np.random.default_rng(seed)
    base, pw = sample_camera_motion(rng)
    img = np.dstack([textured(*size, s) for s in range(3)]).astype(np.float32)
    return make_event_sample(hdr_boost(img, rng), base, pw, rng, config, with_kernels=True)


def test_sample_voxel_grid_sums_match_event_counts_and_shapes():
    s = small_sample(0)
    h, w = 32, 40
    assert s["APS"].shape == (h, w) and s["RGB_blur"].shape == (96, 120, 3) and s["flow"].shape == (h, w, 4)
    vox = from_official_layout(s["events_voxel_grid"])
    assert vox.shape == (13, h, w)
    ev = s["events"]
    np.testing.assert_allclose(vox.sum(0), per_pixel_sum(ev, h, w, np.sign(ev[:, 3])), atol=1e-3)
    assert len(ev) > 100 and ev[:, 0].max() <= 0.1 + 1e-6
    assert s["patch_wise_kernel_APS"].shape == (16 * 16, 20 * 16) and s["base_kernel_APS"].shape == (16, 16)
    # blurry = mean of the 25 frames: same mean brightness as the sharp image (up to border reflection)
    assert abs(s["APS_blur_clean"].mean() - s["APS"].mean()) < 0.05


def test_sample_seeded_determinism_and_official_seed_quirk():
    a, b, c = small_sample(7), small_sample(7), small_sample(8)
    for k in ("events", "APS_blur", "RGB_blur", "flow"):
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["flow"], c["flow"])
    # same source and motion, different sample generators
    base, pw = sample_camera_motion(np.random.default_rng(0))
    img = np.dstack([textured(96, 120, s) for s in range(3)]).astype(np.float32)
    out = {}
    for official in (False, True):
        cfg = EventSynthConfig(official_seed=official)
        out[official] = [make_event_sample(img, base, pw, np.random.default_rng(s), cfg) for s in (1, 2)]
    # default: independent noise and thresholds per sample
    assert not np.array_equal(out[False][0]["APS_blur"], out[False][1]["APS_blur"])
    assert not np.array_equal(out[False][0]["events"], out[False][1]["events"])
    # official quirk: the RNG is reset to 42 for every sample -> identical noise and events
    for k in ("APS_blur", "RGB_blur", "events"):
        np.testing.assert_array_equal(out[True][0][k], out[True][1][k])


def test_official_seed_gives_the_same_threshold_map_every_sample():
    maps = []
    for seed in (1, 2):
        sim = DVSSimulator(DVSParams(), np.random.RandomState(42))
        LowLightNoise.draw(sim.rng)
        sim.initialize(np.full((8, 8), 100.0), 0.0)
        maps.append(sim.theta_on)
    np.testing.assert_array_equal(*maps)
    sims = [DVSSimulator(DVSParams(), np.random.default_rng(s)) for s in (1, 2)]
    for s in sims:
        s.initialize(np.full((8, 8), 100.0), 0.0)
    assert not np.array_equal(sims[0].theta_on, sims[1].theta_on)


# ---------------------------------------------------------------- CLI + layout
def test_cli_synth_events_writes_official_layout(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    img = (np.dstack([textured(100, 130, s) for s in range(3)]) * 255).astype(np.uint8)
    cv2.imwrite(str(photos / "scene.png"), img)
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["synth", "events", "--photos", str(photos), "--out", str(out),
                                 "--trajectories", "2", "--size", "96x120"])
    assert r.exit_code == 0, r.output
    names = ["scene_000", "scene_flipud_001"]
    for n in names:
        vox = np.load(out / "subnetwork1" / "events_voxel_grid" / f"{n}.npy")
        assert vox.shape == (32, 40, 13) and vox.dtype == np.float32
        aps_blur = cv2.imread(str(out / "share" / "APS_blur" / f"{n}.png"), -1)
        assert aps_blur.shape == (32, 40) and aps_blur.dtype == np.uint8
        assert np.load(out / "share" / "flow" / f"{n}.npy").shape == (32, 40, 4)
        for sub in ("APS", "RGB", "RGB_blur", "RGB_blur_clean"):
            assert (out / "subnetwork2" / sub / f"{n}.png").is_file()
        ev = np.load(out / "others" / "events" / f"{n}.npy")
        np.testing.assert_allclose(from_official_layout(vox), events_to_voxel_grid(ev, 32, 40), atol=1e-6)
    man = json.loads((out / "manifest.json").read_text())
    assert man["num_samples"] == 2 and [s["name"] for s in man["samples"]] == names
    again = CliRunner().invoke(app, ["synth", "events", "--photos", str(photos), "--out", str(out)])
    assert again.exit_code == 2 and "already holds" in again.output


def test_cli_synth_events_from_frames(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    base = textured(48, 80) * 255
    for k in range(4):
        m = np.float32([[1, 0, -1.5 * k], [0, 1, 0]])
        cv2.imwrite(str(frames / f"{k:03d}.png"), cv2.warpAffine(base, m, (80, 48)).astype(np.uint8))
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["synth", "events", "--frames", str(frames), "--out", str(out), "--factor", "3",
                                 "--window", "2", "--stride", "1"])
    assert r.exit_code == 0, r.output
    vox = np.load(out / "subnetwork1" / "events_voxel_grid" / "frames_00000.npy")
    assert vox.shape == (16, 26, 13) and np.abs(vox).sum() > 0
    flow = np.load(out / "share" / "flow" / "frames_00000.npy")
    assert flow.shape == (16, 26, 4)
    assert abs(np.median(flow[4:-4, 4:-4, 0]) + 0.5) < 0.1  # content moves left 1.5 px = 0.5 APS px per frame
    assert len(list((out / "share" / "APS_blur").glob("*.png"))) == 2
