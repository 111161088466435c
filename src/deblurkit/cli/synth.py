"""``deblurkit synth ...``: data synthesis commands."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import expected_errors as _expected_errors
from . import check_out_folder
from . import fail as _fail
from . import synth_app


def _parse_range(text: str, option: str) -> float | tuple[float, float]:
    """``"A,B"`` -> (A, B) (a uniform range), ``"A"`` -> A; exits 2 naming ``option`` otherwise."""
    parts = [t.strip() for t in str(text).split(",")]
    try:
        vals = [float(t) for t in parts]
    except ValueError:
        _fail(f"{option}: expected a number or A,B (e.g. 2.5,6), got {text!r}")
    if len(vals) == 1:
        return vals[0]
    if len(vals) != 2:
        _fail(f"{option}: expected a number or A,B (e.g. 2.5,6), got {text!r}")
    return vals[0], vals[1]


@synth_app.command("pairs")
def synth_pairs(
    photos: Path = typer.Option(..., "--photos", help="Folder of sharp photographs (see --recursive)."),
    out: Path = typer.Option(..., "--out", help="Output root (GoPro layout)."),
    kernels: str = typer.Option("mixed", help="trajectory, levin, mixed, disk (defocus discs, radius from --disk-radius) "
                                "or shake (long smooth camera-shake paths, length from --shake-length)."),
    levin: Optional[Path] = typer.Option(None, "--levin", help="levin09_kernels.npz (needed for levin/mixed)."),
    noise_sigma: float = typer.Option(0.01, help="Gaussian noise sigma on [0,1] (plus 8-bit quantisation)."),
    seed: int = typer.Option(0),
    include: List[str] = typer.Option([], "--include", help="Only photos whose name matches this glob (repeatable)."),
    test: List[str] = typer.Option([], "--test", help="Photos matching this glob go to test/ (repeatable)."),
    crop: Optional[int] = typer.Option(None, help="Crop size of each pair (default: whole photo)."),
    crops_per_photo: int = typer.Option(1, help="Pairs per photo (random kernel families: each with its own seeded kernel)."),
    every_kernel: bool = typer.Option(False, "--every-kernel", help="One pair per photo and per kernel of the bank (evaluation sets; levin/mixed only)."),
    disk_radius: str = typer.Option("2.5,6", "--disk-radius", help="--kernels disk: radius in px, R or A,B (uniform per pair)."),
    shake_length: str = typer.Option("10,40", "--shake-length", help="--kernels shake: path length in px, L or A,B (uniform per pair)."),
    recursive: bool = typer.Option(False, "--recursive", help="Search --photos recursively."),
    texture_candidates: int = typer.Option(1, help="Keep the most textured of N random crop positions (evaluation sets: 16)."),
    center_kernels: bool = typer.Option(False, "--center-kernels", help="Re-centre Levin kernels on their centroid (blur without a shift)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the dataset --out already holds (only the scene folders its manifest lists are removed)."),
):
    """Blur sharp photos with camera-shake kernels and write train|test/<scene>/{blur,sharp}."""
    from ..synth import build_pairs

    radius = _parse_range(disk_radius, "--disk-radius")
    length = _parse_range(shake_length, "--shake-length")
    check_out_folder(out, "--out")
    try:
        manifest = build_pairs(photos, out, kernels=kernels, levin_path=levin, noise_sigma=noise_sigma,
                               seed=seed, include=include or None, test_patterns=test or None,
                               crop_size=crop, crops_per_photo=crops_per_photo, every_kernel=every_kernel,
                               recursive=recursive, texture_candidates=texture_candidates,
                               center_kernels=center_kernels, disk_radius=radius, shake_length=length,
                               overwrite=overwrite)
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
    exposure: float = typer.Option(2.0, help="First row's exposure (= the GS reference's), in interpolated frames."),
    readout: float = typer.Option(16.0, help="Extra exposure of the last row, in interpolated frames."),
    stride: int = typer.Option(2, help="Original frames between samples."),
    max_frames: Optional[int] = typer.Option(64, help="Read at most this many source frames."),
    reference: str = typer.Option("first_row", help="GS reference: first_row (GS exposure = the first row's window, "
                                  "as the captured GRR_real / RSGR-GS_v1 pairs), start (sharp frame at reset) or middle."),
):
    """Synthesise global-reset-release (GRR) blur and GS references from real video."""
    from ..synth.grr import build_grr_sequence, read_frames

    if (video is None) == (frames is None):
        _fail("give exactly one of --video or --frames")
    src = video or frames
    check_out_folder(out, "--out")
    try:
        clip = read_frames(src, max_frames=max_frames)
        man = build_grr_sequence(clip, out, seq=seq or src.stem, split=split, factor=factor, exposure=exposure,
                                 readout=readout, stride=stride, reference=reference)
    except _expected_errors() as e:
        _fail(str(e))
    typer.echo(f"wrote {man['num_pairs']} GRR/GS pairs to {out / split / (seq or src.stem)}")
