"""Inference for the event-guided low-light deblurring networks (``evdeblur``, ``evdeblur_rgb``).

:class:`EventDeblurrer` loads the network and runs it the way the official
``execute/infer_full.py`` (fourson/Deblurring-Low-Light-Images-with-Events) does (batch of one,
``model(E, B, Bi)``, the sharp image ``S`` kept), adding what the official script leaves to the
user: the size constraints of the network (APS height a multiple of 8, width of 40, RGB exactly 3x
the APS) are met by padding the inputs (:func:`deblurkit.models.evdeblur.pad_event_inputs`) and
cropping the outputs back, so any frame size works (e.g. the DAVIS346's 260 x 346); the voxel
grid can be normalised here (E2VID normalisation, as the official loaders do on reading).

    >>> d = EventDeblurrer("evdeblur", weights="final.safetensors")   # doctest: +SKIP
    >>> out = d.run(voxel, aps, normalize=True)                        # doctest: +SKIP
    >>> out.S.shape                                                    # doctest: +SKIP
    torch.Size([1, 1, 260, 346])
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..engine.trainer import resolve_device

__all__ = ["EventDeblurrer", "EventOutputs", "deblur_recording"]

PathLike = str | os.PathLike


class EventOutputs(NamedTuple):
    """Outputs of :meth:`EventDeblurrer.run`, cropped to the input sizes, float32 on the CPU.

    Attributes:
        F: (N, 4, h, w) two optical flows (exposure start -> middle, middle -> end) in APS pixels.
        Bi_clean: (N, C, H, W) denoised blurry image, linear, in [0, 1].
        S: (N, C, H, W) deblurred image, linear, in [0, 1] (C, H, W of ``Bi``).
    """

    F: Tensor
    Bi_clean: Tensor
    S: Tensor


def _sidecar_overrides(weights: Path, model: str) -> dict[str, Any] | None:
    """Constructor overrides from the JSON sidecar ``deblurkit train``/``export`` writes."""
    meta = weights.with_suffix(".json")
    if not meta.is_file():
        return None
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(info, dict) and info.get("model") == model and isinstance(info.get("overrides"), dict):
        return dict(info["overrides"])
    return None


class EventDeblurrer:
    """Load ``evdeblur`` / ``evdeblur_rgb`` and deblur (voxel grid, APS frame[, RGB frame]) inputs.

    Args:
        model: ``"evdeblur"`` (grey APS) or ``"evdeblur_rgb"`` (RGB-DAVIS hybrid).
        weights: checkpoint (official ``final.pth`` / ``final_rgb.pth`` with its ``{'model': ...}``
            wrapper, or a deblurkit ``.safetensors``). Constructor options (``init_dim``, ...)
            come from ``model_overrides``, else the JSON sidecar of a deblurkit export, else the
            checkpoint's shapes.
        device: ``"cpu"``, ``"cuda[:i]"`` or ``"auto"``.
        model_overrides: keyword arguments for ``deblurkit.models.build``.
        allow_random: allow ``weights=None`` (random network, for tests; warns).
        pad_mode: how the frames are extended to a valid size: ``"reflect"``, ``"replicate"`` or
            ``"constant"``; the voxel grid is always padded with zeros (no events).

    Raises:
        KeyError: unknown model name. ValueError: a model that is not an event model, no weights
        without ``allow_random``. FileNotFoundError: missing weights file.
        deblurkit.models.CheckpointMismatchError: the checkpoint does not fit the network.
    """

    def __init__(
        self,
        model: str = "evdeblur",
        weights: PathLike | None = None,
        device: str | torch.device = "cpu",
        *,
        model_overrides: dict[str, Any] | None = None,
        allow_random: bool = False,
        pad_mode: str = "reflect",
    ) -> None:
        from deblurkit import models

        desc = models.get_descriptor(model)
        if "voxel_grid" not in desc.input_kinds:
            raise ValueError(f"{model!r} is not an event-guided model (inputs {desc.input_kinds}); "
                             "use evdeblur or evdeblur_rgb")
        overrides = dict(model_overrides or {})
        if weights is None:
            if not allow_random:
                raise ValueError(f"model {model!r} given without weights: pass --weights PATH "
                                 "(no released weights ship with deblurkit)")
            warnings.warn(f"EventDeblurrer: {model!r} is RANDOMLY INITIALISED; its output is not deblurred",
                          UserWarning, stacklevel=2)
        else:
            weights = Path(weights)
            if not weights.is_file():
                raise FileNotFoundError(f"weights file not found: '{weights}'")
            if model_overrides is None:
                found = _sidecar_overrides(weights, model)
                if found is None:
                    try:  # widths from the shapes (infer_evdeblur_config); {} for the official defaults
                        found = dict(desc.infer_config(models.read_state_dict(weights)) or {})
                    except Exception:  # unreadable: load_checkpoint reports it below
                        found = {}
                overrides = found
        net = models.build(model, **overrides)
        if weights is not None:
            models.load_checkpoint(net, weights)
        self.model_name = model
        self.model_overrides = overrides
        self.weights = weights
        self.rgb = bool(getattr(net, "rgb", False))
        self.pad_mode = pad_mode
        self.device = resolve_device(device)
        self.net = net.eval().requires_grad_(False).to(self.device)

    def __repr__(self) -> str:
        return (f"EventDeblurrer(model={self.model_name!r}, weights={str(self.weights) if self.weights else None!r}, "
                f"device={str(self.device)!r})")

    @torch.inference_mode()
    def run(self, E: Tensor, B: Tensor, Bi: Tensor | None = None, *, normalize: bool = False) -> EventOutputs:
        """Deblur one sample or a batch, whatever its size.

        Args:
            E: (N, 13, h, w) or (13, h, w) voxel grid of the exposure's events at APS size;
                normalised already (official loaders) unless ``normalize``.
            B: (N, 1, h, w) or (1, h, w) blurry APS frame, linear, in [0, 1].
            Bi: image to restore: ``None`` (grey model: ``B`` itself) or the hybrid camera's
                RGB frame (N, 3, ~3h, ~3w) in [0, 1] (``evdeblur_rgb``).
            normalize: apply the E2VID normalisation (mean/std of the non-zero entries, per
                sample) to ``E`` first, as the official ``InferDataset`` does on reading.

        Returns:
            :class:`EventOutputs` ``(F, Bi_clean, S)`` cropped back to the input sizes.

        Raises:
            ValueError: wrong ranks/channels/sizes (see ``pad_event_inputs``), values of ``B``
                or ``Bi`` outside [0, 1] (e.g. 8-bit data), an RGB frame given to the grey
                model or missing for the hybrid one, non-finite inputs.
        """
        from ..models.evdeblur import crop_event_outputs, pad_event_inputs

        single = E.dim() == 3
        E, B = (E.unsqueeze(0) if single else E), (B.unsqueeze(0) if B.dim() == 3 else B)
        if Bi is not None and Bi.dim() == 3:
            Bi = Bi.unsqueeze(0)
        if self.rgb and Bi is None:
            raise ValueError(f"{self.model_name!r} restores the hybrid camera's RGB frame: pass Bi (N, 3, 3h, 3w)")
        if not self.rgb and Bi is not None and Bi.shape[1] != 1:
            raise ValueError(f"{self.model_name!r} is the grey APS model; an RGB frame needs evdeblur_rgb")
        for name, t in (("E", E), ("B", B), ("Bi", Bi)):
            if t is not None and not torch.isfinite(t).all():
                raise ValueError(f"{name} contains NaN or infinite values")
        for name, t in (("B", B), ("Bi", Bi)):
            if t is not None and (float(t.min()) < 0.0 or float(t.max()) > 1.0):
                raise ValueError(f"{name} values must be in [0, 1], got [{float(t.min()):g}, {float(t.max()):g}]"
                                 " (8-bit data? divide by 255)")
        E = E.detach().float()
        if normalize:
            from ..synth.voxel import normalize_voxel_grid

            E = torch.stack([torch.from_numpy(normalize_voxel_grid(e.cpu().numpy())) for e in E])
        p = pad_event_inputs(E, B.detach().float(), None if Bi is None else Bi.detach().float(),
                             rgb=self.rgb, mode=self.pad_mode, grid=self.net.grid)
        dev = self.device
        out = self.net(p.E.to(dev), p.B.to(dev), p.Bi.to(dev))
        F, Bi_clean, S = (t.float().cpu() for t in crop_event_outputs(out, p.padding))
        if single:
            F, Bi_clean, S = F[0], Bi_clean[0], S[0]
        return EventOutputs(F, Bi_clean, S)


def deblur_recording(path: PathLike, *, model: str = "evdeblur", weights: PathLike | None = None,
                     device: str | torch.device = "cpu", progress=None, window: str | float = "exposure"):
    """Deblur every APS frame of an event recording; yields the frames one by one.

    The contract of the web app (``deblurkit.app.events``): ``path`` a ``.aedat4`` / ``.npz`` /
    ``.h5`` recording, ``weights`` a checkpoint of ``model`` (required: no weights ship with
    deblurkit), ``progress(done, total)`` called after each frame.

    Yields:
        (1, H, W) float32 tensors in [0, 1] on the CPU, the deblurred APS frames in order.

    Raises:
        ValueError: no weights, a model other than ``evdeblur``, or a bad recording
            (:class:`deblurkit.io.events.EventReadError`, naming the file).
        FileNotFoundError: missing recording or weights file.
    """
    from ..data.events import RecordingFrames

    if model != "evdeblur":
        raise ValueError(f"recordings hold grey APS frames: use model 'evdeblur', not {model!r}")
    if weights is None:
        raise ValueError("event deblurring needs weights for 'evdeblur' (no weights ship with deblurkit): "
                         "pass a checkpoint, e.g. the official final.pth or one trained with "
                         "configs/evdeblur_full_synthetic.yaml")
    frames = RecordingFrames(path, window=window)
    d = EventDeblurrer(model, weights=weights, device=device)
    total = len(frames)
    for i in range(total):
        it = frames[i]
        sharp = d.run(it["E"], it["B"]).S
        if progress is not None:
            progress(i + 1, total)
        yield sharp
