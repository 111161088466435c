"""The physics of uniform blur and the classical deblurring pipeline, pure torch (CPU and CUDA).

- :mod:`.fft`: FFT conventions (``psf2otf``/``otf2psf``, circular finite differences).
- :mod:`.operators`: the uniform-blur operator and its adjoint with boundary modes.
- :mod:`.nonblind`: Wiener, hyper-Laplacian and TV deconvolution by half-quadratic splitting,
  plug-and-play HQS with any denoiser; unknown-boundary data term.
- :mod:`.noise`: noise-level estimation.
- :mod:`.blind`: blind kernel estimation (coarse-to-fine, gradient domain).
- :mod:`.pipeline`: blind estimation + non-blind deconvolution with a reliability check.
- :mod:`.spatially_varying`: kernels per overlapping region, blended (efficient filter flow).

Names are imported lazily so ``import deblurkit.deconv`` stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    # fft
    "psf2otf": "fft", "otf2psf": "fft", "fast_len": "fft",
    # operators
    "BlurOperator": "operators", "validate_kernel": "operators", "normalize_kernel": "operators",
    # non-blind deconvolution
    "deconvolve": "nonblind", "wiener": "nonblind", "hyper_laplacian": "nonblind",
    "tv_deconvolution": "nonblind", "pnp_hqs": "nonblind", "default_weight": "nonblind",
    "tv_denoise": "denoisers",
    # noise
    "estimate_noise_level": "noise",
    # blind estimation
    "estimate_kernel": "blind", "KernelEstimate": "blind",
    # pipeline
    "blind_deblur": "pipeline", "DeblurResult": "pipeline", "check_kernel": "pipeline",
    "estimate_checked_kernel": "pipeline", "KernelChoice": "pipeline", "deconvolve_masked": "pipeline",
    # region selection
    "select_region": "region", "saturation_mask": "region",
    # spatially varying
    "deblur_spatially_varying": "spatially_varying", "eff_blur": "spatially_varying",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'deblurkit.deconv' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
