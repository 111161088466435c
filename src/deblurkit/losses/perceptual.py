"""VGG perceptual loss, configured by default as Blur2Blur's ``VGGLoss``.

Blur2Blur (VinAIResearch/Blur2Blur, commit ee12450c300e1eed9752b4e8a1a487b2a69f833e,
``models/losses/vgg_loss.py``) defines ``VGGLoss`` = ``VGG16`` (NOT the ``VGG19`` class of the
same file, whose hard-coded weights path is never used) on torchvision's ImageNet
``vgg16(pretrained=True)``, with five slices ``features[0:8]``, ``[8:15]``, ``[15:18]``,
``[18:22]``, ``[22:25]`` and weights ``[1/32, 1/16, 1/8, 1/4, 1]``::

    loss = sum_i w_i * L1_mean(vgg_i(x), vgg_i(y).detach())

The slices END on convolutions (indices 7, 14, 17, 21, 24 = conv2_2, conv3_3, conv4_1, conv4_3,
conv5_1) but each of the first four is followed by torchvision's ``ReLU(inplace=True)`` at the
start of the next slice, which overwrites the stored slice output before the loss reads it. The
features actually compared are therefore, in this order:

    relu2_2, relu3_3, relu4_1, relu4_3, conv5_1   (weights 1/32, 1/16, 1/8, 1/4, 1)

(the last one is a pre-activation: nothing follows ``features[24]``). Images go in as they are,
RGB in [0, 1] (Blur2Blur's ``get_transform`` has no ``Normalize``); there is NO ImageNet
mean/std normalisation. The VGG is frozen (``requires_grad=False``); the target's features are
detached. In ``Blur2BlurModel.backward_G`` the loss compares each of the generator's three
outputs with the input blurry image at the same scale (``F.interpolate(real_A,
scale_factor=0.25 / 0.5, mode='bilinear')`` and full size), sums the three, and multiplies by
``lambda_Perc`` = 0.8.
"""
from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .vgg import VGGFeatureExtractor

__all__ = [
    "BLUR2BLUR_VGG_LAYERS",
    "BLUR2BLUR_VGG_WEIGHTS",
    "VGGPerceptualLoss",
    "blur2blur_perceptual_loss",
]

#: Features Blur2Blur's ``VGGLoss`` compares (VGG16, after the in-place ReLU effect described above).
BLUR2BLUR_VGG_LAYERS: tuple[str, ...] = ("relu2_2", "relu3_3", "relu4_1", "relu4_3", "conv5_1")
#: Their weights in ``VGGLoss.weights``.
BLUR2BLUR_VGG_WEIGHTS: tuple[float, ...] = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)

_CRITERIA = {"l1": F.l1_loss, "mse": F.mse_loss}


class VGGPerceptualLoss(nn.Module):
    """Weighted sum over VGG layers of the mean distance between features of ``x`` and ``y``.

    Args:
        weights: path of the VGG weights file (torchvision's ``vgg16-397923af.pth`` /
            ``vgg19-dcbb9e9d.pth`` or a ``.safetensors`` with the same keys; see
            :class:`~deblurkit.losses.vgg.VGGFeatureExtractor`), or an existing
            :class:`~deblurkit.losses.vgg.VGGFeatureExtractor` to use (it is frozen and put in
            eval mode here).
        arch: ``"vgg16"`` (Blur2Blur) or ``"vgg19"``; ignored when ``weights`` is an extractor
            (its own ``arch`` and ``normalize`` apply).
        layers: layer names (default Blur2Blur's :data:`BLUR2BLUR_VGG_LAYERS`).
        layer_weights: one weight per layer (default :data:`BLUR2BLUR_VGG_WEIGHTS`).
        criterion: ``"l1"`` (Blur2Blur; ``nn.L1Loss(reduction='mean')``) or ``"mse"``.
        normalize: ImageNet mean/std normalisation of both inputs (off for Blur2Blur); ignored
            when ``weights`` is an extractor.

    Forward:
        x: (N, 3, H, W) prediction, y: (N, 3, H, W) target; float RGB in [0, 1] (H, W >= 16 for
            the default layers, which lie behind four max-pools).
        returns: scalar tensor ``sum_i w_i * mean|phi_i(x) - phi_i(y)|`` (``>= 0``, ``0`` when
            ``x == y``). Gradients reach ``x`` only: ``y``'s features are computed without a
            graph (the official ``.detach()``) and the VGG's parameters are frozen.

    The VGG stays in ``eval()`` whatever ``train()`` is called with. Its weights are part of this
    module's ``state_dict`` (under ``vgg.features.*``).

    Raises:
        ValueError: unknown arch/layer/criterion, ``len(layer_weights) != len(layers)``; ``x`` and
            ``y`` of different shapes.
        FileNotFoundError, CheckpointReadError, CheckpointMismatchError: see
            :class:`~deblurkit.losses.vgg.VGGFeatureExtractor`.

    Follows ``VGGLoss`` / ``VGG16`` / ``VGGModel`` in VinAIResearch/Blur2Blur ``models/losses/vgg_loss.py``.
    """

    def __init__(
        self,
        weights: str | os.PathLike | VGGFeatureExtractor,
        *,
        arch: str = "vgg16",
        layers: Sequence[str] = BLUR2BLUR_VGG_LAYERS,
        layer_weights: Sequence[float] = BLUR2BLUR_VGG_WEIGHTS,
        criterion: str = "l1",
        normalize: bool = False,
    ) -> None:
        super().__init__()
        layers = tuple(layers)
        layer_weights = tuple(float(w) for w in layer_weights)
        if len(layers) != len(layer_weights):
            raise ValueError(f"{len(layers)} layers but {len(layer_weights)} layer_weights")
        if criterion not in _CRITERIA:
            raise ValueError(f"unknown criterion {criterion!r}; use one of {', '.join(_CRITERIA)}")
        if weights is None:
            raise ValueError(
                "VGGPerceptualLoss needs VGG weights: pass the path of torchvision's ImageNet file "
                "(e.g. vgg16-397923af.pth) or a VGGFeatureExtractor"
            )
        if isinstance(weights, VGGFeatureExtractor):
            vgg = weights
            vgg._check_layers(layers)  # names valid for its arch; the extractor's own layers stay
        else:
            vgg = VGGFeatureExtractor(layers, arch, weights, normalize=normalize)
        vgg.requires_grad_(False)
        vgg.eval()
        self.vgg = vgg
        self.layers = layers
        self.layer_weights = layer_weights
        self.criterion = criterion

    def train(self, mode: bool = True) -> "VGGPerceptualLoss":
        super().train(mode)
        self.vgg.eval()
        return self

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if x.shape != y.shape:
            raise ValueError(f"perceptual loss: x {tuple(x.shape)} and y {tuple(y.shape)} differ")
        fx = self.vgg(x, self.layers)
        with torch.no_grad():
            fy = self.vgg(y, self.layers)
        dist = _CRITERIA[self.criterion]
        loss = x.new_zeros(())
        for name, w in zip(self.layers, self.layer_weights):
            loss = loss + w * dist(fx[name], fy[name])
        return loss


def blur2blur_perceptual_loss(weights: str | os.PathLike | VGGFeatureExtractor) -> VGGPerceptualLoss:
    """Blur2Blur's ``VGGLoss``: VGG16, layers :data:`BLUR2BLUR_VGG_LAYERS` with weights
    :data:`BLUR2BLUR_VGG_WEIGHTS`, L1 (mean), no input normalisation.

    ``weights``: torchvision's ``vgg16-397923af.pth`` (or a safetensors copy), or a VGG16
    :class:`~deblurkit.losses.vgg.VGGFeatureExtractor` (``normalize=False``). Raises as
    :class:`VGGPerceptualLoss` (``FileNotFoundError`` naming the path and where to get the file
    when it is absent), and ``ValueError`` for an extractor that is not a plain VGG16.
    """
    if isinstance(weights, VGGFeatureExtractor) and (weights.arch != "vgg16" or weights.normalize):
        raise ValueError(
            "Blur2Blur's perceptual loss uses a VGG16 without input normalisation, got a "
            f"{weights.arch} extractor with normalize={weights.normalize}"
        )
    return VGGPerceptualLoss(
        weights, arch="vgg16", layers=BLUR2BLUR_VGG_LAYERS, layer_weights=BLUR2BLUR_VGG_WEIGHTS,
        criterion="l1", normalize=False,
    )
