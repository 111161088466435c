"""Evaluation kernel families: long smooth camera-shake paths (shake), defocus discs (disk),
their use in ``build_pairs`` / ``deblurkit synth pairs``, and the kernel labels."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deblurkit.cli import app
from deblurkit.io import read_image
from deblurkit.synth.blur import blur
from deblurkit.synth.kernels import disk_kernel, shake_kernels, shake_trajectories, trim_kernel
from deblurkit.synth.noise import quantize_8bit
from deblurkit.synth.pairs import build_pairs, kernel_label, pair_labels


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _arc_length(p: torch.Tensor) -> torch.Tensor:
    return (p[:, 1:] - p[:, :-1]).norm(dim=-1).sum(dim=1)


def test_shake_paths_have_the_drawn_length_within_the_range():
    paths = shake_trajectories(32, length=(10.0, 40.0), generator=_gen())
    assert paths.shape == (32, 2000, 2) and paths.dtype == torch.float64
    assert torch.all(paths[:, 0] == 0)
    L = _arc_length(paths)
    assert torch.all(L >= 10.0 - 1e-9) and torch.all(L <= 40.0 + 1e-9)
    assert float(L.max() - L.min()) > 15  # the range is really used
    fixed = shake_trajectories(4, length=25.0, generator=_gen(1))
    assert torch.allclose(_arc_length(fixed), torch.full((4,), 25.0, dtype=torch.float64), atol=1e-9)


def test_shake_paths_are_smooth_and_vary_in_speed():
    paths = shake_trajectories(16, length=30.0, generator=_gen(2))
    v = paths[:, 1:] - paths[:, :-1]
    speed = v.norm(dim=-1)
    # smooth: the direction turns by a small angle per sample (no corners)
    cos = (v[:, 1:] * v[:, :-1]).sum(-1) / (speed[:, 1:] * speed[:, :-1]).clamp_min(1e-300)
    assert float(cos.min()) > 0.9
    # variable speed along the path for most draws
    ratio = speed.max(dim=1).values / speed.min(dim=1).values.clamp_min(1e-12)
    assert int((ratio > 1.5).sum()) >= 12


def test_shake_kernels_shape_sum_centroid_and_extent():
    k = shake_kernels(12, length=(10.0, 40.0), generator=_gen(3))
    assert k.shape == (12, 81, 81) and k.dtype == torch.float32
    assert torch.all(k >= 0) and torch.allclose(k.sum((1, 2)), torch.ones(12), atol=1e-5)
    coords = torch.arange(81, dtype=torch.float64) - 40
    cy = (k.double().sum(2) * coords).sum(1)
    cx = (k.double().sum(1) * coords).sum(1)
    assert float(cy.abs().max()) < 1e-4 and float(cx.abs().max()) < 1e-4  # centroid at the centre
    paths = shake_trajectories(12, length=(10.0, 40.0), generator=_gen(3))  # the same draws
    L = _arc_length(paths)
    for i in range(12):
        ys, xs = torch.nonzero(k[i] > 0, as_tuple=True)
        pts = torch.stack((ys, xs), 1).double()
        diameter = float(torch.cdist(pts, pts).max())
        assert diameter <= float(L[i]) + 2 * math.sqrt(2) + 1e-6  # bilinear splats add <= 1 px each end
        assert len(ys) >= 0.7 * float(L[i])  # a path, not a blob: it crosses ~L pixels


def test_shake_kernels_deterministic_and_prefix_stable():
    a = shake_kernels(6, length=(10, 40), generator=_gen(5))
    b = shake_kernels(6, length=(10, 40), generator=_gen(5))
    c = shake_kernels(3, length=(10, 40), generator=_gen(5))
    d = shake_kernels(3, length=(10, 40), generator=_gen(6))
    assert torch.equal(a, b)
    assert torch.equal(a[:3], c)
    assert not torch.equal(c, d)


@pytest.mark.parametrize("kwargs, match", [
    ({"length": 0.0}, "length"),
    ({"drift": -1.0}, "drift"),
    ({"frequency": (0.0, 1.0)}, "frequency"),
    ({"components": 0}, "components"),
])
def test_shake_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        shake_trajectories(2, generator=_gen(), **kwargs)


def test_trim_kernel_keeps_centre_and_values():
    k = torch.zeros(21, 21)
    k[10, 10] = 0.5
    k[13, 8] = 0.5  # 3 px below, 2 px left of the centre
    t = trim_kernel(k)
    assert t.shape == (7, 7) and float(t[3, 3]) == 0.5 and float(t[6, 1]) == 0.5
    x = torch.rand(1, 3, 40, 40)
    assert torch.allclose(blur(x, k, "valid"), blur(x, t, "valid")[..., 7:-7, 7:-7], atol=1e-6)
    with pytest.raises(ValueError, match="odd"):
        trim_kernel(torch.ones(4, 4))


def test_kernel_labels():
    assert kernel_label({"source": "levin", "name": "levin09_3"}) == "levin09_3"
    assert kernel_label({"source": "disk", "radius": 3.7}) == "disk r3-4"
    assert kernel_label({"source": "shake", "length": 29.9}) == "shake L20-30"
    assert kernel_label({"source": "trajectory", "max_length": 12.0}) == "trajectory L10-20"


@pytest.mark.parametrize("family", ["disk", "shake"])
def test_build_pairs_random_families_are_valid_blurred_and_seeded(shared_data, tmp_path, family):
    photo = shared_data / "photos" / "classic" / "coins.png"
    kw = dict(kernels=family, crops_per_photo=3, crop_size=48, noise_sigma=0.0, test_fraction=1.0, seed=4,
              disk_radius=(2.5, 6.0), shake_length=(10.0, 20.0))
    m = build_pairs([photo], tmp_path / "a", **kw)
    assert m["num_pairs"] == 3 and m["boundary"] == "valid" and m[family] is not None
    photo_t = quantize_8bit(read_image(photo))
    labels = pair_labels(tmp_path / "a")
    for rec in m["pairs"]:
        d = tmp_path / "a" / "test" / "coins"
        k = torch.from_numpy(np.load(d / "kernel" / rec["name"].replace(".png", ".npy")))
        kh, kw_ = k.shape
        assert kh == kw_ and kh % 2 == 1 and abs(float(k.sum()) - 1) < 1e-5
        if family == "disk":
            r = rec["kernel"]["radius"]
            assert 2.5 <= r <= 6.0 and kh == 2 * math.ceil(r) + 1
            assert torch.allclose(k, disk_kernel(r), atol=1e-7)
        else:
            assert 10.0 <= rec["kernel"]["length"] <= 20.0
            assert kh <= 2 * 20 + 1 and float(k[0].sum() + k[-1].sum() + k[:, 0].sum() + k[:, -1].sum()) > 0
        assert labels[f"coins/{rec['name']}"] == rec["label"] == kernel_label(rec["kernel"])
        # the blurry image is the `valid` blur of the photo region around the sharp crop
        c = rec["crop"]
        top, left = c["top"] - kh // 2, c["left"] - kh // 2
        region = photo_t[:, top:top + c["height"] + kh - 1, left:left + c["width"] + kh - 1]
        lq = read_image(d / "blur" / rec["name"])
        assert float((lq - blur(region, k, "valid")).abs().max()) <= 0.5 / 255 + 1e-5
    # same seed: the same kernels; another seed: others
    again = build_pairs([photo], tmp_path / "b", **kw)
    assert [r["kernel"] for r in again["pairs"]] == [r["kernel"] for r in m["pairs"]]
    other = build_pairs([photo], tmp_path / "c", **{**kw, "seed": 5})
    assert [r["kernel"] for r in other["pairs"]] != [r["kernel"] for r in m["pairs"]]
    with pytest.raises(ValueError, match="crops_per_photo"):
        build_pairs([photo], tmp_path / "d", **{**kw, "every_kernel": True})


def test_build_pairs_rejects_bad_ranges(shared_data, tmp_path):
    photo = shared_data / "photos" / "classic" / "coins.png"
    with pytest.raises(ValueError, match="disk_radius"):
        build_pairs([photo], tmp_path / "x", kernels="disk", disk_radius=(6.0, 2.0))
    with pytest.raises(ValueError, match="shake_length"):
        build_pairs([photo], tmp_path / "x", kernels="shake", shake_length=-3.0)


def test_cli_synth_pairs_shake_and_disk_options(shared_data, tmp_path):
    runner = CliRunner()
    out = tmp_path / "s"
    res = runner.invoke(app, ["synth", "pairs", "--photos", str(shared_data / "photos" / "classic"),
                              "--include", "coins*", "--test", "coins*", "--kernels", "shake",
                              "--shake-length", "12,14", "--crop", "40", "--crops-per-photo", "2",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "manifest.json").read_text())
    assert m["num_pairs"] == 2 and m["shake"]["length"] == [12.0, 14.0]
    assert all(12.0 <= r["kernel"]["length"] <= 14.0 for r in m["pairs"])
    res = runner.invoke(app, ["synth", "pairs", "--photos", str(shared_data / "photos" / "classic"),
                              "--include", "coins*", "--kernels", "disk", "--disk-radius", "3,x",
                              "--out", str(tmp_path / "d")])
    assert res.exit_code == 2 and "--disk-radius" in res.output
    res = runner.invoke(app, ["synth", "pairs", "--photos", str(shared_data / "photos" / "classic"),
                              "--include", "coins*", "--kernels", "disk", "--every-kernel",
                              "--out", str(tmp_path / "e")])
    assert res.exit_code == 2 and "crops_per_photo" in res.output
