"""MSDI-Net training: the stage-1 and stage-2 configs run (tiny overrides), loss networks are
really frozen, stage-1 losses follow the official formulas, the stage-1 checkpoint splits into
the degradation-part files stage 2 loads, and constructors never read files."""
from __future__ import annotations

import builtins
import io

import pytest
import torch
from typer.testing import CliRunner

from deblurkit.cli import app
from deblurkit.engine import load_config, make_trainer
from deblurkit.engine.checkpoint import load_training_checkpoint
from deblurkit.losses.msdi import (
    DegradationFeatureLoss,
    feature_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    msdi_vgg_loss,
)
from deblurkit.models import CheckpointMismatchError, build, load_checkpoint
from deblurkit.models.msdi import load_msdi_parts
from msdi_helpers import TINY, tiny, write_parts, write_random_vgg19
from test_gopro import make_official

CONFIGS = {"stage1": "configs/msdi2e_stage1_gopro.yaml", "v2": "configs/msdi2_net_stage2_gopro.yaml",
           "v1": "configs/msdi_net_stage2_gopro.yaml"}


@pytest.fixture(scope="module")
def vgg19_file(tmp_path_factory):
    return write_random_vgg19(tmp_path_factory.mktemp("vgg") / "vgg19-random.pth")


@pytest.fixture(scope="module")
def gopro(tmp_path_factory, shared_data):
    """Official layout with the 512x512 preparation run at a tiny size: train/{blur_crops,sharp_crops}."""
    from deblurkit.data.gopro import prepare_gopro_crops

    root = make_official(tmp_path_factory.mktemp("data") / "GoPro", shared_data, split="train", n=2, h=48, w=64)
    make_official(root, shared_data, split="test", n=1, h=32, w=48)
    prepare_gopro_crops(root, crop_size=48, step=16)  # 2 windows per pair
    return root


def _tiny_run(config, out_dir, gopro, *extra):
    common = [f"train.out_dir={out_dir}", f"data.train.root={gopro}", "data.train.patch_size=32",
              "data.batch_size=2", "data.num_workers=0", "train.device=cpu", "train.total_steps=2",
              "train.log_every=1", "train.ckpt_every=2"]
    cfg = load_config(config, common + list(extra))
    return make_trainer(cfg, progress=False)


def test_official_values_in_configs():
    s1 = load_config(CONFIGS["stage1"])
    assert (s1.model.name, s1.recipe["type"], s1.optim.lr, s1.optim.betas) == ("msdi2e", "msdi_stage1", 2e-4, [0.9, 0.99])
    assert (s1.schedule.type, s1.schedule.min_lr, s1.train.total_steps, s1.train.grad_clip) == ("cosine", 1e-7, 240000, 0.01)
    assert (s1.recipe["gan_weight"], s1.recipe["feature_matching_weight"], s1.recipe["vgg_weight"]) == (1.0, 10.0, 30.0)
    assert s1.loss == [{"type": "l1", "weight": 10.0}] and s1.recipe["cosine_period"] == 250000
    for key, model in (("v2", "msdi2_net"), ("v1", "msdi_net")):
        s2 = load_config(CONFIGS[key])
        assert (s2.model.name, s2.recipe["type"], s2.optim.lr, s2.optim.betas) == (model, "msdi_stage2", 3e-4, [0.9, 0.99])
        assert (s2.schedule.min_lr, s2.train.total_steps, s2.train.grad_clip) == (1e-7, 400000, 0.01)
        assert s2.loss == [{"type": "psnr", "weight": 0.5}] and s2.recipe["feature_weight"] == 1.0
        assert (s2.data.train["patch_size"], s2.data.train["augment"]) == (256, True)
    assert load_config(CONFIGS["v1"]).recipe["encoder"].endswith("net_E.pth")


def test_stage1_config_runs_and_freezes_the_vgg(tmp_path, gopro, vgg19_file):
    tr = _tiny_run(CONFIGS["stage1"], tmp_path / "s1", gopro, f"recipe.vgg_weights={vgg19_file}",
                   "model.overrides.wf=4", "model.overrides.spade_hidden=8", "recipe.discriminator.ndf=4")
    d0 = {k: v.clone() for k, v in tr.aux["discriminator"].state_dict().items()}
    g0 = {k: v.clone() for k, v in tr.net.state_dict().items()}
    vgg0 = {k: v.clone() for k, v in tr.vgg.state_dict().items()}
    logs = tr.fit()
    for k in ("g_gan", "g_feature_matching", "g_vgg", "l1", "d_fake", "d_real", "grad_norm", "d_grad_norm"):
        assert k in logs and torch.isfinite(torch.tensor(logs[k])), k
    assert any(not torch.equal(v, tr.aux["discriminator"].state_dict()[k]) for k, v in d0.items())
    assert any(not torch.equal(v, tr.net.state_dict()[k]) for k, v in g0.items())
    # the loss network: eval mode, no gradients, unchanged, not in the checkpoint
    assert not tr.vgg.training and not tr.vgg.vgg.training
    assert all(not p.requires_grad and p.grad is None for p in tr.vgg.parameters())
    assert all(torch.equal(v, tr.vgg.state_dict()[k]) for k, v in vgg0.items())
    st = load_training_checkpoint(tmp_path / "s1" / "ckpt" / "last.pt")
    assert set(st["aux"]) == {"discriminator"} and "discriminator" in st["aux_optimizers"]
    # validation restores with the deblurring generator alone
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        net = tr.eval_net.eval()
        assert torch.equal(tr.restore(x), net.generator(x, net.degradation_maps(x)))

    # split into the v2 parts and feed them to stage 2's network
    r = CliRunner().invoke(app, ["msdi", "split-parts", str(tmp_path / "s1" / "ckpt" / "last.pt"), "-o", str(tmp_path / "parts")])
    assert r.exit_code == 0, r.output
    v2 = build("msdi2_net", **TINY)
    load_msdi_parts(v2, encoder=tmp_path / "parts" / "net2.pth", prior=tmp_path / "parts" / "prior_upsampling2.pth")
    assert all(torch.equal(v, st["model"][f"net_prior.{k}"]) for k, v in v2.net_prior.state_dict().items())
    assert all(torch.equal(v, st["model"][f"prior_upsampling.{k}"]) for k, v in v2.prior_upsampling.state_dict().items())
    r = CliRunner().invoke(app, ["msdi", "split-parts", str(tmp_path / "s1" / "ckpt" / "last.pt"), "-o", str(tmp_path / "parts")])
    assert r.exit_code == 2 and "--force" in r.output
    r = CliRunner().invoke(app, ["msdi", "split-parts", str(vgg19_file), "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and "not an MSDI network" in r.output


def test_stage1_needs_vgg_weights(tmp_path, gopro):
    with pytest.raises(ValueError, match="vgg19-dcbb9e9d.pth"):
        _tiny_run(CONFIGS["stage1"], tmp_path / "a", gopro, "model.overrides.wf=4")
    with pytest.raises(FileNotFoundError, match="VGG19 weights file not found"):
        _tiny_run(CONFIGS["stage1"], tmp_path / "b", gopro, "model.overrides.wf=4",
                  f"recipe.vgg_weights={tmp_path / 'missing.pth'}")
    with pytest.raises(ValueError, match="unknown recipe argument"):
        _tiny_run(CONFIGS["stage1"], tmp_path / "c", gopro, "recipe.vgg_weight_typo=1")


def test_stage1_schedule_and_official_constant_generator_lr(tmp_path, gopro, vgg19_file):
    base = [f"recipe.vgg_weights={vgg19_file}", "model.overrides.wf=4", "recipe.discriminator.ndf=4",
            "recipe.cosine_period=4", "schedule.min_lr=0"]
    tr = _tiny_run(CONFIGS["stage1"], tmp_path / "a", gopro, *base)
    tr.step = 2  # half of the cosine period: lr / 2 for both networks
    tr.apply_lr()
    assert tr.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert tr.aux_optimizers["discriminator"].param_groups[0]["lr"] == pytest.approx(1e-4)
    tr = _tiny_run(CONFIGS["stage1"], tmp_path / "b", gopro, *base, "recipe.official_constant_generator_lr=true")
    tr.step = 2
    tr.apply_lr()
    assert tr.optimizer.param_groups[0]["lr"] == pytest.approx(2e-4)
    assert tr.aux_optimizers["discriminator"].param_groups[0]["lr"] == pytest.approx(1e-4)


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_stage2_config_runs_with_frozen_parts_and_feature_loss(tmp_path, gopro, version):
    enc, prior = write_parts(tmp_path / "parts", 2 if version == "v2" else 1, seed=3)
    tr = _tiny_run(CONFIGS[version], tmp_path / "run", gopro, f"recipe.encoder={enc}", f"recipe.prior={prior}",
                   f"recipe.feature_encoder={enc}", "model.overrides.wf=4", "model.overrides.spade_hidden=8",
                   f"data.val.root={gopro}", "eval.max_images=1", "train.val_every=2")
    assert tr.cfg.train.grad_clip == 0.01
    parts0 = {k: v.clone() for k, v in tr.net.state_dict().items() if k.startswith(("net_prior.", "prior_upsampling."))}
    assert torch.equal(parts0["net_prior.conv_7x7.weight"], torch.load(enc)["conv_7x7.weight"])  # loaded
    unet0 = tr.net.conv_01.weight.clone()
    logs = tr.fit()
    for k in ("psnr_1", "psnr_2", "feature", "grad_norm", "val_psnr", "val_psnr_input"):
        assert k in logs, k
    assert logs["loss"] == pytest.approx(0.5 * (logs["psnr_1"] + logs["psnr_2"]) + logs["feature"], rel=1e-5)
    assert not torch.equal(unet0, tr.net.conv_01.weight)
    sd = tr.net.state_dict()
    frozen_params = {n for n, _ in tr.net.named_parameters() if n.startswith(("net_prior.", "prior_upsampling."))}
    assert all(torch.equal(parts0[k], sd[k]) for k in frozen_params)  # frozen parts never updated
    assert all(torch.equal(parts0[k], sd[k]) for k in parts0)  # buffers too (spectral-norm u, v)
    fl = tr.feature_loss
    assert isinstance(fl, DegradationFeatureLoss) and not fl.training
    assert all(not p.requires_grad and p.grad is None for p in fl.parameters())


def test_stage2_requires_the_parts(tmp_path, gopro):
    with pytest.raises(ValueError, match="recipe.encoder and recipe.prior"):
        _tiny_run(CONFIGS["v2"], tmp_path / "a", gopro, "recipe.encoder=null", "model.overrides.wf=4",
                  f"data.val.root={gopro}")
    enc, prior = write_parts(tmp_path / "parts", 2)
    with pytest.raises(ValueError, match="feature_encoder"):
        _tiny_run(CONFIGS["v2"], tmp_path / "b", gopro, f"recipe.encoder={enc}", f"recipe.prior={prior}",
                  "recipe.feature_encoder=null", "model.overrides.wf=4", "model.overrides.spade_hidden=8",
                  f"data.val.root={gopro}")
    with pytest.raises(CheckpointMismatchError):  # v2 parts into the v1 network
        _tiny_run(CONFIGS["v1"], tmp_path / "c", gopro, f"recipe.encoder={enc}", f"recipe.prior={prior}",
                  f"recipe.feature_encoder={enc}", "model.overrides.wf=4", "model.overrides.spade_hidden=8",
                  f"data.val.root={gopro}")


# ------------------------------------------------------------------------------ loss formulas
def test_hinge_and_feature_matching_formulas():
    fake = [[torch.full((2, 3, 4, 4), 0.5), torch.full((2, 1, 3, 3), 0.25)],
            [torch.full((2, 3, 2, 2), 1.0), torch.tensor([[[[-2.0, 3.0]]]]).repeat(2, 1, 1, 1)]]
    real = [[torch.zeros(2, 3, 4, 4), torch.full((2, 1, 3, 3), 2.0)],
            [torch.full((2, 3, 2, 2), 3.0), torch.tensor([[[[0.5, -1.0]]]]).repeat(2, 1, 1, 1)]]
    assert float(hinge_generator_loss(fake)) == pytest.approx((-0.25 + -0.5) / 2)
    d_fake, d_real = hinge_discriminator_loss(fake, real)
    assert float(d_fake) == pytest.approx((1.25 + (0 + 4) / 2) / 2)  # mean(max(0, 1 + x))
    assert float(d_real) == pytest.approx((0.0 + (0.5 + 2) / 2) / 2)  # mean(max(0, 1 - x))
    assert float(feature_matching_loss(fake, real)) == pytest.approx((0.5 + 2.0) / 2)  # logits excluded


def test_vgg_loss_layers_and_errors(tmp_path, vgg19_file):
    loss = msdi_vgg_loss(vgg19_file)
    assert loss.layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert loss.layer_weights == (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0) and loss.vgg.arch == "vgg19"
    assert not loss.vgg.normalize and all(not p.requires_grad for p in loss.parameters())
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    y = torch.rand(1, 3, 32, 32)
    assert float(loss(y, y)) == 0.0
    loss(x, y).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="VGG19"):
        msdi_vgg_loss(None)
    torch.save(build("msdi_encoder", ndf=4).state_dict(), tmp_path / "not_vgg.pth")
    with pytest.raises(CheckpointMismatchError):
        msdi_vgg_loss(tmp_path / "not_vgg.pth")


def test_degradation_feature_loss(tmp_path):
    enc1, _ = write_parts(tmp_path / "v1", 1)
    enc2, _ = write_parts(tmp_path / "v2", 2)
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    y = torch.rand(2, 3, 32, 32)
    for f in (enc1, enc2):
        fl = DegradationFeatureLoss(f)
        fl.train()
        assert not fl.training
        feats = fl.features(y)
        assert [tuple(t.shape[1:]) for t in feats] == [(4, 16, 16), (4, 16, 16), (8, 8, 8), (16, 4, 4), (32, 2, 2)]
        assert float(fl(y, y)) == 0.0
        fl(x, y).backward()
        assert x.grad.abs().sum() > 0 and all(p.grad is None for p in fl.parameters())
        x.grad = None
    # the v1 loss reads the file's weights: layer1 is the released encoder's
    fl = DegradationFeatureLoss(enc1)
    assert torch.equal(fl.encoder.layer1[0].weight_orig, torch.load(enc1)["layer1.0.weight_orig"])
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointMismatchError, match="not a degradation encoder"):
        DegradationFeatureLoss(tmp_path / "other.pth")


# ------------------------------------------------------------------------------ issue item 2
def test_constructors_never_read_files(tmp_path, monkeypatch):
    """Building every MSDI network touches no file, even with ./checkpoints/ present (the official
    msdi_net / msdi2_net constructors torch.load ./checkpoints/*.pth)."""
    (tmp_path / "checkpoints").mkdir()
    for name in ("net_E.pth", "prior_upsampling.pth", "net2.pth", "prior_upsampling2.pth"):
        (tmp_path / "checkpoints" / name).write_bytes(b"garbage")
    monkeypatch.chdir(tmp_path)
    opened = []
    real_open, real_io_open = builtins.open, io.open

    def spy(file, *a, **k):
        opened.append(str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(io, "open", spy)
    monkeypatch.setattr(torch, "load", lambda *a, **k: opened.append("torch.load"))
    for name in ("msdi_net", "msdi2_net", "msdi2e", "msdi_encoder", "msdi_prior_upsampling", "msdi2_encoder",
                 "msdi2_prior_upsampling"):
        kw = {"ndf": 4} if "encoder" in name else {"wf": 4} if "prior" in name else dict(TINY)
        build(name, **kw)
    build("msdi_discriminator", ndf=4)
    assert opened == []
    monkeypatch.setattr(builtins, "open", real_open)
    monkeypatch.setattr(io, "open", real_io_open)


def test_whole_v1_network_checkpoint_round_trip(tmp_path):
    net = tiny("msdi_net", seed=5)
    path = tmp_path / "msdi_net.pth"
    torch.save({"params": net.state_dict()}, path)  # the released wrapper
    fresh = load_checkpoint(build("msdi_net", **TINY), path, strict=True)
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in net.state_dict().items())
