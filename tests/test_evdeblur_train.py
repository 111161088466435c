"""Training recipe ``evdeblur`` (official loss_full, Adam amsgrad), its configs, the protocol
``evdeblur`` and the pooled PSNR (fourson/Deblurring-Low-Light-Images-with-Events)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import event_layout as L
from deblurkit import metrics
from deblurkit.engine import get_protocol, load_config, make_trainer
from deblurkit.engine.recipes.evdeblur import evdeblur_loss, total_variation_loss

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_total_variation_by_hand():
    # one 2x2 image [[0, 1], [0, 1]]: vertical diffs 0, horizontal diffs 1, 1
    # TV = 2 * (0 / (1*1*2) + 2 / (1*2*1)) / 1 = 2
    x = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    assert float(total_variation_loss(x)) == pytest.approx(2.0)
    # batch of two identical images: the sums double, the final / N halves them back
    assert float(total_variation_loss(x.repeat(2, 1, 1, 1))) == pytest.approx(2.0)


def test_psnr_is_of_the_batch_pooled_mse():
    gt = torch.zeros(2, 1, 4, 4)
    pred = torch.stack([torch.full((1, 4, 4), 0.1), torch.full((1, 4, 4), 0.01)])  # MSE 1e-2 and 1e-4
    pooled = float(metrics.psnr_pooled(pred, gt))
    assert pooled == pytest.approx(10 * math.log10(1 / ((1e-2 + 1e-4) / 2)), abs=1e-5)  # 22.967 dB (float32 inputs)
    assert float(metrics.psnr(pred, gt).mean()) == pytest.approx(30.0)  # per-image mean differs
    assert math.isinf(float(metrics.psnr_pooled(gt, gt)))
    assert float(metrics.psnr_pooled(gt, gt, identical_db=metrics.pooled.OFFICIAL_IDENTICAL_DB)) == 50.0


def _official_ssim(x, y):
    """metric_utils/ssim.py: 11-tap Gaussian (sigma 1.5), separable valid filtering, C1/C2 of L=1."""
    c = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(c ** 2) / (2 * 1.5 ** 2))
    g = (g / g.sum()).reshape(1, 1, 1, -1).repeat(x.shape[1], 1, 1, 1)
    f = lambda t: F.conv2d(F.conv2d(t, g, groups=t.shape[1]), g.transpose(2, 3), groups=t.shape[1])  # noqa: E731
    mu1, mu2 = f(x), f(y)
    s1, s2, s12 = f(x * x) - mu1 ** 2, f(y * y) - mu2 ** 2, f(x * y) - mu1 * mu2
    C1, C2 = 0.01 ** 2, 0.03 ** 2
    m = ((2 * mu1 * mu2 + C1) * (2 * s12 + C2)) / ((mu1 ** 2 + mu2 ** 2 + C1) * (s1 + s2 + C2))
    return m.mean(dim=(1, 2, 3)).mean()


@pytest.mark.parametrize("c", [1, 3])
def test_protocol_matches_the_official_metrics(c):
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(1, c, 32, 48, generator=g, dtype=torch.float64)
    out = (gt + 0.1 * torch.randn(1, c, 32, 48, generator=g, dtype=torch.float64)).clamp(0, 1)
    s = get_protocol("evdeblur").score(out, gt)
    assert s["ssim"] == pytest.approx(float(_official_ssim(out, gt)), abs=1e-9)
    assert s["psnr"] == pytest.approx(float(10 * torch.log10(1 / ((out - gt) ** 2).mean())), abs=1e-9)


def test_loss_terms_and_weights():
    g = torch.Generator().manual_seed(1)
    r = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    out, F_gt, Bc, S = (r(2, 4, 8, 8), r(2, 1, 8, 8), r(2, 1, 8, 8)), r(2, 4, 8, 8), r(2, 1, 8, 8), r(2, 1, 8, 8)
    feats = []

    def vgg(x):  # stands in for VGG19 conv3_3: records that grey images arrive as 3 channels
        feats.append(x.shape[1])
        return {"conv3_3": x.mean(1, keepdim=True) * 2}

    total, parts = evdeblur_loss(out, F_gt, Bc, S, vgg=vgg)
    Fp, Bp, Sp = out
    want = (0.01 * (F.l1_loss(Fp, F_gt) + 0.1 * total_variation_loss(Fp))
            + 10 * (F.l1_loss(Bp, Bc) + F.mse_loss(Bp, Bc))
            + 100 * F.mse_loss(Sp, S) + 0.1 * F.mse_loss(Sp * 2, S * 2))
    assert float(total) == pytest.approx(float(want), rel=1e-6)
    assert feats == [3, 3] and set(parts) >= {"flow_l1", "flow_tv", "denoise_l1", "denoise_l2", "recon_l2", "perceptual"}
    no_p, _ = evdeblur_loss(out, F_gt, Bc, S, perceptual=0)
    assert float(total - no_p) == pytest.approx(float(0.1 * F.mse_loss(Sp * 2, S * 2)), rel=1e-5)
    with pytest.raises(ValueError, match="unknown evdeblur loss weight"):
        evdeblur_loss(out, F_gt, Bc, S, perceptal=1)


def _overrides(root: Path, out: Path, *extra: str) -> list[str]:
    return [f"data.train.root={root}", "data.batch_size=2", "data.num_workers=0", "train.total_steps=2",
            f"train.out_dir={out}", "train.ckpt_every=1", "model.overrides.init_dim=32", *extra]


@pytest.mark.parametrize("cfg_name,rgb", [("evdeblur_full_synthetic.yaml", False),
                                          ("evdeblur_rgb_full_synthetic.yaml", True)])
def test_configs_are_official_and_train_two_steps(tmp_path, cfg_name, rgb):
    root = L.write_synthetic(tmp_path / "train")
    cfg = load_config(CONFIGS / cfg_name, _overrides(root, tmp_path / "run", "recipe.perceptual=0",
                                                     "train.threads=1"))
    assert (cfg.optim.type, cfg.optim.lr, cfg.optim.betas, cfg.optim.amsgrad) == ("adam", 1e-3, [0.5, 0.999], True)
    assert cfg.schedule.type == "constant" and cfg.eval.protocol == "evdeblur"
    assert cfg.data.train["rgb"] is rgb and cfg.recipe["type"] == "evdeblur"
    trainer = make_trainer(cfg, progress=False)
    assert trainer.optimizer.defaults["amsgrad"] is True and trainer.optimizer.defaults["betas"] == (0.5, 0.999)
    before = [p.detach().clone() for p in trainer.net.parameters()]
    logs = trainer.fit()
    assert trainer.step == 2 and math.isfinite(logs["loss"]) and "Lf" in logs and "psnr" in logs
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.net.parameters()))
    assert (tmp_path / "run" / "weights.safetensors").is_file()
    st = torch.load(tmp_path / "run" / "ckpt" / "last.pt", weights_only=False)
    assert any("max_exp_avg_sq" in s for s in st["optimizer"]["state"].values())  # AMSGrad state


def test_vgg_weights_come_from_a_user_file(tmp_path):
    from deblurkit.losses import VGGFeatureExtractor
    from deblurkit.models import save_safetensors

    root = L.write_synthetic(tmp_path / "train")
    cfg = load_config(CONFIGS / "evdeblur_full_synthetic.yaml", _overrides(root, tmp_path / "a"))
    with pytest.raises(ValueError, match="vgg19_weights is required"):
        make_trainer(cfg, progress=False)
    missing = tmp_path / "vgg19-dcbb9e9d.pth"
    cfg = load_config(CONFIGS / "evdeblur_full_synthetic.yaml",
                      _overrides(root, tmp_path / "b", f"recipe.vgg19_weights={missing}"))
    with pytest.raises(FileNotFoundError, match="vgg19-dcbb9e9d.pth"):
        make_trainer(cfg, progress=False)
    torch.manual_seed(0)
    vgg_file = save_safetensors(VGGFeatureExtractor(("conv3_3",), arch="vgg19").state_dict(), tmp_path / "vgg19.safetensors")
    cfg = load_config(CONFIGS / "evdeblur_full_synthetic.yaml",
                      _overrides(root, tmp_path / "c", f"recipe.vgg19_weights={vgg_file}", "train.total_steps=1"))
    trainer = make_trainer(cfg, progress=False)
    ref = VGGFeatureExtractor(("conv3_3",), arch="vgg19", weights=vgg_file)
    torch.testing.assert_close(trainer.vgg.features[14].weight, ref.features[14].weight)
    logs = trainer.fit()
    assert logs["perceptual"] > 0 and math.isfinite(logs["loss"])
    assert not trainer.vgg.training  # the loss network stays frozen: eval mode, no gradients
    assert all(not p.requires_grad and p.grad is None for p in trainer.vgg.parameters())
    torch.testing.assert_close(trainer.vgg.features[14].weight, ref.features[14].weight)
