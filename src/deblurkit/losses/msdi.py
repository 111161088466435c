"""Losses of MSDI-Net's two training stages (dasongli1/Learning_degradation, commit 9ba7c63).

Stage 1 (``basicsr/models/image_restoration2_model.py`` ``ImageRestorationModel2``, SPADE's
``models/networks/loss.py`` in ``basicsr/models/archs/loss.py``):

* :func:`hinge_generator_loss`, :func:`hinge_discriminator_loss` - ``GANLoss('hinge')`` on the
  last output (the patch logits) of every discriminator scale, averaged over scales;
* :func:`feature_matching_loss` - L1 between the discriminator's intermediate features of fake and
  real pairs, ``10 / num_D`` per feature map (``GAN_Feat``);
* :func:`msdi_vgg_loss` - ``VGGLoss``: VGG19 ``relu1_1, relu2_1, relu3_1, relu4_1, relu5_1``
  weighted ``1/32, 1/16, 1/8, 1/4, 1``, mean L1, target features detached, raw [0, 1] inputs (no
  ImageNet normalisation), from a user-supplied torchvision ``vgg19`` weights file.

Stage 2 (``basicsr/models/image_restoration_model.py`` ``ImageRestorationModel``):

* :class:`DegradationFeatureLoss` - the frozen degradation encoder's front (``ConvEncoderLoss`` of
  ``basicsr/models/archs/encoder1.py``, loaded from ``net_E.pth``): L1 between the five feature
  maps of the restored image and of the sharp image, summed (``l_blur``).
"""
from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.checkpoint import CheckpointMismatchError, read_state_dict
from .perceptual import VGGPerceptualLoss
from .vgg import VGGFeatureExtractor

__all__ = [
    "MSDI_VGG_LAYERS",
    "MSDI_VGG_WEIGHTS",
    "hinge_generator_loss",
    "hinge_discriminator_loss",
    "feature_matching_loss",
    "msdi_vgg_loss",
    "DegradationFeatureLoss",
]

#: Layers of SPADE's ``VGG19`` slices ``features[0:2], [2:7], [7:12], [12:21], [21:30]``.
MSDI_VGG_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
#: ``VGGLoss.weights``.
MSDI_VGG_WEIGHTS: tuple[float, ...] = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)

DiscOut = Sequence[Sequence[Tensor]]


def _logits(pred: DiscOut) -> list[Tensor]:
    if not pred:
        raise ValueError("empty discriminator output")
    return [p[-1] if isinstance(p, (list, tuple)) else p for p in pred]


def hinge_generator_loss(pred_fake: DiscOut) -> Tensor:
    """``mean_scales(-mean(logits_fake))`` (``GANLoss('hinge')(pred_fake, True, for_discriminator=False)``).

    ``pred_fake``: per scale, the discriminator's list of outputs (the last is the logits
    (N, 1, h, w)); returns a scalar.
    """
    logits = _logits(pred_fake)
    return sum(-t.mean() for t in logits) / len(logits)


def hinge_discriminator_loss(pred_fake: DiscOut, pred_real: DiscOut) -> tuple[Tensor, Tensor]:
    """``(D_fake, D_real)``: ``mean_scales(mean(relu(1 + logits_fake)))`` and
    ``mean_scales(mean(relu(1 - logits_real)))`` (``GANLoss('hinge')`` for the discriminator)."""
    fake, real = _logits(pred_fake), _logits(pred_real)
    d_fake = sum(F.relu(1.0 + t).mean() for t in fake) / len(fake)
    d_real = sum(F.relu(1.0 - t).mean() for t in real) / len(real)
    return d_fake, d_real


def feature_matching_loss(pred_fake: DiscOut, pred_real: DiscOut) -> Tensor:
    """``sum_scales sum_layers L1(feat_fake, feat_real.detach()) / num_scales`` over every output
    but the last (the logits) of each scale (``GAN_Feat`` without its factor 10; the official code
    multiplies each term by ``10 / num_D``).

    Raises ValueError when the two outputs have different structures.
    """
    if len(pred_fake) != len(pred_real):
        raise ValueError(f"{len(pred_fake)} fake scales but {len(pred_real)} real ones")
    total = pred_fake[0][0].new_zeros(())
    for f, r in zip(pred_fake, pred_real):
        for a, b in zip(list(f)[:-1], list(r)[:-1]):
            total = total + F.l1_loss(a, b.detach())
    return total / len(pred_fake)


def msdi_vgg_loss(weights: str | os.PathLike | VGGFeatureExtractor) -> VGGPerceptualLoss:
    """MSDI-Net's stage-1 ``VGGLoss`` (:data:`MSDI_VGG_LAYERS`, :data:`MSDI_VGG_WEIGHTS`, mean
    L1, no input normalisation) on a frozen VGG19.

    ``weights``: torchvision's ``vgg19-dcbb9e9d.pth`` (or a ``.safetensors`` with its
    ``features.*`` keys), or a VGG19 :class:`VGGFeatureExtractor`. Forward ``(x, y)``: (N, 3, H, W)
    in [0, 1], H, W >= 16; returns a scalar, gradients to ``x`` only.

    Raises:
        ValueError: ``weights`` is None, or an extractor that is not a VGG19 without normalisation.
        FileNotFoundError: the file is missing (the message says where torchvision's file comes
            from; nothing is downloaded). CheckpointMismatchError: not VGG19 weights.
    """
    if weights is None:
        raise ValueError(
            "MSDI-Net's stage-1 VGG loss needs VGG19 weights: set recipe.vgg_weights to the path of "
            "torchvision's vgg19-dcbb9e9d.pth (https://download.pytorch.org/models/vgg19-dcbb9e9d.pth)"
        )
    if isinstance(weights, VGGFeatureExtractor) and (weights.arch != "vgg19" or weights.normalize):
        raise ValueError(f"MSDI-Net's VGG loss uses a VGG19 without normalisation, got {weights.arch} "
                         f"with normalize={weights.normalize}")
    if not isinstance(weights, VGGFeatureExtractor):
        weights = VGGFeatureExtractor(MSDI_VGG_LAYERS, "vgg19", weights)
    return VGGPerceptualLoss(weights, layers=MSDI_VGG_LAYERS, layer_weights=MSDI_VGG_WEIGHTS, criterion="l1")


class DegradationFeatureLoss(nn.Module):
    """Stage-2 feature loss on the frozen degradation encoder (``ConvEncoderLoss``, ``l_blur``).

    The encoder front ``f1 = layer1(x)``, ``f2 = conv_7x7(pad3(lrelu(f1)))``,
    ``f3 = layer2(lrelu(f2))``, ``f4 = layer3(lrelu(f3))``, ``f5 = layer4(lrelu(f4))`` (spectral-
    normed 3x3 stride-2 convs + instance norm; no resizing: features of the full patch) compares
    the restored and the sharp image: ``sum_k mean|f_k(restored) - f_k(sharp)|``.

    Args:
        weights: the degradation encoder's weights: ``net_E.pth`` (v1, what the official stage 2
            loads for both msdi_net and msdi2_net) or a v2 ``net2.pth`` (its ``layer1-4`` and
            ``conv_7x7`` have the same shapes; a deblurkit option for runs without ``net_E.pth``),
            or a state dict. Only the five modules above are read, strictly (missing or wrong-shape
            keys raise); the width ``ndf`` comes from the file.

    Forward:
        restored, sharp: (N, 3, H, W) in [0, 1], H, W >= 16. Returns a scalar; gradients reach
        ``restored`` only (``sharp``'s features have no graph).

    The network is frozen for real: ``requires_grad=False`` and always ``eval()`` (spectral norm
    uses the stored ``weight_u``/``weight_v``). The official ``net_loss`` is left in training mode,
    so its spectral norms run a power iteration per forward (a few 1e-6 relative change of the
    divisor for converged vectors); that is not reproduced.

    Raises:
        FileNotFoundError / CheckpointReadError: unreadable file. CheckpointMismatchError: the file
        lacks one of the used keys or has wrong shapes.
    """

    _MODULES = ("layer1", "conv_7x7", "layer2", "layer3", "layer4")

    def __init__(self, weights: str | os.PathLike | dict) -> None:
        super().__init__()
        from ..models.msdi import DegradationEncoder

        where = "state dict" if isinstance(weights, dict) else str(weights)
        sd = dict(weights) if isinstance(weights, dict) else read_state_dict(weights)
        sd = {k[len("net_prior."):] if k.startswith("net_prior.") else k: v for k, v in sd.items()}
        w = sd.get("layer1.0.weight_orig")
        if w is None or w.dim() != 4:
            raise CheckpointMismatchError(
                f"{where}: not a degradation encoder (no 'layer1.0.weight_orig'; first keys {list(sd)[:5]})",
                path=where, missing=["layer1.0.weight_orig"], unexpected=[])
        enc = DegradationEncoder(int(w.shape[0]))
        used = {k: v for k, v in enc.state_dict().items() if k.split(".")[0] in self._MODULES}
        missing = [k for k in used if k not in sd]
        wrong = [(k, tuple(v.shape), tuple(sd[k].shape)) for k, v in used.items() if k in sd and sd[k].shape != v.shape]
        if missing or wrong:
            raise CheckpointMismatchError(
                f"{where}: does not fit the degradation encoder's layer1-4/conv_7x7: missing {missing[:8]}, "
                f"wrong shape {wrong[:8]}", path=where, missing=missing, unexpected=[], wrong_shape=wrong)
        enc.load_state_dict({**enc.state_dict(), **{k: sd[k] for k in used}})
        for name in [n for n, _ in enc.named_children() if n not in self._MODULES + ("actvn", "pad_3")]:
            delattr(enc, name)
        self.encoder = enc
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "DegradationFeatureLoss":
        super().train(False)
        return self

    def features(self, x: Tensor) -> list[Tensor]:
        """The five feature maps (N, ndf, H/2, W/2), (N, ndf, H/2, W/2), (N, 2ndf, H/4, W/4),
        (N, 4ndf, H/8, W/8), (N, 8ndf, H/16, W/16)."""
        e = self.encoder
        f1 = e.layer1(x)
        f2 = e.conv_7x7(e.pad_3(e.actvn(f1)))
        f3 = e.layer2(e.actvn(f2))
        f4 = e.layer3(e.actvn(f3))
        f5 = e.layer4(e.actvn(f4))
        return [f1, f2, f3, f4, f5]

    def forward(self, restored: Tensor, sharp: Tensor) -> Tensor:
        if restored.shape != sharp.shape:
            raise ValueError(f"restored {tuple(restored.shape)} and sharp {tuple(sharp.shape)} differ")
        fr = self.features(restored)
        with torch.no_grad():
            fs = self.features(sharp)
        return sum(F.l1_loss(a, b) for a, b in zip(fr, fs))
