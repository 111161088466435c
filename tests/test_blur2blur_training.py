"""Blur2Blur training: unaligned data, losses, the converter and kernel_wizard recipes, configs."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from deblurkit.data import DATASETS, open_layout
from deblurkit.data.unaligned import UnalignedDataset
from deblurkit.engine import lr_at, load_config, make_trainer, validate_config
from deblurkit.engine.recipes.blur2blur import gradient_penalty, hinge_loss, load_kernel_wizard
from deblurkit.engine.trainer import export_weights
from deblurkit.io import read_image, save_image
from deblurkit.models import build
from deblurkit.synth.blur import blur
from deblurkit.synth.kernels import levin_kernels

REPO = Path(__file__).resolve().parents[1]
TINY_KW = {"nf": 4, "front_RBs": 1, "back_RBs": 1, "kernel_dim": 8, "n_blocks": 1, "padding_type": "zero"}


@pytest.fixture(scope="module")
def layout(tmp_path_factory, shared_data):
    """A small real unaligned layout: crops of real photos; C = D blurred with Levin kernels."""
    root = tmp_path_factory.mktemp("b2b")
    photos = sorted((shared_data / "photos" / "classic").glob("*.png"))[:6]
    k = list(levin_kernels(shared_data / "kernels" / "levin09_kernels.npz").values())
    for i, p in enumerate(photos):
        img = read_image(p)[:, :160, :160]
        save_image(root / "trainA" / f"a{i}.png", blur(img[None], k[i % 8])[0])
        save_image(root / "trainB" / f"b{i}.png", img.flip(-1))
        save_image(root / "trainD" / f"p{i}.png", img)
        save_image(root / "trainC" / f"p{i}.png", blur(img[None], k[(i + 3) % 8])[0])
        save_image(root / "testA" / f"t{i}.png", blur(img[None], k[i % 8])[0])
        save_image(root / "testB" / f"t{i}.png", img)
    return root


@pytest.fixture(scope="module")
def kw_weights(tmp_path_factory):
    torch.manual_seed(0)
    net = build("kernel_wizard", **TINY_KW)
    with torch.no_grad():  # larger random weights: a kernel code far from zero
        for prm in net.parameters():
            prm.normal_(0.0, 0.3)
    path = tmp_path_factory.mktemp("kw") / "kw.safetensors"
    export_weights(net.state_dict(), path, "kernel_wizard", TINY_KW)
    return path


def converter_cfg(root, kw, out_dir, **over):
    raw = load_config(REPO / "configs" / "blur2blur_converter_rb2v2gopro.yaml", [
        f"data.train.root={root}", "data.train.load_size=null", "data.train.crop_size=128",
        "data.train.ratio=null", "data.batch_size=4", "data.num_workers=0",
        "model.overrides.base_channel=4", "model.overrides.num_res=1",
        "recipe.discriminator.ndf=4", f"recipe.kernel_wizard={kw}", "recipe.vgg_weights=null",
        "recipe.vgg_random_init=true", "train.total_steps=2", "schedule.decay_steps=1",
        f"train.out_dir={out_dir}", "train.device=cpu", "train.ckpt_every=2", "train.log_every=1",
        *[f"{k}={v}" for k, v in over.items()],
    ]).to_dict()
    return validate_config(raw, "tiny")


# ---------------------------------------------------------------- data
def test_unaligned_dataset_official_split_and_aligned_known_pair(layout):
    ds = DATASETS["unaligned"](layout, load_size=None, crop_size=128, ratio=0.5, seed=1)
    assert [p.name for p in ds.a_paths] == ["a0.png", "a1.png", "a2.png"]  # first half, sorted
    assert [p.name for p in ds.b_paths] == ["b3.png", "b4.png", "b5.png"]  # last half
    assert len(ds) == 3
    it = ds[1]
    assert all(it[k].shape == (3, 128, 128) for k in "ABCD")
    assert it["name"] == "a1.png"
    # C and D come from the same file and the same crop window: D blurred with C's kernel is C
    name = it["names"].split("|")[2]
    full_c = read_image(layout / "trainC" / name)
    hits = [(t, l) for t in range(33) for l in range(33)
            if torch.allclose(full_c[:, t:t + 128, l:l + 128], it["C"])]
    assert len(hits) == 1
    t, l = hits[0]
    assert torch.equal(read_image(layout / "trainD" / name)[:, t:t + 128, l:l + 128], it["D"])
    # deterministic per (seed, epoch, index); set_epoch changes the draw
    assert torch.equal(ds[1]["B"], it["B"])
    ds.set_epoch(5)
    assert any(not torch.equal(ds[1][k], it[k]) for k in "BCD")


def test_unaligned_pair_index_modes(layout):
    off = UnalignedDataset(layout, load_size=None, crop_size=64, ratio=0.5, pair_index="official", seed=2)
    for i in range(6):
        it = off[i]
        b = int(it["names"].split("|")[1][1])
        c = int(it["names"].split("|")[2][1])
        assert c == b - 3  # the known pair reuses B's index into the (last-half) B list
    ind = UnalignedDataset(layout, load_size=None, crop_size=64, ratio=None, seed=2)
    picked = {ind[i]["names"].split("|")[2] for i in range(6) for _ in range(1)}
    ind.set_epoch(1)
    picked |= {ind[i]["names"].split("|")[2] for i in range(6)}
    assert len(picked) >= 4  # pairs drawn over all of trainC/trainD


def test_unaligned_errors_name_the_folder(tmp_path, layout):
    with pytest.raises(FileNotFoundError, match="trainA"):
        UnalignedDataset(tmp_path)
    (tmp_path / "trainA").mkdir()
    with pytest.raises(ValueError, match="no images"):
        UnalignedDataset(tmp_path)
    with pytest.raises(ValueError, match="crop_size"):
        UnalignedDataset(layout, load_size=None, crop_size=512, ratio=None)[0]
    with pytest.raises(ValueError, match="pair_index"):
        UnalignedDataset(layout, pair_index="same")


def test_resize_and_crop_uses_shorter_side(layout):
    ds = UnalignedDataset(layout, load_size=140, crop_size=128, ratio=None, flip=False)
    assert ds[0]["A"].shape == (3, 128, 128)


def test_evaluation_layout_and_known_pairs(layout):
    ev = open_layout("blur2blur", layout, "test")
    assert len(ev) == 6 and ev[0]["lq"].shape == ev[0]["gt"].shape == (3, 160, 160)
    kp = DATASETS["blur2blur_known"](layout, patch_size=128)
    it = kp[0]
    assert it["lq"].shape == it["gt"].shape == (3, 128, 128)


# ---------------------------------------------------------------- losses and schedule
def test_hinge_terms():
    x = [torch.tensor([[-2.0, 0.5]]), torch.tensor([[3.0]])]
    # real: mean(relu(1 - x)) per scale = (3 + 0.5)/2 and 0 -> mean 0.875
    assert hinge_loss(x, True).item() == pytest.approx(0.875)
    # fake: mean(relu(1 + x)) = (0 + 1.5)/2 and 4 -> 2.375
    assert hinge_loss(x, False).item() == pytest.approx(2.375)
    assert hinge_loss(x, True, for_discriminator=False).item() == pytest.approx((0.75 + (-3.0)) / 2)
    with pytest.raises(ValueError):
        hinge_loss(x, False, for_discriminator=False)


def test_gradient_penalty_batched_equals_per_sample():
    torch.manual_seed(0)
    net = build("patchgan_b2b", ndf=4, init="normal")
    real, fake = torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32)
    torch.manual_seed(1)
    gp = gradient_penalty(net, real, fake, 1.0)
    torch.manual_seed(1)
    alpha = torch.rand(4, 1, 1, 1)
    per = []
    for n in range(4):
        x = (alpha[n] * real[n:n + 1] + (1 - alpha[n]) * fake[n:n + 1]).requires_grad_(True)
        (g,) = torch.autograd.grad(net([x])[0].sum(), x)  # instance norm: samples are independent
        per.append((g.flatten().norm() - 1) ** 2)
    assert gp.item() == pytest.approx(torch.stack(per).mean().item(), rel=1e-5)
    gp.backward()  # differentiable w.r.t. the discriminator (create_graph)
    assert net.model[0].weight.grad is not None and net.model[0].weight.grad.abs().sum() > 0
    assert gradient_penalty(net, real, fake, 0.0).item() == 0.0


def test_linear_schedule_is_pix2pix_policy():
    kw = dict(base_lr=2e-4, total_steps=300, kind="linear", decay_steps=200)
    assert lr_at(0, **kw) == lr_at(98, **kw) == 2e-4
    # pix2pix: 1 - max(0, e + 1 - n_const) / (n_decay + 1)
    for e in (99, 150, 299):
        assert lr_at(e, **kw) == pytest.approx(2e-4 * (1 - max(0, e + 1 - 100) / 201))
    assert lr_at(299, **kw) > 0
    assert lr_at(10, base_lr=1.0, total_steps=30, kind="linear") == pytest.approx(1 - 1 / 21)


# ---------------------------------------------------------------- recipes
def test_converter_step_batch4_updates_g_and_d_not_kernel_wizard(layout, kw_weights, tmp_path):
    tr = make_trainer(converter_cfg(layout, kw_weights, tmp_path / "run"), progress=False)
    assert tr.cfg.data.batch_size == 4
    # the generator and the discriminator start from the official N(0, 0.02) initialisation
    for net in (tr.net, tr.aux["netD"]):
        convs = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, torch.nn.Conv2d)])
        assert abs(convs.std().item() - 0.02) < 0.002 and abs(convs.mean().item()) < 0.002
    g0 = {k: v.clone() for k, v in tr.net.state_dict().items()}
    d0 = {k: v.clone() for k, v in tr.aux["netD"].state_dict().items()}
    k0 = {k: v.clone() for k, v in tr.aux["kernel_wizard"].state_dict().items()}
    assert not any(p.requires_grad for p in tr.aux["kernel_wizard"].parameters())
    logs = tr.fit()
    for k in ("G_GAN", "G_Perc", "D_real", "D_fake", "D_gp"):
        assert math.isfinite(logs[k])
    assert logs["G_Perc"] > 0 and logs["D_gp"] >= 0
    assert any(not torch.equal(g0[k], v) for k, v in tr.net.state_dict().items())
    assert any(not torch.equal(d0[k], v) for k, v in tr.aux["netD"].state_dict().items())
    assert all(torch.equal(k0[k], v) for k, v in tr.aux["kernel_wizard"].state_dict().items())
    assert (tmp_path / "run" / "weights.safetensors").is_file()
    assert tr.aux_optimizers["netD"].param_groups[0]["betas"] == (0.5, 0.999)


def test_real_sample_is_b_reblurred_with_kernel_of_known_pair(layout, kw_weights, tmp_path):
    tr = make_trainer(converter_cfg(layout, kw_weights, tmp_path / "r2"), progress=False)
    kw = load_kernel_wizard(kw_weights)
    b, c, d = (torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(i)) for i in range(3))
    got = tr.reblur_known(b, c, d)
    assert not got.requires_grad
    mean, _ = kw(d, c)  # kernel from (sharp_known=D, blur_known=C); sigma is zero without VAE
    assert torch.allclose(got, kw.adaptKernel(b, mean), atol=1e-6)
    assert not torch.allclose(got, kw.adaptKernel(b, kw(c, d)[0]), atol=1e-6)


def test_converter_recipe_requires_weights(layout, kw_weights, tmp_path):
    cfg = converter_cfg(layout, kw_weights, tmp_path / "r3", **{"recipe.vgg_random_init": "false"})
    with pytest.raises(ValueError, match="vgg_weights"):
        make_trainer(cfg, progress=False)
    cfg = converter_cfg(layout, tmp_path / "missing.safetensors", tmp_path / "r4")
    with pytest.raises(FileNotFoundError, match="kernel_wizard"):
        make_trainer(cfg, progress=False)


def test_kernel_wizard_config_trains_and_reblurs(layout, tmp_path):
    cfg = load_config(REPO / "configs" / "blur2blur_kernel_wizard_gopro.yaml", [
        f"data.train.root={layout}", "data.train.patch_size=128", "data.batch_size=2",
        "data.num_workers=0", f"data.val={{type: blur2blur_known, root: {layout}, patch_size: 256, augment: false}}",
        *[f"model.overrides.{k}={v}" for k, v in TINY_KW.items()],
        "train.total_steps=2", "train.val_every=2", "train.ckpt_every=2", f"train.out_dir={tmp_path / 'kw'}",
        "train.device=cpu", "eval.max_images=1",
    ])
    with pytest.raises(ValueError, match="smaller than patch_size"):
        make_trainer(cfg, progress=False).fit()  # 160-pixel images cannot give 256-pixel validation crops
    cfg.data.val["patch_size"] = None
    cfg.train.out_dir = str(tmp_path / "kw2")
    tr = make_trainer(cfg, progress=False)
    w0 = {k: v.clone() for k, v in tr.net.state_dict().items()}
    with pytest.raises(ValueError, match="at least 256"):
        tr.fit()
    assert any(not torch.equal(w0[k], v) for k, v in tr.net.state_dict().items())


def test_kernel_wizard_recipe_loss_is_summed_charbonnier(layout, tmp_path):
    cfg = load_config(REPO / "configs" / "blur2blur_kernel_wizard_gopro.yaml", [
        f"data.train.root={layout}", "data.train.patch_size=128", "data.batch_size=2",
        "data.num_workers=0", *[f"model.overrides.{k}={v}" for k, v in TINY_KW.items()],
        "train.total_steps=1", f"train.out_dir={tmp_path / 'kw'}", "train.device=cpu",
    ])
    tr = make_trainer(cfg, progress=False)
    batch = {"lq": torch.rand(2, 3, 128, 128), "gt": torch.rand(2, 3, 128, 128)}
    with torch.no_grad():
        mean, _ = tr.net(batch["gt"], batch["lq"])
        fake = tr.net.adaptKernel(batch["gt"], mean)
        want = torch.sqrt((fake - batch["lq"]) ** 2 + 1e-6).sum().item() / 2
    logs = tr.train_step(batch)
    assert logs["l_pix"] == pytest.approx(want, rel=1e-5)
    assert tr.step == 1
    assert tr.optimizer.param_groups[0]["betas"] == (0.9, 0.99)


@pytest.mark.parametrize("content", ["l1", "perceptual"])
def test_cpu_experiment_configs_run(layout, kw_weights, tmp_path, content):
    over = [f"data.train.root={layout}", "data.train.crop_size=128", "data.batch_size=2",
            "train.total_steps=1", f"train.out_dir={tmp_path / 'c'}", "train.device=cpu",
            f"recipe.kernel_wizard={kw_weights}", f"recipe.content_loss={content}"]
    if content == "perceptual":
        over.append("recipe.vgg_random_init=true")
    cfg = load_config(REPO / "configs" / "blur2blur_converter_defocus2synthphotos.yaml", over)
    logs = make_trainer(cfg, progress=False).fit()
    assert math.isfinite(logs["G_Perc"]) and logs["G_Perc"] > 0 and logs["D_gp"] == 0.0
    kcfg = load_config(REPO / "configs" / "blur2blur_kernel_wizard_synthphotos.yaml", [
        f"data.train.root={layout}", "data.batch_size=2", "train.total_steps=1",
        f"train.out_dir={tmp_path / 'k'}", "train.device=cpu"])
    if content == "l1":
        assert math.isfinite(make_trainer(kcfg, progress=False).fit()["l_pix"])
    with pytest.raises(ValueError, match="content_loss"):
        make_trainer(load_config(REPO / "configs" / "blur2blur_converter_defocus2synthphotos.yaml",
                                 over[:-1] + ["recipe.content_loss=ssim", f"train.out_dir={tmp_path / 'x'}"]),
                     progress=False)


def test_known_blur_oracle_reblurs_b_with_a_known_kernel(layout, tmp_path, shared_data):
    levin = shared_data / "kernels" / "levin09_kernels.npz"
    cfg = converter_cfg(layout, tmp_path / "unused.safetensors", tmp_path / "o",
                        **{"recipe.known_blur": f"{{levin_path: {levin}, noise_sigma: 0.0}}"})
    tr = make_trainer(cfg, progress=False)
    assert "kernel_wizard" not in tr.aux
    b = read_image(layout / "trainB" / "b0.png")[None, :, :128, :128]
    got = tr.reblur_known(b, None, None)
    cands = []
    for k in levin_kernels(levin).values():
        for code in range(8):
            kk = torch.rot90(k, code % 4, dims=(-2, -1))
            kk = kk.flip(-1) if code >= 4 else kk
            cands.append(torch.round(blur(b, kk.float(), "reflect").clamp(0, 1) * 255) / 255)
    errs = sorted(float((c - got).abs().max()) for c in cands)
    assert errs[0] < 1e-6 < errs[1]  # exactly one known kernel/orientation explains it
    with pytest.raises(ValueError, match="known_blur"):
        make_trainer(converter_cfg(layout, tmp_path / "u.safetensors", tmp_path / "o2",
                                   **{"recipe.known_blur": "{sigma: 1}"}), progress=False)


def test_kernel_wizard_training_pass_goes_through_ddp(tmp_path):
    """The kernel_wizard recipe's re-blurring pass is one ``forward(..., reblur=True)`` call, so a
    DistributedDataParallel wrapper (which only forwards ``forward``) runs it and syncs its
    gradients; the result equals extract-then-adaptKernel with the same noise."""
    import socket

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from deblurkit.models import build

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        net = build("kernel_wizard", nf=8, front_RBs=1, back_RBs=1, kernel_dim=16, n_blocks=1)
        ddp = DistributedDataParallel(net)
        g = torch.Generator().manual_seed(1)
        sharp, blurry = torch.rand(2, 3, 256, 256, generator=g), torch.rand(2, 3, 256, 256, generator=g)
        torch.manual_seed(5)
        fake, mean, sigma = ddp(sharp, blurry, reblur=True)
        fake.mean().backward()
        assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
        with torch.no_grad():
            torch.manual_seed(5)
            m, sd = net(sharp, blurry)
            ref = net.adaptKernel(sharp, m + sd * torch.randn_like(m))
        assert torch.allclose(fake.detach(), ref, atol=1e-6)
    finally:
        dist.destroy_process_group()
