"""RSS-T (``rsst``, ``rsst_lewin``): parity in official-compatibility mode, the fixed quirks,
shapes, descriptor, errors. Networks are tiny (``base_channel=4``) except in the parity test."""
from __future__ import annotations

import copy

import pytest
import torch

import parity_rule as P
from deblurkit.models import build, get_descriptor, list_models
from deblurkit.models.layers.window_attention import (
    MASK_VALUE,
    WindowAttention,
    relative_position_index,
    shift_attention_mask,
)
from deblurkit.models.rsst import LeWinBlock, RSSTBlock, infer_rsst_config, pad_centred, row_index_map

TINY = {"base_channel": 4}


def tiny(name: str = "rsst", **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build(name, **{**TINY, **kw}).eval()


def twin(name: str = "rsst", **kw) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(compat, fixed) networks holding the same weights."""
    compat = tiny(name, official_compat=True, **kw)
    fixed = tiny(name, official_compat=False, **kw)
    fixed.load_state_dict(compat.state_dict(), strict=True)
    return compat, fixed


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def max_diff(a, b) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


def close(a, b, rel: float = 1e-4) -> bool:
    """Outputs equal up to float reordering (relative to each output's magnitude)."""
    return all(torch.allclose(x, y, rtol=rel, atol=rel * float(y.abs().max())) for x, y in zip(a, b))


# ------------------------------------------------------------------------------ parity
def test_rsst_parity_official_compat(parity_dir):
    path = parity_dir / "rsst.pt"
    fx = P.load_fixture(path)
    assert fx["system"] == "rsst"
    # the registered network has exactly the official keys and shapes, in order
    net = build("rsst")
    assert [(k, tuple(v.shape)) for k, v in net.state_dict().items()] == [(k, tuple(s)) for k, s, _ in fx["spec"]]
    report = P.run_fixture(path, build_fn=lambda system: build(system, official_compat=True))  # strict load
    print(report.summary())
    assert report.passed, report.summary()
    assert [c.name for c in report.checks] == ["out0", "out1", "out2", "out3"]
    assert report.worst_ratio <= 1.0
    # descriptor's primary output is the full-resolution image (official Model.inference: pred_img[3])
    outs = [fx["outputs"][f"out{i}"] for i in range(4)]
    assert get_descriptor("rsst").primary_output(outs) is fx["outputs"]["out3"]


def test_fixed_mode_equals_compat_where_no_quirk_applies():
    # batch of 2, no mask, every level larger than the 4x16 window: both modes compute the same
    compat, fixed = twin()
    x = rand(2, 3, 64, 256)
    with torch.no_grad():
        a, b = compat(x), fixed(x)
    assert all(torch.equal(p, q) for p, q in zip(a, b))


# ------------------------------------------------------------------------------ shapes, descriptor
@pytest.mark.parametrize("name,hw", [("rsst", (32, 128)), ("rsst_lewin", (64, 64))])
def test_output_shapes_four_scales(name, hw):
    net = tiny(name)
    H, W = hw
    x = rand(2, 3, H, W)
    with torch.no_grad():
        out = net(x)
    assert isinstance(out, list) and len(out) == 4
    assert [tuple(o.shape) for o in out] == [(2, 3, H // s, W // s) for s in (8, 4, 2, 1)]
    assert all(torch.isfinite(o).all() for o in out)
    assert get_descriptor(name).primary_output(out) is out[3]


def test_descriptors():
    assert {"rsst", "rsst_lewin"} <= set(list_models())
    d = get_descriptor("rsst")
    assert d.system == "rsst" and "ICCV 2023" in d.paper and "Ji" in d.paper
    assert d.official.repo == "jixiang2016/RSS-T" and d.official.file == "model/RSST.py" and d.official.cls == "RSST"
    assert d.official.commit.startswith("30d88d8")
    assert d.value_range == (0.0, 1.0) and d.input_kinds == ("rgb",)
    assert d.size_multiple % 32 == 0 and d.size_multiple % 128 == 0
    assert d.defaults["win_size"] == (4, 16) and d.defaults["trans_type"] == "rsst"
    assert d.defaults["base_channel"] == 32 and d.defaults["token_mlp"] == "leff"
    assert "1/8" in d.outputs
    lw = get_descriptor("rsst_lewin")
    assert lw.system == "rsst" and lw.defaults["trans_type"] == "LeWin" and lw.defaults["win_size"] == (8, 8)
    assert lw.size_multiple % 64 == 0
    with pytest.raises(TypeError):
        d.primary_output(torch.zeros(1))
    assert build("rsst").official_compat is False  # quirks fixed by default


def test_lewin_variant_keys():
    sd = build("rsst_lewin").state_dict()
    assert not any("win_pos_embed" in k or "conv_fft" in k for k in sd)
    assert sd["trans_group0.blocks.0.attn.relative_position_bias_table"].shape == (15 * 15, 1)
    assert sd["d_trans_group0.blocks.1.attn.relative_position_bias_table"].shape == (225, 8)
    assert sd["trans_group0.blocks.0.mlp.linear1.0.weight"].shape == (128, 32)
    rsst_keys = set(build("rsst").state_dict())
    assert set(sd) < rsst_keys  # LeWin blocks are RSS-T blocks minus win_pos_embed / conv_fft


@pytest.mark.parametrize("name", ["rsst", "rsst_lewin"])
def test_infer_config_rebuilds_the_checkpoint_architecture(name):
    # (detect_architecture uses this guess; it is not called here because it builds every
    # registered network, which is slow on a busy CPU)
    sd = tiny(name, token_mlp="ffn", depths=(1, 2, 1, 2, 1, 1, 1, 1)).state_dict()
    cfg = infer_rsst_config(sd)
    assert cfg["base_channel"] == 4 and cfg["token_mlp"] == "ffn" and cfg["depths"] == (1, 2, 1, 2, 1, 1, 1, 1)
    assert cfg["trans_type"] == get_descriptor(name).defaults["trans_type"]
    assert cfg["win_size"] == get_descriptor(name).defaults["win_size"]
    rebuilt = build("rsst", **cfg).state_dict()
    assert [(k, v.shape) for k, v in rebuilt.items()] == [(k, v.shape) for k, v in sd.items()]
    assert infer_rsst_config({"conv.weight": torch.zeros(1)}) == {}


# ------------------------------------------------------------------------------ quirk 1: window shrink
def test_window_shrink_is_permanent_only_in_compat():
    compat, fixed = twin()
    fresh = copy.deepcopy(compat)
    small, big = rand(1, 3, 16, 64, seed=1), rand(1, 3, 64, 256, seed=2)
    with torch.no_grad():
        ref = fresh(big)
        compat(small)
        fixed(small)
        # level 1/8 of the small input is 2x8: compat stores the shrunk window
        assert compat.trans_group3.blocks[1].win_size == (2, 8)
        assert compat.d_trans_group0.blocks[0].win_size == (2, 8)
        assert fixed.trans_group3.blocks[1].win_size == (4, 16)
        a, b = compat(big), fixed(big)
    assert max_diff(a, ref) > 1e-3  # compat keeps using the 2x8 window at 8x32
    assert all(torch.equal(p, q) for p, q in zip(b, ref))  # fixed: as a freshly built network


def test_lewin_shrink_compat_raises_where_official_fails_fixed_runs():
    compat, fixed = twin("rsst_lewin")
    x = rand(1, 3, 32, 64)  # level 1/8 is 4x8 < 8x8 window
    with torch.no_grad():
        with pytest.raises(RuntimeError, match="official_compat=False"):
            compat(x)
        out = fixed(x)
    assert [tuple(o.shape) for o in out] == [(1, 3, 4, 8), (1, 3, 8, 16), (1, 3, 16, 32), (1, 3, 32, 64)]
    assert fixed.trans_group3.blocks[0].win_size == 8


def test_lewin_shift_reset_is_permanent_only_in_compat():
    compat, fixed = twin("rsst_lewin")
    fresh = copy.deepcopy(compat)
    with torch.no_grad():
        ref = fresh(rand(1, 3, 128, 128, seed=3))
        compat(rand(1, 3, 64, 64))  # level 1/8 is 8x8 == window: official stores shift_size = 0
        fixed(rand(1, 3, 64, 64))
        assert compat.trans_group3.blocks[1].shift_size == 0 and fixed.trans_group3.blocks[1].shift_size == 4
        a, b = compat(rand(1, 3, 128, 128, seed=3)), fixed(rand(1, 3, 128, 128, seed=3))
    assert max_diff(a, ref) > 1e-4
    assert all(torch.equal(p, q) for p, q in zip(b, ref))


# ------------------------------------------------------------------------------ quirk 2: padding mask
def _pad_masks() -> torch.Tensor:
    m = torch.zeros(2, 1, 32, 128)
    m[0, :, :5] = 1
    m[0, :, :, -20:] = 1
    m[1, :, -9:] = 1
    m[1, :, :, :3] = 1
    return m


def test_padding_mask_is_per_item_in_fixed_mode():
    compat, fixed = twin()
    x, m = rand(2, 3, 32, 128, seed=4), _pad_masks()
    with torch.no_grad():
        batched_f = fixed(x, m)
        batched_c = compat(x, m)
        single_f = [fixed(x[i:i + 1], m[i:i + 1]) for i in range(2)]
        item1_with_mask0 = compat(x[1:], m[:1])
        item1_with_mask1 = compat(x[1:], m[1:])
    for i in range(2):  # fixed: an item's result does not depend on the rest of the batch
        assert close([o[i:i + 1] for o in batched_f], single_f[i])
    # compat: item 1 is processed with item 0's mask (official RSST.forward keeps mask[0])
    assert close([o[1:] for o in batched_c], item1_with_mask0)
    assert max_diff([o[1:] for o in batched_c], item1_with_mask1) > 1e-3


def _naive_padding_mask(pad: torch.Tensor, win, shift, rolled: bool) -> torch.Tensor:
    """(nW, N, N): -100 between two padded tokens of a window of the shifted feature map.
    ``rolled``: a token's padding flag is that of the pixel it holds (pixel (r+s) mod size);
    otherwise the flag of the unshifted map at the token's own position (official)."""
    H, W = pad.shape
    wh, ww = win
    out = []
    for i0 in range(0, H, wh):
        for j0 in range(0, W, ww):
            flags = []
            for r in range(i0, i0 + wh):
                for c in range(j0, j0 + ww):
                    rr, cc = ((r + shift[0]) % H, (c + shift[1]) % W) if rolled else (r, c)
                    flags.append(bool(pad[rr, cc]))
            f = torch.tensor(flags)
            out.append(torch.where(f[:, None] & f[None, :], MASK_VALUE, 0.0))
    return torch.stack(out)


@pytest.mark.parametrize("kind", ["rsst", "lewin"])
def test_padding_mask_follows_the_shifted_windows(kind):
    H, W = 8, 32
    pad = torch.zeros(H, W)
    pad[:3] = 1
    pad[:, -5:] = 1
    mask = pad.view(1, 1, H, W)
    x = torch.zeros(1, 4, H, W)
    if kind == "rsst":
        win, shift = (4, 16), (2, 8)
        blocks = [RSSTBlock(4, 1, win_size=win, idx=1, official_compat=c) for c in (False, True)]
        masks = [b.attention_mask(mask, H, W, win, shift, x) for b in blocks]
    else:
        win, shift = (4, 4), (2, 2)
        blocks = [LeWinBlock(4, 1, win_size=4, shift_size=2, official_compat=c) for c in (False, True)]
        masks = []
        for b in blocks:  # LeWinBlock builds its mask inline: capture what reaches the attention
            seen = {}
            b.attn.register_forward_hook(lambda mod, args, kwargs, out, s=seen: s.update(m=kwargs["mask"]), with_kwargs=True)
            b.eval()(torch.randn(1, 4, H, W), mask)
            masks.append(seen["m"])
    shift_part = shift_attention_mask(H, W, win, shift)
    fixed_pad = (masks[0] - shift_part).reshape(-1, win[0] * win[1], win[0] * win[1])
    compat_pad = (masks[1] - shift_part).reshape(-1, win[0] * win[1], win[0] * win[1])
    assert torch.equal(fixed_pad, _naive_padding_mask(pad, win, shift, rolled=True))
    assert torch.equal(compat_pad, _naive_padding_mask(pad, win, shift, rolled=False))
    assert not torch.equal(fixed_pad, compat_pad)


def test_unshifted_block_same_in_both_modes_shifted_block_differs():
    torch.manual_seed(0)
    x = torch.randn(1, 8, 8, 32)
    pad = torch.zeros(1, 1, 8, 32)
    pad[..., :3, :] = 1
    for idx, same in ((0, True), (1, False)):
        f = RSSTBlock(8, 2, win_size=(4, 16), idx=idx).eval()
        c = RSSTBlock(8, 2, win_size=(4, 16), idx=idx, official_compat=True).eval()
        c.load_state_dict(f.state_dict())
        with torch.no_grad():
            assert torch.equal(f(x, pad), c(x, pad)) is same
            assert torch.equal(f(x), c(x))  # without a mask the modes agree


# ------------------------------------------------------------------------------ quirk 3: row index
def test_row_index_map_counts_rows_of_the_unpadded_image():
    img = rand(2, 3, 20, 100)
    xp, pad, (top, left) = pad_centred(img, (32, 128))
    assert xp.shape == (2, 3, 32, 128) and (top, left) == (6, 14)
    assert torch.equal(xp[..., top:top + 20, left:left + 100], img) and pad.sum() == 2 * (32 * 128 - 20 * 100)
    official = row_index_map(xp.shape, pad, official_compat=True)
    fixed = row_index_map(xp.shape, pad)
    assert torch.equal(official[0, 0, :, 0], torch.arange(32.0))
    assert torch.equal(fixed[:, 0, top:top + 20, left], torch.arange(20.0).expand(2, 20))
    assert torch.equal(fixed[0, 0, :, 0], torch.arange(32.0) - top)
    assert torch.equal(row_index_map(xp.shape, None), official)  # no mask: both modes count 0..H-1
    per_item = torch.zeros(2, 1, 32, 128)
    per_item[1, :, :7] = 1  # item 1 has 7 padded rows on top, item 0 none
    r = row_index_map((2, 3, 32, 128), per_item)
    assert float(r[0, 0, 0, 0]) == 0.0 and float(r[1, 0, 7, 0]) == 0.0


def test_network_feeds_the_fixed_row_index():
    compat, fixed = twin()
    img = rand(1, 3, 20, 100)
    xp, pad, (top, _) = pad_centred(img, (32, 128))
    seen = {}
    for name, net in (("compat", compat), ("fixed", fixed)):
        net.in_proj0.register_forward_pre_hook(lambda mod, args, n=name: seen.update({n: args[0][0, 3, :, 0].clone()}))
        with torch.no_grad():
            net(xp, pad)
    assert torch.equal(seen["compat"], torch.arange(32.0))
    assert torch.equal(seen["fixed"], torch.arange(32.0) - top)


# ------------------------------------------------------------------------------ quirk 4: bias index
def test_shrunk_window_reads_its_own_offsets_from_the_bias_table():
    full = relative_position_index((4, 16))
    sub = relative_position_index((2, 8), (4, 16))
    # tokens of the 2x8 top-left sub-window, as positions in the 4x16 window
    pos = torch.tensor([r * 16 + c for r in range(2) for c in range(8)])
    assert torch.equal(sub, full[pos][:, pos])  # same offset -> same table row
    official = relative_position_index((2, 8))
    assert not torch.equal(official, sub)
    attn = WindowAttention(8, (4, 16), 2)
    b_fixed = attn.relative_position_bias((2, 8), official_index=False)
    b_full = attn.relative_position_bias((4, 16), official_index=False)
    assert torch.equal(b_fixed, b_full[:, pos][:, :, pos])
    assert torch.equal(attn.relative_position_bias((4, 16), True), b_full)


# ------------------------------------------------------------------------------ errors, training
def test_errors():
    net = tiny()
    with pytest.raises(ValueError, match="N, 3, H, W"):
        net(rand(1, 1, 32, 128))
    with pytest.raises(ValueError, match="multiple of 32"):
        net(rand(1, 3, 48, 128))  # level 1/8 is 6 rows: not a multiple of the 4-row window
    with pytest.raises(ValueError, match="mask"):
        net(rand(2, 3, 32, 128), torch.zeros(3, 1, 32, 128))
    with pytest.raises(ValueError, match="SELayer"):
        build("rsst", se_layer=True)
    with pytest.raises(ValueError, match="trans_type"):
        build("rsst", trans_type="swin")
    with pytest.raises(ValueError, match="token_projection"):
        build("rsst", token_projection="conv")
    with pytest.raises(ValueError, match="square"):
        build("rsst", trans_type="LeWin")  # (4, 16) windows


def test_training_step_reaches_every_parameter():
    net = tiny().train()
    out = net(rand(1, 3, 32, 128))
    sum(o.square().mean() for o in out).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())
