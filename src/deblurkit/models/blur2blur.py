"""Blur2Blur's discriminator and its frozen blur-kernel network (Pham et al., *Blur2Blur: Blur
Conversion for Unsupervised Image Deblurring on Unknown Domains*, CVPR 2024).

Blur2Blur trains a generator (MIMO-UNet, :mod:`.mimo_unet`) that converts blurry images of an
unknown camera into the blur of a known one. This module re-implements the two other networks of
``models/blur2blur_model.py`` (VinAIResearch/Blur2Blur, commit
ee12450c300e1eed9752b4e8a1a487b2a69f833e), with identical state-dict keys, shapes and order and the
same forward computation and calling convention:

- ``patchgan_b2b`` (:class:`NLayerDiscriminator`): the discriminator ``netD``, built by
  ``models/networks.py`` ``define_D(3, 64, 'basic', 3, 'instance', 'normal', 0.02)``: the 70x70
  PatchGAN of pix2pix with instance norm. Its ``forward`` iterates over its argument: training
  calls it on the list of the generator's three scales ``[x_quarter, x_half, x_full]`` (shared
  weights) and gets a list of patch-logit maps back.
- ``kernel_wizard`` (:class:`KernelWizard`): the blur-kernel extractor F and re-blurring network G of
  Tran et al., *Explore Image Deblurring via Encoded Blur Kernel Space*, CVPR 2021
  (VinAIResearch/blur-kernel-space-exploring, ``models/kernel_encoding/kernel_wizard.py``, copied
  into Blur2Blur as ``models/explore/kernel_encoding/kernel_wizard.py``), configured as
  ``options/generate_blur/augmentation.yml`` (``GOPRO_woVAE.pth``). Blur2Blur keeps it frozen and
  uses it to turn sharp images of the unknown domain into images with the known camera's blur
  (``Blur2BlurModel.set_input``)::

      kernel_mean, kernel_sigma = net(sharp_known, blur_known)          # extract
      kernel = kernel_mean + kernel_sigma * torch.randn_like(kernel_mean)
      reblurred = net.adaptKernel(sharp_unknown, kernel)                 # re-blur

Value range: both networks work on RGB in [0, 1] (Blur2Blur's ``get_transform`` ends with
``ToTensor()``, its ``Normalize`` is commented out; BKSE reads ``cv2.imread(...) / 255``); there
is no [-1, 1] conversion anywhere.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from .layers.resblocks import NORM_TYPES, ResidualBlockNoBN, ResnetBlock, get_norm_layer, norm_uses_bias
from .mimo_unet import init_weights
from .registry import ModelDescriptor, OfficialSource, register_model

__all__ = [
    "NLayerDiscriminator",
    "KernelExtractor",
    "KernelAdapter",
    "UnetSkipConnectionBlock",
    "KernelWizard",
    "infer_patchgan_config",
    "infer_kernel_wizard_config",
]

_COMMIT = "ee12450c300e1eed9752b4e8a1a487b2a69f833e"
_PAPER = (
    "Pham et al., Blur2Blur: Blur Conversion for Unsupervised Image Deblurring on Unknown Domains, "
    "CVPR 2024"
)


def _check_norm(norm: str) -> None:
    if norm not in NORM_TYPES:
        raise ValueError(f"unknown norm {norm!r}; use one of {', '.join(NORM_TYPES)}")


# ============================================================================ discriminator
class NLayerDiscriminator(nn.Module):
    """PatchGAN discriminator (pix2pix), applied to every element of its argument.

    With the defaults (``n_layers=3``) this is the 70x70 PatchGAN: Conv4 s2 p1 ``input_nc -> ndf``
    (bias) + LeakyReLU(0.2); ``n_layers - 1`` times Conv4 s2 p1 + norm + LeakyReLU(0.2) with
    ``ndf * min(2^n, 8)`` channels; Conv4 s1 p1 + norm + LeakyReLU(0.2); Conv4 s1 p1 to 1 channel
    (bias). No sigmoid: the outputs are logits.

    Args:
        input_nc: image channels (3).
        ndf: channels of the first convolution (64).
        n_layers: stride-2 convolutions (3 = the 70x70 PatchGAN Blur2Blur uses).
        norm: ``"instance"`` (Blur2Blur: ``InstanceNorm2d(affine=False)``, convolutions with bias),
            ``"batch"`` (affine ``BatchNorm2d``, convolutions without bias) or ``"none"``
            (no norm and, as official, no bias on the inner convolutions).
        init: ``"default"`` keeps PyTorch's initialisation; ``"normal"`` (also ``"xavier"``,
            ``"kaiming"``, ``"orthogonal"``) applies :func:`deblurkit.models.init_weights` with
            ``init_gain``, as Blur2Blur's ``define_D`` -> ``init_net(net, 'normal', 0.02)``.
        init_gain: gain of that initialisation (0.02).

    Keys: ``model.{0,2,5,8,11}.{weight,bias}`` for the defaults (``model.<i>`` are the official
    ``nn.Sequential`` indices; batch norm adds ``model.{3,6,9}.*``).

    Forward:
        x: a list/tuple of image batches, each (N, input_nc, H, W) float RGB in [0, 1] (Blur2Blur
            passes the generator's three scales), or a tensor, which is iterated over its first
            dimension exactly as the official ``for each in x`` does (Blur2Blur's gradient penalty
            calls it on an (N, 3, H, W) batch and gets N unbatched maps (1, h, w)).
        returns: list with one patch-logit map per element, (N, 1, h, w) (or (1, h, w) for an
            unbatched element), with ``h = floor(H / 2^n_layers) - 2`` for even sizes
            (64 -> 6, 256 -> 30); every element needs H, W >= 24 for the defaults.

    Raises:
        ValueError: bad constructor arguments; an element that is not 3-D/4-D with ``input_nc``
            channels.

    Follows ``NLayerDiscriminator`` in VinAIResearch/Blur2Blur ``models/networks.py`` (whose
    ``forward`` takes an iterable, unlike pix2pix's).
    """

    def __init__(
        self,
        input_nc: int = 3,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "instance",
        init: str = "default",
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        _check_norm(norm)
        if int(n_layers) != n_layers or n_layers < 1:
            raise ValueError(f"n_layers must be an integer >= 1, got {n_layers!r}")
        if int(ndf) != ndf or ndf < 1 or int(input_nc) != input_nc or input_nc < 1:
            raise ValueError(f"input_nc and ndf must be positive integers, got {input_nc!r}, {ndf!r}")
        self.input_nc = int(input_nc)
        norm_layer = get_norm_layer(norm)
        use_bias = norm_uses_bias(norm)
        kw, padw = 4, 1

        seq: list[nn.Module] = [
            nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=2, padding=padw),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, int(n_layers)):
            prev, mult = mult, min(2**n, 8)
            seq += [
                nn.Conv2d(ndf * prev, ndf * mult, kernel_size=kw, stride=2, padding=padw, bias=use_bias),
                norm_layer(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        prev, mult = mult, min(2 ** int(n_layers), 8)
        seq += [
            nn.Conv2d(ndf * prev, ndf * mult, kernel_size=kw, stride=1, padding=padw, bias=use_bias),
            norm_layer(ndf * mult),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * mult, 1, kernel_size=kw, stride=1, padding=padw),
        ]
        self.model = nn.Sequential(*seq)

        if init != "default":
            init_weights(self, init, init_gain)

    def forward(self, x: Sequence[Tensor] | Tensor) -> list[Tensor]:
        outputs = []
        for i, each in enumerate(x):
            if not isinstance(each, Tensor) or each.dim() not in (3, 4) or each.shape[-3] != self.input_nc:
                got = tuple(each.shape) if isinstance(each, Tensor) else type(each).__name__
                raise ValueError(
                    f"PatchGAN element {i}: expected a (N, {self.input_nc}, H, W) or "
                    f"({self.input_nc}, H, W) tensor, got {got}; pass a list of scales, e.g. net([x])"
                )
            outputs.append(self.model(each))
        return outputs


def infer_patchgan_config(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Guess ``input_nc``, ``ndf``, ``n_layers`` and ``norm`` from a PatchGAN state dict.

    ``n_layers`` = number of 4-D ``model.<i>.weight`` convolutions minus 2; ``norm`` = ``batch``
    when 1-D ``model.<i>.weight`` entries exist, else ``instance`` when the second convolution has
    a bias, else ``none``. Returns ``{}`` if ``model.0.weight`` is absent.
    """
    w = state_dict.get("model.0.weight")
    if w is None or len(getattr(w, "shape", ())) != 4:
        return {}
    convs, norms = [], []
    for k, v in state_dict.items():
        parts = k.split(".")
        if len(parts) == 3 and parts[0] == "model" and parts[1].isdigit() and parts[2] == "weight":
            (convs if len(v.shape) == 4 else norms).append(int(parts[1]))
    convs.sort()
    if len(convs) < 3:
        return {}
    if norms:
        norm = "batch"
    else:
        norm = "instance" if f"model.{convs[1]}.bias" in state_dict else "none"
    return {"input_nc": int(w.shape[1]), "ndf": int(w.shape[0]), "n_layers": len(convs) - 2, "norm": norm}


# ============================================================================ kernel wizard
class KernelExtractor(nn.Module):
    """BKSE's kernel extractor F: features of the sharp and the blurry image -> kernel code.

    ``model`` (official indices): ReflectionPad2d(3), Conv7 ``2 nf -> nf``, norm, ReLU; five times
    Conv3 s2 p1 (``min(nf 2^i, D) -> min(nf 2^(i+1), D)``), norm, ReLU; ``n_blocks``
    :class:`~deblurkit.models.layers.resblocks.ResnetBlock` of width D, where D = ``kernel_dim``
    (``2 kernel_dim`` with ``use_vae``). With ``norm="none"`` no convolution has a bias.

    Args: as the ``KernelWizard`` options ``nf``, ``kernel_dim``, ``use_vae`` and the
        ``KernelExtractor`` sub-options ``norm``, ``n_blocks``, ``padding_type``, ``use_dropout``
        (``use_sharp`` is always true in the official configurations and is not an option).

    Forward:
        sharp, blur: (N, nf, H', W') features of the sharp and the blurry image.
        returns: ``(mean, sigma)``, each (N, kernel_dim, ceil(H'/32), ceil(W'/32)); without
        ``use_vae`` ``sigma`` is zeros (on the input's device; the official ``.cuda()`` is
        dropped), with it the two halves of the output channels.

    Deviation: with ``norm="batch"`` the official code sizes the norm of down-sampling step i as
    ``nf 2^(i+1)`` even where the convolution outputs fewer (``kernel_dim``) channels, which fails
    at run time; here the norm has the convolution's width. Identical for ``"none"``/``"instance"``.

    Follows ``KernelExtractor`` in VinAIResearch/Blur2Blur
    ``models/explore/kernel_encoding/kernel_wizard.py``.
    """

    def __init__(
        self,
        nf: int = 64,
        kernel_dim: int = 512,
        use_vae: bool = False,
        norm: str = "none",
        n_blocks: int = 4,
        padding_type: str = "reflect",
        use_dropout: bool = False,
    ) -> None:
        super().__init__()
        _check_norm(norm)
        self.kernel_dim = int(kernel_dim)
        self.use_vae = bool(use_vae)
        self.padding_type = padding_type
        norm_layer = get_norm_layer(norm)
        use_bias = norm_uses_bias(norm)
        out_nc = 2 * self.kernel_dim if self.use_vae else self.kernel_dim

        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(2 * nf, nf, kernel_size=7, padding=0, bias=use_bias),
            norm_layer(nf),
            nn.ReLU(True),
        ]
        for i in range(5):
            inc, ouc = min(nf * 2**i, out_nc), min(nf * 2 ** (i + 1), out_nc)
            layers += [
                nn.Conv2d(inc, ouc, kernel_size=3, stride=2, padding=1, bias=use_bias),
                norm_layer(ouc),
                nn.ReLU(True),
            ]
        for _ in range(int(n_blocks)):
            layers.append(ResnetBlock(out_nc, padding_type, norm, use_dropout, use_bias))
        self.model = nn.Sequential(*layers)

    def forward(self, sharp: Tensor, blur: Tensor) -> tuple[Tensor, Tensor]:
        out = self.model(torch.cat((sharp, blur), dim=1))
        if self.use_vae:
            return out[:, : self.kernel_dim], out[:, self.kernel_dim :]
        return out, torch.zeros_like(out)


class UnetSkipConnectionBlock(nn.Module):
    """One level of BKSE's kernel adapter U-Net (pix2pix's block with a kernel input).

    Roles (official attribute order ``down``, ``submodule``, ``up``; the innermost has no
    ``submodule``):

    - outermost: ``down = [Conv4 s2 p1]``; ``up = [ReLU, ConvTranspose4 s2 p1 (bias), Tanh]``;
      returns ``up(submodule(down(x), k))`` (no skip);
    - middle: ``down = [LeakyReLU(0.2), Conv4 s2 p1, norm]``; ``up = [ReLU, ConvTranspose4, norm]``;
      returns ``cat(up(submodule(down(x), k)), x)``;
    - innermost: ``down = [LeakyReLU(0.2), Conv4 s2 p1]``; ``up = [ReLU, ConvTranspose4, norm]``;
      returns ``cat(up(cat(down(x), k)), x)``: the kernel code k (N, kernel_nc, H/2, W/2) joins the
      bottleneck.

    Inner convolutions have a bias only with instance norm. The official down path applies its
    LeakyReLU in place, so its skip is ``leaky_relu(x)`` instead of ``x``; every skip is consumed
    by the parent's up path, which starts with ReLU, and ``relu(leaky_relu(x)) == relu(x)`` (values
    and gradients), so this out-of-place version computes the same outputs.

    Args:
        outer_nc, inner_nc: channels outside / inside this level; input_nc: input channels
            (default ``outer_nc``); submodule: the next-inner block; outermost, innermost: role;
            norm: ``"none"``, ``"batch"`` or ``"instance"``; kernel_nc: channels of the kernel code
            joined at the innermost level (official: ``inner_nc``, the up convolution takes
            ``2 inner_nc``).

    Follows ``UnetSkipConnectionBlock`` in VinAIResearch/Blur2Blur
    ``models/explore/backbones/unet_parts.py``.
    """

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: "UnetSkipConnectionBlock | None" = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "none",
        kernel_nc: int | None = None,
    ) -> None:
        super().__init__()
        if outermost == innermost and (outermost or submodule is None):
            raise ValueError("a block is outermost, innermost, or a middle block with a submodule")
        self.outermost, self.innermost = outermost, innermost
        norm_layer = get_norm_layer(norm)
        use_bias = norm_uses_bias(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)

        if outermost:
            self.down = nn.Sequential(downconv)
            self.submodule = submodule
            self.up = nn.Sequential(
                nn.ReLU(True),
                nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1),
                nn.Tanh(),
            )
        elif innermost:
            up_in = inner_nc + (inner_nc if kernel_nc is None else int(kernel_nc))
            self.down = nn.Sequential(nn.LeakyReLU(0.2), downconv)
            self.up = nn.Sequential(
                nn.ReLU(True),
                nn.ConvTranspose2d(up_in, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias),
                norm_layer(outer_nc),
            )
        else:
            self.down = nn.Sequential(nn.LeakyReLU(0.2), downconv, norm_layer(inner_nc))
            self.submodule = submodule
            self.up = nn.Sequential(
                nn.ReLU(True),
                nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias),
                norm_layer(outer_nc),
            )

    def forward(self, x: Tensor, kernel: Tensor) -> Tensor:
        if self.outermost:
            return self.up(self.submodule(self.down(x), kernel))
        if self.innermost:
            return torch.cat((self.up(torch.cat((self.down(x), kernel), dim=1)), x), dim=1)
        return torch.cat((self.up(self.submodule(self.down(x), kernel)), x), dim=1)


class KernelAdapter(nn.Module):
    """BKSE's kernel adapter G: a 5-level U-Net on the sharp image's features that injects the
    kernel code at its bottleneck.

    Levels (outer -> inner): ``nf -> nf``, ``nf -> 2nf``, ``2nf -> 4nf``, ``4nf -> 8nf``,
    ``8nf -> 8nf`` (innermost, joined by the kernel code); the output ends with Tanh.

    Forward:
        x: (N, nf, H', W') features with H', W' multiples of 32; kernel: (N, kernel_dim, H'/32, W'/32).
        returns: (N, nf, H', W') in (-1, 1).

    Follows ``KernelAdapter`` in VinAIResearch/Blur2Blur ``models/explore/kernel_encoding/kernel_wizard.py``.
    """

    def __init__(self, nf: int = 64, norm: str = "none", kernel_dim: int | None = None) -> None:
        super().__init__()
        _check_norm(norm)
        block = UnetSkipConnectionBlock(nf * 8, nf * 8, innermost=True, norm=norm, kernel_nc=kernel_dim)
        block = UnetSkipConnectionBlock(nf * 4, nf * 8, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(nf * 2, nf * 4, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(nf, nf * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(nf, nf, input_nc=nf, submodule=block, outermost=True, norm=norm)

    def forward(self, x: Tensor, kernel: Tensor) -> Tensor:
        return self.model(x, kernel)


def _conv_out(n: int) -> int:
    """Output size of a 3x3 stride-2 padding-1 convolution."""
    return (n - 1) // 2 + 1


class KernelWizard(nn.Module):
    """BKSE's blur-kernel network as Blur2Blur uses it: kernel extraction and re-blurring.

    Parts (official attribute order = state-dict order):

    - ``feature_extractor`` (shared by every image): Conv3 ``input_nc -> nf`` + LeakyReLU(0.1),
      two Conv3 s2 + LeakyReLU(0.1) (H/4), ``front_RBs`` :class:`ResidualBlockNoBN`;
    - ``kernel_extractor``: :class:`KernelExtractor` on (sharp features, blurry features);
    - ``adapter``: :class:`KernelAdapter` on the sharp features and the kernel code;
    - ``recon_trunk``: ``back_RBs`` :class:`ResidualBlockNoBN`, Conv3 ``nf -> 4nf`` + PixelShuffle(2)
      + LeakyReLU(0.1), Conv3 ``nf -> 256`` + PixelShuffle(2) + LeakyReLU(0.1), Conv3 ``64 -> 64``
      + LeakyReLU(0.1), Conv3 ``64 -> input_nc`` (the 64s are hard-coded officially).

    Args:
        input_nc (3), nf (64), front_RBs (10), back_RBs (20), kernel_dim (512), use_vae (False):
            the official ``KernelWizard`` options (``N_frames`` and ``pretrained`` are unused).
        extractor_norm, n_blocks (4), padding_type (``"reflect"``), use_dropout (False): the
            ``KernelExtractor`` sub-options (``norm``); adapter_norm: the ``Adapter`` ``norm``.
            Official configurations use ``"none"`` for both.
        init_scale: residual blocks get the official kaiming x 0.1 initialisation; ``None`` keeps
            PyTorch's default (other layers always keep PyTorch's default, as official).

    Calls (the official names; Blur2Blur loads ``GOPRO_woVAE.pth`` strictly and runs it in eval):

    - ``net(x_sharp, x_blur)``: both (N, input_nc, H, W) RGB in [0, 1] of the same size (the known
      camera's aligned sharp/blurry pair). Returns ``(kernel_mean, kernel_sigma)``, each
      (N, kernel_dim, ceil(H/128), ceil(W/128)); ``kernel_sigma`` is zeros unless ``use_vae``. Needs
      ``ceil(H/128) >= 2`` (reflect padding of the 1-pixel-padded ResNet blocks), i.e. H, W > 128.
    - ``net.adaptKernel(x_sharp, kernel)`` (alias :meth:`adapt_kernel`): x_sharp (N, input_nc, H, W)
      RGB in [0, 1] with H, W multiples of 128; kernel (N, kernel_dim, H/128, W/128). Returns the
      re-blurred image (N, input_nc, H, W) = ``x_sharp + recon_trunk(adapter(features, kernel))``,
      in [0, 1] for a trained network but NOT clamped (BKSE clamps only when saving).

    Raises:
        ValueError: bad constructor arguments; inputs of the wrong rank/channels, mismatched
            sharp/blurry sizes, sizes too small or not multiples of 128, or a kernel of the wrong
            shape (the official network fails there with a size mismatch).

    Follows ``KernelWizard`` in VinAIResearch/Blur2Blur ``models/explore/kernel_encoding/kernel_wizard.py``
    (= blur-kernel-space-exploring ``models/kernel_encoding/kernel_wizard.py``).
    """

    def __init__(
        self,
        input_nc: int = 3,
        nf: int = 64,
        front_RBs: int = 10,
        back_RBs: int = 20,
        kernel_dim: int = 512,
        use_vae: bool = False,
        extractor_norm: str = "none",
        n_blocks: int = 4,
        padding_type: str = "reflect",
        use_dropout: bool = False,
        adapter_norm: str = "none",
        init_scale: float | None = 0.1,
    ) -> None:
        super().__init__()
        for name, v in (("input_nc", input_nc), ("nf", nf), ("kernel_dim", kernel_dim)):
            if int(v) != v or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name, v in (("front_RBs", front_RBs), ("back_RBs", back_RBs), ("n_blocks", n_blocks)):
            if int(v) != v or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
        if padding_type not in ("reflect", "replicate", "zero"):
            raise ValueError(f"unknown padding_type {padding_type!r}; use reflect, replicate or zero")
        _check_norm(extractor_norm)
        _check_norm(adapter_norm)
        self.input_nc, self.nf, self.kernel_dim = int(input_nc), int(nf), int(kernel_dim)
        self.padding_type = padding_type

        def lrelu() -> nn.Module:
            return nn.LeakyReLU(negative_slope=0.1)

        feats: list[nn.Module] = [
            nn.Conv2d(input_nc, nf, 3, 1, 1, bias=True), lrelu(),
            nn.Conv2d(nf, nf, 3, 2, 1, bias=True), lrelu(),
            nn.Conv2d(nf, nf, 3, 2, 1, bias=True), lrelu(),
        ]
        feats += [ResidualBlockNoBN(nf, init_scale) for _ in range(int(front_RBs))]
        self.feature_extractor = nn.Sequential(*feats)

        self.kernel_extractor = KernelExtractor(
            nf, kernel_dim, use_vae, extractor_norm, n_blocks, padding_type, use_dropout
        )
        self.adapter = KernelAdapter(nf, adapter_norm, kernel_dim)

        recon: list[nn.Module] = [ResidualBlockNoBN(nf, init_scale) for _ in range(int(back_RBs))]
        recon += [
            nn.Conv2d(nf, nf * 4, 3, 1, 1, bias=True), nn.PixelShuffle(2), lrelu(),
            nn.Conv2d(nf, 64 * 4, 3, 1, 1, bias=True), nn.PixelShuffle(2), lrelu(),
            nn.Conv2d(64, 64, 3, 1, 1, bias=True), lrelu(),
            nn.Conv2d(64, input_nc, 3, 1, 1, bias=True),
        ]
        self.recon_trunk = nn.Sequential(*recon)

    # ------------------------------------------------------------------ checks
    def _check_image(self, x: Tensor, what: str) -> None:
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != self.input_nc:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"KernelWizard {what}: expected (N, {self.input_nc}, H, W), got {got}")

    def kernel_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """(kernel_dim, h, w) of the kernel code :meth:`forward` extracts from H x W images."""
        h, w = height, width
        for _ in range(7):  # two feature convs + five extractor convs, each 3x3 stride 2
            h, w = _conv_out(h), _conv_out(w)
        return self.kernel_dim, h, w

    # ------------------------------------------------------------------ calls
    def forward(self, x_sharp: Tensor, x_blur: Tensor, *, reblur: bool = False):
        """Extract the kernel code of the blur that turns ``x_sharp`` into ``x_blur``.

        Returns ``(kernel_mean, kernel_sigma)``; see the class docstring for shapes and errors.
        ``reblur=True`` (not official; the training pass of BKSE's kernel_wizard in one call, so
        that DistributedDataParallel, which only wraps ``forward``, sees it) returns
        ``(adaptKernel(x_sharp, mean + sigma * eps), mean, sigma)`` with eps ~ N(0, 1).
        """
        if reblur:
            mean, sigma = self.forward(x_sharp, x_blur)
            return self.adaptKernel(x_sharp, mean + sigma * torch.randn_like(mean)), mean, sigma
        self._check_image(x_sharp, "x_sharp")
        self._check_image(x_blur, "x_blur")
        if x_sharp.shape != x_blur.shape:
            raise ValueError(
                f"KernelWizard: x_sharp {tuple(x_sharp.shape)} and x_blur {tuple(x_blur.shape)} differ"
            )
        _, kh, kw = self.kernel_shape(*x_sharp.shape[2:])
        if self.padding_type != "zero" and min(kh, kw) < 2:
            raise ValueError(
                f"KernelWizard: images of {tuple(x_sharp.shape[2:])} give a {kh}x{kw} kernel map, "
                "too small for the reflect-padded ResNet blocks; use H, W > 128 (multiples of 128)"
            )
        sharp = self.feature_extractor(x_sharp)
        blur = self.feature_extractor(x_blur)
        return self.kernel_extractor(sharp, blur)

    def adaptKernel(self, x_sharp: Tensor, kernel: Tensor) -> Tensor:  # noqa: N802 (official name)
        """Re-blur ``x_sharp`` with the blur encoded by ``kernel``.

        x_sharp (N, input_nc, H, W) in [0, 1], H and W multiples of 128; kernel
        (N, kernel_dim, H/128, W/128). Returns (N, input_nc, H, W), not clamped.

        Raises:
            ValueError: wrong input rank/channels, H or W not a multiple of 128, wrong kernel shape.
        """
        self._check_image(x_sharp, "x_sharp")
        n, _, h, w = x_sharp.shape
        if h % 128 or w % 128:
            raise ValueError(
                f"KernelWizard.adaptKernel needs H and W multiples of 128, got {(h, w)}; pad the input"
            )
        want = (n, self.kernel_dim, h // 128, w // 128)
        if not isinstance(kernel, Tensor) or tuple(kernel.shape) != want:
            got = tuple(kernel.shape) if isinstance(kernel, Tensor) else type(kernel).__name__
            raise ValueError(f"KernelWizard.adaptKernel: kernel must be {want} for x_sharp {(n, h, w)}, got {got}")
        feats = self.feature_extractor(x_sharp)
        out = self.recon_trunk(self.adapter(feats, kernel))
        return out + x_sharp

    def adapt_kernel(self, x_sharp: Tensor, kernel: Tensor) -> Tensor:
        """Snake-case alias of :meth:`adaptKernel` (same arguments, result and errors)."""
        return self.adaptKernel(x_sharp, kernel)


def infer_kernel_wizard_config(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Guess ``input_nc``, ``nf``, ``front_RBs``, ``back_RBs``, ``kernel_dim``, ``n_blocks`` and
    ``use_vae`` from a KernelWizard state dict (``{}`` if ``feature_extractor.0.weight`` is absent).

    ``kernel_dim`` = input channels of the adapter's innermost transposed convolution minus its
    bottleneck width ``8 nf``; ``use_vae`` = the extractor's last convolution is ``2 kernel_dim`` wide.
    """
    w = state_dict.get("feature_extractor.0.weight")
    if w is None or len(getattr(w, "shape", ())) != 4:
        return {}

    def blocks(prefix: str) -> set[int]:
        found = set()
        for k in state_dict:
            if k.startswith(prefix):
                head = k[len(prefix):].split(".", 1)
                if len(head) == 2 and head[0].isdigit() and head[1].startswith("conv"):
                    found.add(int(head[0]))
        return found

    nf = int(w.shape[0])
    cfg: dict[str, Any] = {
        "input_nc": int(w.shape[1]),
        "nf": nf,
        "front_RBs": len(blocks("feature_extractor.")),
        "back_RBs": len(blocks("recon_trunk.")),
    }
    rb = {k.split(".")[2] for k in state_dict if k.startswith("kernel_extractor.model.") and ".conv_block." in k}
    cfg["n_blocks"] = len(rb)
    inner = state_dict.get("adapter.model" + ".submodule" * 4 + ".up.1.weight")
    last = state_dict.get("kernel_extractor.model.16.weight")
    if inner is not None and last is not None:
        kernel_dim = int(inner.shape[0]) - 8 * nf
        cfg.update(kernel_dim=kernel_dim, use_vae=int(last.shape[0]) == 2 * kernel_dim)
    return cfg


def _no_image(name: str, what: str):
    def pick(out: Any) -> Tensor:
        raise TypeError(f"{name}'s forward returns {what}, not a restored image")

    return pick


register_model(
    "patchgan_b2b",
    ModelDescriptor(
        name="patchgan_b2b",
        system="blur2blur",
        paper=_PAPER + " (70x70 PatchGAN of Isola et al., pix2pix, CVPR 2017)",
        official=OfficialSource(
            repo="VinAIResearch/Blur2Blur", file="models/networks.py", cls="NLayerDiscriminator",
            commit=_COMMIT, note="define_D(3, 64, 'basic', 3, 'instance', 'normal', 0.02); "
            "forward iterates over a list of scales",
        ),
        input_kinds=("rgb_list",),
        value_range=(0.0, 1.0),
        size_multiple=1,
        outputs=(
            "list of patch-logit maps, one per element of the input list: (N,1,floor(H/8)-2,floor(W/8)-2) "
            "for even H, W; no sigmoid"
        ),
        defaults={"input_nc": 3, "ndf": 64, "n_layers": 3, "norm": "instance"},
        primary=_no_image("patchgan_b2b", "patch logits"),
        infer_config=infer_patchgan_config,
        notes=(
            "Call net([x_quarter, x_half, x]) as Blur2Blur's losses do (shared weights over the generator's "
            "three scales); a tensor argument is iterated over its batch dimension, as official. Inputs "
            "[0, 1] (no normalisation), at least 24x24. Blur2Blur trains it from init='normal' (N(0, 0.02))."
        ),
    ),
    NLayerDiscriminator,
)

register_model(
    "kernel_wizard",
    ModelDescriptor(
        name="kernel_wizard",
        system="blur2blur",
        paper=(
            "Tran et al., Explore Image Deblurring via Encoded Blur Kernel Space, CVPR 2021 "
            "(frozen blur-kernel model of " + _PAPER + ")"
        ),
        official=OfficialSource(
            repo="VinAIResearch/Blur2Blur", file="models/explore/kernel_encoding/kernel_wizard.py",
            cls="KernelWizard", commit=_COMMIT,
            note="copy of VinAIResearch/blur-kernel-space-exploring models/kernel_encoding/kernel_wizard.py; "
            "config options/generate_blur/augmentation.yml (GOPRO_woVAE.pth)",
        ),
        input_kinds=("rgb", "rgb"),
        value_range=(0.0, 1.0),
        size_multiple=128,
        outputs=(
            "net(x_sharp, x_blur) -> (kernel_mean, kernel_sigma), each (N,512,H/128,W/128), kernel_sigma "
            "zeros (use_vae=False); net.adaptKernel(x_sharp, kernel) / net.adapt_kernel -> re-blurred "
            "(N,3,H,W) = x_sharp + residual, not clamped"
        ),
        defaults={
            "input_nc": 3, "nf": 64, "front_RBs": 10, "back_RBs": 20, "kernel_dim": 512, "use_vae": False,
            "extractor_norm": "none", "n_blocks": 4, "padding_type": "reflect", "use_dropout": False,
            "adapter_norm": "none",
        },
        primary=_no_image("kernel_wizard", "a kernel code (use adaptKernel to re-blur)"),
        infer_config=infer_kernel_wizard_config,
        notes=(
            "Inputs RGB in [0, 1] (ToTensor / cv2 / 255), no [-1, 1] conversion. Blur2Blur loads "
            "GOPRO_woVAE.pth strictly, keeps it frozen in eval() and re-blurs unknown-domain sharp images "
            "with kernels extracted from known-camera sharp/blurry pairs. H, W multiples of 128 (>= 256 "
            "for extraction)."
        ),
    ),
    KernelWizard,
)
