"""ASPDC training: the official loss, the albumentations data pipeline, the three recipes from their
configs (1-2 CPU steps on tiny networks), the frozen reblurring network and the stepped scheduler."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from deblurkit.data import DATASETS
from deblurkit.engine import load_config, make_trainer
from deblurkit.engine.recipes.aspdc import imagenet_normalized_mse
from deblurkit.engine.trainer import export_weights
from deblurkit.models import build

from fake_blur_data import make_gopro

REPO = Path(__file__).resolve().parents[1]
TINY_D = ["model.overrides.intermediate_channels=[8,8,8,16]", "model.overrides.num_res=1"]
TINY_R = ["model.overrides.intermediate_channels=[4,4,4,4]"]


def _overrides(root: Path, out: Path, steps: int = 2) -> list[str]:
    return [f"data.train.root={root}", "data.train.patch_size=32", "data.batch_size=2",
            "data.num_workers=0", f"train.total_steps={steps}", f"train.out_dir={out}",
            "train.device=cpu", "train.threads=1", "train.val_every=1000", "train.ckpt_every=1000"]


def _val(root: Path) -> list[str]:
    return [f"data.val.root={root}", "data.val.split=train", "eval.max_images=1"]


@pytest.fixture(scope="module")
def gopro(tmp_path_factory, shared_data) -> Path:
    return make_gopro(tmp_path_factory.mktemp("gopro"), shared_data, n=4)


def test_imagenet_mse_is_the_official_perceptual_loss():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    # networks/losses.py: inputs in [-1, 1] -> (x + 1) / 2 -> Normalize(ImageNet) -> nn.MSELoss
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    fa, fb = ((a * 2 - 1) + 1) / 2, ((b * 2 - 1) + 1) / 2
    want = F.mse_loss((fa - mean) / std, (fb - mean) / std)
    assert torch.allclose(imagenet_normalized_mse(a, b), want, rtol=1e-5)
    with pytest.raises(ValueError, match="N, 3, H, W"):
        imagenet_normalized_mse(a, b[:, :2])


def test_aspdc_dataset_same_transform_on_both_images_and_reproducible(gopro):
    ds = DATASETS["aspdc_paired"](gopro, split="train", patch_size=32, seed=3)
    # feed identical images through the pipeline: any transform applied differently would show
    orig = ds.pairs
    ds.pairs = [(n, g, g) for n, _, g in orig]
    for i in range(len(ds)):
        for epoch in range(4):
            ds.set_epoch(epoch)
            it = ds[i]
            assert it["lq"].shape == (3, 32, 32) and it["lq"].dtype == torch.float32
            assert torch.equal(it["lq"], it["gt"])
    ds.pairs = orig
    ds.set_epoch(0)
    a, b = ds[1], ds[1]
    assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], b["gt"])
    crops = {ds[1]["gt"].sum().item()} | {(ds.set_epoch(e), ds[1]["gt"].sum().item())[1] for e in range(1, 6)}
    assert len(crops) > 1, "augmentation/crop never changes across epochs"
    assert 0.0 <= float(a["lq"].min()) and float(a["lq"].max()) <= 1.0
    with pytest.raises(ValueError, match="scope"):
        DATASETS["aspdc_paired"](gopro, patch_size=32, scope="strong")
    big = DATASETS["aspdc_paired"](gopro, split="train", patch_size=4096, seed=3)
    with pytest.raises(ValueError, match=r"blur.*is smaller than patch_size 4096"):
        big[0]


def test_reblur_config_trains_the_reblurring_network(gopro, tmp_path):
    cfg = load_config(REPO / "configs/aspdc_reblur_gopro.yaml", _overrides(gopro, tmp_path / "r") + TINY_R)
    t = make_trainer(cfg, progress=False)
    before = {k: v.clone() for k, v in t.net.state_dict().items()}
    t.val_set = DATASETS["paired"](gopro, split="train")
    logs = t.fit()
    assert t.step == 2 and torch.isfinite(torch.tensor(logs["loss"]))
    assert any(not torch.equal(before[k], v) for k, v in t.net.state_dict().items())
    assert "val_psnr" in logs and "val_psnr_input" in logs
    assert (tmp_path / "r" / "weights.safetensors").is_file()


def test_deblur_config_trains_without_reblurring(gopro, tmp_path):
    cfg = load_config(REPO / "configs/aspdc_deblur_gopro.yaml",
                      _overrides(gopro, tmp_path / "d") + _val(gopro) + TINY_D)
    t = make_trainer(cfg, progress=False)
    assert t.reblur is None and "reblur" not in t.aux
    before = {k: v.clone() for k, v in t.net.state_dict().items()}
    logs = t.fit()
    assert t.step == 2 and "loss_reblur" not in logs and "val_psnr" in logs
    assert any(not torch.equal(before[k], v) for k, v in t.net.state_dict().items())


@pytest.fixture
def finetune(gopro, tmp_path):
    torch.manual_seed(0)
    r = build("aspdc_reblur", intermediate_channels=(4, 4, 4, 4))
    export_weights(r.state_dict(), tmp_path / "R.safetensors", "aspdc_reblur", {})
    d = build("aspdc", intermediate_channels=(8, 8, 8, 16), num_res=1, official_compat=False, init="xavier")
    export_weights(d.state_dict(), tmp_path / "D.safetensors", "aspdc", {})
    ov = _overrides(gopro, tmp_path / "f", steps=1) + _val(gopro) + TINY_D + [
        f"model.weights={tmp_path / 'D.safetensors'}", f"recipe.reblur_weights={tmp_path / 'R.safetensors'}"]
    cfg = load_config(REPO / "configs/aspdc_finetune_gopro.yaml", ov)
    return make_trainer(cfg, progress=False), r, d


def test_finetune_config_keeps_the_reblurring_network_frozen(finetune):
    t, r, d = finetune
    R = t.aux["reblur"]
    assert not R.training and all(not p.requires_grad for p in R.parameters())
    assert "reblur" not in t.aux_optimizers
    # D starts from the given weights
    assert all(torch.equal(v, d.state_dict()[k]) for k, v in t.net.state_dict().items())
    logs = t.fit()
    assert t.step == 1 and logs["loss_reblur"] > 0
    assert logs["loss"] == pytest.approx(logs["loss_deblur"] + 0.1 * logs["loss_reblur"], rel=1e-5)
    assert not R.training
    for k, v in R.state_dict().items():
        assert torch.equal(v, r.state_dict()[k]), f"frozen reblurring network changed: {k}"
    assert all(p.grad is None for p in R.parameters())
    assert any(not torch.equal(v, d.state_dict()[k]) for k, v in t.net.state_dict().items())


def test_reblurring_term_sends_gradients_into_the_deblurring_network(finetune, gopro):
    t, _, _ = finetune
    batch = next(t._data())
    b = batch["lq"] * 2 - 1
    deblurred, _ = t.net(b)
    loss_b = imagenet_normalized_mse(batch["lq"], (t.aux["reblur"](b, deblurred) + 1) / 2)
    loss_b.backward()
    grads = [p.grad for p in t.net.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    assert all(p.grad is None for p in t.aux["reblur"].parameters())


def test_scheduler_is_stepped_per_200_epochs_and_official_mode_is_constant(gopro, tmp_path):
    cfg = load_config(REPO / "configs/aspdc_deblur_gopro.yaml",
                      _overrides(gopro, tmp_path / "s") + TINY_D + ["data.val=null"])
    t = make_trainer(cfg, progress=False)
    spe = len(t.train_set) // 2
    assert t.steps_per_epoch == spe
    for step, factor in [(0, 1.0), (200 * spe - 1, 1.0), (200 * spe, 0.5), (400 * spe, 0.25)]:
        t.step = step
        assert t.apply_lr() == pytest.approx(1e-5 * factor)
        assert t.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5 * factor)
    t.unstepped = True
    t.step = 400 * spe
    assert t.apply_lr() == pytest.approx(1e-5)


def test_recipe_argument_errors(gopro, tmp_path):
    base = _overrides(gopro, tmp_path / "e") + TINY_D + ["data.val=null"]
    with pytest.raises(ValueError, match="reblur_weights"):
        make_trainer(load_config(REPO / "configs/aspdc_finetune_gopro.yaml", base + ["recipe.reblur_weights=null", "model.weights=null"]),
                     progress=False)
    with pytest.raises(ValueError, match="unknown argument"):
        make_trainer(load_config(REPO / "configs/aspdc_deblur_gopro.yaml", base + ["recipe.lambda_b=0.1"]),
                     progress=False)
    with pytest.raises(ValueError, match="imagenet_mse"):
        make_trainer(load_config(REPO / "configs/aspdc_deblur_gopro.yaml", base + ["loss.0.type=l1"]),
                     progress=False)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        make_trainer(load_config(REPO / "configs/aspdc_finetune_gopro.yaml",
                                 base + [f"recipe.reblur_weights={tmp_path / 'nope.pth'}", "model.weights=null"]),
                     progress=False)
