"""Kernel step of the blind estimators: gradient selection, masked least squares, clean-up.

- :func:`initial_gradient_threshold` / :func:`threshold_gradients`: keep only the strongest
  latent gradients (Cho & Lee, SIGGRAPH Asia 2009, Sec. 4; official ``threshold_pxpy_v1.m`` used
  by Pan et al. 2016). The first threshold is set on the coarsest blurry image from four
  direction histograms so that at least ``max(20 * kernel_size, 10)`` pixels of every
  direction survive; it is then divided by 1.1 after every kernel update of a level.
- :func:`solve_kernel`: ``min_k sum_d ||M . (grad_d S * k - grad_d B)||^2 + gamma ||k||^2``
  by 20 conjugate-gradient iterations (official ``estimate_psf.m``, gamma = 2, uniform start,
  tolerance 1e-5). The official code solves it circularly on the observed gradients, so
  wrap-around pairs of the image's opposite borders enter the fit and leave a cross in the
  kernel (research note, bug 3). Here it runs on the smoothly wrap-padded grid on which the
  latent image was estimated (latent and blurry pad consistent: no cross; the normal matrix
  is Toeplitz and is applied as a small direct convolution), or, with a mask ``M``, on the
  exact ``valid`` blur model: only observed pixels whose kernel footprint lies inside the
  image, optionally without (near) clipped pixels (FFT convolutions, 6 per CG step).
  An optional L1 prior (iteratively reweighted) keeps the kernel compact where the image
  leaves it unconstrained (edges of few orientations).
- :func:`clean_kernel`: official post-processing: entries below 5 % of the maximum -> 0,
  normalise, 8-connected components with less than 10 % of the mass removed, non-negative,
  normalise. :func:`center_kernel_by_centroid` (``adjust_psf_center.m``) shifts the kernel by
  the rounded offset of its centroid from the array centre (zero fill).

The kernel is solved on its support only (never by an unconstrained closed-form FFT division,
which returns a noise kernel filling the whole grid: research note, bug 2).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..fft import otf2psf, psf2otf

__all__ = [
    "initial_gradient_threshold",
    "threshold_gradients",
    "interior_mask",
    "solve_kernel",
    "clean_kernel",
    "connected_components",
    "center_kernel_by_centroid",
]

_HIST_STEP = 0.00006  # official histogram bin of squared gradient magnitudes (0:0.00006:2)


def _valid_gradients(x: Tensor) -> tuple[Tensor, Tensor]:
    """Forward differences over the (H-1, W-1) region where both exist without wrap."""
    px = x[:-1, 1:] - x[:-1, :-1]
    py = x[1:, :-1] - x[:-1, :-1]
    return px, py


def initial_gradient_threshold(image: Tensor, kernel_size: int) -> float:
    """Threshold on squared gradient magnitude such that each of four direction bins keeps at
    least ``max(20 * kernel_size, 10)`` pixels (official ``threshold_pxpy_v1`` first call).

    Args:
        image: (H, W) grey image (the coarsest blurry image).
        kernel_size: kernel size at that level.

    Returns:
        The largest histogram edge (multiple of 6e-5, at most 2) meeting the count in every
        direction, or 0 when some direction has too few pixels.
    """
    px, py = _valid_gradients(image)
    pm = px * px + py * py
    pd = torch.atan(py / px)  # NaN for 0/0 (not counted), +-pi/2 for px = 0
    q = math.pi / 4
    bins = [(pd >= 0) & (pd < q), (pd >= q) & (pd < 2 * q), (pd >= -q) & (pd < 0), (pd >= -2 * q) & (pd < -q)]
    need = max(20 * int(kernel_size), 10)
    vals = []
    for b in bins:
        v = pm[b & (pm <= 2.0)]
        if v.numel() < need:
            return 0.0
        vals.append(torch.topk(v, need).values[-1])
    m = float(torch.stack(vals).min())
    return math.floor(m / _HIST_STEP + 1e-9) * _HIST_STEP


def threshold_gradients(gx: Tensor, gy: Tensor, threshold: float, region: tuple[int, int] | None = None
                        ) -> tuple[Tensor, Tensor, float]:
    """Zero the gradients with ``gx^2 + gy^2 < threshold`` (official ``threshold_pxpy_v1`` with a
    given threshold: if nothing would survive inside ``region`` the threshold is multiplied by
    0.81 until something does).

    Args:
        gx, gy: (H, W) gradients. threshold: squared-magnitude threshold.
        region: (h, w) top-left part used for the "nothing survives" test (the observed image
            inside a padded grid); ``None`` for the whole array.

    Returns:
        (gx, gy, threshold_used).
    """
    pm = gx * gx + gy * gy
    view = pm if region is None else pm[: region[0], : region[1]]
    t = float(threshold)
    if t > 0 and bool((view > 0).any()):
        while not bool((view >= t).any()):
            t *= 0.81
    keep = pm >= t
    return gx * keep, gy * keep, t


def interior_mask(shape: tuple[int, int], observed: tuple[int, int], kernel_size: int, *,
                  device=None, dtype=torch.float32) -> Tensor:
    """(Hp, Wp) 0/1 mask of the gradient pixels whose blur model only involves observed pixels.

    The observed (H, W) image sits at the top-left of the (Hp, Wp) grid; a forward-difference
    pixel (i, j) of ``k * grad S`` reads the latent at rows i - r .. i + r + 1 (r = kernel_size
    // 2), so rows r .. H - r - 2 and likewise columns are kept.
    """
    hp, wp = shape
    h, w = observed
    r = kernel_size // 2
    m = torch.zeros(hp, wp, dtype=dtype, device=device)
    if h - r - 1 > r and w - r - 1 > r:
        m[r : h - r - 1, r : w - r - 1] = 1.0
    return m


def solve_kernel(latent_x: Tensor, latent_y: Tensor, blurred_x: Tensor, blurred_y: Tensor,
                 mask: Tensor | None, kernel_size: int, *, gamma: "float | Tensor" = 2.0, iterations: int = 20,
                 tol: float = 1e-5, init: Tensor | None = None, l1: float = 0.0, reweight: int = 0,
                 eps: float = 1e-3) -> Tensor:
    """Gradient-domain kernel by conjugate gradients (see module docstring).

    Args:
        latent_x, latent_y: (H, W) (thresholded) latent gradients on the periodic grid.
        blurred_x, blurred_y: (H, W) blurry-image gradients on the same grid.
        mask: (H, W) weights of the data term (1 = used) or ``None`` for all pixels (official
            circular solve).
        kernel_size: odd side of the square kernel support.
        gamma: Tikhonov weight (official 2), a number or a (K, K) map of per-entry weights.
        iterations, tol: CG controls (official 20, 1e-5).
        init: starting kernel (official: uniform).
        l1, reweight, eps: optional sparsity prior ``l1 * sum_j |k_j|`` by iteratively
            reweighted least squares (``reweight`` extra solves, each with the quadratic weight
            ``gamma + l1 / max(|k_j|, eps * max|k|)`` from the previous solve, warm started);
            0 (default) is the official quadratic prior only.

    Returns:
        (kernel_size, kernel_size) raw least-squares kernel (not yet clipped or normalised).
    """
    shape = tuple(latent_x.shape[-2:])
    ks = (kernel_size, kernel_size)
    lx, ly = torch.fft.rfft2(latent_x), torch.fft.rfft2(latent_y)
    if mask is None:
        # circular model: the normal matrix is Toeplitz, applied as a small direct convolution
        # with the (2K-1) x (2K-1) centre of the gradients' autocorrelation
        m2 = lx.abs() ** 2 + ly.abs() ** 2
        acf = otf2psf(m2, (2 * kernel_size - 1, 2 * kernel_size - 1), shape)[None, None]

        def data_op(k: Tensor) -> Tensor:
            return F.conv2d(acf, torch.flip(k, (0, 1))[None, None])[0, 0]

        bx, by = blurred_x, blurred_y
    else:
        def data_op(k: Tensor) -> Tensor:
            kf = psf2otf(k, shape)
            rx = torch.fft.irfft2(lx * kf, s=shape) * mask
            ry = torch.fft.irfft2(ly * kf, s=shape) * mask
            return otf2psf(lx.conj() * torch.fft.rfft2(rx) + ly.conj() * torch.fft.rfft2(ry), ks, shape)

        bx, by = blurred_x * mask, blurred_y * mask
    b = otf2psf(lx.conj() * torch.fft.rfft2(bx) + ly.conj() * torch.fft.rfft2(by), ks, shape)
    x = init.clone() if init is not None else torch.full(
        ks, 1.0 / (kernel_size * kernel_size), dtype=latent_x.dtype, device=latent_x.device)
    x = _cg(data_op, b, x, gamma, iterations, tol)
    for _ in range(reweight if l1 > 0 else 0):
        a = x.abs()
        w = gamma + l1 / torch.clamp(a, min=float(a.max()) * eps + 1e-12)
        x = _cg(data_op, b, x, w, iterations, tol)
    return x


def _cg(data_op, b: Tensor, x: Tensor, gamma: "float | Tensor", iterations: int, tol: float) -> Tensor:
    """Conjugate gradients on ``(data_op + diag(gamma)) x = b`` (Cho's ``conjgrad.m``)."""
    def apply_a(k: Tensor) -> Tensor:
        return data_op(k) + gamma * k

    r = b - apply_a(x)
    p = r.clone()
    rs_old = (r * r).sum()
    for _ in range(iterations):
        ap = apply_a(p)
        alpha = rs_old / (p * ap).sum()
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = (r * r).sum()
        if float(rs_new.sqrt()) < tol:
            break
        p = r + (rs_new / rs_old) * p
        rs_old = rs_new
    return x


def connected_components(support: Tensor) -> Tensor:
    """8-connected component labels of a (h, w) bool map: int64 (h, w), 0 = background, labels
    are positive (not consecutive). Iterative max-propagation (fine for kernel-sized maps)."""
    h, w = support.shape
    lab = torch.arange(1, h * w + 1, device=support.device, dtype=torch.float64).reshape(h, w) * support
    while True:
        new = F.max_pool2d(lab[None, None], 3, stride=1, padding=1)[0, 0] * support
        if torch.equal(new, lab):
            return lab.long()
        lab = new


def clean_kernel(k: Tensor, *, rel_threshold: float = 0.05, min_component_mass: float = 0.1) -> Tensor:
    """Official kernel post-processing (``estimate_psf.m`` + ``blind_deconv_main.m``): zero
    entries below ``rel_threshold`` x max, normalise, remove 8-connected components holding
    less than ``min_component_mass`` of the mass, clip negatives, normalise. A kernel left
    without mass comes back as a centred delta."""
    k = torch.where(k < k.max() * rel_threshold, torch.zeros_like(k), k)
    s = k.sum()
    if not bool(s > 0):
        return _delta_like(k)
    k = k / s
    lab = connected_components(k > 0)
    mass = torch.zeros(lab.numel() + 1, dtype=k.dtype, device=k.device).index_add_(0, lab.reshape(-1), k.reshape(-1))
    small = mass[lab] < min_component_mass
    k = torch.where(small | (lab == 0), torch.zeros_like(k), k).clamp_min(0)
    s = k.sum()
    return k / s if bool(s > 0) else _delta_like(k)


def _delta_like(k: Tensor) -> Tensor:
    d = torch.zeros_like(k)
    d[k.shape[0] // 2, k.shape[1] // 2] = 1.0
    return d


def _round_half_away(x: float) -> int:
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def center_kernel_by_centroid(k: Tensor) -> Tensor:
    """Shift a (h, w) kernel by whole pixels so that its centroid is within half a pixel of
    the centre (h // 2, w // 2); mass shifted out of the array is dropped (zero fill), then
    negatives are clipped and the kernel renormalised (official ``adjust_psf_center.m``)."""
    h, w = k.shape
    s = k.sum()
    if not bool(s > 0):
        return k
    ys = torch.arange(h, dtype=k.dtype, device=k.device)
    xs = torch.arange(w, dtype=k.dtype, device=k.device)
    cy = float((k.sum(1) * ys).sum() / s)
    cx = float((k.sum(0) * xs).sum() / s)
    dy, dx = _round_half_away(h // 2 - cy), _round_half_away(w // 2 - cx)
    out = torch.zeros_like(k)
    if abs(dy) < h and abs(dx) < w:
        out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = \
            k[max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
    out = out.clamp_min(0)
    t = out.sum()
    return out / t if bool(t > 0) else _delta_like(k)
