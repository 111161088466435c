"""Blur2Blur commands: ``deblurkit blur2blur filter`` (rank blur/sharp pairs by PSNR) and the
converter pipeline behind ``deblurkit deblur/evaluate --model blur2blur --converter CKPT
--deblurrer NAME[:CKPT]`` (:func:`make_deblurrer`)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Optional

import typer

from . import app, expected_errors, fail

b2b_app = typer.Typer(no_args_is_help=True, help="Blur2Blur (blur conversion) tools.")
app.add_typer(b2b_app, name="blur2blur")


def make_deblurrer(model: Optional[str], weights: Optional[Path], converter: Optional[Path],
                   deblurrer: Optional[str], *, classical: Optional[dict] = None, **kwargs):
    """The restorer of ``deblurkit deblur``/``evaluate``: without a model and weights (or with
    ``--model classical``) the classical pipeline
    (:class:`~deblurkit.inference.classical.ClassicalDeblurrer`, options ``classical``: kernel,
    kernel_size, method, save_kernel, spatially_varying); a plain :class:`Deblurrer` for a network
    (``mimo_unet_small`` loads the embedded weights; ``--weights`` alone: the architecture is
    detected from the file); with ``--model blur2blur`` a
    :class:`~deblurkit.inference.blur2blur.Blur2BlurDeblurrer`. ``kwargs``: device, precision,
    tile, tile_overlap, progress (``precision`` must be fp32 for the classical pipeline).

    Raises:
        ValueError: ``blur2blur`` without ``--converter``, ``--converter``/``--deblurrer`` with
            another model, ``--weights`` with ``blur2blur`` (the deblurrer's weights go in
            ``--deblurrer NAME:CKPT``) or with the classical pipeline, bf16 with the classical
            pipeline, bad classical options.
    """
    from ..inference import Deblurrer

    if model == "classical" or (model is None and weights is None):
        from ..inference.classical import ClassicalDeblurrer

        if converter is not None or deblurrer is not None:
            raise ValueError("--converter and --deblurrer belong to --model blur2blur")
        if weights is not None:
            raise ValueError("--weights belongs to a network (--model NAME): the classical pipeline has no weights")
        precision = kwargs.pop("precision", "fp32")
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"--precision must be fp32 or bf16, got {precision!r}")
        if precision != "fp32":
            raise ValueError(f"--precision {precision} applies to networks; the classical pipeline runs in fp32")
        return ClassicalDeblurrer(**(classical or {}), **kwargs)
    if model != "blur2blur":
        if converter is not None or deblurrer is not None:
            raise ValueError("--converter and --deblurrer belong to --model blur2blur")
        return Deblurrer(model=model, weights=weights, **kwargs)
    if converter is None:
        raise ValueError("--model blur2blur needs --converter CKPT (the converter's weights)")
    if weights is not None:
        raise ValueError("with --model blur2blur give the deblurrer's weights as --deblurrer NAME:CKPT, "
                         "not --weights")
    from ..inference.blur2blur import Blur2BlurDeblurrer

    return Blur2BlurDeblurrer(converter, deblurrer, **kwargs)


@b2b_app.command("filter")
def filter_cmd(
    blur: Path = typer.Argument(..., help="Folder of blurry images."),
    sharp: Path = typer.Argument(..., help="Folder of their sharp images (same file names)."),
    out: Path = typer.Option(..., "-o", "--out", help="Ranking file to write (.csv or .json)."),
    keep: Optional[int] = typer.Option(None, "--keep", help="Print the names and PSNR of the N least blurry pairs."),
):
    """Rank blurry/sharp pairs by PSNR, least blurry first (Blur2Blur data/filter_blurimg.py)."""
    from ..data.unaligned import rank_pairs_by_psnr
    from ..io.atomic import write_text_atomic

    if out.suffix.lower() not in (".csv", ".json"):
        fail(f"{out}: the ranking file must end in .csv or .json")
    try:
        ranking = rank_pairs_by_psnr(blur, sharp)
    except expected_errors() as e:
        fail(str(e))
    if out.suffix.lower() == ".json":
        text = json.dumps([{"rank": i + 1, "name": n, "psnr": p} for i, (n, p) in enumerate(ranking)], indent=1)
    else:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["rank", "name", "psnr"])
        for i, (n, p) in enumerate(ranking):
            w.writerow([i + 1, n, f"{p:.4f}"])
        text = buf.getvalue()
    try:
        write_text_atomic(out, text + ("" if text.endswith("\n") else "\n"))
    except OSError as e:
        fail(f"{out}: cannot write ({e.strerror or e})")
    shown = ranking[:keep] if keep else ranking[:0]
    for n, p in shown:
        typer.echo(f"{n}\t{p:.2f}")
    lo, hi = ranking[-1][1], ranking[0][1]
    typer.echo(f"ranked {len(ranking)} pairs (PSNR {hi:.2f} .. {lo:.2f} dB) -> {out}")
