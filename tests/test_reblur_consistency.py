"""The no-reference reblurring-consistency score (`deblurkit evaluate --reblur-consistency`)."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from deblurkit.cli import app
from deblurkit.metrics import psnr
from deblurkit.cli.aspdc import _sidecar_overrides
from deblurkit.engine.trainer import export_weights
from deblurkit.inference.reblur_consistency import ReblurConsistency
from deblurkit.io import read_image, save_image
from deblurkit.models import build

from fake_blur_data import real_pairs


@pytest.fixture(scope="module")
def reblur_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("r") / "R.safetensors"
    export_weights(build("aspdc_reblur", intermediate_channels=(4, 4, 4, 4)).state_dict(), path, "aspdc_reblur", {})
    return path


class _BoxReblur(torch.nn.Module):
    """Stand-in R that blurs its sharp input with a 5x5 box (a linear, constant-preserving blur,
    so it acts the same on [-1, 1] as on [0, 1])."""

    def forward(self, blurry, sharp):
        return F.avg_pool2d(F.pad(sharp, (2, 2, 2, 2), mode="reflect"), 5, stride=1)


def test_score_rewards_a_deblurred_image_that_explains_the_blur(reblur_file, shared_data):
    scorer = ReblurConsistency(reblur_file)
    scorer.net = _BoxReblur()
    sharp = real_pairs(shared_data, 1, size=(61, 83))[0][1]
    blurry = scorer.reblur(sharp[None], sharp[None])[0]  # B = box(S), exactly R's blur
    perfect = scorer.score(blurry, sharp)
    lazy = scorer.score(blurry, blurry)
    assert perfect["psnr"] > 60  # R(B, S) = B up to float rounding
    assert lazy["psnr"] == pytest.approx(float(psnr(scorer.reblur(blurry[None], blurry[None]), blurry[None])[0]))
    assert perfect["psnr"] > lazy["psnr"] + 10
    assert lazy["psnr_change"] == float("inf") and perfect["psnr_change"] < 40


def test_identity_deblurrer_scores_the_do_nothing_baseline(reblur_file, shared_data):
    scorer = ReblurConsistency(reblur_file)
    b = real_pairs(shared_data, 1, size=(37, 50))[0][0]
    assert scorer.reblur(b[None], b[None]).shape == (1, 3, 37, 50)
    tiny = b[:, :9, :13]
    assert scorer.reblur(tiny[None], tiny[None]).shape == (1, 3, 9, 13)
    s = scorer.score(b, b)
    assert s["psnr"] == pytest.approx(float(psnr(scorer.reblur(b[None], b[None]), b[None])[0]))
    assert s["psnr_change"] == float("inf")
    assert all(p.requires_grad is False for p in scorer.net.parameters()) and not scorer.net.training
    with pytest.raises(ValueError, match="one shape"):
        scorer.reblur(b[None], b[None, :, :20])


def test_cli_scores_the_default_model_on_real_blurry_photos(reblur_file, shared_data, tmp_path):
    runner = CliRunner()
    photos = tmp_path / "real_blur"  # centre crops of the real blurry photos, to keep the test fast
    for f in sorted((shared_data / "real_blur").iterdir()):
        img = read_image(f)
        t, l = (img.shape[1] - 96) // 2, (img.shape[2] - 128) // 2
        save_image(photos / f"{f.stem}.png", img[:, t:t + 96, l:l + 128])
    r = runner.invoke(app, ["evaluate", "--data", str(photos), "--reblur-consistency", "--reblur-weights",
                            str(reblur_file), "--device", "cpu", "--out", str(tmp_path / "c"), "--save-images"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "c" / "images").iterdir()) == sorted(
        f"{p.stem}.png" for p in photos.iterdir())
    assert "4 images, reblurring consistency of default" in r.output
    rows = (tmp_path / "c" / "consistency.csv").read_text().splitlines()
    assert rows[0] == "name,psnr,psnr_identity,psnr_change" and len(rows) == 5
    assert {row.split(",")[0] for row in rows[1:]} == {p.name for p in photos.iterdir()}
    assert (tmp_path / "c" / "consistency.md").read_text().count("| **mean** |") == 1
    assert all(float(v) > 0 for row in rows[1:] for v in row.split(",")[1:])
    r = runner.invoke(app, ["evaluate", "--data", str(photos), "--reblur-consistency", "--device", "cpu"])
    assert r.exit_code == 2 and "--reblur-weights" in r.output
    r = runner.invoke(app, ["evaluate", "--data", str(photos), "--reblur-weights", str(reblur_file)])
    assert r.exit_code == 2 and "--reblur-consistency" in r.output
    r = runner.invoke(app, ["evaluate", "--data", str(photos), "--reblur-consistency", "--device", "cpu",
                            "--reblur-weights", str(tmp_path / "missing.pth")])
    assert r.exit_code == 2 and "missing.pth" in r.output


def test_sidecar_overrides_of_trained_weights(tmp_path):
    w = tmp_path / "weights.safetensors"
    w.write_bytes(b"")
    assert _sidecar_overrides(w, "aspdc") is None
    w.with_suffix(".json").write_text(json.dumps({"model": "aspdc", "overrides": {"official_compat": False}}))
    assert _sidecar_overrides(w, "aspdc") == {"official_compat": False}
    assert _sidecar_overrides(w, "mimo_unet") is None


def test_save_images_never_overwrites_the_input_photos(reblur_file, shared_data, tmp_path):
    """``--save-images`` into a folder whose images/ is the input folder stops (exit 2) before
    replacing an input photo."""
    photos = tmp_path / "images"
    src = read_image(shared_data / "real_blur" / sorted(p.name for p in (shared_data / "real_blur").iterdir())[0])
    save_image(photos / "a.png", src[:, :64, :96])
    before = (photos / "a.png").read_bytes()
    r = CliRunner().invoke(app, ["evaluate", "--data", str(photos), "--reblur-consistency", "--reblur-weights",
                                 str(reblur_file), "--device", "cpu", "--out", str(tmp_path), "--save-images"])
    assert r.exit_code == 2 and "would overwrite a file of the input data" in r.output
    assert (photos / "a.png").read_bytes() == before
