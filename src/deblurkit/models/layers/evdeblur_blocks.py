"""Building blocks of the event-guided low-light deblurring network (Zhou et al., *Deblurring
Low-Light Images with Events*, IJCV 2023).

Re-implements the blocks of ``model/networks.py`` (and ``torch_laplacian`` of ``utils/util.py``)
in fourson/Deblurring-Low-Light-Images-with-Events (commit
1f6e2f3077e84fe5533722433008efefaf808ec6) that its ``DefaultModel`` uses. Attribute names
(``self_attn_fm``, ``dense_cells``, ``fusion``, ``se``, ``model``, ``projection``,
``bottleneck``, ``out_block``, ``x_block``, ``g_block``, ``t_block``, ``upsample``,
``attention``, ``double_conv``, ...) and the positions inside ``nn.Sequential`` containers are
the official ones, so the state-dict keys equal those of the released checkpoints
(``final.pth``, ``final_rgb.pth``).

Only the configurations ``DefaultModel`` builds are provided: the U-Net blocks use the official
``mode='res-bottleneck'`` and max-pool downsampling (``use_conv_to_downsample=False``).

All blocks take and return float feature maps (N, C, H, W) and assume no value range.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "NormFactory",
    "get_norm_layer",
    "laplacian",
    "SelfAttnFM",
    "ChunkedSelfAttnFM",
    "DenseCell",
    "DenseBlock",
    "GlobalAvgPool",
    "SEBlock",
    "BottleneckResBlock",
    "AutoencoderBackbone",
    "AttentionGate",
    "ResBottleneckConvBlock",
    "UnetDownsamplingBlock",
    "AttentionUnetUpsamplingBlock",
    "AttentionUnetBackbone",
]

NormFactory = Callable[[int], nn.Module]


def get_norm_layer(norm_type: str = "instance") -> tuple[NormFactory, bool]:
    """``(norm_layer, use_bias)`` for ``norm_type`` as the official ``get_norm_layer`` + the
    ``use_bias`` rule of every official constructor.

    ``"instance"``: ``nn.InstanceNorm2d(C)`` (affine=False, no running statistics, so no
    state-dict entries) and convolutions before it keep their bias. ``"batch"``:
    ``nn.BatchNorm2d(C)`` and those convolutions lose their bias.

    Raises:
        ValueError: any other ``norm_type`` (official: ``NotImplementedError``).
    """
    if norm_type == "instance":
        return nn.InstanceNorm2d, True
    if norm_type == "batch":
        return nn.BatchNorm2d, False
    raise ValueError(f"unknown norm_type {norm_type!r}; use 'instance' or 'batch'")


def laplacian(x: Tensor) -> Tensor:
    """4-neighbour Laplacian ``[[0,1,0],[1,-4,1],[0,1,0]]`` with reflect padding (like
    ``cv2.Laplacian`` with ksize=1), per channel.

    Args:
        x: (N, C, H, W) float, H and W >= 2 (reflect padding by 1).

    Returns:
        (N, C, H, W), same dtype.

    Follows ``torch_laplacian`` in ``utils/util.py`` (same summation order).
    """
    p = F.pad(x, [1, 1, 1, 1], mode="reflect")
    return p[:, :, 2:, 1:-1] + p[:, :, :-2, 1:-1] + p[:, :, 1:-1, 2:] + p[:, :, 1:-1, :-2] - 4 * x


class SelfAttnFM(nn.Module):
    """Non-local self-attention over all pixels of a feature map, added back with a learned
    scalar ``gamma`` (initialised to 0, so the block starts as the identity).

    Queries are a 1x1 conv to ``C // latent_dim`` channels at every pixel; keys and values are
    1x1 convs followed (``subsample=True``) by ``MaxPool2d(2)`` (floor), so each of the H*W
    queries attends to the (H//2)*(W//2) pooled positions. The attended values are mapped back
    to C channels by ``out_conv``.

    Keys: ``gamma`` (1,), ``query_conv.*``, ``key_conv.0.*``, ``value_conv.0.*``, ``out_conv.*``
    (``key_conv.*`` / ``value_conv.*`` without subsampling).

    Shapes: (N, C, H, W) -> (N, C, H, W); with subsampling H and W must be >= 2.

    Follows ``Self_Attn_FM`` in ``model/networks.py``.
    """

    def __init__(self, in_dim: int, latent_dim: int = 8, subsample: bool = True) -> None:
        super().__init__()
        c = in_dim // latent_dim
        if c < 1:
            raise ValueError(f"in_dim {in_dim} // latent_dim {latent_dim} must be >= 1")
        self.channel_latent = c
        self.query_conv = nn.Conv2d(in_dim, c, kernel_size=1)
        key = nn.Conv2d(in_dim, c, kernel_size=1)
        value = nn.Conv2d(in_dim, c, kernel_size=1)
        if subsample:
            self.key_conv: nn.Module = nn.Sequential(key, nn.MaxPool2d(2))
            self.value_conv: nn.Module = nn.Sequential(value, nn.MaxPool2d(2))
        else:
            self.key_conv, self.value_conv = key, value
        self.out_conv = nn.Conv2d(c, in_dim, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        c = self.channel_latent
        query = self.query_conv(x).view(n, c, -1).permute(0, 2, 1)  # (n, HW, c)
        key = self.key_conv(x).view(n, c, -1)  # (n, c, M)
        attn = torch.softmax(torch.bmm(query, key), dim=-1).permute(0, 2, 1)  # (n, M, HW)
        value = self.value_conv(x).view(n, c, -1)  # (n, c, M)
        out = self.out_conv(torch.bmm(value, attn).view(n, c, h, w))
        return self.gamma * out + x


class ChunkedSelfAttnFM(nn.Module):
    """:class:`SelfAttnFM` applied independently inside each cell of a ``grid = (gh, gw)``
    partition of the feature map (cells of (H/gh, W/gw) pixels, all cells share the weights).

    Keys: ``self_attn_fm.*``. Shapes: (N, C, H, W) -> (N, C, H, W); H must be divisible by
    ``gh`` and W by ``gw`` (the reshape fails otherwise), and with subsampling the cells must be
    at least 2x2.

    Follows ``Chuncked_Self_Attn_FM`` (sic) in ``model/networks.py``.
    """

    def __init__(
        self, in_channel: int, latent_dim: int = 8, subsample: bool = True, grid: tuple[int, int] = (8, 8)
    ) -> None:
        super().__init__()
        self.self_attn_fm = SelfAttnFM(in_channel, latent_dim=latent_dim, subsample=subsample)
        self.grid = (int(grid[0]), int(grid[1]))

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        gh, gw = self.grid
        ch, cw = h // gh, w // gw
        cells = x.reshape(n, c, gh, ch, gw, cw).permute(0, 2, 4, 1, 3, 5).reshape(n * gh * gw, c, ch, cw)
        out = self.self_attn_fm(cells).reshape(n, gh, gw, c, ch, cw)
        return out.permute(0, 3, 1, 4, 2, 5).reshape(n, c, h, w)


class DenseCell(nn.Module):
    """``cat(x, relu(conv_kxk(x)))`` (conv without bias): C -> C + growth_rate channels.

    Keys: ``conv_block.0.weight``. Follows ``DenseCell`` in ``model/networks.py``.
    """

    def __init__(self, in_channel: int, growth_rate: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.Conv2d(in_channel, growth_rate, kernel_size, padding=(kernel_size - 1) // 2, bias=False),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat((x, self.conv_block(x)), dim=1)


class DenseBlock(nn.Module):
    """``n_blocks`` :class:`DenseCell` (3x3, growth ``growth_rate``), a 1x1 fusion conv back to
    ``in_channel`` (no bias) and a residual connection.

    Keys: ``dense_cells.<i>.conv_block.0.weight``, ``fusion.weight``.
    Shapes: (N, C, H, W) -> (N, C, H, W). Follows ``DenseBlock`` in ``model/networks.py``.
    """

    def __init__(self, in_channel: int, growth_rate: int = 32, n_blocks: int = 3) -> None:
        super().__init__()
        cells, dim = [], in_channel
        for _ in range(n_blocks):
            cells.append(DenseCell(dim, growth_rate))
            dim += growth_rate
        self.dense_cells = nn.Sequential(*cells)
        self.fusion = nn.Conv2d(dim, in_channel, kernel_size=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.fusion(self.dense_cells(x)) + x


class GlobalAvgPool(nn.Module):
    """(N, C, H, W) -> (N, C): mean over all pixels. Follows ``GlobalAvgPool``."""

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], x.shape[1], -1).mean(-1)


class SEBlock(nn.Module):
    """Squeeze-and-excitation: ``x * sigmoid(fc(relu(fc(avgpool(x)))))`` with reduction ``r``.

    Keys: ``se.1.*`` (Linear C -> C//r), ``se.3.*`` (Linear C//r -> C).
    Shapes: (N, C, H, W) -> (N, C, H, W). Follows ``SEBlock`` in ``model/networks.py``.
    """

    def __init__(self, in_channel: int, r: int) -> None:
        super().__init__()
        if in_channel // r < 1:
            raise ValueError(f"SEBlock: in_channel {in_channel} // r {r} must be >= 1")
        self.se = nn.Sequential(
            GlobalAvgPool(),
            nn.Linear(in_channel, in_channel // r),
            nn.ReLU(inplace=True),
            nn.Linear(in_channel // r, in_channel),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.se(x)[:, :, None, None]


def _dropout(use_dropout: bool) -> list[nn.Module]:
    return [nn.Dropout(0.5)] if use_dropout else []


class BottleneckResBlock(nn.Module):
    """``x + [conv1x1-norm-relu, conv3x3-norm-relu, conv1x1-norm-relu (, dropout 0.5)](x)``.

    Keys: ``model.0.*``, ``model.3.*``, ``model.6.*`` (+ norm entries at 1, 4, 7 for batch norm).
    Shapes: (N, C, H, W) -> (N, C, H, W). Follows ``ResBlock`` in ``model/networks.py``.
    """

    def __init__(self, dim: int, norm_layer: NormFactory, use_dropout: bool, use_bias: bool) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(dim, dim, 1, bias=use_bias), norm_layer(dim), nn.ReLU(inplace=True),
            nn.Conv2d(dim, dim, 3, padding=1, bias=use_bias), norm_layer(dim), nn.ReLU(inplace=True),
            nn.Conv2d(dim, dim, 1, bias=use_bias), norm_layer(dim), nn.ReLU(inplace=True),
            *_dropout(use_dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.model(x)


class AutoencoderBackbone(nn.Module):
    """ResNet-style encoder-decoder: conv7x7 to ``output_nc``, ``n_downsampling`` stride-2
    conv3x3 (channels doubling), ``n_blocks`` :class:`BottleneckResBlock`, ``n_downsampling``
    transposed conv3x3 (stride 2, output_padding 1), each followed by norm + ReLU.

    Keys: ``model.<i>.*`` at the official positions (n_downsampling=2, n_blocks=4: convs at
    0, 3, 6; res blocks 9..12; transposed convs 13, 16).

    Shapes: (N, input_nc, H, W) -> (N, output_nc, H', W') with H' = H, W' = W when H and W are
    multiples of ``2 ** n_downsampling`` (otherwise rounded up to such a multiple).

    Follows ``AutoencoderBackbone`` in ``model/networks.py``.
    """

    def __init__(
        self,
        input_nc: int,
        output_nc: int = 64,
        n_downsampling: int = 2,
        n_blocks: int = 6,
        norm_type: str = "instance",
        use_dropout: bool = False,
    ) -> None:
        super().__init__()
        norm_layer, use_bias = get_norm_layer(norm_type)
        seq: list[nn.Module] = [
            nn.Conv2d(input_nc, output_nc, 7, padding=3, bias=use_bias), norm_layer(output_nc), nn.ReLU(inplace=True),
        ]
        dim = output_nc
        for _ in range(n_downsampling):
            seq += [nn.Conv2d(dim, 2 * dim, 3, stride=2, padding=1, bias=use_bias), norm_layer(2 * dim),
                    nn.ReLU(inplace=True)]
            dim *= 2
        seq += [BottleneckResBlock(dim, norm_layer, use_dropout, use_bias) for _ in range(n_blocks)]
        for _ in range(n_downsampling):
            seq += [nn.ConvTranspose2d(dim, dim // 2, 3, stride=2, padding=1, output_padding=1, bias=use_bias),
                    norm_layer(dim // 2), nn.ReLU(inplace=True)]
            dim //= 2
        self.model = nn.Sequential(*seq)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class AttentionGate(nn.Module):
    """Attention-U-Net gate: ``x * sigmoid(norm(conv1x1(relu(norm(Wx x) + norm(Wg g)))))``, a
    one-channel spatial map computed from the skip signal ``x`` and the gating signal ``g``.

    Keys: ``x_block.0.*``, ``g_block.0.*``, ``t_block.0.*`` (+ ``.1.*`` norm entries for batch
    norm). Shapes: x (N, Cx, H, W), g (N, Cg, H, W) -> (N, Cx, H, W).

    Follows ``AttentionBlock`` in ``model/networks.py``.
    """

    def __init__(
        self, in_channel_x: int, in_channel_g: int, channel_t: int, norm_layer: NormFactory, use_bias: bool
    ) -> None:
        super().__init__()
        self.x_block = nn.Sequential(nn.Conv2d(in_channel_x, channel_t, 1, bias=use_bias), norm_layer(channel_t))
        self.g_block = nn.Sequential(nn.Conv2d(in_channel_g, channel_t, 1, bias=use_bias), norm_layer(channel_t))
        self.t_block = nn.Sequential(nn.Conv2d(channel_t, 1, 1, bias=use_bias), norm_layer(1), nn.Sigmoid())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor, g: Tensor) -> Tensor:
        t = self.relu(self.x_block(x) + self.g_block(g))
        return x * self.t_block(t)


class ResBottleneckConvBlock(nn.Module):
    """U-Net "double conv" block in the official ``mode='res-bottleneck'``:
    ``p = projection(x)`` (1x1 conv, always with bias), then
    ``relu(norm(p + [conv1x1-norm-relu, conv3x3-norm-relu, conv1x1](p)))`` (+ dropout 0.5).

    Keys: ``projection.*``, ``bottleneck.0/3/6.*`` (+ norm entries), ``out_block.0.*`` (batch
    norm only). Shapes: (N, in_channel, H, W) -> (N, out_channel, H, W).

    Follows ``UnetDoubleConvBlock`` (``mode='res-bottleneck'``) in ``model/networks.py``.
    """

    def __init__(
        self, in_channel: int, out_channel: int, norm_layer: NormFactory, use_dropout: bool, use_bias: bool
    ) -> None:
        super().__init__()
        self.projection = nn.Conv2d(in_channel, out_channel, 1)
        self.bottleneck = nn.Sequential(
            nn.Conv2d(out_channel, out_channel, 1, bias=use_bias), norm_layer(out_channel), nn.ReLU(inplace=True),
            nn.Conv2d(out_channel, out_channel, 3, padding=1, bias=use_bias), norm_layer(out_channel),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channel, out_channel, 1, bias=use_bias),
        )
        self.out_block = nn.Sequential(norm_layer(out_channel), nn.ReLU(inplace=True), *_dropout(use_dropout))

    def forward(self, x: Tensor) -> Tensor:
        p = self.projection(x)
        return self.out_block(p + self.bottleneck(p))


class UnetDownsamplingBlock(nn.Module):
    """``MaxPool2d(2)`` then :class:`ResBottleneckConvBlock` (C -> ``out_channel``).

    Keys: ``model.1.*`` (``model.0`` is the parameter-free pooling).
    Shapes: (N, C, H, W) -> (N, out_channel, H // 2, W // 2).

    Follows ``UnetDownsamplingBlock`` (``use_conv=False``) in ``model/networks.py``.
    """

    def __init__(
        self, in_channel: int, out_channel: int, norm_layer: NormFactory, use_dropout: bool, use_bias: bool
    ) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Sequential(nn.MaxPool2d(2)),
            ResBottleneckConvBlock(in_channel, out_channel, norm_layer, use_dropout, use_bias),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class AttentionUnetUpsamplingBlock(nn.Module):
    """Decoder step of the attention U-Net: ``u = relu(norm(convT4x4_s2(x1)))`` (C1 -> C1/2),
    the skip ``x2`` gated by :class:`AttentionGate` (gating signal ``u``), then
    :class:`ResBottleneckConvBlock` on ``cat(gated x2, u)``.

    Keys: ``upsample.0.*``, ``attention.*``, ``double_conv.*``.
    Shapes: x1 (N, C1, H, W), x2 (N, C2, 2H, 2W) -> (N, out_channel, 2H, 2W).

    Follows ``AttentionUnetUpsamplingBlock`` in ``model/networks.py`` (its upsample norm is
    built with ``out_channel``, which equals C1/2 in every official use).
    """

    def __init__(
        self,
        in_channel1: int,
        in_channel2: int,
        out_channel: int,
        norm_layer: NormFactory,
        use_dropout: bool,
        use_bias: bool,
    ) -> None:
        super().__init__()
        half = in_channel1 // 2
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(in_channel1, half, 4, stride=2, padding=1, bias=use_bias),
            norm_layer(out_channel),
            nn.ReLU(inplace=True),
        )
        self.attention = AttentionGate(in_channel2, half, in_channel2, norm_layer, use_bias)
        self.double_conv = ResBottleneckConvBlock(half + in_channel2, out_channel, norm_layer, use_dropout, use_bias)

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        up = self.upsample(x1)
        return self.double_conv(torch.cat([self.attention(x2, up), up], dim=1))


class AttentionUnetBackbone(nn.Module):
    """Attention U-Net with residual-bottleneck blocks: an input block at full resolution,
    ``n_downsampling`` max-pool encoder steps (channels doubling) and as many gated decoder steps.

    Keys: ``double_conv_block.*``, ``downsampling_blocks.<i>.model.1.*``,
    ``upsampling_blocks.<i>.{upsample,attention,double_conv}.*``.

    Shapes: (N, input_nc, H, W) -> (N, output_nc, H, W); H and W must be multiples of
    ``2 ** n_downsampling`` (the skips' sizes mismatch otherwise), and ``n_downsampling >= 2``
    (the official forward indexes two encoder outputs).

    Follows ``AttentionUnetBackbone`` (``use_conv_to_downsample=False``, ``mode='res-bottleneck'``)
    in ``model/networks.py``.
    """

    def __init__(
        self,
        input_nc: int,
        output_nc: int = 64,
        n_downsampling: int = 3,
        norm_type: str = "instance",
        use_dropout: bool = False,
    ) -> None:
        super().__init__()
        if n_downsampling < 2:
            raise ValueError(f"AttentionUnetBackbone needs n_downsampling >= 2, got {n_downsampling}")
        norm_layer, use_bias = get_norm_layer(norm_type)
        self.n_downsampling = n_downsampling
        self.double_conv_block = ResBottleneckConvBlock(input_nc, output_nc, norm_layer, use_dropout, use_bias)
        self.downsampling_blocks = nn.ModuleList()
        self.upsampling_blocks = nn.ModuleList()
        dim = output_nc
        for _ in range(n_downsampling):
            self.downsampling_blocks.append(UnetDownsamplingBlock(dim, 2 * dim, norm_layer, use_dropout, use_bias))
            dim *= 2
        for _ in range(n_downsampling):
            self.upsampling_blocks.append(
                AttentionUnetUpsamplingBlock(dim, dim // 2, dim // 2, norm_layer, use_dropout, use_bias)
            )
            dim //= 2

    def forward(self, x: Tensor) -> Tensor:
        skips = [self.double_conv_block(x)]
        for down in self.downsampling_blocks:
            skips.append(down(skips[-1]))
        out = skips.pop()
        for up in self.upsampling_blocks:
            out = up(out, skips.pop())
        return out
