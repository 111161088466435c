"""The ``deblurkit`` command end to end on real photos (tiny sizes), and its error messages."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from deblurkit.cli import app
from deblurkit.engine import export_weights
from deblurkit.models import build

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A small MIMO-UNet with seeded weights, exported like a trained run (safetensors + json)."""
    torch.manual_seed(0)
    net = build("mimo_unet", base_channel=4, num_res=1)
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    export_weights(net.state_dict(), path, "mimo_unet", {"base_channel": 4, "num_res": 1})
    return path


@pytest.fixture(scope="module")
def pairs_root(tmp_path_factory, shared_data):
    out = tmp_path_factory.mktemp("pairs") / "p"
    res = _run("synth", "pairs", "--photos", shared_data / "photos" / "classic", "--include", "camera*",
               "--include", "coins*", "--test", "coins*", "--kernels", "mixed",
               "--levin", shared_data / "kernels" / "levin09_kernels.npz", "--crop", "64",
               "--crops-per-photo", "2", "--out", out)
    assert res.exit_code == 0, res.output
    return out


def test_synth_pairs_writes_gopro_layout(pairs_root):
    manifest = json.loads((pairs_root / "manifest.json").read_text())
    assert manifest["num_pairs"] == 4
    for split, scene in (("train", "camera"), ("test", "coins")):
        d = pairs_root / split / scene
        blur, sharp = sorted((d / "blur").glob("*.png")), sorted((d / "sharp").glob("*.png"))
        assert len(blur) == len(sharp) == 2
        assert [p.name for p in blur] == [p.name for p in sharp]
        assert len(list((d / "kernel").glob("*.npy"))) == 2


def test_evaluate_writes_tables(pairs_root, tiny_weights, tmp_path):
    res = _run("evaluate", "--data", pairs_root, "--model", "mimo_unet", "--weights", tiny_weights,
               "--device", "cpu", "-o", tmp_path / "ev", "--save-images")
    assert res.exit_code == 0, res.output
    assert "PSNR" in res.output and "gain" in res.output
    lines = (tmp_path / "ev" / "results.csv").read_text().strip().splitlines()
    assert lines[0].startswith("name,psnr,ssim,psnr_input,ssim_input") and len(lines) == 3
    assert "blurry input" in (tmp_path / "ev" / "results.md").read_text()
    assert len(list((tmp_path / "ev" / "images").rglob("*.png"))) == 2


def test_evaluate_unknown_protocol_is_clear(pairs_root, tiny_weights):
    res = _run("evaluate", "--data", pairs_root, "--model", "mimo_unet", "--weights", tiny_weights,
               "--protocol", "nope")
    assert res.exit_code == 2 and "unknown protocol 'nope'" in res.output


def test_deblur_files_and_compare(tiny_weights, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy("examples/real_blur/clock_motion.png", src)
    res = _run("deblur", src, "-o", tmp_path / "out", "--model", "mimo_unet", "--weights", tiny_weights,
               "--compare", "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "clock_motion_deblurred.png").is_file()
    assert (tmp_path / "out" / "clock_motion_compare.png").is_file()


def test_deblur_corrupt_and_unsupported_inputs_name_the_file(tiny_weights, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    res = _run("deblur", bad, "-o", tmp_path / "out", "--model", "mimo_unet", "--weights", tiny_weights)
    assert res.exit_code != 0 and "broken.jpg" in res.output
    res = _run("deblur", tmp_path / "missing.png", "-o", tmp_path / "out")
    assert res.exit_code == 2 and "missing.png" in res.output
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    res = _run("deblur", txt, "-o", tmp_path / "out")
    assert res.exit_code == 2 and "notes.txt" in res.output and "unsupported file type '.txt'" in res.output


def test_inspect_names_the_architecture(tiny_weights, tmp_path):
    res = _run("inspect", tiny_weights)
    assert res.exit_code == 0, res.output
    assert "mimo_unet" in res.output and '"base_channel": 4' in res.output
    bad = tmp_path / "x.pth"
    bad.write_bytes(b"junk")
    res = _run("inspect", bad)
    assert res.exit_code == 2 and "x.pth" in res.output


def test_train_cli_rejects_bad_config(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: x\nmodel: {name: mimo_unet}\n")
    res = _run("train", cfg)
    assert res.exit_code == 2 and "data: required key missing" in res.output


def test_models_lists_registry():
    res = _run("models")
    assert res.exit_code == 0 and "mimo_unet" in res.output and "mimo_unet_plus" in res.output


def test_synth_grr_from_real_video(tmp_path, shared_data):
    res = _run("synth", "grr", "--video", shared_data / "video" / "tree.avi", "--out", tmp_path / "grr",
               "--max-frames", "3", "--factor", "2", "--exposure", "1", "--readout", "2", "--stride", "1")
    assert res.exit_code == 0, res.output
    rsgr = sorted((tmp_path / "grr" / "test" / "tree" / "RSGR" / "PNG").glob("*.png"))
    gs = sorted((tmp_path / "grr" / "test" / "tree" / "GS" / "PNG").glob("*.png"))
    assert len(rsgr) == len(gs) == 2
    res = _run("synth", "grr", "--video", tmp_path / "none.mp4", "--out", tmp_path / "grr")
    assert res.exit_code == 2 and "none.mp4" in res.output
