"""deblurkit.models: registry, descriptors, checkpoints, architecture detection, MIMO-UNet."""
from __future__ import annotations

import argparse
import warnings
from collections import OrderedDict

import pytest
import torch
from torch import nn

import deblurkit.models as M
from deblurkit.models import (
    CheckpointMismatchError,
    CheckpointReadError,
    build,
    describe_checkpoint,
    detect_architecture,
    get_descriptor,
    list_models,
    load_checkpoint,
    read_state_dict,
    save_safetensors,
)
from deblurkit.models.mimo_unet import MIMOUNet, MIMOUNetPlus, init_weights

TINY = {"base_channel": 4, "num_res": 1}


def tiny(**kw) -> nn.Module:
    return build("mimo_unet", **{**TINY, **kw})


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# ------------------------------------------------------------------------------ registry
def test_list_models_has_mimo_unets():
    names = list_models()
    assert names == sorted(names)
    assert {"mimo_unet", "mimo_unet_plus"} <= set(names)


def test_descriptor_fields():
    d = get_descriptor("mimo_unet")
    assert d.name == "mimo_unet" and d.system == "blur2blur"
    assert d.official.repo == "VinAIResearch/Blur2Blur"
    assert d.official.file == "models/mimo/MIMOUNet.py" and d.official.cls == "MIMOUNet"
    assert d.input_kinds == ("rgb",)
    assert d.value_range == (0.0, 1.0)
    assert d.size_multiple == 4
    assert "1/4" in d.outputs and "1/2" in d.outputs
    assert d.defaults == {"num_res": 8}
    p = get_descriptor("mimo_unet_plus")
    assert p.defaults == {"num_res": 20} and p.official.cls == "MIMOUNetPlus"
    with pytest.raises(Exception):
        d.size_multiple = 8  # frozen


def test_primary_output_is_full_resolution():
    d = get_descriptor("mimo_unet")
    outs = [torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 8, 8)]
    assert d.primary_output(outs) is outs[-1]
    t = torch.zeros(1, 3, 4, 4)
    assert d.primary_output(t) is t


def test_unknown_name_lists_available():
    with pytest.raises(KeyError) as ei:
        build("mimo_unte")
    msg = str(ei.value)
    assert "mimo_unte" in msg and "mimo_unet" in msg and "mimo_unet_plus" in msg
    with pytest.raises(KeyError, match="available"):
        get_descriptor("nope")


def test_unknown_override_is_type_error():
    with pytest.raises(TypeError, match="num_blocks"):
        build("mimo_unet", num_blocks=3)


def test_register_model_rejects_name_mismatch_and_duplicates():
    d = get_descriptor("mimo_unet")
    with pytest.raises(ValueError):
        M.register_model("other_name", d)
    with pytest.raises(ValueError, match="already registered"):
        M.register_model("mimo_unet", d, lambda num_res=8: nn.Identity())


# ------------------------------------------------------------------------------ MIMO-UNet
def test_official_keys_shapes_and_order():
    sd = build("mimo_unet").state_dict()
    keys = list(sd)
    assert len(keys) == 244
    assert keys[0] == "Encoder.0.layers.0.main.0.main.0.weight"
    assert keys[-1] == "SCM2.conv.main.0.bias"
    assert sd["SCM2.main.3.main.0.bias"].shape == (61,)
    assert sd["SCM2.conv.main.0.weight"].shape == (64, 64, 1, 1)
    assert sd["feat_extract.3.main.0.weight"].shape == (128, 64, 4, 4)  # ConvTranspose2d (in, out, k, k)
    assert sd["AFFs.0.conv.0.main.0.weight"].shape == (32, 224, 1, 1)
    assert sd["FAM1.merge.main.0.weight"].shape == (128, 128, 3, 3)
    tops = list(OrderedDict.fromkeys(k.split(".")[0] for k in keys))
    assert tops == ["Encoder", "feat_extract", "Decoder", "Convs", "ConvsOut", "AFFs",
                    "FAM1", "SCM1", "FAM2", "SCM2"]
    n_params = sum(p.numel() for p in build("mimo_unet").parameters())
    assert 6.7e6 < n_params < 6.9e6  # paper: 6.8M


def test_plus_has_20_blocks_and_dropout():
    net = build("mimo_unet_plus")
    assert isinstance(net, MIMOUNetPlus)
    keys = list(net.state_dict())
    assert len(keys) == 244 + 12 * 6 * 4
    assert "Decoder.2.layers.19.main.1.main.0.bias" in keys
    assert isinstance(net.drop1, nn.Dropout2d) and net.drop1.p == 0.1 and net.drop2.p == 0.1
    n_params = sum(p.numel() for p in net.parameters())
    assert 15.9e6 < n_params < 16.3e6  # paper: 16.1M


def test_forward_shapes_and_residual_structure():
    torch.manual_seed(0)
    net = build("mimo_unet").eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        out = net(x)
    assert isinstance(out, list) and [tuple(o.shape) for o in out] == [
        (1, 3, 8, 8), (1, 3, 16, 16), (1, 3, 32, 32)]
    assert all(o.dtype == torch.float32 and torch.isfinite(o).all() for o in out)
    # with zeroed last convs every output equals the (nearest-downsampled) input
    z = tiny().eval()
    for m in (z.feat_extract[5], z.ConvsOut[0], z.ConvsOut[1]):
        nn.init.zeros_(m.main[0].weight)
        nn.init.zeros_(m.main[0].bias)
    with torch.no_grad():
        o4, o2, o1 = z(x)
    assert torch.equal(o1, x)
    assert torch.equal(o2, x[:, :, ::2, ::2])
    assert torch.equal(o4, x[:, :, ::4, ::4])


def test_forward_rejects_bad_sizes():
    net = tiny().eval()
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.rand(1, 3, 30, 32))
    with pytest.raises(ValueError, match="3, H, W"):
        net(torch.rand(1, 1, 32, 32))


def test_narrow_network_and_batch():
    net = build("mimo_unet", base_channel=16, num_res=4).eval()
    assert net.state_dict()["feat_extract.0.main.0.weight"].shape == (16, 3, 3, 3)
    with torch.no_grad():
        out = net(torch.rand(2, 3, 16, 24))
    assert tuple(out[-1].shape) == (2, 3, 16, 24)


def test_plus_eval_equals_mimo_unet_train_uses_dropout():
    torch.manual_seed(1)
    a = MIMOUNetPlus(num_res=1, base_channel=4)
    b = MIMOUNet(num_res=1, base_channel=4)
    b.load_state_dict(a.state_dict())
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        a.eval(), b.eval()
        assert all(torch.equal(p, q) for p, q in zip(a(x), b(x)))
        a.train()
        torch.manual_seed(0)
        ya = a(x)
        b.train()
        yb = b(x)
    assert not torch.equal(ya[-1], yb[-1])


def test_init_normal_like_blur2blur():
    torch.manual_seed(0)
    net = build("mimo_unet", init="normal", base_channel=8, num_res=2)
    w = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    b = torch.cat([m.bias.flatten() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    w, b = w.detach(), b.detach()
    assert abs(float(w.std()) - 0.02) < 0.001 and abs(float(w.mean())) < 0.001
    assert torch.count_nonzero(b) == 0
    default = build("mimo_unet", base_channel=8, num_res=2)
    assert float(default.feat_extract[0].main[0].weight.detach().std()) > 0.05  # PyTorch default kept
    with pytest.raises(ValueError, match="init_type"):
        init_weights(default, "uniformish")
    with pytest.raises(ValueError):
        build("mimo_unet", base_channel=1)


# ------------------------------------------------------------------------------ checkpoints
WRAPPERS = {
    "plain": lambda sd: sd,
    "model": lambda sd: {"model": sd},
    "model+optimizer": lambda sd: {"model": sd, "optimizer": {"state": {}, "param_groups": []}, "epoch": 3},
    "params": lambda sd: {"params": sd},
    "params_ema": lambda sd: {"params_ema": sd},
    "state_dict": lambda sd: {"state_dict": sd},
    "deblurring_state_dict": lambda sd: {"deblurring_state_dict": sd},
    "net_g": lambda sd: {"net_g": sd},
    "module.": lambda sd: OrderedDict(("module." + k, v) for k, v in sd.items()),
    "nested+module.": lambda sd: {"state_dict": {"model": {"module." + k: v for k, v in sd.items()}}},
}


@pytest.mark.parametrize("wrapper", list(WRAPPERS))
def test_load_checkpoint_round_trip(tmp_path, wrapper):
    torch.manual_seed(0)
    src = tiny()
    path = tmp_path / "ckpt.pth"
    torch.save(WRAPPERS[wrapper](src.state_dict()), path)
    dst = tiny()
    assert load_checkpoint(dst, path) is dst
    assert_same_weights(src, dst)
    sd = read_state_dict(path)
    assert list(sd) == list(src.state_dict())


def test_params_preferred_over_params_ema(tmp_path):
    a, b = tiny(), tiny()
    path = tmp_path / "basicsr.pth"
    torch.save({"params_ema": b.state_dict(), "params": a.state_dict()}, path)
    assert_same_weights(load_checkpoint(tiny(), path), a)
    assert_same_weights(load_checkpoint(tiny(), path, key="params_ema"), b)
    with pytest.raises(CheckpointReadError, match="'nope'"):
        read_state_dict(path, key="nope")


def test_safetensors_round_trip_atomic(tmp_path):
    src = tiny()
    out = save_safetensors(src.state_dict(), tmp_path / "sub" / "w.safetensors", metadata={"name": "mimo_unet"})
    assert out.exists()
    assert [p.name for p in out.parent.iterdir()] == ["w.safetensors"]  # no temporary left behind
    dst = load_checkpoint(tiny(), out)
    assert_same_weights(src, dst)
    # recognised by content even under a .pth name
    other = tmp_path / "w.pth"
    other.write_bytes(out.read_bytes())
    assert list(read_state_dict(other)) == list(src.state_dict())
    with pytest.raises(TypeError):
        save_safetensors({"a": 1}, tmp_path / "bad.safetensors")


def test_mismatch_error_lists_keys_and_file(tmp_path):
    sd = tiny().state_dict()
    del sd["SCM2.conv.main.0.bias"]
    sd["extra.weight"] = torch.zeros(2)
    sd["feat_extract.0.main.0.weight"] = torch.zeros(5, 3, 3, 3)
    path = tmp_path / "bad_ckpt.pth"
    torch.save({"model": sd}, path)
    net = tiny()
    before = net.state_dict()["Encoder.0.layers.0.main.0.main.0.weight"].clone()
    with pytest.raises(CheckpointMismatchError) as ei:
        load_checkpoint(net, path)
    err = ei.value
    assert isinstance(err, RuntimeError)
    msg = str(err)
    assert "bad_ckpt.pth" in msg
    assert "SCM2.conv.main.0.bias" in msg and "extra.weight" in msg
    assert "feat_extract.0.main.0.weight: expected (4, 3, 3, 3), got (5, 3, 3, 3)" in msg
    assert err.missing == ["SCM2.conv.main.0.bias"] and err.unexpected == ["extra.weight"]
    assert err.wrong_shape == [("feat_extract.0.main.0.weight", (4, 3, 3, 3), (5, 3, 3, 3))]
    assert torch.equal(net.state_dict()["Encoder.0.layers.0.main.0.main.0.weight"], before)


def test_mismatch_names_matching_architecture(tmp_path):
    path = tmp_path / "narrow.pth"
    torch.save(build("mimo_unet", base_channel=8, num_res=2).state_dict(), path)
    with pytest.raises(CheckpointMismatchError, match=r"build\('mimo_unet', base_channel=8, num_res=2\)"):
        load_checkpoint(build("mimo_unet"), path)


def test_non_strict_skips_missing_but_not_wrong_shapes(tmp_path):
    src = tiny()
    sd = src.state_dict()
    del sd["SCM2.conv.main.0.bias"]
    sd["extra"] = torch.zeros(1)
    path = tmp_path / "partial.pth"
    torch.save(sd, path)
    dst = tiny()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        load_checkpoint(dst, path, strict=False)
    assert any("non-strictly" in str(x.message) for x in w)
    assert torch.equal(dst.state_dict()["SCM2.conv.main.0.weight"], sd["SCM2.conv.main.0.weight"])
    sd["SCM2.conv.main.0.weight"] = torch.zeros(1)
    torch.save(sd, path)
    with pytest.raises(CheckpointMismatchError, match="wrong-shape"):
        load_checkpoint(tiny(), path, strict=False)


def test_unreadable_files_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        read_state_dict(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(CheckpointReadError, match="junk.pth"):
        read_state_dict(junk)
    badst = tmp_path / "broken.safetensors"
    badst.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointReadError, match="broken.safetensors"):
        read_state_dict(badst)
    empty = tmp_path / "empty.pth"
    torch.save({"epoch": 3}, empty)
    with pytest.raises(CheckpointReadError, match="no tensors"):
        read_state_dict(empty)


def test_pickled_objects_need_allow_pickle(tmp_path):
    src = tiny()
    path = tmp_path / "with_args.pth"
    torch.save({"model": src.state_dict(), "args": argparse.Namespace(lr=1e-4)}, path)
    with pytest.raises(CheckpointReadError, match="--trust-pickle") as info:
        read_state_dict(path)
    assert "allow_pickle" not in str(info.value)  # messages name CLI options, not Python arguments
    assert_same_weights(load_checkpoint(tiny(), path, allow_pickle=True), src)


# ------------------------------------------------------------------------------ detection
def test_detect_architecture_variants():
    assert detect_architecture(build("mimo_unet").state_dict())[0] == ("mimo_unet", {})
    assert detect_architecture(build("mimo_unet_plus").state_dict())[0] == ("mimo_unet_plus", {})
    narrow = build("mimo_unet", base_channel=16, num_res=4).state_dict()
    assert detect_architecture(narrow)[0] == ("mimo_unet", {"base_channel": 16, "num_res": 4})
    wrapped = {"model": {"module." + k: v for k, v in narrow.items()}}
    assert detect_architecture(wrapped)[0] == ("mimo_unet", {"base_channel": 16, "num_res": 4})
    assert detect_architecture({"conv.weight": torch.zeros(3, 3, 3, 3)}) == []


def test_detected_overrides_build_a_loadable_network():
    sd = build("mimo_unet", base_channel=8, num_res=3).state_dict()
    name, ov = detect_architecture(sd)[0]
    build(name, **ov).load_state_dict(sd, strict=True)


def test_describe_checkpoint(tmp_path):
    net = tiny()
    path = save_safetensors(net.state_dict(), tmp_path / "tiny.safetensors")
    info = describe_checkpoint(path)
    assert info["format"] == "safetensors"
    assert info["detected"] == "mimo_unet" and info["exact"]
    assert info["overrides"] == TINY
    assert info["build_call"] == "build('mimo_unet', base_channel=4, num_res=1)"
    assert info["num_parameters"] == sum(p.numel() for p in net.parameters())
    assert info["num_tensors"] == len(net.state_dict())
    assert list(info["key_summary"])[:2] == ["Encoder", "feat_extract"]
    assert info["dtypes"] == {"float32": len(net.state_dict())}
    pth = tmp_path / "dp.pth"
    torch.save({"params": {"module." + k: v for k, v in net.state_dict().items()}}, pth)
    info = describe_checkpoint(pth)
    assert info["wrapper"] == ["params"] and info["stripped_prefix"] == "module."
    assert info["format"] == "torch" and info["detected"] == "mimo_unet"
