"""The default deblurrer: classical blind deconvolution (kernel estimation + non-blind deconvolution).

    >>> from deblurkit.inference.classical import ClassicalDeblurrer
    >>> d = ClassicalDeblurrer()                                  # blind: estimates the kernel
    >>> d.deblur_files(["photo.jpg"], "out/", compare=True)
    >>> d = ClassicalDeblurrer(kernel="psf.npy")                  # non-blind with a known PSF
    >>> res = d.restore(blurry)                                   # (1,C,H,W) in [0, 1]
    >>> res.image, res.kernel, res.fell_back, res.reason

Per image (:meth:`ClassicalDeblurrer.restore`):

1. **Kernel.** Given (``kernel=``: a tensor or a ``.npy`` / image file, see :func:`read_kernel`),
   or estimated by the pipeline of :mod:`deblurkit.deconv.pipeline` on a region of bounded size
   (chosen by ``deblurkit.deconv.region.select_region``), so the cost of the estimate does not
   grow with the photo. The pipeline checks the estimate and falls back to a conservative
   result when it is unreliable (``fell_back`` / ``reason``).
   Photos larger than 4 MP are first narrowed to a :data:`ESTIMATE_WINDOW` square (the most
   informative one at a coarse scale), so time and memory stay bounded.
2. **Non-blind deconvolution** of the whole photo with that kernel (the pipeline's
   ``deconvolve_masked``: hyper-Laplacian prior, unknown-boundary data term, clipped highlights
   refilled), tiled with :func:`~deblurkit.inference.tiling.tiled_forward` for photos above
   :data:`ONE_PASS_MEGAPIXELS` (tiles of :data:`AUTO_TILE` pixels overlapping by at least twice
   the kernel size, one noise level for the photo), so a 12 MP photo stays within a few GB of
   memory. Smaller photos go through ``blind_deblur`` in one call.
3. The result is clamped to [0, 1].

Sources: Pan, Sun, Pfister & Yang, *Blind Image Deblurring Using Dark Channel Prior*, CVPR 2016
(the estimator, in :mod:`deblurkit.deconv.blind`); Krishnan & Fergus, *Fast Image Deconvolution
using Hyper-Laplacian Priors*, NIPS 2009 (the non-blind step, :mod:`deblurkit.deconv.nonblind`).

The runner has the :class:`~deblurkit.inference.Deblurrer` interface used by the CLI and the web
app (``deblur_tensor``, ``deblur_file``, ``deblur_files``, ``tile_for``); per file it can also
write the kernel (``<stem>_kernel.png`` for viewing, ``<stem>_kernel.npy`` exact) and it reports
fallbacks in :attr:`DeblurSummary.notes`.
"""
from __future__ import annotations

import inspect
import io as _io
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..engine.trainer import resolve_device
from .deblurrer import Deblurrer, DeblurSummary, make_comparison, validated_batch
from .tiling import tiled_forward

__all__ = [
    "ClassicalDeblurrer",
    "ClassicalResult",
    "read_kernel",
    "write_kernel",
    "kernel_picture",
    "add_kernel_inset",
    "CLASSICAL_NAME",
    "ESTIMATORS",
    "ONE_PASS_MEGAPIXELS",
    "AUTO_TILE",
    "ESTIMATE_WINDOW",
    "KERNEL_SUFFIXES",
]

PathLike = str | os.PathLike

#: Name of the classical pipeline wherever a model name is expected (CLI ``--model``, web app).
CLASSICAL_NAME = "classical"
#: Blind estimators offered by ``--estimator`` (``method=`` of ``deblurkit.deconv.blind.estimate_kernel``).
ESTIMATORS = ("dark_channel", "l0")
#: Photos up to this size are deconvolved in one pass; larger ones in tiles (``tile="auto"``).
ONE_PASS_MEGAPIXELS = 2.0
#: Tile side (pixels) of the automatic tiling of the non-blind stage.
AUTO_TILE = 1024
#: Side (pixels) of the part of a large photo the kernel is estimated in: the pipeline picks its
#: region inside it, so the estimate's time and memory stay bounded for any photo size.
ESTIMATE_WINDOW = 2048
#: Kernel files :func:`read_kernel` accepts: NumPy arrays and images.
KERNEL_SUFFIXES = (".npy", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
#: PNG text key recording the nearest-neighbour upscale factor of a kernel picture written by
#: :func:`write_kernel`, so :func:`read_kernel` gives back the kernel at its true size.
_UPSCALE_KEY = "deblurkit-kernel-upscale"


# ---------------------------------------------------------------------------------- kernel files


def _kernel_error(path: Path, problem: str) -> ValueError:
    return ValueError(f"kernel file '{path}': {problem}")


def read_kernel(path: PathLike) -> torch.Tensor:
    """Read a blur kernel (PSF) from a ``.npy`` array or an image file, normalised to sum 1.

    - ``.npy``: a 2-D array of non-negative finite numbers (singleton axes are dropped, so
      ``(1, K, K)`` works); read with ``allow_pickle=False``.
    - an image (PNG, JPEG, TIFF, BMP, WebP): its grey level (ITU-R BT.601 luma for colour files,
      alpha ignored) is the kernel's weight. A kernel picture written by :func:`write_kernel`
      (``<name>_kernel.png``) is reduced back to its true size by the upscale factor stored in
      the PNG; other pictures are used pixel for pixel (so the kernel must be drawn at the
      photo's scale). Image files carry the kernel only up to scale: it is always normalised.

    The kernel's centre is its pixel ``(K_h // 2, K_w // 2)`` (``deblurkit.synth.blur.blur``'s
    convention); odd sizes are expected for a centred PSF.

    Returns:
        float32 ``(K_h, K_w)`` tensor on the CPU, ``>= 0``, summing to 1.

    Raises:
        FileNotFoundError: no such file.
        ValueError: (message names the file) unsupported suffix, an empty or unreadable file,
            not 2-D, empty, non-finite or negative entries, or all zeros.
    """
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"kernel file not found: '{path}'")
    suffix = path.suffix.lower()
    if suffix not in KERNEL_SUFFIXES:
        raise _kernel_error(path, f"unsupported type '{path.suffix or '(none)'}'; use a .npy array or a "
                                  "PNG/JPEG/TIFF picture of the kernel")
    if path.stat().st_size == 0:
        raise _kernel_error(path, "the file is empty")
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as exc:  # ValueError, EOFError, OSError, pickle refusal: all mean "not an array"
            raise _kernel_error(path, f"not a readable NumPy .npy array ({type(exc).__name__}: {exc})") from None
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
            raise _kernel_error(path, f"expected a numeric array, got dtype {getattr(arr, 'dtype', type(arr))}")
        arr = np.squeeze(arr.astype(np.float64))
        k = torch.from_numpy(np.ascontiguousarray(arr))
    else:
        from ..io import ImageReadError, load_image, rgb_to_grey

        try:
            loaded = load_image(path)
        except ImageReadError as exc:
            problem = str(exc).split("': ", 1)[-1]
            raise _kernel_error(path, f"not a readable kernel picture: {problem}") from None
        img = loaded.image
        k = (rgb_to_grey(img[None])[0] if img.shape[0] == 3 else img)[0].double()
        factor = _png_upscale_factor(path)
        if factor > 1 and k.shape[0] % factor == 0 and k.shape[1] % factor == 0:
            k = k[factor // 2 :: factor, factor // 2 :: factor]
    if k.dim() != 2:
        raise _kernel_error(path, f"expected a 2-D kernel, got shape {tuple(k.shape)}")
    if k.numel() == 0:
        raise _kernel_error(path, f"the kernel is empty (shape {tuple(k.shape)})")
    if not torch.isfinite(k).all():
        raise _kernel_error(path, "contains NaN or infinite values")
    if float(k.min()) < 0:
        raise _kernel_error(path, f"has negative entries (min {float(k.min()):.3g}); a blur kernel is non-negative")
    total = float(k.sum())
    if not total > 0:
        raise _kernel_error(path, "all entries are zero")
    return (k / total).float().contiguous()


def _png_upscale_factor(path: Path) -> int:
    try:
        from PIL import Image

        with Image.open(path) as im:
            value = (getattr(im, "text", None) or {}).get(_UPSCALE_KEY)
        return max(1, int(value)) if value else 1
    except Exception:
        return 1


def kernel_picture(kernel: torch.Tensor, *, min_side: int = 256) -> tuple[torch.Tensor, int]:
    """A viewable picture of a kernel: scaled to its maximum, upscaled (nearest) to ``~min_side``.

    Args:
        kernel: ``(K_h, K_w)`` non-negative tensor.
        min_side: the longer side of the picture is at least this (unless the kernel is larger).

    Returns:
        ``(picture, factor)``: float32 ``(1, factor * K_h, factor * K_w)`` in [0, 1] on the CPU
        (the kernel's maximum is white) and the integer upscale factor.
    """
    k = kernel.detach().float().cpu().clamp_min(0)
    peak = float(k.max())
    k = k / peak if peak > 0 else k
    factor = max(1, -(-int(min_side) // max(k.shape)))
    pic = k.repeat_interleave(factor, 0).repeat_interleave(factor, 1)
    return pic[None].contiguous(), factor


def _refuse_protected(path: Path, protected: Iterable[PathLike]) -> None:
    from ..io import ImageWriteError

    target = path.resolve()
    for item in protected:
        other = Path(item)
        same = other.resolve() == target
        if not same and path.exists() and other.exists():
            try:
                same = os.path.samefile(path, other)
            except OSError:
                same = False
        if same:
            raise ImageWriteError(f"refusing to write '{path}': it is the input '{other}'")


def write_kernel(
    kernel: torch.Tensor, png_path: PathLike, npy_path: PathLike | None = None, *, protected: Iterable[PathLike] = ()
) -> dict[str, Path]:
    """Write a kernel as a picture (``png_path``) and, optionally, exactly (``npy_path``).

    The PNG is 8-bit grey, scaled so the kernel's maximum is white and upscaled by nearest
    neighbour (:func:`kernel_picture`); the factor is stored in the PNG (text key
    ``deblurkit-kernel-upscale``) so :func:`read_kernel` restores the true size. The ``.npy``
    holds the float32 kernel summing to 1. Writes are atomic and never overwrite a path of
    ``protected``.

    Returns:
        ``{"kernel_png": Path, "kernel_npy": Path}`` (the latter only when ``npy_path`` is given).

    Raises:
        deblurkit.io.ImageWriteError: a destination is protected. OSError: writing failed.
    """
    import numpy as np
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from ..io.atomic import write_bytes_atomic

    png_path = Path(png_path)
    k = kernel.detach().float().cpu()
    pic, factor = kernel_picture(k)
    arr = (pic[0].numpy() * 255.0).round().astype(np.uint8)
    info = PngInfo()
    info.add_text(_UPSCALE_KEY, str(factor))
    buf = _io.BytesIO()
    Image.fromarray(arr, mode="L").save(buf, format="PNG", pnginfo=info)
    _refuse_protected(png_path, protected)
    written = {"kernel_png": write_bytes_atomic(png_path, buf.getvalue())}
    if npy_path is not None:
        npy_path = Path(npy_path)
        _refuse_protected(npy_path, protected)
        nbuf = _io.BytesIO()
        np.save(nbuf, (k / k.sum().clamp_min(1e-12)).numpy().astype(np.float32), allow_pickle=False)
        written["kernel_npy"] = write_bytes_atomic(npy_path, nbuf.getvalue())
    return written


def add_kernel_inset(panel: torch.Tensor, kernel: torch.Tensor, *, x0: int = 0, width: int | None = None,
                     fraction: float = 0.28, border: int = 2) -> torch.Tensor:
    """Paste a picture of ``kernel`` into the bottom-right corner of a panel of ``panel``.

    Args:
        panel: ``(C, H, W_total)`` float image in [0, 1] (e.g. from ``make_comparison``).
        kernel: ``(K_h, K_w)`` non-negative kernel.
        x0, width: the panel's horizontal extent inside ``panel`` (default: the whole width).
        fraction: inset side as a fraction of the panel's shorter side.
        border: white frame around the inset, pixels.

    Returns:
        a copy of ``panel`` with the inset (white kernel on black, framed in white).
    """
    out = panel.detach().float().cpu().clone()
    c, h, w_total = out.shape
    width = w_total - x0 if width is None else width
    side = max(8, int(min(h, width) * fraction))
    kh, kw = kernel.shape
    factor = max(1, side // max(kh, kw))
    pic, _ = kernel_picture(kernel, min_side=1)
    pic = pic[0].repeat_interleave(factor, 0).repeat_interleave(factor, 1)
    ph, pw = pic.shape
    if ph + 2 * border + 4 > h or pw + 2 * border + 4 > width:
        return out  # panel too small for a readable inset
    y1, x1 = h - 4, x0 + width - 4
    out[:, y1 - ph - 2 * border : y1, x1 - pw - 2 * border : x1] = 1.0
    out[:, y1 - ph - border : y1 - border, x1 - pw - border : x1 - border] = pic
    return out


# ---------------------------------------------------------------------------------- the runner


@dataclass
class ClassicalResult:
    """What :meth:`ClassicalDeblurrer.restore` gives for one image.

    Attributes:
        image: float32 ``(1, C, H, W)`` in [0, 1] on the CPU.
        kernel: float32 ``(K, K)`` kernel used for the whole photo (``None``: none was applied,
            the output is the input).
        fell_back: the estimated kernel was judged unreliable and a conservative result written.
        reason: why it fell back (empty otherwise).
        noise_sigma: estimated Gaussian noise level, intensity units in [0, 1] (``None`` unknown).
        estimated: the kernel was estimated (``False``: given by the user).
        region: ``(top, left, height, width)`` of the part the kernel was estimated on (``None``
            when given).
        tiles: number of tiles of the non-blind stage (1: one pass).
        timings: seconds per stage (``estimate``, ``deconvolve``, ``total``).
        per_region: kernels were estimated per region (``spatially_varying``); ``kernel`` is then
            the global one, used where a region's own estimate was unreliable.
    """

    image: torch.Tensor
    kernel: torch.Tensor | None
    fell_back: bool = False
    reason: str = ""
    noise_sigma: float | None = None
    estimated: bool = True
    region: tuple[int, int, int, int] | None = None
    tiles: int = 1
    timings: dict[str, float] = field(default_factory=dict)
    per_region: bool = False

    def describe(self) -> str:
        """One line for a report: the kernel used (or the fallback and why)."""
        if self.fell_back:
            what = "the input unchanged" if self.kernel is None else (
                f"a conservative deconvolution with a {self.kernel.shape[0]}x{self.kernel.shape[1]} kernel")
            return f"kernel estimate unreliable ({self.reason or 'no reason given'}); wrote {what}"
        if self.kernel is None:
            return "no kernel applied; wrote the input unchanged"
        kh, kw = self.kernel.shape
        how = f"estimated in {self.timings.get('estimate', 0.0):.1f} s" if self.estimated else "given"
        what = f"kernels per region (global {kh}x{kw})" if self.per_region else f"kernel {kh}x{kw}"
        return f"{what} {how}, {self.timings.get('total', 0.0):.1f} s in all"


def _tick(progress: Any) -> None:
    """Report a one-pass run as one tile done to a ``progress(done, total)`` callback."""
    if progress is not None and callable(progress) and not hasattr(progress, "update"):
        progress(1, 1)


def _cpu(kernel: Any) -> torch.Tensor | None:
    return None if kernel is None else kernel.detach().to("cpu", torch.float32)


def _float(v: Any) -> float | None:
    return None if v is None else float(torch.as_tensor(v).reshape(-1)[0])


def _region(region: Any) -> tuple[int, int, int, int] | None:
    return None if region is None else tuple(int(v) for v in region)  # type: ignore[return-value]


def _accepted(fn: Callable[..., Any], options: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``options`` that ``fn`` accepts (all of them when it takes ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return dict(options)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(options)
    return {k: v for k, v in options.items() if k in params}


class ClassicalDeblurrer(Deblurrer):
    """Blind (or non-blind with a given kernel) deconvolution of photos, tiled for large ones.

    Args:
        kernel: ``None`` (estimate per image), a ``(K_h, K_w)`` tensor (non-negative; normalised
            to sum 1), or a kernel file (``.npy`` / image, :func:`read_kernel`).
        kernel_size: odd kernel side for the estimator (``None``: chosen automatically by the
            pipeline). Ignored when ``kernel`` is given.
        method: blind estimator (:data:`ESTIMATORS`: ``"dark_channel"``, Pan et al. CVPR 2016;
            ``"l0"``, the same framework without the dark channel, Pan et al. 2014).
        spatially_varying: estimate kernels per overlapping region and blend them
            (``deblurkit.deconv.spatially_varying``; whole image at once, no tiling).
        save_kernel: :meth:`deblur_file` also writes ``<stem>_kernel.png`` / ``<stem>_kernel.npy``.
        device: ``"cpu"``, ``"cuda[:i]"`` or ``"auto"``: where the estimator and the tiles run.
        tile: non-blind tiling: ``"auto"`` (one pass up to :data:`ONE_PASS_MEGAPIXELS`, tiles of
            :data:`AUTO_TILE` pixels beyond), an int tile side, or ``None`` (one pass).
        tile_overlap: minimum tile overlap in pixels; at least twice the kernel size is used.
        progress: tqdm bars in :meth:`deblur_files`.
        fallback: let the pipeline fall back to a conservative result when the estimate is
            unreliable (``False``: always use the estimate).
        nonblind_method: ``method=`` of ``deblurkit.deconv.nonblind.deconvolve``.
        pipeline_options: further keyword arguments for ``blind_deblur`` (e.g. ``estimator=``).

    Raises:
        ValueError: bad ``method``/``tile``/``kernel_size``/``tile_overlap``,
            a bad kernel (message names the file). FileNotFoundError: missing kernel file.
        RuntimeError: CUDA asked for but not available.
    """

    def __init__(
        self,
        kernel: torch.Tensor | PathLike | None = None,
        kernel_size: int | None = None,
        method: str = "dark_channel",
        spatially_varying: bool = False,
        save_kernel: bool = False,
        device: str | torch.device = "cpu",
        tile: int | str | None = "auto",
        tile_overlap: int = 0,
        progress: bool = True,
        *,
        fallback: bool = True,
        nonblind_method: str = "hyper_laplacian",
        pipeline_options: dict[str, Any] | None = None,
    ) -> None:
        if method not in ESTIMATORS:
            raise ValueError(f"unknown kernel estimator {method!r}; choose one of {', '.join(ESTIMATORS)}")
        if kernel_size is not None and (isinstance(kernel_size, bool) or not isinstance(kernel_size, int)
                                        or kernel_size < 3 or kernel_size % 2 == 0):
            raise ValueError(f"kernel size must be an odd integer >= 3, got {kernel_size!r}")
        if not (tile is None or tile == "auto" or (isinstance(tile, int) and not isinstance(tile, bool) and tile > 0)):
            raise ValueError(f"tile must be None, a positive int or 'auto', got {tile!r}")
        if tile_overlap < 0:
            raise ValueError(f"tile_overlap must be >= 0, got {tile_overlap}")
        self.kernel_source: str | None = None
        if kernel is not None and not isinstance(kernel, torch.Tensor):
            self.kernel_source = str(kernel)
            kernel = read_kernel(kernel)
        elif kernel is not None:
            kernel = self._check_tensor_kernel(kernel)
            self.kernel_source = "the given kernel"
        if kernel is not None and spatially_varying:
            raise ValueError("a given kernel and spatially varying estimation exclude each other")
        self.kernel: torch.Tensor | None = kernel
        self.kernel_size = kernel_size
        self.method = method
        self.spatially_varying = bool(spatially_varying)
        self.save_kernel = bool(save_kernel)
        self.fallback = bool(fallback)
        self.nonblind_method = nonblind_method
        self.pipeline_options = dict(pipeline_options or {})
        self.device = resolve_device(device)
        self.tile = tile
        self.tile_overlap = int(tile_overlap)
        self.progress = bool(progress)
        # the Deblurrer attributes the shared file handling and callers read
        self.model_name = CLASSICAL_NAME
        self.model_overrides: dict[str, Any] = {}
        self.weights = None
        self.default_info = None
        self.precision = "fp32"
        self.whole_frame = self.spatially_varying
        self.size_multiple = 1
        self.batch_size = 1
        self.memory_budget_mb = None
        self.last_result: ClassicalResult | None = None
        self.notes: dict[Path, str] = {}
        self.fallbacks: set[Path] = set()

    @staticmethod
    def _check_tensor_kernel(kernel: torch.Tensor) -> torch.Tensor:
        k = kernel.detach().to("cpu", torch.float32)
        if k.dim() != 2 or k.numel() == 0:
            raise ValueError(f"kernel must be a non-empty (K_h, K_w) tensor, got shape {tuple(k.shape)}")
        if not torch.isfinite(k).all() or float(k.min()) < 0 or not float(k.sum()) > 0:
            raise ValueError("kernel must be finite, non-negative and not all zero")
        return (k / k.sum()).contiguous()

    def __repr__(self) -> str:
        what = f"kernel={self.kernel_source!r}" if self.kernel is not None else (
            f"method={self.method!r}, kernel_size={self.kernel_size!r}")
        return (f"ClassicalDeblurrer({what}, spatially_varying={self.spatially_varying}, "
                f"device={str(self.device)!r}, tile={self.tile!r})")

    # ------------------------------------------------------------------ tiling

    def tile_for(self, h: int, w: int) -> int | None:
        """The tile side of the non-blind stage for an ``h x w`` photo (``None``: one pass)."""
        if self.spatially_varying or self.tile is None:
            return None
        if self.tile == "auto":
            return None if h * w <= ONE_PASS_MEGAPIXELS * 1e6 else AUTO_TILE
        return int(self.tile)

    def overlap_for(self, kernel: torch.Tensor, tile: int) -> int:
        """Tile overlap for ``kernel``: ``max(tile_overlap, 2 * kernel size)``, at most half the tile."""
        need = max(self.tile_overlap, 2 * max(kernel.shape))
        return min(need, tile // 2)

    # ------------------------------------------------------------------ one image

    def _nonblind(self, x: torch.Tensor, kernel: torch.Tensor, sigma: float, estimated: bool) -> torch.Tensor:
        """The pipeline's non-blind step on a (n,C,h,w) batch on ``x.device``, unclamped:
        ``deblurkit.deconv.pipeline.deconvolve_masked`` (hyper-Laplacian, unknown boundary,
        clipped highlights refilled; a weaker data term for an ``estimated`` kernel) with the
        photo's noise level, so every tile of a photo is treated alike."""
        from ..deconv.pipeline import deconvolve_masked
        from ..deconv.region import saturation_mask

        saturation = float(self.pipeline_options.get("saturation", 0.98))
        opts: dict[str, Any] = {"noise_sigma": float(sigma), "estimated": estimated, "method": self.nonblind_method,
                                "clipped": saturation_mask(x, threshold=saturation, dilate=1)}
        opts = _accepted(deconvolve_masked, opts)
        opts.update(self.pipeline_options.get("deconv_options") or {})
        return deconvolve_masked(x, kernel.to(x.device), **opts)

    def _noise_level(self, image: torch.Tensor) -> float:
        """Noise sigma of a (1,C,H,W) photo ([0, 1] units): ``estimate_noise_level`` of its
        luminance, as the pipeline measures it."""
        from ..deconv.noise import estimate_noise_level
        from ..deconv.region import luminance

        return float(estimate_noise_level(luminance(image.to(self.device))).reshape(-1)[0])

    def _deconvolve_photo(self, image: torch.Tensor, kernel: torch.Tensor, sigma: float, estimated: bool,
                          progress: Any) -> tuple[torch.Tensor, int]:
        """Tiled (or one-pass) non-blind deconvolution of a (1,C,H,W) CPU photo; clamped, CPU."""
        _, _, h, w = image.shape
        tile = self.tile_for(h, w)
        if tile is not None and tile >= max(h, w):
            tile = None
        if tile is None:
            out = self._nonblind(image.to(self.device), kernel, sigma, estimated)
            _tick(progress)
            return out.detach().to("cpu", torch.float32).clamp_(0, 1), 1
        overlap = self.overlap_for(kernel, tile)
        count = [0]

        def fn(batch: torch.Tensor) -> torch.Tensor:
            count[0] += 1
            return self._nonblind(batch, kernel, sigma, estimated)

        out = tiled_forward(fn, image, tile=tile, overlap=overlap, multiple=1, batch_size=1,
                            progress=progress, device=self.device)
        return out.clamp_(0, 1), count[0]

    def _pipeline_options(self, fn: Callable[..., Any]) -> dict[str, Any]:
        opts: dict[str, Any] = {"kernel_size": self.kernel_size, "method": self.method, "fallback": self.fallback,
                                "deconv_method": self.nonblind_method}
        opts.update(self.pipeline_options)
        return _accepted(fn, opts)

    def restore(self, image: torch.Tensor, *, progress: Any = None) -> ClassicalResult:
        """Deblur one image and say how.

        A photo deconvolved in one pass (see :meth:`tile_for`) goes through
        :func:`deblurkit.deconv.pipeline.blind_deblur` as a whole; a larger one gets its kernel
        from ``estimate_checked_kernel`` (the same estimate, check and fallback, on a region of
        bounded size) and is then deconvolved tile by tile with the same non-blind step.

        Args:
            image: ``(1, C, H, W)`` or ``(C, H, W)`` float tensor in [0, 1], ``C`` in {1, 3}, any device.
            progress: ``None`` or a tile progress callback / tqdm-like object (as
                :func:`~deblurkit.inference.tiling.tiled_forward`).

        Returns:
            :class:`ClassicalResult` (``image`` float32 ``(1, C, H, W)`` in [0, 1] on the CPU).

        Raises:
            ValueError: a bad image (as :meth:`Deblurrer.deblur_tensor`; the pipeline needs at
                least 16x16 pixels), or a given kernel larger than the image (the message names
                the kernel file).
        """
        t0 = time.perf_counter()
        x = self._validated(image)
        if x.shape[0] != 1:
            raise ValueError(f"restore takes one image, got a batch of {x.shape[0]}")
        _, _, h, w = x.shape
        if self.kernel is not None:
            kh, kw = self.kernel.shape
            if kh > h or kw > w:
                raise ValueError(f"kernel {self.kernel_source} ({kh}x{kw}) is larger than the image ({h}x{w})")
            sigma = self._noise_level(x)
            t1 = time.perf_counter()
            out, tiles = self._deconvolve_photo(x, self.kernel, sigma, False, progress)
            t2 = time.perf_counter()
            return ClassicalResult(out, self.kernel.clone(), estimated=False, noise_sigma=sigma, tiles=tiles,
                                   timings={"estimate": 0.0, "deconvolve": t2 - t1, "total": t2 - t0})
        if self.spatially_varying:
            return self._restore_spatially_varying(x, t0)
        if self.tile_for(h, w) is None:  # one pass: the pipeline does both stages
            from ..deconv.pipeline import blind_deblur

            res = blind_deblur(x.to(self.device), **self._pipeline_options(blind_deblur))
            _tick(progress)
            total = time.perf_counter() - t0
            dec = float((getattr(res, "timings", None) or {}).get("deconvolve", 0.0))
            return ClassicalResult(res.image.detach().to("cpu", torch.float32).clamp(0, 1), _cpu(res.kernel),
                                   fell_back=bool(res.fell_back), reason=str(res.reason or ""),
                                   noise_sigma=_float(res.noise_sigma), estimated=True, region=_region(res.region),
                                   tiles=1, timings={"estimate": total - dec, "deconvolve": dec, "total": total})
        choice, sigma, region = self._choose_kernel(x)
        t1 = time.perf_counter()
        kernel = _cpu(choice.kernel)
        if kernel is None:  # the pipeline's conservative result: the input itself
            out, tiles = x.clone(), 1
        else:
            out, tiles = self._deconvolve_photo(x, kernel, sigma, True, progress)
        t2 = time.perf_counter()
        return ClassicalResult(out, kernel, fell_back=bool(choice.fell_back), reason=str(choice.reason or ""),
                               noise_sigma=sigma, estimated=True, region=region, tiles=tiles,
                               timings={"estimate": t1 - t0, "deconvolve": t2 - t1, "total": t2 - t0})

    def _choose_kernel(self, x: torch.Tensor) -> tuple[Any, float, tuple[int, int, int, int] | None]:
        """``estimate_checked_kernel`` on a (1,C,H,W) photo: (its KernelChoice, the noise sigma,
        the estimation region in the photo's pixels).

        A photo larger than :data:`ESTIMATE_WINDOW` squared is first narrowed to the
        ``ESTIMATE_WINDOW`` square with the most informative structure, found by
        ``select_region`` on a copy downscaled to about 1 MP; the pipeline then chooses its
        estimation region inside that window at full resolution. The region reported is in the
        photo's coordinates."""
        from ..deconv.pipeline import estimate_checked_kernel

        _, _, h, w = x.shape
        top = left = 0
        if h * w > ESTIMATE_WINDOW**2:
            top, left = self._estimate_window(x)
            x = x[:, :, top : top + ESTIMATE_WINDOW, left : left + ESTIMATE_WINDOW]
        sigma = self._noise_level(x)
        opts = self._pipeline_options(estimate_checked_kernel)
        opts.pop("noise_sigma", None)
        choice = estimate_checked_kernel(x.to(self.device), noise_sigma=sigma, **opts)
        region = _region(getattr(choice, "region", None))
        if region is not None:
            region = (region[0] + top, region[1] + left, region[2], region[3])
        return choice, sigma, region

    @staticmethod
    def _estimate_window(x: torch.Tensor) -> tuple[int, int]:
        """Top-left corner of the ``ESTIMATE_WINDOW`` square of a large photo to estimate in."""
        from ..deconv.region import select_region

        _, _, h, w = x.shape
        f = max(1, int((h * w / 1e6) ** 0.5))
        small = torch.nn.functional.avg_pool2d(x, f, f) if f > 1 else x
        side = max(16, min(ESTIMATE_WINDOW // f, *small.shape[-2:]))
        t, l, _, _ = select_region(small, size=side)
        return min(t * f, max(0, h - ESTIMATE_WINDOW)), min(l * f, max(0, w - ESTIMATE_WINDOW))

    def estimate(self, image: torch.Tensor) -> ClassicalResult:
        """Estimate the kernel of a photo only (what ``deblurkit estimate-kernel`` writes): the
        pipeline's estimate, check and fallback, without deconvolving the photo.

        Args:
            image: ``(1, C, H, W)`` or ``(C, H, W)`` float tensor in [0, 1], ``C`` in {1, 3}.

        Returns:
            :class:`ClassicalResult` whose ``image`` is the input (CPU, float32) and whose
            ``kernel`` is the estimate (``None`` when the pipeline fell back to no kernel).

        Raises:
            ValueError: a bad image, or this runner was given a kernel (nothing to estimate).
        """
        if self.kernel is not None:
            raise ValueError("a kernel was given: there is nothing to estimate")
        t0 = time.perf_counter()
        x = self._validated(image)
        if x.shape[0] != 1:
            raise ValueError(f"estimate takes one image, got a batch of {x.shape[0]}")
        choice, sigma, region = self._choose_kernel(x)
        total = time.perf_counter() - t0
        return ClassicalResult(x, _cpu(choice.kernel), fell_back=bool(choice.fell_back),
                               reason=str(choice.reason or ""), noise_sigma=sigma, estimated=True,
                               region=region, timings={"estimate": total, "total": total})

    def _restore_spatially_varying(self, x: torch.Tensor, t0: float) -> ClassicalResult:
        """``deblurkit.deconv.spatially_varying.deblur_spatially_varying`` on the whole photo (one
        pass: regions are blended with windows that sum to one, Hirsch et al. 2010)."""
        from ..deconv.spatially_varying import deblur_spatially_varying

        res = deblur_spatially_varying(x.to(self.device), **self._pipeline_options(deblur_spatially_varying))
        kernel = getattr(res, "kernel", None)
        kernel = _cpu(kernel) if isinstance(kernel, torch.Tensor) and kernel.dim() == 2 else None
        total = time.perf_counter() - t0
        dec = float((getattr(res, "timings", None) or {}).get("deconvolve", 0.0))
        return ClassicalResult(res.image.detach().to("cpu", torch.float32).clamp(0, 1), kernel,
                               fell_back=bool(res.fell_back), reason=str(res.reason or ""),
                               noise_sigma=_float(res.noise_sigma), estimated=True, per_region=True,
                               timings={"estimate": total - dec, "deconvolve": dec, "total": total})

    # ------------------------------------------------------------------ Deblurrer interface

    @staticmethod
    def _validated(x: torch.Tensor) -> torch.Tensor:
        """(N,C,H,W) float32 CPU copy of ``x`` after the checks of :meth:`Deblurrer.deblur_tensor`."""
        return validated_batch(x).clamp(0, 1)

    def deblur_tensor(self, x: torch.Tensor, *, progress: Any = None, clamp: bool = True) -> torch.Tensor:
        """Deblur an image or a batch (each image gets its own kernel estimate).

        Args:
            x: ``(N, C, H, W)`` or ``(C, H, W)`` float tensor in [0, 1], ``C`` in {1, 3}, any device.
            progress: tile progress (see :meth:`restore`).
            clamp: accepted for interface compatibility; the result is always in [0, 1].

        Returns:
            float32 tensor of the same shape as ``x`` on the CPU, in [0, 1]. The last image's
            :class:`ClassicalResult` is kept in :attr:`last_result`.

        Raises:
            TypeError / ValueError: as :meth:`Deblurrer.deblur_tensor` and :meth:`restore`.
        """
        single = isinstance(x, torch.Tensor) and x.dim() == 3
        xb = self._validated(x)
        outs = []
        for i in range(xb.shape[0]):
            self.last_result = self.restore(xb[i : i + 1], progress=progress)
            outs.append(self.last_result.image)
        y = torch.cat(outs, 0)
        return y[0] if single else y

    def comparison_panel(self, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        """``before | after`` (:func:`make_comparison`) with the kernel used inset in the
        bottom-right corner of the "after" panel (when there is one)."""
        panel = make_comparison(before, after)
        res = self.last_result
        if res is not None and res.kernel is not None:
            w = before.shape[-1]
            panel = add_kernel_inset(panel, res.kernel, x0=panel.shape[-1] - w, width=w)
        return panel

    def output_paths(self, path: PathLike, out_dir: PathLike | None, suffix: str = "_deblurred",
                     *, stem: str | None = None) -> dict[str, Path]:
        """As :meth:`Deblurrer.output_paths`, plus ``kernel_png`` / ``kernel_npy``
        (``<stem>_kernel.png`` / ``.npy`` beside the result)."""
        paths = super().output_paths(path, out_dir, suffix, stem=stem)
        folder = paths["deblurred"].parent
        stem = stem or Path(path).stem
        paths["kernel_png"] = folder / f"{stem}_kernel.png"
        paths["kernel_npy"] = folder / f"{stem}_kernel.npy"
        return paths

    def deblur_file(self, path: PathLike, out_dir: PathLike | None, *, compare: bool = False,
                    suffix: str = "_deblurred", protected: Iterable[PathLike] = (),
                    progress: Any = None, stem: str | None = None) -> dict[str, Path]:
        """As :meth:`Deblurrer.deblur_file` (the comparison gets the kernel inset); with
        ``save_kernel`` also writes the kernel (``kernel_png``, ``kernel_npy``). How the file
        went (kernel size, or the fallback and why) is recorded in :attr:`notes` ``[path]``."""
        path = Path(path)
        self.last_result = None
        written = super().deblur_file(path, out_dir, compare=compare, suffix=suffix, protected=protected,
                                      progress=progress, stem=stem)
        res = self.last_result
        if res is None:
            return written
        self.notes[path] = res.describe()
        if res.fell_back:
            self.fallbacks.add(path)
        if self.save_kernel and res.kernel is not None:
            targets = self.output_paths(path, out_dir, suffix, stem=stem)
            try:
                written.update(write_kernel(res.kernel, targets["kernel_png"], targets["kernel_npy"],
                                            protected=(path, *protected)))
            except Exception as exc:
                if str(path) not in str(exc):
                    exc.add_note(f"while deblurring '{path}'")
                raise
        return written

    def deblur_files(self, paths: PathLike | Iterable[PathLike], out_dir: PathLike | None, compare: bool = False,
                     *, suffix: str = "_deblurred", stop_on_error: bool = False,
                     recursive: bool = False) -> DeblurSummary:
        """As :meth:`Deblurrer.deblur_files`; the summary's ``notes`` say per file which kernel
        was used or why the estimate fell back (:meth:`ClassicalResult.describe`), and
        ``fell_back`` lists the files that fell back."""
        self.notes, self.fallbacks = {}, set()
        summary = super().deblur_files(paths, out_dir, compare, suffix=suffix, stop_on_error=stop_on_error,
                                       recursive=recursive)
        summary.notes.update(self.notes)
        summary.fell_back.extend(p for p in summary.written if p in self.fallbacks)
        return summary
