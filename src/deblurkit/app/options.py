"""The run options chosen on the page (model, weights file, tiling, precision), validated.

Everything here raises :class:`~deblurkit.app.uploads.UploadError` with a message meant for
the page, so a bad choice is reported before any work is queued.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .uploads import UploadError

__all__ = ["RunOptions", "parse_options", "parse_weights", "image_models", "event_models", "WEIGHTS_SUFFIXES",
           "CLASSICAL", "EMBEDDED"]

#: Suffixes of checkpoint files the page accepts as a weights path
#: (what ``deblurkit.models.read_state_dict`` reads).
WEIGHTS_SUFFIXES = (".safetensors", ".pth", ".pt", ".pkl", ".ckpt")
#: The default run: classical blind deconvolution (``deblurkit.inference.classical``), no weights.
CLASSICAL = "classical"
#: The network whose weights ship with the package; runs without a weights file.
EMBEDDED = "mimo_unet_small"
#: Tile sides the page may ask for (pixels); "auto" and "off" are also accepted.
TILE_RANGE = (64, 4096)


@dataclass(frozen=True)
class RunOptions:
    """Validated options of one run.

    Attributes:
        model: :data:`CLASSICAL` (the default pipeline), :data:`EMBEDDED` (the embedded network)
            or a registry name.
        weights: an existing checkpoint file on the server's disk, or ``None``.
        precision: ``"fp32"`` or ``"bf16"``.
        tile: ``None`` (one pass), ``"auto"`` or a tile side in pixels.
    """

    model: str
    weights: Path | None
    precision: str
    tile: int | str | None

    @property
    def classical(self) -> bool:
        return self.model == CLASSICAL

    def deblurrer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the runner: ``ClassicalDeblurrer`` (tile) or ``Deblurrer``."""
        if self.classical:
            return {"tile": self.tile}
        return {"model": self.model, "weights": self.weights, "precision": self.precision, "tile": self.tile}


def _descriptors() -> list[Any]:
    from ..models import get_descriptor, list_models

    return [get_descriptor(n) for n in list_models()]


def image_models() -> list[str]:
    """Registered networks the page can run on one photo: a single RGB input and a restored
    image as output (their descriptor's ``outputs`` says "restored"/"deblurred"), i.e. what
    :class:`deblurkit.inference.Deblurrer` runs. Encoders, discriminators and reblurring nets
    are left out."""
    out = []
    for d in _descriptors():
        text = d.outputs.lower()
        if tuple(d.input_kinds) == ("rgb",) and ("restored" in text or "deblurred" in text):
            out.append(d.name)
    return out


def event_models() -> list[str]:
    """Registered networks that take an event voxel grid (the event-guided system)."""
    return [d.name for d in _descriptors() if "voxel_grid" in d.input_kinds]


def parse_weights(raw: str) -> Path | None:
    """The weights path typed on the page, checked: a ``WEIGHTS_SUFFIXES`` suffix (checked first,
    on the text alone), then an existing, readable, non-empty file. Every failure of the second
    kind gets the same message, so the answer never tells whether a path exists on this computer.

    Raises:
        UploadError: bad suffix, or the path is not a usable file.
    """
    raw = raw.strip()
    if not raw:
        return None
    path = Path(raw).expanduser()
    if path.suffix.lower() not in WEIGHTS_SUFFIXES:
        raise UploadError(
            f"weights file '{raw}' has suffix '{path.suffix}'; expected one of {', '.join(WEIGHTS_SUFFIXES)}"
        )
    try:
        usable = path.is_file() and os.access(path, os.R_OK) and path.stat().st_size > 0
    except OSError:
        usable = False
    if not usable:
        raise UploadError(f"weights file not found or not readable: '{raw}' (give the path of a "
                          "non-empty weights file on this computer)")
    return path.resolve()


def _parse_tile(raw: str) -> int | str | None:
    raw = (raw or "auto").strip().lower()
    if raw in ("off", "none", "0"):
        return None
    if raw == "auto":
        return "auto"
    try:
        tile = int(raw)
    except ValueError:
        raise UploadError(f"tile must be 'auto', 'off' or a number of pixels, got '{raw}'") from None
    lo, hi = TILE_RANGE
    if not lo <= tile <= hi:
        raise UploadError(f"tile must be between {lo} and {hi} pixels, got {tile}")
    return tile


def parse_options(params: Mapping[str, str], *, allowed_models: list[str]) -> RunOptions:
    """Validate the query parameters ``model``, ``weights``, ``precision`` and ``tile``.

    ``model`` empty, ``"default"`` or ``"classical"`` means the classical pipeline (no weights,
    fp32); ``"mimo_unet_small"`` the embedded network (weights optional); any other model needs a
    weights file (a randomly initialised network would return noise).

    Raises:
        UploadError: unknown model, missing/unreadable weights file, bad precision or tile.
    """
    model = (params.get("model") or "").strip() or CLASSICAL
    if model == "default":
        model = CLASSICAL
    if model not in (CLASSICAL, EMBEDDED) and model not in allowed_models:
        raise UploadError(
            f"unknown model '{model}'; choose one of: {CLASSICAL}, {EMBEDDED}, {', '.join(allowed_models)}"
        )
    weights = parse_weights(params.get("weights") or "")
    if model == CLASSICAL and weights is not None:
        raise UploadError("the classical pipeline takes no weights file; choose a network to use one")
    if model not in (CLASSICAL, EMBEDDED) and weights is None:
        raise UploadError(
            f"model '{model}' needs a weights file (a path on this computer); "
            "without one its output would be meaningless. Use the classical pipeline (the default) or "
            f"{EMBEDDED} (embedded weights) instead."
        )
    precision = (params.get("precision") or "fp32").strip().lower()
    if precision not in ("fp32", "bf16"):
        raise UploadError(f"precision must be 'fp32' or 'bf16', got '{precision}'")
    if model == CLASSICAL and precision != "fp32":
        raise UploadError("bf16 applies to networks; the classical pipeline runs in fp32")
    return RunOptions(model=model, weights=weights, precision=precision, tile=_parse_tile(params.get("tile", "auto")))
