"""ASPDC networks (deblurkit.models.aspdc): registry entries, shapes, the official-compatibility
mode of the dilation-0 branch, the reblurring network and its dynamic filtering.

Parity with the official networks runs in tests/test_parity.py (fixtures aspdc.pt, aspdc_reblur.pt).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import parity_rule as P
from deblurkit.models import build, get_descriptor, list_models
from deblurkit.models.aspdc import (
    BlurringNet,
    DeblurringNet,
    DynamicConv,
    HallucinationModule,
    HallucinationResBlock,
    infer_aspdc_config,
    infer_aspdc_reblur_config,
    mmcv_raw_read,
)

TINY = {"intermediate_channels": (4, 6, 8, 16), "num_res": 1}
TINY_REBLUR = {"intermediate_channels": (4, 6, 8, 10, 20, 40)}


def _randomise(net: torch.nn.Module, seed: int = 0, scale: float = 0.3) -> torch.nn.Module:
    """Non-zero weights everywhere (the official init zeroes the offset/mask predictors)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return net


def _image(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ------------------------------------------------------------------ registry
def test_registered_with_descriptors():
    assert {"aspdc", "aspdc_reblur"} <= set(list_models())
    d = get_descriptor("aspdc")
    assert d.system == "aspdc" and "Atrous Spatial Pyramid Deformable" in d.paper
    assert (d.official.repo, d.official.file, d.official.cls) == ("Dong-Huo/ASPDC", "networks/sub_networks.py", "DeblurringNet")
    assert d.official.commit.startswith("b0cf2c3")
    assert d.value_range == (-1.0, 1.0) and d.size_multiple == 4 and d.input_kinds == ("rgb",)
    assert d.defaults == {"official_compat": True}
    out, res = torch.ones(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
    assert d.primary_output((out, res)) is out  # the deblurred image, not the last element (residual)
    r = get_descriptor("aspdc_reblur")
    assert r.system == "aspdc" and r.official.cls == "BlurringNet"
    assert r.value_range == (-1.0, 1.0) and r.size_multiple == 8 and r.input_kinds == ("rgb", "rgb")


@pytest.mark.parametrize("name", ["aspdc", "aspdc_reblur"])
def test_official_keys_and_shapes_match_fixture_spec(parity_dir, name):
    fx = P.load_fixture(parity_dir / f"{name}.pt")
    with torch.device("meta"):
        net = build(name)
    got = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
    assert got == [(k, tuple(s)) for k, s, _ in fx["spec"]]  # same keys, shapes and order
    assert not list(net.buffers())  # the official norm_layer is never instantiated


def test_official_default_init():
    net = build("aspdc", **TINY)
    blk = net.en_res_group1_2
    assert blk.hallucination_d1.hallucination_conv.p_conv.weight.abs().sum() == 0  # zeroed in DeformConv
    assert blk.hallucination_d0.m_conv.weight.abs().sum() == 0
    x = build("aspdc", init="xavier", **TINY).en_res_group1_2
    assert x.hallucination_d1.hallucination_conv.p_conv.weight.abs().sum() > 0  # weights_init_xavier overrides
    assert x.hallucination_d1.hallucination_conv.p_conv.bias.abs().sum() == 0  # biases untouched
    with pytest.raises(ValueError, match="init"):
        build("aspdc", init="kaiming")


def test_infer_config_round_trip():
    sd = build("aspdc", **TINY).state_dict()
    cfg = infer_aspdc_config(sd)
    assert cfg["intermediate_channels"][:3] == (4, 6, 8) and cfg["num_res"] == 1
    assert list(build("aspdc", **cfg).state_dict()) == list(sd)
    sd_r = build("aspdc_reblur", **TINY_REBLUR).state_dict()
    cfg_r = infer_aspdc_reblur_config(sd_r)
    assert cfg_r["intermediate_channels"][:4] == (4, 6, 8, 10) and cfg_r["intermediate_kernels"] == 3
    assert infer_aspdc_config({"x": torch.zeros(1)}) == {} and infer_aspdc_reblur_config({}) == {}


# ------------------------------------------------------------------ deblurring network
@pytest.mark.parametrize("compat", [True, False])
def test_deblurring_shapes_and_residual(compat):
    net = _randomise(build("aspdc", official_compat=compat, **TINY)).eval()
    rgb = _image(2, 3, 16, 20)
    with torch.no_grad():
        out, res = net(rgb)
        out2, res2, maps = net.forward_with_maps(rgb)
    assert out.shape == res.shape == (2, 3, 16, 20)
    assert torch.equal(out, rgb + res)  # global residual, no clamp
    assert torch.isfinite(out).all() and res.abs().max() > 0
    assert torch.equal(out, out2) and len(maps) == 6
    assert all(m.shape == (2, 3 * 18, 4, 5) for m in maps)  # offsets of dilations 1, 2, 4


def test_fixed_mode_differs_only_in_the_dilation0_branch():
    compat = _randomise(HallucinationResBlock(8, 8, official_compat=True), seed=3).eval()
    fixed = HallucinationResBlock(8, 8, official_compat=False).eval()
    fixed.load_state_dict(compat.state_dict(), strict=True)  # same keys and shapes
    assert compat.hallucination_d0.m_conv.padding == (0, 0) and fixed.hallucination_d0.m_conv.padding == (1, 1)
    x = _image(2, 8, 6, 7, seed=4)
    with torch.no_grad():
        oc, mc, wc = compat.branches(x)
        of, mf, wf = fixed.branches(x)
    for i in (1, 2, 3):
        assert torch.equal(oc[i], of[i])
    assert all(torch.equal(a, b) for a, b in zip(mc, mf)) and torch.equal(wc, wf)
    assert (oc[0] - of[0]).abs().max() > 1e-3  # only the dilation-0 branch differs
    with torch.no_grad():
        assert not torch.allclose(compat(x)[0], fixed(x)[0])


def _masked_conv(res, mask, weight, bias):
    """out = bias + sum_{c,i,j} W[o,c,i,j] * mask[i*3+j] * res_pad[c, y+i, x+j] (padding 1)."""
    n, c, h, w = res.shape
    cols = F.unfold(res, 3, padding=1).view(n, c, 9, h * w) * mask.reshape(n, 1, 9, h * w)
    return (weight.view(weight.shape[0], -1) @ cols.view(n, c * 9, h * w)).view(n, -1, h, w) + bias.view(1, -1, 1, 1)


@pytest.mark.parametrize("compat", [True, False])
def test_dilation0_branch_reads_the_mask_as_mmcv(compat):
    mod = _randomise(HallucinationModule(5, 4, 0, official_compat=compat), seed=5).eval()
    res = _image(2, 5, 6, 7, seed=6)
    n, _, h, w = res.shape
    with torch.no_grad():
        out, offset_map = mod(res)
        m_logits = F.conv2d(res, mod.m_conv.weight, mod.m_conv.bias, padding=0 if compat else 1)
    assert offset_map == 0
    if compat:
        assert m_logits.shape == (2, 9, h - 2, w - 2)
        flat = torch.sigmoid(m_logits).reshape(-1)
        mask = torch.zeros(n * 9 * h * w)
        mask[: flat.numel()] = flat  # C-order values laid over (sample, tap, row, col), then zeros
        mask = mask.view(n, 9, h, w)  # sample 0 continues into sample 1's values (batch 2 here)
    else:
        assert m_logits.shape == (2, 9, h, w)
        mask = torch.sigmoid(m_logits)
    want = _masked_conv(res, mask, mod.dconv.weight, mod.dconv.bias)
    assert torch.allclose(out, want, atol=1e-5)


def test_mmcv_raw_read():
    t = torch.arange(1, 2 * 9 * 2 * 3 + 1, dtype=torch.float32).view(2, 9, 2, 3)
    r = mmcv_raw_read(t, (2, 9, 4, 5))
    assert r.shape == (2, 9, 4, 5)
    assert torch.equal(r.reshape(-1)[: t.numel()], t.reshape(-1))
    assert (r.reshape(-1)[t.numel():] == 0).all()
    assert torch.equal(mmcv_raw_read(t, (3, 4)), t.reshape(-1)[:12].view(3, 4))  # long enough: truncate
    assert (mmcv_raw_read(t, (2, 9, 4, 5), fill=7.0).reshape(-1)[t.numel():] == 7).all()


def test_compat_mode_changes_the_official_result(parity_dir):
    """The fixture needs the emulation: the fixed branch is far outside its tolerance."""
    fx = P.load_fixture(parity_dir / "aspdc.pt")
    sd = P.rebuild_state_dict(fx["spec"], fx["salt"])
    net = build("aspdc", official_compat=False)
    net.load_state_dict(sd, strict=True)
    net.eval()
    with torch.no_grad():
        out, _ = net(fx["inputs"]["rgb"])
    err = (out - fx["outputs"]["out0"]).abs().max()
    assert err > 100 * fx["tolerance"]["atol"]


def test_gradients_reach_offsets_and_mask_predictors():
    net = _randomise(build("aspdc", official_compat=False, **TINY), seed=7, scale=0.1)
    rgb = _image(1, 3, 16, 16, seed=8)
    out, _ = net(rgb)
    out.square().mean().backward()
    blk = net.de_res_group1_2
    for p in (blk.hallucination_d3.hallucination_conv.p_conv.weight,
              blk.hallucination_d3.hallucination_conv.m_conv.weight,
              blk.hallucination_d0.m_conv.weight, blk.hallucination_d0.dconv.weight, net.head[0].weight):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_chunking_does_not_change_the_network():
    big = _randomise(build("aspdc", **TINY), seed=9).eval()
    small = build("aspdc", max_chunk_elems=100, **TINY).eval()
    small.load_state_dict(big.state_dict())
    rgb = _image(1, 3, 16, 24, seed=10)
    with torch.no_grad():
        assert torch.allclose(big(rgb)[0], small(rgb)[0], atol=1e-5)


def test_deblurring_input_errors():
    net = build("aspdc", **TINY)
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.zeros(1, 3, 18, 16))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        net(torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match=">= 12"):
        net(torch.zeros(1, 3, 8, 16))
    fixed = build("aspdc", official_compat=False, **TINY).eval()
    with torch.no_grad():
        assert fixed(torch.zeros(1, 3, 8, 8))[0].shape == (1, 3, 8, 8)  # the padded branch has no minimum
    with pytest.raises(ValueError, match="4 branches"):
        HallucinationResBlock(8, 8, dilations=(0, 1, 2))


# ------------------------------------------------------------------ reblurring network
def test_dynamic_conv_uniform_kernel_is_reflect_box_filter():
    x = _image(2, 3, 5, 6, seed=11)
    out = DynamicConv(3)(x, torch.zeros(2, 9, 5, 6))  # softmax(0) = 1/9 per tap
    want = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), 3, stride=1)
    assert torch.allclose(out, want, atol=1e-6)
    k = torch.full((2, 9, 5, 6), -30.0)
    k[:, 4] = 30.0  # centre tap only
    assert torch.allclose(DynamicConv(3)(x, k), x, atol=1e-6)
    k = torch.full((2, 9, 5, 6), -30.0)
    k[:, 5] = 30.0  # tap (1, 2): the right neighbour
    assert torch.allclose(DynamicConv(3)(x, k)[..., :-1], x[..., 1:], atol=1e-6)


def test_reblur_shapes_and_dependence_on_both_inputs():
    net = _randomise(build("aspdc_reblur", **TINY_REBLUR), seed=12, scale=0.2).eval()
    blurry, sharp = _image(2, 3, 16, 24, seed=13), _image(2, 3, 16, 24, seed=14)
    with torch.no_grad():
        out = net(blurry, sharp)
        kernels = net.estimate_kernels(blurry, sharp)
        out_other_blurry = net(_image(2, 3, 16, 24, seed=15), sharp)
        out_other_sharp = net(blurry, _image(2, 3, 16, 24, seed=16))
    assert out.shape == (2, 3, 16, 24) and torch.isfinite(out).all()
    assert [k.shape[2:] for k in kernels] == [(16, 24), (8, 12), (4, 6), (2, 3), (4, 6), (8, 12), (16, 24)]
    assert all(k.shape[1] == 9 for k in kernels)
    assert not torch.allclose(out, out_other_blurry)  # the blurry image only steers the kernels
    assert not torch.allclose(out, out_other_sharp)


def test_reblur_input_errors():
    net = BlurringNet(intermediate_channels=TINY_REBLUR["intermediate_channels"])
    with pytest.raises(ValueError, match="differ in shape"):
        net(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 24))
    with pytest.raises(ValueError, match="multiples of 8"):
        net(torch.zeros(1, 3, 20, 16), torch.zeros(1, 3, 20, 16))
    with pytest.raises(ValueError, match="multiples of 8"):
        net(torch.zeros(1, 3, 8, 16), torch.zeros(1, 3, 8, 16))
    with pytest.raises(ValueError, match="odd"):
        BlurringNet(intermediate_kernels=4)


def test_deblurring_net_class_is_the_registered_factory():
    net = build("aspdc", **TINY)
    assert isinstance(net, DeblurringNet) and net.official_compat is True
    assert isinstance(build("aspdc_reblur", **TINY_REBLUR), BlurringNet)
