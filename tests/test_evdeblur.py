"""Event-guided low-light deblurring (``evdeblur``, ``evdeblur_rgb``): descriptors, output shapes,
input validation, the padding helpers and the blocks. Parity with the official network runs from
tests/test_parity.py (fixtures ../shared/parity/evdeblur*.pt)."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from torch import nn

import parity_rule as P
from deblurkit.models import build, get_descriptor, list_models
from deblurkit.models.evdeblur import (
    EventPadding,
    EvDeblurNet,
    PaddedEventInputs,
    aps_size_rule,
    crop_event_outputs,
    infer_evdeblur_config,
    pad_event_inputs,
    valid_aps_size,
)
from deblurkit.models.layers.evdeblur_blocks import ChunkedSelfAttnFM, SelfAttnFM, laplacian

TINY = {"init_dim": 32}


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _inputs(h: int, w: int, *, n: int = 1, rgb: bool = False, rgb_size: tuple[int, int] | None = None, seed=0):
    g = _gen(seed)
    E = torch.randn(n, 13, h, w, generator=g) * (torch.rand(n, 13, h, w, generator=g) < 0.2)
    B = torch.rand(n, 1, h, w, generator=g)
    if not rgb:
        return E, B, B
    H, W = rgb_size or (3 * h, 3 * w)
    return E, B, torch.rand(n, 3, H, W, generator=g)


@pytest.fixture(scope="module")
def grey_net() -> nn.Module:
    torch.manual_seed(0)
    return build("evdeblur", **TINY).eval()


@pytest.fixture(scope="module")
def rgb_net() -> nn.Module:
    torch.manual_seed(1)
    return build("evdeblur_rgb", **TINY).eval()


# ------------------------------------------------------------------------------ registry
def test_registered_and_descriptors():
    assert {"evdeblur", "evdeblur_rgb"} <= set(list_models())
    g, c = get_descriptor("evdeblur"), get_descriptor("evdeblur_rgb")
    for d in (g, c):
        assert d.system == "evdeblur"
        assert d.official.repo == "fourson/Deblurring-Low-Light-Images-with-Events"
        assert d.official.file == "model/model_full.py" and d.official.cls == "DefaultModel"
        assert d.official.commit == "1f6e2f3077e84fe5533722433008efefaf808ec6"
        assert "IJCV 2023" in d.paper
        assert d.value_range == (0.0, 1.0)
        assert d.size_multiple == 40  # sufficient for the exact rule h % 8, w % 40
        assert d.size_multiple % 8 == 0 and aps_size_rule(d.size_multiple, d.size_multiple) == ""
        assert "F" in d.outputs and "Bi_clean" in d.outputs and "S" in d.outputs
        assert d.infer_config is infer_evdeblur_config
    # forward(E, B, Bi), in order
    assert g.input_kinds == ("voxel_grid", "grey_aps", "grey_aps")
    assert c.input_kinds == ("voxel_grid", "grey_aps", "rgb")
    assert g.defaults == {"rgb": False} and c.defaults == {"rgb": True}
    assert "3x" in c.notes and "3h" in c.outputs
    f, bi, s = torch.zeros(1), torch.ones(1), torch.full((1,), 2.0)
    assert g.primary_output((f, bi, s)) is s and c.primary_output((f, bi, s)) is s
    with pytest.raises(TypeError):
        g.primary_output(s)


@pytest.mark.parametrize("name", ["evdeblur", "evdeblur_rgb"])
def test_official_build_matches_fixture_spec(parity_dir, name):
    fx = P.load_fixture(parity_dir / f"{name}.pt")
    with torch.device("meta"):
        net = build(name)
    got = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
    assert got == [(k, tuple(s)) for k, s, _ in fx["spec"]]  # keys, shapes and order
    assert fx["official"]["call"] == "net(E, B, Bi)"
    assert (name == "evdeblur_rgb") == any(k.startswith("up.") for k, _ in got)


def test_infer_config_rebuilds_the_checkpoint_layout(parity_dir):
    # what detect_architecture relies on (not called here: it builds every registered system)
    fx = P.load_fixture(parity_dir / "evdeblur_rgb.pt")
    sd = {k: torch.empty(s, device="meta") for k, s, _ in fx["spec"]}
    assert infer_evdeblur_config(sd) == {"init_dim": 64, "n_ev": 13, "norm_type": "instance"}
    small = build("evdeblur", init_dim=32, n_ev=5, norm_type="batch").state_dict()
    cfg = infer_evdeblur_config(small)
    assert cfg == {"init_dim": 32, "n_ev": 5, "norm_type": "batch"}
    with torch.device("meta"):
        again = build("evdeblur", **cfg).state_dict()
    assert [(k, v.shape) for k, v in again.items()] == [(k, v.shape) for k, v in small.items()]
    assert infer_evdeblur_config({"x": torch.zeros(1)}) == {}


# ------------------------------------------------------------------------------ forward
def test_grey_output_shapes_and_ranges(grey_net):
    E, B, Bi = _inputs(16, 40, n=2)
    with torch.no_grad():
        out = grey_net(E, B, Bi)
    assert isinstance(out, tuple) and len(out) == 3
    F_, bi_clean, S = out
    assert F_.shape == (2, 4, 16, 40)
    assert bi_clean.shape == (2, 1, 16, 40) and S.shape == (2, 1, 16, 40)
    assert F_.min() >= 0  # official final ReLU
    for t in (bi_clean, S):
        assert torch.isfinite(t).all() and t.min() >= 0 and t.max() <= 1
    assert get_descriptor("evdeblur").primary_output(out) is S


def test_rgb_output_shapes_and_ranges(rgb_net):
    E, B, Bi = _inputs(16, 40, n=2, rgb=True)
    with torch.no_grad():
        F_, bi_clean, S = rgb_net(E, B, Bi)
    assert F_.shape == (2, 4, 16, 40)  # flows at APS resolution
    assert bi_clean.shape == (2, 3, 48, 120) and S.shape == (2, 3, 48, 120)
    assert F_.min() >= 0 and S.min() >= 0 and S.max() <= 1 and bi_clean.max() <= 1
    # the 1-channel residual of out_block is broadcast over RGB: S - Bi_clean is equal across
    # channels wherever no channel is clamped
    d = S - bi_clean
    inside = ((S > 0) & (S < 1)).all(dim=1)
    assert inside.any()
    assert torch.allclose(d[:, 0][inside], d[:, 1][inside], atol=1e-5)
    assert torch.allclose(d[:, 0][inside], d[:, 2][inside], atol=1e-5)


def test_batch_items_are_independent(grey_net):
    E, B, Bi = _inputs(16, 40, n=2, seed=3)
    with torch.no_grad():
        both = grey_net(E, B, Bi)
        first = grey_net(E[:1], B[:1], Bi[:1])
    # InstanceNorm chains amplify float rounding of different batch layouts to ~1e-4 (see the
    # parity fixtures' notes); leaking information across the batch would differ by far more
    for a, b in zip(both, first):
        assert torch.allclose(a[:1], b, atol=2e-3)
    assert not torch.allclose(both[2][0], both[2][1], atol=2e-3)


def test_training_backward_pass():
    torch.manual_seed(0)
    net = build("evdeblur", **TINY, init="official").train()
    E, B, Bi = _inputs(16, 40)
    F_, bi_clean, S = net(E, B, Bi)
    (F_.mean() + bi_clean.mean() + S.mean()).backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert net.out_block[0].weight.grad.abs().sum() > 0
    assert net.flow_block[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "shapes, match",
    [
        (((1, 13, 16, 40), (1, 1, 16, 40), (1, 3, 16, 40)), "exactly 3x"),  # RGB at APS size
        (((1, 13, 16, 40), (1, 1, 16, 40), (1, 3, 48, 121)), "exactly 3x"),  # RGB off by one
        (((1, 13, 260, 346), (1, 1, 260, 346), (1, 3, 780, 1038)), "pad_event_inputs"),  # DAVIS346
        (((1, 13, 16, 40), (1, 1, 16, 80), (1, 3, 48, 240)), "share the APS size"),
        (((1, 12, 16, 40), (1, 1, 16, 40), (1, 3, 48, 120)), "13 voxel-grid bins"),
        (((1, 13, 16, 40), (1, 3, 16, 40), (1, 3, 48, 120)), "1-channel"),
        (((2, 13, 16, 40), (1, 1, 16, 40), (1, 3, 48, 120)), "batch sizes"),
        (((13, 16, 40), (1, 1, 16, 40), (1, 3, 48, 120)), "4-D"),
    ],
)
def test_rgb_forward_rejects_inconsistent_inputs(rgb_net, shapes, match):
    args = [torch.rand(s) for s in shapes]
    with pytest.raises(ValueError, match=match):
        rgb_net(*args)


@pytest.mark.parametrize("h, w", [(8, 40), (12, 40), (16, 30), (16, 44), (260, 346)])
def test_grey_forward_rejects_unsupported_aps_sizes(grey_net, h, w):
    E, B, Bi = _inputs(h, w)
    with pytest.raises(ValueError, match="pad_event_inputs"):
        grey_net(E, B, Bi)


def test_grey_forward_rejects_rgb_bi(grey_net):
    E, B, _ = _inputs(16, 40)
    with pytest.raises(ValueError, match=r"Bi = B"):
        grey_net(E, B, torch.rand(1, 3, 48, 120))


def test_signed_flow_option_keeps_keys():
    torch.manual_seed(0)
    official = build("evdeblur", **TINY).eval()
    signed = build("evdeblur", **TINY, signed_flow=True).eval()
    assert list(official.state_dict()) == list(signed.state_dict())
    signed.load_state_dict(official.state_dict(), strict=True)
    E, B, Bi = _inputs(16, 40)
    with torch.no_grad():
        f_off, _, s_off = official(E, B, Bi)
        f_sig, _, s_sig = signed(E, B, Bi)
    assert torch.equal(f_off, f_sig.clamp(min=0))  # the only difference is the final ReLU
    assert torch.equal(s_off, s_sig)


def test_batch_norm_and_dropout_options():
    bn = build("evdeblur", **TINY, norm_type="batch")
    keys = list(bn.state_dict())
    assert "flow_block.1.running_mean" in keys and "backbone.double_conv_block.out_block.0.weight" in keys
    assert "fuse1.0.bias" not in keys and "flow_block.0.bias" in keys  # official use_bias rule
    base = list(build("evdeblur", **TINY).state_dict())
    assert list(build("evdeblur", **TINY, use_dropout=True).state_dict()) == base
    assert sum(isinstance(m, nn.Dropout) for m in build("evdeblur", **TINY, use_dropout=True).modules()) > 0


def test_official_init():
    torch.manual_seed(0)
    net = build("evdeblur", init="official")
    w = net.backbone.downsampling_blocks[2].model[1].bottleneck[3].weight.detach()
    assert abs(float(w.std()) - 0.02) < 1e-3 and abs(float(w.mean())) < 1e-3
    assert float(net.backbone.downsampling_blocks[2].model[1].bottleneck[3].bias.detach().abs().max()) == 0
    lin = net.fuse2[1].se[1]
    bound = math.sqrt(6 / (lin.in_features + lin.out_features))
    assert float(lin.weight.detach().abs().max()) <= bound and float(lin.bias.detach().abs().max()) == 0
    assert float(net.E_feature_extraction[3].self_attn_fm.gamma.detach()) == 0.0


@pytest.mark.parametrize(
    "kwargs, match",
    [({"init_dim": 30}, "init_dim"), ({"init_dim": 16}, "init_dim"), ({"norm_type": "group"}, "norm_type"),
     ({"init": "xavier"}, "init"), ({"grid": (8,)}, "grid"), ({"n_ev": 0}, "n_ev")],
)
def test_constructor_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EvDeblurNet(**kwargs)


# ------------------------------------------------------------------------------ size rule
def test_size_rule_and_valid_sizes():
    assert aps_size_rule(16, 40) == "" and aps_size_rule(64, 80) == "" and aps_size_rule(264, 360) == ""
    assert "height must be a multiple of 8 and >= 16" in aps_size_rule(8, 40)
    assert "width must be a multiple of 40" in aps_size_rule(16, 80 + 8)
    assert valid_aps_size(260, 346) == (264, 360)  # DAVIS346
    assert valid_aps_size(1, 1) == (16, 40)
    assert valid_aps_size(64, 80) == (64, 80)
    for h in range(1, 70, 7):
        for w in range(1, 130, 9):
            H, W = valid_aps_size(h, w)
            assert aps_size_rule(H, W) == "" and H >= h and W >= w
            assert H - h < 16 and W - w < 40  # smallest valid size
    assert valid_aps_size(10, 10, grid=(4, 4)) == (16, 16)
    with pytest.raises(ValueError):
        valid_aps_size(0, 5)


# ------------------------------------------------------------------------------ padding
def test_pad_crop_round_trip_davis346_grey():
    E, B, _ = _inputs(260, 346)
    p = pad_event_inputs(E, B)  # Bi defaults to B as the official InferDataset
    assert isinstance(p, PaddedEventInputs) and isinstance(p.padding, EventPadding)
    assert p.E.shape == (1, 13, 264, 360) and p.B.shape == (1, 1, 264, 360) and p.Bi.shape == (1, 1, 264, 360)
    assert p.padding == EventPadding((260, 346), (260, 346), (264, 360), (264, 360), False)
    assert not p.padding.is_identity
    # the original pixels sit at the top-left, untouched
    assert torch.equal(p.E[..., :260, :346], E) and torch.equal(p.B[..., :260, :346], B)
    # events are padded with zeros (no event), images by reflection (no repeated edge)
    assert p.E[..., 260:, :].abs().sum() == 0 and p.E[..., :, 346:].abs().sum() == 0
    assert torch.equal(p.B[..., 260, :346], B[..., 258, :]) and torch.equal(p.B[..., :260, 346], B[..., :, 344])
    E2, B2, Bi2 = crop_event_outputs((p.E, p.B, p.Bi), p.padding)
    assert torch.equal(E2, E) and torch.equal(B2, B) and torch.equal(Bi2, B)


def test_pad_crop_round_trip_davis346_rgb():
    E, B, Bi = _inputs(260, 346, rgb=True)  # RGB 780 x 1038
    p = pad_event_inputs(E, B, Bi)
    assert p.padding.rgb and p.padding.padded_aps_size == (264, 360)
    assert p.Bi.shape == (1, 3, 792, 1080) and p.B.shape == (1, 1, 264, 360)
    assert torch.equal(p.Bi[..., :780, :1038], Bi)
    outs = [torch.rand(1, 4, 264, 360), torch.rand(1, 3, 792, 1080), torch.rand(1, 3, 792, 1080)]
    F_, bi_clean, S = crop_event_outputs(outs, p.padding)
    assert F_.shape == (1, 4, 260, 346) and bi_clean.shape == (1, 3, 780, 1038) and S.shape == (1, 3, 780, 1038)
    assert torch.equal(S, outs[2][..., :780, :1038])
    assert isinstance(crop_event_outputs(outs, p.padding), list)
    assert isinstance(crop_event_outputs(tuple(outs), p.padding), tuple)


def test_pad_rgb_slightly_off_3x_keeps_every_pixel():
    # RGB two pixels taller/wider than 3x APS (APS = RGB // 3, as the official synthesis)
    E, B, Bi = _inputs(64, 80, rgb=True, rgb_size=(194, 242))
    p = pad_event_inputs(E, B, Bi)
    assert p.padding.padded_aps_size == (72, 120)  # APS grown so that 3x covers the RGB frame
    assert p.Bi.shape[-2:] == (216, 360) and torch.equal(p.Bi[..., :194, :242], Bi)
    # RGB a pixel smaller than 3x
    E, B, Bi = _inputs(16, 40, rgb=True, rgb_size=(47, 119))
    p = pad_event_inputs(E, B, Bi)
    assert p.padding.padded_aps_size == (16, 40) and p.Bi.shape[-2:] == (48, 120)


def test_pad_is_identity_for_valid_sizes():
    E, B, Bi = _inputs(16, 40, rgb=True)
    p = pad_event_inputs(E, B, Bi)
    assert p.padding.is_identity
    assert p.E is E and p.B is B and p.Bi is Bi


@pytest.mark.parametrize("mode", ["reflect", "replicate", "constant"])
def test_pad_modes_on_frames_smaller_than_the_pad(mode):
    E, B, Bi = _inputs(3, 5, rgb=True)  # APS 3x5 -> 16x40, RGB 9x15 -> 48x120
    p = pad_event_inputs(E, B, Bi, mode=mode)
    assert p.B.shape[-2:] == (16, 40) and p.Bi.shape[-2:] == (48, 120)
    assert torch.equal(p.B[..., :3, :5], B) and torch.equal(p.Bi[..., :9, :15], Bi)
    if mode == "constant":
        assert p.B[..., 3:, :].abs().sum() == 0
    elif mode == "replicate":
        assert torch.equal(p.B[..., 15, 4], B[..., 2, 4])
    else:  # repeated mirroring: rows 0 1 2 1 0 1 2 1 0 ...
        rows = p.B[0, 0, :, 0]
        assert torch.equal(rows[:9], B[0, 0, [0, 1, 2, 1, 0, 1, 2, 1, 0], 0])
    # every padded value comes from the frame (no new intensities) except zero fill
    if mode != "constant":
        assert set(p.B.flatten().tolist()) <= set(B.flatten().tolist())
    assert p.E[..., 3:, :].abs().sum() == 0  # events always zero-padded


def test_pad_single_pixel_frame():
    E, B, _ = _inputs(1, 1)
    p = pad_event_inputs(E, B)
    assert p.B.shape[-2:] == (16, 40) and torch.all(p.B == B[0, 0, 0, 0])


def test_helpers_make_odd_sizes_run_through_the_network(grey_net, rgb_net):
    for net, rgb, h, w in ((grey_net, False, 21, 37), (rgb_net, True, 13, 23)):
        E, B, Bi = _inputs(h, w, rgb=rgb, rgb_size=(3 * h + 1, 3 * w - 1) if rgb else None)
        with pytest.raises(ValueError):
            net(E, B, Bi)  # without the helpers: a clear error
        p = pad_event_inputs(E, B, Bi)
        with torch.no_grad():
            F_, bi_clean, S = crop_event_outputs(net(p.E, p.B, p.Bi), p.padding)
        assert F_.shape == (1, 4, h, w)
        assert S.shape == Bi.shape and bi_clean.shape == Bi.shape
        assert torch.isfinite(S).all() and S.min() >= 0 and S.max() <= 1


@pytest.mark.parametrize(
    "case, match",
    [
        ("rgb_not_3x", "not 3x the APS"),
        ("rgb_far_too_big", "not 3x the APS"),
        ("e_b_mismatch", "share the APS size"),
        ("grey_bi_mismatch", "must have the APS size"),
        ("rgb_flag_contradicts", "contradicts"),
        ("two_channel_bi", "1 \\(grey\\) or 3 \\(RGB\\)"),
        ("batch", "batch sizes"),
        ("mode", "padding mode"),
        ("rgb_without_bi", "needs the RGB frame"),
        ("three_d", "4-D"),
    ],
)
def test_pad_rejects_inconsistent_inputs(case, match):
    E, B, Bi = _inputs(20, 30, rgb=True)
    kwargs = {}
    if case == "rgb_not_3x":
        Bi = torch.rand(1, 3, 63, 90)
    elif case == "rgb_far_too_big":
        Bi = torch.rand(1, 3, 1080, 1920)
    elif case == "e_b_mismatch":
        E = torch.rand(1, 13, 20, 31)
    elif case == "grey_bi_mismatch":
        Bi = torch.rand(1, 1, 60, 90)
    elif case == "rgb_flag_contradicts":
        kwargs = {"rgb": False}
    elif case == "two_channel_bi":
        Bi = torch.rand(1, 2, 60, 90)
    elif case == "batch":
        Bi = torch.rand(2, 3, 60, 90)
    elif case == "mode":
        kwargs = {"mode": "circular"}
    elif case == "rgb_without_bi":
        Bi, kwargs = None, {"rgb": True}
    elif case == "three_d":
        B = B[0]
    with pytest.raises(ValueError, match=match):
        pad_event_inputs(E, B, Bi, **kwargs)


def test_crop_rejects_unknown_sizes():
    pad = EventPadding((260, 346), (780, 1038), (264, 360), (792, 1080), True)
    with pytest.raises(ValueError, match="neither"):
        crop_event_outputs(torch.rand(1, 3, 780, 1038), pad)
    with pytest.raises(TypeError):
        crop_event_outputs([torch.rand(1, 4, 264, 360), "S"], pad)
    assert crop_event_outputs(torch.rand(4, 264, 360), pad).shape == (4, 260, 346)  # unbatched too


# ------------------------------------------------------------------------------ blocks
def test_laplacian_matches_cv2():
    img = torch.rand(2, 1, 9, 13, generator=_gen(4))
    ours = laplacian(img)
    for i in range(2):
        ref = cv2.Laplacian(img[i, 0].numpy(), cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REFLECT_101)
        np.testing.assert_allclose(ours[i, 0].numpy(), ref, atol=1e-5)


def test_chunked_attention_is_per_cell_attention():
    torch.manual_seed(0)
    blk = ChunkedSelfAttnFM(16, latent_dim=8, subsample=True, grid=(2, 3)).eval()
    with torch.no_grad():
        blk.self_attn_fm.gamma.fill_(0.7)
        x = torch.randn(2, 16, 8, 12)
        out = blk(x)
        cell = blk.self_attn_fm(x[:, :, 4:8, 8:12])  # row 1, column 2 of the 2x3 grid
    assert torch.allclose(out[:, :, 4:8, 8:12], cell, atol=1e-6)
    assert not torch.allclose(out, x)
    plain = SelfAttnFM(16, subsample=False)
    assert {k for k in plain.state_dict()} >= {"key_conv.weight", "value_conv.weight", "gamma"}
    assert float(plain.gamma.detach()) == 0.0  # starts as the identity
    assert torch.equal(plain(x), x)
