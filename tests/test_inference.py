"""Tests for deblurkit.inference: padding, tiling, precision, and the Deblurrer on files."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from deblurkit import io as dio
from deblurkit import models
from deblurkit.inference import (
    SEPARATOR_PX,
    Deblurrer,
    auto_tile_size,
    balanced_tile,
    blend_window,
    crop_padding,
    make_comparison,
    pad_to_multiple,
    tile_starts,
    tiled_forward,
)
from deblurkit.inference import deblurrer as deblurrer_mod

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "examples" / "real_blur"
TINY_MIMO = {"base_channel": 8, "num_res": 1}


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a.double() - b.double()) ** 2).mean().item()
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def small_convnet(seed: int = 0, layers: int = 4) -> nn.Module:
    """Random conv net of 3x3 convs: receptive-field radius == layers."""
    g = torch.Generator().manual_seed(seed)
    mods: list[nn.Module] = []
    ch = [3] + [16] * (layers - 1) + [3]
    for i in range(layers):
        conv = nn.Conv2d(ch[i], ch[i + 1], 3, padding=1)
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.2)
            conv.bias.copy_(torch.randn(conv.bias.shape, generator=g) * 0.05)
        mods.append(conv)
        if i < layers - 1:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods).eval()


@pytest.fixture(scope="module")
def tiny_deblurrer() -> Deblurrer:
    with pytest.warns(UserWarning, match="RANDOMLY INITIALISED"):
        torch.manual_seed(0)
        return Deblurrer("mimo_unet", model_overrides=TINY_MIMO, allow_random=True, progress=False)


# ------------------------------------------------------------------------------------ padding


@pytest.mark.parametrize("mode", ["reflect", "replicate", "constant"])
@pytest.mark.parametrize("hw", [(5, 7), (8, 8), (1, 1), (2, 3), (13, 1)])
@pytest.mark.parametrize("multiple", [1, 4, 8])
def test_pad_round_trip(mode: str, hw: tuple[int, int], multiple: int) -> None:
    x = torch.rand(2, 3, *hw)
    padded, pads = pad_to_multiple(x, multiple, mode=mode)
    assert padded.shape[-2] % multiple == 0 and padded.shape[-1] % multiple == 0
    assert padded.shape[-2] - hw[0] < multiple and padded.shape[-1] - hw[1] < multiple
    assert pads[0] == 0 and pads[2] == 0  # bottom/right only: pixel (0, 0) keeps its place
    assert torch.equal(padded[..., : hw[0], : hw[1]], x)
    assert torch.equal(crop_padding(padded, pads), x)


def test_reflect_matches_torch_and_numpy_even_when_pad_exceeds_size() -> None:
    x = torch.rand(1, 2, 6, 9)
    padded, pads = pad_to_multiple(x, 4)
    assert torch.equal(padded, F.pad(x, pads, mode="reflect"))
    # pad >= size: torch cannot reflect; we reflect repeatedly, exactly like numpy's "reflect"
    for h, w, m in [(2, 3, 8), (3, 2, 16), (1, 5, 8)]:
        x = torch.rand(1, 1, h, w)
        padded, (l_, r, t, b) = pad_to_multiple(x, m)
        ref = np.pad(x.numpy(), ((0, 0), (0, 0), (0, b), (0, r)), mode="reflect")
        assert padded.shape == (1, 1, -(-h // m) * m, -(-w // m) * m)
        np.testing.assert_array_equal(padded.numpy(), ref)
    # 3-D input is accepted too
    p3, _ = pad_to_multiple(torch.rand(3, 5, 5), 4)
    assert p3.shape == (3, 8, 8)


def test_pad_errors() -> None:
    with pytest.raises(ValueError, match="multiple"):
        pad_to_multiple(torch.rand(1, 3, 4, 4), 0)
    with pytest.raises(ValueError, match="mode"):
        pad_to_multiple(torch.rand(1, 3, 4, 4), 4, mode="wrap")


# ------------------------------------------------------------------------------------ tiling


def test_blend_windows_form_partition_of_unity() -> None:
    ov, tile = 16, 64
    a = blend_window(tile, ov, ramp_start=False, ramp_end=True)
    b = blend_window(tile, ov, ramp_start=True, ramp_end=False)
    # tiles overlapping by exactly `ov` pixels: weights sum to 1 over the overlap
    assert torch.allclose(a[-ov:] + b[:ov], torch.ones(ov), atol=1e-6)
    assert a[0] == 1 and b[-1] == 1  # image borders get full weight
    assert (a[: tile - ov] == 1).all()
    assert a[-1] == 0 and b[0] == 0  # outer quarter of the overlap is ignored
    assert (torch.diff(b[:ov]) >= 0).all()  # monotone ramp


def test_tile_coverage_odd_size() -> None:
    """37x61 with tile 16: tiles aligned to the multiple, shifted back, all pixels covered."""
    h, w, tile, mult = 37, 61, 16, 4
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    x = torch.stack([yy, xx, torch.rand(h, w)])[None]
    seen: list[tuple[int, int, tuple[int, ...]]] = []

    def fn(batch: torch.Tensor) -> torch.Tensor:
        for t in batch:
            seen.append((int(t[0, 0, 0]), int(t[1, 0, 0]), tuple(t.shape)))
        return batch.clone()

    y = tiled_forward(fn, x, tile=tile, overlap=4, multiple=mult, batch_size=3)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert torch.allclose(y, x, atol=1e-5)  # identity is reproduced: weights normalised everywhere
    assert all(shape == (3, tile, tile) for _, _, shape in seen)  # no tile is padded
    ys = sorted({s[0] for s in seen})
    xs = sorted({s[1] for s in seen})
    assert all(v % mult == 0 for v in ys + xs)
    assert ys == tile_starts(40, 16, 4) and xs == tile_starts(64, 16, 4)  # padded size 40x64
    assert ys[-1] + tile == 40 and xs[-1] + tile == 64  # last tile shifted back to the border
    assert len(seen) == len(ys) * len(xs)
    # constant output -> constant blend (no seams from the weights)
    ones = tiled_forward(lambda b: torch.ones_like(b[:, :1]), x, tile=tile, overlap=8, multiple=mult)
    assert ones.shape == (1, 1, h, w) and torch.allclose(ones, torch.ones_like(ones), atol=1e-6)


def test_tiling_agrees_with_untiled_small_convnet() -> None:
    torch.manual_seed(1)
    net = small_convnet(layers=4)  # receptive-field radius 4 < overlap guard
    x = torch.rand(2, 3, 83, 117)
    with torch.no_grad():
        ref = net(x)
        untiled = tiled_forward(net, x, tile=None, multiple=1)
        tiled = tiled_forward(net, x, tile=40, overlap=20, multiple=1, batch_size=2)
    assert torch.allclose(untiled, ref, atol=1e-6)
    assert psnr(tiled, ref) >= 50.0
    assert (tiled - ref).abs().max() < 1e-4  # overlap beyond the receptive field: exact up to rounding


def test_tiling_agrees_with_untiled_mimo_unet() -> None:
    torch.manual_seed(0)
    net = models.build("mimo_unet", **TINY_MIMO).eval()
    d = Deblurrer.from_network(net, size_multiple=models.get_descriptor("mimo_unet").size_multiple, progress=False)
    x = torch.rand(1, 3, 98, 141)
    d.tile = None
    ref = d.deblur_tensor(x)
    d.tile = 64
    d.tile_overlap = 32
    tiled = d.deblur_tensor(x)
    assert tiled.shape == x.shape
    assert psnr(tiled, ref) >= 50.0


def test_tiled_forward_errors() -> None:
    x = torch.rand(1, 3, 20, 20)
    with pytest.raises(ValueError, match="half"):
        tiled_forward(lambda b: b, x, tile=16, overlap=12, multiple=4)
    with pytest.raises(ValueError, match="size multiple"):
        tiled_forward(lambda b: b, x, tile=3, overlap=0, multiple=4)
    with pytest.raises(ValueError, match=r"\(n,C',h,w\)"):
        tiled_forward(lambda b: b[..., ::2, ::2], x, tile=8, overlap=0, multiple=4)


def test_tiled_forward_progress_callable() -> None:
    calls: list[tuple[int, int]] = []
    tiled_forward(lambda b: b, torch.rand(1, 3, 30, 30), tile=16, overlap=4, multiple=4,
                  progress=lambda done, total: calls.append((done, total)))
    n = len(tile_starts(32, 16, 4)) ** 2  # padded 32x32: starts 0, 12, 16 on each axis
    assert n == 9 and calls[-1] == (n, n) and [c[0] for c in calls] == list(range(1, n + 1))


def test_auto_tile_size_heuristic() -> None:
    assert auto_tile_size(600, 800) is None  # 0.48 MP: one pass on CPU fp32
    assert auto_tile_size(3000, 4000) == 512  # 12 MP: 512 tiles
    assert auto_tile_size(750, 1000, precision="bf16") is None  # 0.75 MP fits with bf16 ...
    assert auto_tile_size(750, 1000) == 512  # ... not at fp32
    assert auto_tile_size(3000, 4000, memory_budget_mb=64 * 1024) is None
    small = auto_tile_size(3000, 4000, memory_budget_mb=64, multiple=8)
    assert small is not None and small < 512 and small % 8 == 0
    # a 128-pixel size multiple (RSS-T) keeps 512-pixel tiles on the CPU (1024 needed 7.5 GB at 24 MP)
    assert auto_tile_size(4000, 6000, multiple=128) == 512


def test_balanced_tiles_limit_wasted_work() -> None:
    # 1152 px with tile 512 / overlap 32: three 408-px tiles instead of three 512-px ones
    assert balanced_tile(1152, 512, 32, 4) == 408
    assert balanced_tile(300, 512, 32, 4) == 300
    for size in range(40, 700, 7):
        for max_tile, ov, m in [(64, 16, 4), (512, 32, 4), (48, 24, 8)]:
            size_m = -(-size // m) * m
            t = balanced_tile(size_m, max_tile, ov, m)
            assert t <= max_tile and t % m == 0 and (t == size_m or t >= 2 * ov)
            starts = tile_starts(size_m, t, ov)
            assert starts[-1] + t == size_m and all(b - a <= t - ov for a, b in zip(starts, starts[1:]))
            n_max = len(tile_starts(size_m, max_tile, ov)) if size_m > max_tile else 1
            assert len(starts) <= n_max  # never more tiles than with full-size tiles


# ------------------------------------------------------------------------------------ precision


def test_bf16_close_to_fp32(tiny_deblurrer: Deblurrer) -> None:
    x = torch.rand(1, 3, 48, 64)
    fp32 = tiny_deblurrer.deblur_tensor(x)
    bf16 = Deblurrer.from_network(tiny_deblurrer.net, size_multiple=4, precision="bf16", progress=False)
    y = bf16.deblur_tensor(x)
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert 0.0 <= float(y.min()) and float(y.max()) <= 1.0
    assert not torch.equal(y, fp32)  # the bf16 path really ran in reduced precision
    assert psnr(y, fp32) > 30.0


# ------------------------------------------------------------------------------------ Deblurrer API


def test_model_without_weights_needs_allow_random() -> None:
    with pytest.raises(ValueError, match="randomly initialised"):
        Deblurrer("mimo_unet", model_overrides=TINY_MIMO)


def test_missing_default_weights_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deblurrer_mod, "DEFAULT_WEIGHTS_DIR", "no_such_weights_dir")
    with pytest.raises(FileNotFoundError, match="embedded default weights are missing") as info:
        Deblurrer()
    assert "--weights" in str(info.value) and "--model" in str(info.value)


def test_weights_round_trip_and_detection(tmp_path: Path, tiny_deblurrer: Deblurrer) -> None:
    path = tmp_path / "tiny.safetensors"
    models.save_safetensors(tiny_deblurrer.net.state_dict(), path)
    x = torch.rand(3, 20, 24)
    ref = tiny_deblurrer.deblur_tensor(x)
    # overrides detected from the file, with and without the model name
    for d in (Deblurrer("mimo_unet", weights=path, progress=False), Deblurrer(weights=path, progress=False)):
        assert d.model_name == "mimo_unet" and d.model_overrides.get("base_channel") == 8
        assert torch.equal(d.deblur_tensor(x), ref)


def test_deblur_tensor_shapes_and_validation(tiny_deblurrer: Deblurrer) -> None:
    rgb = tiny_deblurrer.deblur_tensor(torch.rand(3, 21, 30))
    assert rgb.shape == (3, 21, 30) and rgb.dtype == torch.float32
    grey = tiny_deblurrer.deblur_tensor(torch.rand(2, 1, 13, 9))
    assert grey.shape == (2, 1, 13, 9)
    assert 0.0 <= float(grey.min()) and float(grey.max()) <= 1.0
    with pytest.raises(ValueError, match="255"):
        tiny_deblurrer.deblur_tensor(torch.rand(3, 8, 8) * 255)
    with pytest.raises(ValueError, match="channels"):
        tiny_deblurrer.deblur_tensor(torch.rand(4, 8, 8))


def test_make_comparison_layout() -> None:
    a, b = torch.zeros(3, 60, 80), torch.full((3, 60, 80), 0.5)
    cmp_ = make_comparison(a, b)
    assert cmp_.shape == (3, 60, 2 * 80 + SEPARATOR_PX)
    assert torch.equal(cmp_[:, :, 80 : 80 + SEPARATOR_PX], torch.ones(3, 60, SEPARATOR_PX))
    assert cmp_[:, :25, :60].max() > 0.5  # "blurry" label drawn on the black panel
    assert torch.equal(cmp_[:, 40:, :80], a[:, 40:])  # below the label: the input itself


def test_auto_tiling_in_deblurrer(tiny_deblurrer: Deblurrer) -> None:
    d = Deblurrer.from_network(tiny_deblurrer.net, size_multiple=4, tile="auto", memory_budget_mb=0.5,
                               progress=False)
    assert d.tile_for(10, 10) is None  # tiny images: one pass
    tile = d.tile_for(72, 100)
    assert tile == 32  # budget of ~150 pixels: the smallest automatic tile, 8 multiples
    x = torch.rand(1, 3, 72, 100)
    ticks: list[int] = []
    y = d.deblur_tensor(x, progress=lambda done, total: ticks.append(total))
    assert ticks and ticks[0] > 1  # it really tiled (overlap shrunk to fit the small tile)
    assert psnr(y, tiny_deblurrer.deblur_tensor(x)) >= 40.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(tiny_deblurrer: Deblurrer) -> None:
    x = torch.rand(1, 3, 40, 52)
    ref = tiny_deblurrer.deblur_tensor(x)
    for precision, min_db in (("fp32", 50.0), ("bf16", 30.0)):
        d = Deblurrer.from_network(tiny_deblurrer.net, size_multiple=4, device="cuda", precision=precision,
                                   tile=32, tile_overlap=8, progress=False)
        y = d.deblur_tensor(x.cuda())
        assert y.device.type == "cpu" and y.dtype == torch.float32 and y.shape == x.shape
        assert psnr(y, ref) >= min_db
    tiny_deblurrer.net.cpu()


def test_embedded_default_model_when_shipped() -> None:
    try:
        info = deblurrer_mod.default_model_info()
    except FileNotFoundError:
        pytest.skip("embedded default weights not shipped yet (src/deblurkit/weights/default.json)")
    d = Deblurrer(progress=False)
    assert d.model_name == info["model"] and d.weights == info["weights_path"]
    y = d.deblur_tensor(torch.rand(3, 24, 30))
    assert y.shape == (3, 24, 30) and 0.0 <= float(y.min()) and float(y.max()) <= 1.0


# ------------------------------------------------------------------------------------ files


def test_deblur_real_photo_with_compare(tmp_path: Path, tiny_deblurrer: Deblurrer) -> None:
    src = REAL / "text_motion.jpg"
    inp = dio.load_image(src)
    written = tiny_deblurrer.deblur_file(src, tmp_path / "out", compare=True)
    assert written["deblurred"] == tmp_path / "out" / "text_motion_deblurred.png"
    out = dio.load_image(written["deblurred"])
    assert out.image.shape == inp.image.shape and out.bit_depth == 8 and out.alpha is None
    cmp_ = dio.load_image(written["compare"])
    _, h, w = inp.image.shape
    assert cmp_.image.shape == (3, h, 2 * w + SEPARATOR_PX)
    # right panel holds the deblurred image (away from the label)
    assert torch.allclose(cmp_.image[:, h // 2 :, w + SEPARATOR_PX :], out.image[:, h // 2 :], atol=1 / 255 + 1e-6)


def test_grey_stays_grey(tmp_path: Path, tiny_deblurrer: Deblurrer) -> None:
    src = tmp_path / "clock.png"
    full = dio.load_image(REAL / "clock_motion.png")
    assert full.image.shape[0] == 1
    dio.save_image(src, full.image[:, :96, :120])  # crop to keep the test fast
    written = tiny_deblurrer.deblur_file(src, tmp_path, compare=True)
    out = dio.load_image(written["deblurred"])
    assert out.image.shape == (1, 96, 120)
    assert dio.load_image(written["compare"]).image.shape == (1, 96, 2 * 120 + SEPARATOR_PX)


def test_rgba_alpha_preserved_and_16_bit_kept(tmp_path: Path, tiny_deblurrer: Deblurrer) -> None:
    img = torch.rand(3, 30, 40)
    alpha = torch.linspace(0, 1, 40).expand(1, 30, 40).contiguous()
    rgba = tmp_path / "rgba.png"
    dio.save_image(rgba, img, alpha=alpha)
    out = dio.load_image(tiny_deblurrer.deblur_file(rgba, tmp_path / "o")["deblurred"])
    assert out.alpha is not None
    assert torch.equal(out.alpha, dio.load_image(rgba).alpha)
    deep = tmp_path / "deep.png"
    dio.save_image(deep, img, bit_depth=16)
    out16 = dio.load_image(tiny_deblurrer.deblur_file(deep, tmp_path / "o")["deblurred"])
    assert out16.bit_depth == 16 and out16.image.shape == (3, 30, 40)


def test_corrupt_file_reported_and_others_processed(
    tmp_path: Path, tiny_deblurrer: Deblurrer, caplog: pytest.LogCaptureFixture
) -> None:
    good1, good2 = tmp_path / "a.png", tmp_path / "c.png"
    dio.save_image(good1, torch.rand(3, 16, 16))
    dio.save_image(good2, torch.rand(3, 16, 20))
    bad = tmp_path / "b.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="deblurkit.inference.deblurrer"):
        summary = tiny_deblurrer.deblur_files([good1, bad, good2], out)
    assert set(summary.written) == {good1, good2} and not summary.ok
    assert list(summary.failed) == [bad]
    assert isinstance(summary.failed[bad], dio.ImageReadError)
    assert "b.jpg" in str(summary.failed[bad]) and "b.jpg" in summary.report()
    assert "b.jpg" in caplog.text
    assert (out / "a_deblurred.png").is_file() and (out / "c_deblurred.png").is_file()
    # folders are expanded; stop_on_error re-raises the first error, naming the file
    with pytest.raises(dio.ImageReadError, match="b.jpg"):
        tiny_deblurrer.deblur_files(tmp_path, tmp_path / "out2", stop_on_error=True)


def test_never_overwrites_inputs(tmp_path: Path, tiny_deblurrer: Deblurrer) -> None:
    src = tmp_path / "photo.png"
    dio.save_image(src, torch.rand(3, 12, 12))
    before = src.read_bytes()
    # output folder == input folder with the default suffix is fine
    written = tiny_deblurrer.deblur_file(src, tmp_path)
    assert written["deblurred"] == tmp_path / "photo_deblurred.png" and src.read_bytes() == before
    # an empty suffix would overwrite the input: refused
    with pytest.raises(dio.ImageWriteError, match="photo.png"):
        tiny_deblurrer.deblur_file(src, tmp_path, suffix="")
    assert src.read_bytes() == before
    # in a batch, another input is protected too: x.png's output would be the input x_deblurred.png,
    # which (named like an output, in the output folder) is not deblurred again either
    x_in, x_other = tmp_path / "x.png", tmp_path / "x_deblurred.png"
    dio.save_image(x_in, torch.rand(3, 8, 8))
    dio.save_image(x_other, torch.rand(3, 8, 8))
    other_bytes = x_other.read_bytes()
    summary = tiny_deblurrer.deblur_files([x_in, x_other], tmp_path)
    assert x_in in summary.failed and isinstance(summary.failed[x_in], dio.ImageWriteError)
    assert x_other.read_bytes() == other_bytes
    assert x_other in summary.skipped and not (tmp_path / "x_deblurred_deblurred.png").exists()
