"""Parity against the official networks (../shared/parity fixtures) and checks of the weight rule.

Fixtures are parametrised only for systems already registered in ``deblurkit.models``;
:func:`test_fixture_coverage` reports how many of the fixtures' systems are implemented.
"""
from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import pytest
import torch
from torch import nn

import parity_rule as P
from deblurkit.models import build, get_descriptor, list_models

# Same location rule as conftest.py's ``parity_dir`` (needed at collection time to parametrise).
_PARITY = Path(
    os.environ.get("DEBLURKIT_SHARED", Path(__file__).resolve().parents[1].parent / "shared")
) / "parity"
_FIXTURES = sorted(p.stem for p in _PARITY.glob("*.pt")) if _PARITY.is_dir() else []
_REGISTERED = [name for name in _FIXTURES if name in list_models()]


# ------------------------------------------------------------------------------ parity
def test_mimo_unet_parity(parity_dir):
    report = P.run_fixture(parity_dir / "mimo_unet.pt")
    print(report.summary())
    assert report.passed, report.summary()
    assert [c.name for c in report.checks] == ["out0", "out1", "out2"]
    # the descriptor's primary output is the full-resolution image the official test.py saves
    fx = P.load_fixture(parity_dir / "mimo_unet.pt")
    assert get_descriptor("mimo_unet").primary_output(
        [fx["outputs"]["out0"], fx["outputs"]["out1"], fx["outputs"]["out2"]]
    ) is fx["outputs"]["out2"]


@pytest.mark.parametrize("name", _REGISTERED)
def test_registered_fixture_parity(parity_dir, name):
    path = parity_dir / f"{name}.pt"
    fx = P.load_fixture(path)
    assert fx["system"] == name
    report = P.run_fixture(path)
    print(report.summary())
    assert report.passed, report.summary()


def test_fixture_coverage(parity_dir):
    fixtures = sorted(p.stem for p in parity_dir.glob("*.pt"))
    assert fixtures, f"no fixtures in {parity_dir}"
    implemented = [n for n in fixtures if n in list_models()]
    print(f"parity fixtures with a registered system: {len(implemented)}/{len(fixtures)}: {implemented}")
    assert "mimo_unet" in implemented
    assert implemented == _REGISTERED  # every implemented system's fixture is parametrised above


# ------------------------------------------------------------------------------ the rule
def test_seed_is_sha256_of_salt_and_key():
    key = "Encoder.0.layers.0.main.0.main.0.weight"
    expected = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") & (2**63 - 1)
    assert P.rule_seed(key) == expected
    assert P.rule_seed(key) == P.rule_seed(key)
    assert P.rule_seed(key, salt="s") != P.rule_seed(key)
    assert 0 <= P.rule_seed(key) < 2**63
    z = P.rule_z(key, (4, 5))
    g = torch.Generator().manual_seed(expected)
    assert torch.equal(z, torch.randn((4, 5), generator=g, dtype=torch.float32))


def test_rule_categories():
    z = lambda k, s: P.rule_z(k, s)  # noqa: E731
    assert torch.equal(P.rule_tensor("bn.num_batches_tracked", (), "int64"), torch.zeros((), dtype=torch.int64))
    assert torch.equal(P.rule_tensor("bn.running_var", (8,)), 1 + 0.1 * z("bn.running_var", (8,)).abs())
    assert torch.equal(P.rule_tensor("bn.running_mean", (8,)), 0.1 * z("bn.running_mean", (8,)))
    w = P.rule_tensor("conv.weight", (16, 8, 3, 3))
    assert torch.equal(w, z("conv.weight", (16, 8, 3, 3)) / math.sqrt(72))
    assert torch.equal(P.rule_tensor("norm.weight", (8,)), 1 + 0.1 * z("norm.weight", (8,)))
    assert torch.equal(P.rule_tensor("conv.bias", (8,)), 0.01 * z("conv.bias", (8,)))
    assert torch.equal(P.rule_tensor("blk.qkv_bias", (8,)), 0.01 * z("blk.qkv_bias", (8,)))
    assert torch.equal(P.rule_tensor("blk.alpha", (8,)), 0.02 * z("blk.alpha", (8,)))
    assert torch.equal(P.rule_tensor("blk.scale", ()), 0.02 * z("blk.scale", ()))
    assert torch.equal(P.rule_tensor("pos.weight", (1, 8)), z("pos.weight", (1, 8)) / math.sqrt(8))
    big = P.rule_tensor("big.bias", (20000,))
    assert abs(float(big.std()) - 0.01) < 5e-4  # bias scale
    assert P.rule_tensor("x.weight", (4,), "float16").dtype == torch.float16


def test_rebuild_matches_spec_and_network(parity_dir):
    fx = P.load_fixture(parity_dir / "mimo_unet.pt")
    sd = P.rebuild_state_dict(fx["spec"], fx["salt"])
    assert [(k, tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in sd.items()] == [
        (k, tuple(s), d) for k, s, d in fx["spec"]]
    again = P.rebuild_state_dict(fx["spec"], fx["salt"])
    assert all(torch.equal(sd[k], again[k]) for k in sd)  # deterministic
    net = build("mimo_unet")
    assert list(net.state_dict()) == list(sd)


@pytest.mark.parametrize("shape", [(6, 10), (10, 6), (1, 12), (7, 3, 3, 3)])
def test_top_singular_pair_matches_svd(shape):
    w = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    u, v = P.top_singular_pair(w)
    W = w.double().reshape(shape[0], -1)
    _, S, Vh = torch.linalg.svd(W, full_matrices=False)
    ref_v = Vh[0] if Vh[0][Vh[0].abs().argmax()] >= 0 else -Vh[0]
    ref_u = W @ ref_v / (W @ ref_v).norm()
    assert v[v.abs().argmax()] > 0
    assert torch.allclose(v.double(), ref_v, atol=1e-6) and torch.allclose(u.double(), ref_u, atol=1e-6)
    assert abs(float(u.double() @ W @ v.double()) - float(S[0])) < 1e-5 * float(S[0])


def test_spectral_norm_pair_loads_into_torch_spectral_norm():
    conv = nn.utils.spectral_norm(nn.Conv2d(4, 6, 3))
    spec = [(k, tuple(t.shape), str(t.dtype).replace("torch.", "")) for k, t in conv.state_dict().items()]
    assert {k for k, _, _ in spec} == {"bias", "weight_orig", "weight_u", "weight_v"}
    sd = P.rebuild_state_dict(spec)
    conv.load_state_dict(sd, strict=True)
    conv.eval()
    with torch.no_grad():
        conv(torch.zeros(1, 4, 5, 5))  # eval: weight = weight_orig / (u . W v), no iteration
    sigma = torch.linalg.matrix_norm(sd["weight_orig"].reshape(6, -1).double(), 2)
    assert torch.allclose(conv.weight.double(), sd["weight_orig"].double() / sigma, rtol=1e-5)


# ------------------------------------------------------------------------------ the runner
def test_parse_call_forms():
    c = P.parse_call("net(x)")
    assert c.method is None and c.resolve({"x": 1}) == ([1], {})
    assert P.parse_call("net(a, b)").resolve({"a": 1, "b": 2}) == ([1, 2], {})
    assert P.parse_call("net([x])").resolve({"x": 1}) == ([[1]], {})
    c = P.parse_call("net.adaptKernel(x_sharp, kernel)")
    assert c.method == "adaptKernel" and c.resolve({"x_sharp": 1, "kernel": 2}) == ([1, 2], {})
    c = P.parse_call("kernel_mean, kernel_sigma = net(x_sharp, x_blur)")
    assert c.method is None and c.resolve({"x_sharp": 1, "x_blur": 2}) == ([1, 2], {})
    assert P.parse_call("net(x, scale=0.5, flag=True)").resolve({"x": 1}) == ([1], {"scale": 0.5, "flag": True})
    with pytest.raises(KeyError):
        P.parse_call("net(y)").resolve({"x": 1})
    with pytest.raises(ValueError):
        P.parse_call("model(x)")


def test_flatten_outputs_naming():
    a, b, c = torch.zeros(1), torch.ones(1), torch.full((1,), 2.0)
    assert set(P.flatten_outputs(a)) == {"out"}
    flat = P.flatten_outputs([a, (b, [c])])
    assert list(flat) == ["out0", "out1", "out2"] and flat["out2"] is c


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x, y):
        h = self.bn(self.conv(x))
        return h, h.mean() + y

    def shift(self, xs):
        return self.conv(xs[0]) + 1


def _toy_fixture(path, perturb: float = 0.0):
    net = _Toy()
    spec = [(k, tuple(t.shape), str(t.dtype).replace("torch.", "")) for k, t in net.state_dict().items()]
    net.load_state_dict(P.rebuild_state_dict(spec), strict=True)
    net.eval()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(1, 2, 5, 5, generator=g), torch.rand(1, generator=g)
    with torch.no_grad():
        o0, o1 = net(x, y)
        s = net.shift([x])
    torch.save({
        "system": "toy", "rule": P.RULE, "salt": "", "spec": spec,
        "official": {"call": "TWO CALLS"},
        "calls": {"fwd": "net(x, y)", "sh": "net.shift([x])"},
        "inputs": {"fwd.x": x, "fwd.y": y, "sh.x": x},
        "outputs": {"fwd.out0": o0, "fwd.out1": o1 + perturb, "sh.out": s},
        "tolerance": {"atol": 1e-6, "rtol": 1e-4}, "notes": "",
    }, path)


def test_run_fixture_multi_call(tmp_path):
    _toy_fixture(tmp_path / "toy.pt")
    report = P.run_fixture(tmp_path / "toy.pt", build_fn=lambda system: _Toy())
    assert report.passed, report.summary()
    assert [c.name for c in report.checks] == ["fwd.out0", "fwd.out1", "sh.out"]
    assert report.max_abs_err <= 1e-6


def test_run_fixture_reports_failures(tmp_path):
    _toy_fixture(tmp_path / "toy_bad.pt", perturb=1e-3)
    report = P.run_fixture(tmp_path / "toy_bad.pt", build_fn=lambda system: _Toy())
    assert not report.passed
    assert "fwd.out1" in report.summary() and "FAIL" in report.summary()
    with pytest.raises(AssertionError, match="fwd.out1"):
        P.run_fixture(tmp_path / "toy_bad.pt", build_fn=lambda system: _Toy(), check=True)


# ------------------------------------------------------------------------------ released format
@pytest.mark.slow  # rebuilds 247 M weights; the spectral-norm pairs are cached from the parity test above
def test_msdi_net_released_checkpoint_round_trips_strict(parity_dir, tmp_path):
    """A checkpoint in the format of the released ``msdi_net.pth`` (``{'params': state_dict}``),
    with every entry given by the parity weight rule, loads with ``strict=True`` through
    ``load_checkpoint`` into ``build('msdi_net')`` (no file read by the constructor), and its
    degradation parts load as ``net_E.pth`` / ``prior_upsampling.pth`` into the registered parts."""
    from deblurkit.models import load_checkpoint
    from deblurkit.models.msdi import extract_msdi_parts

    fx = P.load_fixture(parity_dir / "msdi_net.pt")
    sd = P.rebuild_state_dict(fx["spec"], fx["salt"])
    path = tmp_path / "msdi_net.pth"
    torch.save({"params": sd}, path)
    parts = extract_msdi_parts(sd)
    torch.save(dict(parts["encoder"]), tmp_path / "net_E.pth")
    torch.save(dict(parts["prior"]), tmp_path / "prior_upsampling.pth")
    del sd, parts
    net = load_checkpoint(build("msdi_net"), path, strict=True)
    got = net.state_dict()
    assert [(k, tuple(v.shape)) for k, v in got.items()] == [(k, tuple(s)) for k, s, _ in fx["spec"]]
    again = P.rebuild_state_dict(fx["spec"], fx["salt"])  # the rule once more, independently of the file
    assert all(torch.equal(got[k], again[k]) for k in again)
    del net, got
    enc = load_checkpoint(build("msdi_encoder"), tmp_path / "net_E.pth", strict=True)
    prior = load_checkpoint(build("msdi_prior_upsampling"), tmp_path / "prior_upsampling.pth", strict=True)
    assert torch.equal(enc.layer1[0].weight_orig, again["net_prior.layer1.0.weight_orig"])
    assert torch.equal(prior.conv_latent_init.conv_block[1].weight_orig,
                       again["prior_upsampling.conv_latent_init.conv_block.1.weight_orig"])
