"""MSDI-Net (Li et al., *Learning Degradation Representations for Image Deblurring*, ECCV 2022).

A degradation encoder, learned by joint reblurring/deblurring, turns a blurry image into a
degradation code; a prior-upsampling network expands the code into four multi-scale degradation
maps; a two-stage HINet-style U-Net injects the maps into its stage-1 skip connections with
spatially adaptive (SPADE-like) blocks. Re-implemented from dasongli1/Learning_degradation
(commit 9ba7c63a9a54d24463bc19ca2c480cd9fa834d0c) with identical state-dict keys, shapes and
order and the same forward computation:

==========================  ==================================  ===========================================
registry name               class                               official
==========================  ==================================  ===========================================
``msdi_net``                :class:`MSDINet`                    ``msdi_arch.py`` ``msdi_net`` (v1, released)
``msdi2_net``               :class:`MSDINet2`                   ``msdi2_arch.py`` ``msdi2_net`` (v2)
``msdi2e``                  :class:`MSDI2E`                     ``msdi2e_arch.py`` ``MSDI2E`` (v2 stage 1)
``msdi_discriminator``      :class:`MultiscaleDiscriminator`    ``discriminator.py`` ``MultiscaleDiscriminator``
``msdi_encoder``            :class:`DegradationEncoder`         ``encoder1.py`` ``ConvEncoder`` (``net_E.pth``)
``msdi_prior_upsampling``   :class:`PriorUpsampling`            ``msdi_arch.py`` ``prior_upsampling`` (``prior_upsampling.pth``)
``msdi2_encoder``           :class:`DegradationEncoder2`        ``encoder2.py`` ``ConvEncoder`` (``net2.pth``)
``msdi2_prior_upsampling``  :class:`PriorUpsampling2`           ``msdi2_arch.py`` ``prior_upsampling`` (``prior_upsampling2.pth``)
==========================  ==================================  ===========================================

Weights and files. The official ``msdi_net`` constructor ``torch.load``\\ s
``./checkpoints/net_E.pth`` and ``./checkpoints/prior_upsampling.pth`` into its frozen sub-networks
``net_prior`` / ``prior_upsampling`` (``msdi2_net``: ``net2.pth`` / ``prior_upsampling2.pth``).
Here constructors never read files. The sub-networks are ordinary (frozen) submodules, so their
weights are part of the whole network's state dict (keys ``net_prior.*``, ``prior_upsampling.*``)
and a released whole-network checkpoint (``msdi_net.pth``, ``{'params': ...}``) loads with
``strict=True`` through :func:`deblurkit.models.load_checkpoint`. To train stage 2 from the
separately released parts, build the network and load them with :func:`load_msdi_parts`::

    >>> import deblurkit.models as M
    >>> from deblurkit.models.msdi import load_msdi_parts
    >>> net = M.build("msdi_net")                                   # random U-Net, frozen parts
    >>> load_msdi_parts(net, encoder="checkpoints/net_E.pth",
    ...                 prior="checkpoints/prior_upsampling.pth")   # doctest: +SKIP
    >>> M.load_checkpoint(net, "checkpoints/msdi_net.pth")          # or: the whole release  # doctest: +SKIP

Each part also loads on its own: ``M.load_checkpoint(M.build("msdi_encoder"), "net_E.pth")``.
For v2, :func:`extract_msdi_parts` splits a trained ``msdi2e`` state dict into the
``net2.pth`` / ``prior_upsampling2.pth`` state dicts, as the official (commented-out) code does.

Unused-but-present parameters (kept so released checkpoints load strictly; they never affect an
output): every MSDI-Net U-Net block's ``conv_4`` (1x1 conv, never called) and each injection
block's ``norm_0.param_free_norm`` batch norm (never called: the injection does not normalise);
in MSDI2E, each generator's ``conv_02``.

Spectral norm is ``torch.nn.utils.spectral_norm``, as official: one power iteration per
training-mode forward, none in ``eval()``, where the stored ``weight_u`` / ``weight_v`` define the
divisor. A freshly built network starts from random vectors, so evaluate it only after loading
weights (or after some training steps); checkpoints carry converged vectors.

Extensions (official defaults keep the official network): ``wf`` (official 64) also sets the
widths of the encoder and the prior-upsampling network, which the official code hard-codes to
64 (they must agree with the U-Net for the maps to fit); ``spade_hidden`` (official 128);
``freeze_degradation`` (official: frozen).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoint import CheckpointMismatchError, diff_state_dicts, load_checkpoint, read_state_dict
from .layers.msdi_blocks import (
    SPADE_HIDDEN,
    EncoderResBlock,
    GeneratorConvBlock,
    GeneratorUpBlock,
    HINBlock,
    HINUpBlock,
    InjectionResBlock,
    SPADEResBlock,
    SupervisedAttention,
    UpConvBlock,
    sn_instance_conv,
)
from .registry import ModelDescriptor, OfficialSource, register_model

__all__ = [
    "DegradationEncoder",
    "DegradationEncoder2",
    "PriorUpsampling",
    "PriorUpsampling2",
    "MSDINet",
    "MSDINet2",
    "HINetGenerator",
    "MSDI2E",
    "NLayerDiscriminator",
    "MultiscaleDiscriminator",
    "load_msdi_parts",
    "extract_msdi_parts",
    "ENCODER_SIZE",
]

_REPO = "dasongli1/Learning_degradation"
_COMMIT = "9ba7c63a9a54d24463bc19ca2c480cd9fa834d0c"

#: The degradation encoder resizes every input to ENCODER_SIZE x ENCODER_SIZE (bilinear).
ENCODER_SIZE = 256


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_even_width(name: str, value: Any) -> int:
    v = _check_int(name, value, 2)
    if v % 2:
        raise ValueError(f"{name} must be even (half instance normalisation splits channels), got {v}")
    return v


def _check_image(x: Any, who: str, channels: int = 3) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{who} expects a tensor, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"{who} expects (N, {channels}, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{who} expects a floating-point tensor, got {x.dtype}")


def _check_multiple(x: Tensor, multiple: int, who: str, deepest_hin: bool = False) -> None:
    if x.shape[2] % multiple or x.shape[3] % multiple:
        raise ValueError(
            f"{who} needs H and W multiples of {multiple}, got {tuple(x.shape[2:])}; pad the input "
            "(deblurkit.inference.pad_to_multiple)"
        )
    if deepest_hin and x.shape[2] * x.shape[3] <= multiple * multiple:
        raise ValueError(
            f"{who} needs more than one pixel at the deepest level (1/{multiple} scale), whose "
            f"instance normalisation is undefined on 1x1; got {tuple(x.shape[2:])}, use at least "
            f"{multiple}x{2 * multiple}"
        )


# ------------------------------------------------------------------------- degradation encoder
def _encoder_stem(enc: nn.Module, x: Tensor) -> Tensor:
    """Common front of both encoder versions: resize to 256x256, layer1, conv_7x7, layer2..5."""
    if x.size(2) != ENCODER_SIZE or x.size(3) != ENCODER_SIZE:
        # official: F.interpolate(x, size=(256, 256), mode='bilinear') (align_corners=False, no antialias)
        x = F.interpolate(x, size=(ENCODER_SIZE, ENCODER_SIZE), mode="bilinear", align_corners=False)
    x = enc.layer1(x)
    x = enc.conv_7x7(enc.pad_3(enc.actvn(x)))
    for layer in (enc.layer2, enc.layer3, enc.layer4, enc.layer5):
        x = layer(enc.actvn(x))
    return x


class DegradationEncoder(nn.Module):
    """Degradation encoder of MSDI-Net v1 (``basicsr/models/archs/encoder1.py`` ``ConvEncoder``);
    the release's ``net_E.pth``.

    The input is resized to 256x256 (bilinear, ``align_corners=False``) unless it already is;
    ``layer1`` = SN Conv3x3 s2 + InstanceNorm (3 -> ndf); ``conv_7x7`` (ReflPad3, bias) after a
    LeakyReLU(0.2); ``layer2..5`` = LReLU -> SN Conv3x3 s2 + IN (ndf -> 2, 4, 8, 8 ndf);
    ``layer6`` = LReLU -> SN Conv3x3 s1 + IN; ``res_0..2`` (:class:`EncoderResBlock`); AvgPool 2;
    ``res_3``, ``res_4``; ``out`` = SN Conv3x3 (no padding) + IN on ReflPad1 (8 ndf -> 4 ndf).

    Args:
        ndf: base width (official 64, hard-coded there).

    Forward:
        x: (N, 3, H, W) float RGB in [0, 1] (the blurry image), any H, W.
        returns: the degradation code (N, 4*ndf, 4, 4) (official (N, 256, 4, 4)); unbounded.

    Raises:
        ValueError: bad ``ndf``; input not (N, 3, H, W). TypeError: not a float tensor.
    """

    version = 1

    def __init__(self, ndf: int = 64) -> None:
        super().__init__()
        ndf = _check_int("ndf", ndf, 1)
        self.ndf = ndf
        self.layer1 = sn_instance_conv(3, ndf, 3, stride=2, padding=1)
        self.layer2 = sn_instance_conv(ndf, ndf * 2, 3, stride=2, padding=1)
        self.layer3 = sn_instance_conv(ndf * 2, ndf * 4, 3, stride=2, padding=1)
        self.layer4 = sn_instance_conv(ndf * 4, ndf * 8, 3, stride=2, padding=1)
        self.layer5 = sn_instance_conv(ndf * 8, ndf * 8, 3, stride=2, padding=1)
        self.layer6 = sn_instance_conv(ndf * 8, ndf * 8, 3, stride=1, padding=1)
        for i in range(5):
            self.add_module(f"res_{i}", EncoderResBlock(ndf * 8))
        self.out = sn_instance_conv(ndf * 8, ndf * 4, 3, stride=1, padding=0)
        self.down = nn.AvgPool2d(2, 2)
        self.actvn = nn.LeakyReLU(0.2, False)
        self.pad_3 = nn.ReflectionPad2d(3)
        self.pad_1 = nn.ReflectionPad2d(1)
        self.conv_7x7 = nn.Conv2d(ndf, ndf, kernel_size=7, padding=0, bias=True)

    @property
    def code_channels(self) -> int:
        """Channels of the degradation code (4 * ndf)."""
        return 4 * self.ndf

    def forward(self, x: Tensor) -> Tensor:
        _check_image(x, type(self).__name__)
        x = _encoder_stem(self, x)
        x = self.layer6(self.actvn(x))
        x = self.res_2(self.res_1(self.res_0(x)))
        x = self.down(x)
        x = self.res_4(self.res_3(x))
        return self.out(self.pad_1(x))


class DegradationEncoder2(nn.Module):
    """Degradation encoder of MSDI-Net v2 / MSDI2E (``basicsr/models/archs/encoder2.py``
    ``ConvEncoder``); the v2 release's ``net2.pth``.

    Same front as :class:`DegradationEncoder` up to ``layer5`` (now 8 ndf -> 16 ndf, no ``layer6``);
    ``res_0..2`` at 16 ndf on 8x8 (no pooling); ``out`` = 3 x [ReflPad1, SN Conv3x3 + IN, LReLU(0.2)]
    (16 -> 32 -> 32 -> 32 ndf; keys ``out.1.0``, ``out.4.0``, ``out.7.0``).

    Args:
        ndf: base width (official 64, hard-coded there).

    Forward:
        x: (N, 3, H, W) float RGB in [0, 1], any H, W (resized to 256x256).
        returns: the degradation code (N, 32*ndf, 8, 8) (official (N, 2048, 8, 8)); unbounded,
        the output of a LeakyReLU(0.2).

    Raises:
        ValueError: bad ``ndf``; input not (N, 3, H, W). TypeError: not a float tensor.
    """

    version = 2

    def __init__(self, ndf: int = 64) -> None:
        super().__init__()
        ndf = _check_int("ndf", ndf, 1)
        self.ndf = ndf
        self.layer1 = sn_instance_conv(3, ndf, 3, stride=2, padding=1)
        self.layer2 = sn_instance_conv(ndf, ndf * 2, 3, stride=2, padding=1)
        self.layer3 = sn_instance_conv(ndf * 2, ndf * 4, 3, stride=2, padding=1)
        self.layer4 = sn_instance_conv(ndf * 4, ndf * 8, 3, stride=2, padding=1)
        self.layer5 = sn_instance_conv(ndf * 8, ndf * 16, 3, stride=2, padding=1)
        for i in range(3):
            self.add_module(f"res_{i}", EncoderResBlock(ndf * 16))
        act = nn.LeakyReLU(0.2, False)
        self.out = nn.Sequential(
            nn.ReflectionPad2d(1), sn_instance_conv(ndf * 16, ndf * 32, 3), act,
            nn.ReflectionPad2d(1), sn_instance_conv(ndf * 32, ndf * 32, 3), act,
            nn.ReflectionPad2d(1), sn_instance_conv(ndf * 32, ndf * 32, 3), act,
        )
        self.down = nn.AvgPool2d(2, 2)  # built but unused, as official (no parameters)
        self.actvn = nn.LeakyReLU(0.2, False)
        self.pad_3 = nn.ReflectionPad2d(3)
        self.pad_1 = nn.ReflectionPad2d(1)
        self.conv_7x7 = nn.Conv2d(ndf, ndf, kernel_size=7, padding=0, bias=True)

    @property
    def code_channels(self) -> int:
        """Channels of the degradation code (32 * ndf)."""
        return 32 * self.ndf

    def forward(self, x: Tensor) -> Tensor:
        _check_image(x, type(self).__name__)
        x = _encoder_stem(self, x)
        x = self.res_2(self.res_1(self.res_0(x)))
        return self.out(x)


# ----------------------------------------------------------------------------- prior upsampling
class PriorUpsampling(nn.Module):
    """Prior-upsampling network of MSDI-Net v1 (``msdi_arch.py`` ``prior_upsampling``); the
    release's ``prior_upsampling.pth``.

    ``conv_latent_init`` (4 wf -> 32 wf) then ``conv_latent_up2..6`` (32 -> 16 -> 8 -> 4 -> 2 -> 1 wf),
    each an :class:`~deblurkit.models.layers.msdi_blocks.UpConvBlock` (x2 nearest upsampling
    between two spectral-normed 3x3 convs with bias, no normalisation).

    Args:
        wf: base width (official 64).

    Forward:
        z: the degradation code (N, 4*wf, s, s) (official (N, 256, 4, 4)), s >= 2.
        returns: list of the four degradation maps, finest first: ``[(N, wf, 64s, 64s),
        (N, 2wf, 32s, 32s), (N, 4wf, 16s, 16s), (N, 8wf, 8s, 8s)]`` (s = 4: 256, 128, 64, 32);
        the two coarsest intermediate maps feed the next step and are not returned. Values >= 0
        up to the LeakyReLU's negative slope; unbounded.

    Raises:
        ValueError: bad ``wf``; ``z`` not 4-D with the expected channels.
    """

    version = 1

    def __init__(self, wf: int = 64) -> None:
        super().__init__()
        wf = _check_int("wf", wf, 1)
        self.wf = wf
        if self.version == 1:
            self.conv_latent_init = UpConvBlock(4 * wf, 32 * wf)
        self.conv_latent_up2 = UpConvBlock(32 * wf, 16 * wf)
        self.conv_latent_up3 = UpConvBlock(16 * wf, 8 * wf)
        self.conv_latent_up4 = UpConvBlock(8 * wf, 4 * wf)
        self.conv_latent_up5 = UpConvBlock(4 * wf, 2 * wf)
        self.conv_latent_up6 = UpConvBlock(2 * wf, 1 * wf)

    @property
    def code_channels(self) -> int:
        """Channels of the degradation code this network expects."""
        return (4 if self.version == 1 else 32) * self.wf

    def forward(self, z: Tensor) -> list[Tensor]:
        if not isinstance(z, Tensor) or z.dim() != 4 or z.shape[1] != self.code_channels:
            shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(
                f"{type(self).__name__} expects a code (N, {self.code_channels}, s, s), got {shape}"
            )
        latent = self.conv_latent_init(z) if self.version == 1 else z
        latent_3 = self.conv_latent_up3(self.conv_latent_up2(latent))
        latent_4 = self.conv_latent_up4(latent_3)
        latent_5 = self.conv_latent_up5(latent_4)
        latent_6 = self.conv_latent_up6(latent_5)
        return [latent_6, latent_5, latent_4, latent_3]


class PriorUpsampling2(PriorUpsampling):
    """Prior-upsampling network of MSDI-Net v2 / MSDI2E (``msdi2_arch.py`` / ``msdi2e_arch.py``
    ``prior_upsampling``); the v2 release's ``prior_upsampling2.pth``.

    As :class:`PriorUpsampling` without ``conv_latent_init``: the code (N, 32*wf, s, s)
    (official (N, 2048, 8, 8)) goes straight into ``conv_latent_up2``; the maps are
    ``[(N, wf, 32s, 32s), (N, 2wf, 16s, 16s), (N, 4wf, 8s, 8s), (N, 8wf, 4s, 4s)]``
    (s = 8: 256, 128, 64, 32).

    Raises:
        ValueError: bad ``wf``; ``z`` not 4-D with the expected channels.
    """

    version = 2


# ------------------------------------------------------------------------------------ MSDI-Net
class MSDINet(nn.Module):
    """MSDI-Net v1, the released / paper model (``basicsr/models/archs/msdi_arch.py`` ``msdi_net``,
    built as ``MSDINet-Test.yml``'s ``network_g``: ``msdi_net(hin_position_left=0, hin_position_right=4)``).

    Degradation branch (frozen as official): ``maps = prior_upsampling(net_prior(x))``
    (:class:`DegradationEncoder`, :class:`PriorUpsampling`). Stage 1: a 5-level HINet encoder
    (``down_path_1``); for each of the 4 skips, coarsest first, ``skip_conv_3(ad1_list[s](
    skip_conv_1(enc_s), map_s))`` feeds ``up_path_1`` (degradation injection, :class:`~deblurkit.
    models.layers.msdi_blocks.InjectionResBlock`); ``sam12`` (supervised attention) gives the
    stage-1 image. Stage 2: ``cat12(cat[conv_02(x), sam feature])``, a HINet encoder with cross-stage
    feature fusion (``down_path_2``), skips through ``skip_conv_2/4/5/6`` (no injection),
    ``up_path_2``, ``last(x2) + x``.

    Unused parameters kept for strict loading of released checkpoints: ``conv_4`` of every U-Net
    block (42 modules) and the batch norm ``ad1_list.*.norm_0.param_free_norm`` (its running
    statistics) inside every injection block; neither is ever applied.

    Args:
        in_chn: image channels; only 3 (the encoder takes RGB).
        wf: base width (official 64); also the encoder's ``ndf`` and the prior-upsampling ``wf``
            (64 hard-coded officially). Even.
        depth: U-Net levels; only the official 5 (4 skips, one per degradation map).
        relu_slope: LeakyReLU slope of the U-Net blocks (official 0.2).
        hin_position_left, hin_position_right: encoder levels ``i`` with
            ``left <= i <= right`` use half instance normalisation (official 0 and 4: all).
        spade_hidden: hidden width of the injection MLPs (official 128).
        freeze_degradation: set ``requires_grad=False`` on the encoder and prior-upsampling
            parameters, as official. (As official, in training mode their spectral norms still
            run one power iteration per forward and update ``weight_u`` / ``weight_v``.)

    Forward:
        x: (N, 3, H, W) float RGB in [0, 1]; H, W multiples of 16, not both 16 (the deepest
            level's instance normalisation needs more than one pixel). The encoder sees the whole
            input resized to 256x256, so tiling an image changes the result (the official test
            runs 256x256 crops, ``val.crop_size``).
        returns: list ``[out_1, out_2]``: the stage-1 image and the final image, each
            (N, 3, H, W), input plus a residual, not clamped. ``out_2`` is the restored image.

    Raises:
        ValueError: bad constructor arguments; input not (N, 3, H, W), H, W not multiples of 16,
            or 16x16 (with HIN at the deepest level, as official).
        TypeError: input not a float tensor.
    """

    version = 1
    _encoder_cls: type[nn.Module] = DegradationEncoder
    _prior_cls: type[PriorUpsampling] = PriorUpsampling

    def __init__(
        self,
        in_chn: int = 3,
        wf: int = 64,
        depth: int = 5,
        relu_slope: float = 0.2,
        hin_position_left: int = 0,
        hin_position_right: int = 4,
        spade_hidden: int = SPADE_HIDDEN,
        freeze_degradation: bool = True,
    ) -> None:
        super().__init__()
        if in_chn != 3:
            raise ValueError(f"in_chn must be 3 (the degradation encoder takes RGB), got {in_chn!r}")
        if depth != 5:
            raise ValueError(f"depth must be 5 (four skips, one per degradation map), got {depth!r}")
        wf = _check_even_width("wf", wf)
        spade_hidden = _check_int("spade_hidden", spade_hidden, 1)
        self.depth = depth
        self.wf = wf
        self._deepest_hin = hin_position_left <= depth - 1 <= hin_position_right

        # Registration order = official state-dict order.
        self.down_path_1 = nn.ModuleList()
        self.down_path_2 = nn.ModuleList()
        self.conv_01 = nn.Conv2d(in_chn, wf, 3, 1, 1)
        self.conv_02 = nn.Conv2d(in_chn, wf, 3, 1, 1)
        self.prior_upsampling = self._prior_cls(wf)
        self.net_prior = self._encoder_cls(wf)
        if freeze_degradation:
            self.prior_upsampling.requires_grad_(False)
            self.net_prior.requires_grad_(False)
        self.ad1_list = nn.ModuleList()

        prev = wf
        for i in range(depth):
            width = (2**i) * wf
            use_hin = hin_position_left <= i <= hin_position_right
            downsample = i + 1 < depth
            self.down_path_1.append(HINBlock(prev, width, downsample, relu_slope, use_hin=use_hin))
            self.down_path_2.append(
                HINBlock(prev, width, downsample, relu_slope, use_csff=downsample, use_hin=use_hin)
            )
            if downsample:  # the official 5th (deepest) block is built and then dropped
                self.ad1_list.append(InjectionResBlock(width, width, spade_hidden))
            prev = width

        self.up_path_1 = nn.ModuleList()
        self.up_path_2 = nn.ModuleList()
        for j in range(1, 7):
            setattr(self, f"skip_conv_{j}", nn.ModuleList())
        for i in reversed(range(depth - 1)):
            width = (2**i) * wf
            self.up_path_1.append(HINUpBlock(prev, width, relu_slope))
            self.up_path_2.append(HINUpBlock(prev, width, relu_slope))
            for j in range(1, 7):
                getattr(self, f"skip_conv_{j}").append(HINBlock(width, width, False, relu_slope, use_hin=True))
            prev = width
        self.sam12 = SupervisedAttention(prev)
        self.cat12 = nn.Conv2d(prev * 2, prev, 1, 1, 0)
        self.last = nn.Conv2d(prev, in_chn, kernel_size=3, stride=1, padding=1, bias=True)

    def degradation_maps(self, x: Tensor) -> list[Tensor]:
        """``prior_upsampling(net_prior(x))``: the four degradation maps, finest first:
        (N, wf, 256, 256), (N, 2wf, 128, 128), (N, 4wf, 64, 64), (N, 8wf, 32, 32) for any input
        size. ``x``: (N, 3, H, W) RGB in [0, 1]."""
        return self.prior_upsampling(self.net_prior(x))

    def forward(self, x: Tensor) -> list[Tensor]:
        _check_image(x, type(self).__name__)
        _check_multiple(x, 2 ** (self.depth - 1), type(self).__name__, self._deepest_hin)
        maps = self.degradation_maps(x)
        image = x

        # stage 1: encoder, degradation injection into the skips, decoder, supervised attention
        x1 = self.conv_01(image)
        encs: list[Tensor] = []
        for i, down in enumerate(self.down_path_1):
            if i + 1 < self.depth:
                x1, skip = down(x1)
                encs.append(skip)
            else:
                x1 = down(x1)
        decs: list[Tensor] = []
        for i, up in enumerate(self.up_path_1):
            s = len(encs) - 1 - i
            t = self.skip_conv_1[i](encs[s])
            t = self.ad1_list[s](t, maps[s])
            t = self.skip_conv_3[i](t)
            x1 = up(x1, t)
            decs.append(x1)
        sam_feature, out_1 = self.sam12(x1, image)

        # stage 2: fused input, encoder with cross-stage feature fusion, decoder
        x2 = self.cat12(torch.cat([self.conv_02(image), sam_feature], dim=1))
        blocks: list[Tensor] = []
        for i, down in enumerate(self.down_path_2):
            if i + 1 < self.depth:
                x2, skip = down(x2, encs[i], decs[-i - 1])
                blocks.append(skip)
            else:
                x2 = down(x2)
        for i, up in enumerate(self.up_path_2):
            t = self.skip_conv_2[i](blocks[-i - 1])
            t = self.skip_conv_6[i](self.skip_conv_5[i](self.skip_conv_4[i](t)))
            x2 = up(x2, t)
        out_2 = self.last(x2) + image
        return [out_1, out_2]


class MSDINet2(MSDINet):
    """MSDI-Net v2 (``basicsr/models/archs/msdi2_arch.py`` ``msdi2_net``, ``MSDINet2-Train.yml``;
    the repository's "version 2", no published numbers).

    Identical U-Net to :class:`MSDINet`; the degradation branch is the v2 one learned by
    :class:`MSDI2E`: :class:`DegradationEncoder2` (code (N, 32 wf, 8, 8)) and
    :class:`PriorUpsampling2`. The official constructor loads ``net2.pth`` and
    ``prior_upsampling2.pth`` (strictly) from hard-coded absolute paths; here use
    :func:`load_msdi_parts`. Arguments, forward, errors and unused parameters as :class:`MSDINet`.
    """

    version = 2
    _encoder_cls = DegradationEncoder2
    _prior_cls = PriorUpsampling2


# ----------------------------------------------------------------------------- MSDI2E (stage 1)
class HINetGenerator(nn.Module):
    """Single-stage HINet with SPADE degradation injection (``basicsr/models/archs/generator.py``
    ``HINet``): MSDI2E's deblurring ``generator`` and reblurring ``inverse_generator``.

    ``x1 = conv_01(img)``; 5-level encoder of :class:`~deblurkit.models.layers.msdi_blocks.
    GeneratorConvBlock` (HIN on levels ``hin_position_left..right``); for each skip, coarsest
    first, ``t = ad1_list[s](enc_s, map_s)`` (:class:`~deblurkit.models.layers.msdi_blocks.
    SPADEResBlock`, true SPADE with batch norm) feeds ``up_path_1``; ``out = last(x1) + img``.
    ``conv_02`` is built as official but never used (kept for strict loading).

    Args: as :class:`MSDINet` (``in_chn`` any positive value here, ``depth`` only 5).

    Forward:
        x: (N, in_chn, H, W) image, H, W multiples of 16 (more than one pixel at 1/16 scale when
        the deepest level uses HIN); maps: the four degradation maps of
        :meth:`MSDINet.degradation_maps` (channels wf, 2wf, 4wf, 8wf; any sizes, nearest-resized).
        returns: (N, in_chn, H, W), input plus a residual, not clamped.
    """

    def __init__(
        self,
        in_chn: int = 3,
        wf: int = 64,
        depth: int = 5,
        relu_slope: float = 0.2,
        hin_position_left: int = 0,
        hin_position_right: int = 4,
        spade_hidden: int = SPADE_HIDDEN,
    ) -> None:
        super().__init__()
        in_chn = _check_int("in_chn", in_chn, 1)
        if depth != 5:
            raise ValueError(f"depth must be 5 (four skips, one per degradation map), got {depth!r}")
        wf = _check_even_width("wf", wf)
        spade_hidden = _check_int("spade_hidden", spade_hidden, 1)
        self.depth = depth
        self.down_path_1 = nn.ModuleList()
        self.conv_01 = nn.Conv2d(in_chn, wf, 3, 1, 1)
        self.conv_02 = nn.Conv2d(in_chn, wf, 3, 1, 1)  # unused, kept for strict loading
        self.ad1_list = nn.ModuleList()
        prev = wf
        for i in range(depth):
            width = (2**i) * wf
            use_hin = hin_position_left <= i <= hin_position_right
            downsample = i + 1 < depth
            self.down_path_1.append(GeneratorConvBlock(prev, width, downsample, relu_slope, use_hin=use_hin))
            if downsample:  # the official 5th block is built and then dropped
                self.ad1_list.append(SPADEResBlock(width, width, spade_hidden))
            prev = width
        self.up_path_1 = nn.ModuleList()
        for i in reversed(range(depth - 1)):
            width = (2**i) * wf
            self.up_path_1.append(GeneratorUpBlock(prev, width, relu_slope))
            prev = width
        self.last = nn.Conv2d(prev, in_chn, kernel_size=3, stride=1, padding=1, bias=True)

    def forward(self, x: Tensor, maps: list[Tensor]) -> Tensor:
        if len(maps) != len(self.ad1_list):
            raise ValueError(f"expected {len(self.ad1_list)} degradation maps, got {len(maps)}")
        image = x
        x1 = self.conv_01(image)
        encs: list[Tensor] = []
        for i, down in enumerate(self.down_path_1):
            if i + 1 < self.depth:
                x1, skip = down(x1)
                encs.append(skip)
            else:
                x1 = down(x1)
        for i, up in enumerate(self.up_path_1):
            s = len(encs) - 1 - i
            x1 = up(x1, self.ad1_list[s](encs[s], maps[s]))
        return self.last(x1) + image


class MSDI2E(nn.Module):
    """Stage-1 joint reblurring/deblurring network of MSDI-Net v2 (``basicsr/models/archs/
    msdi2e_arch.py`` ``MSDI2E``, ``MSDINet2e-Train.yml``), trained with :class:`MultiscaleDiscriminator`.

    ``maps = prior_upsampling(net_prior(x))`` from the BLURRY image (:class:`DegradationEncoder2`,
    :class:`PriorUpsampling2`, all trainable); ``out = generator(x, maps)`` (deblurring, trained
    with 10 x L1 to the sharp image); ``out_inverse = inverse_generator(y, maps)`` (reblurring the
    SHARP image, trained with hinge GAN + feature matching + 30 x VGG towards the blurry one).
    After training, :func:`extract_msdi_parts` gives the v2 encoder / prior-upsampling weights.

    In ``eval()`` the generators' SPADE batch norms use their running statistics (the official
    code only runs MSDI2E in training mode, with batch statistics).

    Args: as :class:`MSDINet` (without ``freeze_degradation``). The official constructor accepts
        and IGNORES all its arguments (it always builds the defaults); the official configuration
        passes the defaults, so honouring them changes nothing there.

    Forward:
        x: blurry (N, 3, H, W) float RGB in [0, 1]; y: sharp, same shape; H, W multiples of 16,
            not both 16 (as :class:`MSDINet`).
        returns: tuple ``(out, out_inverse)``: deblurred ``x`` and reblurred ``y``, each
        (N, 3, H, W), input plus a residual, not clamped.

    Raises:
        ValueError: bad constructor arguments; inputs not (N, 3, H, W) of one shape, or H, W
        not multiples of 16 or 16x16. TypeError: inputs not float tensors.
    """

    def __init__(
        self,
        in_chn: int = 3,
        wf: int = 64,
        depth: int = 5,
        relu_slope: float = 0.2,
        hin_position_left: int = 0,
        hin_position_right: int = 4,
        spade_hidden: int = SPADE_HIDDEN,
    ) -> None:
        super().__init__()
        if in_chn != 3:
            raise ValueError(f"in_chn must be 3 (the degradation encoder takes RGB), got {in_chn!r}")
        wf = _check_even_width("wf", wf)
        self.depth = depth
        self._deepest_hin = hin_position_left <= depth - 1 <= hin_position_right
        self.prior_upsampling = PriorUpsampling2(wf)
        self.net_prior = DegradationEncoder2(wf)
        kw = dict(in_chn=in_chn, wf=wf, depth=depth, relu_slope=relu_slope,
                  hin_position_left=hin_position_left, hin_position_right=hin_position_right,
                  spade_hidden=spade_hidden)
        self.inverse_generator = HINetGenerator(**kw)
        self.generator = HINetGenerator(**kw)

    def degradation_maps(self, x: Tensor) -> list[Tensor]:
        """The four degradation maps of the blurry ``x``, as :meth:`MSDINet.degradation_maps`."""
        return self.prior_upsampling(self.net_prior(x))

    def forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        who = type(self).__name__
        _check_image(x, who)
        _check_image(y, who)
        if x.shape != y.shape:
            raise ValueError(f"{who}: blurry x {tuple(x.shape)} and sharp y {tuple(y.shape)} differ in shape")
        _check_multiple(x, 2 ** (self.depth - 1), who, self._deepest_hin)
        maps = self.degradation_maps(x)
        out_inverse = self.inverse_generator(y, maps)
        out = self.generator(x, maps)
        return out, out_inverse


# ------------------------------------------------------------------------------- discriminator
class NLayerDiscriminator(nn.Module):
    """PatchGAN discriminator of pix2pixHD/SPADE (``basicsr/models/archs/discriminator.py``
    ``NLayerDiscriminator`` with the hard-coded options: 4 layers, ``spectralinstance``).

    ``model0`` = Conv4x4 s2 p2 (bias) + LReLU(0.2); ``model1..3`` = SN Conv4x4 p2 (no bias,
    strides 2, 2, 1; widths 2, 4, 8 ndf capped at 512) + InstanceNorm + LReLU(0.2);
    ``model4`` = Conv4x4 s1 p2 (bias) -> 1 channel.

    Forward:
        input: (N, input_nc, H, W) (official: 6 = cat([condition RGB, RGB], 1), values in [0, 1]).
        returns: list of the 5 outputs model0..model4 (features for feature matching, then the
        patch logits): channels ndf, 2ndf, 4ndf, 8ndf, 1; sizes H -> H//2+1 -> ... (64: 33, 17,
        9, 10, 11).
    """

    def __init__(self, input_nc: int = 6, ndf: int = 64) -> None:
        super().__init__()
        input_nc = _check_int("input_nc", input_nc, 1)
        nf = _check_int("ndf", ndf, 1)
        kw, padw = 4, 2
        layers: list[list[nn.Module]] = [
            [nn.Conv2d(input_nc, nf, kernel_size=kw, stride=2, padding=padw), nn.LeakyReLU(0.2, False)]
        ]
        for n in range(1, 4):
            nf_prev, nf = nf, min(nf * 2, 512)
            stride = 1 if n == 3 else 2
            layers.append([sn_instance_conv(nf_prev, nf, kw, stride=stride, padding=padw), nn.LeakyReLU(0.2, False)])
        layers.append([nn.Conv2d(nf, 1, kernel_size=kw, stride=1, padding=padw)])
        for n, seq in enumerate(layers):
            self.add_module(f"model{n}", nn.Sequential(*seq))

    def forward(self, input: Tensor) -> list[Tensor]:
        results: list[Tensor] = []
        h = input
        for submodel in self.children():
            h = submodel(h)
            results.append(h)
        return results


class MultiscaleDiscriminator(nn.Module):
    """Two-scale discriminator of MSDI2E's training (``basicsr/models/archs/discriminator.py``
    ``MultiscaleDiscriminator``; built with no arguments in ``ImageRestorationModel2``).

    Children ``discriminator_0``, ``discriminator_1`` (:class:`NLayerDiscriminator`); the input
    of each next one is :meth:`downsample`\\ d. The training code feeds
    ``cat([cat([sharp, reblurred], 1), cat([sharp, blurry], 1)], 0)`` (fake pairs first: the sharp
    image conditions, the reblurred image is fake and the real blurry image real) and splits
    every output at N/2.

    Args:
        input_nc: input channels (official 6); ndf: base width (official 64);
        num_D: number of scales (official 2).

    Forward:
        input: (N, input_nc, H, W), values in [0, 1].
        returns: ``[discriminator_0(input), discriminator_1(downsample(input)), ...]``, each a
        list of 5 tensors (see :class:`NLayerDiscriminator`).

    Raises:
        ValueError: bad constructor arguments; input not (N, input_nc, H, W).
    """

    def __init__(self, input_nc: int = 6, ndf: int = 64, num_D: int = 2) -> None:
        super().__init__()
        num_D = _check_int("num_D", num_D, 1)
        self.input_nc = _check_int("input_nc", input_nc, 1)
        for i in range(num_D):
            self.add_module(f"discriminator_{i}", NLayerDiscriminator(input_nc, ndf))

    @staticmethod
    def downsample(input: Tensor) -> Tensor:
        """3x3 average pooling, stride 2, padding 1, padded cells not counted:
        (N, C, H, W) -> (N, C, ceil(H/2), ceil(W/2))."""
        return F.avg_pool2d(input, kernel_size=3, stride=2, padding=[1, 1], count_include_pad=False)

    def forward(self, input: Tensor) -> list[list[Tensor]]:
        _check_image(input, type(self).__name__, channels=self.input_nc)
        result: list[list[Tensor]] = []
        children = list(self.children())
        for i, disc in enumerate(children):
            result.append(disc(input))
            if i + 1 < len(children):
                input = self.downsample(input)
        return result


# ------------------------------------------------------------------------------ parts and files
_PART_ATTRS = {"encoder": "net_prior", "prior": "prior_upsampling"}


def load_msdi_parts(
    net: nn.Module,
    *,
    encoder: str | os.PathLike | None = None,
    prior: str | os.PathLike | None = None,
    strict: bool | None = None,
    map_location: Any = "cpu",
) -> nn.Module:
    """Load separately released degradation parts into an MSDI network (in place); return ``net``.

    ``encoder`` (``net_E.pth`` for v1, ``net2.pth`` for v2) goes into ``net.net_prior`` and
    ``prior`` (``prior_upsampling.pth`` / ``prior_upsampling2.pth``) into ``net.prior_upsampling``,
    as the official constructors do (``msdi_arch.py`` / ``msdi2_arch.py`` ``__init__``). Files are
    read with :func:`deblurkit.models.read_state_dict` (wrappers and ``module.`` prefixes undone).
    Freezing (``requires_grad``) is left as built.

    Args:
        net: :class:`MSDINet`, :class:`MSDINet2` or :class:`MSDI2E` (anything with ``net_prior``
            and ``prior_upsampling`` submodules).
        encoder, prior: checkpoint paths; ``None`` skips that part.
        strict: ``None`` (default) follows the official loaders: non-strict for v1 parts
            (``msdi_net`` loads both files with ``strict=False``), strict for v2 parts. ``False``
            skips missing / extra keys with a warning, but a file sharing no key with the part
            still raises.
        map_location: as in :func:`deblurkit.models.read_state_dict`.

    Raises:
        TypeError: ``net`` has no ``net_prior`` / ``prior_upsampling``.
        FileNotFoundError, CheckpointReadError: unreadable file (named in the message).
        CheckpointMismatchError: wrong shapes, keys missing/unexpected with ``strict``, or no key
            in common; nothing of that part is loaded then.
    """
    for key, path in (("encoder", encoder), ("prior", prior)):
        if path is None:
            continue
        attr = _PART_ATTRS[key]
        part = getattr(net, attr, None)
        if not isinstance(part, nn.Module):
            raise TypeError(f"{type(net).__name__} has no '{attr}' submodule to load {key}={str(path)!r} into")
        version = getattr(part, "version", 1)
        part_strict = (version != 1) if strict is None else bool(strict)
        if not part_strict:
            sd = read_state_dict(path, map_location)
            d = diff_state_dicts(part.state_dict(), sd)
            if d.matched == 0 and not d.wrong_shape:
                raise CheckpointMismatchError(
                    f"checkpoint {str(path)!r} shares no key with {type(part).__name__} ({attr}); "
                    f"is it the right file? first keys: {list(sd)[:5]}",
                    path=str(path), missing=d.missing, unexpected=d.unexpected,
                )
        load_checkpoint(part, path, strict=part_strict, map_location=map_location)
    return net


def extract_msdi_parts(state_dict: Mapping[str, Tensor] | nn.Module) -> dict[str, "OrderedDict[str, Tensor]"]:
    """Split the degradation parts out of a whole-network state dict (or module).

    Returns ``{"encoder": ..., "prior": ...}``: the ``net_prior.*`` and ``prior_upsampling.*``
    entries with the prefix removed, in order; e.g. from a trained :class:`MSDI2E` these are the
    ``net2.pth`` / ``prior_upsampling2.pth`` state dicts :class:`MSDINet2` needs (the official
    ``msdi2_arch.py`` has this split commented out). Save them with ``torch.save`` or
    :func:`deblurkit.models.save_safetensors`.

    Raises:
        KeyError: no ``net_prior.`` or no ``prior_upsampling.`` key.
    """
    sd = state_dict.state_dict() if isinstance(state_dict, nn.Module) else state_dict
    out: dict[str, OrderedDict[str, Tensor]] = {}
    for key, attr in _PART_ATTRS.items():
        pre = attr + "."
        part = OrderedDict((k[len(pre):], v) for k, v in sd.items() if k.startswith(pre))
        if not part:
            raise KeyError(f"no '{pre}*' keys in the state dict (first keys: {list(sd)[:5]})")
        out[key] = part
    return out


# ------------------------------------------------------------------------------- architecture
def _shape(sd: Mapping[str, Any], key: str) -> tuple[int, ...] | None:
    v = sd.get(key)
    return tuple(v.shape) if v is not None and hasattr(v, "shape") else None


def _hin_range(sd: Mapping[str, Any], prefix: str) -> dict[str, int]:
    levels = [i for i in range(5) if f"{prefix}{i}.norm.weight" in sd]
    if not levels:
        return {"hin_position_left": 5, "hin_position_right": -1}
    return {"hin_position_left": min(levels), "hin_position_right": max(levels)}


def _infer_unet(prefix: str):
    def infer(sd: Mapping[str, Any]) -> dict[str, Any]:
        s = _shape(sd, f"{prefix}conv_01.weight")
        if s is None or len(s) != 4:
            return {}
        cfg: dict[str, Any] = {"wf": int(s[0]), **_hin_range(sd, f"{prefix}down_path_1.")}
        h = _shape(sd, f"{prefix}ad1_list.0.norm_0.mlp_gamma.weight")
        if h is not None and len(h) == 4:
            cfg["spade_hidden"] = int(h[1])
        return cfg

    return infer


def _infer_encoder(sd: Mapping[str, Any]) -> dict[str, Any]:
    s = _shape(sd, "layer1.0.weight_orig")
    return {"ndf": int(s[0])} if s is not None and len(s) == 4 else {}


def _infer_prior(sd: Mapping[str, Any]) -> dict[str, Any]:
    s = _shape(sd, "conv_latent_up6.conv_block.5.weight_orig")
    return {"wf": int(s[0])} if s is not None and len(s) == 4 else {}


def _infer_discriminator(sd: Mapping[str, Any]) -> dict[str, Any]:
    s = _shape(sd, "discriminator_0.model0.0.weight")
    if s is None or len(s) != 4:
        return {}
    heads = {k.split(".", 1)[0] for k in sd if k.startswith("discriminator_")}
    return {"ndf": int(s[0]), "input_nc": int(s[1]), "num_D": len(heads)}


def _no_image(name: str, what: str):
    def primary(out: Any) -> Tensor:
        raise TypeError(f"{name} returns {what}, not a restored image")

    return primary


_PAPER = "Li et al., Learning Degradation Representations for Image Deblurring, ECCV 2022 (MSDI-Net)"
_NET_OUTPUTS = (
    "list [stage-1 image, final image], each (N,3,H,W): input + residual, not clamped; "
    "the final image is the restored one"
)
_NET_NOTES = (
    "Degradation encoder and prior-upsampling net are frozen submodules (keys net_prior.*, "
    "prior_upsampling.*); load_msdi_parts loads the separately released files. The encoder sees the "
    "whole input resized to 256x256, so tiled inference differs from whole-image inference; the "
    "official test runs 256x256 crops (val.crop_size 256, overlaps averaged). Unused parameters kept "
    "for strict loading: UNetConvBlock.conv_4 and the injection blocks' param_free_norm."
)


def _official(file: str, cls: str, note: str = "") -> OfficialSource:
    return OfficialSource(repo=_REPO, file=file, cls=cls, commit=_COMMIT, note=note)


_HIN = {"hin_position_left": 0, "hin_position_right": 4}

register_model(
    "msdi_net",
    ModelDescriptor(
        name="msdi_net", system="msdi", paper=_PAPER,
        official=_official("basicsr/models/archs/msdi_arch.py", "msdi_net", "built by MSDINet-Test.yml"),
        input_kinds=("rgb",), value_range=(0.0, 1.0), size_multiple=16, outputs=_NET_OUTPUTS,
        defaults=dict(_HIN), infer_config=_infer_unet(""),
        notes="MSDI-Net v1 (the released msdi_net.pth, {'params': ...}). " + _NET_NOTES,
    ),
    MSDINet,
)
register_model(
    "msdi2_net",
    ModelDescriptor(
        name="msdi2_net", system="msdi", paper=_PAPER,
        official=_official("basicsr/models/archs/msdi2_arch.py", "msdi2_net", "built by MSDINet2-Train.yml"),
        input_kinds=("rgb",), value_range=(0.0, 1.0), size_multiple=16, outputs=_NET_OUTPUTS,
        defaults=dict(_HIN), infer_config=_infer_unet(""),
        notes="MSDI-Net v2 (degradation parts net2.pth / prior_upsampling2.pth from msdi2e). " + _NET_NOTES,
    ),
    MSDINet2,
)
register_model(
    "msdi2e",
    ModelDescriptor(
        name="msdi2e", system="msdi", paper=_PAPER,
        official=_official("basicsr/models/archs/msdi2e_arch.py", "MSDI2E", "built by MSDINet2e-Train.yml"),
        input_kinds=("rgb", "rgb"), value_range=(0.0, 1.0), size_multiple=16,
        outputs="tuple (deblurred x, reblurred y), each (N,3,H,W): input + residual, not clamped",
        defaults=dict(_HIN), primary=lambda out: out[0], infer_config=_infer_unet("generator."),
        notes=(
            "v2 stage 1: forward(blurry x, sharp y); both generators use the degradation maps of x. "
            "Trained with msdi_discriminator; extract_msdi_parts gives msdi2_net's degradation parts. "
            "Unused parameters kept for strict loading: generator/inverse_generator.conv_02."
        ),
    ),
    MSDI2E,
)
register_model(
    "msdi_discriminator",
    ModelDescriptor(
        name="msdi_discriminator", system="msdi", paper=_PAPER,
        official=_official("basicsr/models/archs/discriminator.py", "MultiscaleDiscriminator",
                           "built in image_restoration2_model.py (ImageRestorationModel2)"),
        input_kinds=("rgb_pair",), value_range=(0.0, 1.0), size_multiple=1,
        outputs=(
            "list of 2 lists (full and half scale) of 5 tensors: 4 feature maps and the patch logits; "
            "input (N,6,H,W) = cat([condition RGB, RGB], 1)"
        ),
        primary=_no_image("msdi_discriminator", "patch logits and features"),
        infer_config=_infer_discriminator,
        notes="Hinge-GAN discriminator of msdi2e's training; calls discriminator_0 / downsample / discriminator_1.",
    ),
    MultiscaleDiscriminator,
)
register_model(
    "msdi_encoder",
    ModelDescriptor(
        name="msdi_encoder", system="msdi", paper=_PAPER,
        official=_official("basicsr/models/archs/encoder1.py", "ConvEncoder", "released as net_E.pth"),
        input_kinds=("rgb",), value_range=(0.0, 1.0), size_multiple=1,
        outputs="degradation code (N,256,4,4) (4*ndf channels); any input size (resized to 256x256)",
        primary=_no_image("msdi_encoder", "a degradation code"), infer_config=_infer_encoder,
        notes="msdi_net's frozen net_prior; the official msdi_net loads net_E.pth into it with strict=False.",
    ),
    DegradationEncoder,
)
register_model(
    "msdi_prior_upsampling",
    ModelDescriptor(
        name="msdi_prior_upsampling", system="msdi", paper=_PAPER,
        official=_official("basicsr/models/archs/msdi_arch.py", "prior_upsampling", "released as prior_upsampling.pth"),
        input_kinds=("degradation_code",), value_range=(0.0, 1.0), size_multiple=1,
        outputs="list of 4 degradation maps [(N,64,256,256), (N,128,128,128), (N,256,64,64), (N,512,32,32)]",
        primary=_no_image("msdi_prior_upsampling", "degradation maps"), infer_config=_infer_prior,
        notes="msdi_net's frozen prior_upsampling; input the (N,256,4,4) code of msdi_encoder.",
    ),
    PriorUpsampling,
)
register_model(
    "msdi2_encoder",
    ModelDescriptor(
        name="msdi2_encoder", system="msdi", paper=_PAPER,
        official=_official("basicsr/models/archs/encoder2.py", "ConvEncoder", "released as net2.pth (net_Encoder2)"),
        input_kinds=("rgb",), value_range=(0.0, 1.0), size_multiple=1,
        outputs="degradation code (N,2048,8,8) (32*ndf channels); any input size (resized to 256x256)",
        primary=_no_image("msdi2_encoder", "a degradation code"), infer_config=_infer_encoder,
        notes="msdi2_net's frozen net_prior and msdi2e's trainable one; msdi2_net loads net2.pth strictly.",
    ),
    DegradationEncoder2,
)
register_model(
    "msdi2_prior_upsampling",
    ModelDescriptor(
        name="msdi2_prior_upsampling", system="msdi", paper=_PAPER,
        official=_official("basicsr/models/archs/msdi2_arch.py", "prior_upsampling", "released as prior_upsampling2.pth"),
        input_kinds=("degradation_code",), value_range=(0.0, 1.0), size_multiple=1,
        outputs="list of 4 degradation maps [(N,64,256,256), (N,128,128,128), (N,256,64,64), (N,512,32,32)]",
        primary=_no_image("msdi2_prior_upsampling", "degradation maps"), infer_config=_infer_prior,
        notes="msdi2_net's / msdi2e's prior_upsampling; input the (N,2048,8,8) code of msdi2_encoder.",
    ),
    PriorUpsampling2,
)
