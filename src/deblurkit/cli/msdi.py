"""MSDI-Net commands: ``deblurkit msdi split-parts`` (stage-1 checkpoint -> degradation parts) and
``deblurkit prepare-gopro`` (the 512x512 training sub-images of MSDI-Net's ``gopro.py``)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app
from . import expected_errors as _expected_errors
from . import fail as _fail

msdi_app = typer.Typer(no_args_is_help=True, help="MSDI-Net (Li et al., ECCV 2022) utilities.")
app.add_typer(msdi_app, name="msdi")

#: File names of the released parts, by degradation-encoder version.
PART_FILES = {1: ("net_E.pth", "prior_upsampling.pth"), 2: ("net2.pth", "prior_upsampling2.pth")}


def read_network_state(path: Path, trust_pickle: bool = False) -> dict:
    """The network state dict of a deblurkit training checkpoint (``ckpt/*.pt``: its ``model``
    entry), or of any weights file :func:`deblurkit.models.read_state_dict` reads (official
    ``net_g_*.pth`` ``{'params': ...}``, ``weights.safetensors``). Read with
    ``torch.load(weights_only=True)`` unless ``trust_pickle`` (unpickling can run code in the file).

    Raises: the errors of :func:`deblurkit.engine.checkpoint.load_training_checkpoint` (a file
    that needs unpickling is refused) and of :func:`deblurkit.models.read_state_dict`."""
    from ..engine.checkpoint import CheckpointUnreadableError, PickleRefusedError, load_training_checkpoint
    from ..models import read_state_dict

    if path.suffix in (".pt", ".pth") and path.is_file():
        try:
            return load_training_checkpoint(path, trust_pickle=trust_pickle)["model"]
        except PickleRefusedError:
            raise
        except CheckpointUnreadableError:
            pass  # not a training checkpoint: the generic reader names the problem
    return read_state_dict(path, allow_pickle=trust_pickle)


def split_parts(ckpt: Path, out: Path, force: bool = False, trust_pickle: bool = False) -> tuple[Path, Path]:
    """Write the degradation encoder and prior-upsampling state dicts of a whole MSDI network
    (``msdi2e`` after stage 1, or ``msdi_net`` / ``msdi2_net``) as plain ``torch.save`` state
    dicts, named as released (v1: ``net_E.pth`` / ``prior_upsampling.pth``; v2: ``net2.pth`` /
    ``prior_upsampling2.pth``). Atomic writes; existing files are kept unless ``force``.

    ``trust_pickle``: as in :func:`read_network_state`.

    Raises: FileExistsError, KeyError (no ``net_prior.*`` / ``prior_upsampling.*`` keys), and the
    reader's errors.
    """
    from ..engine.checkpoint import atomic_torch_save
    from ..models.msdi import extract_msdi_parts

    sd = read_network_state(ckpt, trust_pickle)
    try:
        parts = extract_msdi_parts(sd)
    except KeyError as e:
        raise KeyError(f"{ckpt}: not an MSDI network checkpoint ({e.args[0]})") from None
    version = 1 if "layer6.0.weight_orig" in parts["encoder"] else 2
    enc_name, prior_name = PART_FILES[version]
    targets = (out / enc_name, out / prior_name)
    if not force:
        for t in targets:
            if t.exists():
                raise FileExistsError(f"{t} exists; pass --force to replace it")
    atomic_torch_save(dict(parts["encoder"]), targets[0])
    atomic_torch_save(dict(parts["prior"]), targets[1])
    return targets


@msdi_app.command("split-parts")
def split_parts_cmd(
    ckpt: Path = typer.Argument(..., help="Stage-1 run checkpoint (runs/<name>/ckpt/last.pt), weights.safetensors or net_g_*.pth."),
    out: Path = typer.Option(..., "-o", "--out", help="Folder for the part files (created)."),
    force: bool = typer.Option(False, "--force", help="Replace existing part files."),
    trust_pickle: bool = typer.Option(False, "--trust-pickle", help="Also read a checkpoint that needs full unpickling. Unpickling CAN RUN CODE stored in the file: only for files you trust."),
):
    """Split a whole MSDI network into its degradation encoder and prior-upsampling files."""
    try:
        enc, prior = split_parts(ckpt, out, force, trust_pickle)
    except _expected_errors() + (FileExistsError, RuntimeError) as e:
        _fail(str(e))
    typer.echo(f"wrote {enc} and {prior}")


@app.command("prepare-gopro")
def prepare_gopro(
    data: Path = typer.Option(..., "--data", help="GoPro root (holding train/ and test/)."),
    layout: str = typer.Option("gopro_official", help="gopro_official (<split>/{input,target}) or gopro_large (<split>/<scene>/{blur,sharp})."),
    split: str = typer.Option("train"),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Where blur_crops/ and sharp_crops/ go (default <data>/<split>)."),
    crop_size: int = typer.Option(512, help="Sub-image side (official 512)."),
    step: int = typer.Option(256, help="Stride between sub-images (official 256)."),
    thresh_size: int = typer.Option(0, help="Add an edge-flush window when more than this many pixels are left (official 0)."),
):
    """Cut GoPro training pairs into overlapping sub-images (MSDI-Net / HINet gopro.py)."""
    from ..data.gopro import prepare_gopro_crops

    try:
        info = prepare_gopro_crops(data, out, layout=layout, split=split, crop_size=crop_size, step=step,
                                   thresh_size=thresh_size, progress=True)
    except _expected_errors() + (FileExistsError,) as e:
        _fail(str(e))
    typer.echo(f"wrote {info['crops']} sub-image pairs from {info['pairs']} pairs to {info['out']}/{{blur_crops,sharp_crops}}")
