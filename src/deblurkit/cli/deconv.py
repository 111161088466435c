"""Classical deblurring on the command line: ``deblurkit estimate-kernel`` and the helpers of the
classical options of ``deblurkit deblur`` (``--kernel``, ``--kernel-size``, ``--estimator``,
``--save-kernel``, ``--spatially-varying``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from . import app, expected_errors, fail


def classical_options(kernel: Optional[Path], kernel_size: Optional[int], save_kernel: bool,
                      spatially_varying: bool, estimator: Optional[str]) -> dict[str, Any]:
    """Keyword arguments of :class:`~deblurkit.inference.classical.ClassicalDeblurrer` from the
    CLI options, checked before any work.

    Raises:
        FileNotFoundError / ValueError: a missing or bad kernel file (named), an unknown
            estimator, a bad kernel size, or --kernel together with an estimator option.
    """
    from ..inference.classical import ESTIMATORS, read_kernel

    opts: dict[str, Any] = {"save_kernel": save_kernel, "spatially_varying": spatially_varying}
    if estimator is not None:
        if estimator not in ESTIMATORS:
            raise ValueError(f"--estimator {estimator!r} is unknown; choose one of {', '.join(ESTIMATORS)}")
        opts["method"] = estimator
    if kernel_size is not None:
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"--kernel-size must be an odd number of pixels >= 3, got {kernel_size}")
        opts["kernel_size"] = kernel_size
    if kernel is not None:
        if kernel_size is not None or estimator is not None or spatially_varying:
            raise ValueError("--kernel gives the kernel: --kernel-size, --estimator and --spatially-varying "
                             "(which steer its estimation) do not apply")
        read_kernel(kernel)  # fail now, naming the file
        opts["kernel"] = kernel
    return opts


def _image_size(path: Path) -> Optional[tuple[int, int]]:
    """(H, W) from the file header (EXIF orientation applied), or None when unreadable."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            w, h = im.size
            if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated by 90 degrees when read
                w, h = h, w
        return h, w
    except Exception:
        return None


def check_kernel_fits(kernel: Any, kernel_path: Optional[Path], files: list[Path]) -> None:
    """Refuse a ``--kernel`` larger than one of the images, before any work.

    Raises:
        ValueError: naming the kernel file, its size, and the first image it does not fit.
    """
    if kernel_path is None:
        return
    from ..inference.classical import read_kernel

    kh, kw = read_kernel(kernel_path).shape
    for f in files:
        size = _image_size(f)
        if size is not None and (kh > size[0] or kw > size[1]):
            raise ValueError(f"kernel file '{kernel_path}' ({kh}x{kw}) is larger than the image '{f}' "
                             f"({size[0]}x{size[1]})")


@app.command("estimate-kernel")
def estimate_kernel_cmd(
    photo: Path = typer.Argument(..., help="Blurry photo."),
    out: Path = typer.Option(..., "-o", "--out", help="Kernel picture to write (.png); the exact kernel goes to the .npy beside it."),
    kernel_size: Optional[int] = typer.Option(None, "--kernel-size", help="Odd kernel size in pixels (default: automatic)."),
    estimator: Optional[str] = typer.Option(None, "--estimator", help="dark_channel (default) or l0."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N or auto."),
):
    """Estimate the blur kernel of a photo (blind, the classical pipeline's first stage) and write
    it as KERNEL.png (scaled to its maximum and enlarged, for viewing) + KERNEL.npy (exact, sums
    to 1; `deblurkit deblur --kernel KERNEL.npy` reuses it; the PNG works too)."""
    from ..inference.classical import ClassicalDeblurrer, write_kernel
    from ..io import read_image

    if out.suffix.lower() != ".png":
        fail(f"{out}: the kernel picture must be a .png (the exact kernel is written beside it as .npy)")
    npy = out.with_suffix(".npy")
    try:
        opts = classical_options(None, kernel_size, False, False, estimator)
        opts.pop("save_kernel"), opts.pop("spatially_varying")
        image = read_image(photo, channels=3)
        d = ClassicalDeblurrer(device=device, progress=False, **opts)
        res = d.estimate(image)
        if res.kernel is not None:
            write_kernel(res.kernel, out, npy, protected=(photo,))
    except (expected_errors() + (RuntimeError,)) as e:
        fail(str(e))
    if res.kernel is None:
        typer.secho(f"{photo}: kernel estimate unreliable ({res.reason or 'no reason given'}); wrote nothing",
                    fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(1)
    kh, kw = res.kernel.shape
    if res.fell_back:
        typer.secho(f"{photo}: kernel estimate unreliable ({res.reason or 'no reason given'}); "
                    f"wrote the conservative {kh}x{kw} kernel used instead to {out} and {npy}",
                    fg=typer.colors.YELLOW, err=True)
        return
    top, left, rh, rw = res.region or (0, 0, 0, 0)
    typer.echo(f"{photo}: kernel {kh}x{kw} estimated ({d.method}) on the {rw}x{rh} region at x={left}, y={top} "
               f"in {res.timings.get('total', 0.0):.1f} s; wrote {out} and {npy}")
