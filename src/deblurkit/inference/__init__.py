"""deblurkit.inference: padding, tiled inference with blended overlaps, and the Deblurrer.

Public API::

    pad_to_multiple(x, multiple, mode="reflect") -> (padded, pads)   # bottom/right padding
    crop_padding(y, pads) -> y[..., :H, :W]
    tiled_forward(fn, x, tile=512, overlap=32, multiple=4, batch_size=1, progress=None)
    auto_tile_size(h, w, device=..., precision=..., memory_budget_mb=None) -> int | None
    Deblurrer(model=None, weights=None, device="cpu", precision="fp32", tile=None,
              tile_overlap=32, progress=True, model_overrides=None, allow_random=False)
        .deblur_tensor(x) / .deblur_file(path, out_dir, compare=False) / .deblur_files(paths, out_dir)
    make_comparison(before, after) -> (C, H, 2W + SEPARATOR_PX) side-by-side image
    ClassicalDeblurrer(kernel=None, kernel_size=None, method="dark_channel",
                       spatially_varying=False, save_kernel=False, device="cpu", tile="auto")
        the default deblurrer (blind kernel estimation + non-blind deconvolution), same interface
        .restore(x) -> ClassicalResult(image, kernel, fell_back, reason, ...)
    read_kernel(path) / write_kernel(kernel, png, npy)   # PSF files (.npy, PNG)

``Deblurrer()`` / ``Deblurrer("mimo_unet_small")`` run the embedded network (weights shipped in
the package); ``deblurkit deblur`` without ``--model`` runs :class:`ClassicalDeblurrer`.

Tensors are float32 RGB (or grey) in [0, 1] throughout; networks' own value ranges and size
multiples are handled inside (see ``deblurkit.models.ModelDescriptor``). The model, image I/O
and tqdm are imported lazily, so padding and tiling are usable on their own.
"""
from .classical import CLASSICAL_NAME, ClassicalDeblurrer, ClassicalResult, read_kernel, write_kernel
from .deblurrer import (
    DEFAULT_WEIGHTS_DIR,
    EMBEDDED_MODEL,
    SEPARATOR_PX,
    Deblurrer,
    DeblurSummary,
    default_model_info,
    make_comparison,
)
from .padding import crop_padding, pad_to_multiple, reflect_indices
from .tiling import (
    BF16_MEMORY_FACTOR,
    BYTES_PER_PIXEL_FP32,
    CPU_MEMORY_BUDGET_MB,
    DEFAULT_TILE,
    auto_tile_size,
    balanced_tile,
    blend_window,
    tile_starts,
    tiled_forward,
)

__all__ = [
    "BF16_MEMORY_FACTOR",
    "BYTES_PER_PIXEL_FP32",
    "CLASSICAL_NAME",
    "CPU_MEMORY_BUDGET_MB",
    "ClassicalDeblurrer",
    "ClassicalResult",
    "EMBEDDED_MODEL",
    "DEFAULT_TILE",
    "DEFAULT_WEIGHTS_DIR",
    "SEPARATOR_PX",
    "Deblurrer",
    "DeblurSummary",
    "auto_tile_size",
    "balanced_tile",
    "blend_window",
    "crop_padding",
    "default_model_info",
    "make_comparison",
    "pad_to_multiple",
    "read_kernel",
    "reflect_indices",
    "tile_starts",
    "tiled_forward",
    "write_kernel",
]
