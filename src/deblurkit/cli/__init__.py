"""The ``deblurkit`` command (typer): deblur, train, evaluate, synth, inspect, export, models.

Every sub-command prints a clear one-line error (naming the file and the problem) and exits with
status 2 on bad input, instead of a traceback. Sub-commands live in the modules of this package
(``core.py``, ``synth.py`` and one per system); each module adds its commands to :data:`app` /
:data:`synth_app` on import, and every module here is imported below.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="deblurkit: image deblurring toolkit (RSS-T, ASPDC, Blur2Blur, MSDI-Net, "
                       "event-guided low-light deblurring).")
synth_app = typer.Typer(no_args_is_help=True, help="Synthesise training data.")
app.add_typer(synth_app, name="synth")


def fail(msg: str) -> None:
    """Print ``error: msg`` in red on stderr and exit with status 2."""
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def expected_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input (reported in one line, no traceback)."""
    from ..engine import ConfigError, RunExistsError
    from ..io import ImageReadError, ImageWriteError
    from ..models import CheckpointMismatchError

    return (ImageReadError, ImageWriteError, CheckpointMismatchError, ConfigError, RunExistsError,
            KeyError, ValueError, OSError)  # OSError: missing, unreadable, existing files (named)


def check_out_folder(out, option: str = "-o") -> None:
    """Fail (exit 2) unless the output folder ``out`` can be created and written, before any work
    starts: it is created (with its parents) and a temporary file is written and removed there.
    ``option`` names the command's option in the message. ``None`` (no output asked) passes."""
    if out is None:
        return
    import tempfile
    from pathlib import Path

    out = Path(out)
    if out.exists() and not out.is_dir():
        fail(f"{option} {out}: exists and is not a folder; give a folder for the outputs")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        fail(f"{option} {out}: cannot write there ({e.strerror or e}); choose another {option}")


def parse_tile(tile):
    """``--tile``: None / 'off' -> None, 'auto', or an integer tile size."""
    if tile in (None, "0", "none", "off"):
        return None
    if tile == "auto":
        return "auto"
    try:
        return int(tile)
    except ValueError:
        fail(f"--tile must be an integer, 'auto' or 'off', got {tile!r}")


def image_saver(out, save_images: bool, data=None):
    """``--save-images``: a callback ``(name, restored (1,C,H,W))`` writing
    ``<out>/images/<name>.png`` (atomic; an image suffix of ``name`` is dropped, sub-folders such
    as ``<scene>/`` kept), or None when not asked. Fails (exit 2) when ``--save-images`` is given
    without ``--out``, and before overwriting an existing file inside ``data`` (the inputs)."""
    if not save_images:
        return None
    if out is None:
        fail("--save-images needs --out")
    from pathlib import Path

    from ..io import IMAGE_EXTENSIONS, save_image

    def on_image(name, img):
        rel = Path(name)
        rel = rel.with_suffix("") if rel.suffix.lower() in IMAGE_EXTENSIONS else rel
        path = Path(out) / "images" / f"{rel}.png"
        if data is not None and path.exists() and path.resolve().is_relative_to(Path(data).resolve()):
            fail(f"{path}: --save-images would overwrite a file of the input data {data}; choose another --out")
        save_image(path, img[0])

    return on_image


def report_results(res, protocol: str, out, title: str) -> None:
    """Print the mean PSNR / SSIM of an evaluation (with the blurry input's and the gain) and,
    with ``out``, write ``results.csv`` / ``results.md`` there."""
    from ..engine import write_results

    m = res.mean
    typer.echo(f"{len(res.rows)} images, protocol {protocol}: PSNR {m['psnr']:.2f} dB "
               f"(input {m['psnr_input']:.2f}, gain {m['psnr_gain']:+.2f}), "
               f"SSIM {m['ssim']:.4f} (input {m['ssim_input']:.4f})")
    if out is not None:
        csv_p, md_p = write_results(res, out, title=title)
        typer.echo(f"wrote {csv_p} and {md_p}")


for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
