"""Event-guided low-light deblurring (Zhou et al., *Deblurring Low-Light Images with Events*,
IJCV 2023): the two-stage motion-aware network, for a grey DAVIS APS frame or for an RGB frame
of an RGB-DAVIS hybrid camera.

Re-implements ``DefaultModel`` of ``model/model_full.py`` in
fourson/Deblurring-Low-Light-Images-with-Events (commit 1f6e2f3077e84fe5533722433008efefaf808ec6)
with identical state-dict keys, shapes and order and the same forward computation; its blocks
are in :mod:`deblurkit.models.layers.evdeblur_blocks`.

Registered names:

- ``evdeblur``: grey APS (``config/full.json``, released ``final.pth``);
- ``evdeblur_rgb``: hybrid camera, the RGB frame at exactly 3x the APS size
  (``config/full_rgb.json``, released ``final_rgb.pth``).

``forward(E, B, Bi) -> (F, Bi_clean, S)`` as official:

- ``E``: (N, 13, h, w) voxel grid of the exposure's events at APS resolution, normalised as the
  official ``utils.util.normalize_events`` (E2VID: mean/std of the non-zero entries, zeros stay
  0); signed, not in [0, 1];
- ``B``: (N, 1, h, w) blurry APS frame, linear intensity in [0, 1];
- ``Bi``: the blurry image to restore, linear in [0, 1]: ``B`` itself (grey model; the official
  ``InferDataset`` passes ``Bi = B``) or (N, 3, 3h, 3w) RGB (hybrid model).

Stage 1 extracts motion clues from the Laplacian of ``B`` and from ``E`` and predicts ``F``
(N, 4, h, w), two optical flows (start -> middle, middle -> end of the exposure, in APS pixels);
stage 2 denoises ``Bi`` in the gamma domain (``Bi_clean``) and deblurs it guided by the motion
clues (``S``). Both images are clamped to [0, 1].

Size constraints (official, checked by ``forward`` with a ValueError): h divisible by 8 and
w by 40 (the 8 x 10 grid of the chunked self-attention and the three poolings of the U-Net),
h >= 16 (attention cells of at least 2x2 pixels, because keys/values are 2x2 max-pooled), and
the RGB frame exactly (3h, 3w). :func:`pad_event_inputs` / :func:`crop_event_outputs` pad any
size (e.g. the DAVIS346's 260 x 346) to a valid one and crop the outputs back::

    >>> import torch, deblurkit.models as M
    >>> from deblurkit.models.evdeblur import pad_event_inputs, crop_event_outputs
    >>> net = M.build("evdeblur", init_dim=32).eval()
    >>> E, B = torch.randn(1, 13, 30, 50), torch.rand(1, 1, 30, 50)
    >>> p = pad_event_inputs(E, B)
    >>> tuple(p.B.shape)
    (1, 1, 32, 80)
    >>> F, Bi_clean, S = crop_event_outputs(net(p.E, p.B, p.Bi), p.padding)
    >>> tuple(F.shape), tuple(S.shape)
    ((1, 4, 30, 50), (1, 1, 30, 50))

Official quirk kept by default: the flow head ends with a ReLU, so ``F >= 0`` although the
training flows (``scripts/make_dataset.py``) are signed; ``signed_flow=True`` drops that ReLU
(same keys; for training from scratch, not for the released weights).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers.evdeblur_blocks import (
    AttentionUnetBackbone,
    AutoencoderBackbone,
    ChunkedSelfAttnFM,
    DenseBlock,
    SEBlock,
    get_norm_layer,
    laplacian,
)
from .registry import ModelDescriptor, OfficialSource, register_model

__all__ = [
    "EvDeblurNet",
    "EventPadding",
    "PaddedEventInputs",
    "RGB_SCALE",
    "UNET_FACTOR",
    "aps_size_rule",
    "valid_aps_size",
    "pad_event_inputs",
    "crop_event_outputs",
    "init_evdeblur_weights",
    "infer_evdeblur_config",
]

RGB_SCALE = 3
"""The hybrid model's RGB frame is exactly ``RGB_SCALE`` times the APS size (``up`` layer)."""
UNET_FACTOR = 8
"""Three 2x poolings of the attention U-Net backbone."""
_DEFAULT_GRID = (8, 10)


# ---------------------------------------------------------------------------------- network
class EvDeblurNet(nn.Module):
    """The motion-aware two-stage network (official ``DefaultModel``).

    Args:
        init_dim: width of the stage-2 features; motion clues use ``init_dim // 2`` and the two
            stage-1 branches ``init_dim // 4``. Official 64; must be a multiple of 4 and >= 32
            (the attention's latent width is ``init_dim // 32``).
        n_ev: voxel-grid bins of ``E`` (official 13).
        grid: (rows, cols) of the chunked self-attention grid (official (8, 10)).
        norm_type: ``"instance"`` (official; affine-free, no state-dict entries) or ``"batch"``.
        use_dropout: ``Dropout(0.5)`` in the res blocks of the denoiser and in the U-Net blocks
            (official False; parameter-free, keys unchanged).
        rgb: hybrid model (RGB ``Bi`` at 3x the APS size; adds the ``up`` layer).
        signed_flow: drop the flow head's final ReLU so ``F`` can be negative (deblurkit
            extension; official False, i.e. ``F >= 0``). Keys unchanged.
        init: ``"default"`` keeps PyTorch's initialisation; ``"official"`` applies
            :func:`init_evdeblur_weights` as the official trainer does (``base/base_trainer.py``).

    Forward ``(E, B, Bi)``:
        E: (N, n_ev, h, w) float normalised voxel grid (signed; zeros = no event).
        B: (N, 1, h, w) float blurry APS frame, linear, in [0, 1].
        Bi: (N, 1, h, w) (grey model, normally ``B`` itself) or (N, 3, 3h, 3w) (hybrid model)
            float blurry image, linear, in [0, 1]; negative values give NaN (``Bi ** (1/2.2)``).
        h divisible by 8 (and >= 16) and w by 40 for the official grid; see
        :func:`aps_size_rule` and :func:`pad_event_inputs`.

    Returns:
        tuple ``(F, Bi_clean, S)``: F (N, 4, h, w) flows in APS pixels (>= 0 unless
        ``signed_flow``); Bi_clean (N, C, H, W) denoised blurry image, linear, in [0, 1];
        S (N, C, H, W) restored sharp image, linear, in [0, 1]; (C, H, W) = ``Bi``'s.

    Raises:
        ValueError: bad constructor arguments; inputs of the wrong rank or channel count,
            ``E``/``B`` of different sizes or batch sizes, an APS size outside
            :func:`aps_size_rule`, or ``Bi`` not of the size the model needs (the official
            network fails there with an unclear reshape/size error).

    Follows ``DefaultModel`` in ``model/model_full.py`` (fourson/Deblurring-Low-Light-Images-with-Events).
    """

    def __init__(
        self,
        init_dim: int = 64,
        n_ev: int = 13,
        grid: Sequence[int] = _DEFAULT_GRID,
        norm_type: str = "instance",
        use_dropout: bool = False,
        rgb: bool = False,
        signed_flow: bool = False,
        init: str = "default",
    ) -> None:
        super().__init__()
        if int(init_dim) != init_dim or init_dim < 32 or init_dim % 4:
            raise ValueError(f"init_dim must be a multiple of 4 and >= 32, got {init_dim!r}")
        if int(n_ev) != n_ev or n_ev < 1:
            raise ValueError(f"n_ev must be a positive integer, got {n_ev!r}")
        grid = tuple(int(g) for g in grid)
        if len(grid) != 2 or min(grid) < 1:
            raise ValueError(f"grid must be two positive integers (rows, cols), got {grid!r}")
        if init not in ("default", "official"):
            raise ValueError(f"init must be 'default' or 'official', got {init!r}")
        norm_layer, use_bias = get_norm_layer(norm_type)
        d = int(init_dim)
        c = 3 if rgb else 1
        self.init_dim, self.n_ev, self.grid, self.rgb = d, int(n_ev), grid, bool(rgb)
        self.norm_type, self.signed_flow = norm_type, bool(signed_flow)

        # Registration order = official state_dict order.
        self.B_edge_feature_extraction = self._stage1_branch(1, d // 4, use_bias, grid)
        self.E_feature_extraction = self._stage1_branch(self.n_ev, d // 4, use_bias, grid)
        self.fuse1 = nn.Sequential(nn.Conv2d(d // 2, d // 2, 1, bias=use_bias), SEBlock(d // 2, 8))
        flow: list[nn.Module] = [
            nn.Conv2d(d // 2, d // 2, 1), norm_layer(d // 2), nn.ReLU(inplace=True),
            nn.Conv2d(d // 2, d // 4, 3, padding=1), norm_layer(d // 4), nn.ReLU(inplace=True),
            nn.Conv2d(d // 4, d // 8, 1), norm_layer(d // 8), nn.ReLU(inplace=True),
            nn.Conv2d(d // 8, 4, 1),
        ]
        flow.append(nn.Identity() if signed_flow else nn.ReLU(inplace=True))
        self.flow_block = nn.Sequential(*flow)

        self.Bi_denoise = nn.Sequential(
            AutoencoderBackbone(c, output_nc=d, n_downsampling=2, n_blocks=4, norm_type=norm_type,
                                use_dropout=use_dropout),
            nn.Conv2d(d, c, 1, bias=use_bias),
            nn.Tanh(),
        )
        self.Bi_feature_extraction = nn.Sequential(
            nn.Conv2d(c, d // 2, 7, padding=3, bias=use_bias), norm_layer(d // 2), nn.ReLU(inplace=True)
        )
        if self.rgb:
            # (h, w) -> (3h, 3w): (h - 1) * 3 - 2 * 1 + 3 + 2 = 3h
            self.up = nn.Sequential(
                nn.ConvTranspose2d(d // 2, d // 2, 3, stride=RGB_SCALE, padding=1, output_padding=2, bias=use_bias),
                norm_layer(d // 2),
                nn.ReLU(inplace=True),
            )
        self.fuse2 = nn.Sequential(nn.Conv2d(d, d, 1, bias=use_bias), SEBlock(d, 8))
        self.backbone = AttentionUnetBackbone(d, output_nc=d, n_downsampling=3, norm_type=norm_type,
                                              use_dropout=use_dropout)
        self.out_block = nn.Sequential(nn.Conv2d(d, 1, 1, bias=use_bias), nn.Tanh())

        if init == "official":
            init_evdeblur_weights(self)

    @staticmethod
    def _stage1_branch(in_ch: int, ch: int, use_bias: bool, grid: tuple[int, int]) -> nn.Sequential:
        # The official code hard-codes InstanceNorm2d here, whatever norm_type is.
        return nn.Sequential(
            nn.Conv2d(in_ch, ch, 7, padding=3, bias=use_bias),
            nn.InstanceNorm2d(ch),
            nn.ReLU(inplace=True),
            ChunkedSelfAttnFM(ch, latent_dim=8, subsample=True, grid=grid),
            DenseBlock(ch, growth_rate=32, n_blocks=3),
        )

    def check_inputs(self, E: Tensor, B: Tensor, Bi: Tensor) -> None:
        """Raise ``ValueError`` (with the fix) unless ``forward(E, B, Bi)`` can run: ranks,
        channel counts, equal batch sizes, E and B of one APS size satisfying
        :func:`aps_size_rule` for this network's grid, and Bi of the APS size (grey model) or
        exactly 3x it (hybrid model)."""
        _check_rank(E=E, B=B, Bi=Bi)
        if E.shape[1] != self.n_ev:
            raise ValueError(f"E must have {self.n_ev} voxel-grid bins, got shape {tuple(E.shape)}")
        if B.shape[1] != 1:
            raise ValueError(f"B must be a 1-channel APS frame (N, 1, h, w), got shape {tuple(B.shape)}")
        _check_same_aps(E, B)
        n = E.shape[0]
        if B.shape[0] != n or Bi.shape[0] != n:
            raise ValueError(
                f"batch sizes differ: E {E.shape[0]}, B {B.shape[0]}, Bi {Bi.shape[0]}"
            )
        h, w = B.shape[-2:]
        problem = aps_size_rule(h, w, self.grid)
        if problem:
            raise ValueError(
                f"APS size {h}x{w} is not supported: {problem}; pad with "
                "deblurkit.models.evdeblur.pad_event_inputs and crop with crop_event_outputs"
            )
        c, scale = (3, RGB_SCALE) if self.rgb else (1, 1)
        want = (c, scale * h, scale * w)
        if tuple(Bi.shape[1:]) != want:
            kind = f"RGB exactly {RGB_SCALE}x the APS size" if self.rgb else "the APS frame's size (Bi = B)"
            raise ValueError(
                f"Bi must be (N, {want[0]}, {want[1]}, {want[2]}) ({kind}) for APS {h}x{w}, got "
                f"{tuple(Bi.shape)}; pad_event_inputs makes consistent sizes match"
            )

    def forward(self, E: Tensor, B: Tensor, Bi: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        self.check_inputs(E, B, Bi)
        # stage 1: motion clues from the APS edges and the events
        edge = self.B_edge_feature_extraction(laplacian(B))
        events = self.E_feature_extraction(E)
        motion = self.fuse1(torch.cat((edge, events), dim=1))
        flow = self.flow_block(motion)
        if self.rgb:
            motion = self.up(motion)
        # stage 2: denoise in the gamma domain, then deblur guided by the motion clues
        bi_gamma = Bi ** (1 / 2.2)
        bi_clean = torch.clamp(self.Bi_denoise(bi_gamma) + bi_gamma, min=0, max=1) ** 2.2
        feat = self.Bi_feature_extraction(bi_clean)
        out = self.backbone(self.fuse2(torch.cat((feat, motion), dim=1)))
        sharp = torch.clamp(self.out_block(out) + bi_clean, min=0, max=1)
        return flow, bi_clean, sharp


def init_evdeblur_weights(net: nn.Module) -> nn.Module:
    """Initialise ``net`` in place as the official trainer (``model.apply(init_weights)`` in
    ``base/base_trainer.py``, ``init_weights`` in ``model/networks.py``): Conv2d /
    ConvTranspose2d weights ~ N(0, 0.02) and biases 0; BatchNorm2d weights ~ N(1, 0.02) and
    biases 0; Linear weights xavier-uniform and biases 0. Other parameters (the attention
    ``gamma``, initialised to 0) are left alone. Returns ``net``."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return net


# ---------------------------------------------------------------------------------- sizes
def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def _axis_rule(grid_cells: int) -> tuple[int, int]:
    """(multiple, minimum) of one APS axis for ``grid_cells`` attention cells along it."""
    multiple = math.lcm(grid_cells, UNET_FACTOR)
    # cells >= 2 pixels (2x2 max-pooled keys); >= 16 pixels keeps the U-Net bottleneck >= 2x2
    minimum = _round_up(max(2 * grid_cells, 2 * UNET_FACTOR), multiple)
    return multiple, minimum


def aps_size_rule(h: int, w: int, grid: Sequence[int] = _DEFAULT_GRID) -> str:
    """Why an APS frame of ``h`` x ``w`` pixels cannot enter the network, or ``""`` if it can.

    The rule (per axis, ``g`` the attention grid's cells along it): the size is a multiple of
    ``lcm(g, 8)`` (the chunk reshape and the U-Net's three poolings) and at least
    ``max(2 g, 16)`` rounded up to that multiple (cells of >= 2 pixels for the 2x2 max-pooled
    keys; a U-Net bottleneck of >= 2 pixels for its instance norms). For the official grid
    (8, 10): h in {16, 24, 32, ...} and w in {40, 80, 120, ...}.
    """
    problems = []
    for name, size, cells in (("height", h, grid[0]), ("width", w, grid[1])):
        multiple, minimum = _axis_rule(int(cells))
        if size % multiple or size < minimum:
            problems.append(f"{name} must be a multiple of {multiple} and >= {minimum}")
    return "; ".join(problems)


def valid_aps_size(h: int, w: int, grid: Sequence[int] = _DEFAULT_GRID) -> tuple[int, int]:
    """The smallest APS size ``(H, W) >= (h, w)`` that satisfies :func:`aps_size_rule`.

    >>> valid_aps_size(260, 346)
    (264, 360)

    Raises:
        ValueError: ``h`` or ``w`` < 1.
    """
    if h < 1 or w < 1:
        raise ValueError(f"APS size must be positive, got {h}x{w}")
    out = []
    for size, cells in ((h, grid[0]), (w, grid[1])):
        multiple, minimum = _axis_rule(int(cells))
        out.append(max(_round_up(int(size), multiple), minimum))
    return out[0], out[1]


# ---------------------------------------------------------------------------------- padding
@dataclass(frozen=True)
class EventPadding:
    """What :func:`pad_event_inputs` did, for :func:`crop_event_outputs`.

    Attributes:
        aps_size: original APS (h, w) of ``E`` and ``B``.
        image_size: original (H, W) of ``Bi`` (equal to ``aps_size`` for the grey model).
        padded_aps_size: APS size given to the network.
        padded_image_size: ``Bi`` size given to the network (3x ``padded_aps_size`` for RGB).
        rgb: whether ``Bi`` is the hybrid camera's RGB frame.
    """

    aps_size: tuple[int, int]
    image_size: tuple[int, int]
    padded_aps_size: tuple[int, int]
    padded_image_size: tuple[int, int]
    rgb: bool

    @property
    def is_identity(self) -> bool:
        """True when nothing was padded."""
        return self.aps_size == self.padded_aps_size and self.image_size == self.padded_image_size


class PaddedEventInputs(NamedTuple):
    """Result of :func:`pad_event_inputs`: call ``net(E, B, Bi)``, keep ``padding``."""

    E: Tensor
    B: Tensor
    Bi: Tensor
    padding: EventPadding


_IMAGE_MODES = ("reflect", "replicate", "constant")


def _reflect_index(size: int, total: int, device: torch.device) -> Tensor:
    """Indices extending an axis of ``size`` to ``total`` by mirroring without repeating the
    edge sample, back and forth when the pad exceeds the size (period ``2 (size - 1)``)."""
    idx = torch.arange(total, device=device)
    if size == 1:
        return torch.zeros_like(idx)
    period = 2 * (size - 1)
    m = idx % period
    return torch.where(m < size, m, period - m)


def _pad_to(x: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """Pad ``x`` (N, C, h, w) at the bottom/right to ``size``."""
    h, w = x.shape[-2:]
    ph, pw = size[0] - h, size[1] - w
    if ph == 0 and pw == 0:
        return x
    if mode == "constant":
        return F.pad(x, [0, pw, 0, ph])
    if mode == "replicate":
        return F.pad(x, [0, pw, 0, ph], mode="replicate")
    x = x.index_select(-2, _reflect_index(h, size[0], x.device))
    return x.index_select(-1, _reflect_index(w, size[1], x.device))


def _check_rank(**tensors: Tensor) -> None:
    for name, t in tensors.items():
        if not isinstance(t, Tensor) or t.dim() != 4:
            shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a 4-D (N, C, H, W) tensor, got {shape}")
        if t.shape[-2] < 1 or t.shape[-1] < 1:
            raise ValueError(f"{name} has an empty spatial size {tuple(t.shape)}")


def _check_same_aps(E: Tensor, B: Tensor) -> None:
    if E.shape[-2:] != B.shape[-2:]:
        raise ValueError(
            f"E {tuple(E.shape)} and B {tuple(B.shape)} must share the APS size (both come from the "
            "event camera's sensor)"
        )


def pad_event_inputs(
    E: Tensor,
    B: Tensor,
    Bi: Tensor | None = None,
    *,
    rgb: bool | None = None,
    mode: str = "reflect",
    grid: Sequence[int] = _DEFAULT_GRID,
) -> PaddedEventInputs:
    """Pad the inputs of :class:`EvDeblurNet` at the bottom and right to the smallest size it
    accepts, so frames of any size (e.g. the DAVIS346's 260 x 346) can be deblurred.

    Args:
        E: (N, n_ev, h, w) normalised voxel grid. Padded with zeros (= no event; pad after
            normalising, as zeros stay zeros there).
        B: (N, 1, h, w) blurry APS frame in [0, 1].
        Bi: image to restore: ``None`` or (N, 1, h, w) for the grey model (``None`` means
            ``Bi = B``, as the official InferDataset), or (N, 3, H, W) RGB for the hybrid model
            with ``|H - 3h| <= 2`` and ``|W - 3w| <= 2`` (3x the APS up to the rounding of a
            1/3 resize; the official synthesis takes the APS size as ``RGB_size // 3``).
        rgb: hybrid model; ``None`` infers it from ``Bi`` having 3 channels.
        mode: how ``B`` and ``Bi`` are extended: ``"reflect"`` (default; mirrored without
            repeating the edge, repeatedly for frames smaller than the pad), ``"replicate"`` or
            ``"constant"`` (zeros).
        grid: the network's attention grid (official (8, 10)).

    Returns:
        :class:`PaddedEventInputs` ``(E, B, Bi, padding)``: E, B of the APS size
        :func:`valid_aps_size` gives for (h, w) (and >= the RGB size / 3), Bi of that size
        (grey) or 3x it (RGB); the inputs are returned unchanged when already valid.
        ``padding`` (:class:`EventPadding`) feeds :func:`crop_event_outputs`.

    Raises:
        ValueError: tensors not 4-D, empty, or with mismatched batch sizes; E and B of different
            sizes; B not 1-channel; Bi with a channel count other than 1 or 3, contradicting
            ``rgb``, a grey Bi not of the APS size, or an RGB Bi not ~3x the APS size; an
            unknown ``mode``. Nothing is resampled: sizes that do not describe the same field
            of view are an error, not something to pad away.
    """
    if mode not in _IMAGE_MODES:
        raise ValueError(f"unknown padding mode {mode!r}; expected one of {_IMAGE_MODES}")
    if Bi is None:
        if rgb:
            raise ValueError("rgb=True needs the RGB frame Bi")
        Bi = B
    _check_rank(E=E, B=B, Bi=Bi)
    _check_same_aps(E, B)
    if B.shape[1] != 1:
        raise ValueError(f"B must be a 1-channel APS frame (N, 1, h, w), got shape {tuple(B.shape)}")
    if not (E.shape[0] == B.shape[0] == Bi.shape[0]):
        raise ValueError(f"batch sizes differ: E {E.shape[0]}, B {B.shape[0]}, Bi {Bi.shape[0]}")
    if Bi.shape[1] not in (1, 3):
        raise ValueError(f"Bi must have 1 (grey) or 3 (RGB) channels, got shape {tuple(Bi.shape)}")
    is_rgb = Bi.shape[1] == 3 if rgb is None else bool(rgb)
    if is_rgb != (Bi.shape[1] == 3):
        raise ValueError(f"rgb={rgb} contradicts Bi of shape {tuple(Bi.shape)}")

    h, w = (int(s) for s in B.shape[-2:])
    H, W = (int(s) for s in Bi.shape[-2:])
    if is_rgb:
        if abs(H - RGB_SCALE * h) > 2 or abs(W - RGB_SCALE * w) > 2:
            raise ValueError(
                f"RGB frame {H}x{W} is not {RGB_SCALE}x the APS frame {h}x{w} (expected "
                f"{RGB_SCALE * h}x{RGB_SCALE * w}, +-2 pixels); register/crop the hybrid camera's "
                "frames to the same field of view first"
            )
        target = valid_aps_size(max(h, -(-H // RGB_SCALE)), max(w, -(-W // RGB_SCALE)), grid)
        image_target = (RGB_SCALE * target[0], RGB_SCALE * target[1])
    else:
        if (H, W) != (h, w):
            raise ValueError(f"grey Bi {tuple(Bi.shape)} must have the APS size {h}x{w} (Bi = B)")
        target = valid_aps_size(h, w, grid)
        image_target = target
    padding = EventPadding((h, w), (H, W), target, image_target, is_rgb)
    return PaddedEventInputs(
        _pad_to(E, target, "constant"), _pad_to(B, target, mode), _pad_to(Bi, image_target, mode), padding
    )


def crop_event_outputs(outputs: Any, padding: EventPadding) -> Any:
    """Crop the padding added by :func:`pad_event_inputs` off the network's outputs.

    Args:
        outputs: the forward's ``(F, Bi_clean, S)`` tuple, or any tensor / list / tuple of
            tensors (..., H', W') whose spatial size is the padded APS size (cropped to the APS
            size, e.g. ``F``) or the padded image size (cropped to the image size).
        padding: the :class:`EventPadding` of the call.

    Returns:
        The same structure (tuple, list or tensor) with every tensor cropped (views, no copy).

    Raises:
        ValueError: a tensor whose spatial size is neither padded size.
        TypeError: ``outputs`` holds something other than tensors.
    """
    if isinstance(outputs, (list, tuple)):
        cropped = [crop_event_outputs(o, padding) for o in outputs]
        return type(outputs)(cropped) if isinstance(outputs, tuple) else cropped
    if not isinstance(outputs, Tensor):
        raise TypeError(f"cannot crop a {type(outputs).__name__}; expected tensors")
    size = tuple(int(s) for s in outputs.shape[-2:])
    if outputs.dim() >= 2 and size == padding.padded_image_size:
        h, w = padding.image_size
    elif outputs.dim() >= 2 and size == padding.padded_aps_size:
        h, w = padding.aps_size
    else:
        raise ValueError(
            f"output of spatial size {size} matches neither the padded APS size "
            f"{padding.padded_aps_size} nor the padded image size {padding.padded_image_size}"
        )
    return outputs[..., :h, :w]


# ---------------------------------------------------------------------------------- registry
def infer_evdeblur_config(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Guess ``init_dim``, ``n_ev`` and ``norm_type`` from a state dict of this network.

    ``init_dim`` = 4 x output channels of ``B_edge_feature_extraction.0.weight``; ``n_ev`` =
    input channels of ``E_feature_extraction.0.weight``; ``norm_type="batch"`` when the flow
    head holds BatchNorm statistics. (RGB or grey is told by the registry name: ``up.*`` keys
    exist only in ``evdeblur_rgb``.) Returns ``{}`` if the keys are absent.
    """
    edge = state_dict.get("B_edge_feature_extraction.0.weight")
    ev = state_dict.get("E_feature_extraction.0.weight")
    if edge is None or ev is None or len(getattr(edge, "shape", ())) != 4 or len(getattr(ev, "shape", ())) != 4:
        return {}
    norm = "batch" if "flow_block.1.running_mean" in state_dict else "instance"
    return {"init_dim": 4 * int(edge.shape[0]), "n_ev": int(ev.shape[1]), "norm_type": norm}


def _primary(out: Any) -> Tensor:
    if isinstance(out, (list, tuple)) and len(out) == 3 and isinstance(out[2], Tensor):
        return out[2]
    raise TypeError("evdeblur output must be the (F, Bi_clean, S) tuple")


_PAPER = "Zhou et al., Deblurring Low-Light Images with Events, IJCV 2023"
_REPO = "fourson/Deblurring-Low-Light-Images-with-Events"
_COMMIT = "1f6e2f3077e84fe5533722433008efefaf808ec6"
_NOTES = (
    "E: normalised 13-bin voxel grid (E2VID normalize_events), signed, not in [0, 1]; B/Bi linear "
    "intensity in [0, 1] (no gamma). APS height a multiple of 8 (>= 16) and width a multiple of "
    "40 (size_multiple=40 is a sufficient bound); pad_event_inputs / crop_event_outputs make any "
    "size work. F passes a final ReLU as official (signed_flow=True drops it). "
    "Official training init: init='official'."
)

register_model(
    "evdeblur",
    ModelDescriptor(
        name="evdeblur",
        system="evdeblur",
        paper=_PAPER,
        official=OfficialSource(repo=_REPO, file="model/model_full.py", cls="DefaultModel", commit=_COMMIT,
                                note="config/full.json; released checkpoint final.pth"),
        input_kinds=("voxel_grid", "grey_aps", "grey_aps"),
        value_range=(0.0, 1.0),
        size_multiple=40,
        outputs=(
            "tuple (F, Bi_clean, S): F (N,4,h,w) flows >= 0; Bi_clean (N,1,h,w) denoised blurry APS "
            "in [0,1]; S (N,1,h,w) sharp APS in [0,1]"
        ),
        defaults={"rgb": False},
        primary=_primary,
        infer_config=infer_evdeblur_config,
        notes="Grey APS model; Bi is B itself. " + _NOTES,
    ),
    EvDeblurNet,
)

register_model(
    "evdeblur_rgb",
    ModelDescriptor(
        name="evdeblur_rgb",
        system="evdeblur",
        paper=_PAPER,
        official=OfficialSource(repo=_REPO, file="model/model_full.py", cls="DefaultModel", commit=_COMMIT,
                                note="DefaultModel(rgb=True); config/full_rgb.json; released checkpoint final_rgb.pth"),
        input_kinds=("voxel_grid", "grey_aps", "rgb"),
        value_range=(0.0, 1.0),
        size_multiple=40,
        outputs=(
            "tuple (F, Bi_clean, S): F (N,4,h,w) flows >= 0 at APS size; Bi_clean (N,3,3h,3w) denoised "
            "blurry RGB in [0,1]; S (N,3,3h,3w) sharp RGB in [0,1]"
        ),
        defaults={"rgb": True},
        primary=_primary,
        infer_config=infer_evdeblur_config,
        notes="RGB-DAVIS hybrid model; the RGB frame Bi is exactly 3x the APS size. " + _NOTES,
    ),
    EvDeblurNet,
)
