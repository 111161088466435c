"""MIMO-UNet and MIMO-UNet+ (Cho et al., *Rethinking Coarse-to-Fine Approach in Single Image
Deblurring*, ICCV 2021): the supervised deblurrer / generator of Blur2Blur.

Blur2Blur (Pham et al., CVPR 2024) uses MIMO-UNet as its blur-conversion generator ``netG``
(``--netG mimounet``, or ``mimounetp`` for MIMO-UNet+), built by ``models/networks.py`` ``define_G``
and initialised by ``init_net(..., 'normal', 0.02)``. This module re-implements, with identical
state-dict keys/shapes/order and the same forward computation:

- VinAIResearch/Blur2Blur ``models/mimo/MIMOUNet.py`` and ``models/mimo/layers.py``
  (commit ee12450c300e1eed9752b4e8a1a487b2a69f833e), ``MIMOUNet`` / ``MIMOUNetPlus``;
- the identical original in chosj95/MIMO-UNet ``models/MIMOUNet.py`` / ``models/layers.py``.

Registered names: ``mimo_unet`` (``num_res=8``) and ``mimo_unet_plus`` (``num_res=20``, plus two
``Dropout2d(0.1)`` on the fused skip features, active in training only). Both take an RGB batch
(N, 3, H, W) in [0, 1] with H, W multiples of 4 and return a LIST of three restored images,
each the input at that scale plus a predicted residual, not clamped:
``[(N,3,H/4,W/4), (N,3,H/2,W/2), (N,3,H,W)]``. Downsampling of the input and resampling of
features use ``F.interpolate(scale_factor=0.5 / 2)`` with the default ``nearest`` mode, as official.

Extension (official defaults keep the exact official keys): ``base_channel`` (official hard-codes
32) to train narrower networks on a CPU, and ``init`` to apply Blur2Blur's initialisation.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers.mimo import AFF, FAM, SCM, BasicConv, ResGroup
from .registry import ModelDescriptor, OfficialSource, register_model

__all__ = ["MIMOUNet", "MIMOUNetPlus", "init_weights", "infer_mimo_config"]


def init_weights(net: nn.Module, init_type: str = "normal", gain: float = 0.02) -> nn.Module:
    """Initialise ``net`` in place as Blur2Blur's ``models/networks.py`` ``init_weights`` does.

    Conv / transposed-conv / linear weights: ``normal`` ~ N(0, gain); ``xavier`` xavier-normal with
    ``gain``; ``kaiming`` kaiming-normal (fan_in, a=0); ``orthogonal`` with ``gain``. Their biases
    are set to 0. BatchNorm2d: weight ~ N(1, gain), bias 0. Other modules are left alone.

    Returns ``net``. Raises ``ValueError`` for an unknown ``init_type``.
    """
    if init_type not in ("normal", "xavier", "kaiming", "orthogonal"):
        raise ValueError(
            f"unknown init_type {init_type!r}; use normal, xavier, kaiming or orthogonal"
        )
    for m in net.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)):
            if init_type == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return net


def _half(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=0.5)


def _double(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2)


class MIMOUNet(nn.Module):
    """MIMO-UNet: multi-input multi-output U-Net with three scales.

    Args:
        num_res: residual blocks per encoder/decoder group (official 8).
        base_channel: feature width of the full-resolution level; levels use 1x, 2x, 4x.
            Official 32 (hard-coded there); any other value changes the shapes, not the keys.
        init: ``"default"`` keeps PyTorch's default initialisation (what the MIMO-UNet release
            trained from); ``"normal"`` (also ``"xavier"``, ``"kaiming"``, ``"orthogonal"``)
            applies :func:`init_weights` with ``init_gain`` as Blur2Blur's ``init_net`` does.
        init_gain: gain for :func:`init_weights` (Blur2Blur: 0.02).

    Forward:
        x: (N, 3, H, W) float RGB in [0, 1]; H and W multiples of 4.
        returns: list ``[out_4, out_2, out]`` of (N, 3, H/4, W/4), (N, 3, H/2, W/2),
        (N, 3, H, W): each the nearest-downsampled input plus a residual; no clamp.

    Raises:
        ValueError: bad constructor arguments; input not 4-D with 3 channels, or H/W not
            multiples of 4 (the official network fails there with a size mismatch).

    Follows ``MIMOUNet`` in VinAIResearch/Blur2Blur ``models/mimo/MIMOUNet.py`` (chosj95/MIMO-UNet).
    """

    def __init__(
        self,
        num_res: int = 8,
        base_channel: int = 32,
        init: str = "default",
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        if int(num_res) != num_res or num_res < 0:
            raise ValueError(f"num_res must be a non-negative integer, got {num_res!r}")
        if int(base_channel) != base_channel or base_channel < 2:
            raise ValueError(f"base_channel must be an integer >= 2, got {base_channel!r}")
        num_res, c = int(num_res), int(base_channel)
        self.num_res, self.base_channel = num_res, c

        # Registration order = official state_dict order.
        self.Encoder = nn.ModuleList([ResGroup(c, num_res), ResGroup(2 * c, num_res), ResGroup(4 * c, num_res)])
        self.feat_extract = nn.ModuleList(
            [
                BasicConv(3, c, 3, stride=1, relu=True),
                BasicConv(c, 2 * c, 3, stride=2, relu=True),
                BasicConv(2 * c, 4 * c, 3, stride=2, relu=True),
                BasicConv(4 * c, 2 * c, 4, stride=2, relu=True, transpose=True),
                BasicConv(2 * c, c, 4, stride=2, relu=True, transpose=True),
                BasicConv(c, 3, 3, stride=1, relu=False),
            ]
        )
        self.Decoder = nn.ModuleList([ResGroup(4 * c, num_res), ResGroup(2 * c, num_res), ResGroup(c, num_res)])
        self.Convs = nn.ModuleList(
            [BasicConv(4 * c, 2 * c, 1, stride=1, relu=True), BasicConv(2 * c, c, 1, stride=1, relu=True)]
        )
        self.ConvsOut = nn.ModuleList(
            [BasicConv(4 * c, 3, 3, stride=1, relu=False), BasicConv(2 * c, 3, 3, stride=1, relu=False)]
        )
        self.AFFs = nn.ModuleList([AFF(7 * c, c), AFF(7 * c, 2 * c)])
        self.FAM1 = FAM(4 * c)
        self.SCM1 = SCM(4 * c)
        self.FAM2 = FAM(2 * c)
        self.SCM2 = SCM(2 * c)

        if init != "default":
            init_weights(self, init, init_gain)

    def _regularise_skips(self, res1: Tensor, res2: Tensor) -> tuple[Tensor, Tensor]:
        """Hook on the fused skip features (identity here; dropout in MIMO-UNet+)."""
        return res1, res2

    def forward(self, x: Tensor) -> list[Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"MIMO-UNet expects (N, 3, H, W), got {tuple(x.shape)}")
        if x.shape[2] % 4 or x.shape[3] % 4:
            raise ValueError(
                f"MIMO-UNet needs H and W multiples of 4, got {tuple(x.shape[2:])}; pad the input"
            )
        x_2 = _half(x)
        x_4 = _half(x_2)
        z2 = self.SCM2(x_2)
        z4 = self.SCM1(x_4)

        # encoder
        res1 = self.Encoder[0](self.feat_extract[0](x))
        z = self.FAM2(self.feat_extract[1](res1), z2)
        res2 = self.Encoder[1](z)
        z = self.FAM1(self.feat_extract[2](res2), z4)
        z = self.Encoder[2](z)

        # asymmetric feature fusion of the three levels into the two skip connections
        z12 = _half(res1)
        z21 = _double(res2)
        z42 = _double(z)
        z41 = _double(z42)
        res2 = self.AFFs[1](z12, res2, z42)
        res1 = self.AFFs[0](res1, z21, z41)
        res1, res2 = self._regularise_skips(res1, res2)

        # decoder, one restored image per level
        z = self.Decoder[0](z)
        out_4 = self.ConvsOut[0](z) + x_4
        z = self.feat_extract[3](z)

        z = self.Convs[0](torch.cat([z, res2], dim=1))
        z = self.Decoder[1](z)
        out_2 = self.ConvsOut[1](z) + x_2
        z = self.feat_extract[4](z)

        z = self.Convs[1](torch.cat([z, res1], dim=1))
        z = self.Decoder[2](z)
        out = self.feat_extract[5](z) + x
        return [out_4, out_2, out]


class MIMOUNetPlus(MIMOUNet):
    """MIMO-UNet+: :class:`MIMOUNet` with ``num_res=20`` and ``Dropout2d(dropout)`` on both fused
    skip features (``drop1`` on the full-resolution one, ``drop2`` on the half-resolution one;
    parameter-free, so keys equal MIMOUNet's at the same ``num_res``). Dropout acts only in
    training mode; in ``eval()`` the output equals MIMOUNet's.

    Args and forward as :class:`MIMOUNet`; ``dropout``: channel-dropout probability (official 0.1).

    Follows ``MIMOUNetPlus`` in VinAIResearch/Blur2Blur ``models/mimo/MIMOUNet.py``.
    """

    def __init__(
        self,
        num_res: int = 20,
        base_channel: int = 32,
        init: str = "default",
        init_gain: float = 0.02,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(num_res=num_res, base_channel=base_channel, init=init, init_gain=init_gain)
        self.drop1 = nn.Dropout2d(dropout)
        self.drop2 = nn.Dropout2d(dropout)

    def _regularise_skips(self, res1: Tensor, res2: Tensor) -> tuple[Tensor, Tensor]:
        res2 = self.drop2(res2)
        res1 = self.drop1(res1)
        return res1, res2


def infer_mimo_config(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Guess ``base_channel`` and ``num_res`` from a MIMO-UNet state dict.

    ``base_channel`` = output channels of ``feat_extract.0.main.0.weight``; ``num_res`` = number of
    distinct ``Encoder.0.layers.<i>`` blocks. Returns ``{}`` if the keys are absent.
    """
    w = state_dict.get("feat_extract.0.main.0.weight")
    if w is None or len(getattr(w, "shape", ())) != 4:
        return {}
    prefix = "Encoder.0.layers."
    blocks = {k[len(prefix):].split(".", 1)[0] for k in state_dict if k.startswith(prefix)}
    num_res = len({b for b in blocks if b.isdigit()})
    return {"base_channel": int(w.shape[0]), "num_res": num_res}


_PAPER = (
    "Cho et al., Rethinking Coarse-to-Fine Approach in Single Image Deblurring, ICCV 2021 "
    "(generator of Pham et al., Blur2Blur, CVPR 2024)"
)
_OUTPUTS = (
    "list of 3 restored images (input + residual, not clamped) at 1/4, 1/2 and full scale: "
    "[(N,3,H/4,W/4), (N,3,H/2,W/2), (N,3,H,W)]"
)
_COMMIT = "ee12450c300e1eed9752b4e8a1a487b2a69f833e"

register_model(
    "mimo_unet",
    ModelDescriptor(
        name="mimo_unet",
        system="blur2blur",
        paper=_PAPER,
        official=OfficialSource(
            repo="VinAIResearch/Blur2Blur", file="models/mimo/MIMOUNet.py", cls="MIMOUNet",
            commit=_COMMIT, note="same code as chosj95/MIMO-UNet models/MIMOUNet.py",
        ),
        input_kinds=("rgb",),
        value_range=(0.0, 1.0),
        size_multiple=4,
        outputs=_OUTPUTS,
        defaults={"num_res": 8},
        infer_config=infer_mimo_config,
        notes="Blur2Blur --netG mimounet; Blur2Blur trains it from init='normal' (N(0, 0.02)).",
    ),
    MIMOUNet,
)

register_model(
    "mimo_unet_plus",
    ModelDescriptor(
        name="mimo_unet_plus",
        system="blur2blur",
        paper=_PAPER,
        official=OfficialSource(
            repo="VinAIResearch/Blur2Blur", file="models/mimo/MIMOUNet.py", cls="MIMOUNetPlus",
            commit=_COMMIT, note="same code as chosj95/MIMO-UNet models/MIMOUNet.py",
        ),
        input_kinds=("rgb",),
        value_range=(0.0, 1.0),
        size_multiple=4,
        outputs=_OUTPUTS,
        defaults={"num_res": 20},
        infer_config=infer_mimo_config,
        notes="Blur2Blur --netG mimounetp; Dropout2d(0.1) on the skips in training mode only.",
    ),
    MIMOUNetPlus,
)
