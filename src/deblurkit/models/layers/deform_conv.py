"""Modulated deformable convolution (DCNv2, Zhu et al., *Deformable ConvNets v2*, CVPR 2019) in
pure PyTorch, with mmcv's tensor layout and arithmetic, and no compiled extension.

Follows ``mmcv/ops/modulated_deform_conv.py`` (``ModulatedDeformConv2d``,
``ModulatedDeformConv2dPack``) and the ``modulated_deformable_im2col`` kernel of
``mmcv/ops/csrc/common/cuda/modulated_deform_conv_cuda_kernel.cuh`` (mmcv-full 1.3.9, the version
ASPDC used), so checkpoints trained with mmcv load with the same key names and give the same
outputs.

Layout (mmcv)
-------------
For an input ``x`` (N, C, H, W), a kernel ``kh x kw`` (``K = kh * kw`` taps, tap ``k = i * kw + j``
row-major) and ``deform_groups = D``:

- ``offset`` (N, D * 2 * K, Ho, Wo): for deform group ``g`` and tap ``k``, channel
  ``g * 2K + 2k`` is the row (y) offset and ``g * 2K + 2k + 1`` the column (x) offset, in pixels.
- ``mask`` (N, D * K, Ho, Wo): channel ``g * K + k`` multiplies the sample of tap ``k`` (mmcv
  applies no sigmoid; callers do).
- input channel ``c`` uses deform group ``c // (C / D)``.

The sample of output pixel ``(ho, wo)`` and tap ``(i, j)`` is at

    y = ho * stride_h - pad_h + i * dilation_h + offset_y,   x = wo * stride_w - pad_w + j * dilation_w + offset_x

and its value is 0 unless ``-1 < y < H`` and ``-1 < x < W``; inside that range it is bilinear over
the 4 integer neighbours, neighbours outside the image counting 0. Then

    out[n, o, ho, wo] = bias[o] + sum_{c in group(o), k} weight[o, c, k] * mask_k * sample_k(c).

Implementation
--------------
The input is copied once into a zero-bordered channels-last buffer (N*(H+2)*(W+2), C), so every
neighbour of an in-range sample is a valid row holding either a pixel or 0. For each chunk of output
rows, the bilinear x mask weights of its (pixel, tap) samples form a sparse matrix S with 4 entries
per row (1 entry when ``offset`` is None), and the (P, K*C) columns ``S @ buffer`` are multiplied by
the (K*C, C_out) weight matrix (``backend="gather"`` reads the neighbours with ``index_select``
instead of a CSR product). Work and extra memory per chunk are bounded by ``max_chunk_elems``
(elements of the column buffer), so large images run in bounded extra memory. The backward pass
(an ``autograd.Function``) recomputes each chunk's columns instead of storing them, so training
memory is bounded the same way; it scatters input gradients with ``index_add_``, gets offset/mask
gradients from ``torch.sparse.sampled_addmm`` (the 4 neighbour x column-gradient dot products per
sample) and gives gradients for the input, offset, mask, weight and bias (first order only;
double backward raises).

Speed (benchmarks/bench_deform_conv.py, 1x128x180x320, dilation 4, one CPU thread, CPU time):
about 1.5x a plain 3x3 ``F.conv2d`` of the same dilation and 2-2.5x one of dilation 1, forward and
forward+backward, with peak training memory no higher than either convolution's.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

__all__ = [
    "DEFAULT_MAX_CHUNK_ELEMS",
    "modulated_deform_conv2d",
    "deform_conv2d",
    "ModulatedDeformConv2d",
    "ModulatedDeformConv2dPack",
    "DeformConv2d",
]

#: Default bound on the elements of one chunk's column buffer (rows x kernel taps x channels).
#: About 4 MiB in float32: chunks stay in cache, which is faster on CPUs than one huge buffer.
DEFAULT_MAX_CHUNK_ELEMS = 1 << 20


def _pair(value: int | Sequence[int], name: str, minimum: int) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        pair = (value, value)
    else:
        try:
            pair = tuple(int(v) for v in value)  # type: ignore[union-attr]
        except TypeError:
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}") from None
        if len(pair) != 2 or any(int(v) != v for v in value):  # type: ignore[union-attr]
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return pair  # type: ignore[return-value]


@dataclass(frozen=True)
class _Geom:
    n: int
    c: int
    h: int
    w: int
    o: int
    kh: int
    kw: int
    ho: int
    wo: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int
    dw: int
    groups: int
    dg: int

    @property
    def k(self) -> int:
        return self.kh * self.kw

    @property
    def hp(self) -> int:  # height of the zero-bordered input
        return self.h + 2

    @property
    def wp(self) -> int:
        return self.w + 2

    @property
    def cd(self) -> int:  # channels per deform group
        return self.c // self.dg


def _geometry(
    x: Tensor,
    offset: Tensor | None,
    mask: Tensor | None,
    weight: Tensor,
    bias: Tensor | None,
    stride,
    padding,
    dilation,
    groups: int,
    deform_groups: int,
) -> _Geom:
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise ValueError(f"input must be a 4-D tensor (N, C, H, W), got {_shape(x)}")
    if not x.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor, got {x.dtype}")
    if not isinstance(weight, Tensor) or weight.dim() != 4:
        raise ValueError(f"weight must be a 4-D tensor (C_out, C_in / groups, kh, kw), got {_shape(weight)}")
    if weight.dtype != x.dtype:
        raise TypeError(f"weight dtype {weight.dtype} differs from input dtype {x.dtype}")
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    dh, dw = _pair(dilation, "dilation", 1)
    if int(groups) != groups or groups < 1:
        raise ValueError(f"groups must be a positive integer, got {groups!r}")
    if int(deform_groups) != deform_groups or deform_groups < 1:
        raise ValueError(f"deform_groups must be a positive integer, got {deform_groups!r}")
    groups, deform_groups = int(groups), int(deform_groups)
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    if c % groups or o % groups:
        raise ValueError(f"input channels {c} and output channels {o} must be divisible by groups={groups}")
    if cg != c // groups:
        raise ValueError(
            f"weight has {cg} input channels per group, input has {c} channels / groups={groups} = {c // groups}"
        )
    if c % deform_groups:
        raise ValueError(f"input channels {c} must be divisible by deform_groups={deform_groups}")
    ho = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    wo = (w + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    if ho < 1 or wo < 1 or h < 1 or w < 1:
        raise ValueError(
            f"input of size {h}x{w} is too small for a {kh}x{kw} kernel with padding {(ph, pw)} "
            f"and dilation {(dh, dw)} (output would be {ho}x{wo})"
        )
    k = kh * kw
    if offset is not None:
        _expect(offset, "offset", (n, deform_groups * 2 * k, ho, wo), x)
    if mask is not None:
        _expect(mask, "mask", (n, deform_groups * k, ho, wo), x)
    if bias is not None:
        if not isinstance(bias, Tensor) or tuple(bias.shape) != (o,):
            raise ValueError(f"bias must have shape ({o},), got {_shape(bias)}")
    return _Geom(n, c, h, w, o, kh, kw, ho, wo, sh, sw, ph, pw, dh, dw, groups, deform_groups)


def _shape(t) -> str:
    return str(tuple(t.shape)) if isinstance(t, Tensor) else type(t).__name__


def _expect(t: Tensor, name: str, shape: tuple[int, ...], x: Tensor) -> None:
    if not isinstance(t, Tensor) or tuple(t.shape) != shape:
        raise ValueError(
            f"{name} must have shape {shape} (N, deform_groups x {'2 x ' if name == 'offset' else ''}"
            f"kh x kw, H_out, W_out), got {_shape(t)}"
        )
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if t.device != x.device:
        raise ValueError(f"{name} is on {t.device}, input on {x.device}")


_BLOCK_CHUNKS = 16  # chunks whose sampling plan is computed together (amortises small ops)
_BACKENDS = ("auto", "sparse", "gather")


def _chunk_units(g: _Geom, max_chunk_elems: int) -> tuple[int, bool]:
    """(rows per chunk, True) when a sample needs several chunks, else (samples per chunk, False)."""
    per_row = g.wo * g.k * g.c
    rows = max(1, int(max_chunk_elems) // per_row)
    if rows < g.ho:
        return rows, True
    return max(1, int(max_chunk_elems) // (per_row * g.ho)), False


def _blocks(g: _Geom, max_chunk_elems: int):
    """Yield ``(block, chunks)``: ``block = (n0, n1, r0, r1)`` (rows r0:r1 of sample n0, or whole
    samples n0:n1) and its chunks ``(n0, n1, r0, r1, m0, m1)``, ``m0:m1`` the chunk's slice of the
    block's (pixel, tap) rows."""
    unit, by_rows = _chunk_units(g, max_chunk_elems)
    per_row = g.wo * g.k
    if by_rows:
        span = unit * _BLOCK_CHUNKS
        for n in range(g.n):
            for b0 in range(0, g.ho, span):
                b1 = min(g.ho, b0 + span)
                chunks = [(n, n + 1, a, min(b1, a + unit), (a - b0) * per_row, (min(b1, a + unit) - b0) * per_row)
                          for a in range(b0, b1, unit)]
                yield (n, n + 1, b0, b1), chunks
    else:
        span = unit * _BLOCK_CHUNKS
        per_sample = g.ho * per_row
        for b0 in range(0, g.n, span):
            b1 = min(g.n, b0 + span)
            chunks = [(a, min(b1, a + unit), 0, g.ho, (a - b0) * per_sample, (min(b1, a + unit) - b0) * per_sample)
                      for a in range(b0, b1, unit)]
            yield (b0, b1, 0, g.ho), chunks


@dataclass
class _Plan:
    """Sampling of a block of output rows; arrays are (deform group, M = pixels x taps, ...)."""

    idx: Tensor  # (D, M, J) long: buffer rows of the J read neighbours (J = 4, or 1 on the grid)
    wgt: Tensor  # (D, M, J) x.dtype: bilinear weight x mask, 0 for samples outside the image
    bil: Tensor | None  # (D, M, J) bilinear weight (0 outside), coordinate dtype; for mask grads
    ly: Tensor | None  # (D, M) fractional row / column parts; for offset grads
    lx: Tensor | None
    mv: Tensor | None  # (D, M) mask x inside-flag

    def rows(self, m0: int, m1: int) -> "_Plan":
        cut = lambda t: None if t is None else t[:, m0:m1]  # noqa: E731
        return _Plan(cut(self.idx), cut(self.wgt), cut(self.bil), cut(self.ly), cut(self.lx), cut(self.mv))


def _plan(g: _Geom, offset: Tensor | None, mask: Tensor | None, block: tuple[int, int, int, int],
          dtype: torch.dtype, dev: torch.device, for_grad: bool) -> _Plan:
    n0, n1, r0, r1 = block
    nb, rows, k = n1 - n0, r1 - r0, g.k
    cdt = torch.float64 if dtype == torch.float64 else torch.float32
    if offset is not None:
        cdt = torch.promote_types(cdt, offset.dtype)
    ti = torch.arange(g.kh, device=dev, dtype=cdt).repeat_interleave(g.kw) * g.dh  # (K,)
    tj = torch.arange(g.kw, device=dev, dtype=cdt).repeat(g.kh) * g.dw
    ys = torch.arange(r0, r1, device=dev, dtype=cdt) * g.sh - g.ph  # (R,)
    xs = torch.arange(g.wo, device=dev, dtype=cdt) * g.sw - g.pw  # (Wo,)
    # layout (D, nb, R, Wo, K): the column buffer's rows are (pixel, tap)
    py = (ys.view(rows, 1, 1) + ti.view(1, 1, k)).view(1, 1, rows, 1, k)
    px = (xs.view(g.wo, 1) + tj.view(1, k)).view(1, 1, 1, g.wo, k)
    shape = (g.dg, nb, rows, g.wo, k)
    if offset is not None:
        off = offset[n0:n1, :, r0:r1].reshape(nb, g.dg, k, 2, rows, g.wo).to(cdt)
        py = py + off[:, :, :, 0].permute(1, 0, 3, 4, 2)
        px = px + off[:, :, :, 1].permute(1, 0, 3, 4, 2)
    py, px = py.expand(shape), px.expand(shape)
    valid = (py > -1) & (py < g.h) & (px > -1) & (px < g.w)
    zero = torch.zeros((), dtype=cdt, device=dev)
    if mask is not None:
        m = mask[n0:n1, :, r0:r1].reshape(nb, g.dg, k, rows, g.wo).permute(1, 0, 3, 4, 2).to(cdt)
        mv = torch.where(valid, m, zero)
    else:
        mv = valid.to(cdt)
    neg = torch.full((), -1.0, dtype=cdt, device=dev)
    # offsets None: positions on the integer grid, one neighbour with bilinear weight 1
    y0 = torch.where(valid, py.floor() if offset is not None else py, neg)
    x0 = torch.where(valid, px.floor() if offset is not None else px, neg)
    base = (torch.arange(n0, n1, device=dev, dtype=torch.long) * (g.hp * g.wp)).view(1, nb, 1, 1, 1)
    idx = ((y0.long() + 1) * g.wp + (x0.long() + 1) + base).reshape(g.dg, -1, 1)
    mv = mv.reshape(g.dg, -1)
    if offset is None:
        bil = valid.reshape(g.dg, -1, 1).to(cdt) if for_grad else None
        return _Plan(idx, mv.unsqueeze(-1).to(dtype), bil, None, None, None)
    ly = torch.where(valid, py - y0, zero).reshape(g.dg, -1)
    lx = torch.where(valid, px - x0, zero).reshape(g.dg, -1)
    hy, hx = 1 - ly, 1 - lx
    bil = torch.stack([hy * hx, hy * lx, ly * hx, ly * lx], -1)  # (D, M, 4): (y0,x0) (y0,x1) (y1,x0) (y1,x1)
    shifts = torch.tensor([0, 1, g.wp, g.wp + 1], device=dev, dtype=torch.long)
    wgt = (bil * mv.unsqueeze(-1)).to(dtype)
    if not for_grad:
        return _Plan(idx + shifts, wgt, None, None, None, None)
    return _Plan(idx + shifts, wgt, bil * valid.reshape(g.dg, -1, 1), ly, lx, mv)


def _use_sparse(backend: str, x: Tensor) -> bool:
    if backend == "auto":  # MKL's CSR kernels: CPU, float32/float64 only
        return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
    return backend == "sparse"


def _sampling_matrix(idx: Tensor, wgt: Tensor, rows_of_x: int) -> Tensor:
    """CSR matrix (M, rows_of_x) with J entries per row: ``S @ xb`` = bilinear-sampled, masked rows."""
    m, j = idx.shape
    crow = torch.arange(0, m * j + 1, j, device=idx.device, dtype=torch.long)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*beta.*")
        return torch.sparse_csr_tensor(
            crow, idx.reshape(-1), wgt.reshape(-1), size=(m, rows_of_x), check_invariants=False
        )


def _sample(xb: Tensor, plan: _Plan, g: _Geom, sparse: bool) -> tuple[Tensor, list[Tensor | None]]:
    """Columns (P, K * C) of a chunk, and per deform group its CSR sampling matrix (sparse path)."""
    m = plan.idx.shape[1]
    parts, mats = [], []
    for d in range(g.dg):
        if sparse:
            s = _sampling_matrix(plan.idx[d], plan.wgt[d], xb.shape[1])
            parts.append(s @ xb[d])
            mats.append(s)
        else:
            idx, wgt = plan.idx[d], plan.wgt[d]
            acc = torch.mul(xb[d].index_select(0, idx[:, 0].contiguous()), wgt[:, 0:1])
            for jj in range(1, idx.shape[1]):
                acc.addcmul_(xb[d].index_select(0, idx[:, jj].contiguous()), wgt[:, jj:jj + 1])
            parts.append(acc)
            mats.append(None)
    col = parts[0] if g.dg == 1 else torch.stack(parts, 1)
    return col.reshape(m // g.k, g.k * g.c), mats


def _weight_matrix(weight: Tensor, g: _Geom) -> Tensor:
    """(G, O/G, K * C/G) with columns ordered (tap, channel), matching the column buffer."""
    og, cg = g.o // g.groups, g.c // g.groups
    return weight.reshape(g.groups, og, cg, g.k).permute(0, 1, 3, 2).reshape(g.groups, og, g.k * cg)


def _grouped_cols(col: Tensor, g: _Geom) -> Tensor:
    """(P, K*C) columns -> (G, P, K*C/G)."""
    if g.groups == 1:
        return col.unsqueeze(0)
    p, cg = col.shape[0], g.c // g.groups
    return col.view(p, g.k, g.groups, cg).permute(2, 0, 1, 3).reshape(g.groups, p, g.k * cg)


def _ungrouped_cols(gcol: Tensor, g: _Geom) -> Tensor:
    """(G, P, K*C/G) -> (P, K*C) (inverse of :func:`_grouped_cols`)."""
    if g.groups == 1:
        return gcol[0]
    p, cg = gcol.shape[1], g.c // g.groups
    return gcol.view(g.groups, p, g.k, cg).permute(1, 2, 0, 3).reshape(p, g.k * g.c)


def _bordered_channels_last(x: Tensor, g: _Geom) -> Tensor:
    """(D, N * (H+2) * (W+2), C / D) contiguous copy of ``x`` with a zero border of 1 pixel."""
    xp = x.new_zeros(g.dg, g.n, g.hp, g.wp, g.cd)
    xp[:, :, 1:-1, 1:-1] = x.view(g.n, g.dg, g.cd, g.h, g.w).permute(1, 0, 3, 4, 2)
    return xp.view(g.dg, -1, g.cd)


def _forward(x, offset, mask, weight, bias, g: _Geom, max_chunk_elems: int, backend: str) -> Tensor:
    sparse = _use_sparse(backend, x)
    xb = _bordered_channels_last(x, g)
    w2 = _weight_matrix(weight, g)  # (G, Og, K*Cg)
    out = x.new_empty(g.n, g.o, g.ho, g.wo)
    for block, chunks in _blocks(g, max_chunk_elems):
        bplan = _plan(g, offset, mask, block, x.dtype, x.device, for_grad=False)
        for n0, n1, r0, r1, m0, m1 in chunks:
            col, _ = _sample(xb, bplan.rows(m0, m1), g, sparse)
            if g.groups == 1:
                res = col @ w2[0].t()  # (P, O)
            else:
                res = torch.bmm(_grouped_cols(col, g), w2.transpose(1, 2)).permute(1, 0, 2).reshape(-1, g.o)
            if bias is not None:
                res += bias
            out[n0:n1, :, r0:r1] = res.view(n1 - n0, r1 - r0, g.wo, g.o).permute(0, 3, 1, 2)
    return out


def _backward(grad_out, x, offset, mask, weight, bias, g: _Geom, max_chunk_elems: int, backend: str, needs):
    need_x, need_off, need_mask, need_w, need_b = needs
    need_off = need_off and offset is not None
    need_mask = need_mask and mask is not None
    need_dots = need_off or need_mask
    sparse = _use_sparse(backend, x)
    xb = _bordered_channels_last(x, g)
    w2 = _weight_matrix(weight, g)
    gxb = torch.zeros_like(xb) if need_x else None
    goff = torch.zeros_like(offset) if need_off else None
    gmask = torch.zeros_like(mask) if need_mask else None
    gw2 = torch.zeros_like(w2) if need_w else None
    for block, chunks in _blocks(g, max_chunk_elems):
        bplan = _plan(g, offset, mask, block, x.dtype, x.device, for_grad=True)
        for n0, n1, r0, r1, m0, m1 in chunks:
            plan = bplan.rows(m0, m1)
            go = grad_out[n0:n1, :, r0:r1].permute(0, 2, 3, 1).reshape(-1, g.o)  # (P, O)
            go_g = go.unsqueeze(0) if g.groups == 1 else go.view(-1, g.groups, g.o // g.groups).transpose(0, 1)
            mats: list[Tensor | None] = [None] * g.dg
            if need_w:
                col, mats = _sample(xb, plan, g, sparse)
                gw2.baddbmm_(go_g.transpose(1, 2), _grouped_cols(col, g))
            if not (need_x or need_dots):
                continue
            gcol = _ungrouped_cols(torch.bmm(go_g, w2), g).reshape(-1, g.dg, g.cd)  # (M, D, Cd)
            dots = []
            for d in range(g.dg):
                gc = gcol[:, d] if g.dg > 1 else gcol.view(-1, g.cd)
                idx = plan.idx[d]
                if need_x:
                    for jj in range(idx.shape[1]):
                        gxb[d].index_add_(0, idx[:, jj].contiguous(), gc * plan.wgt[d, :, jj:jj + 1])
                if need_dots:  # d loss / d (neighbour value x its weight): (M, J)
                    if sparse:
                        s = mats[d] if mats[d] is not None else _sampling_matrix(idx, plan.wgt[d], xb.shape[1])
                        with warnings.catch_warnings():
                            warnings.filterwarnings("ignore", message=".*[Ss]parse.*beta.*")
                            prod = torch.sparse.sampled_addmm(s, gc.contiguous(), xb[d].t(), beta=0.0)
                        dots.append(prod.values().view(idx.shape))
                    else:
                        dots.append(torch.stack(
                            [(xb[d].index_select(0, idx[:, jj].contiguous()) * gc).sum(1) for jj in range(idx.shape[1])],
                            -1,
                        ))
            if not need_dots:
                continue
            dd = torch.stack(dots).to(plan.bil.dtype)  # (D, M, J)
            nb, rows = n1 - n0, r1 - r0
            if need_mask:
                gm = (plan.bil * dd).sum(-1)  # (D, M)
                gmask[n0:n1, :, r0:r1] = gm.view(g.dg, nb, rows, g.wo, g.k).permute(1, 0, 4, 2, 3).reshape(
                    nb, g.dg * g.k, rows, g.wo)
            if need_off:
                ly, lx, mv = plan.ly, plan.lx, plan.mv
                d00, d01, d10, d11 = dd.unbind(-1)
                gy = mv * ((1 - lx) * (d10 - d00) + lx * (d11 - d01))
                gx = mv * ((1 - ly) * (d01 - d00) + ly * (d11 - d10))
                both = torch.stack([gy, gx], 1).view(g.dg, 2, nb, rows, g.wo, g.k)
                goff[n0:n1, :, r0:r1] = both.permute(2, 0, 5, 1, 3, 4).reshape(nb, g.dg * g.k * 2, rows, g.wo)
    gx_full = None
    if need_x:
        gx_full = gxb.view(g.dg, g.n, g.hp, g.wp, g.cd)[:, :, 1:-1, 1:-1].permute(1, 0, 4, 2, 3)
        gx_full = gx_full.reshape(g.n, g.c, g.h, g.w)
    gw = None
    if need_w:
        og, cg = g.o // g.groups, g.c // g.groups
        gw = gw2.view(g.groups, og, g.k, cg).permute(0, 1, 3, 2).reshape(weight.shape)
    gb = grad_out.sum((0, 2, 3)) if (need_b and bias is not None) else None
    return gx_full, goff, gmask, gw, gb


class _ModulatedDeformConv2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, offset, mask, weight, bias, g, max_chunk_elems, backend):
        ctx.g, ctx.max_chunk_elems, ctx.backend = g, max_chunk_elems, backend
        ctx.save_for_backward(x, offset, mask, weight, bias)
        with torch.no_grad():
            return _forward(x, offset, mask, weight, bias, g, max_chunk_elems, backend)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x, offset, mask, weight, bias = ctx.saved_tensors
        grads = _backward(
            grad_out.contiguous(), x, offset, mask, weight, bias, ctx.g, ctx.max_chunk_elems,
            ctx.backend, ctx.needs_input_grad[:5],
        )
        return (*grads, None, None, None)


def modulated_deform_conv2d(
    x: Tensor,
    offset: Tensor | None,
    mask: Tensor | None,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    deform_groups: int = 1,
    *,
    max_chunk_elems: int = DEFAULT_MAX_CHUNK_ELEMS,
    backend: str = "auto",
) -> Tensor:
    """Modulated deformable convolution, as mmcv's ``modulated_deform_conv2d``.

    Args:
        x: input (N, C, H, W), float (any range).
        offset: (N, deform_groups * 2 * kh * kw, H_out, W_out) sampling offsets in pixels, mmcv
            layout (per deform group, tap ``k = i * kw + j``: channel ``2k`` = row/y offset,
            ``2k + 1`` = column/x offset), or ``None`` for zero offsets (then the samples fall on
            the pixel grid and only one neighbour is read: a faster masked convolution).
        mask: (N, deform_groups * kh * kw, H_out, W_out) modulation of each tap's sample (used as
            given; DCNv2 passes ``sigmoid(...)`` in [0, 1]), or ``None`` for 1 (DCNv1).
        weight: (C_out, C / groups, kh, kw), same dtype as ``x``.
        bias: (C_out,) or ``None``.
        stride, padding, dilation: ints or (h, w) pairs, as ``F.conv2d``.
        groups: convolution groups (C and C_out divisible by it).
        deform_groups: offset/mask groups (C divisible by it); channel ``c`` uses group
            ``c // (C / deform_groups)``.
        max_chunk_elems: bound on the elements of one chunk's column buffer
            (rows x W_out x kh x kw x C); output rows are processed in chunks of
            ``max(1, max_chunk_elems // (W_out * kh * kw * C))`` rows (or of whole samples when a
            sample fits). Results do not depend on it beyond float rounding.
        backend: how neighbours are read: ``"sparse"`` (a CSR sampling matrix per chunk times the
            channels-last input, and ``torch.sparse.sampled_addmm`` for the offset/mask
            gradients; fastest on CPU; float32/float64 on CPU, other devices/dtypes only where
            torch implements those sparse kernels), ``"gather"`` (``index_select`` /
            ``index_add_`` per neighbour; any device and float dtype) or ``"auto"`` (sparse for
            float32/float64 on the CPU, gather otherwise). Both give the same values up to float
            rounding.

    Returns:
        (N, C_out, H_out, W_out) with ``H_out = (H + 2 pad_h - dil_h (kh - 1) - 1) // stride_h + 1``
        (same for W). Samples at ``(y, x)`` count only when ``-1 < y < H`` and ``-1 < x < W``;
        bilinear neighbours outside the image are 0 (mmcv's rule). Zero offsets with mask 1 equal
        ``F.conv2d``.

    Differentiable (first order) in ``x``, ``offset``, ``mask``, ``weight`` and ``bias``; the
    backward recomputes each chunk's columns, so it needs no more memory than the forward.

    Raises:
        ValueError: wrong dimensions/shapes (offset, mask, weight, bias), channels not divisible
            by ``groups``/``deform_groups``, bad stride/padding/dilation, input too small.
        TypeError: non-floating input, or weight dtype different from the input's.
        ValueError: ``backend`` not one of ``"auto"``, ``"sparse"``, ``"gather"``.
        NotImplementedError: ``backend="sparse"`` for a dtype/device torch has no CSR kernel for.

    Follows mmcv ``mmcv/ops/modulated_deform_conv.py`` (``modulated_deform_conv2d``) and its
    ``modulated_deformable_im2col`` CUDA kernel (mmcv-full 1.3.9).
    """
    g = _geometry(x, offset, mask, weight, bias, stride, padding, dilation, groups, deform_groups)
    if int(max_chunk_elems) < 1:
        raise ValueError(f"max_chunk_elems must be >= 1, got {max_chunk_elems!r}")
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    offset = offset.contiguous() if offset is not None else None
    mask = mask.contiguous() if mask is not None else None
    return _ModulatedDeformConv2dFunction.apply(
        x.contiguous(), offset, mask, weight.contiguous(), bias, g, int(max_chunk_elems), backend
    )


def deform_conv2d(
    x: Tensor,
    offset: Tensor,
    weight: Tensor,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    deform_groups: int = 1,
    *,
    max_chunk_elems: int = DEFAULT_MAX_CHUNK_ELEMS,
) -> Tensor:
    """Deformable convolution v1 (mmcv ``deform_conv2d``, no mask, no bias): equal to
    :func:`modulated_deform_conv2d` with ``mask=None`` and ``bias=None``. Shapes, errors and
    layout as there."""
    return modulated_deform_conv2d(
        x, offset, None, weight, None, stride, padding, dilation, groups, deform_groups,
        max_chunk_elems=max_chunk_elems,
    )


class ModulatedDeformConv2d(nn.Module):
    """Modulated deformable convolution layer with mmcv's parameters and call.

    State-dict keys: ``weight`` (out_channels, in_channels / groups, kh, kw) and ``bias``
    (out_channels,) when ``bias`` (as mmcv's ``ModulatedDeformConv2d``, which ASPDC wraps).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
        deform_groups, bias: as mmcv (defaults: stride 1, padding 0, dilation 1, groups 1,
            deform_groups 1, bias True).
        max_chunk_elems: chunk bound passed to :func:`modulated_deform_conv2d` (not a parameter;
            changes memory and speed, not results).

    Forward: ``(x, offset, mask)`` with x (N, in_channels, H, W), offset
    (N, deform_groups * 2 * kh * kw, H_out, W_out), mask (N, deform_groups * kh * kw, H_out, W_out)
    -> (N, out_channels, H_out, W_out). ``offset`` may be ``None`` (zero offsets).

    Initialisation as mmcv ``init_weights``: weight ~ U(-1/sqrt(n), 1/sqrt(n)) with
    ``n = in_channels * kh * kw``; bias 0.

    Raises: ValueError on bad constructor arguments or input shapes (see
    :func:`modulated_deform_conv2d`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        deform_groups: int = 1,
        bias: bool = True,
        *,
        max_chunk_elems: int = DEFAULT_MAX_CHUNK_ELEMS,
    ) -> None:
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("groups", groups), ("deform_groups", deform_groups)):
            if int(v) != v or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels {in_channels} and out_channels {out_channels} must be divisible by groups={groups}")
        if in_channels % deform_groups:
            raise ValueError(f"in_channels {in_channels} must be divisible by deform_groups={deform_groups}")
        if int(max_chunk_elems) < 1:
            raise ValueError(f"max_chunk_elems must be >= 1, got {max_chunk_elems!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.stride = _pair(stride, "stride", 1)
        self.padding = _pair(padding, "padding", 0)
        self.dilation = _pair(dilation, "dilation", 1)
        self.groups, self.deform_groups = int(groups), int(deform_groups)
        self.max_chunk_elems = int(max_chunk_elems)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self.init_weights()

    def init_weights(self) -> None:
        """mmcv's initialisation: weight ~ U(-stdv, stdv), stdv = 1/sqrt(in_channels * kh * kw); bias 0."""
        stdv = 1.0 / math.sqrt(self.in_channels * self.kernel_size[0] * self.kernel_size[1])
        with torch.no_grad():
            self.weight.uniform_(-stdv, stdv)
            if self.bias is not None:
                self.bias.zero_()

    def forward(self, x: Tensor, offset: Tensor | None, mask: Tensor | None) -> Tensor:
        return modulated_deform_conv2d(
            x, offset, mask, self.weight, self.bias, self.stride, self.padding, self.dilation,
            self.groups, self.deform_groups, max_chunk_elems=self.max_chunk_elems,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"groups={self.groups}, deform_groups={self.deform_groups}, bias={self.bias is not None}"
        )


class ModulatedDeformConv2dPack(ModulatedDeformConv2d):
    """DCNv2 layer that predicts its own offsets and mask (mmcv ``ModulatedDeformConv2dPack``).

    Extra submodule ``conv_offset`` = Conv2d(in_channels, deform_groups * 3 * kh * kw, kernel_size,
    stride, padding, dilation, bias=True), zero-initialised (so it starts as a plain convolution
    with mask 0.5). Its output ``(o1, o2, m)`` = 3 equal channel chunks gives
    ``offset = cat(o1, o2)`` and ``mask = sigmoid(m)``. State-dict keys: ``weight``, ``bias``,
    ``conv_offset.weight``, ``conv_offset.bias``.

    Forward: x (N, in_channels, H, W) -> (N, out_channels, H_out, W_out).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        kh, kw = self.kernel_size
        self.conv_offset = nn.Conv2d(
            self.in_channels, self.deform_groups * 3 * kh * kw, self.kernel_size,
            stride=self.stride, padding=self.padding, dilation=self.dilation, bias=True,
        )
        self.init_offset()

    def init_offset(self) -> None:
        with torch.no_grad():
            self.conv_offset.weight.zero_()
            self.conv_offset.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        o1, o2, m = torch.chunk(self.conv_offset(x), 3, dim=1)
        return super().forward(x, torch.cat((o1, o2), dim=1), torch.sigmoid(m))


class DeformConv2d(ModulatedDeformConv2d):
    """Deformable convolution v1 layer (mmcv ``DeformConv2d``): key ``weight`` only, no bias.

    Forward ``(x, offset)`` -> (N, out_channels, H_out, W_out); shapes and layout as
    :class:`ModulatedDeformConv2d` without the mask (every tap weighted 1).

    Raises: ValueError if ``bias=True`` (mmcv's DeformConv2d has none) or on bad arguments.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        deform_groups: int = 1,
        bias: bool = False,
        *,
        max_chunk_elems: int = DEFAULT_MAX_CHUNK_ELEMS,
    ) -> None:
        if bias:
            raise ValueError("DeformConv2d has no bias (as mmcv); use ModulatedDeformConv2d")
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, deform_groups,
            bias=False, max_chunk_elems=max_chunk_elems,
        )

    def forward(self, x: Tensor, offset: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(x, offset, None)
