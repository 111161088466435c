"""GS / RS / GRR shutter integration."""
from __future__ import annotations

import pytest
import torch

from deblurkit.synth.shutter import global_shutter_blur, grr_blur, grr_exposures, integrate_rows, rolling_shutter_blur


def _frames(T=8, H=5, W=3, seed=0):
    return torch.rand(T, 3, H, W, generator=torch.Generator().manual_seed(seed))


def test_gs_is_the_frame_average():
    f = _frames()
    assert torch.allclose(global_shutter_blur(f), f.mean(0), atol=1e-6)
    assert torch.allclose(global_shutter_blur(f, exposure=2, start=3), f[3:5].mean(0), atol=1e-6)


def test_fractional_windows_weight_frames_by_overlap():
    f = _frames()
    H = f.shape[2]
    out = integrate_rows(f, torch.full((H,), 0.5), torch.full((H,), 2.0))
    ref = (0.5 * f[0] + f[1]) / 1.5
    assert torch.allclose(out, ref, atol=1e-6)


def test_rs_rows_start_later_down_the_frame():
    f = _frames(T=10, H=4)
    out = rolling_shutter_blur(f, exposure=3, readout=3)  # row r starts at frame r
    for r in range(4):
        assert torch.allclose(out[:, r], f[r:r + 3, :, r].mean(0), atol=1e-6)


def test_grr_rows_integrate_growing_prefixes():
    f = _frames(T=10, H=4)
    out = grr_blur(f, exposure=2, readout=6)  # t_r = 2, 4, 6, 8
    assert torch.allclose(grr_exposures(4, 2, 6), torch.tensor([2.0, 4.0, 6.0, 8.0], dtype=torch.float64))
    for r, t in enumerate([2, 4, 6, 8]):
        assert torch.allclose(out[:, r], f[:t, :, r].mean(0), atol=1e-6)


def test_grr_blur_grows_towards_the_bottom_on_a_moving_edge():
    T, H, W = 16, 8, 32
    f = torch.zeros(T, 1, H, W)
    for t in range(T):
        f[t, :, :, 8 + t:] = 1.0  # an edge moving right by 1 px per frame
    out = grr_blur(f, exposure=1, readout=15)[0]
    width = [(0.02 < out[r]).logical_and(out[r] < 0.98).sum().item() for r in range(H)]
    assert width == sorted(width) and width[-1] > width[0] + 8


def test_bad_windows_raise():
    f = _frames()
    with pytest.raises(ValueError, match="0 <= t0 < t1"):
        grr_blur(f, exposure=5, readout=10)
    with pytest.raises(ValueError, match="T, C, H, W"):
        global_shutter_blur(torch.rand(3, 4, 4))


def test_interpolation_keeps_originals_and_tracks_a_moving_square():
    from deblurkit.synth.interpolate import interpolate_frames

    T, H, W = 2, 48, 64
    f = torch.zeros(T, 3, H, W)
    f[0, :, 16:32, 10:26] = 1.0
    f[1, :, 16:32, 18:34] = 1.0  # moved 8 px right
    out = interpolate_frames(f, 4)
    assert out.shape == (5, 3, H, W)
    assert torch.equal(out[0], f[0]) and torch.equal(out[4], f[1])
    mid = out[2, 0]
    cols = mid[24].nonzero().flatten().float()
    centre = float(cols[mid[24, cols.long()] > 0.5].mean())
    assert abs(centre - (17.5 + 4)) <= 2.0  # halfway between 17.5 and 25.5
    with pytest.raises(ValueError):
        interpolate_frames(f[:1], 4)


def test_build_grr_sequence_from_real_frames(tmp_path, shared_data):
    from deblurkit.data import PairedImageDataset
    from deblurkit.synth.grr import build_grr_sequence, read_frames
    from deblurkit.synth.interpolate import interpolate_frames

    frames = read_frames(shared_data / "sequences" / "visp_mbt_cube", max_frames=4)[:, :, ::8, ::8]
    assert frames.shape == (4, 3, 60, 80)
    man = build_grr_sequence(frames, tmp_path, seq="cube", factor=4, exposure=2, readout=6, stride=1,
                             progress=False)
    assert man["num_pairs"] == 2
    ds = PairedImageDataset(tmp_path, split="test", lq_dir="RSGR/PNG", gt_dir="GS/PNG")
    assert len(ds) == 2
    item = ds[0]
    assert item["lq"].shape == item["gt"].shape == (3, 60, 80)
    # default GS reference: the scene integrated over the first row's window [0, exposure) (the
    # captured pairs' GS exposure equals the GRR first row's), so the top row matches it exactly
    dense = interpolate_frames(frames, 4)
    assert torch.allclose(item["gt"], dense[:2].mean(0), atol=1 / 255)
    assert torch.allclose(item["lq"][:, 0], item["gt"][:, 0], atol=1 / 255)
    top = (item["lq"][:, :20] - item["gt"][:, :20]).abs().mean()
    bottom = (item["lq"][:, -20:] - item["gt"][:, -20:]).abs().mean()
    assert bottom > top
    with pytest.raises(ValueError, match="too short"):
        build_grr_sequence(frames[:2], tmp_path / "x", factor=2, exposure=2, readout=6, progress=False)


def test_reference_choices(tmp_path, shared_data):
    from deblurkit.data import PairedImageDataset
    from deblurkit.synth.grr import build_grr_sequence, read_frames
    from deblurkit.synth.interpolate import interpolate_frames

    frames = read_frames(shared_data / "sequences" / "visp_mbt_cube", max_frames=3)[:, :, ::8, ::8]
    dense = interpolate_frames(frames, 4)
    for ref, expected in (("start", dense[0]), ("middle", dense[1])):
        build_grr_sequence(frames, tmp_path / ref, factor=4, exposure=2, readout=6, reference=ref, progress=False)
        gt = PairedImageDataset(tmp_path / ref, split="test", lq_dir="RSGR/PNG", gt_dir="GS/PNG")[0]["gt"]
        assert torch.allclose(gt, expected, atol=1 / 255), ref
    with pytest.raises(ValueError, match="reference must be one of"):
        build_grr_sequence(frames, tmp_path / "bad", factor=4, exposure=2, readout=6, reference="end", progress=False)


def test_synth_grr_cli_on_the_real_clip_blurs_more_towards_the_bottom(tmp_path, shared_data):
    """``deblurkit synth grr --video bikes.mp4``: the blur of each row band relative to the GS
    reference, normalised by how much the scene moves in that band over the exposure, grows from
    the top band to the bottom one (GRR: row r integrates exposure + readout * r / (H-1))."""
    from typer.testing import CliRunner

    from deblurkit.cli import app
    from deblurkit.io import read_image
    from deblurkit.synth.grr import read_frames

    video = shared_data / "video" / "bikes.mp4"
    res = CliRunner().invoke(app, ["synth", "grr", "--video", str(video), "--out", str(tmp_path), "--max-frames", "8",
                                   "--stride", "1", "--factor", "8", "--exposure", "2", "--readout", "16"])
    assert res.exit_code == 0, res.output
    root = tmp_path / "test" / "bikes"
    names = sorted(p.name for p in (root / "RSGR" / "PNG").glob("*.png"))
    assert names == sorted(p.name for p in (root / "GS" / "PNG").glob("*.png")) and len(names) == 5
    frames = read_frames(video, max_frames=10)
    bands = 4
    blur, motion = torch.zeros(bands), torch.zeros(bands)
    for n, name in enumerate(names):  # sample n: reset at original frame n, last row ends at n + 18/8
        lq, gt = read_image(root / "RSGR" / "PNG" / name), read_image(root / "GS" / "PNG" / name)
        assert lq.shape == gt.shape == frames.shape[1:]
        H = lq.shape[1]
        for b in range(bands):
            rows = slice(b * H // bands, (b + 1) * H // bands)
            blur[b] += (lq[:, rows] - gt[:, rows]).abs().mean()
            motion[b] += (frames[n + 2][:, rows] - frames[n][:, rows]).abs().mean()
    magnitude = blur / motion
    assert all(magnitude[i] < magnitude[i + 1] for i in range(bands - 1)), magnitude
    assert magnitude[-1] > 3 * magnitude[0], magnitude


def test_interpolate_frames_keeps_a_single_channel():
    """Grey (T, 1, H, W) clips keep their channel axis through the flow warps (OpenCV's remap
    drops a size-1 channel)."""
    from deblurkit.synth.interpolate import interpolate_frames

    g = torch.Generator().manual_seed(0)
    frames = torch.rand(2, 1, 24, 32, generator=g)
    out = interpolate_frames(frames, 4)
    assert out.shape == (5, 1, 24, 32)
    assert torch.equal(out[0], frames[0]) and torch.equal(out[4], frames[1])
