"""Blur2Blur test pipeline (convert, then deblur), the official evaluation protocol, the filter."""
from __future__ import annotations

import csv
import math

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deblurkit.cli import app
from deblurkit.data.unaligned import rank_pairs_by_psnr
from deblurkit.engine import evaluate, get_protocol
from deblurkit.engine.trainer import export_weights
from deblurkit.inference import Deblurrer
from deblurkit.inference.blur2blur import Blur2BlurDeblurrer, parse_deblurrer_spec
from deblurkit.io import read_image, save_image
from deblurkit.models import build
from deblurkit.synth.blur import blur
from deblurkit.synth.kernels import disk_kernel

CONV = {"base_channel": 4, "num_res": 1}


def photo_crop(shared_data, size=96, name="mate_*"):
    p = sorted((shared_data / "photos" / "wallpaper").glob(name))[0]
    img = read_image(p)
    h, w = img.shape[-2:]
    return img[:, h // 2 - size // 2:h // 2 + size // 2, w // 2 - size // 2:w // 2 + size // 2].contiguous()


@pytest.fixture(scope="module")
def converters(tmp_path_factory):
    d = tmp_path_factory.mktemp("conv")
    zero = build("mimo_unet", **CONV)
    with torch.no_grad():
        for p in zero.parameters():
            p.zero_()
    torch.manual_seed(0)
    rand = build("mimo_unet", init="normal", init_gain=0.1, **CONV)
    export_weights(zero.state_dict(), d / "zero.safetensors", "mimo_unet", CONV)
    export_weights(rand.state_dict(), d / "rand.safetensors", "mimo_unet", CONV)
    return d / "zero.safetensors", d / "rand.safetensors", rand


# ---------------------------------------------------------------- pipeline
def test_identity_converter_gives_the_deblurrers_result(converters, shared_data):
    x = photo_crop(shared_data)
    zero, _, _ = converters
    d = Blur2BlurDeblurrer(zero, "default", progress=False)
    assert torch.equal(d.convert(x), x.clamp(0, 1))  # MIMO-UNet adds its residual to the input
    assert torch.allclose(d.deblur_tensor(x), Deblurrer(progress=False).deblur_tensor(x), atol=1e-6)


def test_pipeline_deblurs_the_converted_image(converters, shared_data):
    x = photo_crop(shared_data)
    _, rand_path, rand_net = converters
    d = Blur2BlurDeblurrer(rand_path, None, progress=False)
    with torch.no_grad():
        converted = rand_net.eval()(x[None])[-1].clamp(0, 1)[0]
    assert not torch.allclose(converted, x, atol=1e-3)
    assert torch.allclose(d.convert(x), converted, atol=1e-5)
    want = Deblurrer(progress=False).deblur_tensor(converted)
    assert torch.allclose(d.deblur_tensor(x), want, atol=1e-5)


def test_deblurrer_spec_parsing(tmp_path):
    assert parse_deblurrer_spec(None) == (None, None)
    assert parse_deblurrer_spec("default") == (None, None)
    assert parse_deblurrer_spec("mimo_unet:w.pth") == ("mimo_unet", tmp_path.__class__("w.pth"))
    with pytest.raises(ValueError, match="embedded"):
        parse_deblurrer_spec("default:x.pth")
    with pytest.raises(FileNotFoundError, match="converter"):
        Blur2BlurDeblurrer(tmp_path / "none.safetensors")


def test_cli_deblur_with_blur2blur_end_to_end(converters, shared_data, tmp_path):
    x = photo_crop(shared_data, 128)
    y = blur(x[None], disk_kernel(3.0))[0]
    save_image(tmp_path / "in" / "photo.png", y)
    _, rand_path, _ = converters
    r = CliRunner().invoke(app, ["deblur", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model",
                                 "blur2blur", "--converter", str(rand_path), "--device", "cpu",
                                 "--deblurrer", "default"])
    assert r.exit_code == 0, r.output
    got = read_image(tmp_path / "out" / "photo_deblurred.png")
    want = Blur2BlurDeblurrer(rand_path, progress=False).deblur_tensor(read_image(tmp_path / "in" / "photo.png"))
    assert (got - want).abs().max() <= 1 / 255 + 1e-6
    r = CliRunner().invoke(app, ["deblur", str(tmp_path / "in"), "-o", str(tmp_path / "o2"), "--model", "blur2blur"])
    assert r.exit_code == 2 and "--converter" in r.output
    r = CliRunner().invoke(app, ["deblur", str(tmp_path / "in"), "-o", str(tmp_path / "o3"), "--converter", str(rand_path)])
    assert r.exit_code == 2 and "--model blur2blur" in r.output


# ---------------------------------------------------------------- protocol
def official_psnr_ssim_reference(restored_u8: np.ndarray, gt_u8: np.ndarray) -> float:
    """Blur2Blur psnr_ssim.py's PSNR, written from its description: resize the reference with
    INTER_AREA to a 256 shorter side when its height is not 256, PSNR on 8-bit values."""
    if gt_u8.shape[0] != 256:
        h, w = gt_u8.shape[:2]
        if h < w:
            nh, nw = 256, int(w * (256 / h))
        else:
            nw, nh = 256, int(h * (256 / w))
        gt_u8 = cv2.resize(gt_u8, (nw, nh), interpolation=cv2.INTER_AREA)
    mse = np.mean((restored_u8.astype(np.float64) - gt_u8.astype(np.float64)) ** 2)
    return 20 * math.log10(255.0 / math.sqrt(mse))


def test_blur2blur_protocol_resizes_reference_to_256_shorter_side(shared_data):
    proto = get_protocol("blur2blur")
    gt = photo_crop(shared_data, 320)[:, :300, :]  # 300 x 320
    lq = blur(gt[None], disk_kernel(2.0))[0].clamp(0, 1)
    seen = {}

    def restore(x):
        seen["shape"] = tuple(x.shape)
        return x * 0.98 + 0.01

    res = evaluate(restore, [("p", lq, gt)], "blur2blur", progress=False)
    assert seen["shape"] == (1, 3, 256, int(320 * 256 / 300))
    # reference computation on the same 8-bit images
    small = cv2.resize(lq.permute(1, 2, 0).numpy(), (seen["shape"][3], 256), interpolation=cv2.INTER_AREA)
    out_u8 = np.floor(np.clip(small * 0.98 + 0.01, 0, 1) * 255).astype(np.uint8)
    gt_u8 = np.round(gt.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    assert res.rows[0]["psnr"] == pytest.approx(official_psnr_ssim_reference(out_u8, gt_u8), abs=1e-6)
    assert 0 < res.rows[0]["ssim"] < 1
    assert res.rows[0]["psnr_input"] < 60
    # a 256-high reference is not resized (official condition on the height only)
    g2 = torch.round(torch.rand(3, 256, 200) * 255) / 255
    assert proto.score(g2, g2)["psnr"] == math.inf


def test_standard_protocol_still_full_resolution(shared_data):
    gt = photo_crop(shared_data, 128)
    res = evaluate(lambda x: x, [("p", gt, gt)], "standard", progress=False)
    assert res.rows[0]["psnr"] == math.inf


# ---------------------------------------------------------------- filter
def test_filter_ranks_least_blurry_first_and_cli_writes_ranking(tmp_path, shared_data):
    x = photo_crop(shared_data, 96)
    for name, r in (("a.png", 4.0), ("b.png", 1.0), ("c.png", 2.5)):
        save_image(tmp_path / "blur" / name, blur(x[None], disk_kernel(r))[0])
        save_image(tmp_path / "sharp" / name, x)
    ranking = rank_pairs_by_psnr(tmp_path / "blur", tmp_path / "sharp")
    assert [n for n, _ in ranking] == ["b.png", "c.png", "a.png"]
    b = read_image(tmp_path / "blur" / "b.png")
    s = read_image(tmp_path / "sharp" / "b.png")
    mse = ((b - s) * 255).round().double().pow(2).mean().item()
    assert ranking[0][1] == pytest.approx(10 * math.log10(255 ** 2 / mse), abs=1e-6)
    r = CliRunner().invoke(app, ["blur2blur", "filter", str(tmp_path / "blur"), str(tmp_path / "sharp"),
                                 "-o", str(tmp_path / "rank.csv"), "--keep", "1"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(tmp_path / "rank.csv")))
    assert [row["name"] for row in rows] == ["b.png", "c.png", "a.png"] and rows[0]["rank"] == "1"
    (tmp_path / "sharp" / "c.png").unlink()
    r = CliRunner().invoke(app, ["blur2blur", "filter", str(tmp_path / "blur"), str(tmp_path / "sharp"),
                                 "-o", str(tmp_path / "rank2.csv")])
    assert r.exit_code == 2 and "c.png" in r.output and not (tmp_path / "rank2.csv").exists()
