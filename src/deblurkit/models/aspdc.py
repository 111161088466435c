"""ASPDC (Huo et al., *Blind Non-Uniform Motion Deblurring using Atrous Spatial Pyramid Deformable
Convolution and Deblurring-Reblurring Consistency*, CVPR Workshops (NTIRE) 2022).

Re-implements, with identical state-dict keys/shapes/order and the same forward computation,
Dong-Huo/ASPDC (commit b0cf2c338b817478533b5793dbbad5299f086f2b):

- ``networks/sub_networks.py`` ``DeblurringNet`` -> registered as ``aspdc``: a 1/4-resolution
  encoder/decoder of six ASPDC blocks (``hallucination_res_block``), each fusing per pixel (softmax
  over 4 maps) a modulated 3x3 convolution (dilation "0", no offsets) and three modulated
  deformable convolutions (DCNv2) whose offsets/masks are predicted at dilations 1, 2 and 4;
- ``networks/sub_networks.py`` ``BlurringNet`` -> ``aspdc_reblur``: the reblurring network of the
  deblurring-reblurring consistency loss (``DR_network.py``), which estimates per-pixel 3x3 kernels
  at 5 scales from ``(blurry, sharp)`` and applies them (``Dynamic_conv``) to features of the sharp
  image to re-create the blurry one;
- the blocks of ``networks/modules.py`` (``ResBlock``, ``hallucination_module``,
  ``hallucination_res_block``, ``DeformConv``, ``Dynamic_conv``). The mmcv-full 1.3.9
  ``ModulatedDeformConv2d`` they use is :mod:`deblurkit.models.layers.deform_conv` (pure PyTorch).

Value range: both networks work on RGB in [-1, 1] (official data: ``albu.Normalize(mean=0.5,
std=0.5)``); their descriptors say so (``value_range=(-1, 1)``) and :class:`deblurkit.inference.Deblurrer`
converts from/to [0, 1]. Outputs are not clamped (``D_testing.py`` clamps to [-1, 1] afterwards).

Official-compatibility mode (``official_compat``)
-------------------------------------------------
The dilation-0 branch of every ASPDC block computes its mask with ``m_conv = Conv2d(128, 9, 3)``
WITHOUT padding, so the mask is (B, 9, h-2, w-2) and the zero offset (B, 18, h-2, w-2), while
mmcv's kernel reads both as raw contiguous buffers of shape (B, 9, h, w) / (B, 18, h, w) without
any shape check. The released weights were trained with that scrambled mask.

- ``official_compat=True`` (default, needed to match the released checkpoints and the parity
  fixture): reproduce mmcv's reading. The B*9*(h-2)*(w-2) mask values, in C order, are laid out
  over (sample, tap, row, column) of a (B, 9, h, w) mask; the remaining positions (an
  out-of-bounds read of undefined GPU memory in the official run) are filled with 0. For B > 1,
  sample b continues into sample b+1's values, as mmcv did. The result depends on the resolution.
- ``official_compat=False`` (the fix, for new training): ``m_conv`` is padded by 1, so the mask is
  (B, 9, h, w) and aligned with the pixels it modulates. Same keys and shapes; only this branch
  differs.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers.deform_conv import (
    DEFAULT_MAX_CHUNK_ELEMS,
    DeformConv2d,
    ModulatedDeformConv2d,
)
from .registry import ModelDescriptor, OfficialSource, register_model

__all__ = [
    "ResBlock",
    "DeformConv",
    "HallucinationModule",
    "HallucinationResBlock",
    "DynamicConv",
    "DeblurringNet",
    "BlurringNet",
    "mmcv_raw_read",
    "init_xavier",
    "infer_aspdc_config",
    "infer_aspdc_reblur_config",
]


def _lrelu() -> nn.Module:
    return nn.LeakyReLU(0.1, inplace=True)


def mmcv_raw_read(t: Tensor, shape: Sequence[int], fill: float = 0.0) -> Tensor:
    """Reinterpret ``t`` as mmcv's CUDA kernels do when handed a tensor of the wrong shape.

    mmcv reads its inputs as raw contiguous buffers; this returns the first ``prod(shape)``
    values of ``t.reshape(-1)`` (C order) viewed as ``shape``, followed by ``fill`` where the
    buffer is too short (the official run read undefined memory there).

    Args:
        t: any tensor (e.g. the (B, 9, h-2, w-2) mask of ASPDC's dilation-0 branch).
        shape: the shape mmcv assumes (e.g. (B, 9, h, w)).
        fill: value of the positions beyond the end of ``t``.

    Returns:
        a new tensor of ``shape`` (same dtype/device, differentiable w.r.t. ``t``).
    """
    shape = tuple(int(s) for s in shape)
    need = 1
    for s in shape:
        need *= s
    flat = t.reshape(-1)
    if flat.numel() >= need:
        return flat[:need].reshape(shape)
    tail = flat.new_full((need - flat.numel(),), fill)
    return torch.cat([flat, tail]).view(shape)


class ResBlock(nn.Module):
    """``x + conv(lrelu(conv(x)))`` (official ``ResBlock``; its ``norm_layer`` is never used).

    Keys ``model.0.*`` (in -> out, kernel k, padding 1) and ``model.2.*`` (out -> in).
    Shapes: (N, in_channels, H, W) -> same.
    """

    def __init__(self, in_channels: int = 64, out_channels: int = 64, kernel_size: int = 3) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size, 1, 1),
            _lrelu(),
            nn.Conv2d(out_channels, in_channels, kernel_size, 1, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.model(x)


class DeformConv(nn.Module):
    """ASPDC's DCN wrapper (official ``DeformConv`` in ``networks/modules.py``).

    ``p_conv`` (3x3, dilation/padding ``dilation``) predicts offsets (N, 2*k*k, H, W), ``m_conv``
    (same geometry) the mask logits (N, k*k, H, W); ``dconv`` (mmcv ``ModulatedDeformConv2d``,
    kernel k, padding ``padding``, dilation 1, stride 1) samples with ``sigmoid`` of the mask. Both
    predictors start at zero (official), i.e. a plain convolution with mask 0.5.

    Keys: ``p_conv.{weight,bias}``, ``m_conv.{weight,bias}`` (when ``modulation``),
    ``dconv.weight``, ``dconv.bias`` (mmcv ``DeformConv2d``: ``dconv.weight`` only).

    Forward: x (N, inc, H, W) -> ``(out (N, outc, H, W), offset (N, 2*k*k, H, W))``.
    """

    def __init__(
        self,
        inc: int,
        outc: int,
        kernel_size: int = 3,
        padding: int = 1,
        stride: int = 1,
        bias: bool = True,
        modulation: bool = True,
        dilation: int = 1,
        *,
        max_chunk_elems: int = DEFAULT_MAX_CHUNK_ELEMS,
    ) -> None:
        super().__init__()
        self.kernel_size, self.padding, self.stride = kernel_size, padding, stride
        self.modulation = modulation
        kk = kernel_size * kernel_size
        self.p_conv = nn.Conv2d(inc, 2 * kk, 3, stride=stride, dilation=dilation, padding=dilation, bias=bias)
        nn.init.zeros_(self.p_conv.weight)
        if bias:
            nn.init.zeros_(self.p_conv.bias)
        if modulation:
            self.m_conv = nn.Conv2d(inc, kk, 3, stride=stride, dilation=dilation, padding=dilation, bias=bias)
            nn.init.zeros_(self.m_conv.weight)
            if bias:
                nn.init.zeros_(self.m_conv.bias)
            self.dconv: nn.Module = ModulatedDeformConv2d(
                inc, outc, kernel_size, padding=padding, max_chunk_elems=max_chunk_elems
            )
        else:
            self.dconv = DeformConv2d(inc, outc, kernel_size, padding=padding, max_chunk_elems=max_chunk_elems)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        offset = self.p_conv(x)
        if self.modulation:
            out = self.dconv(x, offset, torch.sigmoid(self.m_conv(x)))
        else:
            out = self.dconv(x, offset)
        return out, offset


class HallucinationModule(nn.Module):
    """One branch of an ASPDC block (official ``hallucination_module``).

    ``dilation != 0``: ``hallucination_conv`` = :class:`DeformConv` with offsets/masks predicted
    at that dilation; returns ``(out, offset)``.

    ``dilation == 0``: ``m_conv`` (Conv2d(in, 9, 3), zero-initialised) gives the mask
    ``sigmoid(m_conv(x))`` and ``dconv`` (ModulatedDeformConv2d(in, out, 3, padding=1)) runs with
    zero offsets, i.e. a 3x3 convolution whose taps are modulated per pixel; returns ``(out, 0)``.
    With ``official_compat=True`` ``m_conv`` has no padding and its (N, 9, h-2, w-2) output is read
    as mmcv read it (:func:`mmcv_raw_read`, zeros beyond the end); with ``False`` it is padded by 1.

    Forward: x (N, in_channels, h, w) with h, w >= 3 in compat mode -> (N, out_channels, h, w).

    Raises: ValueError if the feature map is smaller than 3x3 in compat mode.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dilation: int,
        *,
        official_compat: bool = True,
        max_chunk_elems: int = DEFAULT_MAX_CHUNK_ELEMS,
    ) -> None:
        super().__init__()
        self.dilation = int(dilation)
        self.official_compat = bool(official_compat)
        if self.dilation != 0:
            self.hallucination_conv = DeformConv(
                out_channels, out_channels, modulation=True, dilation=self.dilation,
                max_chunk_elems=max_chunk_elems,
            )
        else:
            self.m_conv = nn.Conv2d(in_channels, 9, 3, stride=1, padding=0 if official_compat else 1, bias=True)
            nn.init.zeros_(self.m_conv.weight)
            nn.init.zeros_(self.m_conv.bias)
            self.dconv = ModulatedDeformConv2d(
                in_channels, out_channels, 3, padding=1, max_chunk_elems=max_chunk_elems
            )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | int]:
        if self.dilation != 0:
            return self.hallucination_conv(x)
        n, _, h, w = x.shape
        if self.official_compat and (h < 3 or w < 3):
            raise ValueError(
                f"the dilation-0 branch (official_compat=True) needs feature maps of at least 3x3, "
                f"got {h}x{w}; use a larger input"
            )
        mask = torch.sigmoid(self.m_conv(x))
        if self.official_compat:
            mask = mmcv_raw_read(mask, (n, 9, h, w))
        # zero offsets: samples on the pixel grid (identical to mmcv with an all-zero offset)
        return self.dconv(x, None, mask), 0


class HallucinationResBlock(nn.Module):
    """ASPDC block (official ``hallucination_res_block``).

    ``res = lrelu(res_conv(x))``; four :class:`HallucinationModule` branches on ``res`` at
    ``dilations`` (official (0, 1, 2, 4); attribute ``hallucination_d3`` is dilation 4); per-pixel
    softmax weights over the 4 branches from ``mask_conv(x)``; output
    ``fusion_conv(sum_i w_i * branch_i) + x``.

    Forward: x (N, C, h, w) -> ``(out (N, C, h, w), offsets (N, 18 * #nonzero dilations, h, w))``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        dilations: Sequence[int] = (0, 1, 2, 4),
        *,
        official_compat: bool = True,
        max_chunk_elems: int = DEFAULT_MAX_CHUNK_ELEMS,
    ) -> None:
        super().__init__()
        if len(dilations) != 4:
            raise ValueError(f"an ASPDC block has 4 branches; got dilations {tuple(dilations)}")
        self.dilations = tuple(int(d) for d in dilations)
        self.res_conv = nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, 1, 1), _lrelu())
        kw = dict(official_compat=official_compat, max_chunk_elems=max_chunk_elems)
        self.hallucination_d0 = HallucinationModule(in_channels, out_channels, self.dilations[0], **kw)
        self.hallucination_d1 = HallucinationModule(in_channels, out_channels, self.dilations[1], **kw)
        self.hallucination_d2 = HallucinationModule(in_channels, out_channels, self.dilations[2], **kw)
        self.hallucination_d3 = HallucinationModule(in_channels, out_channels, self.dilations[3], **kw)
        self.mask_conv = nn.Sequential(
            nn.Conv2d(out_channels, out_channels, 3, 1, 1),
            _lrelu(),
            ResBlock(out_channels, out_channels),
            ResBlock(out_channels, out_channels),
            nn.Conv2d(out_channels, 4, 1, 1),
        )
        self.fusion_conv = nn.Conv2d(in_channels, in_channels, 3, 1, 1)

    def branches(self, x: Tensor) -> tuple[list[Tensor], list[Tensor], Tensor]:
        """The 4 branch outputs on ``res_conv(x)``, their offset maps (nonzero dilations) and the
        (N, 4, h, w) softmax fusion weights."""
        res = self.res_conv(x)
        outs, maps = [], []
        for branch in (self.hallucination_d0, self.hallucination_d1, self.hallucination_d2, self.hallucination_d3):
            out, offset = branch(res)
            outs.append(out)
            if isinstance(offset, Tensor):
                maps.append(offset)
        weights = torch.softmax(self.mask_conv(x), 1)
        return outs, maps, weights

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        outs, maps, weights = self.branches(x)
        fused = outs[0] * weights[:, 0:1]
        for i in range(1, 4):
            fused = fused + outs[i] * weights[:, i:i + 1]
        out = self.fusion_conv(fused) + x
        return out, torch.cat(maps, 1) if maps else x.new_zeros(x.shape[0], 0, *x.shape[2:])


def init_xavier(net: nn.Module) -> nn.Module:
    """ASPDC's training initialisation (``utils/data_processing.py`` ``weights_init_xavier``,
    applied by ``DR_network.Whole_Network``): ``xavier_normal_`` on the weight of every module whose
    class name contains ``Conv2d`` (convolutions, transposed convolutions and the deformable
    convolutions, overriding the zero start of the offset/mask predictors) or ``Linear``; biases
    are left as they are. Returns ``net``."""
    for m in net.modules():
        name = m.__class__.__name__
        if ("Conv2d" in name or "Linear" in name) and isinstance(getattr(m, "weight", None), Tensor):
            nn.init.xavier_normal_(m.weight.data)
    return net


def _check_init(init: str) -> None:
    if init not in ("default", "xavier"):
        raise ValueError(f"init must be 'default' or 'xavier', got {init!r}")


class DeblurringNet(nn.Module):
    """ASPDC deblurring network (official ``DeblurringNet``), registered as ``aspdc``.

    Args:
        in_channels, out_channels: image channels (official 3).
        intermediate_channels: (c0, c1, c2, c3); c0 full resolution, c1 at 1/2, c2 the width of
            the six ASPDC blocks at 1/4; c3 is unused (official (32, 64, 128, 256)).
        num_res: ResBlocks before each ASPDC block (official 2).
        dilations: the 4 branch dilations of every block (official (0, 1, 2, 4); 0 = no offsets).
        official_compat: reproduce mmcv's reading of the unpadded dilation-0 mask (default True,
            needed for the released weights); False uses the fixed, padded mask (see the module
            docstring).
        max_chunk_elems: chunk bound of the deformable convolutions (memory/speed only).
        init: ``"default"`` = the official constructor's initialisation (PyTorch defaults, zeroed
            offset/mask predictors, mmcv's uniform DCN weights; what ``D_testing.py`` builds) or
            ``"xavier"`` = :func:`init_xavier`, what the official training applies.

    Forward:
        rgb: (N, in_channels, H, W) in [-1, 1]; H, W multiples of 4 (and >= 12 in compat mode).
        returns: tuple ``(rgb + res, res)``: the deblurred image (N, out_channels, H, W), not
        clamped, and the global residual. (The official forward also collects the blocks' offset
        maps and discards them.)

    Raises:
        ValueError: bad constructor arguments; input not (N, in_channels, H, W); H or W not a
            multiple of 4 (the official network fails with a size mismatch there) or too small.

    Follows ``DeblurringNet`` in Dong-Huo/ASPDC ``networks/sub_networks.py``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        intermediate_channels: Sequence[int] = (32, 64, 128, 256),
        out_channels: int = 3,
        num_res: int = 2,
        dilations: Sequence[int] = (0, 1, 2, 4),
        official_compat: bool = True,
        max_chunk_elems: int = DEFAULT_MAX_CHUNK_ELEMS,
        init: str = "default",
    ) -> None:
        super().__init__()
        _check_init(init)
        ic = tuple(int(c) for c in intermediate_channels)
        if len(ic) < 3 or min(ic[:3]) < 1:
            raise ValueError(f"intermediate_channels needs 3 positive widths, got {tuple(intermediate_channels)}")
        if int(num_res) != num_res or num_res < 0:
            raise ValueError(f"num_res must be a non-negative integer, got {num_res!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.official_compat = bool(official_compat)
        c0, c1, c2 = ic[:3]
        self.head = nn.Sequential(
            nn.Conv2d(in_channels, c0, 3, 1, 1),
            _lrelu(),
            ResBlock(c0, c0),
            ResBlock(c0, c0),
            nn.Conv2d(c0, c1, 3, 2, 1),
            _lrelu(),
            nn.Conv2d(c1, c2, 3, 2, 1),
            _lrelu(),
        )

        def group() -> nn.Sequential:
            return nn.Sequential(*[ResBlock(c2, c2) for _ in range(int(num_res))])

        def block() -> HallucinationResBlock:
            return HallucinationResBlock(
                c2, c2, dilations=dilations, official_compat=official_compat, max_chunk_elems=max_chunk_elems
            )

        # registration order = official state_dict order
        self.en_res_group1_1, self.en_res_group1_2 = group(), block()
        self.en_res_group2_1, self.en_res_group2_2 = group(), block()
        self.en_res_group3_1, self.en_res_group3_2 = group(), block()
        self.de_res_group3_1, self.de_res_group3_2 = group(), block()
        self.de_res_group2_1, self.de_res_group2_2 = group(), block()
        self.de_res_group1_1, self.de_res_group1_2 = group(), block()
        self.dense_conv = nn.Sequential(nn.Conv2d(c2 * 6, c2, 3, 1, 1), _lrelu())
        self.tail = nn.Sequential(
            nn.ConvTranspose2d(c2, c1, 3, 2, 1, output_padding=1),
            _lrelu(),
            nn.ConvTranspose2d(c1, c0, 3, 2, 1, output_padding=1),
            _lrelu(),
            nn.Conv2d(c0, out_channels, 3, 1, 1),
        )
        if init == "xavier":
            init_xavier(self)

    def _stages(self) -> list[tuple[nn.Module, HallucinationResBlock]]:
        return [
            (self.en_res_group1_1, self.en_res_group1_2),
            (self.en_res_group2_1, self.en_res_group2_2),
            (self.en_res_group3_1, self.en_res_group3_2),
            (self.de_res_group3_1, self.de_res_group3_2),
            (self.de_res_group2_1, self.de_res_group2_2),
            (self.de_res_group1_1, self.de_res_group1_2),
        ]

    def _check(self, rgb: Tensor) -> None:
        if rgb.dim() != 4 or rgb.shape[1] != self.in_channels:
            raise ValueError(f"ASPDC expects (N, {self.in_channels}, H, W), got {tuple(rgb.shape)}")
        h, w = rgb.shape[2:]
        if h % 4 or w % 4:
            raise ValueError(f"ASPDC needs H and W multiples of 4, got {h}x{w}; pad the input")
        if self.official_compat and min(h, w) < 12:
            raise ValueError(f"ASPDC (official_compat=True) needs H, W >= 12, got {h}x{w}")

    def forward_with_maps(self, rgb: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        """As :meth:`forward`, plus the list of the six blocks' offset maps (N, 54, H/4, W/4)
        (the official ``hallucination_map_list``)."""
        self._check(rgb)
        x = self.head(rgb)
        feats, maps = [], []
        for res_group, aspdc in self._stages():
            x, offsets = aspdc(res_group(x))
            feats.append(x)
            maps.append(offsets)
        res = self.tail(self.dense_conv(torch.cat(feats, 1)))
        return res + rgb, res, maps

    def forward(self, rgb: Tensor) -> tuple[Tensor, Tensor]:
        out, res, _ = self.forward_with_maps(rgb)
        return out, res


class DynamicConv(nn.Module):
    """Per-pixel kernel filtering (official ``Dynamic_conv``), no parameters.

    ``kernel`` (N, k*k, H, W) logits are softmax-normalised over the k*k taps (tap ``i*k + j``
    row-major) and applied to every channel of ``x`` (N, C, H, W), reflection-padded by k//2:
    ``out[n,c,y,x] = sum_t softmax(kernel)[n,t,y,x] * x_pad[n,c,y+i,x+j]``. Returns (N, C, H, W).
    Needs H, W > k//2 (reflection padding).
    """

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.reflect_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.kernel_size = kernel_size
        self.unfold = nn.Unfold(kernel_size=kernel_size)

    def forward(self, x: Tensor, kernel: Tensor) -> Tensor:
        b, c, h, w = x.shape
        kernel = F.softmax(kernel, dim=1)
        cols = self.unfold(self.reflect_pad(x)).view(b, c, -1, h, w)
        return torch.einsum("bkhw,bckhw->bchw", kernel, cols)


class BlurringNet(nn.Module):
    """ASPDC reblurring network (official ``BlurringNet``), registered as ``aspdc_reblur``.

    Pass 1 encodes ``cat(blurry, sharp)`` with a 3-level U-Net (stride-2 convs, transposed convs,
    additive skips) and predicts a k x k per-pixel kernel at each of its 7 feature maps; pass 2
    runs the SAME layers on ``cat(sharp, sharp)``, filtering each feature map with its kernel
    (:class:`DynamicConv`), and ``tail`` maps the result to the reblurred image.

    Args:
        in_channels: image channels (official 3).
        intermediate_channels: widths (c0, c1, c2, c3, ...) at full, 1/2, 1/4 and 1/8 resolution;
            further entries are unused (official (16, 32, 64, 128, 256, 512)).
        intermediate_kernels: per-pixel kernel size k (official 3).
        init: ``"default"`` (PyTorch defaults, as the official constructor) or ``"xavier"``
            (:func:`init_xavier`, as ``DR_network.py`` applies).
        (The official ``num_recurrent`` and ``norm_layer`` arguments are unused there and omitted.)

    Forward:
        blurry_image, sharp_image: (N, in_channels, H, W) in [-1, 1], H, W multiples of 8 and
        >= 16 (the 1/8-scale map must allow reflection padding).
        returns: the reblurred image (N, in_channels, H, W), no residual, no clamp.

    Raises:
        ValueError: inputs of different shapes, wrong channels, H/W not multiples of 8 or < 16.

    Follows ``BlurringNet`` in Dong-Huo/ASPDC ``networks/sub_networks.py``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        intermediate_channels: Sequence[int] = (16, 32, 64, 128, 256, 512),
        intermediate_kernels: int = 3,
        init: str = "default",
    ) -> None:
        super().__init__()
        _check_init(init)
        ic = tuple(int(c) for c in intermediate_channels)
        if len(ic) < 4 or min(ic[:4]) < 1:
            raise ValueError(f"intermediate_channels needs 4 positive widths, got {tuple(intermediate_channels)}")
        if int(intermediate_kernels) != intermediate_kernels or intermediate_kernels < 1 or intermediate_kernels % 2 == 0:
            raise ValueError(f"intermediate_kernels must be an odd positive integer, got {intermediate_kernels!r}")
        self.in_channels = int(in_channels)
        c0, c1, c2, c3 = ic[:4]
        kk = int(intermediate_kernels) ** 2
        self.head_conv = nn.Sequential(nn.Conv2d(in_channels * 2, c0, 3, 1, 1), _lrelu())
        self.kernel_head_conv = nn.Conv2d(c0, kk, 3, 1, 1)
        self.body_conv_1 = nn.Sequential(nn.Conv2d(c0, c1, 3, 2, 1), ResBlock(c1, c1), _lrelu())
        self.kernel_conv_1 = nn.Conv2d(c1, kk, 3, 1, 1)
        self.body_conv_2 = nn.Sequential(nn.Conv2d(c1, c2, 3, 2, 1), ResBlock(c2, c2), _lrelu())
        self.kernel_conv_2 = nn.Conv2d(c2, kk, 3, 1, 1)
        self.body_conv_3 = nn.Sequential(nn.Conv2d(c2, c3, 3, 2, 1), ResBlock(c3, c3), _lrelu())
        self.kernel_conv_3 = nn.Conv2d(c3, kk, 3, 1, 1)
        self.body_dconv_3 = nn.Sequential(
            ResBlock(c3, c3), nn.ConvTranspose2d(c3, c2, 3, 2, 1, output_padding=1), _lrelu()
        )
        self.kernel_dconv_3 = nn.Conv2d(c2, kk, 3, 1, 1)
        self.body_dconv_2 = nn.Sequential(
            ResBlock(c2, c2), nn.ConvTranspose2d(c2, c1, 3, 2, 1, output_padding=1), _lrelu()
        )
        self.kernel_dconv_2 = nn.Conv2d(c1, kk, 3, 1, 1)
        self.body_dconv_1 = nn.Sequential(
            ResBlock(c1, c1), nn.ConvTranspose2d(c1, c0, 3, 2, 1, output_padding=1), _lrelu()
        )
        self.kernel_dconv_1 = nn.Conv2d(c0, kk, 3, 1, 1)
        self.tail = nn.Conv2d(c0, in_channels, 3, 1, 1)
        self.dynamic_conv = DynamicConv(int(intermediate_kernels))
        if init == "xavier":
            init_xavier(self)

    def estimate_kernels(self, blurry_image: Tensor, sharp_image: Tensor) -> list[Tensor]:
        """Pass 1: the 7 per-pixel kernel logit maps (N, k*k, H/s, W/s) for s = 1, 2, 4, 8, 4, 2, 1
        (head, body 1..3, decoder 3..1)."""
        fusion = self.head_conv(torch.cat([blurry_image, sharp_image], 1))
        k_head = self.kernel_head_conv(fusion)
        b1 = self.body_conv_1(fusion)
        k1 = self.kernel_conv_1(b1)
        b2 = self.body_conv_2(b1)
        k2 = self.kernel_conv_2(b2)
        b3 = self.body_conv_3(b2)
        k3 = self.kernel_conv_3(b3)
        d3 = self.body_dconv_3(b3) + b2
        kd3 = self.kernel_dconv_3(d3)
        d2 = self.body_dconv_2(d3) + b1
        kd2 = self.kernel_dconv_2(d2)
        d1 = self.body_dconv_1(d2)
        kd1 = self.kernel_dconv_1(d1)
        return [k_head, k1, k2, k3, kd3, kd2, kd1]

    def forward(self, blurry_image: Tensor, sharp_image: Tensor) -> Tensor:
        if blurry_image.shape != sharp_image.shape:
            raise ValueError(
                f"blurry_image {tuple(blurry_image.shape)} and sharp_image {tuple(sharp_image.shape)} differ in shape"
            )
        if blurry_image.dim() != 4 or blurry_image.shape[1] != self.in_channels:
            raise ValueError(f"ASPDC reblur expects (N, {self.in_channels}, H, W), got {tuple(blurry_image.shape)}")
        h, w = blurry_image.shape[2:]
        if h % 8 or w % 8 or min(h, w) < 16:
            raise ValueError(f"ASPDC reblur needs H and W multiples of 8 and >= 16, got {h}x{w}")
        k_head, k1, k2, k3, kd3, kd2, kd1 = self.estimate_kernels(blurry_image, sharp_image)
        dyn = self.dynamic_conv
        f = dyn(self.head_conv(torch.cat([sharp_image, sharp_image], 1)), k_head)
        b1 = dyn(self.body_conv_1(f), k1)
        b2 = dyn(self.body_conv_2(b1), k2)
        b3 = dyn(self.body_conv_3(b2), k3)
        d3 = dyn(self.body_dconv_3(b3) + b2, kd3)
        d2 = dyn(self.body_dconv_2(d3) + b1, kd2)
        d1 = dyn(self.body_dconv_1(d2), kd1)
        return self.tail(d1)


# ---------------------------------------------------------------------------------- registry
def _shape(sd: Mapping[str, Any], key: str) -> tuple[int, ...] | None:
    t = sd.get(key)
    s = getattr(t, "shape", None)
    return tuple(int(v) for v in s) if s is not None else None


def infer_aspdc_config(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Guess ``in_channels``, ``intermediate_channels``, ``out_channels`` and ``num_res`` of a
    :class:`DeblurringNet` state dict from ``head.0/4/6`` and ``tail.4`` shapes and the number of
    ``en_res_group1_1.<i>`` blocks. Returns ``{}`` when the keys are absent."""
    h0, h4, h6, t4 = (_shape(state_dict, k) for k in ("head.0.weight", "head.4.weight", "head.6.weight", "tail.4.weight"))
    if not (h0 and h4 and h6 and t4) or len(h0) != 4:
        return {}
    prefix = "en_res_group1_1."
    blocks = {k[len(prefix):].split(".", 1)[0] for k in state_dict if k.startswith(prefix)}
    return {
        "in_channels": h0[1],
        "intermediate_channels": (h0[0], h4[0], h6[0], 2 * h6[0]),
        "out_channels": t4[0],
        "num_res": len({b for b in blocks if b.isdigit()}),
    }


def infer_aspdc_reblur_config(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Guess ``in_channels``, ``intermediate_channels`` and ``intermediate_kernels`` of a
    :class:`BlurringNet` state dict. Returns ``{}`` when the keys are absent."""
    keys = ("head_conv.0.weight", "body_conv_1.0.weight", "body_conv_2.0.weight", "body_conv_3.0.weight",
            "kernel_head_conv.weight")
    shapes = [_shape(state_dict, k) for k in keys]
    if not all(shapes):
        return {}
    k = round(shapes[4][0] ** 0.5)
    if k * k != shapes[4][0]:
        return {}
    c = [s[0] for s in shapes[:4]]
    return {
        "in_channels": shapes[0][1] // 2,
        "intermediate_channels": (c[0], c[1], c[2], c[3], 2 * c[3], 4 * c[3]),
        "intermediate_kernels": k,
    }


def _deblurred(out: Any) -> Tensor:
    """Primary output of ``aspdc``: the deblurred image ``out[0]`` of ``(rgb + res, res)``."""
    if isinstance(out, Tensor):
        return out
    if isinstance(out, (list, tuple)) and out and isinstance(out[0], Tensor):
        return out[0]
    raise TypeError(f"aspdc's forward returns (deblurred, residual), got {type(out).__name__}")


_PAPER = (
    "Huo et al., Blind Non-Uniform Motion Deblurring using Atrous Spatial Pyramid Deformable "
    "Convolution and Deblurring-Reblurring Consistency, CVPR Workshops (NTIRE) 2022"
)
_COMMIT = "b0cf2c338b817478533b5793dbbad5299f086f2b"

register_model(
    "aspdc",
    ModelDescriptor(
        name="aspdc",
        system="aspdc",
        paper=_PAPER,
        official=OfficialSource(
            repo="Dong-Huo/ASPDC", file="networks/sub_networks.py", cls="DeblurringNet", commit=_COMMIT,
            note="blocks in networks/modules.py; mmcv-full 1.3.9 ModulatedDeformConv2d (pure-PyTorch here)",
        ),
        input_kinds=("rgb",),
        value_range=(-1.0, 1.0),
        size_multiple=4,
        outputs=(
            "tuple (deblurred, residual), each (N,3,H,W) in [-1,1] scale: deblurred = input + residual, "
            "not clamped (D_testing.py clamps to [-1, 1])"
        ),
        defaults={"official_compat": True},
        primary=_deblurred,
        infer_config=infer_aspdc_config,
        notes=(
            "Inputs RGB in [-1, 1] (albu.Normalize(0.5, 0.5)). official_compat=True (default) reproduces "
            "mmcv reading the unpadded (h-2, w-2) dilation-0 mask as (9, h, w), zeros beyond its end "
            "(needed for the released DeblurringNet_*.pth); official_compat=False is the fixed, padded "
            "mask for new training. In compat mode the scrambled mask depends on the input size, so tiled "
            "inference gives (slightly) different results than one pass, as the official code would. "
            "Checkpoints: {'deblurring_state_dict': ...}. H, W multiples of 4, >= 12."
        ),
    ),
    DeblurringNet,
)

register_model(
    "aspdc_reblur",
    ModelDescriptor(
        name="aspdc_reblur",
        system="aspdc",
        paper=_PAPER + " (reblurring network of the deblurring-reblurring consistency loss)",
        official=OfficialSource(
            repo="Dong-Huo/ASPDC", file="networks/sub_networks.py", cls="BlurringNet", commit=_COMMIT,
            note="built by networks/DR_network.py Whole_Network; Dynamic_conv in networks/modules.py",
        ),
        input_kinds=("rgb", "rgb"),
        value_range=(-1.0, 1.0),
        size_multiple=8,
        outputs="reblurred image (N,3,H,W) in [-1,1] scale, no residual, not clamped",
        defaults={},
        infer_config=infer_aspdc_reblur_config,
        notes=(
            "net(blurry_image, sharp_image): kernels are estimated from (blurry, sharp) and applied to the "
            "sharp image's features; DR_network.py calls it with (blurry patch, deblurred output) and "
            "weighs the reblurring loss by lambda_B = 0.1. Inputs in [-1, 1]; H, W multiples of 8, >= 16. "
            "Checkpoint ReBlurringNet.pth: {'blurring_state_dict': ...} (load_checkpoint(net, path, "
            "key='blurring_state_dict'))."
        ),
    ),
    BlurringNet,
)
