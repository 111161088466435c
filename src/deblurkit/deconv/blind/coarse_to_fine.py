"""Coarse-to-fine alternation of the dark-channel (Pan et al. 2016) and L0 (Pan et al. 2014 /
Xu et al. 2013) blind estimators.

Official MATLAB code of J. Pan et al., "Blind Image Deblurring Using Dark Channel Prior",
CVPR 2016 (``blind_deconv.m`` / ``blind_deconv_main.m``), with the fixes of the research note
(``docs/blind_estimation.md``):

for each level, coarsest first (:mod:`.pyramid`):
  1. the blurry image at that scale, smoothly wrap-padded to an FFT size >= H + k - 1
     (:func:`.boundary.wrap_boundary`), its forward-difference gradients;
  2. ``iterations`` (official 5) times:
     a. latent image by L0 dark channel + L0 gradient HQS (:func:`.latent.l0_dark_restore`),
        or by L0 gradient only when ``lam_dark == 0`` (:func:`.latent.l0_restore`);
     b. latent gradients thresholded (:func:`.kernel_solve.threshold_gradients`; threshold
        from the coarsest blurry image, divided by 1.1 per iteration, restarting each level);
     c. kernel by gradient-domain least squares with an L1 prior on the padded grid
        (:func:`.kernel_solve.solve_kernel`; masked to the exact ``valid`` model when clipped
        pixels must be left out), cleaned (:func:`.kernel_solve.clean_kernel`);
     d. ``lam_dark``, ``lam_grad`` divided by 1.1 (floor 1e-4), carried across levels;
  3. kernel re-centred on its centroid, then resized by sqrt(2) to the next level;
at the end, entries below max / ``k_thresh`` (official 20) are zeroed and the kernel is
normalised and re-centred.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..fft import fast_len, grad
from .boundary import wrap_boundary
from .kernel_solve import (
    center_kernel_by_centroid,
    clean_kernel,
    initial_gradient_threshold,
    interior_mask,
    solve_kernel,
    threshold_gradients,
)
from .latent import l0_dark_restore
from .pyramid import SCALE_RATIO, downsample, initial_kernel, resize_kernel, scale_schedule

__all__ = ["CoarseToFineOptions", "coarse_to_fine"]


@dataclass
class CoarseToFineOptions:
    """Parameters of :func:`coarse_to_fine` (defaults: Pan et al. 2016's official demo values
    except ``gamma``, ``kernel_l1`` and ``dark_schedule``, see :func:`.api.estimate_kernel`).

    Attributes:
        lam_dark: L0 dark-channel weight (4e-3; 0 gives the L0-gradient-only estimator).
        lam_grad: L0 gradient weight (4e-3).
        iterations: latent/kernel alternations per level (5).
        gamma: Tikhonov weight of the kernel solve (20; official 2).
        cg_iterations: conjugate-gradient iterations of the kernel solve (20).
        k_thresh: final threshold ``max / k_thresh`` (20).
        kappa: HQS continuation factor (2).
        patch: dark-channel window (35).
        lam_decay, lam_floor: per-iteration decay of the weights (1.1) and their floor (1e-4).
        threshold_decay: per-iteration decay of the gradient threshold (1.1).
        mask_border: restrict the kernel data term to the exact ``valid`` model, pixels whose
            kernel footprint lies inside the observed image (slower: 6 FFTs per CG step).
            False (default) fits the circular model on the whole smoothly wrap-padded grid,
            where latent and blurry pad are consistent (no wrap-around cross; measured as good
            and ~10x cheaper: the normal matrix is then Toeplitz). Clipped pixels always switch
            the mask on (they must be left out).
        dark_schedule: ``"joint"`` (default) or ``"nested"`` (official) continuation of the
            dark-channel latent step (:func:`.latent.l0_dark_restore`); ``dark_mu_kappa`` the
            factor of the nested schedule's outer loop (default ``kappa``).
        kernel_l1, kernel_reweight: L1 kernel prior of the kernel step (weight 1, 2 reweighted
            solves; :func:`.kernel_solve.solve_kernel`); ``kernel_l1=0`` = official.
        threshold_factor: multiplies the initial gradient threshold (1 = official).
    """

    lam_dark: float = 4e-3
    lam_grad: float = 4e-3
    iterations: int = 5
    gamma: float = 20.0
    cg_iterations: int = 20
    k_thresh: float = 20.0
    kappa: float = 2.0
    patch: int = 35
    lam_decay: float = 1.1
    lam_floor: float = 1e-4
    threshold_decay: float = 1.1
    mask_border: bool = False
    dark_schedule: str = "joint"
    dark_mu_kappa: float | None = None
    kernel_l1: float = 1.0
    kernel_reweight: int = 2
    threshold_factor: float = 1.0


@dataclass
class _Result:
    kernel: Tensor
    latent: Tensor
    scale_kernels: list[Tensor] = field(default_factory=list)
    residual: float = float("nan")


def _grid(h: int, w: int, k: int) -> tuple[int, int]:
    return fast_len(h + k - 1), fast_len(w + k - 1)


def coarse_to_fine(grey: Tensor, kernel_size: int, opts: CoarseToFineOptions,
                   saturated: Tensor | None = None) -> _Result:
    """Run the multi-scale estimator on one grey image.

    Args:
        grey: (H, W) float image in [0, 1].
        kernel_size: odd kernel size at full resolution.
        opts: parameters.
        saturated: optional (H, W) float map, 1 where a pixel must be left out of the kernel
            data term (already dilated at full resolution).

    Returns:
        Internal result (kernel (K, K), latent (H, W) at the finest level, per-level kernels,
        relative gradient-domain data residual of the final kernel and latent at the finest level).
    """
    scales, sizes = scale_schedule(kernel_size)
    lam_dark, lam_grad = float(opts.lam_dark), float(opts.lam_grad)
    k = None
    threshold = 0.0
    per_scale: list[Tensor] = []
    latent = grey
    residual = float("nan")
    n = len(scales)
    for s in range(n - 1, -1, -1):
        ks = sizes[s]
        ys = downsample(grey, scales[s])
        if k is None:
            k = initial_kernel(ks, dtype=grey.dtype, device=grey.device)
            threshold = initial_gradient_threshold(ys, ks) * opts.threshold_factor
        else:
            k = resize_kernel(k, 1.0 / SCALE_RATIO, ks)
        h, w = ys.shape
        shape = _grid(h, w, ks)
        bw = wrap_boundary(ys, shape)
        bx, by = grad(bw)
        mask = None
        sat = None
        if saturated is not None:
            sat = downsample(saturated, scales[s]) > 1e-3
            sat = torch.nn.functional.max_pool2d(sat[None, None].to(grey.dtype), ks, stride=1, padding=ks // 2)[0, 0]
        if opts.mask_border or (sat is not None and bool((sat > 0.5).any())):
            mask = interior_mask(shape, (h, w), ks, device=grey.device, dtype=grey.dtype)
            if sat is not None:
                keep = mask[:h, :w] * (sat < 0.5)
                if float(keep.sum()) >= 0.1 * float(mask.sum()):
                    mask[:h, :w] = keep
        thr = threshold
        for _ in range(opts.iterations):
            lat = l0_dark_restore(bw, k, lam_dark, lam_grad, kappa=opts.kappa, patch=opts.patch,
                                  schedule=opts.dark_schedule, mu_kappa=opts.dark_mu_kappa)
            gx, gy = grad(lat)
            lx, ly, thr = threshold_gradients(gx, gy, thr, region=(h, w))
            thr = thr / opts.threshold_decay
            raw = solve_kernel(lx, ly, bx, by, mask, ks, gamma=opts.gamma, iterations=opts.cg_iterations,
                               l1=opts.kernel_l1, reweight=opts.kernel_reweight)
            k = clean_kernel(raw)
            if lam_dark != 0:
                lam_dark = max(lam_dark / opts.lam_decay, opts.lam_floor)
            if lam_grad != 0:
                lam_grad = max(lam_grad / opts.lam_decay, opts.lam_floor)
            if s == 0:
                residual = _residual(gx, gy, bx, by, mask, k)
            latent = lat[:h, :w]
        k = center_kernel_by_centroid(k)
        per_scale.append(k.clone())
    if opts.k_thresh > 0:
        k = torch.where(k < k.max() / opts.k_thresh, torch.zeros_like(k), k)
    k = center_kernel_by_centroid(k / k.sum())
    return _Result(kernel=k, latent=latent.clamp(0, 1), scale_kernels=per_scale, residual=residual)


def _residual(lx: Tensor, ly: Tensor, bx: Tensor, by: Tensor, mask: Tensor | None, k: Tensor) -> float:
    """||M (k * grad S - grad B)||^2 / ||M grad B||^2 (latent gradients before selection)."""
    from ..fft import conv_circular

    m = 1.0 if mask is None else mask
    rx = (conv_circular(lx, k) - bx) * m
    ry = (conv_circular(ly, k) - by) * m
    den = float(((bx * m) ** 2).sum() + ((by * m) ** 2).sum())
    return float((rx * rx).sum() + (ry * ry).sum()) / max(den, 1e-30)
