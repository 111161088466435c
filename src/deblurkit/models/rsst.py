"""RSS-T (Ji et al., *Single Image Deblurring with Row-dependent Blur Magnitude*, ICCV 2023).

Deblurring for the global-reset-release (GRR) shutter, whose blur magnitude grows row by row: a
four-level Uformer-style U-Net whose input carries a fourth *row-index* channel, with
horizontal 4x16 windows (``trans_type='rsst'``), a window positional embedding (depthwise
Conv3d over window index x window rows x window columns), an FFT branch in every block and
MIMO-style multi-scale inputs/outputs.

Re-implements, with identical state-dict keys, shapes and order and the same forward
computation, ``RSST`` of jixiang2016/RSS-T ``model/RSST.py`` and its blocks in
``model/layers.py`` (``ScSeTransformerBlock``, ``LeWinTransformerBlock``, ``TransGroup``,
``SCM``, ``FAM``, ``SEFF``, ``BasicConv``) at commit 30d88d8b66ca8c5e2b058d51d52123bd95bbee14.
Shared attention / feed-forward pieces live in :mod:`deblurkit.models.layers.window_attention`.

Registered names:

- ``rsst``: the released configuration (``test.sh`` / ``train.sh``): ``base_channel=32``,
  ``win_size=(4, 16)``, ``trans_type='rsst'``, ``token_projection='linear'``,
  ``token_mlp='leff'``. Inputs: H a multiple of 32, W of 128 (the official padding factor).
- ``rsst_lewin``: the official class / ``train.py`` defaults: square 8x8 Uformer LeWin blocks
  (``trans_type='LeWin'``), no window positional embedding, no FFT branch. H, W multiples of 64.

Forward ``net(x, mask=None)`` returns the list ``[out_8, out_4, out_2, out]`` of
(N, 3, H/8, W/8), (N, 3, H/4, W/4), (N, 3, H/2, W/2), (N, 3, H, W): each is a predicted residual
plus the nearest-downsampled input, not clamped. ``x`` is RGB in [0, 1] (the official loader
divides uint8 by 255; no mean/std). ``mask`` (optional) marks padded pixels with 1 (the official
evaluation pads the image centred to multiples of (32, 128) and calls ``net(x_pad, 1 - valid)``;
:func:`pad_centred` does that padding); attention logits between two padded tokens of a window
get -100.

Official quirks, and what the two modes do (``official_compat``, default False = fixed):

1. **Window shrink is permanent.** A block whose input is not larger than its window uses a
   window equal to the input there (and no shift), which is right, but the official block
   *stores* the shrunk window: every later call, whatever its size, uses it (and a shift of half
   of it). ``official_compat=True`` reproduces this (``block.win_size`` changes); fixed mode
   chooses the window per call, so a network behaves the same whatever it ran before.
   For ``LeWin`` blocks the official attention keeps its 8x8 bias while the block shrinks its
   window, which fails with a shape error; compat mode raises ``RuntimeError`` there (after
   storing the shrunk window, as the official block does; a shrink to exactly the window size
   only stores ``shift_size = 0`` and does not fail).
2. **Padding mask.** The official ``RSST.forward`` keeps only ``mask[0]`` and applies it to every
   batch item, and each shifted block partitions the *unshifted* mask while the features are
   cyclically shifted, so the -100 penalties land on the wrong tokens. Compat does both; fixed
   mode uses each item's own mask (``mask`` of batch 1 or N) and rolls it with the features.
3. **Row index of padded inputs.** The official row-index channel numbers the rows of the
   padded input (0 at the top of the padding). Compat does that; fixed mode numbers rows from
   the first unpadded row of each item (``mask``), so the image rows get 0..h-1 exactly as
   without padding (padding rows above get negative numbers, rows below continue past h-1).
   Without a mask both modes give 0..H-1.
4. **Bias table of a shrunk window** (found while re-implementing). The official attention
   indexes its (2*4-1)*(2*16-1) relative-position table with the *shrunk* window's stride, so an
   offset reads the row trained for another offset. Compat does that; fixed mode indexes the
   table by its own geometry, so each offset reads its own row. Only inputs with a level not
   larger than the window are affected.

With no mask, batch-independent inputs and every level larger than the window (the released
model on its evaluation data, and the parity fixture), both modes compute the same thing.

Behaviour kept in both modes because released weights depend on it: the row index is not
normalised (values up to H-1, nearest-downsampled so coarse levels keep full-resolution row
numbers 0, 2, 4, ...); the input pyramid is nearest (top-left) downsampling; the block adds its
feed-forward to the *normalised* tokens (``x = LN(x) + FF(LN(x)) + fft_branch(x)``); the window
positional embedding convolves across the row-major window order (wrapping from one window row
to the next); -100 is added only between two padded tokens.

Options other than the official ones raise instead of failing later: ``se_layer=True``
(``SELayer`` is not defined in the official code) and unknown ``token_projection`` values (the
official code silently uses ``linear``).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers.mimo import BasicConv as _MimoBasicConv
from .layers.window_attention import (
    DropPath,
    LeFF,
    Mlp,
    WindowAttention,
    padding_attention_mask,
    shift_attention_mask,
    window_partition,
    window_reverse,
)
from .registry import ModelDescriptor, OfficialSource, register_model

__all__ = [
    "BasicConv",
    "SCM",
    "FAM",
    "SEFF",
    "RSSTBlock",
    "LeWinBlock",
    "TransGroup",
    "RSST",
    "row_index_map",
    "pad_centred",
    "infer_rsst_config",
]

_TRANS_TYPES = {"rsst": "rsst", "lewin": "LeWin"}


# ------------------------------------------------------------------------------ conv blocks
class BasicConv(_MimoBasicConv):
    """Conv (or transposed conv) -> optional BatchNorm -> optional LeakyReLU(0.01), as RSS-T's
    ``model/layers.py`` ``BasicConv``: MIMO-UNet's block (:class:`deblurkit.models.layers.mimo.BasicConv`)
    with LeakyReLU where MIMO-UNet has ReLU.

    Keys: ``main.0.*`` (and ``main.1.*`` with ``norm``). Padding ``k // 2`` (conv) or
    ``k // 2 - 1`` (transposed). Shapes: (N, in_channel, H, W) -> (N, out_channel, H', W').
    """

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, stride: int, bias: bool = True,
                 norm: bool = False, relu: bool = True, transpose: bool = False) -> None:
        super().__init__(in_channel, out_channel, kernel_size, stride=stride, bias=bias, norm=norm,
                         relu=relu, transpose=transpose, activation="leaky_relu")


class SCM(nn.Module):
    """Shallow convolutional module of a downsampled input with its row-index channel.

    Input (N, 4, H, W) = RGB + row index; four convs (3x3, 1x1, 3x3, 1x1; widths P/4, P/2, P/2,
    P-4; LeakyReLU) concatenated after the 4 input channels, then a 1x1 conv without activation.
    Keys ``main.0..3.main.0.*``, ``conv.main.0.*``. Output (N, P, H, W), P = ``out_plane``.
    Follows RSS-T ``model/RSST.py`` ``SCM``.
    """

    def __init__(self, out_plane: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            BasicConv(3 + 1, out_plane // 4, kernel_size=3, stride=1, relu=True),
            BasicConv(out_plane // 4, out_plane // 2, kernel_size=1, stride=1, relu=True),
            BasicConv(out_plane // 2, out_plane // 2, kernel_size=3, stride=1, relu=True),
            BasicConv(out_plane // 2, out_plane - 3 - 1, kernel_size=1, stride=1, relu=True),
        )
        self.conv = BasicConv(out_plane, out_plane, kernel_size=1, stride=1, relu=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(torch.cat([x, self.main(x)], dim=1))


class FAM(nn.Module):
    """Feature attention module ``x1 + conv3x3(x1 * x2)``; keys ``merge.main.0.*``.
    Shapes: two (N, C, H, W) -> (N, C, H, W). Follows RSS-T ``model/RSST.py`` ``FAM``."""

    def __init__(self, channel: int) -> None:
        super().__init__()
        self.merge = BasicConv(channel, channel, kernel_size=3, stride=1, relu=False)

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return x1 + self.merge(x1 * x2)


class SEFF(nn.Module):
    """Squeeze-excitation feature fusion of four scales (resized to one resolution).

    ``x = cat(x1..x4)``; channel weights ``sigmoid(fc2(relu(fc1(avgpool(x)))))`` (bias-free,
    reduction 16); then conv1x1 + LeakyReLU, conv3x3. Keys ``fc.0.weight``, ``fc.2.weight``,
    ``conv.0.main.0.*``, ``conv.1.main.0.*``. Shapes: four (N, C_i, H, W), sum C_i =
    ``in_channel`` -> (N, out_channel, H, W). Follows RSS-T ``model/RSST.py`` ``SEFF``.
    """

    def __init__(self, in_channel: int, out_channel: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(in_channel, in_channel // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(in_channel // reduction, in_channel, bias=False),
            nn.Sigmoid(),
        )
        self.conv = nn.Sequential(
            BasicConv(in_channel, out_channel, kernel_size=1, stride=1, relu=True),
            BasicConv(out_channel, out_channel, kernel_size=3, stride=1, relu=False),
        )

    def forward(self, x1: Tensor, x2: Tensor, x3: Tensor, x4: Tensor) -> Tensor:
        x = torch.cat([x1, x2, x3, x4], dim=1)
        b, c = x.shape[:2]
        y = self.fc(self.avg_pool(x).reshape(b, c)).reshape(b, c, 1, 1)
        return self.conv(x * y)


# ------------------------------------------------------------------------------ transformer blocks
def _check_mask(mask: Tensor | None, B: int) -> None:
    if mask is None:
        return
    if mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask must be (N, 1, H, W), got {tuple(mask.shape)}")
    if mask.shape[0] not in (1, B):
        raise ValueError(f"mask batch {mask.shape[0]} must be 1 or the input batch {B}")


def _window_error(kind: str, H: int, W: int, win: tuple[int, int]) -> ValueError:
    return ValueError(
        f"{kind} block: a {H}x{W} feature map is not divisible into {win[0]}x{win[1]} windows; "
        f"pad the network input so that H/8 and W/8 are multiples of the window "
        f"(H to a multiple of {8 * win[0]}, W of {8 * win[1]})"
    )


class RSSTBlock(nn.Module):
    """RSS-T transformer block (official ``ScSeTransformerBlock``, ``trans_type='rsst'``).

    With tokens ``t`` of the (N, C, H, W) input: shifted-window attention (shift half the window
    in odd blocks ``idx``) on ``LN1(t_win + win_pos_embed(t_win))``, residual to ``t``; then
    ``LN2(t) + LeFF(LN2(t)) + fft_branch(t)``, where the FFT branch is ``irfft2`` of two 1x1
    convs (with LeakyReLU between) on the concatenated real/imaginary parts of ``rfft2(t)``.

    Keys (order as official): ``norm1``, ``attn.relative_position_bias_table``,
    ``attn.qkv.to_q``/``to_kv``, ``attn.proj``, ``norm2``, ``mlp.linear1.0``/``dwconv.0``/
    ``linear2.0`` (or ``mlp.fc1``/``fc2``), ``conv_fft.0/1.main.0``, ``win_pos_embed``.

    Args: as official (``dim``, ``num_heads``, ``win_size=(wh, ww)``, ``idx``, ``mlp_ratio``,
    ``qkv_bias``, ``qk_scale``, ``drop``, ``attn_drop``, ``drop_path``, ``act_layer``,
    ``norm_layer``, ``token_projection``, ``token_mlp`` in {'leff', 'ffn'}), plus
    ``official_compat`` (module docstring, quirks 1, 2 and 4).

    Forward ``(x, mask=None)``: x (N, C, H, W); mask None or (1 or N, 1, H', W'), non-zero on
    padded pixels, resized (nearest) to H x W. Returns (N, C, H, W).

    Raises:
        ValueError: H or W not divisible by the window used; bad ``mask`` shape.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        win_size: tuple[int, int] = (4, 16),
        idx: int = 0,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        act_layer: type[nn.Module] = nn.GELU,
        norm_layer: type[nn.Module] = nn.LayerNorm,
        token_projection: str = "linear",
        token_mlp: str = "leff",
        official_compat: bool = False,
    ) -> None:
        super().__init__()
        self.dim, self.num_heads, self.idx = dim, num_heads, idx
        self.base_win_size: tuple[int, int] = (int(win_size[0]), int(win_size[1]))
        self.win_size: tuple[int, int] = self.base_win_size  # compat mode stores shrinks here
        self.official_compat = bool(official_compat)
        self.norm1 = norm_layer(dim)
        self.attn = WindowAttention(
            dim, self.base_win_size, num_heads, token_projection=token_projection,
            qkv_bias=qkv_bias, qk_scale=qk_scale, attn_drop=attn_drop, proj_drop=drop,
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = _token_mlp(token_mlp, dim, hidden, act_layer, drop)
        self.conv_fft = nn.Sequential(
            BasicConv(dim * 2, dim * 2, kernel_size=1, stride=1, relu=True),
            BasicConv(dim * 2, dim * 2, kernel_size=1, stride=1, relu=False),
        )
        self.win_pos_embed = nn.Conv3d(dim, dim, (3, 3, 3), (1, 1, 1), (1, 1, 1), groups=dim)

    def window_for(self, H: int, W: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """``(window, shift)`` used for an H x W input. In compat mode this *stores* a shrunk
        window (quirk 1), as the official forward does; in fixed mode it has no side effect."""
        win = self.win_size if self.official_compat else self.base_win_size
        shift = [0, 0] if self.idx % 2 == 0 else [win[0] // 2, win[1] // 2]
        if H <= win[0]:
            shift[0] = 0
            win = (H, win[1])
        if W <= win[1]:
            shift[1] = 0
            win = (win[0], W)
        if self.official_compat:
            self.win_size = win
        return win, (shift[0], shift[1])

    def attention_mask(
        self, mask: Tensor | None, H: int, W: int, win: tuple[int, int], shift: tuple[int, int],
        like: Tensor,
    ) -> Tensor | None:
        """Additive mask (B', nW, N, N) / (nW, N, N) or None (padding + shifted-window parts)."""
        out: Tensor | None = None
        if mask is not None:
            m = F.interpolate(mask.to(like.dtype), size=(H, W)).permute(0, 2, 3, 1)  # B', H, W, 1
            if not self.official_compat and (shift[0] or shift[1]):
                m = torch.roll(m, shifts=(-shift[0], -shift[1]), dims=(1, 2))  # quirk 2 fixed
            out = padding_attention_mask(m, win)
        if shift[0] > 0 or shift[1] > 0:
            s = shift_attention_mask(H, W, win, shift, device=like.device, dtype=like.dtype)
            out = s if out is None else out + s
        return out

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        B, C, H, W = x.shape
        _check_mask(mask, B)
        win, shift = self.window_for(H, W)
        if H % win[0] or W % win[1]:
            raise _window_error("RSS-T", H, W, win)
        attn_mask = self.attention_mask(mask, H, W, win, shift, x)

        t = x.flatten(2).transpose(1, 2).contiguous()  # B, HW, C
        shortcut = t
        t = t.view(B, H, W, C)
        if shift[0] > 0 or shift[1] > 0:
            t = torch.roll(t, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        n = win[0] * win[1]
        w = window_partition(t, win).reshape(B, -1, win[0], win[1], C).permute(0, 4, 1, 2, 3).contiguous()
        w = w + self.win_pos_embed(w)  # B, C, nW, wh, ww
        w = self.norm1(w.permute(0, 2, 3, 4, 1).reshape(B, -1, C)).reshape(-1, n, C)
        w = self.attn(w, mask=attn_mask, win_size=win, official_index=self.official_compat)
        t = window_reverse(w.reshape(-1, win[0], win[1], C), win, H, W)
        if shift[0] > 0 or shift[1] > 0:
            t = torch.roll(t, shifts=(shift[0], shift[1]), dims=(1, 2))
        t = shortcut + self.drop_path(t.reshape(B, H * W, C))

        y = self.spectral_branch(t.view(B, H, W, C).permute(0, 3, 1, 2))  # B, C, H, W
        t = self.norm2(t).view(B, H, W, C)
        t = t + self.drop_path(self.mlp(t)) + y.permute(0, 2, 3, 1)
        return t.permute(0, 3, 1, 2)

    def spectral_branch(self, x: Tensor) -> Tensor:
        """FFT branch (official ``sepctral_branch``): (N, C, H, W) -> (N, C, H, W)."""
        H, W = x.shape[-2:]
        y = torch.fft.rfft2(x, norm="backward")
        y = self.conv_fft(torch.cat([y.real, y.imag], dim=1))
        y_real, y_imag = torch.chunk(y, 2, dim=1)
        return torch.fft.irfft2(torch.complex(y_real, y_imag), s=(H, W), norm="backward")


class LeWinBlock(nn.Module):
    """Uformer LeWin block as in RSS-T (official ``LeWinTransformerBlock``, ``trans_type='LeWin'``).

    Tokens ``t``: ``t + attn(window(roll(LN1(t))))`` with square windows (shift ``shift_size``),
    then ``LN2(t) + FF(LN2(t))``. Keys: ``norm1``, ``attn.*``, ``norm2``, ``mlp.*``.

    Args as official (``win_size`` int, ``shift_size`` int) plus ``official_compat`` (module
    docstring, quirks 1, 2 and 4). Forward and errors as :class:`RSSTBlock`; additionally
    ``RuntimeError`` in compat mode where the official block fails (its window shrank below
    the attention's).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        win_size: int = 8,
        shift_size: int = 0,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        act_layer: type[nn.Module] = nn.GELU,
        norm_layer: type[nn.Module] = nn.LayerNorm,
        token_projection: str = "linear",
        token_mlp: str = "leff",
        official_compat: bool = False,
    ) -> None:
        super().__init__()
        self.dim, self.num_heads = dim, num_heads
        self.base_win_size, self.base_shift_size = int(win_size), int(shift_size)
        self.win_size, self.shift_size = self.base_win_size, self.base_shift_size  # compat state
        self.official_compat = bool(official_compat)
        self.norm1 = norm_layer(dim)
        self.attn = WindowAttention(
            dim, (self.base_win_size, self.base_win_size), num_heads, token_projection=token_projection,
            qkv_bias=qkv_bias, qk_scale=qk_scale, attn_drop=attn_drop, proj_drop=drop,
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = _token_mlp(token_mlp, dim, int(dim * mlp_ratio), act_layer, drop)

    def window_for(self, H: int, W: int) -> tuple[int, int]:
        """``(window, shift)`` for an H x W input (compat mode stores them, as official)."""
        if self.official_compat:
            if min(H, W) <= self.win_size:
                self.shift_size = 0
                self.win_size = min(H, W)
            if self.win_size != self.base_win_size:
                raise RuntimeError(
                    f"official LeWin block: its window shrank to {self.win_size} (after a feature map "
                    f"of {H}x{W} or an earlier smaller one) while its attention keeps the "
                    f"{self.base_win_size}x{self.base_win_size} bias; the official code fails here. "
                    "Use official_compat=False."
                )
            return self.win_size, self.shift_size
        win, shift = self.base_win_size, self.base_shift_size
        if min(H, W) <= win:
            win, shift = min(H, W), 0
        return win, shift

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        B, C, H, W = x.shape
        _check_mask(mask, B)
        win, shift = self.window_for(H, W)
        if H % win or W % win:
            raise _window_error("LeWin", H, W, (win, win))
        attn_mask: Tensor | None = None
        if mask is not None:
            m = F.interpolate(mask.to(x.dtype), size=(H, W)).permute(0, 2, 3, 1)
            if not self.official_compat and shift:
                m = torch.roll(m, shifts=(-shift, -shift), dims=(1, 2))
            attn_mask = padding_attention_mask(m, win)
        if shift > 0:
            s = shift_attention_mask(H, W, win, shift, device=x.device, dtype=x.dtype)
            attn_mask = s if attn_mask is None else attn_mask + s

        t = x.flatten(2).transpose(1, 2).contiguous()
        shortcut = t
        t = self.norm1(t).view(B, H, W, C)
        if shift > 0:
            t = torch.roll(t, shifts=(-shift, -shift), dims=(1, 2))
        w = window_partition(t, win).reshape(-1, win * win, C)
        w = self.attn(w, mask=attn_mask, win_size=(win, win), official_index=self.official_compat)
        t = window_reverse(w.reshape(-1, win, win, C), win, H, W)
        if shift > 0:
            t = torch.roll(t, shifts=(shift, shift), dims=(1, 2))
        t = shortcut + self.drop_path(t.reshape(B, H * W, C))
        t = self.norm2(t).view(B, H, W, C)
        t = t + self.drop_path(self.mlp(t))
        return t.permute(0, 3, 1, 2)


def _token_mlp(kind: str, dim: int, hidden: int, act_layer: type[nn.Module], drop: float) -> nn.Module:
    if kind == "ffn":
        return Mlp(in_features=dim, hidden_features=hidden, act_layer=act_layer, drop=drop)
    if kind == "leff":
        return LeFF(dim, hidden, act_layer=act_layer, drop=drop)
    raise ValueError(f"token_mlp must be 'leff' or 'ffn', got {kind!r}")


class TransGroup(nn.Module):
    """``depth`` transformer blocks then ``x_in + conv3x3+LeakyReLU(blocks(x_in))``.

    Keys ``blocks.<i>.*``, ``h_conv.main.0.*``. ``trans_type``: ``'rsst'`` (:class:`RSSTBlock`)
    or ``'LeWin'`` (:class:`LeWinBlock`, square window, shift ``win // 2`` in odd blocks).
    Shapes (N, C, H, W) -> (N, C, H, W). Follows RSS-T ``model/layers.py`` ``TransGroup``.

    Raises:
        ValueError: unknown ``trans_type``; non-square window for ``LeWin``.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        win_size: tuple[int, int],
        trans_type: str,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float | Sequence[float] = 0.0,
        norm_layer: type[nn.Module] = nn.LayerNorm,
        token_projection: str = "linear",
        token_mlp: str = "ffn",
        official_compat: bool = False,
    ) -> None:
        super().__init__()
        dps = [float(drop_path[i]) if isinstance(drop_path, Sequence) else float(drop_path) for i in range(depth)]
        common = dict(
            dim=dim, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale,
            drop=drop, attn_drop=attn_drop, norm_layer=norm_layer, token_projection=token_projection,
            token_mlp=token_mlp, official_compat=official_compat,
        )
        if trans_type == "LeWin":
            if win_size[0] != win_size[1]:
                raise ValueError(f"LeWin only supports square windows, got {tuple(win_size)}")
            w = int(win_size[0])
            blocks: list[nn.Module] = [
                LeWinBlock(win_size=w, shift_size=0 if i % 2 == 0 else w // 2, drop_path=dps[i], **common)
                for i in range(depth)
            ]
        elif trans_type == "rsst":
            blocks = [RSSTBlock(win_size=tuple(win_size), idx=i, drop_path=dps[i], **common) for i in range(depth)]
        else:
            raise ValueError(f"trans_type must be 'rsst' or 'LeWin', got {trans_type!r}")
        self.blocks = nn.ModuleList(blocks)
        self.h_conv = BasicConv(dim, dim, kernel_size=3, stride=1, relu=True)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        shortcut = x
        for blk in self.blocks:
            x = blk(x, mask)
        return shortcut + self.h_conv(x)


# ------------------------------------------------------------------------------ helpers
def row_index_map(
    shape: Sequence[int], mask: Tensor | None = None, *, official_compat: bool = False,
    device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The row-index input channel (N, 1, H, W) for an input of ``shape`` (N, C, H, W).

    Official (``official_compat=True``, or no ``mask``): ``map[n, 0, i, :] = i`` for i in
    0..H-1, not normalised. Fixed mode with a ``mask`` ((1 or N, 1, H', W'), non-zero on padded
    pixels, resized nearest to H x W): ``i - top_n``, with ``top_n`` the first row of item n
    holding an unpadded pixel (0 if none), so the image rows count 0..h-1 (quirk 3).
    """
    N, _, H, W = (int(s) for s in shape)
    rows = torch.arange(H, device=device, dtype=dtype).view(1, 1, H, 1)
    if mask is not None and not official_compat:
        m = F.interpolate(mask.to(dtype=dtype, device=rows.device), size=(H, W))
        valid_row = (m == 0).any(dim=3).any(dim=1)  # B', H
        has = valid_row.any(dim=1)
        top = torch.where(has, valid_row.to(torch.int64).argmax(dim=1), torch.zeros_like(has, dtype=torch.int64))
        rows = rows - top.to(dtype).view(-1, 1, 1, 1)
    return rows.expand(N, 1, H, W).contiguous()


def pad_centred(x: Tensor, factor: tuple[int, int] = (32, 128)) -> tuple[Tensor, Tensor, tuple[int, int]]:
    """Zero-pad (N, C, h, w) centred to multiples of ``factor`` (official ``trainer.py``
    ``expand2square_new``, factor (32, 128) for 4x16 windows).

    Returns ``(padded (N, C, H, W), pad_mask (N, 1, H, W) with 1 on padding, (top, left))``.
    Call ``net(padded, pad_mask)`` (the official ``net(x_pad, 1 - mask)``) and crop
    ``out[..., top:top + h, left:left + w]``. Raises ``ValueError`` for a non 4-D input or a
    factor < 1.
    """
    if x.dim() != 4:
        raise ValueError(f"pad_centred expects (N, C, H, W), got {tuple(x.shape)}")
    fh, fw = int(factor[0]), int(factor[1])
    if fh < 1 or fw < 1:
        raise ValueError(f"factor must be positive, got {factor}")
    n, c, h, w = x.shape
    H, W = math.ceil(h / fh) * fh, math.ceil(w / fw) * fw
    top, left = (H - h) // 2, (W - w) // 2
    padded = x.new_zeros(n, c, H, W)
    padded[:, :, top:top + h, left:left + w] = x
    mask = x.new_ones(n, 1, H, W)
    mask[:, :, top:top + h, left:left + w] = 0
    return padded, mask, (top, left)


# ------------------------------------------------------------------------------ network
def _half(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=0.5)


class RSST(nn.Module):
    """RSS-T network (official ``RSST`` in jixiang2016/RSS-T ``model/RSST.py``).

    Args (official names and defaults; ``build('rsst')`` passes the released configuration):
        base_channel: width C of the full-resolution level; levels use C, 2C, 4C, 8C.
        win_size: ``(wh, ww)`` attention window (released: (4, 16); official class default (8, 8)).
        token_projection: ``'linear'`` or ``'linear_concat'``.
        token_mlp: ``'leff'`` or ``'ffn'``.
        trans_type: ``'rsst'`` (released) or ``'LeWin'`` (official class default; ``'lewin'``
            accepted).
        se_layer: must be False (the official ``SELayer`` does not exist).
        drop_path_rate: stochastic depth, linear 0..rate over the encoder blocks, reversed for
            the decoder (training only).
        mlp_ratio, norm_layer, depths (8 ints), num_heads (8 ints), drop_rate, attn_drop_rate,
        qkv_bias, qk_scale: as official.
        official_compat: reproduce the official quirks (module docstring); False fixes them.

    Forward ``(x, mask=None)``:
        x: (N, 3, H, W) float RGB in [0, 1]; H, W multiples of 8 and H/8, W/8 multiples of the
            window (or not larger than it): for (4, 16) H % 32 == 0 and W % 128 == 0 always work.
        mask: None or (1 or N, 1, H, W), 1 on padded pixels (see :func:`pad_centred`).
        returns: ``[out_8, out_4, out_2, out]``: (N, 3, H/8, W/8), (N, 3, H/4, W/4),
            (N, 3, H/2, W/2), (N, 3, H, W); residual + nearest-downsampled input, not clamped.

    Raises:
        ValueError: bad constructor arguments; input not (N, 3, H, W); H or W not usable with
            the window; bad ``mask`` shape.
        RuntimeError: compat-mode LeWin blocks where the official code fails (quirk 1).
    """

    def __init__(
        self,
        base_channel: int = 32,
        win_size: tuple[int, int] = (8, 8),
        token_projection: str = "linear",
        token_mlp: str = "leff",
        trans_type: str = "LeWin",
        se_layer: bool = False,
        drop_path_rate: float = 0.1,
        mlp_ratio: float = 4.0,
        norm_layer: type[nn.Module] = nn.LayerNorm,
        depths: Sequence[int] = (2, 2, 2, 2, 2, 2, 2, 2),
        num_heads: Sequence[int] = (1, 2, 4, 8, 8, 4, 2, 1),
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        official_compat: bool = False,
    ) -> None:
        super().__init__()
        c = base_channel
        if int(c) != c or c < 3:
            raise ValueError(f"base_channel must be an integer >= 3, got {base_channel!r}")
        c = int(c)
        if se_layer:
            raise ValueError("se_layer=True is not supported: the official code references an undefined SELayer")
        tt = _TRANS_TYPES.get(str(trans_type).lower())
        if tt is None:
            raise ValueError(f"trans_type must be 'rsst' or 'LeWin', got {trans_type!r}")
        win = tuple(int(v) for v in (win_size if isinstance(win_size, (tuple, list)) else (win_size, win_size)))
        if len(win) != 2 or min(win) < 1:
            raise ValueError(f"win_size must be two positive ints, got {win_size!r}")
        depths, num_heads = [int(d) for d in depths], [int(h) for h in num_heads]
        if len(depths) != 8 or len(num_heads) != 8 or min(depths) < 1:
            raise ValueError(f"depths and num_heads need 8 entries (depths >= 1), got {depths}, {num_heads}")
        dims = [c, 2 * c, 4 * c, 8 * c, 8 * c, 4 * c, 2 * c, c]
        for d, h in zip(dims, num_heads):
            if h < 1 or d % h:
                raise ValueError(f"width {d} is not divisible by num_heads {h} (base_channel={c})")
        self.base_channel, self.win_size, self.trans_type = c, win, tt
        self.official_compat = bool(official_compat)

        enc_dpr = [float(v) for v in torch.linspace(0, drop_path_rate, sum(depths[:4]))]
        dec_dpr = enc_dpr[::-1]
        dprs = [enc_dpr[sum(depths[:k]):sum(depths[:k + 1])] for k in range(4)]
        dprs += [dec_dpr[sum(depths[4:4 + k]):sum(depths[4:5 + k])] for k in range(4)]
        for k, (d, p) in enumerate(zip(depths, dprs)):
            if len(p) != d:
                raise ValueError(f"decoder depth {d} of group {k} exceeds the encoder's blocks (official limit)")

        def group(k: int) -> TransGroup:
            return TransGroup(
                dim=dims[k], depth=depths[k], num_heads=num_heads[k], win_size=win, trans_type=tt,
                mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale, drop=drop_rate,
                attn_drop=attn_drop_rate, drop_path=dprs[k], norm_layer=norm_layer,
                token_projection=token_projection, token_mlp=token_mlp, official_compat=official_compat,
            )

        # Registration order = official state_dict order.
        self.in_proj0 = BasicConv(3 + 1, c, kernel_size=3, relu=True, stride=1)
        self.in_drop = nn.Dropout(p=drop_rate)
        self.trans_group0 = group(0)
        self.dowsample_0 = BasicConv(c, 2 * c, kernel_size=3, relu=True, stride=2)
        self.in_proj1 = SCM(2 * c)
        self.fusion1 = FAM(2 * c)
        self.trans_group1 = group(1)
        self.dowsample_1 = BasicConv(2 * c, 4 * c, kernel_size=3, relu=True, stride=2)
        self.in_proj2 = SCM(4 * c)
        self.fusion2 = FAM(4 * c)
        self.trans_group2 = group(2)
        self.dowsample_2 = BasicConv(4 * c, 8 * c, kernel_size=3, relu=True, stride=2)
        self.in_proj3 = SCM(8 * c)
        self.fusion3 = FAM(8 * c)
        self.trans_group3 = group(3)

        self.d_trans_group0 = group(4)
        self.out_proj0 = BasicConv(8 * c, 3, kernel_size=3, relu=False, stride=1)
        self.upsample_0 = BasicConv(8 * c, 4 * c, kernel_size=4, relu=True, stride=2, transpose=True)
        self.ScaleInfo1 = SEFF(15 * c, 4 * c)
        self.drop_scale1 = nn.Dropout2d(0.1)
        self.merge1 = BasicConv(8 * c, 4 * c, kernel_size=1, relu=True, stride=1)
        self.d_trans_group1 = group(5)
        self.out_proj1 = BasicConv(4 * c, 3, kernel_size=3, relu=False, stride=1)
        self.upsample_1 = BasicConv(4 * c, 2 * c, kernel_size=4, relu=True, stride=2, transpose=True)
        self.ScaleInfo2 = SEFF(15 * c, 2 * c)
        self.drop_scale2 = nn.Dropout2d(0.1)
        self.merge2 = BasicConv(4 * c, 2 * c, kernel_size=1, relu=True, stride=1)
        self.d_trans_group2 = group(6)
        self.out_proj2 = BasicConv(2 * c, 3, kernel_size=3, relu=False, stride=1)
        self.upsample_2 = BasicConv(2 * c, c, kernel_size=4, relu=True, stride=2, transpose=True)
        self.ScaleInfo3 = SEFF(15 * c, c)
        self.drop_scale3 = nn.Dropout2d(0.1)
        self.merge3 = BasicConv(2 * c, c, kernel_size=1, relu=True, stride=1)
        self.d_trans_group3 = group(7)
        self.out_proj3 = BasicConv(c, 3, kernel_size=3, relu=False, stride=1)

    def _check_input(self, x: Tensor, mask: Tensor | None) -> None:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"RSS-T expects (N, 3, H, W), got {tuple(x.shape)}")
        H, W = x.shape[2:]
        wh, ww = self.win_size
        if self.trans_type == "rsst":
            mult = (8 * wh, 8 * ww)
            sizes_ok = all(
                (h <= wh or h % wh == 0) and (w <= ww or w % ww == 0)
                for h, w in ((H >> k, W >> k) for k in range(4))
            )
        else:
            mult = (8 * wh, 8 * wh)
            sizes_ok = all(
                (h % min(h, w, wh) == 0 and w % min(h, w, wh) == 0)
                for h, w in ((H >> k, W >> k) for k in range(4))
            )
        if H % 8 or W % 8 or H < 8 or W < 8 or not sizes_ok:
            raise ValueError(
                f"RSS-T cannot process a {H}x{W} input with {wh}x{ww} windows; pad it, e.g. H to a "
                f"multiple of {mult[0]} and W of {mult[1]} (pad_centred)"
            )
        if mask is not None:
            _check_mask(mask, x.shape[0])

    def forward(self, x: Tensor, mask: Tensor | None = None) -> list[Tensor]:
        self._check_input(x, mask)
        if mask is not None and self.official_compat:
            mask = mask[0].unsqueeze(0)  # quirk 2: item 0's mask for the whole batch
        x_1 = _half(x)
        x_2 = _half(x_1)
        x_3 = _half(x_2)

        pos = row_index_map(x.shape, mask, official_compat=self.official_compat, device=x.device, dtype=x.dtype)
        pos_1 = _half(pos)
        pos_2 = _half(pos_1)
        pos_3 = _half(pos_2)

        # encoder
        e0 = self.trans_group0(self.in_drop(self.in_proj0(torch.cat([x, pos], dim=1))), mask)
        d = self.dowsample_0(e0)
        e1 = self.trans_group1(self.fusion1(d, self.in_proj1(torch.cat([x_1, pos_1], dim=1))), mask)
        d = self.dowsample_1(e1)
        e2 = self.trans_group2(self.fusion2(d, self.in_proj2(torch.cat([x_2, pos_2], dim=1))), mask)
        d = self.dowsample_2(e2)
        e3 = self.trans_group3(self.fusion3(d, self.in_proj3(torch.cat([x_3, pos_3], dim=1))), mask)

        # decoder
        outputs: list[Tensor] = []
        z = self.d_trans_group0(e3, mask)
        outputs.append(self.out_proj0(z) + x_3)
        up = self.upsample_0(z)

        s = self.ScaleInfo1(
            F.interpolate(e0, scale_factor=0.25), F.interpolate(e1, scale_factor=0.5), e2,
            F.interpolate(e3, scale_factor=2),
        )
        z = self.d_trans_group1(self.merge1(torch.cat([up, self.drop_scale1(s)], dim=1)), mask)
        outputs.append(self.out_proj1(z) + x_2)
        up = self.upsample_1(z)

        s = self.ScaleInfo2(
            F.interpolate(e0, scale_factor=0.5), e1, F.interpolate(e2, scale_factor=2),
            F.interpolate(e3, scale_factor=4),
        )
        z = self.d_trans_group2(self.merge2(torch.cat([up, self.drop_scale2(s)], dim=1)), mask)
        outputs.append(self.out_proj2(z) + x_1)
        up = self.upsample_2(z)

        s = self.ScaleInfo3(
            e0, F.interpolate(e1, scale_factor=2), F.interpolate(e2, scale_factor=4),
            F.interpolate(e3, scale_factor=8),
        )
        z = self.d_trans_group3(self.merge3(torch.cat([up, self.drop_scale3(s)], dim=1)), mask)
        outputs.append(self.out_proj3(z) + x)
        return outputs


    @property
    def pad_factor(self) -> tuple[int, int]:
        """Per-axis multiples an input is padded to: ``8 x`` the window, (32, 128) for the released
        4x16 windows (the official ``padding factor`` of ``trainer.py``), (64, 64) for 8x8 LeWin."""
        wh, ww = self.win_size
        return (8 * wh, 8 * ww) if self.trans_type == "rsst" else (8 * wh, 8 * wh)

    def restore_frame(self, x: Tensor) -> Tensor:
        """Deblur whole frames of any size as the official ``Model.inference`` does.

        Zero-pads ``x`` centred to multiples of :attr:`pad_factor` (:func:`pad_centred`), runs
        ``forward(padded, pad_mask)`` and crops the full-resolution output back to the frame. The
        network reads absolute row numbers (row-index channel), so frames must not be tiled; in
        fixed mode the mask makes the image rows count 0..h-1 whatever the padding (quirk 3).

        Args:
            x: (N, 3, h, w) RGB in [0, 1], any h, w >= 1.

        Returns:
            (N, 3, h, w) float, not clamped (the official scores are computed unclamped).
        """
        if x.dim() != 4:
            raise ValueError(f"restore_frame expects (N, 3, h, w), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        padded, mask, (top, left) = pad_centred(x, self.pad_factor)
        return self(padded, mask)[-1][..., top:top + h, left:left + w]


# ------------------------------------------------------------------------------ registry
def infer_rsst_config(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Guess constructor options from an RSS-T state dict's keys and shapes.

    ``base_channel`` (out channels of ``in_proj0.main.0.weight``), ``trans_type`` (``'rsst'``
    if blocks have ``win_pos_embed``, else ``'LeWin'``), ``win_size`` (square from the LeWin bias
    table; (4, 16) for a 217-row RSS-T table, otherwise not guessed), ``token_mlp``,
    ``token_projection``, ``depths`` and ``num_heads``. Returns ``{}`` if the keys are absent.
    """
    w = state_dict.get("in_proj0.main.0.weight")
    if w is None or len(getattr(w, "shape", ())) != 4:
        return {}
    out: dict[str, Any] = {"base_channel": int(w.shape[0])}
    rsst = any(".win_pos_embed." in k for k in state_dict)
    out["trans_type"] = "rsst" if rsst else "LeWin"
    table = state_dict.get("trans_group0.blocks.0.attn.relative_position_bias_table")
    if table is not None and len(getattr(table, "shape", ())) == 2:
        rows = int(table.shape[0])
        if rsst and rows == 7 * 31:
            out["win_size"] = (4, 16)
        elif not rsst:
            side = math.isqrt(rows)
            if side * side == rows and side % 2 == 1:
                out["win_size"] = ((side + 1) // 2, (side + 1) // 2)
    out["token_mlp"] = "ffn" if any(k.endswith(".mlp.fc1.weight") for k in state_dict) else "leff"
    out["token_projection"] = (
        "linear_concat" if any(k.endswith(".qkv.to_qkv.weight") for k in state_dict) else "linear"
    )
    names = [f"trans_group{i}" for i in range(4)] + [f"d_trans_group{i}" for i in range(4)]
    depths, heads = [], []
    for g in names:
        idx = {k.split(".")[2] for k in state_dict if k.startswith(f"{g}.blocks.")}
        t = state_dict.get(f"{g}.blocks.0.attn.relative_position_bias_table")
        if not idx or t is None:
            return out
        depths.append(len({i for i in idx if i.isdigit()}))
        heads.append(int(t.shape[1]))
    out["depths"], out["num_heads"] = tuple(depths), tuple(heads)
    return out


def rsst_primary_output(out: Any) -> Tensor:
    """The full-resolution image (N, 3, H, W): the last of RSS-T's four outputs (what the
    official ``Model.inference`` returns, ``pred_img[3]``). Raises ``TypeError`` otherwise."""
    if isinstance(out, (list, tuple)) and len(out) == 4 and isinstance(out[-1], Tensor):
        return out[-1]
    raise TypeError(f"RSS-T returns a list of 4 tensors, got {type(out).__name__}")


_PAPER = "Ji et al., Single Image Deblurring with Row-dependent Blur Magnitude, ICCV 2023 (RSS-T)"
_COMMIT = "30d88d8b66ca8c5e2b058d51d52123bd95bbee14"
_OUTPUTS = (
    "list of 4 restored images (residual + nearest-downsampled input, not clamped) at 1/8, 1/4, "
    "1/2 and full scale: [(N,3,H/8,W/8), (N,3,H/4,W/4), (N,3,H/2,W/2), (N,3,H,W)]"
)
_NOTES = (
    "forward(x, mask=None); mask (1 or N,1,H,W) marks padded pixels with 1. official_compat=False "
    "(default) fixes the official quirks (permanent window shrink, batch-shared and unshifted "
    "padding mask, row index counted on the padded image, shrunk-window bias index); "
    "official_compat=True reproduces them (see deblurkit.models.rsst)."
)

register_model(
    "rsst",
    ModelDescriptor(
        name="rsst",
        system="rsst",
        paper=_PAPER,
        official=OfficialSource(
            repo="jixiang2016/RSS-T", file="model/RSST.py", cls="RSST", commit=_COMMIT,
            note="blocks in model/layers.py; released config from test.sh/train.sh",
        ),
        input_kinds=("rgb",),
        value_range=(0.0, 1.0),
        size_multiple=128,
        outputs=_OUTPUTS,
        defaults={
            "base_channel": 32, "win_size": (4, 16), "trans_type": "rsst",
            "token_projection": "linear", "token_mlp": "leff",
        },
        primary=rsst_primary_output,
        infer_config=infer_rsst_config,
        notes="H multiple of 32 and W of 128 suffice (official padding factor (32, 128)). " + _NOTES,
    ),
    RSST,
)

register_model(
    "rsst_lewin",
    ModelDescriptor(
        name="rsst_lewin",
        system="rsst",
        paper=_PAPER,
        official=OfficialSource(
            repo="jixiang2016/RSS-T", file="model/RSST.py", cls="RSST", commit=_COMMIT,
            note="trans_type='LeWin' (official class / train.py default, 8x8 Uformer LeWin blocks)",
        ),
        input_kinds=("rgb",),
        value_range=(0.0, 1.0),
        size_multiple=64,
        outputs=_OUTPUTS,
        defaults={
            "base_channel": 32, "win_size": (8, 8), "trans_type": "LeWin",
            "token_projection": "linear", "token_mlp": "leff",
        },
        primary=rsst_primary_output,
        infer_config=infer_rsst_config,
        notes="H and W multiples of 64 suffice. " + _NOTES,
    ),
    RSST,
)
