"""Blur2Blur's test pipeline: convert an unknown camera's blur into the known blur, then deblur.

    >>> from deblurkit.inference.blur2blur import Blur2BlurDeblurrer
    >>> d = Blur2BlurDeblurrer("runs/conv/weights.safetensors")             # + the embedded default
    >>> d = Blur2BlurDeblurrer("conv.safetensors", "mimo_unet:MIMO-UNet.pkl")  # + any zoo model
    >>> d.deblur_files(["photo.jpg"], "out/")

The converter is the Blur2Blur generator (``mimo_unet`` trained by the ``blur2blur`` recipe);
its full-resolution output (the last of its three scales), clamped to [0, 1], is what
VinAIResearch/Blur2Blur's ``test.py`` saves (``fake_B_``), and the deblurrer then restores that
image. Both networks get the usual padding/tiling of :class:`~deblurkit.inference.Deblurrer`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from .deblurrer import Deblurrer

__all__ = ["Blur2BlurDeblurrer", "parse_deblurrer_spec", "load_converter"]


def parse_deblurrer_spec(spec: str | None) -> tuple[str | None, Path | None]:
    """``"NAME[:CKPT]"`` -> (model name or None for the embedded default, checkpoint or None).

    ``None``, ``""`` and ``"default"`` mean the embedded default model.

    Raises:
        ValueError: ``default:CKPT`` (the default model has its own weights).
    """
    if spec is None or spec.strip() in ("", "default"):
        return None, None
    name, sep, ckpt = spec.partition(":")
    name = name.strip()
    if name == "default":
        raise ValueError(f"--deblurrer {spec!r}: 'default' is the embedded model and takes no checkpoint; "
                         "use NAME:CKPT for a zoo model with weights")
    return name, (Path(ckpt) if sep and ckpt else None)


def load_converter(weights: str | os.PathLike, **kwargs: Any) -> Deblurrer:
    """A :class:`Deblurrer` running the Blur2Blur converter stored in ``weights``.

    The network and its options come from the JSON sidecar written by ``deblurkit train``
    (``<weights>.json``) when present, else ``mimo_unet`` with options detected from the keys.

    Raises:
        FileNotFoundError: missing file. deblurkit.models.CheckpointMismatchError: not a converter.
    """
    p = Path(weights)
    if not p.is_file():
        raise FileNotFoundError(f"converter weights not found: '{p}' (train one with the blur2blur recipe, "
                                "configs/blur2blur_converter_*.yaml)")
    model, overrides = "mimo_unet", None
    side = p.with_suffix(".json")
    if side.is_file():
        try:
            meta = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"{side}: unreadable weights description ({e})") from None
        if not isinstance(meta, dict):
            raise ValueError(f"{side}: weights description must be a JSON object, got {type(meta).__name__}")
        model = meta.get("model", model)
        overrides = dict(meta.get("overrides", {}))
    return Deblurrer(model=model, weights=p, model_overrides=overrides, **kwargs)


class Blur2BlurDeblurrer(Deblurrer):
    """Convert with a Blur2Blur converter, then deblur with any registered model.

    Args:
        converter: converter weights (``weights.safetensors`` of a ``blur2blur`` run, or a
            Blur2Blur ``latest_net_G.pth``; see :func:`load_converter`).
        deblurrer: ``"NAME[:CKPT]"`` (see :func:`parse_deblurrer_spec`); default: the embedded
            default model.
        device, precision, tile, tile_overlap, progress, batch_size, memory_budget_mb: as
            :class:`Deblurrer`, for both networks.

    :meth:`deblur_tensor` (and so ``deblur_file``/``deblur_files``): (N, C, H, W) or (C, H, W) in
    [0, 1] -> the deblurred converted image, same shape, clamped to [0, 1]; :meth:`convert` gives
    the converted (known-blur) image alone.

    Raises: as :class:`Deblurrer` for either network; ValueError for a bad ``deblurrer`` spec.
    """

    def __init__(self, converter: str | os.PathLike, deblurrer: str | None = "default", *,
                 device: str | torch.device = "cpu", precision: str = "fp32", tile: int | str | None = None,
                 tile_overlap: int = 32, progress: bool = True, batch_size: int = 1,
                 memory_budget_mb: float | None = None) -> None:
        kw = dict(device=device, precision=precision, tile=tile, tile_overlap=tile_overlap,
                  progress=progress, batch_size=batch_size, memory_budget_mb=memory_budget_mb)
        name, ckpt = parse_deblurrer_spec(deblurrer)
        self.converter = load_converter(converter, **kw)
        super().__init__(model=name, weights=ckpt, **kw)
        self.deblurrer_name = self.model_name
        self.model_name = f"blur2blur+{self.model_name}"

    def __repr__(self) -> str:
        return f"Blur2BlurDeblurrer(converter={str(self.converter.weights)!r}, deblurrer={self.deblurrer_name!r})"

    def convert(self, x: torch.Tensor, *, progress: Any = None) -> torch.Tensor:
        """The converter's output (unknown blur -> known blur), clamped to [0, 1]."""
        return self.converter.deblur_tensor(x, progress=progress)

    def deblur_tensor(self, x: torch.Tensor, *, progress: Any = None, clamp: bool = True) -> torch.Tensor:
        """Convert the blur of ``x`` ((N, C, H, W) or (C, H, W) in [0, 1]) into the known blur,
        then deblur it; same shape out, clamped to [0, 1] unless ``clamp=False``. Raises as
        :meth:`Deblurrer.deblur_tensor`."""
        return super().deblur_tensor(self.convert(x, progress=progress), progress=progress, clamp=clamp)
