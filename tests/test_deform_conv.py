"""Modulated deformable convolution (deblurkit.models.layers.deform_conv) against F.conv2d, shifted
convolutions and a literal scalar transcription of mmcv's ``modulated_deformable_im2col`` kernel;
gradients by ``torch.autograd.gradcheck``; chunking and backends give the same results."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from deblurkit.models.layers.deform_conv import (
    DeformConv2d,
    ModulatedDeformConv2d,
    ModulatedDeformConv2dPack,
    deform_conv2d,
    modulated_deform_conv2d,
)

D64 = torch.float64
BACKENDS = ["sparse", "gather"]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - (d * (k - 1) + 1)) // s + 1


# ------------------------------------------------------------------ scalar reference (mmcv kernel)
def _mmcv_bilinear(img, h_size: int, w_size: int, h: float, w: float) -> float:
    h_low, w_low = math.floor(h), math.floor(w)
    h_high, w_high = h_low + 1, w_low + 1
    lh, lw = h - h_low, w - w_low
    hh, hw = 1 - lh, 1 - lw
    v1 = img[h_low][w_low] if h_low >= 0 and w_low >= 0 else 0.0
    v2 = img[h_low][w_high] if h_low >= 0 and w_high <= w_size - 1 else 0.0
    v3 = img[h_high][w_low] if h_high <= h_size - 1 and w_low >= 0 else 0.0
    v4 = img[h_high][w_high] if h_high <= h_size - 1 and w_high <= w_size - 1 else 0.0
    return hh * hw * v1 + hh * lw * v2 + lh * hw * v3 + lh * lw * v4


def mmcv_reference(x, offset, mask, weight, bias, stride, padding, dilation, groups, deform_groups):
    """Loop-by-loop modulated_deformable_im2col + grouped GEMM, in float64."""
    n_, c_, h_, w_ = x.shape
    o_, cg, kh, kw = weight.shape
    ho = _out_size(h_, kh, stride[0], padding[0], dilation[0])
    wo = _out_size(w_, kw, stride[1], padding[1], dilation[1])
    k_, cd = kh * kw, c_ // deform_groups
    xl, ol = x.double().tolist(), offset.double().tolist()
    ml = mask.double().tolist() if mask is not None else None
    cols = torch.zeros(n_, c_, k_, ho, wo, dtype=D64)
    for n in range(n_):
        for c in range(c_):
            g = c // cd
            for i in range(kh):
                for j in range(kw):
                    k = i * kw + j
                    for y in range(ho):
                        for xx in range(wo):
                            oy = ol[n][g * 2 * k_ + 2 * k][y][xx]
                            ox = ol[n][g * 2 * k_ + 2 * k + 1][y][xx]
                            m = ml[n][g * k_ + k][y][xx] if ml is not None else 1.0
                            hi = y * stride[0] - padding[0] + i * dilation[0] + oy
                            wi = xx * stride[1] - padding[1] + j * dilation[1] + ox
                            val = 0.0
                            if -1 < hi < h_ and -1 < wi < w_:
                                val = _mmcv_bilinear(xl[n][c], h_, w_, hi, wi)
                            cols[n, c, k, y, xx] = val * m
    og = o_ // groups
    out = torch.zeros(n_, o_, ho, wo, dtype=D64)
    for g in range(groups):
        col = cols[:, g * cg:(g + 1) * cg].reshape(n_, cg * k_, ho * wo)
        wg = weight[g * og:(g + 1) * og].double().reshape(og, cg * k_)
        out[:, g * og:(g + 1) * og] = (wg @ col).view(n_, og, ho, wo)
    if bias is not None:
        out += bias.double().view(1, -1, 1, 1)
    return out


CASES = [
    # n, c, o, h, w, (kh, kw), stride, padding, dilation, groups, deform_groups
    (2, 4, 6, 5, 7, (3, 3), (1, 1), (1, 1), (1, 1), 1, 1),
    (1, 4, 4, 6, 5, (3, 2), (2, 1), (2, 0), (2, 1), 2, 2),
    (2, 6, 3, 4, 4, (2, 3), (1, 2), (1, 2), (1, 2), 3, 3),
    (1, 2, 2, 1, 1, (3, 3), (1, 1), (1, 1), (1, 1), 1, 1),
]


def _case_tensors(case, seed=0, offset_scale=3.0):
    n, c, o, h, w, (kh, kw), s, p, d, groups, dg = case
    g = _gen(seed)
    ho, wo = _out_size(h, kh, s[0], p[0], d[0]), _out_size(w, kw, s[1], p[1], d[1])
    x = torch.randn(n, c, h, w, generator=g, dtype=D64)
    weight = torch.randn(o, c // groups, kh, kw, generator=g, dtype=D64)
    bias = torch.randn(o, generator=g, dtype=D64)
    offset = torch.randn(n, dg * 2 * kh * kw, ho, wo, generator=g, dtype=D64) * offset_scale
    mask = torch.rand(n, dg * kh * kw, ho, wo, generator=g, dtype=D64)
    return x, offset, mask, weight, bias


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=["plain", "groups2-dg2-stride-dil", "groups3-dg3-rect", "1x1-image"])
def test_matches_scalar_mmcv_kernel(case, backend):
    x, offset, mask, weight, bias = _case_tensors(case)
    _, _, _, _, _, _, s, p, d, groups, dg = case
    ref = mmcv_reference(x, offset, mask, weight, bias, s, p, d, groups, dg)
    # offsets of scale 3 put many samples partly or fully outside the image
    for chunk in (1, 10**9):
        out = modulated_deform_conv2d(
            x, offset, mask, weight, bias, s, p, d, groups, dg, max_chunk_elems=chunk, backend=backend
        )
        assert out.shape == ref.shape
        assert torch.allclose(out, ref, atol=1e-12, rtol=1e-12), (out - ref).abs().max()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stride,padding,dilation,groups", [(1, 1, 1, 1), (2, 2, 2, 2), (1, 4, 4, 1), (1, 0, 1, 4)])
def test_zero_offset_mask_one_equals_conv2d(stride, padding, dilation, groups, backend):
    g = _gen(1)
    x = torch.randn(2, 8, 11, 13, generator=g, dtype=D64)
    w = torch.randn(6 if groups != 4 else 8, 8 // groups, 3, 3, generator=g, dtype=D64)
    b = torch.randn(w.shape[0], generator=g, dtype=D64)
    ref = F.conv2d(x, w, b, stride, padding, dilation, groups)
    ho, wo = ref.shape[2:]
    zeros, ones = torch.zeros(2, 18, ho, wo, dtype=D64), torch.ones(2, 9, ho, wo, dtype=D64)
    out = modulated_deform_conv2d(x, zeros, ones, w, b, stride, padding, dilation, groups, backend=backend)
    assert torch.allclose(out, ref, atol=1e-12)
    # offset=None (zero offsets, one neighbour) and mask=None (1) give the same
    out2 = modulated_deform_conv2d(x, None, None, w, b, stride, padding, dilation, groups, backend=backend)
    assert torch.allclose(out2, ref, atol=1e-12)


def _shifted_padded(x: torch.Tensor, dy: int, dx: int, pad: int) -> torch.Tensor:
    """The zero-padded image seen through a window moved by (dy, dx): element (y, x) of the result
    is x[y - pad + dy, x - pad + dx] (0 outside the image); size (H + 2 pad, W + 2 pad)."""
    h, w = x.shape[2:]
    p = pad + max(abs(dy), abs(dx))
    xp = F.pad(x, (p, p, p, p))
    return xp[:, :, p - pad + dy:p + pad + dy + h, p - pad + dx:p + pad + dx + w]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dy,dx", [(1, 0), (0, -2), (-3, 2), (7, 7)])
def test_integer_offset_equals_shifted_conv(dy, dx, backend):
    g = _gen(2)
    x = torch.randn(1, 5, 9, 8, generator=g, dtype=D64)
    w = torch.randn(4, 5, 3, 3, generator=g, dtype=D64)
    b = torch.randn(4, generator=g, dtype=D64)
    offset = torch.zeros(1, 18, 9, 8, dtype=D64)
    offset[:, 0::2] = dy  # channel 2k: row (y) offset of tap k
    offset[:, 1::2] = dx  # channel 2k+1: column (x) offset
    mask = torch.ones(1, 9, 9, 8, dtype=D64)
    out = modulated_deform_conv2d(x, offset, mask, w, b, padding=1, backend=backend)
    ref = F.conv2d(_shifted_padded(x, dy, dx, 1), w, b)  # shifting the padded image, then a valid conv
    assert torch.allclose(out, ref, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_layout_tap_and_axis_order(backend):
    """Offset channel 2k moves tap k vertically, 2k+1 horizontally; mask channel k scales tap k."""
    x = torch.arange(49, dtype=D64).view(1, 1, 7, 7)
    w = torch.zeros(1, 1, 3, 3, dtype=D64)
    w[0, 0, 0, 2] = 1.0  # only tap k = 0 * 3 + 2 = 2 (top-right) counts
    offset = torch.zeros(1, 18, 7, 7, dtype=D64)
    mask = torch.ones(1, 9, 7, 7, dtype=D64)
    offset[:, 4] = 1.0  # tap 2, y offset: one row down
    out = modulated_deform_conv2d(x, offset, mask, w, None, padding=1, backend=backend)
    # output (y, x) reads x[y - 1 + 0 + 1, x - 1 + 2] = x[y, x + 1]
    assert torch.equal(out[0, 0, 3, 3], x[0, 0, 3, 4])
    offset[:, 4], offset[:, 5] = 0.0, -1.0  # tap 2, x offset: one column left
    out = modulated_deform_conv2d(x, offset, mask, w, None, padding=1, backend=backend)
    assert torch.equal(out[0, 0, 3, 3], x[0, 0, 2, 3])
    mask[:, 2] = 0.25
    mask[:, 0] = 0.0  # other taps' masks do not matter (their weights are 0)
    out2 = modulated_deform_conv2d(x, offset, mask, w, None, padding=1, backend=backend)
    assert torch.allclose(out2, 0.25 * out)


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_outside_rule_at_the_border(backend):
    """1x1 kernel, weight 1: the output is the sample itself. Counts only for -1 < y < H."""
    h = w = 4
    x = torch.arange(1, 17, dtype=D64).view(1, 1, h, w)
    weight = torch.ones(1, 1, 1, 1, dtype=D64)
    ys = torch.tensor([-1.0, -0.5, -0.25, 0.0, 2.5, 3.0, 3.5, 4.0, 4.5, float("nan"), 1e9, -1e9], dtype=D64)
    off = torch.zeros(1, 2, h, len(ys), dtype=D64)
    off[0, 0, 0] = ys  # row offsets of output row 0
    xin = x[:, :, :, :1].expand(1, 1, h, len(ys)).contiguous()  # column 0 repeated: x[y, 0] = 4y + 1
    out = modulated_deform_conv2d(xin[:, :, :, :], off, None, weight, None, backend=backend)[0, 0, 0]
    col = [1.0, 5.0, 9.0, 13.0]

    def expect(y: float) -> float:
        if not (-1 < y < h):  # NaN fails the test too
            return 0.0
        y0 = math.floor(y)
        a = col[y0] if 0 <= y0 < h else 0.0
        b = col[y0 + 1] if 0 <= y0 + 1 < h else 0.0
        return (1 - (y - y0)) * a + (y - y0) * b

    want = torch.tensor([expect(float(y)) for y in ys], dtype=D64)
    assert torch.allclose(out, want, atol=1e-12), (out, want)
    assert out[0] == 0 and out[1] == 0.5 * 1 and out[6] == 0.5 * 13 and out[7] == 0


GRAD_CASES = [
    (1, 2, 2, 4, 5, (3, 3), (1, 1), (1, 1), (1, 1), 1, 1),
    (2, 4, 2, 4, 4, (3, 2), (2, 1), (2, 0), (2, 1), 2, 2),
]


@pytest.mark.parametrize(
    "case,backend",
    [(GRAD_CASES[0], "sparse"), (GRAD_CASES[1], "sparse"), (GRAD_CASES[0], "gather")],
    ids=["plain-sparse", "groups2-dg2-stride-dil-sparse", "plain-gather"],
)
def test_gradcheck_float64(case, backend):
    n, c, o, h, w, (kh, kw), s, p, d, groups, dg = case
    x, offset, mask, weight, bias = _case_tensors(case, seed=3, offset_scale=1.3)
    # keep fractional parts away from integers (bilinear weights have kinks there)
    offset = offset.round() + 0.2 + 0.6 * torch.rand(offset.shape, generator=_gen(4), dtype=D64)
    args = [t.clone().requires_grad_() for t in (x, offset, mask, weight, bias)]

    def fn(x_, off_, m_, w_, b_):
        return modulated_deform_conv2d(x_, off_, m_, w_, b_, s, p, d, groups, dg, max_chunk_elems=30, backend=backend)

    # chunks of one output row; every input (x, offset, mask, weight, bias) is checked
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_zero_offset_path(backend):
    g = _gen(5)
    x = torch.randn(1, 2, 4, 3, generator=g, dtype=D64, requires_grad=True)
    mask = torch.rand(1, 9, 4, 3, generator=g, dtype=D64, requires_grad=True)
    w = torch.randn(2, 2, 3, 3, generator=g, dtype=D64, requires_grad=True)
    b = torch.randn(2, generator=g, dtype=D64, requires_grad=True)
    fn = lambda x_, m_, w_, b_: modulated_deform_conv2d(x_, None, m_, w_, b_, padding=1, backend=backend)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, mask, w, b))


def test_gradients_match_float64_reference_autograd():
    """Gradients of the chunked float32 layer equal autograd through a float64 grid_sample
    formulation (an independent implementation of the same sampling)."""
    g = _gen(6)
    x = torch.randn(1, 3, 6, 7, generator=g, dtype=D64)
    off = torch.randn(1, 18, 6, 7, generator=g, dtype=D64) * 2
    mask = torch.rand(1, 9, 6, 7, generator=g, dtype=D64)
    w = torch.randn(4, 3, 3, 3, generator=g, dtype=D64)

    def via_grid_sample(x_, off_, m_, w_):
        n, c, h, wd = x_.shape
        ys, xs = torch.meshgrid(torch.arange(h, dtype=D64), torch.arange(wd, dtype=D64), indexing="ij")
        cols = []
        for k in range(9):
            i, j = divmod(k, 3)
            py = ys - 1 + i + off_[:, 2 * k]
            px = xs - 1 + j + off_[:, 2 * k + 1]
            # align_corners=True in pixel units with zero padding == mmcv's rule (values)
            grid = torch.stack([2 * px / (wd - 1) - 1, 2 * py / (h - 1) - 1], -1)
            s = F.grid_sample(x_, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
            cols.append(s * m_[:, k:k + 1])
        col = torch.stack(cols, 2)  # (N, C, 9, H, W)
        return torch.einsum("ock,nckhw->nohw", w_.reshape(4, 3, 9), col)

    a = [t.clone().requires_grad_() for t in (x, off, mask, w)]
    ref = via_grid_sample(*a)
    gout = torch.randn(ref.shape, generator=g, dtype=D64)
    ref_grads = torch.autograd.grad(ref, a, gout)
    b = [t.clone().float().requires_grad_() for t in (x, off, mask, w)]
    out = modulated_deform_conv2d(b[0], b[1], b[2], b[3], None, padding=1, max_chunk_elems=50)
    grads = torch.autograd.grad(out, b, gout.float())
    assert torch.allclose(out.double(), ref, atol=1e-4)
    for name, gr, rg in zip(("x", "offset", "mask", "weight"), grads, ref_grads):
        assert torch.allclose(gr.double(), rg, atol=2e-4, rtol=1e-4), name


@pytest.mark.parametrize("backend", BACKENDS)
def test_chunking_equals_unchunked(backend):
    g = _gen(7)
    x = torch.randn(3, 8, 10, 12, generator=g)
    off = torch.randn(3, 2 * 2 * 9, 10, 12, generator=g) * 2
    mask = torch.rand(3, 2 * 9, 10, 12, generator=g)
    w = torch.randn(6, 8, 3, 3, generator=g)
    b = torch.randn(6, generator=g)
    gout = torch.randn(3, 6, 10, 12, generator=g)
    results = {}
    # 1: one output row per chunk; 2000: a few rows; 25000: two samples; 1e9: everything at once
    for chunk in (1, 2000, 25000, 10**9):
        a = [t.clone().requires_grad_() for t in (x, off, mask, w, b)]
        out = modulated_deform_conv2d(*a, padding=1, deform_groups=2, max_chunk_elems=chunk, backend=backend)
        out.backward(gout)
        results[chunk] = [out.detach()] + [t.grad for t in a]
    base = results[10**9]
    for chunk, res in results.items():
        for name, r, q in zip(("out", "x", "offset", "mask", "weight", "bias"), res, base):
            assert torch.allclose(r, q, atol=1e-4, rtol=1e-5), (chunk, name)


def test_backends_agree_float32():
    g = _gen(8)
    x = torch.randn(2, 16, 9, 9, generator=g)
    off = torch.randn(2, 18, 9, 9, generator=g) * 3
    mask = torch.rand(2, 9, 9, 9, generator=g)
    w = torch.randn(16, 16, 3, 3, generator=g) * 0.1
    grads = []
    for backend in BACKENDS:
        a = [t.clone().requires_grad_() for t in (x, off, mask, w)]
        out = modulated_deform_conv2d(a[0], a[1], a[2], a[3], None, padding=2, dilation=2, backend=backend)
        out.square().sum().backward()
        grads.append([out.detach()] + [t.grad for t in a])
    for r, q in zip(*grads):
        assert torch.allclose(r, q, atol=1e-4, rtol=1e-5)


def test_only_requested_gradients_are_computed():
    g = _gen(9)
    x = torch.randn(1, 4, 5, 5, generator=g)
    off = torch.randn(1, 18, 5, 5, generator=g)
    mask = torch.rand(1, 9, 5, 5, generator=g)
    w = torch.randn(4, 4, 3, 3, generator=g, requires_grad=True)
    out = modulated_deform_conv2d(x, off, mask, w, None, padding=1)
    out.sum().backward()
    assert w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0
    assert x.grad is None and off.grad is None


def test_float32_close_to_float64():
    x, offset, mask, weight, bias = _case_tensors(CASES[0], seed=10)
    ref = modulated_deform_conv2d(x, offset, mask, weight, bias, padding=1)
    out = modulated_deform_conv2d(x.float(), offset.float(), mask.float(), weight.float(), bias.float(), padding=1)
    assert out.dtype == torch.float32
    assert torch.allclose(out.double(), ref, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ modules
def test_module_keys_shapes_and_init():
    m = ModulatedDeformConv2d(8, 16, 3, padding=1, groups=2, deform_groups=4)
    sd = m.state_dict()
    assert list(sd) == ["weight", "bias"]
    assert sd["weight"].shape == (16, 4, 3, 3) and sd["bias"].shape == (16,)
    stdv = 1 / math.sqrt(8 * 9)  # mmcv init_weights: U(-1/sqrt(in*kh*kw), +)
    assert sd["weight"].abs().max() <= stdv and sd["weight"].std() > stdv / 4
    assert torch.equal(sd["bias"], torch.zeros(16))
    assert list(ModulatedDeformConv2d(4, 4, 3, bias=False).state_dict()) == ["weight"]
    x = torch.randn(2, 8, 6, 5)
    out = m(x, torch.zeros(2, 4 * 18, 6, 5), torch.ones(2, 4 * 9, 6, 5))
    assert torch.allclose(out, F.conv2d(x, m.weight, m.bias, padding=1, groups=2), atol=1e-5)


def test_pack_predicts_offsets_and_mask():
    p = ModulatedDeformConv2dPack(4, 6, 3, padding=1, deform_groups=2)
    assert list(p.state_dict()) == ["weight", "bias", "conv_offset.weight", "conv_offset.bias"]
    assert p.conv_offset.weight.shape == (2 * 27, 4, 3, 3)
    x = torch.randn(1, 4, 7, 7)
    # zero-initialised predictor: offsets 0, mask sigmoid(0) = 0.5
    assert torch.allclose(p(x), 0.5 * F.conv2d(x, p.weight, None, padding=1) + p.bias.view(1, -1, 1, 1), atol=1e-5)
    with torch.no_grad():
        p.conv_offset.bias.normal_(generator=_gen(11))
    o1, o2, m = torch.chunk(p.conv_offset(x), 3, dim=1)
    want = modulated_deform_conv2d(x, torch.cat([o1, o2], 1), torch.sigmoid(m), p.weight, p.bias, padding=1,
                                   deform_groups=2)
    assert torch.allclose(p(x), want)


def test_deform_conv_v1_has_no_mask_or_bias():
    dc = DeformConv2d(3, 5, 3, padding=1)
    assert list(dc.state_dict()) == ["weight"]
    x = torch.randn(1, 3, 6, 6)
    off = torch.randn(1, 18, 6, 6)
    want = modulated_deform_conv2d(x, off, torch.ones(1, 9, 6, 6), dc.weight, None, padding=1)
    assert torch.allclose(dc(x, off), want, atol=1e-6)
    assert torch.allclose(deform_conv2d(x, off, dc.weight, padding=1), want, atol=1e-6)
    with pytest.raises(ValueError, match="no bias"):
        DeformConv2d(3, 5, 3, bias=True)


def test_meta_device_construction():
    with torch.device("meta"):
        m = ModulatedDeformConv2d(128, 128, 3, padding=1)
    assert m.weight.is_meta and m.weight.shape == (128, 128, 3, 3)


# ------------------------------------------------------------------ errors
def test_errors_name_the_problem():
    x = torch.randn(1, 4, 5, 5)
    w = torch.randn(4, 4, 3, 3)
    off, mask = torch.zeros(1, 18, 5, 5), torch.ones(1, 9, 5, 5)
    with pytest.raises(ValueError, match="offset must have shape"):
        modulated_deform_conv2d(x, torch.zeros(1, 18, 3, 3), mask, w, None, padding=1)
    with pytest.raises(ValueError, match="mask must have shape"):
        modulated_deform_conv2d(x, off, torch.ones(1, 8, 5, 5), w, None, padding=1)
    with pytest.raises(ValueError, match="4-D"):
        modulated_deform_conv2d(x[0], off, mask, w, None, padding=1)
    with pytest.raises(ValueError, match="groups"):
        modulated_deform_conv2d(x, off, mask, torch.randn(4, 3, 3, 3), None, padding=1, groups=3)
    with pytest.raises(ValueError, match="deform_groups"):
        modulated_deform_conv2d(x, torch.zeros(1, 54, 5, 5), torch.ones(1, 27, 5, 5), w, None, padding=1,
                                deform_groups=3)
    with pytest.raises(ValueError, match="bias"):
        modulated_deform_conv2d(x, off, mask, w, torch.zeros(3), padding=1)
    with pytest.raises(TypeError, match="dtype"):
        modulated_deform_conv2d(x, off, mask, w.double(), None, padding=1)
    with pytest.raises(TypeError, match="floating"):
        modulated_deform_conv2d(x.long(), off, mask, w.long(), None, padding=1)
    with pytest.raises(ValueError, match="too small"):
        modulated_deform_conv2d(torch.randn(1, 4, 1, 1), None, None, w, None)
    with pytest.raises(ValueError, match="backend"):
        modulated_deform_conv2d(x, off, mask, w, None, padding=1, backend="cuda-ext")
    with pytest.raises(ValueError, match="max_chunk_elems"):
        modulated_deform_conv2d(x, off, mask, w, None, padding=1, max_chunk_elems=0)
    with pytest.raises(ValueError, match="stride"):
        modulated_deform_conv2d(x, off, mask, w, None, stride=0)
    with pytest.raises(ValueError, match="groups"):
        ModulatedDeformConv2d(6, 4, 3, groups=4)
