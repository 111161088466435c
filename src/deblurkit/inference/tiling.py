"""Tiled inference with overlapping, smoothly blended tiles, and the automatic tile-size rule.

How :func:`tiled_forward` works:

1. The image is reflect-padded once at the bottom/right to the network's size multiple
   (:func:`~deblurkit.inference.padding.pad_to_multiple`), exactly as the untiled path does.
2. ``tile`` is the largest tile side allowed (rounded down to the multiple); the overlap is
   rounded up to the multiple. Along each axis the fewest tiles that cover it with at least
   ``overlap`` pixels of overlap are used, and their length is balanced (shrunk to the
   smallest multiple that still covers the axis), so a 1152-pixel axis with ``tile=512`` gets
   three 408-pixel tiles instead of 512-pixel ones overlapping by 352 pixels. Tiles start
   every ``length - overlap`` pixels; the last one is shifted back so that it ends at the
   image border (it is never padded). Every tile start is a multiple of ``multiple``, so each
   tile sees the same stride grid as the untiled image, and tiled and untiled results agree
   up to the network's finite receptive field.
3. Each tile output is multiplied by a separable window that is 1 in the tile interior and at
   image borders, and ramps up over the overlap towards interior tile edges: 0 on the outer
   quarter of the overlap (where the tile output is most affected by the missing context), then
   a raised cosine over the middle half, 1 on the inner quarter. For two tiles overlapping by
   exactly ``overlap`` the two windows sum to 1; in general the weighted sum is divided by the
   accumulated weights (which, as the tiles form a grid, is the outer product of the per-axis
   sums).
4. Tile outputs are moved to the CPU as float32 and accumulated there, so the accelerator only
   ever holds one batch of tiles.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from .padding import crop_padding, pad_to_multiple

__all__ = [
    "tile_starts",
    "balanced_tile",
    "blend_window",
    "tiled_forward",
    "auto_tile_size",
    "DEFAULT_TILE",
    "CPU_MEMORY_BUDGET_MB",
    "BYTES_PER_PIXEL_FP32",
    "BF16_MEMORY_FACTOR",
]

#: Tile side used when an image is too large to run in one piece.
DEFAULT_TILE = 512
#: Activation memory budget assumed on the CPU for one forward pass (MiB).
CPU_MEMORY_BUDGET_MB = 2048
#: Peak activation memory of a forward pass per input pixel at fp32 (bytes): measured peak-RSS
#: growth of the official MIMO-UNet (base_channel 32, num_res 8) under ``inference_mode`` on
#: the CPU, 3.3-3.9 kB/pixel at 512x512 and 256x256. Narrower networks need less, so the rule
#: errs on the safe side for them.
BYTES_PER_PIXEL_FP32 = 3500
#: Factor on :data:`BYTES_PER_PIXEL_FP32` under bf16 autocast (measured 0.62 for MIMO-UNet:
#: autocast keeps fp32 weights and some fp32 intermediates).
BF16_MEMORY_FACTOR = 0.65


def _round_down(v: int, m: int) -> int:
    return (v // m) * m


def _round_up(v: int, m: int) -> int:
    return -(-v // m) * m


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``[0, size)`` with at least ``overlap``.

    Tiles start at ``0, s, 2s, ...`` with stride ``s = tile - overlap``; the last tile starts at
    ``size - tile`` (shifted back inside the axis, not padded). If ``tile >= size`` the single
    start ``0`` is returned (the caller uses a tile of length ``size``).

    Raises:
        ValueError: ``tile < 1``, ``overlap < 0`` or ``overlap >= tile``.
    """
    if tile < 1 or overlap < 0 or overlap >= tile:
        raise ValueError(f"need tile >= 1 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}")
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


def balanced_tile(size: int, max_tile: int, overlap: int, multiple: int = 1) -> int:
    """Tile length for an axis of ``size`` pixels: at most ``max_tile``, as short as possible.

    Uses the fewest tiles ``n`` of length ``max_tile`` that cover the axis with ``overlap``
    pixels of overlap, then the shortest length (a multiple of ``multiple``, and at least
    ``2 * overlap`` so that blending ramps do not meet) with which ``n`` tiles still cover it.
    ``size`` itself when it fits in one tile. ``max_tile`` and ``overlap`` should be multiples
    of ``multiple`` with ``2 * overlap <= max_tile``.
    """
    if size <= max_tile:
        return size
    n = -(-(size - overlap) // (max_tile - overlap))
    length = _round_up(-(-(size + (n - 1) * overlap) // n), multiple)
    return min(max_tile, max(length, 2 * overlap))


def blend_window(length: int, overlap: int, ramp_start: bool, ramp_end: bool) -> torch.Tensor:
    """1-D blending weights for one tile axis, float32 of shape ``(length,)``.

    The weight is 1 except within ``overlap`` pixels of an edge that has a neighbouring tile
    (``ramp_start`` / ``ramp_end``); there, with ``d`` the distance to that edge and
    ``g = overlap // 4``: 0 for ``d < g``, ``0.5 - 0.5 cos(pi (d - g + 0.5) / (overlap - 2g))``
    for ``g <= d < overlap - g``, and 1 beyond. Windows of two tiles overlapping by exactly
    ``overlap`` sum to 1, and at every pixel of an overlap of at least ``overlap`` pixels one of
    the two tiles has a positive weight.
    """
    w = torch.ones(length, dtype=torch.float32)
    if overlap <= 0:
        return w
    if (ramp_start and ramp_end and 2 * overlap > length) or overlap > length:
        raise ValueError(f"overlap {overlap} too large for a tile of length {length}")
    g = overlap // 4
    r = overlap - 2 * g
    d = torch.arange(overlap, dtype=torch.float64)
    t = ((d - g + 0.5) / r).clamp(0.0, 1.0)
    ramp = (0.5 - 0.5 * torch.cos(math.pi * t)).float()
    ramp[d < g] = 0.0
    if ramp_start:
        w[:overlap] *= ramp
    if ramp_end:
        w[length - overlap :] *= ramp.flip(0)
    return w


def _progress_callback(progress: Any, total: int) -> tuple[Callable[[int], None], Callable[[], None]]:
    """Normalise ``progress`` into ``(advance(n), close())``."""
    if progress is None or progress is False:
        return (lambda n: None), (lambda: None)
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="tiles", unit="tile", leave=False)
        return bar.update, bar.close
    if hasattr(progress, "update"):
        if hasattr(progress, "reset"):
            progress.reset(total=total)
        return progress.update, (lambda: getattr(progress, "refresh", lambda: None)())
    if callable(progress):
        done = [0]

        def advance(n: int) -> None:
            done[0] += n
            progress(done[0], total)

        return advance, (lambda: None)
    raise TypeError(f"progress must be None, a bool, a tqdm-like object or a callable, got {type(progress)!r}")


@torch.no_grad()
def tiled_forward(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: int | None = DEFAULT_TILE,
    overlap: int = 32,
    multiple: int = 4,
    batch_size: int = 1,
    progress: Any = None,
    *,
    device: torch.device | str | None = None,
    pad_mode: str = "reflect",
) -> torch.Tensor:
    """Apply an image-to-image function to ``x`` tile by tile and blend the tiles.

    Args:
        fn: maps a batch ``(n, C, h, w)`` (``h``, ``w`` multiples of ``multiple``, on ``device``)
            to ``(n, C', h, w)``. Called under :func:`torch.no_grad`; any autocast context the
            caller entered stays active.
        x: ``(N, C, H, W)`` input, any float dtype/device (typically float32 on the CPU in [0, 1]).
        tile: largest tile side in pixels, rounded down to ``multiple`` (must be at least
            ``multiple``); tiles are balanced along each axis (:func:`balanced_tile`), so they
            may be shorter. ``None`` runs the whole (padded) image as one tile.
        overlap: minimum overlap of neighbouring tiles in pixels, rounded up to ``multiple``; at
            most half the tile. The outer quarter of it is discarded, so a quarter of the
            overlap should exceed the context a network output really depends on; larger
            overlaps agree more closely with the untiled result at the cost of more work.
        multiple: the network's size multiple (``ModelDescriptor.size_multiple``).
        batch_size: tiles per call of ``fn`` (each call gets ``batch_size * N`` images).
        progress: ``None``/``False``, ``True`` (a tqdm bar over tiles), a tqdm-like object with
            ``update(n)`` (``reset(total=...)`` is called first if it exists), or a callable
            ``progress(done, total)``.
        device: where tiles are sent before calling ``fn`` (default: ``x.device``).
        pad_mode: padding mode for the size multiple (see ``pad_to_multiple``).

    Returns:
        ``(N, C', H, W)`` float32 tensor on the CPU: the blended output, unclamped.

    Raises:
        ValueError: bad ``tile``/``overlap``/``multiple``/``batch_size``, a non 4-D ``x``, or an
            ``fn`` output whose batch or spatial size differs from its input.
    """
    if x.dim() != 4:
        raise ValueError(f"tiled_forward expects (N,C,H,W), got shape {tuple(x.shape)}")
    if multiple < 1 or batch_size < 1:
        raise ValueError(f"multiple and batch_size must be >= 1, got {multiple}, {batch_size}")
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    device = torch.device(device) if device is not None else x.device
    n, _, h, w = x.shape
    xp, pads = pad_to_multiple(x, multiple, mode=pad_mode)
    hp, wp = xp.shape[-2:]

    if tile is None:
        th, tw, ov = hp, wp, 0
    else:
        tile_m = _round_down(int(tile), multiple)
        if tile_m < multiple:
            raise ValueError(f"tile {tile} is smaller than the size multiple {multiple}")
        ov = _round_up(int(overlap), multiple)
        if 2 * ov > tile_m:
            raise ValueError(
                f"overlap {overlap} (rounded to {ov}) must be at most half the tile {tile_m}"
            )
        th, tw = balanced_tile(hp, tile_m, ov, multiple), balanced_tile(wp, tile_m, ov, multiple)
    ys = tile_starts(hp, th, ov) if th < hp else [0]
    xs = tile_starts(wp, tw, ov) if tw < wp else [0]

    wy = [blend_window(th, ov, y0 > 0, y0 + th < hp) for y0 in ys]
    wx = [blend_window(tw, ov, x0 > 0, x0 + tw < wp) for x0 in xs]
    norm_y = torch.zeros(hp)
    norm_x = torch.zeros(wp)
    for y0, wv in zip(ys, wy):
        norm_y[y0 : y0 + th] += wv
    for x0, wv in zip(xs, wx):
        norm_x[x0 : x0 + tw] += wv

    tiles = [(iy, ix) for iy in range(len(ys)) for ix in range(len(xs))]
    advance, close = _progress_callback(progress, len(tiles))
    out: torch.Tensor | None = None
    try:
        for b0 in range(0, len(tiles), batch_size):
            chunk = tiles[b0 : b0 + batch_size]
            batch = torch.cat(
                [xp[:, :, ys[iy] : ys[iy] + th, xs[ix] : xs[ix] + tw] for iy, ix in chunk], dim=0
            ).to(device)
            y = fn(batch)
            if y.dim() != 4 or y.shape[0] != batch.shape[0] or y.shape[-2:] != batch.shape[-2:]:
                raise ValueError(
                    f"fn must map (n,C,h,w) to (n,C',h,w); got {tuple(batch.shape)} -> {tuple(y.shape)}"
                )
            y = y.detach().to("cpu", torch.float32)
            if out is None:
                out = torch.zeros(n, y.shape[1], hp, wp, dtype=torch.float32)
            for k, (iy, ix) in enumerate(chunk):
                weight = wy[iy][:, None] * wx[ix][None, :]
                out[:, :, ys[iy] : ys[iy] + th, xs[ix] : xs[ix] + tw].addcmul_(
                    y[k * n : (k + 1) * n], weight
                )
            del batch, y
            advance(len(chunk))
    finally:
        close()
    assert out is not None
    out /= norm_y[:, None] * norm_x[None, :]
    return crop_padding(out, pads).contiguous() if pads != (0, 0, 0, 0) else out


def auto_tile_size(
    h: int,
    w: int,
    *,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    multiple: int = 4,
    memory_budget_mb: float | None = None,
    bytes_per_pixel: float = BYTES_PER_PIXEL_FP32,
    max_tile: int | None = None,
) -> int | None:
    """Choose a (maximum) tile side for an ``h x w`` image, or ``None`` when it fits in one pass.

    Heuristic: a forward pass needs about ``bytes_per_pixel`` bytes of activations per input
    pixel at fp32 (:data:`BYTES_PER_PIXEL_FP32`, measured for the official MIMO-UNet; times
    :data:`BF16_MEMORY_FACTOR` with bf16). The budget is ``memory_budget_mb`` if given, else
    :data:`CPU_MEMORY_BUDGET_MB` (2 GiB) on the CPU and half of the currently free memory on
    CUDA. The image runs in one pass when its padded size fits the budget; otherwise tiles of at
    most ``max_tile`` pixels (default 512 on the CPU, 1024 on CUDA) are used, smaller if even
    those would not fit (never below 8 multiples, or 4 multiples / 512 pixels for multiples over 64).

    With the defaults on the CPU: no tiling up to ~0.6 MP at fp32 (~0.9 MP with bf16), which
    keeps the activations of one pass near 2 GiB; larger photos (e.g. 12 MP) run in 512-pixel
    tiles (~0.9 GiB of activations), so their peak memory is dominated by the full-size input
    and output buffers (~0.15 GB each per 12 MP).

    Returns:
        ``None`` (no tiling) or a tile side that is a multiple of ``multiple``.

    Raises:
        ValueError: unknown ``precision``.
    """
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    bpp = bytes_per_pixel * (BF16_MEMORY_FACTOR if precision == "bf16" else 1.0)
    dev = torch.device(device)
    on_cuda = dev.type == "cuda" and torch.cuda.is_available()
    if memory_budget_mb is None:
        if on_cuda:
            free, _total = torch.cuda.mem_get_info(dev)
            memory_budget_mb = free / 2**20 / 2
        else:
            memory_budget_mb = CPU_MEMORY_BUDGET_MB
    if max_tile is None:
        max_tile = 2 * DEFAULT_TILE if on_cuda else DEFAULT_TILE
    max_pixels = memory_budget_mb * 2**20 / bpp
    ph, pw = _round_up(h, multiple), _round_up(w, multiple)
    if ph * pw <= max_pixels:
        return None
    side = min(max_tile, int(math.sqrt(max_pixels)))
    # floor for tiny budgets: 8 size multiples, but not above DEFAULT_TILE for networks with a
    # multiple over 64 (4 multiples at least): 8 x 128 forced 1024-px tiles on RSS-T, 7.5 GB at 24 MP
    side = max(_round_down(side, multiple), min(8 * multiple, max(4 * multiple, DEFAULT_TILE)))
    return side
