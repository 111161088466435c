"""Core commands: deblur, train, evaluate, inspect, export, models."""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import List, Optional

import typer

from . import app
from . import expected_errors as _expected_errors
from . import check_out_folder
from . import fail as _fail
from . import image_saver, report_results
from . import parse_tile as _parse_tile

#: Help of every ``--trust-pickle`` option.
TRUST_PICKLE_HELP = ("Also read a checkpoint that needs full unpickling (old training checkpoints, some "
                     "third-party files). Unpickling CAN RUN CODE stored in the file: only for files you trust.")


@app.command()
def deblur(
    inputs: Optional[List[Path]] = typer.Argument(None, help="Image files and/or folders of images."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (created)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="'classical' (the default: blind kernel estimation + deconvolution, no weights), 'mimo_unet_small' (embedded network) or a registered network (with --weights)."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Weights file (.pth/.pt/.safetensors) of --model NET."),
    kernel: Optional[Path] = typer.Option(None, "--kernel", help="Classical: deconvolve with this blur kernel (.npy array, or a PNG/JPEG picture normalised to sum 1) instead of estimating one."),
    kernel_size: Optional[int] = typer.Option(None, "--kernel-size", help="Classical: odd kernel size in pixels for the estimator (default: automatic)."),
    save_kernel: bool = typer.Option(False, "--save-kernel", help="Classical: also write <name>_kernel.png (for viewing) and <name>_kernel.npy (exact)."),
    spatially_varying: bool = typer.Option(False, "--spatially-varying", help="Classical: estimate kernels per region and blend them (blur that changes across the photo)."),
    estimator: Optional[str] = typer.Option(None, "--estimator", help="Classical: blind kernel estimator, dark_channel (default) or l0."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N or auto."),
    precision: str = typer.Option("fp32", help="fp32 or bf16 (autocast; networks only)."),
    tile: Optional[str] = typer.Option("auto", help="Tile size in pixels, 'auto' (tile large images) or 'off'."),
    tile_overlap: int = typer.Option(32, help="Overlap between tiles in pixels (blended; classical: at least twice the kernel size)."),
    compare: bool = typer.Option(False, "--compare", help="Also write <name>_compare.png (input | result; classical: with the kernel inset)."),
    fail_fast: bool = typer.Option(False, "--fail-fast", help="Stop at the first unreadable file."),
    events: Optional[Path] = typer.Option(None, "--events", help="Event recording (.aedat4/.npz/.h5) or official real/hybrid folder: deblur its APS frames with --model evdeblur[_rgb] (no image inputs)."),
    event_window: str = typer.Option("exposure", help="With --events: events of each frame's 'exposure', its readout 'frame', or N microseconds around the exposure."),
    frames: Optional[str] = typer.Option(None, help="With --events: frames a:b of the recording (default all)."),
    converter: Optional[Path] = typer.Option(None, "--converter", help="--model blur2blur: the converter's weights."),
    deblurrer: Optional[str] = typer.Option(None, "--deblurrer", help="--model blur2blur: NAME[:CKPT] deblurring the converted image (default: the embedded model)."),
    max_megapixels: float = typer.Option(50.0, "--max-megapixels", help="Refuse larger images (checked from the file header, before decoding)."),
    recursive: bool = typer.Option(False, "--recursive", help="Also deblur the images in sub-folders of the input folders (outputs keep the sub-folders)."),
):
    """Deblur images: by default with classical blind deconvolution (the kernel is estimated per
    photo, or given with --kernel); or with a network (--model mimo_unet_small, or NAME --weights W)."""
    classical_opts = {"--kernel": kernel is not None, "--kernel-size": kernel_size is not None,
                      "--save-kernel": save_kernel, "--spatially-varying": spatially_varying,
                      "--estimator": estimator is not None}
    is_classical = model == "classical" or (model is None and weights is None)
    if not is_classical and any(classical_opts.values()):
        used = ", ".join(k for k, v in classical_opts.items() if v)
        _fail(f"{used} only apply to the classical pipeline (no --model, or --model classical), "
              f"not to {'--model ' + model if model else '--weights'}")
    if events is not None or (model or "").startswith("evdeblur"):
        from .events import deblur_events

        if inputs or events is None:
            _fail("event-guided deblurring takes --events REC (a recording or an official real/hybrid "
                  "folder) and no image inputs")
        return deblur_events(events, out, model, weights, device, event_window, frames, compare)
    if not inputs:
        _fail("give image files and/or folders to deblur (or --events REC)")
    if not max_megapixels > 0:
        _fail(f"--max-megapixels must be > 0, got {max_megapixels}")
    from ..io import IMAGE_EXTENSIONS, list_images
    from .blur2blur import make_deblurrer

    for p in inputs:
        if p.is_file() and p.suffix.lower() not in IMAGE_EXTENSIONS:
            _fail(f"{p}: unsupported file type '{p.suffix or '(none)'}'; supported: "
                  f"{', '.join(sorted(IMAGE_EXTENSIONS))}")
    try:
        files = list_images(inputs, recursive=recursive)
        if not files:
            _fail(f"no images found in {', '.join(map(str, inputs))}")
        classical = None
        if is_classical:
            from .deconv import check_kernel_fits, classical_options

            classical = classical_options(kernel, kernel_size, save_kernel, spatially_varying, estimator)
            check_kernel_fits(classical.get("kernel"), kernel, files)
        check_out_folder(out)
        d = make_deblurrer(model, weights, converter, deblurrer, device=device, precision=precision,
                           tile=_parse_tile(tile), tile_overlap=tile_overlap, classical=classical)
        d.max_megapixels = max_megapixels
        summary = d.deblur_files(inputs, out, compare=compare, stop_on_error=fail_fast, recursive=recursive)
    except _expected_errors() as e:
        _fail(str(e))
    for path, why in summary.skipped.items():
        typer.echo(f"skipped {path}: {why}", err=True)
    for path, note in summary.notes.items():
        if path in summary.fell_back:
            typer.secho(f"{path}: {note}", fg=typer.colors.YELLOW, err=True)
        else:
            typer.echo(f"{path}: {note}")
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
    trust_pickle: bool = typer.Option(False, "--trust-pickle", help=TRUST_PICKLE_HELP),
):
    """Train a network from a config; resumable; writes weights.safetensors at the end.
    Under torchrun: data-parallel, data.batch_size is the global batch (docs/distributed.md)."""
    from ..engine import load_config, make_trainer
    from ..engine.distributed import cleanup

    try:
        cfg = load_config(config, set_)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            trainer = make_trainer(cfg, resume=resume, progress=progress, trust_pickle=trust_pickle)
        for w in caught:
            typer.secho(f"warning: {w.message}", fg=typer.colors.YELLOW, err=True)
    except _expected_errors() as e:
        _fail(str(e))
    logs = trainer.fit()
    if trainer.dist.main:
        typer.echo(json.dumps({k: v for k, v in logs.items() if isinstance(v, (int, float))}, indent=2))
        typer.echo(f"run folder: {trainer.out_dir}")
    cleanup()


@app.command()
def evaluate(
    data: Path = typer.Option(..., "--data", help="Evaluation data root (see --layout)."),
    layout: str = typer.Option("gopro", "--layout", help="Data layout: gopro (<split>/<scene>/{blur,sharp}) or another registered one (deblurkit.data.LAYOUTS)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="'classical' (the default: blind kernel estimation + deconvolution), 'mimo_unet_small' or a registered network (with --weights)."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w"),
    protocol: str = typer.Option("standard", help="Evaluation protocol (metric variant of a paper); levin: up to shift, "
                                 "with the true-kernel ceiling and error ratio when the data hold each pair's kernel."),
    split: str = typer.Option("test", help="Split folder inside --data."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Folder for results.csv / results.md (and images)."),
    save_images: bool = typer.Option(False, "--save-images"),
    device: str = typer.Option("auto"),
    precision: str = typer.Option("fp32"),
    tile: Optional[str] = typer.Option("auto"),
    tile_overlap: int = typer.Option(32),
    reblur_consistency: bool = typer.Option(False, "--reblur-consistency", help="No-reference score on a folder of blurry photos (--data): PSNR(B, R(B, D(B))) with ASPDC's reblurring network R."),
    reblur_weights: Optional[Path] = typer.Option(None, "--reblur-weights", help="Weights of R (aspdc_reblur) for --reblur-consistency."),
    converter: Optional[Path] = typer.Option(None, "--converter", help="--model blur2blur: the converter's weights."),
    deblurrer: Optional[str] = typer.Option(None, "--deblurrer", help="--model blur2blur: NAME[:CKPT] after conversion (default: the embedded model)."),
):
    """Evaluate a model on paired data: per-image and mean PSNR / SSIM, with the input's as baseline.
    Data written by `deblurkit synth pairs` also give each pair's kernel (used by --protocol levin)
    and its kernel label (per-kernel means in results.md).
    Under torchrun the images are split over the processes and the rows gathered; rank 0 writes."""
    if reblur_weights is not None and not reblur_consistency:
        _fail("--reblur-weights is only used with --reblur-consistency")
    if reblur_consistency:
        from .aspdc import reblur_consistency_command

        return reblur_consistency_command(data, reblur_weights, model, weights, out, save_images, device,
                                          precision, tile, tile_overlap)
    if model in ("evdeblur", "evdeblur_rgb"):  # event inputs: the layout's items carry E and B
        from .events import evaluate_events

        return evaluate_events(data, layout, model, weights, protocol, split, out, save_images, device)
    from ..data import open_layout
    from ..engine import evaluate_indexed, get_protocol
    from ..engine.distributed import cleanup, init_from_env
    from ..synth.pairs import pair_labels
    from .blur2blur import make_deblurrer

    check_out_folder(out)
    try:
        dist_info, device = init_from_env(device)
        get_protocol(protocol)
        ds = open_layout(layout, data, split)
        labels = pair_labels(data)
        d = make_deblurrer(model, weights, converter, deblurrer, device=device, precision=precision,
                           tile=_parse_tile(tile), tile_overlap=tile_overlap, progress=False)
    except _expected_errors() as e:
        _fail(str(e))

    def pair(i):
        it = ds[i]
        info = {"device": device}
        if "kernel" in it:
            info["kernel"] = it["kernel"]
        if it["name"] in labels:
            info["group"] = labels[it["name"]]
        return it["name"], it["lq"], it["gt"], info

    on_image = image_saver(out, save_images, data)

    # the protocol decides about clamping (standard: clamped; rsst: raw output)
    res = evaluate_indexed(lambda x: d.deblur_tensor(x, clamp=False), pair, len(ds), protocol, on_image=on_image)
    cleanup()
    if not dist_info.main:
        return
    report_results(res, protocol, out, title=f"{model or 'default'} on {data}")


@app.command()
def inspect(ckpt: Path = typer.Argument(..., help="Checkpoint file (.pth/.pt/.safetensors)."),
            trust_pickle: bool = typer.Option(False, "--trust-pickle", help=TRUST_PICKLE_HELP)):
    """Name the registered architecture a checkpoint belongs to, from its keys and shapes."""
    from ..models import describe_checkpoint

    try:
        info = describe_checkpoint(ckpt, allow_pickle=trust_pickle)
    except _expected_errors() as e:
        _fail(str(e))
    typer.echo(json.dumps(info, indent=2, default=str))


@app.command()
def export(
    ckpt: Path = typer.Argument(..., help="Training checkpoint (runs/<name>/ckpt/last.pt or best.pt)."),
    out: Path = typer.Argument(..., help="Output .safetensors (a .json sidecar is written beside it)."),
    ema: bool = typer.Option(True, "--ema/--no-ema", help="Export the EMA weights when the run kept them."),
    trust_pickle: bool = typer.Option(False, "--trust-pickle", help=TRUST_PICKLE_HELP),
):
    """Export inference weights from a training checkpoint."""
    from ..engine import export_from_checkpoint

    try:
        p = export_from_checkpoint(ckpt, out, use_ema=ema, trust_pickle=trust_pickle)
    except (_expected_errors() + (RuntimeError,)) as e:
        _fail(str(e))
    typer.echo(f"wrote {p} and {p.with_suffix('.json')}")


@app.command("models")
def models_cmd():
    """List the deblurrers: the classical pipeline (the default), the embedded network, and the
    registered networks with their descriptors."""
    from ..models import get_descriptor, list_models

    typer.echo(f"{'classical':22s} (default) blind kernel estimation + non-blind deconvolution, no weights; "
               "--kernel, --kernel-size, --estimator, --save-kernel, --spatially-varying")
    typer.echo(f"{'mimo_unet_small':22s} embedded weights (narrow MIMO-UNet trained on CPU, "
               "docs/models/mimo_unet_small.md); no --weights needed")
    for name in list_models():
        d = get_descriptor(name)
        typer.echo(f"{name:22s} system={d.system:10s} multiple={d.size_multiple:<4d} inputs={','.join(d.input_kinds)}")
