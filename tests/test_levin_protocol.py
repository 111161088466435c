"""Levin et al. 2009 scoring up to shift (metrics.levin) and the ``levin`` evaluation protocol."""
from __future__ import annotations

import csv
import io
import json
import math
import sys
import types

import numpy as np
import pytest
import torch

from deblurkit.engine import EvalResult, evaluate, get_protocol
from deblurkit.metrics import psnr
from deblurkit.metrics.levin import comp_upto_shift, error_ratio, ssd_upto_shift


def _texture(h=64, w=64, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, c, h // 4, w // 4, generator=g)
    x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return 0.05 + 0.8 * (x + 0.05 * torch.rand(1, c, h, w, generator=g)).clamp(0, 1)  # in [0.05, 0.85]


def _levin_reference_grey(i1: np.ndarray, i2: np.ndarray, maxshift=5, border=15, step=0.25) -> float:
    """Independent transcription of the algorithm of Levin's comp_upto_shift.m: the full
    fractional grid, bilinear resampling (scipy), smallest SSD."""
    from scipy.ndimage import map_coordinates

    ref = i2[border:-border, border:-border]
    n1, n2 = ref.shape
    best = math.inf
    shifts = np.arange(-maxshift, maxshift + step / 2, step)
    yy, xx = np.meshgrid(np.arange(n1, dtype=float) + border, np.arange(n2, dtype=float) + border, indexing="ij")
    for sy in shifts:
        for sx in shifts:
            t = map_coordinates(i1, [yy + sy, xx + sx], order=1, mode="nearest")
            best = min(best, float(((t - ref) ** 2).sum()))
    return best


def test_integer_shifted_copy_scores_infinite_up_to_shift_and_low_raw():
    ref = _texture()
    moved = torch.roll(ref, shifts=(3, -2), dims=(-2, -1))
    s = comp_upto_shift(moved, ref)
    assert s.shift.tolist() == [[3.0, -2.0]]
    assert torch.isinf(s.psnr).all() and float(s.ssd[0]) == 0.0
    assert float(s.ssim[0]) == pytest.approx(1.0, abs=1e-12)
    assert float(psnr(moved, ref)[0]) < 30  # without the alignment it is a poor match
    assert s.aligned.shape == s.reference.shape == (1, 3, 34, 34)


def test_subpixel_shift_found_exactly_on_a_bilinear_image():
    # f = c + a x + b y + e x y is reproduced exactly by bilinear resampling, so the
    # quarter-pixel translation is found with zero error, and it is unique (e != 0)
    h = w = 60
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")

    def f(yy, xx):
        return 0.1 + 0.3 * xx / w + 0.2 * yy / h + 0.3 * xx * yy / (h * w)

    ref = f(y, x)[None, None]
    moved = f(y - 1.25, x + 0.75)[None, None]  # content 1.25 px down, 0.75 px left
    s = comp_upto_shift(moved, ref)
    assert s.shift.tolist() == [[1.25, -0.75]]
    assert float(s.ssd[0]) < 1e-20 and float(s.psnr[0]) > 150
    # whole-pixel search only: worse than the quarter-pixel one
    assert float(ssd_upto_shift(moved, ref, step=1)[0]) > 1e-6


def test_ssd_matches_an_independent_full_grid_search():
    g = torch.Generator().manual_seed(3)
    ref = _texture(56, 56, c=1, seed=1)
    restored = torch.roll(ref, (2, 1), (-2, -1)) + 0.02 * torch.randn(ref.shape, generator=g)
    restored = torch.nn.functional.avg_pool2d(restored, 3, 1, 1, count_include_pad=False)  # blurred + noisy
    ours = float(ssd_upto_shift(restored, ref)[0])
    theirs = _levin_reference_grey(restored[0, 0].double().numpy(), ref[0, 0].double().numpy())
    assert ours == pytest.approx(theirs, rel=1e-9)


def test_rgb_channels_share_one_shift_and_add_up():
    ref = _texture()
    moved = torch.roll(ref, (1, 1), (-2, -1))
    moved[:, 1] = torch.roll(ref[:, 1], (0, 0), (-2, -1))  # green not shifted: a compromise
    s = comp_upto_shift(moved, ref, step=1)
    per = [float(ssd_upto_shift(moved[:, c:c + 1], ref[:, c:c + 1], step=1)[0]) for c in range(3)]
    assert float(s.ssd[0]) >= sum(per) - 1e-9  # one shift for all channels cannot beat per-channel ones
    aligned_err = float((s.aligned - s.reference).pow(2).sum())
    assert float(s.ssd[0]) == pytest.approx(aligned_err, rel=1e-12)


def test_batch_gives_the_same_as_one_by_one():
    a, b = _texture(seed=1), _texture(seed=2)
    ra, rb = torch.roll(a, (1, 0), (-2, -1)) * 0.9, torch.roll(b, (0, -2), (-2, -1)) + 0.01
    s = comp_upto_shift(torch.cat([ra, rb]), torch.cat([a, b]))
    for i, (r, ref) in enumerate(((ra, a), (rb, b))):
        one = comp_upto_shift(r, ref)
        assert torch.equal(one.shift[0], s.shift[i]) and float(one.ssd[0]) == pytest.approx(float(s.ssd[i]), rel=1e-12)


def test_error_ratio():
    ref = _texture()
    g = torch.Generator().manual_seed(0)
    good = (ref + 0.01 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    bad = (torch.roll(ref, (2, 2), (-2, -1)) + 0.03 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    assert float(error_ratio(good, good, ref)[0]) == 1.0
    r = float(error_ratio(bad, good, ref)[0])
    assert r > 3  # 3x the noise std, shift removed: ~9x the SSD
    assert r == pytest.approx(float(ssd_upto_shift(bad, ref)[0] / ssd_upto_shift(good, ref)[0]), rel=1e-12)
    assert float(error_ratio(good, bad, ref)[0]) == pytest.approx(1 / r, rel=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    ({"border": 3}, "border"),
    ({"step": 0.3}, "step"),
    ({"step": 0}, "step"),
    ({"max_shift": 2.5}, "max_shift"),
    ({"border": 27}, "11x11"),
])
def test_bad_options_are_one_line_value_errors(kwargs, match):
    ref = _texture()
    with pytest.raises(ValueError, match=match):
        comp_upto_shift(ref, ref, **kwargs)


def test_shape_mismatch_is_a_value_error():
    with pytest.raises(ValueError, match="same shape"):
        comp_upto_shift(_texture(64, 64), _texture(64, 60))
    with pytest.raises(ValueError, match="differ in shape"):
        error_ratio(_texture(64, 64), _texture(64, 60), _texture(64, 64))


# ---- the protocol ------------------------------------------------------------------------------
@pytest.fixture
def fake_pipeline(monkeypatch):
    """``deblurkit.deconv.pipeline.blind_deblur`` replaced by a stub that records its calls and
    returns ``sharp + 0.01`` (the true-kernel result) or, with the blind-kernel data weight,
    ``sharp + 0.015``, so the protocol is tested on its own."""
    from deblurkit.deconv.nonblind import ESTIMATED_KERNEL_ERROR

    calls = []
    mod = types.ModuleType("deblurkit.deconv.pipeline")

    def blind_deblur(image, *, kernel=None, deconv_options=None, **_):
        calls.append(kernel)
        weak = (deconv_options or {}).get("kernel_error") == ESTIMATED_KERNEL_ERROR
        return types.SimpleNamespace(image=(mod.sharp + (0.015 if weak else 0.01)).to(image.device))

    mod.blind_deblur = blind_deblur
    monkeypatch.setitem(sys.modules, "deblurkit.deconv.pipeline", mod)
    return mod, calls


def test_levin_protocol_columns_ceiling_and_groups(fake_pipeline):
    mod, calls = fake_pipeline
    sharp = _texture()
    blurry = torch.roll(torch.nn.functional.avg_pool2d(sharp, 5, 1, 2, count_include_pad=False), (1, 2), (-2, -1))
    mod.sharp = sharp
    k = torch.full((5, 5), 1 / 25)
    shifted = torch.roll(sharp, (2, -1), (-2, -1)) + 0.02  # the "restorer": shifted result, offset 0.02
    pairs = [("s/000000.png", blurry[0], sharp[0], {"kernel": k, "group": "levin09_1"}),
             ("s/000001.png", blurry[0], sharp[0], {"group": "levin09_2"}),  # no kernel: no ceiling
             ("s/000002.png", blurry[0], sharp[0])]
    res = evaluate(lambda x: shifted, pairs, "levin", progress=False)
    assert len(calls) == 2 and torch.equal(calls[0], k) and torch.equal(calls[1], k)
    r0, r1, r2 = res.rows
    # up to shift: offset 0.02 everywhere -> PSNR = 20 log10(1/0.02); raw (no shift) much lower
    assert r0["psnr"] == pytest.approx(20 * math.log10(1 / 0.02), abs=1e-4)  # float32 inputs
    assert r0["shift"] == "+2.00 -1.00"
    assert r0["psnr_raw"] == pytest.approx(float(psnr(shifted.clamp(0, 1), sharp)[0]), abs=1e-9)
    assert r0["psnr_raw"] < r0["psnr"] - 3
    # the input is scored the same way, with its own shift
    assert r0["shift_input"] == "+1.00 +2.00" and r0["psnr_input"] > r0["psnr_raw_input"]
    # true-kernel ceiling = sharp + 0.01; same weight as the blind path: sharp + 0.015, so the
    # error ratio = (0.02 / 0.015)^2 = 16 / 9
    assert r0["psnr_true_kernel"] == pytest.approx(40.0, abs=1e-4)
    assert r0["psnr_true_kernel_blind_weight"] == pytest.approx(20 * math.log10(1 / 0.015), abs=1e-4)
    assert r0["error_ratio"] == pytest.approx(16 / 9, rel=1e-5)
    assert "error_ratio" not in r1 and "group" not in r2 and r1["group"] == "levin09_2"
    md = res.to_markdown("t")
    assert "## Per group (mean)" in md and "| levin09_1 | 1 |" in md and "| levin09_2 | 1 |" in md
    assert "median 1.78" in md and "1/1 pairs" in md  # <= 3: a success in Levin's sense
    csv_head = res.to_csv().splitlines()[0].split(",")
    assert {"psnr_raw", "ssim_raw", "error_ratio", "psnr_true_kernel", "group", "shift"} <= set(csv_head)
    assert res.mean["error_ratio"] == pytest.approx(16 / 9, rel=1e-5)  # text columns skipped, missing values too


def test_groups_in_natural_order():
    groups = ["disk r5-6", "levin09_10", "disk r3-4", "levin09_2"]
    rows = [{"name": str(i), "psnr": float(i), "group": g} for i, g in enumerate(groups)]
    gm = EvalResult("standard", rows).group_means()
    assert list(gm) == ["disk r3-4", "disk r5-6", "levin09_2", "levin09_10"]
    assert gm["levin09_10"] == {"n": 1, "psnr": 1.0}


def test_levin_protocol_is_registered_and_standard_tables_unchanged():
    assert get_protocol("levin").extra is not None
    rows = [{"name": "a.png", "psnr": 30.0, "ssim": 0.9, "psnr_input": 25.0, "ssim_input": 0.8}]
    md = EvalResult("standard", rows).to_markdown("t")
    assert "| a.png | 30.00 | 0.9000 | 25.00 | 0.8000 |" in md and "Per group" not in md and "mean of" not in md


def test_levin_protocol_with_the_real_pipeline_gives_ratio_one_for_the_true_kernel():
    pipeline = pytest.importorskip("deblurkit.deconv.pipeline")
    from deblurkit.synth.blur import blur_valid_pair

    g = torch.Generator().manual_seed(0)
    region = _texture(80, 80, seed=4)[0]
    k = torch.zeros(7, 7)
    k[3, 1:6] = 0.2
    blurry, sharp = blur_valid_pair(region, k)
    blurry = (blurry + 0.005 * torch.randn(blurry.shape, generator=g)).clamp(0, 1)

    from deblurkit.deconv.nonblind import ESTIMATED_KERNEL_ERROR

    def restore(x):  # "blind" result = the true kernel with the blind-kernel weight
        return pipeline.blind_deblur(x, kernel=k, deconv_options={"kernel_error": ESTIMATED_KERNEL_ERROR}).image

    res = evaluate(restore, [("p.png", blurry, sharp, {"kernel": k})], "levin", progress=False)
    row = res.rows[0]
    assert row["error_ratio"] == pytest.approx(1.0, rel=1e-6)
    assert row["psnr_true_kernel_blind_weight"] == pytest.approx(row["psnr"], abs=1e-6)
    assert row["psnr"] > row["psnr_input"]  # the true kernel deblurs
    assert row["psnr_true_kernel"] > row["psnr"]  # its own (stronger) data weight does better


def test_cli_evaluate_levin_passes_kernels_and_kernel_labels(shared_data, tmp_path, fake_pipeline, monkeypatch):
    from typer.testing import CliRunner

    from deblurkit.cli import app
    from deblurkit.synth import build_pairs

    mod, calls = fake_pipeline
    photo = shared_data / "photos" / "classic" / "coins.png"
    root = tmp_path / "ev"
    build_pairs([photo], root, kernels="levin", every_kernel=True, crop_size=48, data_root=shared_data,
                noise_sigma=0.0, test_fraction=1.0)
    labels = [r["label"] for r in json.loads((root / "manifest.json").read_text())["pairs"]]
    assert labels == [f"levin09_{i}" for i in range(1, 9)]

    class Identity:  # a restorer that returns its input: scored like the input
        def deblur_tensor(self, x, clamp=False):
            mod.sharp = current["gt"][None]
            return x

    from deblurkit.data import open_layout

    ds = open_layout("gopro", root, "test")
    current = {}
    orig_getitem = type(ds).__getitem__

    def getitem(self, i):
        current.update(orig_getitem(self, i))
        return dict(current)

    monkeypatch.setattr(type(ds), "__getitem__", getitem)
    monkeypatch.setattr("deblurkit.cli.blur2blur.make_deblurrer", lambda *a, **k: Identity())
    res = CliRunner().invoke(app, ["evaluate", "--data", str(root), "--protocol", "levin", "--device", "cpu",
                                   "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert len(calls) == 16  # two true-kernel deconvolutions per pair
    kernels = [np.load(root / "test" / "coins" / "kernel" / f"{i:06d}.npy") for i in range(8)]
    assert all(np.array_equal(c.numpy(), k) for c, k in zip(calls, [k for k in kernels for _ in (0, 1)]))
    md = (tmp_path / "out" / "results.md").read_text()
    for i in range(1, 9):
        assert f"| levin09_{i} | 1 |" in md
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "results.csv").read_text())))
    assert len(rows) == 8 and [r["group"] for r in rows] == [f"levin09_{i}" for i in range(1, 9)]
    for r in rows:  # identity restorer: the result is scored exactly like the input
        assert r["psnr"] == r["psnr_input"] and r["shift"] == r["shift_input"]
