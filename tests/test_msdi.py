"""MSDI-Net (Li et al., ECCV 2022): msdi_net, msdi2_net, msdi2e, msdi_discriminator and the
separately released degradation parts (msdi_encoder / msdi_prior_upsampling, v2 counterparts).

Numerical parity with the official networks runs from tests/test_parity.py (fixtures
../shared/parity/msdi*.pt); here: key layout against the fixtures' specs, output structure and
shapes on tiny configurations, unused-but-present parameters, loading the parts, descriptors.
"""
from __future__ import annotations

import math

import pytest
import torch
from msdi_helpers import TINY
from msdi_helpers import settle_spectral_norms as _settle_spectral_norms
from torch import nn

import deblurkit.models as M
from deblurkit.models import CheckpointMismatchError, build, get_descriptor, load_checkpoint
from deblurkit.models.msdi import (
    DegradationEncoder,
    DegradationEncoder2,
    MSDI2E,
    MSDINet,
    MSDINet2,
    MultiscaleDiscriminator,
    PriorUpsampling,
    PriorUpsampling2,
    extract_msdi_parts,
    load_msdi_parts,
)

NAMES = [
    "msdi_net", "msdi2_net", "msdi2e", "msdi_discriminator",
    "msdi_encoder", "msdi_prior_upsampling", "msdi2_encoder", "msdi2_prior_upsampling",
]
COMMIT = "9ba7c63a9a54d24463bc19ca2c480cd9fa834d0c"


def _meta(name: str, **kw) -> nn.Module:
    with torch.device("meta"):
        return build(name, **kw)


def _spec(parity_dir, name):
    return torch.load(parity_dir / f"{name}.pt", weights_only=True)["spec"]


def _layout(sd) -> list[tuple[str, tuple[int, ...], str]]:
    return [(k, tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in sd.items()]


def _randomise(net: nn.Module, seed: int) -> nn.Module:
    """Perturb every parameter (not the buffers), so loaded weights differ from any fresh build."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return net


def _img(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tiny_v1():
    torch.manual_seed(0)
    return _settle_spectral_norms(build("msdi_net", **TINY)).eval()


# ------------------------------------------------------------------------ official key layout
@pytest.mark.parametrize("name", ["msdi_net", "msdi2_net", "msdi2e", "msdi_discriminator"])
def test_state_dict_layout_equals_official_spec(parity_dir, name):
    spec = [(k, tuple(s), d) for k, s, d in _spec(parity_dir, name)]
    assert _layout(_meta(name).state_dict()) == spec  # names, shapes, dtypes and order


@pytest.mark.parametrize(
    "whole, encoder, prior",
    [("msdi_net", "msdi_encoder", "msdi_prior_upsampling"),
     ("msdi2_net", "msdi2_encoder", "msdi2_prior_upsampling"),
     ("msdi2e", "msdi2_encoder", "msdi2_prior_upsampling")],
)
def test_whole_spec_includes_the_registered_parts(parity_dir, whole, encoder, prior):
    spec = [(k, tuple(s), d) for k, s, d in _spec(parity_dir, whole)]
    for part, prefix in ((encoder, "net_prior."), (prior, "prior_upsampling.")):
        sub = [(k[len(prefix):], s, d) for k, s, d in spec if k.startswith(prefix)]
        assert sub, f"{whole}'s released state dict should hold the {prefix}* weights"
        assert _layout(_meta(part).state_dict()) == sub


def test_unused_parameters_are_present_in_official_layout():
    net = _meta("msdi_net")
    sd = net.state_dict()
    conv4 = [k for k in sd if k.endswith(".conv_4.weight")]
    assert len(conv4) == 42  # down_path_1/2 (10), skip_conv_1..6 (24), up_path_1/2 (8)
    assert sum(math.prod(sd[k].shape) for k in conv4) == 5_578_752  # as the fixture notes count
    for i in range(4):
        pre = f"ad1_list.{i}.norm_0.param_free_norm."
        assert {pre + s for s in ("running_mean", "running_var", "num_batches_tracked")} <= set(sd)
    assert "ad1_list.4.conv_0.bias" not in sd  # the official 5th injection block is dropped
    sd2e = _meta("msdi2e").state_dict()
    assert {"generator.conv_02.weight", "inverse_generator.conv_02.weight"} <= set(sd2e)
    assert "generator.ad1_list.4.conv_0.bias" not in sd2e


def test_unused_parameters_do_not_affect_the_output(tiny_v1):
    x = _img(1, 3, 32, 32)
    saved = {k: v.clone() for k, v in tiny_v1.state_dict().items()}
    touched = 0
    try:
        with torch.no_grad():
            ref = tiny_v1(x)
            for name, mod in tiny_v1.named_modules():
                if name.endswith(".conv_4"):
                    mod.weight.fill_(7.0)
                    touched += 1
                if name.endswith(".param_free_norm"):
                    mod.running_mean.fill_(3.0)
                    mod.running_var.fill_(50.0)
                    touched += 1
            same = tiny_v1(x)
            tiny_v1.ad1_list[0].norm_0.mlp_gamma.bias.add_(1.0)  # a used parameter: must matter
            changed = tiny_v1(x)
    finally:
        tiny_v1.load_state_dict(saved)
    assert touched == 42 + 4
    assert all(torch.equal(a, b) for a, b in zip(ref, same))
    assert not torch.allclose(ref[1], changed[1])


def test_msdi2e_unused_conv_02_does_not_affect_the_output():
    torch.manual_seed(0)
    net = _settle_spectral_norms(build("msdi2e", **TINY)).eval()
    x, y = _img(1, 3, 16, 32, seed=1), _img(1, 3, 16, 32, seed=2)
    with torch.no_grad():
        ref = net(x, y)
        net.generator.conv_02.weight.fill_(5.0)
        net.inverse_generator.conv_02.bias.fill_(5.0)
        same = net(x, y)
    assert torch.equal(ref[0], same[0]) and torch.equal(ref[1], same[1])


# ------------------------------------------------------------------------ structure and shapes
def test_msdi_net_outputs_two_images(tiny_v1):
    x = _img(2, 3, 32, 48)
    with torch.no_grad():
        out = tiny_v1(x)
        maps = tiny_v1.degradation_maps(x)
    assert isinstance(out, list) and len(out) == 2
    assert all(o.shape == x.shape and o.dtype == torch.float32 for o in out)
    assert not torch.allclose(out[0], out[1])
    assert [tuple(m.shape) for m in maps] == [(2, 4, 256, 256), (2, 8, 128, 128), (2, 16, 64, 64), (2, 32, 32, 32)]
    assert get_descriptor("msdi_net").primary_output(out) is out[1]  # the final image


def test_msdi_net_degradation_branch_matters(tiny_v1):
    x = _img(1, 3, 32, 32)
    with torch.no_grad():
        ref = tiny_v1(x)[1]
        # the encoder sees the whole image: another image's code changes the restoration of x
        other = tiny_v1.degradation_maps(_img(1, 3, 32, 32, seed=5))
        tiny_v1.degradation_maps = lambda _x: other  # instance attribute shadows the method
        try:
            swapped = tiny_v1(x)[1]
        finally:
            del tiny_v1.degradation_maps
    assert not torch.allclose(ref, swapped)


def test_msdi2_net_uses_v2_parts():
    torch.manual_seed(0)
    net = _settle_spectral_norms(build("msdi2_net", **TINY)).eval()
    assert isinstance(net, MSDINet2) and isinstance(net.net_prior, DegradationEncoder2)
    assert isinstance(net.prior_upsampling, PriorUpsampling2)
    assert not hasattr(net.prior_upsampling, "conv_latent_init")
    x = _img(1, 3, 16, 32)
    with torch.no_grad():
        code = net.net_prior(x)
        maps = net.prior_upsampling(code)
        out = net(x)
    assert tuple(code.shape) == (1, 128, 8, 8)  # 32 * wf channels on 8x8
    assert [tuple(m.shape[1:]) for m in maps] == [(4, 256, 256), (8, 128, 128), (16, 64, 64), (32, 32, 32)]
    assert len(out) == 2 and all(o.shape == x.shape for o in out)


def test_encoder_and_prior_shapes_any_input_size():
    torch.manual_seed(0)
    enc, prior = build("msdi_encoder", ndf=4).eval(), build("msdi_prior_upsampling", wf=4).eval()
    assert isinstance(enc, DegradationEncoder) and isinstance(prior, PriorUpsampling)
    with torch.no_grad():
        codes = [enc(_img(1, 3, h, w)) for h, w in ((256, 256), (37, 101), (300, 260))]
        maps = prior(codes[0])
    assert all(tuple(c.shape) == (1, 16, 4, 4) for c in codes)  # 4 * ndf channels, 4x4
    assert [tuple(m.shape) for m in maps] == [(1, 4, 256, 256), (1, 8, 128, 128), (1, 16, 64, 64), (1, 32, 32, 32)]
    # inputs other than 256x256 are resized bilinearly (align_corners=False) first
    x = _img(1, 3, 64, 80)
    resized = torch.nn.functional.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False)
    with torch.no_grad():
        assert torch.equal(enc(x), enc(resized))


def test_msdi2e_returns_deblurred_then_reblurred():
    torch.manual_seed(0)
    net = _settle_spectral_norms(build("msdi2e", **TINY)).eval()
    assert isinstance(net, MSDI2E)
    x, y = _img(2, 3, 16, 32, seed=1), _img(2, 3, 16, 32, seed=2)
    with torch.no_grad():
        out = net(x, y)
        maps = net.degradation_maps(x)
        deblurred = net.generator(x, maps)
        reblurred = net.inverse_generator(y, maps)
    assert isinstance(out, tuple) and len(out) == 2
    assert torch.equal(out[0], deblurred) and torch.equal(out[1], reblurred)  # both use maps of x
    assert get_descriptor("msdi2e").primary_output(out) is out[0]


def test_msdi2e_spade_batch_norm_train_vs_eval():
    torch.manual_seed(0)
    net = _settle_spectral_norms(build("msdi2e", **TINY))
    x, y = _img(2, 3, 32, 32, seed=1), _img(2, 3, 32, 32, seed=2)  # train mode: HIN needs > 1x1 at level 4
    bn = net.generator.ad1_list[0].norm_0.param_free_norm
    before = bn.running_mean.clone()
    with torch.no_grad():
        train_out = net.train()(x, y)[0]
        eval_out = net.eval()(x, y)[0]
    assert not torch.equal(before, bn.running_mean)  # training mode: batch statistics, updated
    assert not torch.allclose(train_out, eval_out)


def test_discriminator_outputs_and_calls():
    torch.manual_seed(0)
    net = build("msdi_discriminator", ndf=4).eval()
    assert isinstance(net, MultiscaleDiscriminator)
    x = _img(2, 6, 64, 64)
    with torch.no_grad():
        out = net(x)
        d0 = net.discriminator_0(x)
        down = net.downsample(x)
        d1 = net.discriminator_1(down)
    assert len(out) == 2 and all(len(o) == 5 for o in out)
    assert [tuple(t.shape) for t in out[0]] == [
        (2, 4, 33, 33), (2, 8, 17, 17), (2, 16, 9, 9), (2, 32, 10, 10), (2, 1, 11, 11)]
    assert [t.shape[-1] for t in out[1]] == [17, 9, 5, 6, 7]
    assert tuple(down.shape) == (2, 6, 32, 32)
    assert torch.allclose(down[:, :, 1, 1], x[:, :, 1:4, 1:4].mean(dim=(2, 3)))  # 3x3 mean, stride 2
    assert torch.allclose(down[:, :, 0, 0], x[:, :, :2, :2].mean(dim=(2, 3)))  # padding not counted
    assert all(torch.equal(a, b) for a, b in zip(out[0], d0))
    assert all(torch.equal(a, b) for a, b in zip(out[1], d1))
    with pytest.raises(TypeError, match="not a restored image"):
        get_descriptor("msdi_discriminator").primary_output(out)


# ------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "shape, match",
    [((1, 3, 24, 32), "multiples of 16"), ((1, 3, 32, 40), "multiples of 16"),
     ((1, 3, 16, 16), "more than one pixel"), ((1, 1, 32, 32), "\\(N, 3, H, W\\)"),
     ((3, 32, 32), "\\(N, 3, H, W\\)")],
)
def test_msdi_net_rejects_bad_inputs(tiny_v1, shape, match):
    with pytest.raises(ValueError, match=match):
        tiny_v1(torch.rand(*shape))


@pytest.mark.parametrize(
    "kw", [{"in_chn": 1}, {"depth": 4}, {"wf": 5}, {"wf": 0}, {"spade_hidden": 0}]
)
def test_msdi_net_rejects_bad_options(kw):
    with pytest.raises(ValueError):
        build("msdi_net", **{**TINY, **kw})


def test_other_errors():
    torch.manual_seed(0)
    net = build("msdi2e", **TINY)
    with pytest.raises(ValueError, match="differ in shape"):
        net(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 16))
    with pytest.raises(TypeError):
        net(torch.zeros(1, 3, 16, 16, dtype=torch.uint8), torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="code"):
        build("msdi_prior_upsampling", wf=4)(torch.rand(1, 128, 4, 4))  # a v2-sized code
    with pytest.raises(ValueError, match="\\(N, 6, H, W\\)"):
        build("msdi_discriminator", ndf=4)(torch.rand(1, 3, 32, 32))
    with pytest.raises(TypeError, match="degradation code"):
        get_descriptor("msdi_encoder").primary_output(torch.zeros(1, 256, 4, 4))
    with pytest.raises(TypeError, match="unknown option"):
        build("msdi_net", foo=1)


# ------------------------------------------------------------------------ freezing and training
def test_degradation_parts_frozen_as_official():
    torch.manual_seed(0)
    net = build("msdi_net", **TINY)
    frozen = {n for n, p in net.named_parameters() if not p.requires_grad}
    prefixes = ("net_prior.", "prior_upsampling.")
    assert frozen and frozen == {n for n, _ in net.named_parameters() if n.startswith(prefixes)}
    x = _img(1, 3, 32, 32)  # training mode: the deepest HIN level needs more than one pixel
    out = net(x)
    (out[0].abs().mean() + out[1].abs().mean()).backward()
    assert net.conv_01.weight.grad is not None and net.ad1_list[0].conv_0.weight_orig.grad is not None
    assert net.net_prior.conv_7x7.weight.grad is None
    loose = build("msdi_net", **TINY, freeze_degradation=False)
    assert all(p.requires_grad for p in loose.parameters())
    assert all(p.requires_grad for p in build("msdi2e", **TINY).parameters())


# ------------------------------------------------------------------------ loading parts and wholes
def _save(obj, path):
    torch.save(obj, path)
    return path


def test_parts_load_separately_and_into_the_whole_network(tmp_path, tiny_v1):
    torch.manual_seed(1)
    enc = _settle_spectral_norms(_randomise(build("msdi_encoder", ndf=4), 1)).eval()
    prior = _settle_spectral_norms(_randomise(build("msdi_prior_upsampling", wf=4), 2)).eval()
    enc_file = _save(enc.state_dict(), tmp_path / "net_E.pth")  # plain state dict, as released
    prior_file = _save({"params": prior.state_dict()}, tmp_path / "prior_upsampling.pth")

    # each part loads on its own, strictly
    enc2 = load_checkpoint(build("msdi_encoder", ndf=4), enc_file).eval()
    prior2 = load_checkpoint(build("msdi_prior_upsampling", wf=4), prior_file).eval()

    torch.manual_seed(2)
    net = _settle_spectral_norms(build("msdi_net", **TINY)).eval()
    assert load_msdi_parts(net, encoder=enc_file, prior=prior_file) is net
    x = _img(1, 3, 32, 32)
    with torch.no_grad():
        want = prior(enc(x))
        for got in (prior2(enc2(x)), net.degradation_maps(x)):
            assert all(torch.equal(a, b) for a, b in zip(want, got))
    assert all(not p.requires_grad for p in net.net_prior.parameters())  # still frozen

    # the whole network (U-Net + parts) round-trips through one strict checkpoint
    whole = _save({"params": net.state_dict()}, tmp_path / "msdi_net.pth")
    fresh = load_checkpoint(build("msdi_net", **TINY), whole, strict=True).eval()
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(net(x), fresh(x)))

    # and the parts can be split back out of a whole state dict
    parts = extract_msdi_parts(fresh)
    assert list(parts["encoder"]) == list(enc.state_dict())
    assert list(parts["prior"]) == list(prior.state_dict())
    assert all(torch.equal(parts["encoder"][k], v) for k, v in enc.state_dict().items())


def test_load_parts_strictness(tmp_path):
    torch.manual_seed(0)
    v1, v2 = build("msdi_net", **TINY), build("msdi2_net", **TINY)
    enc1 = build("msdi_encoder", ndf=4).state_dict()
    enc2 = build("msdi2_encoder", ndf=4).state_dict()

    # v1 follows the official strict=False: extra keys are skipped with a warning
    extra = _save({**enc1, "fc_mu.weight": torch.zeros(2, 2)}, tmp_path / "extra.pth")
    with pytest.warns(UserWarning, match="non-strictly"):
        load_msdi_parts(v1, encoder=extra)
    assert torch.equal(v1.net_prior.conv_7x7.weight, enc1["conv_7x7.weight"])
    with pytest.raises(CheckpointMismatchError, match="unexpected"):
        load_msdi_parts(v1, encoder=extra, strict=True)
    # ... but a file unrelated to the part, or with wrong shapes, is refused
    with pytest.raises(CheckpointMismatchError, match="shares no key"):
        load_msdi_parts(v1, encoder=_save({"a.weight": torch.zeros(1)}, tmp_path / "other.pth"))
    with pytest.raises(CheckpointMismatchError, match="wrong"):
        load_msdi_parts(v1, encoder=_save(enc2, tmp_path / "net2.pth"))  # v2 encoder into v1

    # v2 follows the official strict=True
    with pytest.raises(CheckpointMismatchError):
        load_msdi_parts(v2, encoder=_save({**enc2, "x.weight": torch.zeros(1)}, tmp_path / "net2x.pth"))
    load_msdi_parts(v2, encoder=tmp_path / "net2.pth")
    assert torch.equal(v2.net_prior.layer5[0].weight_orig, enc2["layer5.0.weight_orig"])

    with pytest.raises(TypeError, match="net_prior"):
        load_msdi_parts(build("msdi_discriminator", ndf=4), encoder=extra)
    with pytest.raises(FileNotFoundError):
        load_msdi_parts(v1, prior=tmp_path / "missing.pth")
    with pytest.raises(KeyError, match="net_prior"):
        extract_msdi_parts({"conv_01.weight": torch.zeros(1)})


def test_v2_parts_from_msdi2e_feed_msdi2_net(tmp_path):
    torch.manual_seed(0)
    stage1 = _settle_spectral_norms(_randomise(build("msdi2e", **TINY), 3)).eval()
    parts = extract_msdi_parts(stage1.state_dict())
    net = build("msdi2_net", **TINY).eval()
    load_msdi_parts(
        net, encoder=_save(parts["encoder"], tmp_path / "net2.pth"),
        prior=_save(parts["prior"], tmp_path / "prior_upsampling2.pth"),
    )
    x = _img(1, 3, 16, 16)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(stage1.degradation_maps(x), net.degradation_maps(x)))


# ------------------------------------------------------------------------ descriptors
def test_descriptors():
    assert set(NAMES) <= set(M.list_models())
    files = {
        "msdi_net": ("basicsr/models/archs/msdi_arch.py", "msdi_net"),
        "msdi2_net": ("basicsr/models/archs/msdi2_arch.py", "msdi2_net"),
        "msdi2e": ("basicsr/models/archs/msdi2e_arch.py", "MSDI2E"),
        "msdi_discriminator": ("basicsr/models/archs/discriminator.py", "MultiscaleDiscriminator"),
        "msdi_encoder": ("basicsr/models/archs/encoder1.py", "ConvEncoder"),
        "msdi2_encoder": ("basicsr/models/archs/encoder2.py", "ConvEncoder"),
        "msdi_prior_upsampling": ("basicsr/models/archs/msdi_arch.py", "prior_upsampling"),
        "msdi2_prior_upsampling": ("basicsr/models/archs/msdi2_arch.py", "prior_upsampling"),
    }
    for name in NAMES:
        d = get_descriptor(name)
        assert d.name == name and d.system == "msdi" and "ECCV 2022" in d.paper
        assert d.official.repo == "dasongli1/Learning_degradation" and d.official.commit == COMMIT
        assert (d.official.file, d.official.cls) == files[name]
        assert d.value_range == (0.0, 1.0)
    for name in ("msdi_net", "msdi2_net", "msdi2e"):
        d = get_descriptor(name)
        assert d.size_multiple == 16
        assert d.defaults == {"hin_position_left": 0, "hin_position_right": 4}
    assert get_descriptor("msdi_net").input_kinds == ("rgb",)
    assert get_descriptor("msdi2e").input_kinds == ("rgb", "rgb")
    assert get_descriptor("msdi_discriminator").input_kinds == ("rgb_pair",)
    assert get_descriptor("msdi_prior_upsampling").input_kinds == ("degradation_code",)
    assert "net_E.pth" in get_descriptor("msdi_encoder").official.note
    assert "prior_upsampling.pth" in get_descriptor("msdi_prior_upsampling").official.note


def test_infer_config_reads_widths_from_keys():
    torch.manual_seed(0)
    cases = [
        ("msdi_net", build("msdi_net", **TINY, hin_position_left=1, hin_position_right=3),
         {"wf": 4, "spade_hidden": 8, "hin_position_left": 1, "hin_position_right": 3}),
        ("msdi2e", build("msdi2e", **TINY),
         {"wf": 4, "spade_hidden": 8, "hin_position_left": 0, "hin_position_right": 4}),
        ("msdi_discriminator", build("msdi_discriminator", ndf=4, num_D=3), {"ndf": 4, "input_nc": 6, "num_D": 3}),
        ("msdi_encoder", build("msdi_encoder", ndf=4), {"ndf": 4}),
        ("msdi2_prior_upsampling", build("msdi2_prior_upsampling", wf=4), {"wf": 4}),
    ]
    for name, net, want in cases:
        cfg = get_descriptor(name).infer_config(net.state_dict())
        assert cfg == want, name
        assert _layout(_meta(name, **cfg).state_dict()) == _layout(net.state_dict()), name
    assert get_descriptor("msdi_net").infer_config({"other.weight": torch.zeros(1)}) == {}


def test_official_defaults_build_the_official_widths():
    net = _meta("msdi_net")
    assert isinstance(net, MSDINet) and net.wf == 64
    assert net.net_prior.code_channels == 256 and net.prior_upsampling.code_channels == 256
    assert _meta("msdi2_net").net_prior.code_channels == 2048
    assert sum(t.numel() for t in _meta("msdi_discriminator").state_dict().values()) == 5_549_954
