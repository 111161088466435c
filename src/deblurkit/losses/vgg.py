"""VGG16 / VGG19 feature extractor in plain PyTorch with torchvision's layout.

The convolutional part of torchvision's ``vgg16`` / ``vgg19`` (``torchvision/models/vgg.py``,
configurations "D" and "E", no batch norm) is rebuilt as ``features`` = ``nn.Sequential`` with
torchvision's indices, so the state dict has exactly torchvision's key names and shapes
(``features.0.weight``, ``features.0.bias``, ``features.2.weight``, ...) and torchvision's
ImageNet file loads strictly. torchvision itself is not needed, and nothing is downloaded: the
user supplies the weights file.

Layer names (``vgg_layer_names``) follow the usual convention, block b (1-5) and position i in
the block: ``conv{b}_{i}`` (convolution output), ``relu{b}_{i}`` (after its ReLU), ``pool{b}``
(after the block's 2x2 max-pool). VGG16 indices: conv1_1 0, relu1_1 1, conv1_2 2, relu1_2 3,
pool1 4, conv2_1 5, relu2_1 6, conv2_2 7, relu2_2 8, pool2 9, conv3_1 10, ..., conv3_3 14,
relu3_3 15, pool3 16, conv4_1 17, relu4_1 18, ..., conv4_3 21, relu4_3 22, pool4 23, conv5_1 24,
..., pool5 30. VGG19 has four convolutions in blocks 3-5 (pool5 at 36).

Weights: torchvision's ImageNet files (``vgg16-397923af.pth`` / ``vgg19-dcbb9e9d.pth``, see
:data:`TORCHVISION_WEIGHTS`), or any ``.pth`` / ``.safetensors`` with the same ``features.*``
keys (read by :func:`deblurkit.models.read_state_dict`, so ``{'state_dict': ...}`` wrappers and
``module.`` prefixes are undone). The file's ``classifier.*`` entries (the fully connected head)
are ignored: the extractor has no classifier.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from deblurkit.models.checkpoint import CheckpointMismatchError, diff_state_dicts, read_state_dict

__all__ = [
    "VGG_CONFIGS",
    "TORCHVISION_WEIGHTS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "vgg_layer_names",
    "VGGFeatureExtractor",
]

#: torchvision's ``cfgs`` for the two networks: output channels of each 3x3 convolution, "M" for a
#: 2x2 stride-2 max-pool (each convolution is followed by a ReLU).
VGG_CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (
        64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
        512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
    ),
}

#: Where torchvision's ImageNet weights (``IMAGENET1K_V1``, what ``pretrained=True`` loads) live.
TORCHVISION_WEIGHTS: dict[str, str] = {
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "vgg19": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
}

#: ImageNet statistics torchvision's VGGs were trained with (RGB, for inputs in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_arch(arch: str) -> tuple[int | str, ...]:
    try:
        return VGG_CONFIGS[arch]
    except KeyError:
        raise ValueError(f"unknown VGG {arch!r}; use one of {', '.join(VGG_CONFIGS)}") from None


def vgg_layer_names(arch: str = "vgg16") -> list[str]:
    """Names of the modules of ``features`` in index order (``names[i]`` is ``features.<i>``).

    Raises:
        ValueError: unknown ``arch``.
    """
    names: list[str] = []
    block, pos = 1, 1
    for v in _check_arch(arch):
        if v == "M":
            names.append(f"pool{block}")
            block, pos = block + 1, 1
        else:
            names += [f"conv{block}_{pos}", f"relu{block}_{pos}"]
            pos += 1
    return names


def _missing_weights_message(arch: str, path: Path) -> str:
    url = TORCHVISION_WEIGHTS[arch]
    return (
        f"{arch.upper()} weights file not found: {path}. deblurkit does not download weights: get "
        f"torchvision's ImageNet file {url.rsplit('/', 1)[-1]} from {url} (torchvision's "
        f"models.{arch}(weights='IMAGENET1K_V1') also caches it in ~/.cache/torch/hub/checkpoints/) "
        "and pass its path; a .safetensors file with the same 'features.*' keys works too."
    )


class VGGFeatureExtractor(nn.Module):
    """Features of a VGG16/VGG19 at named layers.

    Args:
        layers: layer names to return (see :func:`vgg_layer_names`), e.g.
            ``("relu2_2", "relu3_3", "relu4_1", "relu4_3", "conv5_1")``; any order, no repeats.
        arch: ``"vgg16"`` or ``"vgg19"``.
        weights: path of a ``.pth`` / ``.safetensors`` with torchvision's ``features.*`` keys
            (``classifier.*`` entries are ignored), loaded strictly; ``None`` keeps PyTorch's
            random initialisation (for tests, or to load weights later with ``load_weights`` /
            ``load_state_dict``).
        normalize: subtract :data:`IMAGENET_MEAN` and divide by :data:`IMAGENET_STD` before the
            first convolution (inputs in [0, 1]). Off by default: Blur2Blur feeds raw [0, 1] images.
        requires_grad: leave the parameters trainable; by default they are frozen
            (``requires_grad=False``) and the module is put in ``eval()`` mode.

    State dict: exactly torchvision's ``features.<i>.weight`` / ``features.<i>.bias`` for every
    convolution of the full network (all 13 / 16 convolutions, whatever ``layers`` asks for; the
    normalisation constants are non-persistent buffers). ReLUs are not in place, so ``conv*`` and
    ``relu*`` of the same convolution can both be requested.

    Forward:
        x: (N, 3, H, W) float RGB (in [0, 1] when ``normalize``); H, W >= 2^(pools before the
            deepest requested layer).
        layers: optional override of the constructor's ``layers`` for this call.
        returns: ``dict`` name -> feature map (N, C, H / 2^p, W / 2^p) (p = pools before the layer),
            in the order of ``layers``. Only the modules up to the deepest requested layer run.

    Raises:
        ValueError: unknown ``arch`` or layer name, repeated or empty ``layers``; an input that is
            not (N, 3, H, W).
        FileNotFoundError: ``weights`` does not exist (the message says where to get the file).
        deblurkit.models.CheckpointReadError: unreadable file.
        deblurkit.models.CheckpointMismatchError: the file's ``features.*`` keys or shapes differ
            from the network's (lists missing, unexpected and wrong-shape keys).

    Follows torchvision ``models/vgg.py`` (``VGG.features`` built by ``make_layers(cfgs['D'/'E'])``).
    """

    def __init__(
        self,
        layers: Sequence[str] = ("relu2_2", "relu3_3", "relu4_1", "relu4_3", "conv5_1"),
        arch: str = "vgg16",
        weights: str | os.PathLike | None = None,
        *,
        normalize: bool = False,
        requires_grad: bool = False,
    ) -> None:
        super().__init__()
        cfg = _check_arch(arch)
        self.arch = arch
        self.layer_names = vgg_layer_names(arch)
        self._index = {name: i for i, name in enumerate(self.layer_names)}
        self.layers = self._check_layers(layers)
        self.normalize = bool(normalize)

        modules: list[nn.Module] = []
        in_ch = 3
        for v in cfg:
            if v == "M":
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                modules += [nn.Conv2d(in_ch, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                in_ch = int(v)
        self.features = nn.Sequential(*modules)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

        if weights is not None:
            self.load_weights(weights)
        if not requires_grad:
            self.requires_grad_(False)
            self.eval()

    def _check_layers(self, layers: Sequence[str]) -> tuple[str, ...]:
        if isinstance(layers, str):
            layers = (layers,)
        layers = tuple(layers)
        if not layers:
            raise ValueError("layers is empty; name at least one VGG layer, e.g. 'relu2_2'")
        bad = [name for name in layers if name not in self._index]
        if bad:
            raise ValueError(f"unknown {self.arch} layer(s) {bad}; valid: {', '.join(self.layer_names)}")
        if len(set(layers)) != len(layers):
            raise ValueError(f"repeated layer names in {list(layers)}")
        return layers

    def load_weights(self, path: str | os.PathLike) -> "VGGFeatureExtractor":
        """Load torchvision-layout weights from ``path`` (in place, strict on ``features.*``).

        Nothing is copied unless every ``features.*`` key of the network is in the file with the
        same shape and the file has no other ``features.*`` (or non-``classifier``) key.

        Returns ``self``. Raises ``FileNotFoundError``, ``CheckpointReadError``,
        ``CheckpointMismatchError`` as described in the class docstring.
        """
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(_missing_weights_message(self.arch, p))
        sd = read_state_dict(p)
        sd = {k: v for k, v in sd.items() if not k.startswith("classifier.")}
        d = diff_state_dicts(self.state_dict(), sd)
        if not d.exact:
            lines = [f"{p}: not torchvision {self.arch} weights (features.* keys must match exactly)"]
            if d.missing:
                lines.append(f"  missing: {', '.join(d.missing[:20])}{' ...' if len(d.missing) > 20 else ''}")
            if d.unexpected:
                lines.append(
                    f"  unexpected: {', '.join(d.unexpected[:20])}{' ...' if len(d.unexpected) > 20 else ''}"
                )
            for k, exp, got in d.wrong_shape[:20]:
                lines.append(f"  wrong shape {k}: expected {exp}, got {got}")
            if any(k.endswith("running_mean") for k in d.unexpected):
                lines.append("  (the file looks like a batch-norm VGG, e.g. vgg16_bn; use the plain VGG)")
            raise CheckpointMismatchError(
                "\n".join(lines), path=str(p), missing=d.missing, unexpected=d.unexpected,
                wrong_shape=d.wrong_shape,
            )
        self.load_state_dict(sd, strict=True)
        return self

    def forward(self, x: Tensor, layers: Sequence[str] | None = None) -> dict[str, Tensor]:
        names = self.layers if layers is None else self._check_layers(layers)
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG expects (N, 3, H, W), got {tuple(x.shape)}")
        wanted: Mapping[int, str] = {self._index[n]: n for n in names}
        last = max(wanted)
        h = (x - self.mean) / self.std if self.normalize else x
        found: dict[str, Tensor] = {}
        for i, module in enumerate(self.features):
            h = module(h)
            if i in wanted:
                found[wanted[i]] = h
            if i == last:
                break
        return {n: found[n] for n in names}
