"""ASPDC on the command line: ``deblurkit evaluate --reblur-consistency`` (dispatched here from
:mod:`.core`), the no-reference deblurring-reblurring consistency score of any deblurrer on
real blurry photos (:mod:`deblurkit.inference.reblur_consistency`)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from . import app  # noqa: F401 - this module adds no command of its own
from . import expected_errors as _expected_errors
from . import fail as _fail
from . import image_saver
from . import parse_tile as _parse_tile


def _sidecar_overrides(weights: Optional[Path], model: Optional[str]) -> Optional[dict]:
    """Constructor overrides from ``<weights>.json`` written by ``deblurkit train``/``export`` (e.g.
    ``official_compat: false`` of an ASPDC trained with the fixed branch), when it names ``model``."""
    if weights is None:
        return None
    side = weights.with_suffix(".json")
    if not side.is_file():
        return None
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        _fail(f"{side}: unreadable weights description ({e})")
    if not isinstance(meta, dict):
        _fail(f"{side}: weights description must be a JSON object")
    if model is not None and meta.get("model") != model:
        return None
    return dict(meta.get("overrides") or {})


def reblur_consistency_command(
    data: Path, reblur_weights: Optional[Path], model: Optional[str], weights: Optional[Path],
    out: Optional[Path], save_images: bool, device: str, precision: str, tile: Optional[str], tile_overlap: int,
) -> None:
    """``deblurkit evaluate --data PHOTOS --reblur-consistency --reblur-weights R [--model M --weights W]``."""
    from ..inference import Deblurrer
    from ..inference.reblur_consistency import ReblurConsistency
    from ..io import list_images, read_image
    from ..io.atomic import write_text_atomic

    if reblur_weights is None:
        _fail("--reblur-consistency needs --reblur-weights (the reblurring network aspdc_reblur: the official "
              "ReBlurringNet.pth or weights.safetensors from configs/aspdc_reblur_gopro.yaml)")
    try:
        files: List[Path] = list_images([data])
        if not files:
            _fail(f"no images found in {data}")
        d = Deblurrer(model=model, weights=weights, device=device, precision=precision, tile=_parse_tile(tile),
                      tile_overlap=tile_overlap, progress=False,
                      model_overrides=_sidecar_overrides(weights, model))
        scorer = ReblurConsistency(reblur_weights, device=device)
        images = ((f.name, read_image(f, channels=3)) for f in files)
        on_image = image_saver(out, save_images, data)

        res = scorer.evaluate(d.deblur_tensor, images, on_image=on_image)
    except _expected_errors() as e:
        _fail(str(e))
    m = res.mean
    label = model or "default"
    typer.echo(f"{len(res.rows)} images, reblurring consistency of {label}: PSNR(B, R(B, D(B))) {m['psnr']:.2f} dB "
               f"(do nothing: {m['psnr_identity']:.2f} dB; PSNR(B, D(B)) {m['psnr_change']:.2f} dB)")
    if out is not None:
        write_text_atomic(out / "consistency.csv", res.to_csv())
        write_text_atomic(out / "consistency.md", res.to_markdown(f"{label} on {data}"))
        typer.echo(f"wrote {out / 'consistency.csv'} and {out / 'consistency.md'}")
