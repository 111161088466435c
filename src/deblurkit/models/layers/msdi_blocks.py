"""Building blocks of MSDI-Net (Li et al., *Learning Degradation Representations for Image
Deblurring*, ECCV 2022).

Follows dasongli1/Learning_degradation (commit 9ba7c63a9a54d24463bc19ca2c480cd9fa834d0c):

- ``basicsr/models/archs/msdi_arch.py`` / ``msdi2_arch.py``: ``UNetConvBlock`` (-> :class:`HINBlock`),
  ``UNetUpBlock`` (-> :class:`HINUpBlock`), ``SAM`` (-> :class:`SupervisedAttention`),
  ``Up_ConvBlock`` (-> :class:`UpConvBlock`);
- ``generator.py`` (the stage-1 HINet of MSDI2E): ``UNetConvBlock`` / ``UNetUpBlock``
  (-> :class:`GeneratorConvBlock`, :class:`GeneratorUpBlock`);
- ``encoder1.py`` / ``encoder2.py``: ``ResnetBlock`` (-> :class:`EncoderResBlock`) and the
  ``spectralinstance`` layers of ``get_nonspade_norm_layer`` (-> :func:`sn_instance_conv`);
- ``normalization1.py`` ``SPADE1`` + ``architecture1.py`` ``SPADEResnetBlock1`` (the degradation
  injection of MSDI-Net, -> :class:`DegradationInjection`, :class:`InjectionResBlock`);
- ``normalization.py`` ``SPADE`` + ``architecture2.py`` ``SPADEResnetBlock`` (true SPADE, used by
  MSDI2E's generators, -> :class:`SPADE`, :class:`SPADEResBlock`).

Attribute names are the official ones, so state-dict keys (and their order) match the released
checkpoints. Spectral normalisation is ``torch.nn.utils.spectral_norm`` (the hook API the official
code uses: keys ``<m>.weight_orig``, ``<m>.weight_u``, ``<m>.weight_v``; one power iteration per
forward in training mode, none in ``eval()``).

All blocks take and return float feature maps (N, C, H, W) and assume no value range.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "sn_conv",
    "sn_instance_conv",
    "EncoderResBlock",
    "UpConvBlock",
    "HINBlock",
    "HINUpBlock",
    "GeneratorConvBlock",
    "GeneratorUpBlock",
    "SupervisedAttention",
    "DegradationInjection",
    "InjectionResBlock",
    "SPADE",
    "SPADEResBlock",
]

#: Hidden width of the SPADE / injection MLPs (hard-coded ``nhidden = 128`` officially).
SPADE_HIDDEN = 128


def sn_conv(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
    bias: bool = True,
) -> nn.Conv2d:
    """``spectral_norm(Conv2d(...))``: keys ``bias`` (if any), ``weight_orig``, ``weight_u``, ``weight_v``."""
    return nn.utils.spectral_norm(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
    )


def sn_instance_conv(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0
) -> nn.Sequential:
    """The official ``spectralinstance`` layer: ``Sequential(SN Conv2d without bias, InstanceNorm2d)``.

    ``get_nonspade_norm_layer(None, 'spectralinstance')`` wraps a conv in spectral norm, deletes
    its bias (meaningless before a normalisation) and appends ``InstanceNorm2d(C, affine=False)``
    (eps 1e-5, no running statistics). Keys: ``0.weight_orig``, ``0.weight_u``, ``0.weight_v``.
    Shapes: (N, in, H, W) -> (N, out, H', W').
    """
    return nn.Sequential(
        sn_conv(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False),
        nn.InstanceNorm2d(out_channels, affine=False),
    )


class EncoderResBlock(nn.Module):
    """Residual block of the degradation encoder (``encoder1/2.py`` ``ResnetBlock``).

    ``y = conv(pad(lrelu(conv(pad(x)))))``, ``out = lrelu(x + y)``; reflection padding 1, 3x3 convs
    with bias, LeakyReLU slope 0.2. Keys: ``conv_block.1.*``, ``conv_block.4.*``.
    Shapes: (N, C, H, W) -> (N, C, H, W); H, W >= 2 (reflection padding).
    """

    def __init__(self, dim: int, slope: float = 0.2) -> None:
        super().__init__()
        self.act = nn.LeakyReLU(slope, False)
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3),
            self.act,
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.conv_block(x))


class UpConvBlock(nn.Module):
    """One x2 step of the prior-upsampling network (``msdi_arch.py`` ``Up_ConvBlock``).

    ReflPad1 -> SN Conv3x3 (bias) -> LReLU(0.2) -> nearest x2 upsampling -> ReflPad1 ->
    SN Conv3x3 (bias) -> LReLU(0.2). No normalisation, so the spectral-norm scale matters.
    Keys: ``conv_block.1.*``, ``conv_block.5.*``.
    Shapes: (N, dim_in, H, W) -> (N, dim_out, 2H, 2W); H, W >= 2.
    """

    def __init__(self, dim_in: int, dim_out: int, slope: float = 0.2) -> None:
        super().__init__()
        act = nn.LeakyReLU(slope, False)
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            sn_conv(dim_in, dim_out, 3),
            act,
            nn.Upsample(scale_factor=2),  # nearest (legacy), as nn.Upsample's default
            nn.ReflectionPad2d(1),
            sn_conv(dim_out, dim_out, 3),
            act,
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_block(x)


def _half_instance_norm(norm: nn.InstanceNorm2d, out: Tensor) -> Tensor:
    """HINet's half instance normalisation: normalise the first channel half, keep the second."""
    first, second = torch.chunk(out, 2, dim=1)
    return torch.cat([norm(first), second], dim=1)


class HINBlock(nn.Module):
    """U-Net conv block of MSDI-Net (``msdi_arch.py`` ``UNetConvBlock``), HINet-style.

    ``conv_1`` 3x3 -> [HIN: InstanceNorm2d(out//2, affine=True) on the first channel half] ->
    LReLU -> ``conv_3`` 1x1 (no bias) -> LReLU -> ``conv_2`` 3x3 -> LReLU; plus ``identity`` 1x1
    (no bias) of the input; plus ``csff_enc(enc) + csff_dec(dec)`` (1x1, no bias; cross-stage
    feature fusion) when both are given; then, if ``downsample``, a Conv4x4 s2 (no bias).

    ``conv_4`` (1x1, no bias) is created as in the official code but NEVER used: it exists only so
    that released checkpoints load with ``strict=True``.

    Args:
        in_size, out_size: channels (``out_size`` even when ``use_hin``).
        downsample: return ``(down, full)`` with ``down`` at half resolution.
        relu_slope: LeakyReLU slope (official 0.2).
        use_csff: create ``csff_enc`` / ``csff_dec`` (only together with ``downsample``, as official).
        use_hin: use half instance normalisation.

    Forward: ``x`` (N, in_size, H, W), optional ``enc``, ``dec`` (N, out_size, H, W) ->
    (N, out_size, H, W), or ``((N, out_size, H/2, W/2), (N, out_size, H, W))`` with ``downsample``.

    Raises:
        ValueError: ``enc`` and ``dec`` given to a block without CSFF convs (the official code
            fails an ``assert`` there).
    """

    def __init__(
        self, in_size: int, out_size: int, downsample: bool, relu_slope: float,
        use_csff: bool = False, use_hin: bool = False,
    ) -> None:
        super().__init__()
        # Registration order = official state-dict order.
        self.identity = nn.Conv2d(in_size, out_size, 1, 1, bias=False)
        self.use_csff = bool(use_csff)
        self.conv_1 = nn.Conv2d(in_size, out_size, kernel_size=3, padding=1, bias=True)
        self.relu_1 = nn.LeakyReLU(relu_slope, inplace=False)
        self.conv_2 = nn.Conv2d(out_size, out_size, kernel_size=3, padding=1, bias=True)
        self.relu_2 = nn.LeakyReLU(relu_slope, inplace=False)
        self.conv_3 = nn.Conv2d(out_size, out_size, kernel_size=1, padding=0, bias=False)
        self.conv_4 = nn.Conv2d(out_size, out_size, kernel_size=1, padding=0, bias=False)  # unused
        if downsample and use_csff:
            self.csff_enc = nn.Conv2d(out_size, out_size, 1, 1, bias=False)
            self.csff_dec = nn.Conv2d(out_size, out_size, 1, 1, bias=False)
        self.use_hin = bool(use_hin)
        if use_hin:
            self.norm = nn.InstanceNorm2d(out_size // 2, affine=True)
        self.downsample = (
            nn.Conv2d(out_size, out_size, kernel_size=4, stride=2, padding=1, bias=False)
            if downsample else None
        )

    def forward(
        self, x: Tensor, enc: Tensor | None = None, dec: Tensor | None = None
    ) -> Tensor | tuple[Tensor, Tensor]:
        out = self.conv_1(x)
        if self.use_hin:
            out = _half_instance_norm(self.norm, out)
        out = self.relu_1(out)
        out = self.relu_2(self.conv_3(out))
        out = self.relu_2(self.conv_2(out))
        out = out + self.identity(x)
        if enc is not None and dec is not None:
            if not hasattr(self, "csff_enc"):
                raise ValueError("this block has no cross-stage fusion convs (use_csff=False)")
            out = out + self.csff_enc(enc) + self.csff_dec(dec)
        if self.downsample is not None:
            return self.downsample(out), out
        return out


class HINUpBlock(nn.Module):
    """Decoder step of MSDI-Net (``msdi_arch.py`` ``UNetUpBlock``): ConvTranspose2d k2 s2 (bias),
    concatenate ``[up, bridge]``, then a :class:`HINBlock` without HIN.

    Keys: ``up.*``, ``conv_block.*``. Shapes: x (N, in_size, H, W), bridge (N, out_size, 2H, 2W)
    -> (N, out_size, 2H, 2W); ``in_size == 2 * out_size``.
    """

    def __init__(self, in_size: int, out_size: int, relu_slope: float) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_size, out_size, kernel_size=2, stride=2, bias=True)
        self.conv_block = HINBlock(in_size, out_size, False, relu_slope)

    def forward(self, x: Tensor, bridge: Tensor) -> Tensor:
        return self.conv_block(torch.cat([self.up(x), bridge], dim=1))


class GeneratorConvBlock(nn.Module):
    """U-Net conv block of MSDI2E's generators (``generator.py`` ``UNetConvBlock``).

    ``conv_1`` 3x3 -> [HIN] -> LReLU -> ``conv_2`` 3x3 -> LReLU, plus ``identity`` 1x1 WITH bias;
    no ``conv_3`` / ``conv_4`` and (in MSDI2E) no cross-stage fusion; optional Conv4x4 s2 (no bias)
    downsampling returning ``(down, full)``.

    Shapes as :class:`HINBlock`. ``out_size`` even when ``use_hin``.
    """

    def __init__(self, in_size: int, out_size: int, downsample: bool, relu_slope: float,
                 use_hin: bool = False) -> None:
        super().__init__()
        self.identity = nn.Conv2d(in_size, out_size, 1, 1, 0)
        self.conv_1 = nn.Conv2d(in_size, out_size, kernel_size=3, padding=1, bias=True)
        self.relu_1 = nn.LeakyReLU(relu_slope, inplace=False)
        self.conv_2 = nn.Conv2d(out_size, out_size, kernel_size=3, padding=1, bias=True)
        self.relu_2 = nn.LeakyReLU(relu_slope, inplace=False)
        self.use_hin = bool(use_hin)
        if use_hin:
            self.norm = nn.InstanceNorm2d(out_size // 2, affine=True)
        self.downsample = (
            nn.Conv2d(out_size, out_size, kernel_size=4, stride=2, padding=1, bias=False)
            if downsample else None
        )

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        out = self.conv_1(x)
        if self.use_hin:
            out = _half_instance_norm(self.norm, out)
        out = self.relu_1(out)
        out = self.relu_2(self.conv_2(out))
        out = out + self.identity(x)
        if self.downsample is not None:
            return self.downsample(out), out
        return out


class GeneratorUpBlock(nn.Module):
    """Decoder step of MSDI2E's generators (``generator.py`` ``UNetUpBlock``): ConvTranspose2d k2 s2,
    concatenate ``[up, bridge]``, :class:`GeneratorConvBlock` without HIN. Shapes as :class:`HINUpBlock`."""

    def __init__(self, in_size: int, out_size: int, relu_slope: float) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_size, out_size, kernel_size=2, stride=2, bias=True)
        self.conv_block = GeneratorConvBlock(in_size, out_size, False, relu_slope)

    def forward(self, x: Tensor, bridge: Tensor) -> Tensor:
        return self.conv_block(torch.cat([self.up(x), bridge], dim=1))


class SupervisedAttention(nn.Module):
    """MPRNet's supervised attention module (``msdi_arch.py`` ``SAM``, key prefix ``sam12``).

    ``img = conv2(x) + x_img``; ``feat = conv1(x) * sigmoid(conv3(img)) + x`` (3x3 convs with bias).

    Forward: x (N, C, H, W), x_img (N, 3, H, W) -> ``(feat (N, C, H, W), img (N, 3, H, W))``;
    ``img`` is the stage-1 restored image (same range as ``x_img``, not clamped).
    """

    def __init__(self, n_feat: int, kernel_size: int = 3, bias: bool = True) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv2d(n_feat, n_feat, kernel_size, padding=pad, bias=bias)
        self.conv2 = nn.Conv2d(n_feat, 3, kernel_size, padding=pad, bias=bias)
        self.conv3 = nn.Conv2d(3, n_feat, kernel_size, padding=pad, bias=bias)

    def forward(self, x: Tensor, x_img: Tensor) -> tuple[Tensor, Tensor]:
        img = self.conv2(x) + x_img
        feat = self.conv1(x) * torch.sigmoid(self.conv3(img)) + x
        return feat, img


def _resize_map(seg: Tensor, like: Tensor) -> Tensor:
    """Legacy ``nearest`` resize (src = floor(dst * in / out)) of a map to ``like``'s H, W."""
    return F.interpolate(seg, size=like.shape[2:], mode="nearest")


class DegradationInjection(nn.Module):
    """Spatially adaptive degradation injection (``normalization1.py`` ``SPADE1``).

    ``map' = nearest-resize(map)`` to x's size; ``a = mlp_shared(cat([x, map'], 1))`` with
    ``mlp_shared`` = Conv1x1(C + L -> L) -> LReLU(0.2) -> Conv3x3(L -> hidden) -> LReLU ->
    Conv3x3(hidden -> hidden) -> LReLU; ``out = x * (1 + mlp_gamma(a)) + mlp_beta(a)``.
    Unlike SPADE, ``x`` is NOT normalised.

    ``param_free_norm`` (an affine-free BatchNorm2d, officially ``SynchronizedBatchNorm2d``) is
    created as in the official code but NEVER used (``normalized = x``); it exists only so that
    released checkpoints (``running_mean``, ``running_var``, ``num_batches_tracked``) load with
    ``strict=True``.

    Args:
        norm_nc: channels C of ``x``; label_nc: channels L of the degradation map;
        hidden: MLP width (official 128); kernel_size: of the 3x3 convs (official 3).

    Forward: x (N, C, H, W), seg (N, L, h, w) -> (N, C, H, W).
    """

    def __init__(self, norm_nc: int, label_nc: int, hidden: int = SPADE_HIDDEN, kernel_size: int = 3,
                 slope: float = 0.2) -> None:
        super().__init__()
        self.param_free_norm = nn.BatchNorm2d(norm_nc, affine=False)  # unused, kept for loading
        pw = kernel_size // 2
        self.mlp_shared = nn.Sequential(
            nn.Conv2d(label_nc + norm_nc, label_nc, 1, 1, 0),
            nn.LeakyReLU(slope, inplace=False),
            nn.Conv2d(label_nc, hidden, kernel_size=kernel_size, padding=pw),
            nn.LeakyReLU(slope, inplace=False),
            nn.Conv2d(hidden, hidden, kernel_size=kernel_size, padding=pw),
            nn.LeakyReLU(slope, inplace=False),
        )
        self.mlp_gamma = nn.Conv2d(hidden, norm_nc, kernel_size=kernel_size, padding=pw)
        self.mlp_beta = nn.Conv2d(hidden, norm_nc, kernel_size=kernel_size, padding=pw)

    def forward(self, x: Tensor, seg: Tensor) -> Tensor:
        actv = self.mlp_shared(torch.cat([x, _resize_map(seg, x)], dim=1))
        return x * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class InjectionResBlock(nn.Module):
    """Residual degradation-injection block of MSDI-Net (``architecture1.py`` ``SPADEResnetBlock1``
    built with ``'spectralspadesyncbatch3x3'`` and ``fin == fout``).

    ``out = x + conv_0(leaky_relu(norm_0(x, map), 0.2))`` with ``conv_0`` a spectral-normed 3x3
    conv with bias and ``norm_0`` a :class:`DegradationInjection`. (The official learned shortcut
    for ``fin != fout`` is never built by MSDI-Net and is not implemented.)

    Keys: ``conv_0.{bias,weight_orig,weight_u,weight_v}``, ``norm_0.*``.
    Forward: x (N, C, H, W), seg (N, L, h, w) -> (N, C, H, W).
    """

    def __init__(self, channels: int, label_nc: int, hidden: int = SPADE_HIDDEN) -> None:
        super().__init__()
        self.conv_0 = sn_conv(channels, channels, 3, padding=1)
        self.norm_0 = DegradationInjection(channels, label_nc, hidden)

    def forward(self, x: Tensor, seg: Tensor) -> Tensor:
        return x + self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))


class SPADE(nn.Module):
    """SPADE (``normalization.py`` ``SPADE`` with ``'spadesyncbatch3x3'``).

    ``out = BN(x) * (1 + mlp_gamma(a)) + mlp_beta(a)`` with ``a = ReLU(Conv3x3(map'))`` computed
    from the nearest-resized map alone (no concatenation with x). ``param_free_norm`` is an
    affine-free BatchNorm2d (officially ``SynchronizedBatchNorm2d``, which on one process is
    plain batch norm): batch statistics in training mode, running statistics in ``eval()``.

    Forward: x (N, C, H, W), seg (N, L, h, w) -> (N, C, H, W).
    """

    def __init__(self, norm_nc: int, label_nc: int, hidden: int = SPADE_HIDDEN, kernel_size: int = 3) -> None:
        super().__init__()
        self.param_free_norm = nn.BatchNorm2d(norm_nc, affine=False)
        pw = kernel_size // 2
        self.mlp_shared = nn.Sequential(
            nn.Conv2d(label_nc, hidden, kernel_size=kernel_size, padding=pw), nn.ReLU()
        )
        self.mlp_gamma = nn.Conv2d(hidden, norm_nc, kernel_size=kernel_size, padding=pw)
        self.mlp_beta = nn.Conv2d(hidden, norm_nc, kernel_size=kernel_size, padding=pw)

    def forward(self, x: Tensor, seg: Tensor) -> Tensor:
        normalized = self.param_free_norm(x)
        actv = self.mlp_shared(_resize_map(seg, x))
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class SPADEResBlock(nn.Module):
    """Residual SPADE block of MSDI2E's generators (``architecture2.py`` ``SPADEResnetBlock`` with
    ``'spectralspadesyncbatch3x3'`` and ``fin == fout``): ``x + conv_0(leaky_relu(SPADE(x, map), 0.2))``,
    ``conv_0`` spectral-normed 3x3 with bias.

    Keys: ``conv_0.{bias,weight_orig,weight_u,weight_v}``, ``norm_0.*``.
    Forward: x (N, C, H, W), seg (N, L, h, w) -> (N, C, H, W).
    """

    def __init__(self, channels: int, label_nc: int, hidden: int = SPADE_HIDDEN) -> None:
        super().__init__()
        self.conv_0 = sn_conv(channels, channels, 3, padding=1)
        self.norm_0 = SPADE(channels, label_nc, hidden)

    def forward(self, x: Tensor, seg: Tensor) -> Tensor:
        return x + self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
