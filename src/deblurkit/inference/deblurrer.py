"""The :class:`Deblurrer`: one object that loads a registered network and deblurs tensors/files.

Used by the ``deblurkit deblur`` command and by Python users::

    >>> from deblurkit.inference import Deblurrer
    >>> d = Deblurrer("mimo_unet_small")                  # the embedded network (weights shipped)
    >>> d.deblur_files(["photo.jpg"], "out/", compare=True)
    >>> d = Deblurrer("mimo_unet", weights="MIMO-UNet.pkl", device="cuda", precision="bf16")
    >>> sharp = d.deblur_tensor(blurry)                   # (N,3,H,W) or (3,H,W) in [0, 1]

The toolkit's default deblurrer (``deblurkit deblur`` without ``--model``, the web app) is not a
network but the classical blind-deconvolution pipeline,
:class:`~deblurkit.inference.classical.ClassicalDeblurrer`, which has the same interface.

Everything at this level is float32 RGB in [0, 1]; a network's own value range
(``ModelDescriptor.value_range``) is converted to and from linearly around the network call, and
its size multiple is handled by padding/tiling (:mod:`.padding`, :mod:`.tiling`).
"""
from __future__ import annotations

import contextlib
import importlib.resources
import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..engine.trainer import resolve_device
from ..io import DEFAULT_MAX_MEGAPIXELS, rgb_to_grey
from .tiling import auto_tile_size, tiled_forward

__all__ = [
    "Deblurrer",
    "DeblurSummary",
    "make_comparison",
    "default_model_info",
    "DEFAULT_WEIGHTS_DIR",
    "EMBEDDED_MODEL",
    "SEPARATOR_PX",
]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike
#: Package-relative folder holding ``default.json`` and the default weights file.
DEFAULT_WEIGHTS_DIR = "weights"
#: Name of the network whose weights ship inside the package (``weights/default.json``): a
#: narrow MIMO-UNet, see docs/models/mimo_unet_small.md. ``Deblurrer("mimo_unet_small")`` and
#: ``Deblurrer()`` load it without a weights file.
EMBEDDED_MODEL = "mimo_unet_small"
#: Width of the white separator between the panels of a comparison image (pixels).
SEPARATOR_PX = 4


def _missing_default_error(what: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"the embedded default weights are missing ({what}); this installation of deblurkit ships "
        "no default model (expected deblurkit/weights/default.json and the weights file it names). "
        "Pass a model and weights explicitly: Deblurrer(model='mimo_unet', weights='PATH') in Python, "
        "or `deblurkit deblur --model mimo_unet --weights PATH ...` on the command line (without "
        "--model, `deblurkit deblur` runs the classical pipeline, which needs no weights)."
    )


def default_model_info() -> dict[str, Any]:
    """Read the description of the embedded network ``mimo_unet_small`` (``deblurkit/weights/default.json``).

    The file holds at least ``{"model": <registry name>, "weights": <file name next to it>}``
    and optionally ``"overrides"`` (constructor keyword arguments for ``build``); other keys
    (training data, metrics) are kept as they are. ``"weights"`` is resolved to an absolute
    path (key ``"weights_path"``), located with :mod:`importlib.resources`.

    Raises:
        FileNotFoundError: the JSON file or the weights file it names is missing (the message
            says how to pass ``--model``/``--weights`` instead).
        ValueError: the JSON is malformed or lacks ``model``/``weights``.
    """
    folder = importlib.resources.files("deblurkit").joinpath(DEFAULT_WEIGHTS_DIR)
    meta = folder.joinpath("default.json")
    if not meta.is_file():
        raise _missing_default_error(f"no {meta}")
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the default model description '{meta}': {exc}") from exc
    if not isinstance(info, dict) or not isinstance(info.get("model"), str) or not isinstance(info.get("weights"), str):
        raise ValueError(f"'{meta}' must be a JSON object with string fields 'model' and 'weights'")
    overrides = info.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise ValueError(f"'{meta}': 'overrides' must be a JSON object, got {type(overrides).__name__}")
    weights = folder.joinpath(info["weights"])
    if not weights.is_file():
        raise _missing_default_error(f"{meta} names '{info['weights']}', which does not exist")
    info = dict(info, overrides=overrides, weights_path=Path(str(weights)))
    return info


def make_comparison(
    before: torch.Tensor,
    after: torch.Tensor,
    *,
    labels: tuple[str, str] = ("blurry", "deblurred"),
    separator: int = SEPARATOR_PX,
) -> torch.Tensor:
    """Side-by-side image ``before | after`` with a white separator and small text labels.

    Args:
        before, after: ``(C, H, W)`` float tensors in [0, 1] of equal shape, ``C`` in {1, 3}.
        labels: texts drawn (OpenCV Hershey font, white on a half-transparent dark box) in the
            top-left corner of each panel; empty strings draw nothing.
        separator: width of the white vertical bar between the panels, in pixels.

    Returns:
        float32 ``(C, H, 2 * W + separator)`` tensor in [0, 1] on the CPU.

    Raises:
        ValueError: shapes differ or are not ``(C, H, W)`` with ``C`` in {1, 3}.
    """
    import cv2
    import numpy as np

    if before.shape != after.shape or before.dim() != 3 or before.shape[0] not in (1, 3):
        raise ValueError(
            f"make_comparison needs two (C,H,W) images of equal shape with C in {{1,3}}, "
            f"got {tuple(before.shape)} and {tuple(after.shape)}"
        )
    c, h, w = before.shape
    bar = torch.ones(c, h, separator)
    canvas = torch.cat([before.detach().float().cpu(), bar, after.detach().float().cpu()], dim=2).clamp(0, 1)
    # OpenCV draws text on 8-bit images only: render the text as an 8-bit coverage mask and
    # blend it into the float canvas (works for grey, RGB and 16-bit sources alike), on a
    # half-transparent dark box so it stays legible on bright and dark images.
    fill = np.zeros((h, canvas.shape[2]), np.uint8)
    box = torch.zeros(h, canvas.shape[2])
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = float(min(3.0, max(0.4, min(h, w) / 500.0)))
    thick = max(1, round(scale * 1.4))
    for text, x0 in zip(labels, (0, w + separator)):
        if not text:
            continue
        (tw, th), base = cv2.getTextSize(text, font, scale, thick)
        m = max(2, th // 3)
        cv2.putText(fill, text, (x0 + 2 * m, 2 * m + th), font, scale, 255, thick, cv2.LINE_AA)
        box[: 3 * m + th + base, x0 : min(x0 + tw + 4 * m, x0 + w)] = 0.55
    a_fill = torch.from_numpy(fill).float().div_(255.0)
    out = canvas * (1.0 - box)  # dark box
    out = out * (1.0 - a_fill) + a_fill  # white text
    return out.contiguous().clamp_(0, 1)


def validated_batch(x: Any) -> torch.Tensor:
    """(N, C, H, W) float32 CPU copy of an image tensor given as (C, H, W) or (N, C, H, W), after
    the checks every restorer applies (values are not clamped).

    Raises:
        TypeError: ``x`` is not a tensor.
        ValueError: wrong rank, channel count not 1 or 3, an empty image, non-finite values, or
            values far outside [0, 1] (e.g. 0-255 data).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"deblur_tensor expects a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in (3, 4):
        raise ValueError(f"expected (C,H,W) or (N,C,H,W), got shape {tuple(x.shape)}")
    x = x.detach().to("cpu", torch.float32)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    n, c, h, w = x.shape
    if c not in (1, 3):
        raise ValueError(f"expected 1 (grey) or 3 (RGB) channels, got {c} (shape {tuple(x.shape)})")
    if n == 0 or h == 0 or w == 0:
        raise ValueError(f"empty image batch of shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("input contains NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -0.5 or hi > 1.5:
        raise ValueError(f"input values must be in [0, 1], got range [{lo:g}, {hi:g}] (8-bit data? divide by 255)")
    return x


@dataclass
class DeblurSummary:
    """Result of :meth:`Deblurrer.deblur_files`.

    Attributes:
        written: ``{input path: {"deblurred": Path, "compare": Path (if requested), ...}}``.
        failed: ``{input path: exception}`` for inputs that could not be processed; each
            message names the file.
        seconds: wall-clock time of the whole call.
        notes: ``{input path: one line}`` about how a file went (the classical pipeline: the
            kernel used, or why its estimate fell back); empty for networks.
        fell_back: inputs whose kernel estimate was judged unreliable (a conservative result
            was written; their note says what).
        skipped: ``{path: reason}``: earlier outputs found among the inputs (inside the output
            folder) and, without ``recursive``, sub-folders of the input folders.
    """

    written: dict[Path, dict[str, Path]] = field(default_factory=dict)
    failed: dict[Path, BaseException] = field(default_factory=dict)
    seconds: float = 0.0
    notes: dict[Path, str] = field(default_factory=dict)
    fell_back: list[Path] = field(default_factory=list)
    skipped: dict[Path, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every input was processed."""
        return not self.failed

    def report(self) -> str:
        """Human-readable multi-line summary (counts, then one line per failure)."""
        lines = [f"deblurred {len(self.written)} image(s), {len(self.failed)} failed, {self.seconds:.1f} s"]
        for path, exc in self.failed.items():
            msg = str(exc)
            if str(path) not in msg:
                msg = f"{path}: {msg}"
            lines.append(f"  FAILED {type(exc).__name__}: {msg}")
        return "\n".join(lines)


class Deblurrer:
    """Deblur images with a registered network: padding, tiling, device and precision handled.

    Args:
        model: registry name (``deblurkit.models.list_models()``), ``"mimo_unet_small"`` or
            ``None`` for the embedded network (``deblurkit/weights/default.json`` + its weights
            file; with ``"mimo_unet_small"`` and ``weights``, that architecture with the given
            weights); with ``None`` and ``weights`` given, the architecture is detected from the
            checkpoint's keys. (The classical pipeline, the CLI's default, is
            :class:`~deblurkit.inference.classical.ClassicalDeblurrer`.)
        weights: checkpoint file (``.safetensors``, ``.pth``/``.pt``/``.pkl`` with the official
            wrappers; see ``deblurkit.models.load_checkpoint``). When ``model_overrides`` is not
            given and the file fits ``model`` with other constructor options (e.g. a narrower
            ``base_channel``), those options are detected from the file.
        device: ``"cpu"``, ``"cuda"``/``"cuda:i"`` or ``"auto"`` (CUDA when available).
        precision: ``"fp32"`` or ``"bf16"`` (``torch.autocast`` with bfloat16 on the device,
            CPU included; outputs are converted back to float32). On CPUs without native
            bf16 instructions (AVX512-BF16/AMX) bf16 is correct but far slower than fp32; it
            is meant for GPUs.
        tile: ``None`` (whole image in one pass), an int maximum tile side (rounded down to the
            size multiple; tiles are balanced, see ``tiled_forward``), or ``"auto"``
            (:func:`~deblurkit.inference.tiling.auto_tile_size`: one pass up to ~0.6 MP on the
            CPU at fp32, 512-pixel tiles beyond; on CUDA by half the free memory).
        tile_overlap: minimum overlap of neighbouring tiles in pixels (rounded up to the size
            multiple, at most half the tile).
        progress: show tqdm progress bars (files, and tiles when tiling).
        model_overrides: constructor keyword arguments for ``deblurkit.models.build``.
        allow_random: allow ``model`` without ``weights`` (a randomly initialised network,
            useful for tests and benchmarks); a warning is still issued.
        batch_size: tiles per forward call.
        memory_budget_mb: activation memory budget for ``tile="auto"`` (default: 2 GiB on the
            CPU, half the free memory on CUDA).

    Raises:
        FileNotFoundError: ``model=None`` and the embedded default weights are missing, or
            ``weights`` does not exist.
        ValueError: ``model`` given without ``weights`` and not ``allow_random``; bad
            ``precision``/``tile``/``device``; a network that does not take a single RGB image;
            ``weights`` without ``model`` whose architecture cannot be detected.
        KeyError: unknown model name.
        deblurkit.models.CheckpointMismatchError: the checkpoint does not fit the network.

    Attribute ``max_megapixels`` (default :data:`deblurkit.io.DEFAULT_MAX_MEGAPIXELS`, ``None``:
    no limit): :meth:`deblur_file` refuses larger images from their header, before decoding
    (``deblurkit deblur --max-megapixels``).
    """

    #: Largest image :meth:`deblur_file` reads (megapixels); checked before decoding.
    max_megapixels: float | None = DEFAULT_MAX_MEGAPIXELS

    def __init__(
        self,
        model: str | None = None,
        weights: PathLike | None = None,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        tile: int | str | None = None,
        tile_overlap: int = 32,
        progress: bool = True,
        model_overrides: dict[str, Any] | None = None,
        *,
        allow_random: bool = False,
        batch_size: int = 1,
        memory_budget_mb: float | None = None,
    ) -> None:
        from deblurkit import models

        overrides = dict(model_overrides or {})
        if model is not None and model != EMBEDDED_MODEL and model not in models.list_models():
            raise ValueError(f"unknown model {model!r}: see `deblurkit models` for the registered names")
        self.default_info: dict[str, Any] | None = None
        if weights is not None:
            weights = Path(weights)
            if not weights.is_file():
                raise FileNotFoundError(f"weights file not found: '{weights}'")
        if model == EMBEDDED_MODEL:
            info = default_model_info()
            self.default_info = info if weights is None else None
            model = info["model"]
            overrides = {**info["overrides"], **overrides}
            weights = info["weights_path"] if weights is None else weights
        elif model is None and weights is None:
            info = default_model_info()
            self.default_info = info
            model = info["model"]
            overrides = {**info["overrides"], **overrides}
            weights = info["weights_path"]
        elif model is None:
            assert weights is not None
            matches = models.detect_architecture(models.read_state_dict(weights))
            if not matches:
                raise ValueError(
                    f"cannot tell which network the checkpoint '{weights}' belongs to; give --model "
                    f"(one of {', '.join(models.list_models())})"
                )
            model, detected = matches[0]
            overrides = {**detected, **overrides}
        elif weights is None:
            if not allow_random:
                raise ValueError(
                    f"model {model!r} needs --weights PATH: without weights the network is randomly "
                    "initialised and its output meaningless"
                )
            warnings.warn(
                f"Deblurrer: {model!r} has no weights and is RANDOMLY INITIALISED; its output is not deblurred",
                UserWarning,
                stacklevel=2,
            )
        elif model_overrides is None:
            overrides = self._detect_overrides(models, model, weights)

        descriptor = models.get_descriptor(model)
        net = models.build(model, **overrides)
        if weights is not None:
            models.load_checkpoint(net, weights)
        self.model_name: str = model
        self.model_overrides: dict[str, Any] = overrides
        self.weights: Path | None = Path(weights) if weights is not None else None
        self._setup(
            net,
            input_kinds=tuple(descriptor.input_kinds),
            value_range=tuple(descriptor.value_range),
            size_multiple=int(descriptor.size_multiple),
            primary_output=descriptor.primary_output,
            device=device,
            precision=precision,
            tile=tile,
            tile_overlap=tile_overlap,
            progress=progress,
            batch_size=batch_size,
            memory_budget_mb=memory_budget_mb,
        )

    @staticmethod
    def _detect_overrides(models: Any, name: str, weights: Path) -> dict[str, Any]:
        """Constructor options under which ``weights`` fits ``name`` ({} if none is detected)."""
        try:
            matches = models.detect_architecture(models.read_state_dict(weights))
        except Exception:  # unreadable: load_checkpoint reports it properly below
            return {}
        for found, ov in matches:
            if found == name:
                return dict(ov)
        return {}

    @classmethod
    def from_network(
        cls,
        net: nn.Module,
        *,
        size_multiple: int = 1,
        value_range: tuple[float, float] = (0.0, 1.0),
        primary_output: Callable[[Any], torch.Tensor] | None = None,
        name: str = "custom",
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        tile: int | str | None = None,
        tile_overlap: int = 32,
        progress: bool = True,
        batch_size: int = 1,
        memory_budget_mb: float | None = None,
    ) -> "Deblurrer":
        """Wrap an already built (and loaded) network that maps ``(N,3,H,W)`` RGB to RGB.

        ``primary_output`` picks the image from the forward's output (default: the tensor
        itself, or the last element of a list/tuple). Other arguments as in the constructor.
        """

        def _primary(out: Any) -> torch.Tensor:
            while isinstance(out, (list, tuple)):
                out = out[-1]
            return out

        self = cls.__new__(cls)
        self.default_info = None
        self.model_name = name
        self.model_overrides = {}
        self.weights = None
        self._setup(
            net,
            input_kinds=("rgb",),
            value_range=tuple(value_range),
            size_multiple=int(size_multiple),
            primary_output=primary_output or _primary,
            device=device,
            precision=precision,
            tile=tile,
            tile_overlap=tile_overlap,
            progress=progress,
            batch_size=batch_size,
            memory_budget_mb=memory_budget_mb,
        )
        return self

    def _setup(
        self,
        net: nn.Module,
        *,
        input_kinds: tuple[str, ...],
        value_range: tuple[float, ...],
        size_multiple: int,
        primary_output: Callable[[Any], torch.Tensor],
        device: str | torch.device,
        precision: str,
        tile: int | str | None,
        tile_overlap: int,
        progress: bool,
        batch_size: int,
        memory_budget_mb: float | None,
    ) -> None:
        if input_kinds != ("rgb",):
            raise ValueError(
                f"{self.model_name!r} takes inputs {input_kinds}; the Deblurrer only runs networks "
                "that take a single RGB image (event/multi-input models need their own pipeline)"
            )
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"--precision must be fp32 or bf16, got {precision!r}")
        if not (tile is None or tile == "auto" or (isinstance(tile, int) and not isinstance(tile, bool) and tile > 0)):
            raise ValueError(f"tile must be None, a positive int or 'auto', got {tile!r}")
        if tile_overlap < 0:
            raise ValueError(f"tile_overlap must be >= 0, got {tile_overlap}")
        if size_multiple < 1:
            raise ValueError(f"size_multiple must be >= 1, got {size_multiple}")
        # Networks with a ``restore_frame(x)`` method pad whole frames their own way and must not
        # be tiled (RSS-T: centred padding with a mask, absolute row index).
        self.whole_frame = callable(getattr(net, "restore_frame", None))
        if self.whole_frame and isinstance(tile, int):
            raise ValueError(f"{self.model_name!r} processes whole frames (its output depends on the absolute "
                             f"row); tiling is not possible: use --tile off or --tile auto")
        lo, hi = (float(v) for v in value_range)
        if not hi > lo:
            raise ValueError(f"bad value_range {value_range}")
        self.device = resolve_device(device)
        if precision == "bf16" and self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError(f"bf16 is not supported on {torch.cuda.get_device_name(self.device)}; use fp32")
        self.precision = precision
        self.tile = tile
        self.tile_overlap = int(tile_overlap)
        self.progress = bool(progress)
        self.batch_size = int(batch_size)
        self.memory_budget_mb = memory_budget_mb
        self.size_multiple = size_multiple
        self.value_range = (lo, hi)
        self._primary = primary_output
        self.net = net.eval().requires_grad_(False).to(self.device)

    def __repr__(self) -> str:
        return (
            f"Deblurrer(model={self.model_name!r}, weights={str(self.weights) if self.weights else None!r}, "
            f"device={str(self.device)!r}, precision={self.precision!r}, tile={self.tile!r}, "
            f"tile_overlap={self.tile_overlap})"
        )

    # ------------------------------------------------------------------ tensors

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Network call on a padded RGB batch in [0, 1]; returns float32 RGB in [0, 1] scale."""
        lo, hi = self.value_range
        scaled = (lo, hi) != (0.0, 1.0)
        if scaled:
            batch = batch * (hi - lo) + lo
        with self._autocast():
            out = self.net.restore_frame(batch) if self.whole_frame else self._primary(self.net(batch))
        out = out.float()
        if scaled:
            out = (out - lo) / (hi - lo)
        return out

    def tile_for(self, h: int, w: int) -> int | None:
        """The tile side used for an ``h x w`` image (``None``: one pass), see ``tile``."""
        if self.whole_frame:
            return None
        if self.tile == "auto":
            return auto_tile_size(
                h, w, device=self.device, precision=self.precision, multiple=self.size_multiple,
                memory_budget_mb=self.memory_budget_mb,
            )
        if self.tile is None:
            return None
        return int(self.tile)

    @torch.inference_mode()
    def deblur_tensor(self, x: torch.Tensor, *, progress: Any = None, clamp: bool = True) -> torch.Tensor:
        """Deblur an image or a batch.

        Args:
            x: ``(N, C, H, W)`` or ``(C, H, W)`` float tensor in [0, 1], RGB (``C = 3``) or grey
                (``C = 1``; repeated to RGB for the network, the result converted back to grey
                with ITU-R BT.601 luma). Any device.
            progress: override of the tile progress display (``None``: a tqdm bar when
                ``progress=True`` was given and the image is tiled; or a tqdm-like object /
                callable as in :func:`~deblurkit.inference.tiling.tiled_forward`).
            clamp: clamp the result to [0, 1] (``False`` for evaluation protocols that score the
                raw output, e.g. ``rsst``).

        Returns:
            float32 tensor of the same shape as ``x`` on the CPU, clamped to [0, 1] by default.

        Raises:
            TypeError: ``x`` is not a tensor.
            ValueError: wrong rank, channel count not 1 or 3, an empty image, non-finite values,
                or values far outside [0, 1] (e.g. 0-255 data).
        """
        single = isinstance(x, torch.Tensor) and x.dim() == 3
        x = validated_batch(x)
        n, c, h, w = x.shape
        rgb = x.expand(n, 3, h, w) if c == 1 else x
        tile = self.tile_for(h, w)
        overlap = self.tile_overlap
        if self.tile == "auto" and tile is not None:  # a small automatic tile: shrink the overlap to fit
            m = self.size_multiple
            overlap = min(overlap, (tile // 2) // m * m)
        prog = progress
        if prog is None:
            prog = self.progress and tile is not None
        y = tiled_forward(
            self._forward,
            rgb,
            tile=tile,
            overlap=overlap,
            multiple=1 if self.whole_frame else self.size_multiple,
            batch_size=self.batch_size,
            progress=prog,
            device=self.device,
        )
        if y.shape[1] != 3:
            raise ValueError(f"{self.model_name!r} returned {y.shape[1]} channels, expected 3")
        if c == 1:
            y = rgb_to_grey(y)
        if clamp:
            y = y.clamp_(0.0, 1.0)
        return y[0] if single else y

    # ------------------------------------------------------------------ files

    def output_paths(self, path: PathLike, out_dir: PathLike | None, suffix: str = "_deblurred",
                     *, stem: str | None = None) -> dict[str, Path]:
        """Where :meth:`deblur_file` writes for input ``path``: ``{"deblurred", "compare"}``.

        ``<out_dir>/<stem><suffix>.png`` and ``<out_dir>/<stem>_compare.png``; ``out_dir=None``
        means the input's folder; ``stem`` defaults to the input's (``deblur_files`` gives
        ``<stem>_<ext>`` when two inputs share a stem). Outputs are always PNG (lossless, 16-bit
        and alpha capable).
        """
        path = Path(path)
        folder = Path(out_dir) if out_dir is not None else path.parent
        stem = path.stem if stem is None else stem
        return {"deblurred": folder / f"{stem}{suffix}.png", "compare": folder / f"{stem}_compare.png"}

    def deblur_file(
        self,
        path: PathLike,
        out_dir: PathLike | None,
        *,
        compare: bool = False,
        suffix: str = "_deblurred",
        protected: Iterable[PathLike] = (),
        progress: Any = None,
        stem: str | None = None,
    ) -> dict[str, Path]:
        """Deblur one image file and write the result (and optionally a comparison) as PNG.

        The output keeps the input's kind: grey stays grey, RGBA gets its alpha channel back
        unchanged, a 16-bit input gives a 16-bit PNG. EXIF orientation is applied on reading,
        so outputs are stored upright. Writes are atomic and never overwrite the input (nor any
        path in ``protected``), so ``out_dir`` may be the input's folder.

        Args:
            path: image file (``deblurkit.io.IMAGE_EXTENSIONS``).
            out_dir: output folder (created if needed); ``None``: the input's folder.
            compare: also write ``<stem>_compare.png``: input | deblurred side by side, 8-bit,
                ``2 * W + SEPARATOR_PX`` wide, labelled "blurry" / "deblurred" (alpha dropped).
            suffix: appended to the input's stem for the deblurred file (must not be empty when
                ``out_dir`` is the input folder and the input is a PNG: that would be the input).
            protected: further paths never to overwrite (e.g. all inputs of a batch).
            progress: tile progress, as in :meth:`deblur_tensor`.
            stem: output stem instead of the input's (see :meth:`output_paths`).

        Returns:
            ``{"deblurred": Path}`` plus ``"compare": Path`` when requested.

        Raises:
            deblurkit.io.ImageReadError: the file is missing, unsupported or corrupt (names it).
            deblurkit.io.ImageWriteError: an output would overwrite an input, or writing failed.
            Other errors (e.g. out of memory) propagate with a note naming the file.
        """
        from deblurkit import io as dio

        path = Path(path)
        loaded = dio.load_image(path, max_megapixels=self.max_megapixels)
        targets = self.output_paths(path, out_dir, suffix, stem=stem)
        guard = (path, *protected)
        try:
            result = self.deblur_tensor(loaded.image, progress=progress)
            written = {
                "deblurred": dio.save_image(
                    targets["deblurred"], result, alpha=loaded.alpha, bit_depth=loaded.bit_depth, protected=guard
                )
            }
            if compare:
                panel = self.comparison_panel(loaded.image, result)
                written["compare"] = dio.save_image(targets["compare"], panel, bit_depth=8, protected=guard)
        except Exception as exc:
            if str(path) not in str(exc):
                exc.add_note(f"while deblurring '{path}'")
            raise
        return written

    def comparison_panel(self, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        """The ``<stem>_compare.png`` picture: :func:`make_comparison` of input and result
        (subclasses add to it, e.g. the classical pipeline's kernel inset)."""
        return make_comparison(before, after)

    def deblur_files(
        self,
        paths: PathLike | Iterable[PathLike],
        out_dir: PathLike | None,
        compare: bool = False,
        *,
        suffix: str = "_deblurred",
        stop_on_error: bool = False,
        recursive: bool = False,
    ) -> DeblurSummary:
        """Deblur many files (folders are expanded to the images directly inside them, or to
        every image below them with ``recursive``, written to the same sub-folders of
        ``out_dir``).

        Shows a tqdm bar over files and, when tiling, a nested bar over tiles (if
        ``progress=True``). Nothing is lost or done twice:

        - inputs sharing a stem in one output folder (``x.jpg`` and ``x.png``) get outputs named
          after stem and extension (``x_jpg_deblurred.png``, ``x_png_deblurred.png``);
        - earlier outputs (``*<suffix>.png``, ``*_compare.png``) found among the inputs inside the
          output folder are skipped, so re-running into a folder inside the input folder does not
          deblur them again;
        - without ``recursive``, sub-folders of the input folders are recorded as skipped;
        - a file that fails (unreadable, corrupt, output would overwrite an input, ...) is
          recorded and the others are still processed, unless ``stop_on_error``.

        Failures and skips are returned in the summary (and logged at INFO level, logger
        ``deblurkit.inference.deblurrer``), for the caller to report once.

        Args:
            paths: files and/or folders.
            out_dir: output folder (``None``: next to each input).
            compare, suffix: as in :meth:`deblur_file`.
            stop_on_error: re-raise the first error instead of continuing.
            recursive: search folders recursively.

        Returns:
            :class:`DeblurSummary` (``written``, ``failed``, ``skipped``, ``seconds``, ``ok``,
            ``report()``).

        Raises:
            Only with ``stop_on_error``: the first file's error (see :meth:`deblur_file`).
        """
        from tqdm.auto import tqdm

        from deblurkit import io as dio

        t0 = time.perf_counter()
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        summary = DeblurSummary()
        out_root = Path(out_dir).resolve() if out_dir is not None else None
        jobs: dict[Path, Path | None] = {}  # input -> its output folder
        for item in paths:
            item = Path(item)
            if not item.is_dir():
                jobs.setdefault(item, None if out_dir is None else Path(out_dir))
                continue
            inner_out = out_root is not None and out_root != item.resolve() and out_root.is_relative_to(item.resolve())
            for child in dio.list_images(item, recursive=recursive):
                if inner_out and child.resolve().is_relative_to(out_root):
                    summary.skipped[child] = "inside the output folder (an earlier output)"
                    continue
                rel = child.parent.relative_to(item)
                jobs.setdefault(child, None if out_dir is None else Path(out_dir) / rel)
            if not recursive:
                for sub in sorted(p for p in item.iterdir() if p.is_dir() and not p.name.startswith(".")):
                    if out_root is None or not out_root.is_relative_to(sub.resolve()):
                        summary.skipped[sub] = "sub-folder (give --recursive to deblur it too)"
        inputs: list[Path] = []
        for path, folder in jobs.items():
            target = (folder if folder is not None else path.parent).resolve()
            is_output = path.name.endswith((f"{suffix}.png", "_compare.png")) and suffix
            if is_output and path.resolve().parent == target:
                summary.skipped[path] = "an earlier output in the output folder"
            else:
                inputs.append(path)
        stems: dict[tuple[Path, str], int] = {}
        for path in inputs:
            key = ((jobs[path] or path.parent).resolve(), path.stem)
            stems[key] = stems.get(key, 0) + 1
        protected = (*inputs, *(p for p in summary.skipped if p.is_file()))  # never overwritten either
        claimed: dict[Path, Path] = {}
        files_bar = tqdm(inputs, desc="images", unit="img", disable=not self.progress)
        tiles_bar = tqdm(desc="tiles", unit="tile", position=1, leave=False, disable=not self.progress)
        try:
            for path in files_bar:
                files_bar.set_postfix_str(path.name, refresh=False)
                folder = jobs[path]
                shared = stems[((folder or path.parent).resolve(), path.stem)] > 1
                stem = f"{path.stem}_{path.suffix.lstrip('.').lower()}" if shared else None
                try:
                    out_path = self.output_paths(path, folder, suffix, stem=stem)["deblurred"].resolve()
                    if out_path in claimed:
                        raise dio.ImageWriteError(
                            f"refusing to write '{out_path}' for '{path}': it is already the output of "
                            f"'{claimed[out_path]}' (same file name)"
                        )
                    claimed[out_path] = path
                    summary.written[path] = self.deblur_file(
                        path,
                        folder,
                        compare=compare,
                        suffix=suffix,
                        protected=protected,
                        progress=tiles_bar if self.progress else False,
                        stem=stem,
                    )
                except Exception as exc:
                    if stop_on_error:
                        raise
                    summary.failed[path] = exc
        finally:
            tiles_bar.close()
            files_bar.close()
        summary.seconds = time.perf_counter() - t0
        if summary.failed or summary.skipped:
            log.info("%s", summary.report())
        return summary
