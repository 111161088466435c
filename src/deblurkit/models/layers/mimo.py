"""Building blocks of MIMO-UNet (Cho et al., *Rethinking Coarse-to-Fine Approach in Single Image
Deblurring*, ICCV 2021), the generator Blur2Blur uses.

Follows ``models/layers.py`` and the block classes of ``models/MIMOUNet.py`` in chosj95/MIMO-UNet,
as copied into VinAIResearch/Blur2Blur ``models/mimo/``. Attribute names (``main``, ``layers``,
``conv``, ``merge``) are the official ones, so state-dict keys match the released checkpoints.

All blocks take and return float feature maps (N, C, H, W); they do not assume a value range.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["BasicConv", "ResBlock", "ResGroup", "AFF", "SCM", "FAM"]


class BasicConv(nn.Module):
    """Convolution (or transposed convolution) -> optional BatchNorm -> optional ReLU.

    State-dict keys: ``main.0.weight``, ``main.0.bias`` (and ``main.1.*`` when ``norm``).

    Args:
        in_channel, out_channel: channel counts.
        kernel_size: square kernel size k. Padding is ``k // 2`` for a convolution and
            ``k // 2 - 1`` for a transposed one, so stride 2 halves (conv, k=3) or doubles
            (transposed, k=4) H and W.
        stride: convolution stride.
        bias: use a bias (forced off when ``norm`` is on, as in the official code).
        norm: append ``BatchNorm2d``.
        relu: append the activation (in place).
        transpose: use ``ConvTranspose2d``.
        activation: ``"relu"`` (MIMO-UNet) or ``"leaky_relu"`` (slope 0.01, RSS-T's
            ``model/layers.py``).

    Shapes: (N, in_channel, H, W) -> (N, out_channel, H', W').
    """

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        stride: int = 1,
        bias: bool = True,
        norm: bool = False,
        relu: bool = True,
        transpose: bool = False,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if activation not in ("relu", "leaky_relu"):
            raise ValueError(f"activation must be 'relu' or 'leaky_relu', got {activation!r}")
        use_bias = bias and not norm
        if transpose:
            conv: nn.Module = nn.ConvTranspose2d(
                in_channel, out_channel, kernel_size, stride=stride,
                padding=kernel_size // 2 - 1, bias=use_bias,
            )
        else:
            conv = nn.Conv2d(
                in_channel, out_channel, kernel_size, stride=stride,
                padding=kernel_size // 2, bias=use_bias,
            )
        parts: list[nn.Module] = [conv]
        if norm:
            parts.append(nn.BatchNorm2d(out_channel))
        if relu:
            parts.append(nn.ReLU(inplace=True) if activation == "relu" else nn.LeakyReLU(inplace=True))
        self.main = nn.Sequential(*parts)

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x)


class ResBlock(nn.Module):
    """Residual block ``x + conv3x3(relu(conv3x3(x)))`` (no normalisation).

    Keys: ``main.0.main.0.*`` (first conv), ``main.1.main.0.*`` (second conv).
    Shapes: (N, C, H, W) -> (N, C, H, W) with C = ``channel``.
    """

    def __init__(self, channel: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            BasicConv(channel, channel, 3, stride=1, relu=True),
            BasicConv(channel, channel, 3, stride=1, relu=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x) + x


class ResGroup(nn.Module):
    """``num_res`` :class:`ResBlock` in sequence: the official ``EBlock`` / ``DBlock``.

    Keys: ``layers.<i>.main.<j>.main.0.*``. Shapes: (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, channel: int, num_res: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(*(ResBlock(channel) for _ in range(num_res)))

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class AFF(nn.Module):
    """Asymmetric feature fusion: concatenate three scales' features (already resized to one
    resolution) and mix them with conv1x1 + ReLU -> conv3x3.

    Keys: ``conv.0.main.0.*``, ``conv.1.main.0.*``.
    Shapes: three (N, C_i, H, W) with sum C_i = ``in_channel`` -> (N, out_channel, H, W).
    """

    def __init__(self, in_channel: int, out_channel: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            BasicConv(in_channel, out_channel, 1, stride=1, relu=True),
            BasicConv(out_channel, out_channel, 3, stride=1, relu=False),
        )

    def forward(self, x1: Tensor, x2: Tensor, x4: Tensor) -> Tensor:
        return self.conv(torch.cat([x1, x2, x4], dim=1))


class SCM(nn.Module):
    """Shallow convolutional module: features of a downsampled RGB input.

    Four convs (3x3, 1x1, 3x3, 1x1; widths C/4, C/2, C/2, C-3; all ReLU) whose output is
    concatenated after the 3 input channels, then a 1x1 conv without ReLU.

    Keys: ``main.0..3.main.0.*``, ``conv.main.0.*``.
    Shapes: (N, 3, H, W) -> (N, out_plane, H, W).
    """

    def __init__(self, out_plane: int) -> None:
        super().__init__()
        quarter, half = out_plane // 4, out_plane // 2
        self.main = nn.Sequential(
            BasicConv(3, quarter, 3, stride=1, relu=True),
            BasicConv(quarter, half, 1, stride=1, relu=True),
            BasicConv(half, half, 3, stride=1, relu=True),
            BasicConv(half, out_plane - 3, 1, stride=1, relu=True),
        )
        self.conv = BasicConv(out_plane, out_plane, 1, stride=1, relu=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(torch.cat([x, self.main(x)], dim=1))


class FAM(nn.Module):
    """Feature attention module: ``x1 + conv3x3(x1 * x2)``.

    Keys: ``merge.main.0.*``. Shapes: two (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, channel: int) -> None:
        super().__init__()
        self.merge = BasicConv(channel, channel, 3, stride=1, relu=False)

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return x1 + self.merge(x1 * x2)
