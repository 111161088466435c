"""Config loading, validation, overrides; LR schedule; EMA; evaluator tables."""
from __future__ import annotations

import math

import pytest
import torch
import yaml

from deblurkit.engine import ConfigError, EMA, EvalResult, apply_overrides, evaluate, load_config, lr_at
from deblurkit.engine.config import parse_override

BASE = {
    "name": "tiny",
    "model": {"name": "mimo_unet", "overrides": {"base_channel": 8, "num_res": 1}},
    "data": {"train": {"type": "paired", "root": "x"}, "batch_size": 2},
    "train": {"total_steps": 10},
}


def _write(tmp_path, raw):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def test_load_valid_config_applies_defaults_and_name(tmp_path):
    cfg = load_config(_write(tmp_path, BASE))
    assert cfg.optim.type == "adam" and cfg.optim.lr == pytest.approx(1e-4)
    assert cfg.train.out_dir == "runs/tiny"
    assert cfg.model.overrides == {"base_channel": 8, "num_res": 1}


def test_overrides_parse_yaml_values_and_nested_keys(tmp_path):
    cfg = load_config(_write(tmp_path, BASE), ["optim.lr=2e-4", "train.grad_clip=0.01",
                                               "model.overrides.num_res=2", "train.precision=bf16"])
    assert cfg.optim.lr == pytest.approx(2e-4)
    assert cfg.train.grad_clip == pytest.approx(0.01)
    assert cfg.model.overrides["num_res"] == 2
    assert cfg.train.precision == "bf16"


def test_override_list_index():
    raw = apply_overrides({"loss": [{"type": "l1", "weight": 1.0}]}, ["loss.0.weight=0.5"])
    assert raw["loss"][0]["weight"] == 0.5


@pytest.mark.parametrize("override, fragment", [
    ("optim.lrr=1", "unknown key"),
    ("train.total_steps=abc", "train.total_steps: expected an integer"),
    ("optim.type=sgd", "optim.type"),
    ("train.precision=fp8", "train.precision"),
    ("train.total_steps=0", "total_steps must be > 0"),
])
def test_invalid_values_name_file_and_key(tmp_path, override, fragment):
    path = _write(tmp_path, BASE)
    with pytest.raises(ConfigError) as e:
        load_config(path, [override])
    assert fragment in str(e.value) and str(path) in str(e.value)


def test_missing_required_and_bad_yaml(tmp_path):
    raw = {k: v for k, v in BASE.items() if k != "model"}
    with pytest.raises(ConfigError, match="model: required key missing"):
        load_config(_write(tmp_path, raw))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("optim.lr")


def test_repo_configs_validate():
    from pathlib import Path

    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert configs, "no configs shipped"
    for c in configs:
        cfg = load_config(c)
        assert cfg.train.total_steps > 0


def test_warmup_then_cosine_schedule():
    kw = dict(base_lr=1e-3, total_steps=100, warmup_steps=10, min_lr=1e-6)
    assert lr_at(0, **kw) == pytest.approx(1e-4)
    assert lr_at(9, **kw) == pytest.approx(1e-3)
    assert lr_at(10, **kw) == pytest.approx(1e-3)
    assert lr_at(55, **kw) == pytest.approx(1e-6 + 0.5 * (1e-3 - 1e-6))
    assert lr_at(100, **kw) == pytest.approx(1e-6)
    values = [lr_at(s, **kw) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert lr_at(50, kind="constant", **kw) == 1e-3


def test_ema_tracks_average_with_warmup():
    net = torch.nn.Linear(2, 1)
    ema = EMA(net, 0.5)
    with torch.no_grad():
        net.weight.fill_(1.0)
    before = ema.module.weight.clone()
    ema.update(net)  # update 0: warm-up decay min(0.5, 1/10)
    assert torch.allclose(ema.module.weight, 0.1 * before + 0.9)
    for _ in range(20):  # later updates use the configured decay 0.5
        ema.update(net)
    assert ema.num_updates == 21
    with torch.no_grad():
        net.weight.fill_(3.0)
    ema.update(net)
    assert torch.allclose(ema.module.weight, torch.full_like(before, 2.0), atol=1e-5)
    restored = EMA(torch.nn.Linear(2, 1), 0.5)
    restored.load_state_dict(ema.state_dict())
    assert restored.num_updates == 22 and torch.equal(restored.module.weight, ema.module.weight)
    with pytest.raises(ValueError):
        EMA(net, 1.5)


def test_evaluator_scores_identity_and_gain():
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(3, 32, 32, generator=g)
    lq = (gt + 0.1 * torch.randn(3, 32, 32, generator=g)).clamp(0, 1)
    res = evaluate(lambda x: x, [("a", lq, gt)], progress=False)
    row = res.rows[0]
    assert row["psnr"] == pytest.approx(row["psnr_input"])
    perfect = evaluate(lambda x: gt.unsqueeze(0), [("a", lq, gt)], progress=False)
    assert math.isinf(perfect.rows[0]["psnr"]) or perfect.rows[0]["psnr"] > 100
    assert perfect.rows[0]["ssim"] == pytest.approx(1.0, abs=1e-6)
    md = EvalResult("standard", res.rows).to_markdown("t")
    assert "| a |" in md and "blurry input" in md
    with pytest.raises(ValueError, match="differ in size"):
        evaluate(lambda x: x, [("b", lq, gt[:, :16])], progress=False)


def test_aspdc_protocol_uses_legacy_ssim():
    from deblurkit import metrics
    from deblurkit.engine import get_protocol

    g = torch.Generator().manual_seed(1)
    gt = torch.rand(1, 3, 24, 24, generator=g)
    out = gt + 0.2 * torch.randn(1, 3, 24, 24, generator=g)  # exceeds [0,1]: the protocol clamps
    s = get_protocol("aspdc").score(out, gt)
    assert s["ssim"] == pytest.approx(float(metrics.ssim_skimage_legacy(out.clamp(0, 1), gt)[0]))
    assert s["ssim"] != pytest.approx(get_protocol("standard").score(out, gt)["ssim"])
    assert s["psnr"] == pytest.approx(float(metrics.psnr(out.clamp(0, 1), gt)[0]))
