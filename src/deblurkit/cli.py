"""The ``deblurkit`` command: deblur, train, evaluate, synth, inspect, export, models.

Every sub-command prints a clear one-line error (naming the file and the problem) and exits with
status 2 on bad input, instead of a traceback.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="deblurkit: image deblurring toolkit (RSS-T, ASPDC, Blur2Blur, MSDI-Net, "
                       "event-guided low-light deblurring).")
synth_app = typer.Typer(no_args_is_help=True, help="Synthesise training data.")
app.add_typer(synth_app, name="synth")


def _fail(msg: str) -> None:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _expected_errors() -> tuple[type[BaseException], ...]:
    from .engine import ConfigError, RunExistsError
    from .io import ImageReadError, ImageWriteError
    from .models import CheckpointMismatchError

    return (ImageReadError, ImageWriteError, CheckpointMismatchError, ConfigError, RunExistsError,
            FileNotFoundError, KeyError, ValueError, IsADirectoryError, PermissionError)


def _parse_tile(tile: Optional[str]):
    if tile in (None, "0", "none", "off"):
        return None
    if tile == "auto":
        return "auto"
    try:
        return int(tile)
    except ValueError:
        _fail(f"--tile must be an integer, 'auto' or 'off', got {tile!r}")


@app.command()
def deblur(
    inputs: List[Path] = typer.Argument(..., help="Image files and/or folders of images."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (created)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Registered model name; default: the embedded model."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Weights file (.pth/.pt/.safetensors)."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N or auto."),
    precision: str = typer.Option("fp32", help="fp32 or bf16 (autocast)."),
    tile: Optional[str] = typer.Option("auto", help="Tile size in pixels, 'auto' (tile large images) or 'off'."),
    tile_overlap: int = typer.Option(32, help="Overlap between tiles in pixels (blended)."),
    compare: bool = typer.Option(False, "--compare", help="Also write <name>_compare.png (input | result)."),
    fail_fast: bool = typer.Option(False, "--fail-fast", help="Stop at the first unreadable file."),
):
    """Deblur images with the embedded default model or any registered model + weights."""
    from .inference import Deblurrer
    from .io import IMAGE_EXTENSIONS, list_images

    for p in inputs:
        if p.is_file() and p.suffix.lower() not in IMAGE_EXTENSIONS:
            _fail(f"{p}: unsupported file type '{p.suffix or '(none)'}'; supported: "
                  f"{', '.join(sorted(IMAGE_EXTENSIONS))}")
    try:
        files = list_images(inputs)
        if not files:
            _fail(f"no images found in {', '.join(map(str, inputs))}")
        d = Deblurrer(model=model, weights=weights, device=device, precision=precision,
                      tile=_parse_tile(tile), tile_overlap=tile_overlap)
        summary = d.deblur_files(files, out, compare=compare, stop_on_error=fail_fast)
    except _expected_errors() as e:
        _fail(str(e))
    for path, exc in summary.failed.items():
        msg = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
        typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    typer.echo(f"wrote {len(summary.written)} image(s) to {out} in {summary.seconds:.1f} s")
    if summary.failed:
        raise typer.Exit(1)


@app.command()
def train(
    config: Path = typer.Argument(..., help="YAML training config (configs/*.yaml)."),
    set_: List[str] = typer.Option([], "--set", help="Override a config key: --set optim.lr=2e-4 (repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from <out_dir>/ckpt/last.pt."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
):
    """Train a network from a config; resumable; writes weights.safetensors at the end."""
    from .engine import Trainer, load_config

    try:
        cfg = load_config(config, set_)
        trainer = Trainer(cfg, resume=resume, progress=progress)
    except _expected_errors() as e:
        _fail(str(e))
    logs = trainer.fit()
    typer.echo(json.dumps({k: v for k, v in logs.items() if isinstance(v, (int, float))}, indent=2))
    typer.echo(f"run folder: {trainer.out_dir}")


@app.command()
def evaluate(
    data: Path = typer.Option(..., "--data", help="Paired data root in the GoPro layout (<split>/<scene>/{blur,sharp})."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Registered model; default: the embedded model."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w"),
    protocol: str = typer.Option("standard", help="Evaluation protocol (metric variant of a paper)."),
    split: str = typer.Option("test", help="Split folder inside --data."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Folder for results.csv / results.md (and images)."),
    save_images: bool = typer.Option(False, "--save-images"),
    device: str = typer.Option("auto"),
    precision: str = typer.Option("fp32"),
    tile: Optional[str] = typer.Option("auto"),
    tile_overlap: int = typer.Option(32),
):
    """Evaluate a model on paired data: per-image and mean PSNR / SSIM, with the input's as baseline."""
    from .data import PairedImageDataset
    from .engine import evaluate as run_eval
    from .engine import get_protocol, write_results
    from .inference import Deblurrer

    try:
        get_protocol(protocol)
        ds = PairedImageDataset(data, split=split)
        d = Deblurrer(model=model, weights=weights, device=device, precision=precision,
                      tile=_parse_tile(tile), tile_overlap=tile_overlap, progress=False)
    except _expected_errors() as e:
        _fail(str(e))

    def pairs():
        for i in range(len(ds)):
            it = ds[i]
            yield it["name"], it["lq"], it["gt"]

    on_image = None
    if save_images:
        if out is None:
            _fail("--save-images needs --out")
        from .io import save_image

        def on_image(name, img):
            save_image(out / "images" / f"{name}.png", img[0])

    res = run_eval(d.deblur_tensor, pairs(), protocol, total=len(ds), on_image=on_image)
    m = res.mean
    typer.echo(f"{len(res.rows)} images, protocol {protocol}: PSNR {m['psnr']:.2f} dB "
               f"(input {m['psnr_input']:.2f}, gain {m['psnr_gain']:+.2f}), "
               f"SSIM {m['ssim']:.4f} (input {m['ssim_input']:.4f})")
    if out is not None:
        csv_p, md_p = write_results(res, out, title=f"{model or 'default'} on {data}")
        typer.echo(f"wrote {csv_p} and {md_p}")


@synth_app.command("pairs")
def synth_pairs(
    photos: Path = typer.Option(..., "--photos", help="Folder of sharp photographs (see --recursive)."),
    out: Path = typer.Option(..., "--out", help="Output root (GoPro layout)."),
    kernels: str = typer.Option("mixed", help="trajectory, levin or mixed."),
    levin: Optional[Path] = typer.Option(None, "--levin", help="levin09_kernels.npz (needed for levin/mixed)."),
    noise_sigma: float = typer.Option(0.01, help="Gaussian noise sigma on [0,1] (plus 8-bit quantisation)."),
    seed: int = typer.Option(0),
    include: List[str] = typer.Option([], "--include", help="Only photos whose name matches this glob (repeatable)."),
    test: List[str] = typer.Option([], "--test", help="Photos matching this glob go to test/ (repeatable)."),
    crop: Optional[int] = typer.Option(None, help="Crop size of each pair (default: whole photo)."),
    crops_per_photo: int = typer.Option(1, help="Pairs per photo."),
    every_kernel: bool = typer.Option(False, "--every-kernel", help="One pair per photo and per kernel of the bank (evaluation sets)."),
    recursive: bool = typer.Option(False, "--recursive", help="Search --photos recursively."),
    texture_candidates: int = typer.Option(1, help="Keep the most textured of N random crop positions (evaluation sets: 16)."),
    center_kernels: bool = typer.Option(False, "--center-kernels", help="Re-centre Levin kernels on their centroid (blur without a shift)."),
):
    """Blur sharp photos with camera-shake kernels and write train|test/<scene>/{blur,sharp}."""
    from .synth import build_pairs

    try:
        manifest = build_pairs(photos, out, kernels=kernels, levin_path=levin, noise_sigma=noise_sigma,
                               seed=seed, include=include or None, test_patterns=test or None,
                               crop_size=crop, crops_per_photo=crops_per_photo, every_kernel=every_kernel,
                               recursive=recursive, texture_candidates=texture_candidates,
                               center_kernels=center_kernels)
    except _expected_errors() as e:
        _fail(str(e))
    n = manifest.get("num_pairs", "?") if isinstance(manifest, dict) else "?"
    typer.echo(f"wrote {n} pairs to {out}")


@synth_app.command("grr")
def synth_grr(
    video: Optional[Path] = typer.Option(None, "--video", help="Video file (e.g. ../shared/data/video/bikes.mp4)."),
    frames: Optional[Path] = typer.Option(None, "--frames", help="Folder of frames (e.g. ../shared/data/sequences/visp_mbt_cube)."),
    out: Path = typer.Option(..., "--out", help="Output root (GRR_real layout <split>/<seq>/{RSGR,GS}/PNG)."),
    seq: Optional[str] = typer.Option(None, help="Sequence folder name (default: the source's name)."),
    split: str = typer.Option("test"),
    factor: int = typer.Option(8, help="Temporal interpolation factor (DIS optical flow)."),
    exposure: float = typer.Option(8.0, help="First row's exposure, in interpolated frames."),
    readout: float = typer.Option(16.0, help="Extra exposure of the last row, in interpolated frames."),
    stride: int = typer.Option(2, help="Original frames between samples."),
    max_frames: Optional[int] = typer.Option(64, help="Read at most this many source frames."),
    reference: str = typer.Option("start", help="GS reference time: start (reset) or middle."),
):
    """Synthesise global-reset-release (GRR) blur and GS references from real video."""
    from .synth.grr import build_grr_sequence, read_frames

    if (video is None) == (frames is None):
        _fail("give exactly one of --video or --frames")
    src = video or frames
    try:
        clip = read_frames(src, max_frames=max_frames)
        man = build_grr_sequence(clip, out, seq=seq or src.stem, split=split, factor=factor, exposure=exposure,
                                 readout=readout, stride=stride, reference=reference)
    except _expected_errors() as e:
        _fail(str(e))
    typer.echo(f"wrote {man['num_pairs']} GRR/GS pairs to {out / split / (seq or src.stem)}")


@app.command()
def inspect(ckpt: Path = typer.Argument(..., help="Checkpoint file (.pth/.pt/.safetensors).")):
    """Name the registered architecture a checkpoint belongs to, from its keys and shapes."""
    from .models import describe_checkpoint

    try:
        info = describe_checkpoint(ckpt)
    except _expected_errors() as e:
        _fail(str(e))
    typer.echo(json.dumps(info, indent=2, default=str))


@app.command()
def export(
    ckpt: Path = typer.Argument(..., help="Training checkpoint (runs/<name>/ckpt/last.pt or best.pt)."),
    out: Path = typer.Argument(..., help="Output .safetensors (a .json sidecar is written beside it)."),
    ema: bool = typer.Option(True, "--ema/--no-ema", help="Export the EMA weights when the run kept them."),
):
    """Export inference weights from a training checkpoint."""
    from .engine import export_from_checkpoint

    try:
        p = export_from_checkpoint(ckpt, out, use_ema=ema)
    except (_expected_errors() + (RuntimeError,)) as e:
        _fail(str(e))
    typer.echo(f"wrote {p} and {p.with_suffix('.json')}")


@app.command("models")
def models_cmd():
    """List the registered models with their descriptors."""
    from .models import get_descriptor, list_models

    for name in list_models():
        d = get_descriptor(name)
        typer.echo(f"{name:22s} system={d.system:10s} multiple={d.size_multiple:<4d} inputs={','.join(d.input_kinds)}")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
