"""RSS-T training recipe (configs/rsst_grr_real.yaml), protocol ``rsst`` and whole-frame inference."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deblurkit.engine import get_protocol, load_config, lr_at, make_trainer
from deblurkit.engine.recipes.rsst import row_thirds, rsst_loss, rsst_score
from deblurkit.models import build
from deblurkit.models.rsst import pad_centred

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "rsst_grr_real.yaml"


@pytest.fixture(scope="module")
def grr_root(tmp_path_factory, shared_data):
    """Tiny GRR_real-layout data synthesised from the real cube sequence (60 x 80 frames)."""
    from deblurkit.synth.grr import build_grr_sequence, read_frames

    root = tmp_path_factory.mktemp("grr")
    frames = read_frames(shared_data / "sequences" / "visp_mbt_cube", max_frames=4)[:, :, ::8, ::8]
    for split in ("train", "validate"):
        build_grr_sequence(frames, root, seq="cube", split=split, factor=4, exposure=1, readout=6, stride=1,
                           progress=False)
    return root


def _tiny_cfg(grr_root, out_dir, *extra):
    return load_config(CONFIG, [
        f"data.train.root={grr_root}", f"data.val.root={grr_root}", "model.overrides.base_channel=4",
        "model.overrides.depths=[1,1,1,1,1,1,1,1]", "data.batch_size=1", "data.num_workers=0",
        "recipe.epochs=1", "train.val_every=1", "train.ckpt_every=1", "train.threads=1", "eval.max_images=1",
        f"train.out_dir={out_dir}", *extra])


def test_config_has_the_official_values():
    cfg = load_config(CONFIG)
    assert cfg.model.name == "rsst" and cfg.model.overrides == {}
    assert cfg.recipe == {"type": "rsst", "pad_factor": [32, 128], "charbonnier_eps": 1e-3, "fft_weight": 0.1,
                          "epochs": 600}
    assert (cfg.optim.type, cfg.optim.lr, cfg.optim.weight_decay) == ("adam", 1e-4, 0.0)
    assert (cfg.schedule.type, cfg.schedule.warmup_steps, cfg.schedule.min_lr) == ("cosine", 5000, 1e-6)
    assert cfg.data.train["augment"] is True and cfg.data.val.get("augment", False) is False
    assert cfg.eval.protocol == "rsst" and cfg.train.ema_decay is None and cfg.train.grad_clip is None
    # train.py get_learning_rate: linear warm-up, then cosine from 1e-4 to 1e-6
    assert lr_at(2499, base_lr=1e-4, total_steps=100000, warmup_steps=5000, min_lr=1e-6) == pytest.approx(5e-5)
    mid = 5000 + (100000 - 5000) // 2
    assert lr_at(mid, base_lr=1e-4, total_steps=100000, warmup_steps=5000, min_lr=1e-6) == pytest.approx(5.05e-5)


def test_config_trains_two_steps_on_synthesised_grr_and_keeps_the_best_by_psnr_plus_ssim(grr_root, tmp_path):
    cfg = _tiny_cfg(grr_root, tmp_path / "run")
    seen = []
    trainer = make_trainer(cfg, progress=False, on_step=lambda step, logs: seen.append(dict(logs)))
    assert cfg.train.total_steps == 2  # recipe.epochs=1 x (2 training pairs // batch 1)
    logs = trainer.fit()
    assert trainer.step == 2 and math.isfinite(logs["loss"])
    assert {"charbonnier", "fft_l1"} <= set(logs)
    for k in ("psnr_top", "psnr_middle", "psnr_bottom", "ssim_top", "ssim_bottom", "psnr_bottom_input"):
        assert f"val_{k}" in logs
    scores = [s["val_score"] for s in seen]
    for s in seen:
        assert s["val_score"] == pytest.approx((s["val_psnr"] + s["val_ssim"]) / 2)
    best = torch.load(tmp_path / "run" / "ckpt" / "best.pt", weights_only=False)
    assert best["best_psnr"] == pytest.approx(max(scores))
    assert (tmp_path / "run" / "weights.safetensors").is_file()


def test_validation_scores_whole_frames_not_a_centre_crop(grr_root, tmp_path):
    from deblurkit.data.grr import GRRPairedDataset
    from deblurkit.metrics import psnr

    trainer = make_trainer(_tiny_cfg(grr_root, tmp_path / "run", "eval.max_images=null"), progress=False)
    val = trainer.validate()
    ds = GRRPairedDataset(grr_root, "validate")
    assert ds[0]["lq"].shape[-2:] == (60, 80)  # not a multiple of 32 x 128: a crop would lose everything
    expected = sum(float(psnr(ds[i]["lq"], ds[i]["gt"])[0]) for i in range(len(ds))) / len(ds)
    assert val["psnr_input"] == pytest.approx(expected)


def test_loss_ignores_the_padding_and_matches_the_official_terms():
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 3, 40, 100, generator=g)
    gt_p, mask, (t, l) = pad_centred(gt, (32, 128))
    valid = 1 - mask
    outs = [torch.nn.functional.interpolate(gt_p, scale_factor=s, mode="bilinear") for s in (0.125, 0.25, 0.5)]
    outs.append(gt_p.clone())
    loss, parts = rsst_loss(outs, gt_p, valid)
    # equal to the targets: Charbonnier sqrt(0 + eps^2) = eps per scale, FFT term 0
    assert parts["charbonnier"] == pytest.approx(4e-3, rel=1e-4) and parts["fft_l1"] < 1e-4
    noisy = [o + 0.1 * torch.randn(o.shape, generator=g) for o in outs]
    base, _ = rsst_loss(noisy, gt_p, valid)
    junk = [o.clone() for o in noisy]
    for o in junk:  # change only predictions on padded pixels
        m = torch.nn.functional.interpolate(mask, size=o.shape[-2:]).expand_as(o).bool()
        o[m] = 7.0
    changed, _ = rsst_loss(junk, gt_p, valid)
    assert changed.item() == pytest.approx(base.item(), rel=1e-6)
    # no mask: Charbonnier(eps=1e-3) + 0.1 x L1 of the stacked real/imag FFT2, summed over 4 scales
    total, _ = rsst_loss(noisy, gt_p)
    ref = 0.0
    for o, s in zip(noisy, (0.125, 0.25, 0.5, 1.0)):
        tgt = gt_p if s == 1.0 else torch.nn.functional.interpolate(gt_p, scale_factor=s, mode="bilinear")
        ref += torch.sqrt((o - tgt) ** 2 + 1e-6).mean()
        fo, ft = torch.fft.fft2(o), torch.fft.fft2(tgt)
        ref += 0.1 * torch.stack([(fo.real - ft.real).abs(), (fo.imag - ft.imag).abs()]).mean()
    assert total.item() == pytest.approx(float(ref), rel=1e-5)


def test_protocol_scores_unclamped_and_per_third():
    assert get_protocol("rsst").score is rsst_score
    assert row_thirds(10) == {"top": slice(0, 3), "middle": slice(3, 6), "bottom": slice(6, 10)}
    g = torch.Generator().manual_seed(1)
    gt = torch.rand(1, 3, 30, 40, generator=g) * 0.8 + 0.1
    noise = torch.randn(1, 3, 30, 40, generator=g)
    sigma = torch.tensor([0.01] * 10 + [0.03] * 10 + [0.1] * 10).view(1, 1, 30, 1)
    restored = gt + sigma * noise
    s = rsst_score(restored, gt)
    assert s["psnr_top"] > s["psnr_middle"] > s["psnr_bottom"]
    for part, rows in row_thirds(30).items():
        mse = ((restored - gt)[..., rows, :] ** 2).mean()
        assert s[f"psnr_{part}"] == pytest.approx(float(10 * torch.log10(1 / mse)), abs=1e-4)
    over = gt.clone()
    over[..., :5, :] = 1.5  # out of range: scored as is, not clamped
    mse = ((over - gt) ** 2).mean()
    assert rsst_score(over, gt)["psnr"] == pytest.approx(float(10 * torch.log10(1 / mse)), abs=1e-4)


def test_restore_frame_pads_centred_with_the_mask_and_crops():
    net = build("rsst", base_channel=4, depths=(1,) * 8).eval()
    assert net.pad_factor == (32, 128)
    x = torch.rand(2, 3, 40, 100, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = net.restore_frame(x)
        xp, mask, (t, l) = pad_centred(x, (32, 128))
        ref = net(xp, mask)[-1][..., t:t + 40, l:l + 100]
        unmasked = net(xp)[-1][..., t:t + 40, l:l + 100]
    assert (t, l) == (12, 14) and y.shape == x.shape
    assert torch.equal(y, ref)
    assert not torch.allclose(y, unmasked)  # the mask matters (row index of the unpadded image)


def test_deblurrer_runs_rsst_on_whole_frames(tmp_path):
    from deblurkit.inference import Deblurrer

    net = build("rsst", base_channel=4, depths=(1,) * 8).eval()
    d = Deblurrer.from_network(net, size_multiple=128, tile="auto")
    x = torch.rand(3, 40, 100, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = net.restore_frame(x[None])[0]
    assert torch.allclose(d.deblur_tensor(x, clamp=False), ref, atol=1e-5)
    assert torch.allclose(d.deblur_tensor(x), ref.clamp(0, 1), atol=1e-5)
    assert d.tile_for(4000, 6000) is None  # never tiled: the output depends on the absolute row
    with pytest.raises(ValueError, match="whole frames"):
        Deblurrer.from_network(net, size_multiple=128, tile=256)


def test_cli_evaluate_protocol_rsst_on_grr_layout_saves_rounded_images(grr_root, tmp_path):
    from typer.testing import CliRunner

    from deblurkit.cli import app
    from deblurkit.data.grr import GRRPairedDataset
    from deblurkit.models import load_checkpoint

    from deblurkit.engine import export_weights

    overrides = {"base_channel": 4, "depths": [1] * 8}
    weights = export_weights(build("rsst", **overrides).state_dict(), tmp_path / "w.safetensors", "rsst", overrides)
    out = tmp_path / "eval"
    res = CliRunner().invoke(app, ["evaluate", "--data", str(grr_root), "--layout", "grr_real", "--split", "validate",
                                   "--model", "rsst", "--weights", str(weights), "--protocol", "rsst",
                                   "--out", str(out), "--save-images", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert {"psnr_top", "psnr_middle", "psnr_bottom", "ssim_bottom", "psnr_bottom_input"} <= set(header)
    net = build("rsst", base_channel=4, depths=(1,) * 8)
    load_checkpoint(net, weights)
    lq = GRRPairedDataset(grr_root, "validate")[0]["lq"]
    with torch.no_grad():
        y = net.eval().restore_frame(lq[None])[0]
    saved = np.asarray(Image.open(out / "images" / "cube" / "00000.png"))
    expected = torch.round(y.clamp(0, 1) * 255).permute(1, 2, 0).numpy()
    assert np.abs(saved.astype(np.float32) - expected).max() <= 1  # rounded (float noise may flip a .5)
    assert (saved.astype(np.float32) == expected).mean() > 0.99


def test_zero_init_output_option_starts_from_the_identity(grr_root, tmp_path):
    trainer = make_trainer(_tiny_cfg(grr_root, tmp_path / "run", "recipe.zero_init_output=true"), progress=False)
    x = torch.rand(1, 3, 40, 100, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.equal(trainer.restore(x), x)
    official = make_trainer(_tiny_cfg(grr_root, tmp_path / "run2"), progress=False)
    with torch.no_grad():
        assert not torch.allclose(official.restore(x), x, atol=1e-3)
    with pytest.raises(ValueError, match="unknown arguments"):
        make_trainer(_tiny_cfg(grr_root, tmp_path / "run3", "recipe.typo=1"), progress=False)
