"""RealBlur's evaluation: align the restored image to the reference, then masked PSNR / SSIM.

Follows ``evaluation_RealBlur_ecc.py`` of rimchang/RealBlur (Rim et al., *Real-World Blur
Dataset for Learning and Benchmarking Deblurring Algorithms*, ECCV 2020), which the RealBlur
benchmark tables use (skimage 0.17.2, OpenCV 4.2):

1. the restored image is read back from its 8-bit PNG (here: clamped and rounded to 8 bits);
2. intensity matching ``z * sum(x z) / sum(z z)`` (x = reference, z = restored; not clamped);
3. ``cv2.findTransformECC`` (homography, 100 iterations, eps 0, Gaussian pre-filter 5) from the
   grey reference to the grey matched image; the matched image is warped with it (inverse map,
   bicubic, reflected border) and a validity mask ``cr`` (warped ones, nearest, zero border)
   multiplies both images;
4. PSNR = ``10 log10(1 / (sum((x - z)^2) / sum(cr)))`` over the three channels;
5. SSIM: skimage's Gaussian SSIM map (sigma 1.5, 11x11, population covariance, data range 1)
   times ``cr``, 5-pixel border dropped, summed per channel over the sum of ``cr``, channels
   averaged.

When ECC does not converge (OpenCV raises, the official script would stop), the identity warp is
used and ``ecc_ok`` is 0.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

from ._common import correlate_valid, gaussian_1d

__all__ = ["realblur_align", "realblur_psnr_ssim"]

_SIGMA = 1.5
_RADIUS = int(3.5 * _SIGMA + 0.5)  # skimage's truncation, 5 -> an 11x11 window


def _hwc(x: Tensor, what: str) -> np.ndarray:
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(f"{what}: one image at a time, got a batch of {x.shape[0]}")
        x = x[0]
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"{what}: expected an RGB image (3, H, W) or (1, 3, H, W), got {tuple(x.shape)}")
    return x.detach().to("cpu", torch.float32).permute(1, 2, 0).contiguous().numpy()


def realblur_align(restored: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    """Intensity-match and ECC-align ``restored`` to ``reference`` (RealBlur ``image_align``).

    Args:
        restored, reference: float32 (H, W, 3) RGB arrays on [0, 1].

    Returns:
        ``(aligned * mask, reference * mask, mask, warp (3, 3), converged)``; arrays float32 (H, W, 3).

    Raises:
        ValueError: shapes differ.
    """
    if restored.shape != reference.shape or restored.ndim != 3 or restored.shape[2] != 3:
        raise ValueError(f"restored {restored.shape} and reference {reference.shape} must be equal (H, W, 3)")
    z = np.ascontiguousarray(restored, dtype=np.float32)
    x = np.ascontiguousarray(reference, dtype=np.float32)
    denom = float(np.sum(z * z))
    zs = (np.float32(np.sum(x * z) / denom) * z if denom > 0 else z).astype(np.float32)
    warp = np.eye(3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 0)
    ok = True
    try:
        _, warp = cv2.findTransformECC(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), cv2.cvtColor(zs, cv2.COLOR_RGB2GRAY),
                                       warp, cv2.MOTION_HOMOGRAPHY, criteria, None, 5)
    except cv2.error:
        ok, warp = False, np.eye(3, dtype=np.float32)
    h, w = x.shape[:2]
    zr = cv2.warpPerspective(zs, warp, (w, h), flags=cv2.INTER_CUBIC + cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REFLECT)
    cr = cv2.warpPerspective(np.ones_like(zs), warp, (w, h), flags=cv2.INTER_NEAREST + cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return zr * cr, x * cr, cr, warp, ok


def _masked_ssim(x: np.ndarray, z: np.ndarray, mask: np.ndarray) -> float:
    """skimage Gaussian SSIM map (data range 1) weighted by ``mask``, as the RealBlur script."""
    t = torch.from_numpy(np.stack([x, z])).to(torch.float64).permute(0, 3, 1, 2)  # (2, 3, H, W)
    a, b = t[0], t[1]
    taps = gaussian_1d(2 * _RADIUS + 1, _SIGMA)
    maps = torch.stack((a, b, a * a, b * b, a * b))
    ux, uy, uxx, uyy, uxy = correlate_valid(correlate_valid(maps, taps, -2), taps, -1).unbind(0)
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    m = torch.from_numpy(mask).to(torch.float64).permute(2, 0, 1)[:, _RADIUS:-_RADIUS, _RADIUS:-_RADIUS]
    per_channel = (s * m).sum(dim=(1, 2)) / m.sum(dim=(1, 2))
    return float(per_channel.mean())


def realblur_psnr_ssim(restored: Tensor, reference: Tensor, *, quantize: bool = True) -> dict:
    """RealBlur's aligned PSNR / SSIM of one image.

    Args:
        restored: (3, H, W) or (1, 3, H, W) RGB, [0, 1] scale (clamped here).
        reference: same shape, [0, 1] (the 8-bit ``gt`` image). H, W >= 11.
        quantize: round ``restored`` to 8 bits first, as the official script reads saved PNGs.

    Returns:
        ``{"psnr": dB, "ssim": value, "ecc_ok": 1.0 or 0.0}``.

    Raises:
        ValueError: not one RGB image, shapes differ, or smaller than 11x11.
    """
    z, x = _hwc(restored, "restored"), _hwc(reference, "reference")
    if z.shape != x.shape:
        raise ValueError(f"restored {z.shape[:2]} and reference {x.shape[:2]} differ in size")
    if min(x.shape[:2]) < 2 * _RADIUS + 1:
        raise ValueError(f"RealBlur SSIM needs images of at least 11x11, got {x.shape[0]}x{x.shape[1]}")
    z = np.clip(z, 0.0, 1.0)
    if quantize:
        z = np.floor(z * 255.0 + 0.5).astype(np.float32) / 255.0
    zr, xr, cr, _, ok = realblur_align(z, x)
    err = np.sum((xr.astype(np.float64) - zr) ** 2) / np.sum(cr, dtype=np.float64)
    psnr = float("inf") if err == 0 else float(10.0 * np.log10(1.0 / err))
    return {"psnr": psnr, "ssim": _masked_ssim(xr, zr, cr), "ecc_ok": float(ok)}
