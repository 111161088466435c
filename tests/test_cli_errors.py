"""Every ``deblurkit`` command on bad input (issue 14, item 4): exit status 2, one line naming the
file or option and the fix, never a traceback, and CLI options (never Python arguments) in messages.
Also: a damaged ``ckpt/last.pt`` falls back to the checkpoint before it."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import click
import pytest
import torch
import typer.main
import yaml
from typer.testing import CliRunner

from deblurkit.cli import app

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "examples" / "real_blur" / "clock_motion.png"
runner = CliRunner()
#: A Python keyword argument in a message (``overwrite=True``, ``weights=PATH``, ``model=``).
PYTHON_ARG = re.compile(r"\b[a-z]+_?[a-z_]*=(True|False|None|PATH|\.\.\.|\s|$)|device='")


def leaf_commands() -> set[str]:
    """Every command of the ``deblurkit`` tree, as ``"synth pairs"``."""
    out: set[str] = set()

    def walk(cmd: click.Command, prefix: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, prefix + [name])
        else:
            out.add(" ".join(prefix))

    walk(typer.main.get_command(app), [])
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    t = tmp_path_factory.mktemp("bad")
    shutil.copy(PHOTO, t / "photo.png")
    (t / "empty.pt").write_bytes(b"")
    torch.save({"conv.weight": torch.zeros(1)}, t / "plain.pth")
    from deblurkit.models import save_safetensors

    save_safetensors({"conv.weight": torch.zeros(1)}, t / "weights.safetensors")
    (t / "synth_out" / "train" / "scene").mkdir(parents=True)
    (t / "synth_out" / "train" / "scene" / "x.png").write_bytes(b"")
    (t / "photos").mkdir()
    shutil.copy(PHOTO, t / "photos" / "photo.png")
    return {"t": t}


def cases(t: Path) -> list[tuple[list, str]]:
    """``(arguments, text the one-line error must hold)``; at least one per command."""
    img = t / "photo.png"
    return [
        (["deblur", img, "-o", t / "o", "--device", "cuda"], "--device cpu"),
        (["deblur", img, "-o", t / "o", "--model", "nosuchmodel"], "see `deblurkit models`"),
        (["deblur", img, "-o", t / "o", "--model", "mimo_unet"], "needs --weights"),
        (["deblur", img, "-o", t / "o", "--weights", img], "photo.png: not a checkpoint"),
        (["deblur", img, "-o", t / "o", "--precision", "fp8"], "--precision must be"),
        (["deblur", "--events", t / "nothing.aedat4", "-o", t / "o"], "nothing.aedat4"),
        (["evaluate", "--data", t / "nowhere"], "nowhere"),
        (["train", img], "photo.png: not a YAML config"),
        (["train", t / "none.yaml"], "none.yaml"),
        (["inspect", img], "photo.png: not a checkpoint"),
        (["inspect", t / "empty.pt"], "empty.pt: empty file"),
        (["export", img, t / "x.safetensors"], "photo.png: not a training checkpoint"),
        (["export", t / "plain.pth", t / "x.safetensors"], "plain.pth: not a training checkpoint"),
        (["export", t / "weights.safetensors", t / "x.safetensors"], "use them as they are with --weights"),
        (["export", t / "empty.pt", t / "x.safetensors"], "empty.pt: empty file"),
        (["models", "--device", "cuda"], "No such option"),
        (["prepare-gopro", "--data", t / "nowhere"], "nowhere"),
        (["serve", "--device", "cuda"], "--device cpu"),
        (["synth", "pairs", "--photos", t / "photos", "--out", t / "synth_out"], "--overwrite"),
        (["synth", "pairs", "--photos", t / "nowhere", "--out", t / "p"], "nowhere"),
        (["synth", "grr", "--video", img, "--out", t / "g"], "photo.png"),
        (["synth", "events", "--photos", t / "nowhere", "--out", t / "e"], "nowhere"),
        (["blur2blur", "filter", t / "nowhere", t / "nowhere2", "-o", t / "r.csv"], "nowhere"),
        (["msdi", "split-parts", img, "-o", t / "parts"], "photo.png: not a checkpoint"),
        (["bench", "--size", "huge", "--json", t / "b.json"], "--size 'huge'"),
        (["estimate-kernel", t / "nowhere.png", "-o", t / "k.png"], "nowhere.png"),
        (["estimate-kernel", img, "-o", t / "k.png", "--kernel-size", "4"], "--kernel-size"),
        (["deblur", img, "-o", t / "o", "--kernel", t / "empty.pt"], "empty.pt"),
    ]


def test_every_command_on_bad_input_says_one_line_and_exits_2(files):
    t = files["t"]
    table = cases(t)
    missing = leaf_commands() - {" ".join(a[:2]) if a[0] in ("synth", "blur2blur", "msdi") else a[0]
                                 for a, _ in table}
    assert not missing, f"commands without a bad-input case here: {sorted(missing)}"
    for args, needle in table:
        res = runner.invoke(app, [str(a) for a in args])
        shown = " ".join(map(str, args)).replace(str(t), "T")
        assert res.exception is None or isinstance(res.exception, SystemExit), \
            f"deblurkit {shown}: traceback ({res.exception!r})"
        out = res.output
        assert res.exit_code == 2, (shown, out)
        assert "Traceback" not in out and needle in out, (shown, out)
        if needle != "No such option":  # typer's own usage box
            errors = [ln for ln in out.splitlines() if ln.startswith("error:")]
            assert len(errors) == 1, (shown, out)
            assert not PYTHON_ARG.search(errors[0]), f"deblurkit {shown}: names a Python argument: {errors[0]}"


def test_synth_pairs_overwrite_replaces_the_dataset(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(PHOTO, photos)
    args = ["synth", "pairs", "--photos", photos, "--out", tmp_path / "p", "--kernels", "trajectory", "--crop", "32"]
    assert runner.invoke(app, [str(a) for a in args]).exit_code == 0
    again = runner.invoke(app, [str(a) for a in args])
    assert again.exit_code == 2 and "--overwrite" in again.output
    res = runner.invoke(app, [str(a) for a in args + ["--overwrite", "--seed", "1"]])
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "p").rglob("blur/*.png"))) == 1


def _train_config(tmp_path: Path, shared_data: Path, steps: int) -> Path:
    raw = {
        "name": "tiny", "seed": 3,
        "model": {"name": "mimo_unet", "overrides": {"base_channel": 4, "num_res": 1}},
        "data": {"train": {"type": "synthetic", "photos": str(shared_data / "photos" / "classic"),
                           "include": ["camera*"], "patch_size": 32, "length": 8, "kernel_size": 9,
                           "kernel_sources": ["trajectory"], "trajectory_bank": 4, "seed": 1},
                 "batch_size": 4},
        "loss": [{"type": "l1", "weight": 1.0}],
        "optim": {"type": "adam", "lr": 1e-3},
        "train": {"total_steps": steps, "out_dir": str(tmp_path / "run"), "device": "cpu", "ckpt_every": 1,
                  "val_every": 1000, "log_every": 1},
    }
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    return cfg


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_damaged_last_checkpoint_falls_back_to_the_previous_one(tmp_path, shared_data, damage):
    from deblurkit.engine import Trainer, load_config

    cfg = _train_config(tmp_path, shared_data, steps=2)
    Trainer(load_config(cfg), progress=False).fit()
    ckpt = tmp_path / "run" / "ckpt"
    assert torch.load(ckpt / "previous.pt", weights_only=True)["step"] == 1  # the save before is kept
    data = (ckpt / "last.pt").read_bytes()
    (ckpt / "last.pt").write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    with pytest.warns(UserWarning, match=r"last.pt is unreadable.*resuming from .*previous.pt \(step 1\)"):
        t = Trainer(load_config(cfg), resume=True, progress=False)
    assert t.step == 1
    # the command says so in one warning line and finishes the run
    res = runner.invoke(app, ["train", str(cfg), "--resume", "--no-progress", "--set", "train.total_steps=3"])
    assert res.exit_code == 0, res.output
    assert "warning:" in res.output and "previous.pt" in res.output and "Traceback" not in res.output
    assert torch.load(ckpt / "last.pt", weights_only=True)["step"] == 3


def test_a_damaged_last_checkpoint_without_a_previous_one_is_one_clear_line(tmp_path, shared_data):
    cfg = _train_config(tmp_path, shared_data, steps=1)
    ckpt = tmp_path / "run" / "ckpt"
    ckpt.mkdir(parents=True)
    (ckpt / "last.pt").write_bytes(b"")
    res = runner.invoke(app, ["train", str(cfg), "--resume", "--no-progress"])
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit), res.output
    assert "last.pt: empty file" in res.output and "without --resume" in res.output


# ---------------------------------------------------------------- fail before the work (item 5)
def test_a_bad_output_folder_is_refused_before_any_model_runs(tmp_path, monkeypatch):
    """-o under a file, or a file itself: refused (exit 2, naming -o) before a network is built,
    and nothing is written (no half-run, no 'wrote 0 images')."""
    import deblurkit.models as models_pkg
    from deblurkit.engine import export_weights
    from deblurkit.models import build

    torch.manual_seed(0)
    weights = tmp_path / "tiny.safetensors"
    export_weights(build("mimo_unet", base_channel=4, num_res=1).state_dict(), weights, "mimo_unet",
                   {"base_channel": 4, "num_res": 1})
    built = []
    real_build = models_pkg.build
    monkeypatch.setattr(models_pkg, "build", lambda *a, **k: built.append(a) or real_build(*a, **k))
    photo = tmp_path / "photo.png"
    shutil.copy(PHOTO, photo)
    data = tmp_path / "pairs" / "test" / "scene"
    for sub in ("blur", "sharp"):
        (data / sub).mkdir(parents=True)
        shutil.copy(PHOTO, data / sub / "a.png")
    run = ["--model", "mimo_unet", "--weights", weights, "--device", "cpu"]
    for args in (["deblur", photo, "-o", photo / "out", *run], ["deblur", photo, "-o", photo, *run],
                 ["evaluate", "--data", tmp_path / "pairs", "-o", photo / "ev", *run]):
        res = runner.invoke(app, [str(a) for a in args])
        assert res.exit_code == 2 and isinstance(res.exception, SystemExit), res.output
        assert f"-o {photo}" in res.output and "wrote" not in res.output, res.output
        assert built == [], f"{args[0]}: a network was built before -o was checked"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs", "photo.png", "tiny.json", "tiny.safetensors"]
    res = runner.invoke(app, [str(a) for a in ["synth", "pairs", "--photos", tmp_path, "--out", photo / "p"]])
    assert res.exit_code == 2 and f"--out {photo}" in res.output, res.output


# ---------------------------------------------------------------- batches lose nothing (item 6)
def test_batches_lose_nothing_and_report_each_failure_once(tmp_path):
    from deblurkit.engine import export_weights
    from deblurkit.io import load_image
    from deblurkit.models import build

    torch.manual_seed(0)
    weights = tmp_path / "tiny.safetensors"
    export_weights(build("mimo_unet", base_channel=4, num_res=1).state_dict(), weights, "mimo_unet",
                   {"base_channel": 4, "num_res": 1})
    run = ["--model", "mimo_unet", "--weights", weights, "--device", "cpu", "--tile", "off"]
    photos = tmp_path / "photos"
    (photos / "trip").mkdir(parents=True)
    from PIL import Image

    Image.open(PHOTO).convert("RGB").crop((0, 0, 48, 40)).save(photos / "x.png")
    Image.open(PHOTO).convert("RGB").crop((40, 40, 88, 80)).save(photos / "x.jpg", quality=95)
    Image.open(PHOTO).convert("RGB").crop((80, 80, 128, 120)).save(photos / "trip" / "y.png")
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = photos / "out"

    res = runner.invoke(app, [str(a) for a in ["deblur", photos, "-o", out, *run]])
    assert res.exit_code == 1, res.output  # broken.png failed, the others were written
    assert sorted(p.name for p in out.iterdir()) == ["x_jpg_deblurred.png", "x_png_deblurred.png"]
    assert load_image(out / "x_jpg_deblurred.png").image.shape == (3, 40, 48)
    # each failure reported once (the progress bar may also show the name being read: not counted)
    reports = [seg for line in res.output.splitlines() for seg in line.split("\r")
               if "broken.png" in seg and "img/s" not in seg and "img]" not in seg]
    assert len(reports) == 1, res.output
    assert "skipped" in res.output and "trip" in res.output and "--recursive" in res.output

    before = {p: p.read_bytes() for p in out.iterdir()}
    res = runner.invoke(app, [str(a) for a in ["deblur", photos, "-o", out, "--recursive", *run]])
    assert res.exit_code == 1, res.output
    assert (out / "trip" / "y_deblurred.png").is_file()  # sub-folders kept under -o
    assert not any("deblurred_deblurred" in p.name for p in out.rglob("*")), sorted(out.rglob("*"))
    assert not (out / "out").exists()  # the earlier outputs inside photos/ were not deblurred again
    assert all(p.is_file() for p in before)


# ---------------------------------------------------------------- configs from any folder, bench variants (item 7)
def test_config_paths_are_relative_to_the_config_file(tmp_path, monkeypatch, shared_data):
    from deblurkit.engine import load_config

    monkeypatch.chdir(tmp_path)  # anywhere but the repository
    cfg = load_config(REPO / "configs" / "default_mimo_unet_synthphotos.yaml")
    photos = cfg.data.train["photos"]
    assert [Path(p).resolve() for p in photos] == [(shared_data / "photos" / n).resolve()
                                                    for n in ("wallpaper", "classic", "opencv")]
    assert Path(cfg.data.train["levin_path"]).resolve() == (shared_data / "kernels" / "levin09_kernels.npz").resolve()
    assert cfg.train.out_dir == "runs/default_mimo_unet_synthphotos"  # outputs: relative to where you run
    # every relative path of every shipped config is meant from its own folder: none escapes the
    # repository's parent, and --set paths stay relative to the current folder
    for f in sorted((REPO / "configs").glob("*.yaml")):
        raw = load_config(f, ["data.train.root=here"] if "root:" in f.read_text() else [])
        assert raw.data.train.get("root", "here") == "here", f
    # a config elsewhere: its own folder
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "c.yaml").write_text(
        "name: c\nmodel: {name: mimo_unet, weights: w/start.safetensors}\n"
        "data: {train: {type: paired, root: gopro}}\ntrain: {total_steps: 1, out_dir: out}\n")
    c = load_config(tmp_path / "exp" / "c.yaml")
    assert c.data.train["root"] == str(tmp_path / "exp" / "gopro")
    assert c.model.weights == str(tmp_path / "exp" / "w" / "start.safetensors")
    assert c.train.out_dir == str(tmp_path / "exp" / "out")


def test_bench_at_one_size_runs_one_variant(tmp_path, monkeypatch):
    import deblurkit.bench as bench_pkg

    calls = []
    monkeypatch.setattr(bench_pkg, "image_models", lambda: (["mimo_unet"], {}))  # no probe forwards
    monkeypatch.setattr(bench_pkg, "run_benchmarks",
                        lambda models, sizes, devices, precisions, compiles, **kw: calls.append(
                            (list(models), list(sizes), list(devices), list(precisions), list(compiles))) or [])
    res = runner.invoke(app, ["bench", "--model", "mimo_unet", "--size", "256", "--json", str(tmp_path / "b.json")])
    assert res.exit_code == 0, res.output
    assert calls[-1] == (["mimo_unet"], ["256"], ["cpu"], ["fp32"], [False])
    res = runner.invoke(app, ["bench", "--model", "mimo_unet", "--size", "256", "--precision", "fp32,bf16",
                              "--compile", "both", "--json", str(tmp_path / "b.json")])
    assert res.exit_code == 0 and calls[-1][3:] == (["fp32", "bf16"], [False, True])
    res = runner.invoke(app, ["bench", "--model", "mimo_unet", "--json", str(tmp_path / "b.json")])
    assert calls[-1][1:] == (["256", "720p", "12mp"], ["cpu", "cuda"], ["fp32", "bf16"], [False, True])
