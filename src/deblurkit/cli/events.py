"""Event-guided low-light deblurring on the command line (``evdeblur`` / ``evdeblur_rgb``).

``deblurkit deblur --model evdeblur --weights W --events REC -o OUT`` lands here
(:func:`deblur_events`), as does ``deblurkit evaluate --model evdeblur ...``
(:func:`evaluate_events`). ``REC`` is a recording (``.aedat4``, ``.npz``, ``.h5``) or a folder in
the official real / hybrid layout (``events_voxel_grid/``, ``APS_blur/`` [, ``RGB_blur/``]).

``OUT`` is written in the official real layout, so it can be read back with ``--events OUT`` or
``--layout evdeblur_real``: ``APS_blur/<name>.png`` (the blurry APS frames, as recorded),
``events_voxel_grid/<name>.npy`` (the raw (H, W, 13) voxel grid of each frame's events) and,
next to them, the deblurred frames ``S_pred/<name>.png`` (``S_pred_RGB/`` for the hybrid model,
the folder names of the official ``execute/infer_full.py``), plus ``frames.csv`` (window and
event count per frame) and, with ``--compare``, ``compare/<name>.png`` (blurry | events |
deblurred).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from . import expected_errors as _expected_errors
from . import check_out_folder
from . import fail as _fail
from . import image_saver, report_results

if TYPE_CHECKING:  # torch / numpy are imported where used: `deblurkit --help` stays light
    import numpy as np
    import torch

EVENT_MODELS = ("evdeblur", "evdeblur_rgb")


def parse_frames(spec: Optional[str]) -> slice | None:
    """``--frames``: ``None`` (all), ``"a:b"`` (Python slice, either end optional) or ``"i"`` (one frame)."""
    if spec in (None, "", ":"):
        return None
    try:
        if ":" in spec:
            a, b = spec.split(":", 1)
            return slice(int(a) if a.strip() else None, int(b) if b.strip() else None)
        i = int(spec)
        return slice(i, i + 1 if i != -1 else None)
    except ValueError:
        _fail(f"--frames must look like 'a:b' or 'i', got {spec!r}")


def event_image(voxel: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Colour picture of a voxel grid (bins, H, W): per pixel the sum over bins, red where > 0
    (more ON events), blue where < 0, white where 0 (the colours of the official
    ``visualize_voxel_grid`` in ``scripts/script_utils/Events.py``). Returns (3, H, W) in [0, 1]."""
    import numpy as np
    import torch

    s = torch.as_tensor(np.asarray(voxel)).sum(0)
    img = torch.ones(3, *s.shape)
    img[1:, s > 0] = 0.0
    img[:2, s < 0] = 0.0
    return img


def _panel(blurry: torch.Tensor, voxel: torch.Tensor, sharp: torch.Tensor) -> torch.Tensor:
    """blurry | events | deblurred, RGB, with 4-pixel white bars (events resized to the image)."""
    import torch

    h, w = sharp.shape[-2:]
    ev = event_image(voxel)
    if ev.shape[-2:] != (h, w):
        ev = torch.nn.functional.interpolate(ev[None], size=(h, w), mode="nearest")[0]
    bar = torch.ones(3, h, 4)
    rgb = [t.expand(3, h, w) for t in (blurry, ev, sharp)]
    return torch.cat([rgb[0], bar, rgb[1], bar, rgb[2]], dim=2)


def _open(events: Path, window: str, frames: slice | None, rgb: bool):
    from ..data.events import EventDeblurDataset, RecordingFrames

    if events.is_dir():
        ds = EventDeblurDataset(events, "real", rgb=rgb)
        if frames is not None:
            ds.names = ds.names[frames]
        return ds
    return RecordingFrames(events, window=window, frames=frames, normalize=True)


def deblur_events(events: Path, out: Path, model: Optional[str], weights: Optional[Path], device: str = "auto",
                  window: str = "exposure", frames: Optional[str] = None, compare: bool = False) -> None:
    """Body of ``deblurkit deblur --events``: see the module docstring."""
    from ..inference.events import EventDeblurrer
    from ..io.atomic import write_text_atomic

    if not events.exists():
        _fail(f"event recording not found: '{events}'")
    if model is None:
        model = "evdeblur_rgb" if events.is_dir() and (events / "RGB_blur").is_dir() else "evdeblur"
    if model not in EVENT_MODELS:
        _fail(f"--events needs an event-guided model ({', '.join(EVENT_MODELS)}), got --model {model}")
    if weights is None:
        _fail(f"--model {model} needs --weights PATH: deblurkit ships no weights for it (train your own with "
              "configs/evdeblur_full_synthetic.yaml, or use the official final.pth / final_rgb.pth)")
    check_out_folder(out)
    rgb = model == "evdeblur_rgb"
    if rgb and not events.is_dir():
        _fail(f"{events}: a recording has no RGB frames; evdeblur_rgb needs a folder in the hybrid layout "
              "(events_voxel_grid/, APS_blur/, RGB_blur/)")
    try:
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            ds = _open(events, window, parse_frames(frames), rgb)
        for w in caught:
            typer.secho(f"warning: {w.message}", fg=typer.colors.YELLOW, err=True)
        d = EventDeblurrer(model, weights=weights, device=device)
    except _expected_errors() as e:
        _fail(str(e))
    if len(ds) == 0:
        _fail(f"{events}: no frames selected")
    same_folder = events.is_dir() and events.resolve() == out.resolve()
    protected = [p for p in events.rglob("*") if p.is_file()] if events.is_dir() else [events]
    out_dir = out / ("S_pred_RGB" if rgb else "S_pred")
    rows = []
    from tqdm.auto import tqdm

    for i in tqdm(range(len(ds)), desc=f"{model} {events.name}", unit="frame"):
        try:
            it = ds[i]
            res = d.run(it["E"], it["B"], it["Bi"] if rgb else None)
        except _expected_errors() as e:
            _fail(str(e))
        name = it["name"]
        try:
            _write_frame(out, out_dir, name, it, res, rgb, same_folder, compare, protected, events)
        except _expected_errors() as e:
            _fail(str(e))
        rows.append({"name": name, "t0_us": it.get("t0", ""), "t1_us": it.get("t1", ""),
                     "n_events": it.get("n_events", int((it["E"] != 0).sum()))})
    buf = io.StringIO()
    wr = csv.DictWriter(buf, fieldnames=list(rows[0]))
    wr.writeheader()
    wr.writerows(rows)
    write_text_atomic(out / "frames.csv", buf.getvalue())
    typer.echo(f"wrote {len(rows)} deblurred frame(s) to {out_dir} (blurry APS frames in {out / 'APS_blur'})")


def evaluate_events(data: Path, layout: str, model: str, weights: Optional[Path], protocol: str, split: str,
                    out: Optional[Path], save_images: bool, device: str) -> None:
    """Body of ``deblurkit evaluate --model evdeblur[_rgb]``: the layout's items carry ``E`` and
    ``B``; each blurry image is restored with them (padding handled) and scored by the protocol."""
    from ..data import open_layout
    from ..engine import evaluate as run_eval
    from ..engine import get_protocol
    from ..inference.events import EventDeblurrer

    if model not in EVENT_MODELS:
        _fail(f"evaluate_events needs {EVENT_MODELS}, got {model}")
    try:
        get_protocol(protocol)
        ds = open_layout(layout, data, split)
        d = EventDeblurrer(model, weights=weights, device=device)
    except _expected_errors() as e:
        _fail(str(e))
    if len(ds) and "gt" not in ds[0]:
        _fail(f"{data}: layout {layout} has no sharp references to score against; use "
              f"`deblurkit deblur --model {model} --events {data}` to deblur it")
    current: dict = {}

    def pairs():
        for i in range(len(ds)):
            current.clear()
            current.update(ds[i])
            yield current["name"], current["lq"], current["gt"]

    def restore(lq: torch.Tensor) -> torch.Tensor:
        # the evaluator hands over the blurry image of the item `pairs` just yielded
        res = d.run(current["E"][None], current["B"][None], lq if model == "evdeblur_rgb" else None)
        return res.S

    on_image = image_saver(out, save_images, data)

    try:
        res = run_eval(restore, pairs(), protocol, total=len(ds), on_image=on_image)
    except _expected_errors() as e:
        _fail(str(e))
    report_results(res, protocol, out, title=f"{model} on {data}")


def _write_frame(out, out_dir, name, it, res, rgb, same_folder, compare, protected, events) -> None:
    """Write one deblurred frame (``S_pred*/``) and, unless ``out`` is the input folder, its
    blurry APS/RGB frames and voxel grid in the official layout; ``--compare`` panels too.
    Raises ImageWriteError before overwriting a ``protected`` input."""
    import numpy as np

    from ..io import save_image
    from ..io.atomic import atomic_path
    from ..synth.voxel import to_official_layout

    save_image(out_dir / f"{name}.png", res.S, protected=protected)
    if not same_folder:
        save_image(out / "APS_blur" / f"{name}.png", it["B"], protected=protected)
        if rgb:
            save_image(out / "RGB_blur" / f"{name}.png", it["Bi"], protected=protected)
        raw = (to_official_layout(it["voxel"].numpy()) if "voxel" in it
               else np.load(events / "events_voxel_grid" / f"{name}.npy", allow_pickle=False))
        with atomic_path(out / "events_voxel_grid" / f"{name}.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, raw)
    if compare:
        save_image(out / "compare" / f"{name}.png", _panel(it["Bi"], it.get("voxel", it["E"]), res.S),
                   protected=protected)
