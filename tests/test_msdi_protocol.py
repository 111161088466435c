"""Evaluation protocol `msdi` (MSDI-Net's official test: 256x256 tiles on an adaptive grid,
overlaps averaged, PSNR / ssim_3d on 8-bit RGB) and `deblurkit evaluate --protocol msdi`."""
from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deblurkit.cli import app
from deblurkit.engine import evaluate, export_weights, get_protocol
from deblurkit.engine.recipes.msdi_protocol import grid_starts, tiled_restore
from deblurkit.inference import Deblurrer
from deblurkit.metrics import ssim_3d
from msdi_helpers import TINY, tiny


def test_grid_of_a_gopro_frame_has_15_tiles():
    assert grid_starts(720) == [0, 232, 464]  # step ceil((720 - 256) / 2) = 232, last flush with the edge
    assert grid_starts(1280) == [0, 256, 512, 768, 1024]
    seen = []

    def restore(t):
        seen.append(tuple(t.shape))
        return t

    x = torch.rand(1, 3, 720, 1280, generator=torch.Generator().manual_seed(0))
    out = tiled_restore(restore, x)
    assert seen == [(1, 3, 256, 256)] * 15
    assert torch.equal(out, x)  # identity restorer: averaging overlaps changes nothing
    assert grid_starts(256) == [0] and grid_starts(257) == [0, 1] and grid_starts(100) == [0]


def test_overlaps_are_averaged():
    x = torch.zeros(1, 1, 300, 256)  # rows start at 0 and 44: rows 44..255 are covered twice
    calls = iter([1.0, 3.0])
    out = tiled_restore(lambda t: torch.full_like(t, next(calls)), x)
    assert torch.all(out[..., :44, :] == 1.0) and torch.all(out[..., 44:256, :] == 2.0)
    assert torch.all(out[..., 256:, :] == 3.0)
    with pytest.raises(ValueError, match="came back"):
        tiled_restore(lambda t: t[..., :8, :8], x)
    with pytest.raises(ValueError, match="one image"):
        tiled_restore(lambda t: t, torch.zeros(2, 3, 16, 16))


def test_scores_are_on_8bit_images():
    g = torch.Generator().manual_seed(1)
    gt = torch.rand(1, 3, 24, 24, generator=g)
    restored = (gt + 0.05 * torch.randn(1, 3, 24, 24, generator=g)).clamp(-0.1, 1.1)
    s = get_protocol("msdi").score(restored, gt)
    a = np.round(np.clip(restored.numpy(), 0, 1) * 255.0)
    b = np.round(gt.numpy() * 255.0)
    assert s["psnr"] == pytest.approx(10 * np.log10(255.0**2 / np.mean((a - b) ** 2)), abs=1e-9)
    assert s["ssim"] == pytest.approx(float(ssim_3d(torch.from_numpy(a / 255), torch.from_numpy(b / 255))[0]), abs=1e-9)


def _gopro_folder(root, shared_data, h=256, w=272):
    photo = cv2.imread(str(shared_data / "photos" / "classic" / "astronaut.png"), cv2.IMREAD_COLOR)
    for i in range(1):
        sharp = np.ascontiguousarray(photo[40 * i:40 * i + h, 100:100 + w])
        for sub, img in (("target", sharp), ("input", cv2.GaussianBlur(sharp, (9, 9), 2.0))):
            (root / "test" / sub).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "test" / sub / f"frame{i}.png"), img)
    return root


@pytest.mark.slow  # the Deblurrer detects the architecture by building every registered network
def test_evaluate_cli_with_protocol_msdi(tmp_path, shared_data):
    root = _gopro_folder(tmp_path / "GoPro", shared_data)
    net = tiny("msdi_net").eval()
    weights = export_weights(net.state_dict(), tmp_path / "msdi_net_tiny.safetensors", "msdi_net", dict(TINY))
    r = CliRunner().invoke(app, ["evaluate", "--data", str(root), "--layout", "gopro_official", "--protocol", "msdi",
                                 "--model", "msdi_net", "--weights", str(weights), "--device", "cpu",
                                 "-o", str(tmp_path / "res")])
    assert r.exit_code == 0, r.output
    assert "1 images, protocol msdi" in r.output
    rows = list(csv.DictReader(open(tmp_path / "res" / "results.csv")))
    assert [row["name"] for row in rows] == ["frame0.png"]

    # the same numbers by hand: 2 tiles (columns 0 and 16) of 256x256, averaged
    d = Deblurrer(model="msdi_net", weights=weights, device="cpu", tile=None, progress=False)
    for i, row in enumerate(rows):
        lq = torch.from_numpy(cv2.imread(str(root / "test" / "input" / f"frame{i}.png"))[..., ::-1].copy())
        gt = torch.from_numpy(cv2.imread(str(root / "test" / "target" / f"frame{i}.png"))[..., ::-1].copy())
        lq = lq.permute(2, 0, 1)[None].float() / 255
        acc, cnt = torch.zeros(1, 3, 256, 272), torch.zeros(1, 1, 256, 272)
        for t in (0,):
            for l in (0, 16):
                acc[..., t:t + 256, l:l + 256] += d.deblur_tensor(lq[..., t:t + 256, l:l + 256]).float()
                cnt[..., t:t + 256, l:l + 256] += 1
        out = np.round(np.clip((acc / cnt)[0].permute(1, 2, 0).numpy(), 0, 1) * 255)
        psnr = 10 * np.log10(255.0**2 / np.mean((out - gt.numpy()) ** 2))
        assert float(row["psnr"]) == pytest.approx(psnr, abs=1e-3)
        psnr_in = 10 * np.log10(255.0**2 / np.mean((lq[0].permute(1, 2, 0).numpy() * 255 - gt.numpy()) ** 2))
        assert float(row["psnr_input"]) == pytest.approx(psnr_in, abs=1e-3)


def test_evaluate_python_api_with_msdi():
    x = torch.rand(3, 40, 48, generator=torch.Generator().manual_seed(2))
    res = evaluate(lambda t: t, [("a", x, x)], "msdi", progress=False)
    assert res.rows[0]["psnr"] == float("inf") and res.rows[0]["ssim"] == pytest.approx(1.0)
