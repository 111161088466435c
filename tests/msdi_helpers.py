"""Helpers shared by the MSDI-Net training / protocol tests: tiny networks with settled spectral
norms, their degradation-part files, a random VGG19 weights file in torchvision's key layout."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from deblurkit.losses import VGGFeatureExtractor
from deblurkit.models import build
from deblurkit.models.msdi import extract_msdi_parts

TINY = {"wf": 4, "spade_hidden": 8}


def settle_spectral_norms(net: nn.Module) -> nn.Module:
    """Set every spectral norm's (u, v) to the top singular pair of its weight (what trained
    checkpoints carry), so an untrained network is usable in eval()."""
    with torch.no_grad():
        for mod in net.modules():
            if hasattr(mod, "weight_orig") and hasattr(mod, "weight_u"):
                w = mod.weight_orig.reshape(mod.weight_orig.shape[0], -1)
                u, _, vh = torch.linalg.svd(w, full_matrices=False)
                mod.weight_u.copy_(u[:, 0])
                mod.weight_v.copy_(vh[0])
    return net


def tiny(name: str, seed: int = 0, **kw) -> nn.Module:
    torch.manual_seed(seed)
    return settle_spectral_norms(build(name, **{**TINY, **kw}))


def write_parts(folder: Path, version: int, seed: int = 0) -> tuple[Path, Path]:
    """Degradation parts of a tiny network as released (plain state dicts): v1 net_E.pth +
    prior_upsampling.pth, v2 net2.pth + prior_upsampling2.pth."""
    folder.mkdir(parents=True, exist_ok=True)
    net = tiny("msdi_net" if version == 1 else "msdi2e", seed)
    parts = extract_msdi_parts(net)
    names = ("net_E.pth", "prior_upsampling.pth") if version == 1 else ("net2.pth", "prior_upsampling2.pth")
    paths = (folder / names[0], folder / names[1])
    torch.save(dict(parts["encoder"]), paths[0])
    torch.save(dict(parts["prior"]), paths[1])
    return paths


def write_random_vgg19(path: Path) -> Path:
    """A VGG19 ``features.*`` file in torchvision's layout with random (PyTorch default) weights."""
    torch.manual_seed(0)
    torch.save(VGGFeatureExtractor(("relu1_1",), "vgg19").state_dict(), path)
    return path
