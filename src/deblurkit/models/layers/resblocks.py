"""Residual blocks and the normalisation-layer factory of pix2pix / CycleGAN, EDVR and BKSE.

Blur2Blur (VinAIResearch/Blur2Blur) builds its discriminator and its frozen blur-kernel network
(blur-kernel-space-exploring, "BKSE") from these blocks:

- :func:`get_norm_layer` / :func:`norm_uses_bias`: ``get_norm_layer`` of Blur2Blur
  ``models/networks.py`` and ``models/explore/arch_util.py`` (junyanz/pytorch-CycleGAN-and-pix2pix),
  with the rule those files use to decide whether a convolution before the norm has a bias;
- :class:`ResnetBlock`: ``models/explore/backbones/resnet.py`` ``ResnetBlock`` (pix2pix's);
- :class:`ResidualBlockNoBN`: ``models/explore/backbones/resnet.py`` ``ResidualBlock_noBN``
  (EDVR / BasicSR ``arch_util``).

Attribute names (``conv_block``, ``conv1``, ``conv2``) and module indices are the official ones,
so state-dict keys match released checkpoints. The blocks take and return float feature maps
(N, C, H, W) and assume no value range.
"""
from __future__ import annotations

from typing import Callable

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["NORM_TYPES", "get_norm_layer", "norm_uses_bias", "ResnetBlock", "ResidualBlockNoBN"]

#: Normalisation names accepted by :func:`get_norm_layer`.
NORM_TYPES = ("batch", "instance", "none")


def get_norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """Factory ``channels -> nn.Module`` for a pix2pix normalisation name.

    ``"batch"``: ``BatchNorm2d(affine=True, track_running_stats=True)`` (keys ``weight``, ``bias``,
    ``running_mean``, ``running_var``, ``num_batches_tracked``); ``"instance"``:
    ``InstanceNorm2d(affine=False, track_running_stats=False)`` (no parameters or buffers;
    eps 1e-5, biased variance per sample and channel); ``"none"``: ``nn.Identity``.

    Raises:
        ValueError: unknown ``norm``.
    """
    if norm == "batch":
        return lambda c: nn.BatchNorm2d(c, affine=True, track_running_stats=True)
    if norm == "instance":
        return lambda c: nn.InstanceNorm2d(c, affine=False, track_running_stats=False)
    if norm == "none":
        return lambda c: nn.Identity()
    raise ValueError(f"unknown norm {norm!r}; use one of {', '.join(NORM_TYPES)}")


def norm_uses_bias(norm: str) -> bool:
    """Whether the official code gives the convolution before this norm a bias.

    Only ``"instance"`` does: the official test ``norm_layer.func == nn.InstanceNorm2d`` is false
    for batch norm and, since ``"none"`` is a plain function rather than a ``functools.partial``,
    also false for no norm (so ``"none"`` convolutions have NO bias, as in BKSE's checkpoints).

    Raises:
        ValueError: unknown ``norm``.
    """
    if norm not in NORM_TYPES:
        raise ValueError(f"unknown norm {norm!r}; use one of {', '.join(NORM_TYPES)}")
    return norm == "instance"


class ResnetBlock(nn.Module):
    """pix2pix ResNet block: ``x + [pad, conv3, norm, ReLU, (Dropout 0.5), pad, conv3, norm](x)``.

    Args:
        dim: channels C (in = out).
        padding_type: ``"reflect"`` (``ReflectionPad2d(1)``), ``"replicate"``
            (``ReplicationPad2d(1)``) or ``"zero"`` (conv padding 1, no pad layer).
        norm: ``"batch"``, ``"instance"`` or ``"none"`` (see :func:`get_norm_layer`).
        use_dropout: insert ``Dropout(0.5)`` after the ReLU.
        use_bias: convolution bias.

    Keys (reflect, no dropout): ``conv_block.1.*``, ``conv_block.5.*`` (+ norm entries at 2 and 6).
    Shapes: (N, C, H, W) -> (N, C, H, W); reflect padding needs H, W >= 2.

    Raises:
        ValueError: unknown ``padding_type`` or ``norm``.

    Follows ``ResnetBlock`` in VinAIResearch/Blur2Blur ``models/explore/backbones/resnet.py``.
    """

    def __init__(self, dim: int, padding_type: str, norm: str, use_dropout: bool, use_bias: bool) -> None:
        super().__init__()
        norm_layer = get_norm_layer(norm)
        pads = {"reflect": nn.ReflectionPad2d, "replicate": nn.ReplicationPad2d, "zero": None}
        if padding_type not in pads:
            raise ValueError(f"unknown padding_type {padding_type!r}; use reflect, replicate or zero")
        pad_cls = pads[padding_type]
        p = 0 if pad_cls is not None else 1

        def padded_conv() -> list[nn.Module]:
            pre = [pad_cls(1)] if pad_cls is not None else []
            return pre + [nn.Conv2d(dim, dim, kernel_size=3, padding=p, bias=use_bias), norm_layer(dim)]

        layers = padded_conv() + [nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += padded_conv()
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


class ResidualBlockNoBN(nn.Module):
    """Residual block without normalisation: ``x + conv2(relu(conv1(x)))``, 3x3 convs with bias.

    Args:
        nf: channels C (in = out).
        init_scale: the official constructor initialises both convs kaiming-normal (fan_in, a=0)
            times this scale (0.1) and zeroes the biases; ``None`` keeps PyTorch's default init.

    Keys: ``conv1.weight``, ``conv1.bias``, ``conv2.weight``, ``conv2.bias``.
    Shapes: (N, C, H, W) -> (N, C, H, W).

    Follows ``ResidualBlock_noBN`` in VinAIResearch/Blur2Blur ``models/explore/backbones/resnet.py``
    (and ``initialize_weights`` in ``models/explore/arch_util.py``).
    """

    def __init__(self, nf: int = 64, init_scale: float | None = 0.1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, 1, 1, bias=True)
        self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1, bias=True)
        # (skipped on the meta device, where normal_ goes through a slow torch._refs path and
        # there are no values to initialise anyway)
        if init_scale is not None and not self.conv1.weight.is_meta:
            for conv in (self.conv1, self.conv2):
                nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
                conv.weight.data.mul_(init_scale)
                nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))
