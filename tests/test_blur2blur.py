"""Blur2Blur's discriminator (patchgan_b2b) and blur-kernel network (kernel_wizard).

Numerical faithfulness is checked by tests/test_parity.py against ../shared/parity; these tests
cover structure, shapes, call forms, errors and the descriptors on small configurations.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import parity_rule as P
from deblurkit.models import build, detect_architecture, get_descriptor, list_models
from deblurkit.models.blur2blur import (
    KernelWizard,
    NLayerDiscriminator,
    infer_kernel_wizard_config,
    infer_patchgan_config,
)

COMMIT = "ee12450c300e1eed9752b4e8a1a487b2a69f833e"
TINY_KW = {"nf": 8, "front_RBs": 1, "back_RBs": 1, "kernel_dim": 64, "n_blocks": 1}


def assert_close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-6, rtol: float = 1e-5) -> None:
    """``torch.allclose`` with a readable message (torch.testing's first call is slow to import)."""
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a, b, atol=atol, rtol=rtol), f"max |a - b| = {float((a - b).abs().max()):.3g}"


def tiny_kw(**kw) -> KernelWizard:
    return build("kernel_wizard", **{**TINY_KW, **kw})


def rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------ registry
def test_registered_in_blur2blur_system():
    assert {"patchgan_b2b", "kernel_wizard"} <= set(list_models())
    assert isinstance(build("patchgan_b2b"), NLayerDiscriminator)
    assert isinstance(tiny_kw(), KernelWizard)


def test_patchgan_descriptor():
    d = get_descriptor("patchgan_b2b")
    assert d.system == "blur2blur" and "Blur2Blur" in d.paper
    assert (d.official.repo, d.official.file, d.official.cls) == (
        "VinAIResearch/Blur2Blur", "models/networks.py", "NLayerDiscriminator")
    assert d.official.commit == COMMIT
    assert d.value_range == (0.0, 1.0) and d.size_multiple == 1
    assert d.input_kinds == ("rgb_list",)
    assert d.defaults == {"input_nc": 3, "ndf": 64, "n_layers": 3, "norm": "instance"}
    assert "list" in d.outputs and "H/8" in d.outputs
    with pytest.raises(TypeError, match="not a restored image"):
        d.primary_output([torch.zeros(1, 1, 6, 6)])


def test_kernel_wizard_descriptor():
    d = get_descriptor("kernel_wizard")
    assert d.system == "blur2blur" and "Blur2Blur" in d.paper and "Kernel Space" in d.paper
    assert d.official.repo == "VinAIResearch/Blur2Blur" and d.official.commit == COMMIT
    assert d.official.file == "models/explore/kernel_encoding/kernel_wizard.py"
    assert d.official.cls == "KernelWizard" and "blur-kernel-space-exploring" in d.official.note
    assert d.value_range == (0.0, 1.0)  # ToTensor / cv2 / 255: no [-1, 1] anywhere
    assert d.size_multiple == 128 and d.input_kinds == ("rgb", "rgb")
    assert "adaptKernel" in d.outputs and "adapt_kernel" in d.outputs
    assert d.defaults["kernel_dim"] == 512 and d.defaults["use_vae"] is False
    with pytest.raises(TypeError, match="kernel code"):
        d.primary_output((torch.zeros(1, 512, 2, 2), torch.zeros(1, 512, 2, 2)))


# ------------------------------------------------------------------------------ PatchGAN
def test_patchgan_official_keys_and_shapes():
    sd = build("patchgan_b2b").state_dict()
    assert [(k, tuple(v.shape)) for k, v in sd.items()] == [
        ("model.0.weight", (64, 3, 4, 4)), ("model.0.bias", (64,)),
        ("model.2.weight", (128, 64, 4, 4)), ("model.2.bias", (128,)),
        ("model.5.weight", (256, 128, 4, 4)), ("model.5.bias", (256,)),
        ("model.8.weight", (512, 256, 4, 4)), ("model.8.bias", (512,)),
        ("model.11.weight", (1, 512, 4, 4)), ("model.11.bias", (1,)),
    ]
    net = build("patchgan_b2b")
    norms = [m for m in net.model if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 3 and all(not m.affine and not m.track_running_stats for m in norms)


def test_patchgan_list_call_returns_list_per_scale():
    torch.manual_seed(0)
    net = build("patchgan_b2b", ndf=8).eval()
    xs = [rand(2, 3, 32, 32, seed=1), rand(2, 3, 64, 64, seed=2), rand(2, 3, 128, 96, seed=3)]
    with torch.no_grad():
        outs = net(xs)
    assert isinstance(outs, list) and len(outs) == 3
    assert [tuple(o.shape) for o in outs] == [(2, 1, 2, 2), (2, 1, 6, 6), (2, 1, 14, 10)]
    with torch.no_grad():
        single = net([xs[1]])  # the fixture's call form
    assert len(single) == 1 and torch.equal(single[0], outs[1])
    assert outs[1].min() < 0 < outs[1].max()  # logits, no sigmoid


def test_patchgan_tensor_argument_iterates_over_batch():
    torch.manual_seed(0)
    net = build("patchgan_b2b", ndf=8).eval()
    x = rand(3, 3, 48, 48, seed=4)
    with torch.no_grad():
        per_sample = net(x)  # official: for each in x -> unbatched (3, H, W) maps (1, h, w)
        batched = net([x])[0]
    assert isinstance(per_sample, list) and len(per_sample) == 3
    assert all(tuple(o.shape) == (1, 4, 4) for o in per_sample)
    # instance norm is per sample, so the unbatched maps equal the batched ones
    for i, o in enumerate(per_sample):
        assert_close(o, batched[i], atol=1e-5, rtol=1e-5)


def test_patchgan_rejects_bad_elements():
    net = build("patchgan_b2b", ndf=8)
    with pytest.raises(ValueError, match=r"net\(\[x\]\)"):
        net([torch.zeros(1, 1, 32, 32)])
    with pytest.raises(ValueError, match="element 1"):
        net([torch.zeros(1, 3, 32, 32), "not a tensor"])


def test_patchgan_norm_variants_and_bias_rule():
    bn = build("patchgan_b2b", norm="batch").state_dict()
    assert "model.3.running_mean" in bn and "model.2.bias" not in bn and "model.0.bias" in bn
    none = build("patchgan_b2b", norm="none").state_dict()
    # official quirk: norm 'none' is a plain function, so inner convs get no bias either
    assert "model.2.bias" not in none and "model.11.bias" in none
    assert len([k for k in none if k.endswith("weight")]) == 5
    with pytest.raises(ValueError, match="norm"):
        build("patchgan_b2b", norm="group")
    with pytest.raises(ValueError):
        build("patchgan_b2b", n_layers=0)


def test_patchgan_n_layers_and_blur2blur_init():
    torch.manual_seed(0)
    net = build("patchgan_b2b", n_layers=5, init="normal")
    convs = [m for m in net.model if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 512, 512, 1]  # min(2^n, 8) * ndf
    w = torch.cat([c.weight.detach().flatten() for c in convs])
    assert abs(float(w.std()) - 0.02) < 1e-3 and abs(float(w.mean())) < 1e-3
    assert all(float(c.bias.detach().abs().max()) == 0.0 for c in convs)


def test_infer_patchgan_config_and_detection():
    for ov in ({}, {"ndf": 16, "n_layers": 2}, {"norm": "batch"}, {"norm": "none", "input_nc": 1}):
        sd = build("patchgan_b2b", **ov).state_dict()
        cfg = infer_patchgan_config(sd)
        assert cfg == {**get_descriptor("patchgan_b2b").defaults, **ov}
    assert infer_patchgan_config({"x.weight": torch.zeros(2, 2)}) == {}
    sd = build("patchgan_b2b", ndf=16).state_dict()
    name, ov = detect_architecture(sd)[0]
    assert (name, ov) == ("patchgan_b2b", {"ndf": 16})
    build(name, **ov).load_state_dict(sd, strict=True)


# ------------------------------------------------------------------------------ KernelWizard
def test_kernel_wizard_official_structure():
    net = build("kernel_wizard")
    sd = net.state_dict()
    tops = list(dict.fromkeys(k.split(".")[0] for k in sd))
    assert tops == ["feature_extractor", "kernel_extractor", "adapter", "recon_trunk"]
    assert len(sd) == 159
    # norm 'none': the extractor's convolutions and the adapter's inner ones have no bias ...
    assert not any(k.endswith("bias") for k in sd if k.startswith("kernel_extractor."))
    adapter_bias = [k for k in sd if k.startswith("adapter.") and k.endswith("bias")]
    assert adapter_bias == ["adapter.model.up.1.bias"]  # ... only the outermost ConvTranspose
    inner = "adapter.model" + ".submodule" * 4
    assert sd[inner + ".down.1.weight"].shape == (512, 512, 4, 4)
    assert sd[inner + ".up.1.weight"].shape == (1024, 512, 4, 4)  # 512 features + 512 kernel code
    assert sd["kernel_extractor.model.1.weight"].shape == (64, 128, 7, 7)  # sharp + blur features
    assert sd["kernel_extractor.model.22.conv_block.5.weight"].shape == (512, 512, 3, 3)
    assert sd["recon_trunk.28.weight"].shape == (3, 64, 3, 3)
    assert isinstance(net.adapter.model.up[2], nn.Tanh)
    n_params = sum(p.numel() for p in net.parameters())
    assert n_params == 49_205_187


def test_kernel_wizard_extract_shapes_and_zero_sigma():
    torch.manual_seed(0)
    net = tiny_kw().eval()
    sharp, blur = rand(2, 3, 256, 384, seed=1), rand(2, 3, 256, 384, seed=2)
    with torch.no_grad():
        out = net(sharp, blur)
    assert isinstance(out, tuple) and len(out) == 2
    mean, sigma = out
    assert tuple(mean.shape) == (2, 64, 2, 3) == (2, *net.kernel_shape(256, 384))
    assert torch.equal(sigma, torch.zeros_like(mean)) and sigma.device == mean.device
    assert float(mean.abs().max()) > 0
    with torch.no_grad():
        swapped, _ = net(blur, sharp)  # the kernel depends on which image is the sharp one
    assert not torch.allclose(swapped, mean)


def test_kernel_wizard_vae_splits_mean_and_sigma():
    torch.manual_seed(0)
    net = tiny_kw(use_vae=True).eval()
    assert net.state_dict()["kernel_extractor.model.16.weight"].shape[0] == 128  # 2 * kernel_dim
    with torch.no_grad():
        mean, sigma = net(rand(1, 3, 256, 256, seed=1), rand(1, 3, 256, 256, seed=2))
        full = net.kernel_extractor.model(
            torch.cat([net.feature_extractor(rand(1, 3, 256, 256, seed=1)),
                       net.feature_extractor(rand(1, 3, 256, 256, seed=2))], 1))
    assert mean.shape == sigma.shape == (1, 64, 2, 2)
    assert torch.equal(mean, full[:, :64]) and torch.equal(sigma, full[:, 64:])


def test_adapt_kernel_shape_alias_and_residual():
    torch.manual_seed(0)
    net = tiny_kw().eval()
    x = rand(2, 3, 256, 256, seed=3)
    k = torch.randn(2, 64, 2, 2, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        a = net.adaptKernel(x, k)
        b = net.adapt_kernel(x, k)
        c = net.adaptKernel(x, 2 * k)
    assert tuple(a.shape) == (2, 3, 256, 256)
    assert torch.equal(a, b)  # snake_case alias of the official name
    assert not torch.allclose(a, c)  # the kernel code changes the blur
    # output = x_sharp + recon_trunk(...): a zero last conv leaves the sharp image unchanged
    last = net.recon_trunk[-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    with torch.no_grad():
        assert torch.equal(net.adapt_kernel(x, k), x)


def test_blur2blur_pipeline_extract_then_reblur():
    """Blur2BlurModel.set_input: kernel = mean + sigma * randn; real_B = adaptKernel(real_B, kernel)."""
    torch.manual_seed(0)
    net = tiny_kw().eval()
    sharp_known, blur_known, sharp_unknown = (rand(1, 3, 256, 256, seed=s) for s in (5, 6, 7))
    with torch.no_grad():
        mean, sigma = net(sharp_known, blur_known)
        kernel = mean + sigma * torch.randn_like(mean)
        reblurred = net.adaptKernel(sharp_unknown, kernel)
    assert torch.equal(kernel, mean)  # use_vae=False: sigma is 0
    assert reblurred.shape == sharp_unknown.shape and torch.isfinite(reblurred).all()


def test_kernel_wizard_input_errors():
    net = tiny_kw()
    x = torch.zeros(1, 3, 256, 256)
    with pytest.raises(ValueError, match="multiples of 128"):
        net.adaptKernel(torch.zeros(1, 3, 200, 256), torch.zeros(1, 64, 2, 2))
    with pytest.raises(ValueError, match="kernel must be"):
        net.adapt_kernel(x, torch.zeros(1, 64, 4, 4))
    with pytest.raises(ValueError, match="differ"):
        net(x, torch.zeros(1, 3, 384, 256))
    with pytest.raises(ValueError, match="too small"):
        net(torch.zeros(1, 3, 128, 128), torch.zeros(1, 3, 128, 128))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        net(torch.zeros(3, 256, 256), torch.zeros(3, 256, 256))
    with pytest.raises(ValueError):
        tiny_kw(extractor_norm="group")
    with pytest.raises(ValueError):
        tiny_kw(padding_type="circular")


def test_residual_blocks_use_official_init():
    torch.manual_seed(0)
    net = build("kernel_wizard", nf=32, front_RBs=4, back_RBs=4, kernel_dim=256, n_blocks=1)
    w = torch.cat([b.conv1.weight.detach().flatten() for b in net.feature_extractor[6:]])
    expected_std = math.sqrt(2.0 / (32 * 9)) * 0.1  # kaiming_normal(fan_in) x 0.1
    assert abs(float(w.std()) / expected_std - 1) < 0.05
    assert float(net.recon_trunk[0].conv2.bias.detach().abs().max()) == 0.0
    plain = build("kernel_wizard", nf=32, front_RBs=4, back_RBs=4, kernel_dim=256, n_blocks=1, init_scale=None)
    assert float(plain.recon_trunk[0].conv2.bias.detach().abs().max()) > 0.0  # PyTorch default init


def test_infer_kernel_wizard_config_and_detection():
    for ov in ({}, TINY_KW, {**TINY_KW, "use_vae": True}):
        sd = build("kernel_wizard", **ov).state_dict()
        cfg = infer_kernel_wizard_config(sd)
        full = {**get_descriptor("kernel_wizard").defaults, **ov}
        assert {k: full[k] for k in cfg} == cfg
        assert set(cfg) == {"input_nc", "nf", "front_RBs", "back_RBs", "n_blocks", "kernel_dim", "use_vae"}
    sd = tiny_kw().state_dict()
    name, ov = detect_architecture(sd)[0]
    assert name == "kernel_wizard"
    build(name, **ov).load_state_dict(sd, strict=True)


def test_fixture_call_forms_resolve_on_our_networks(parity_dir):
    """The recorded official calls name methods our networks have, with the same arity."""
    pg = P.load_fixture(parity_dir / "patchgan_b2b.pt")
    form = P.parse_call(pg["official"]["call"])
    assert form.method is None
    args, _ = form.resolve({"x": rand(1, 3, 64, 64)})
    assert isinstance(args[0], list)  # net([x])
    out = build("patchgan_b2b", ndf=8).eval()(*args)
    assert isinstance(out, list) and tuple(out[0].shape) == tuple(pg["outputs"]["out0"].shape)

    kw = P.load_fixture(parity_dir / "kernel_wizard.pt")
    assert set(kw["calls"]) == {"extract", "adapt"}
    net = build("kernel_wizard")
    for call in kw["calls"].values():
        form = P.parse_call(call)
        target = net if form.method is None else getattr(net, form.method)
        assert callable(target)
    assert P.parse_call(kw["calls"]["adapt"]).method == "adaptKernel"
