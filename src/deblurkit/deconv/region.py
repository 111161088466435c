"""Where to estimate a blur kernel: the most informative region of a photo, and clipped pixels.

Blind kernel estimation costs grow with the area it runs on and its result depends on what the
area contains: a kernel is only constrained along the directions in which the region has sharp,
isolated edges (a region with edges of one orientation leaves the kernel free along that edge;
fine texture and noise mislead it; flat areas carry nothing). Hu & Yang, *Good Regions to
Deblur*, ECCV 2012 (Sec. 3 and Fig. 2-3) show that regions with strong edges in many
orientations give better kernels and learn a CRF to find them. This module uses a hand-written
score with the same ingredients (no learned model):

1. *useful edges*: the gradient magnitude of the luminance weighted by Xu & Jia's (ECCV 2010,
   Eq. 3) edge-usefulness ratio ``r = |sum_N grad| / (sum_N |grad| + 0.5)`` over a 5x5
   neighbourhood ``N``, which is near 1 on isolated step edges and near 0 on texture/noise;
2. *orientation coverage*: the useful edge energy of a window is split into four orientation
   bins (0, 45, 90, 135 degrees, soft ``cos^2`` assignment) and the window scores the mean of
   ``log(E_b + eps)`` over the bins (the log of their geometric mean), so a window with edges
   in every direction beats one with more energy in a single direction;
3. *clipped pixels*: pixels at or above ``saturation`` in any channel, dilated by a margin, are
   excluded (their blur model is wrong: Cho, Wang & Lee, ICCV 2011; Whyte et al., IJCV 2014),
   and a window loses score in proportion to its clipped fraction.

Window sums use integral images, so the cost is O(H W) whatever the window size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..io.images import rgb_to_grey

__all__ = ["luminance", "saturation_mask", "region_scores", "select_region", "DEFAULT_REGION_SIZE"]

#: Default side (pixels at the working resolution) of the square region used for estimation.
DEFAULT_REGION_SIZE = 448


def _as_nchw(image: Tensor, fn: str) -> Tensor:
    if not isinstance(image, Tensor):
        raise ValueError(f"{fn}: image must be a torch.Tensor, got {type(image).__name__}")
    x = image[None] if image.dim() == 3 else image
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"{fn}: image must be (N,C,H,W) or (C,H,W) with C in (1, 3), got {tuple(image.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{fn}: image must be a float tensor in [0, 1], got {x.dtype}")
    return x


def luminance(image: Tensor) -> Tensor:
    """ITU-R BT.601 luma of (N,3,H,W) or (C,H,W) images; (N,1,H,W) input is returned as is.

    Returns:
        (N, 1, H, W), same dtype/device/range as the input.

    Raises:
        ValueError: not a float (N,C,H,W)/(C,H,W) tensor with 1 or 3 channels.
    """
    x = _as_nchw(image, "luminance")
    return x if x.shape[1] == 1 else rgb_to_grey(x)


def saturation_mask(image: Tensor, *, threshold: float = 0.98, dilate: int = 0) -> Tensor:
    """Clipped pixels: any channel ``>= threshold``, optionally dilated by ``dilate`` pixels.

    Args:
        image: (N, C, H, W) or (C, H, W) float image in [0, 1], C in (1, 3).
        threshold: clip level in [0, 1] (0.98 keeps JPEG ringing around clipped areas in).
        dilate: radius in pixels of the square dilation (a clipped light streak spreads its
            wrong data over the kernel's support, so callers pass about half the kernel size).

    Returns:
        (N, 1, H, W) bool mask, True where the pixel is (near) clipped.

    Raises:
        ValueError: bad image shape/dtype, ``threshold`` outside (0, 1] or negative ``dilate``.
    """
    x = _as_nchw(image, "saturation_mask")
    if not 0.0 < float(threshold) <= 1.0:
        raise ValueError(f"saturation_mask: threshold must be in (0, 1], got {threshold}")
    if int(dilate) < 0:
        raise ValueError(f"saturation_mask: dilate must be >= 0, got {dilate}")
    m = (x >= threshold).any(dim=1, keepdim=True)
    d = int(dilate)
    if d > 0 and bool(m.any()):
        mf = m.to(x.dtype)  # separable square dilation
        mf = F.max_pool2d(mf, (1, 2 * d + 1), stride=1, padding=(0, d))
        m = F.max_pool2d(mf, (2 * d + 1, 1), stride=1, padding=(d, 0)) > 0
    return m


def _box_sums(maps: Tensor, size_h: int, size_w: int, step: int) -> Tensor:
    """Sums of (B, H, W) maps over every size_h x size_w window whose top-left corner lies on
    the ``step`` grid of :func:`_window_grid` (last row/column of windows included); (B, nh, nw)."""
    b, h, w = maps.shape
    ii = torch.zeros(b, h + 1, w + 1, dtype=torch.float64, device=maps.device)
    ii[:, 1:, 1:] = maps.double().cumsum(1).cumsum(2)
    tops, lefts = _window_grid(h, w, size_h, size_w, step, maps.device)
    t, l = tops[:, None], lefts[None, :]
    return ii[:, t + size_h, l + size_w] - ii[:, t, l + size_w] - ii[:, t + size_h, l] + ii[:, t, l]


def _window_grid(h: int, w: int, size_h: int, size_w: int, step: int, device) -> tuple[Tensor, Tensor]:
    def axis(n: int, s: int) -> Tensor:
        pos = torch.arange(0, n - s + 1, step, device=device)
        if int(pos[-1]) != n - s:
            pos = torch.cat([pos, torch.tensor([n - s], device=device)])
        return pos
    return axis(h, size_h), axis(w, size_w)


def _edge_maps(grey: Tensor, usable: Tensor | None) -> Tensor:
    """(4, H, W) useful-edge energy per orientation bin of one (H, W) luminance image."""
    g = grey.float()
    # central differences (replicate border) -- symmetric, so a bin does not shift the window
    gp = F.pad(g[None, None], (1, 1, 1, 1), mode="replicate")[0, 0]
    gx = 0.5 * (gp[1:-1, 2:] - gp[1:-1, :-2])
    gy = 0.5 * (gp[2:, 1:-1] - gp[:-2, 1:-1])
    mag = torch.sqrt(gx * gx + gy * gy)
    # Xu & Jia 2010, Eq. 3: r = |sum grad| / (sum |grad| + 0.5) over a 5x5 window
    sx = F.avg_pool2d(gx[None, None], 5, stride=1, padding=2, count_include_pad=False)[0, 0] * 25
    sy = F.avg_pool2d(gy[None, None], 5, stride=1, padding=2, count_include_pad=False)[0, 0] * 25
    sm = F.avg_pool2d(mag[None, None], 5, stride=1, padding=2, count_include_pad=False)[0, 0] * 25
    r = torch.sqrt(sx * sx + sy * sy) / (sm + 0.5)
    useful = mag * r
    if usable is not None:
        useful = useful * usable.to(useful.dtype)
    # soft orientation bins 0/45/90/135 deg: cos^2(theta - b) = (1 + cos(2 theta - 2 b)) / 2,
    # with cos(2 theta) = (gx^2 - gy^2) / |g|^2 and sin(2 theta) = 2 gx gy / |g|^2
    inv = 1.0 / (mag * mag + 1e-12)
    c2, s2 = (gx * gx - gy * gy) * inv, 2.0 * gx * gy * inv
    half = 0.25 * useful  # the four weights sum to 2: halve so the bins sum to `useful`
    return torch.stack([half * (1 + c2), half * (1 + s2), half * (1 - c2), half * (1 - s2)])


def region_scores(image: Tensor, size: int = DEFAULT_REGION_SIZE, *, step: int | None = None,
                  saturation: float = 0.98, margin: int = 8,
                  mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Score every square window of side ``size`` on a grid of top-left corners.

    Args:
        image: (1, C, H, W) or (C, H, W) float image in [0, 1] (C in 1, 3).
        size: window side in pixels (clamped to the image's height and width).
        step: grid spacing of the window corners (default ``max(4, size // 8)``).
        saturation: clip level for :func:`saturation_mask`.
        margin: dilation (pixels) of the clipped mask.
        mask: optional extra (1, 1, H, W) or (H, W) bool/float mask of pixels to ignore
            (True / 1 = ignore).

    Returns:
        ``(scores, tops, lefts)``: (nh, nw) float64 scores (higher = better), and the (nh,)
        and (nw,) corner coordinates.

    Raises:
        ValueError: bad image, ``size`` < 8, a batch of more than one image or a mask of the
            wrong shape.
    """
    x = _as_nchw(image, "region_scores")
    if x.shape[0] != 1:
        raise ValueError(f"region_scores: one image at a time, got a batch of {x.shape[0]}")
    if int(size) < 8:
        raise ValueError(f"region_scores: size must be >= 8 pixels, got {size}")
    h, w = x.shape[-2:]
    sh, sw = min(int(size), h), min(int(size), w)
    step = max(4, min(sh, sw) // 8) if step is None else int(step)
    if step < 1:
        raise ValueError(f"region_scores: step must be >= 1, got {step}")
    bad = saturation_mask(x, threshold=saturation, dilate=margin)[0, 0]
    if mask is not None:
        m = mask.reshape(mask.shape[-2:]) if mask.dim() in (2, 4) else None
        if m is None or tuple(m.shape) != (h, w) or (mask.dim() == 4 and mask.shape[:2] != (1, 1)):
            raise ValueError(f"region_scores: mask must be (H,W) or (1,1,H,W) = {(h, w)}, got {tuple(mask.shape)}")
        bad = bad | (m.to(x.device) > 0)
    grey = luminance(x)[0, 0]
    maps = _edge_maps(grey, ~bad)
    sums = _box_sums(torch.cat([maps, bad.to(maps.dtype)[None]]), sh, sw, step)
    area = float(sh * sw)
    energy = sums[:4] / area
    clipped = sums[4] / area
    eps = 0.02 * float(energy.sum(0).max()) / 4 + 1e-8
    score = torch.log(energy + eps).mean(0) + 2.0 * torch.log1p(-clipped.clamp(max=0.999))
    tops, lefts = _window_grid(h, w, sh, sw, step, x.device)
    # a tiny preference for central windows breaks ties (flat images) deterministically
    cy = (tops.double() + sh / 2 - h / 2) / max(h, 1)
    cx = (lefts.double() + sw / 2 - w / 2) / max(w, 1)
    score = score - 1e-3 * (cy[:, None] ** 2 + cx[None, :] ** 2)
    return score, tops, lefts


def select_region(image: Tensor, size: int = DEFAULT_REGION_SIZE, *, step: int | None = None,
                  saturation: float = 0.98, margin: int = 8,
                  mask: Tensor | None = None) -> tuple[int, int, int, int]:
    """The most informative square region of an image for blind kernel estimation.

    Scores windows as described in the module docstring (Hu & Yang 2012's observation --
    strong edges in many orientations, no clipped pixels -- with Xu & Jia 2010's edge
    usefulness ratio) and returns the best one. The cost is O(H W) (integral images); the
    region's size is bounded, so estimating a kernel on it costs the same for any photo size.

    Args:
        image: (1, C, H, W) or (C, H, W) float image in [0, 1], C in (1, 3).
        size: side of the region in pixels; a smaller image dimension caps it.
        step: spacing of the candidate corners (default ``max(4, size // 8)``).
        saturation: clip level; pixels at or above it in any channel are excluded.
        margin: dilation of the clipped mask, pixels.
        mask: optional (H, W) or (1, 1, H, W) mask of further pixels to ignore (True = ignore).

    Returns:
        ``(top, left, h, w)`` in pixels: ``image[..., top:top + h, left:left + w]``.

    Raises:
        ValueError: as :func:`region_scores`.
    """
    scores, tops, lefts = region_scores(image, size, step=step, saturation=saturation,
                                        margin=margin, mask=mask)
    idx = int(torch.argmax(scores))
    i, j = divmod(idx, scores.shape[1])
    h, w = image.shape[-2:]
    return int(tops[i]), int(lefts[j]), min(int(size), h), min(int(size), w)
