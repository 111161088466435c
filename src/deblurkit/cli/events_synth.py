"""``deblurkit synth events``: event-guided low-light deblurring data in the official layout."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import expected_errors as _expected_errors
from . import check_out_folder
from . import fail as _fail
from . import synth_app


def _parse_size(size: Optional[str]):
    if size is None:
        return None
    try:
        h, w = (int(v) for v in size.lower().split("x"))
    except ValueError:
        _fail(f"--size must look like 768x960 (height x width), got {size!r}")
    return h, w


@synth_app.command("events")
def synth_events(
    photos: Optional[Path] = typer.Option(None, "--photos", help="Folder of sharp photos (official: linearised RealBlur sources, 768x960)."),
    video: Optional[Path] = typer.Option(None, "--video", help="Video file: ideal event simulator on flow-interpolated frames."),
    frames: Optional[Path] = typer.Option(None, "--frames", help="Folder of video frames (as --video)."),
    out: Path = typer.Option(..., "--out", help="Output root (share/, subnetwork1/, subnetwork2/, others/)."),
    mode: str = typer.Option("train", help="Photos: train (flips by trajectory index) or test (adds kernels)."),
    trajectories: int = typer.Option(20, help="Photos: samples (camera trajectories) per photo (official 20)."),
    size: Optional[str] = typer.Option(None, help="Photos: centre-crop and resize every photo to HxW, e.g. 768x960."),
    seed: int = typer.Option(0),
    official_seed: bool = typer.Option(False, "--official-seed", help="Official quirk: simulator/noise RNG reset to 42 for every sample."),
    official_leak_offset: bool = typer.Option(False, "--official-leak-offset", help="Official quirk: leak offset also shifts the filter states at start (spurious ON events)."),
    official_shot_noise_polarity: bool = typer.Option(False, "--official-shot-noise-polarity", help="Official quirk: OFF shot-noise events recorded as ON."),
    fps: float = typer.Option(25.0, help="Video: frame rate."),
    factor: int = typer.Option(12, help="Video: frame interpolation factor."),
    window: int = typer.Option(2, help="Video: exposure length in original frames (2 x 12 + 1 = 25 sharp frames)."),
    stride: Optional[int] = typer.Option(None, help="Video: original frames between samples (default: --window)."),
    threshold: float = typer.Option(0.3, help="Video: contrast threshold of the ideal simulator."),
    max_frames: Optional[int] = typer.Option(64, help="Video: read at most this many frames."),
    seq: Optional[str] = typer.Option(None, help="Video: sample name prefix (default: the source's name)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a folder that already holds a dataset."),
):
    """Synthesise blurry low-light APS/RGB images, events and voxel grids (Zhou et al., IJCV 2023)."""
    if sum(x is not None for x in (photos, video, frames)) != 1:
        _fail("give exactly one of --photos, --video or --frames")
    check_out_folder(out, "--out")
    try:
        if photos is not None:
            from ..synth.events import DVSParams
            from ..synth.evdataset import build_event_dataset
            from ..synth.evsample import EventSynthConfig

            cfg = EventSynthConfig(
                dvs=DVSParams(official_leak_offset=official_leak_offset,
                              official_shot_noise_polarity=official_shot_noise_polarity),
                official_seed=official_seed)
            man = build_event_dataset(photos, out, mode=mode, trajectories_per_photo=trajectories, seed=seed,
                                      config=cfg, size=_parse_size(size), overwrite=overwrite)
        else:
            from ..synth.evvideo import build_event_dataset_from_video
            from ..synth.grr import read_frames

            src = video or frames
            clip = read_frames(src, max_frames=max_frames)
            man = build_event_dataset_from_video(clip, out, fps=fps, seq=seq or src.stem, factor=factor,
                                                 window=window, stride=stride, threshold=threshold, seed=seed,
                                                 overwrite=overwrite)
    except _expected_errors() + (FileExistsError,) as e:
        _fail(str(e))
    typer.echo(f"wrote {man['num_samples']} samples to {out}")
