"""Image files <-> float32 [0, 1] CHW tensors.

Reads and writes PNG (8 and 16 bit), JPEG, TIFF (8 and 16 bit), BMP and WebP, grey, RGB and
RGBA. Pixels are decoded and encoded with OpenCV (``cv2.imdecode`` / ``cv2.imencode`` with
``IMREAD_UNCHANGED``, which keeps 16-bit samples and alpha); Pillow only reads the header
(EXIF orientation, colour mode). Conventions (``docs/dev/interfaces.md``, section deblurkit.io):

* tensors are float32, RGB (or one grey channel), range [0, 1], shape ``(C, H, W)``;
* alpha is returned separately as ``(1, H, W)`` and re-attached by :func:`save_image`;
* the EXIF orientation (tag 0x0112, all 8 values) is applied on read, so ``H, W`` are the
  displayed height and width;
* bad input raises :class:`ImageReadError` whose message names the file and the problem;
* writes are atomic (temporary file in the destination folder + ``os.replace``) and refuse to
  overwrite a protected path (the inputs).
"""
from __future__ import annotations

import functools
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Union

import cv2
import numpy as np
import torch

from .atomic import write_bytes_atomic
from PIL import Image

__all__ = [
    "IMAGE_EXTENSIONS",
    "DEFAULT_MAX_MEGAPIXELS",
    "ImageReadError",
    "ImageTooLargeError",
    "ImageWriteError",
    "LoadedImage",
    "list_images",
    "load_image",
    "read_image",
    "save_image",
    "to_uint8",
    "to_uint16",
]

PathLike = Union[str, os.PathLike]

#: Lower-case file suffixes that :func:`load_image`, :func:`save_image` and :func:`list_images` accept.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
)
_SIXTEEN_BIT_EXTENSIONS = frozenset({".png", ".tif", ".tiff"})
_ALPHA_EXTENSIONS = frozenset({".png", ".tif", ".tiff", ".bmp", ".webp"})

#: Largest image (width x height / 1e6) that :func:`load_image` decodes unless told otherwise
#: (``--max-megapixels``): the header is checked before any pixel is decoded, so a small file
#: declaring a huge image (a 420 KB PNG of 12000x12000) costs nothing.
DEFAULT_MAX_MEGAPIXELS = 50.0

_EXIF_ORIENTATION = 0x0112
#: ITU-R BT.601 luma weights (R, G, B), as used by ``read_image(..., channels=1)``.
_BT601 = (0.299, 0.587, 0.114)
#: Pillow modes of single-channel (optionally + alpha) images.
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N"})


class ImageReadError(ValueError):
    """An image file could not be read; the message names the file and the problem."""


class ImageTooLargeError(ImageReadError):
    """The image declares more pixels than allowed; ``width`` / ``height`` hold its size (0 when
    the header only said "far too many")."""

    def __init__(self, message: str, width: int = 0, height: int = 0) -> None:
        super().__init__(message)
        self.width, self.height = width, height


class ImageWriteError(OSError):
    """An image file could not (or must not) be written; the message names the file and why."""


@dataclass
class LoadedImage:
    """An image as stored in its file, orientation applied.

    Attributes:
        image: float32 tensor ``(C, H, W)`` in [0, 1]; ``C == 1`` (grey) or ``C == 3`` (RGB).
        alpha: float32 tensor ``(1, H, W)`` in [0, 1], or ``None`` when the file has no alpha.
        bit_depth: bits per sample in the file, 8 or 16.
        path: the file it was read from.
    """

    image: torch.Tensor
    alpha: torch.Tensor | None
    bit_depth: int
    path: Path


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def _read_error(path: Path, problem: str) -> ImageReadError:
    return ImageReadError(f"cannot read image '{path}': {problem}")


def _sniff_format(data: bytes) -> str | None:
    """Container format from the file signature (the extension is not trusted)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if data.startswith(b"BM"):
        return "BMP"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _jpeg_is_complete(data: bytes) -> bool:
    """True when the JPEG stream reaches its end-of-image marker.

    Some libjpeg builds behind OpenCV pad a truncated stream with grey and return an image;
    this check makes truncation an error whatever the OpenCV version. The header segments
    are walked (by their lengths) up to the first start-of-scan, then an EOI marker (FF D9)
    must follow: inside entropy-coded data FF is always followed by 00 or a marker, so FF D9
    there is the end of the image. EOI markers of EXIF thumbnails (inside APP1) are skipped by
    the walk, and data appended after EOI (e.g. motion photos) is allowed.
    """
    n = len(data)
    pos = 2  # after SOI
    while pos < n:
        if data[pos] != 0xFF:
            return False
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            return False
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # EOI before any scan (no image data)
            return False
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # stand-alone markers
            continue
        if pos + 2 > n:
            return False
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2:
            return False
        pos += length
        if marker == 0xDA:  # SOS: scan data follows
            return pos <= n and data.find(b"\xff\xd9", pos) != -1
    return False


@dataclass
class _Header:
    mode: str | None = None
    orientation: int = 1


def _read_header(data: bytes) -> _Header:
    """Colour mode and EXIF orientation from Pillow's lazy header parse (no pixel decoding).

    Any failure here (unknown variant, decompression-bomb guard, corrupt EXIF) only loses the
    orientation: the pixels are decoded by OpenCV, which reports its own errors.
    """
    header = _Header()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                header.mode = im.mode
                # PngImageFile.getexif() decodes the whole image when the eXIf chunk comes
                # after the pixel data; an orientation there is not honoured (it is rare).
                if im.format != "PNG" or "exif" in im.info:
                    value = im.getexif().get(_EXIF_ORIENTATION, 1)
                    if isinstance(value, int) and 1 <= value <= 8:
                        header.orientation = value
    except Exception:  # noqa: BLE001 - header information is optional, see docstring
        pass
    return header


@functools.lru_cache(maxsize=None)
def _decoder_applies_orientation(fmt: str) -> bool:
    """Whether ``cv2.imdecode(..., IMREAD_UNCHANGED)`` already applies the orientation tag.

    OpenCV 5 applies the TIFF orientation tag itself but ignores EXIF orientation of JPEG,
    PNG and WebP with ``IMREAD_UNCHANGED``; other versions may differ, so this is probed once
    per format with an 8x16 image (left half black, right half white) tagged "mirrored".
    """
    probe = np.zeros((8, 16), np.uint8)
    probe[:, 8:] = 255
    try:
        exif = Image.Exif()
        exif[_EXIF_ORIENTATION] = 2  # mirror horizontally
        buf = io.BytesIO()
        extra = {"lossless": True} if fmt == "WEBP" else {}
        Image.fromarray(probe).save(buf, format=fmt, exif=exif, **extra)
        decoded = cv2.imdecode(np.frombuffer(buf.getvalue(), np.uint8), cv2.IMREAD_UNCHANGED)
    except Exception:  # noqa: BLE001 - no probe possible: assume the usual behaviour
        return fmt == "TIFF"
    if decoded is None:
        return fmt == "TIFF"
    if decoded.ndim == 3:
        decoded = decoded[..., 0]
    return bool(decoded[:, :8].mean() > decoded[:, 8:].mean())


def _apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Turn a stored ``(H, W[, C])`` array into its displayed orientation (EXIF tag 0x0112).

    1 as stored, 2 mirrored left-right, 3 rotated 180, 4 mirrored top-bottom, 5 transposed
    (mirror about the main diagonal), 6 rotated 90 clockwise, 7 transversed (mirror about the
    anti-diagonal), 8 rotated 90 counter-clockwise.
    """
    if orientation == 2:
        return array[:, ::-1]
    if orientation == 3:
        return array[::-1, ::-1]
    if orientation == 4:
        return array[::-1]
    if orientation == 5:
        return array.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(array, k=-1, axes=(0, 1))
    if orientation == 7:
        return array[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(array, k=1, axes=(0, 1))
    return array


def _declared_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from the header (Pillow's lazy open: no pixel decoding), ``(0, 0)``
    when Pillow's own decompression-bomb guard refuses it, ``None`` when the header is unreadable
    (the decoder then reports the problem)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                return tuple(im.size)  # type: ignore[return-value]
    except Image.DecompressionBombError:
        return (0, 0)
    except Exception:  # noqa: BLE001 - see docstring
        return None


def _check_pixels(path: Path, data: bytes, max_megapixels: float | None) -> None:
    """Raise :class:`ImageTooLargeError` when the header declares more than ``max_megapixels``."""
    if max_megapixels is None:
        return
    size = _declared_size(data)
    if size is None:
        return
    w, h = size
    if w * h <= max_megapixels * 1e6 and size != (0, 0):
        return
    kb = len(data) / 1024
    shown = f"{kb / 1024:.1f} MB" if kb >= 1024 else f"{kb:.0f} KB"
    if size == (0, 0):
        raise ImageTooLargeError(f"cannot read image '{path}': {shown} file declaring far too many pixels "
                                 f"(over the limit of {max_megapixels:g} MP)")
    mp = w * h / 1e6
    gb = w * h * 3 * 4 / 2**30  # the decoded float32 RGB tensor alone
    raise ImageTooLargeError(
        f"cannot read image '{path}': {w}x{h} = {mp:.1f} MP ({shown} file), over the limit of "
        f"{max_megapixels:g} MP; decoded it needs {gb:.1f} GB before any processing: pass "
        f"--max-megapixels {int(mp) + 1} to allow it", w, h)


def _decode_with_pillow(data: bytes, path: Path, mode: str) -> np.ndarray:
    """Pillow decode converted to ``mode`` (used for CMYK, which OpenCV leaves as 4 channels)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert(mode))
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a read error
        raise _read_error(path, f"could not decode the image data ({exc})") from exc


def _to_tensor(array: np.ndarray, max_value: float) -> torch.Tensor:
    """``(H, W, C)`` integer array -> float32 ``(C, H, W)`` tensor in [0, 1]."""
    scaled = np.ascontiguousarray(array, dtype=np.float32) / np.float32(max_value)
    return torch.from_numpy(np.ascontiguousarray(scaled.transpose(2, 0, 1)))


def load_image(path: PathLike, *, max_megapixels: float | None = DEFAULT_MAX_MEGAPIXELS) -> LoadedImage:
    """Read an image file as stored: grey stays grey, alpha is kept aside.

    The format is taken from the file's signature (a PNG named ``.jpg`` is read as PNG); the
    suffix must still be one of :data:`IMAGE_EXTENSIONS`. The EXIF orientation is applied.
    Palette images become RGB, 1-bit and grey+alpha images become grey, CMYK becomes RGB.

    Args:
        path: file to read.
        max_megapixels: refuse images whose header declares more pixels (width x height / 1e6),
            before decoding; ``None``: no limit.

    Returns:
        :class:`LoadedImage` with ``image`` float32 ``(C, H, W)`` in [0, 1], ``C`` in {1, 3}
        (RGB order), ``alpha`` ``(1, H, W)`` or ``None``, ``bit_depth`` 8 or 16.

    Raises:
        ImageReadError: the path is missing or a directory, the suffix is unsupported, the file
            is empty, not an image, corrupt or truncated, or its samples are not 8/16-bit
            integers. The message names the file and the problem.
        ImageTooLargeError: over ``max_megapixels`` (names the file, its size and the option
            that raises the limit).
    """
    path = Path(path)
    if not path.exists():
        raise _read_error(path, "file does not exist")
    if path.is_dir():
        raise _read_error(path, "is a directory, not an image file")
    suffix = path.suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:
        supported = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise _read_error(path, f"unsupported file extension '{path.suffix}' (supported: {supported})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _read_error(path, f"could not read the file ({exc.strerror or exc})") from exc
    if not data:
        raise _read_error(path, "file is empty (0 bytes)")

    fmt = _sniff_format(data)
    if fmt is None:
        raise _read_error(
            path,
            f"not a PNG, JPEG, TIFF, BMP or WebP image (unrecognised file signature {data[:8]!r})",
        )
    if fmt == "JPEG" and not _jpeg_is_complete(data):
        raise _read_error(path, "JPEG data is truncated or corrupt (no end-of-image marker)")
    _check_pixels(path, data, max_megapixels)

    try:
        array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise _read_error(path, f"{fmt} data could not be decoded ({exc})") from exc
    if array is None or array.size == 0:
        raise _read_error(path, f"{fmt} data could not be decoded (file is corrupt or truncated)")

    header = _read_header(data)
    oriented = _decoder_applies_orientation(fmt)
    if header.mode == "CMYK" and array.ndim == 3 and array.shape[2] == 4:
        array = _decode_with_pillow(data, path, "RGB")[..., ::-1]  # as BGR, like OpenCV
        oriented = False

    if array.dtype == np.uint8:
        bit_depth, max_value = 8, 255.0
    elif array.dtype == np.uint16:
        bit_depth, max_value = 16, 65535.0
    else:
        raise _read_error(
            path, f"unsupported sample type {array.dtype} (only 8- and 16-bit integer images are supported)"
        )

    if array.ndim == 2:
        array = array[:, :, None]
    channels = array.shape[2]
    if channels == 4 and header.mode in _GREY_MODES:
        # OpenCV expands grey+alpha PNG to BGRA; keep it grey when the file is grey.
        if np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0], array[..., 2]):
            array = array[..., [0, 3]]
            channels = 2
    if channels not in (1, 2, 3, 4):
        raise _read_error(path, f"unsupported number of channels ({channels})")

    if header.orientation != 1 and not oriented:
        array = _apply_orientation(array, header.orientation)

    alpha = None
    if channels in (2, 4):
        alpha = _to_tensor(array[..., -1:], max_value)
        array = array[..., :-1]
    if array.shape[2] == 3:
        array = array[..., ::-1]  # BGR -> RGB
    return LoadedImage(image=_to_tensor(array, max_value), alpha=alpha, bit_depth=bit_depth, path=path)


def rgb_to_grey(rgb: torch.Tensor) -> torch.Tensor:
    """ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` of (..., 3, H, W) -> (..., 1, H, W),
    same dtype, device and value range as the input.

    Raises:
        ValueError: the channel axis (dim -3) is not 3.
    """
    if rgb.dim() < 3 or rgb.shape[-3] != 3:
        raise ValueError(f"rgb_to_grey needs (..., 3, H, W), got {tuple(rgb.shape)}")
    weights = torch.tensor(_BT601, dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    return (rgb * weights).sum(dim=-3, keepdim=True)


def read_image(path: PathLike, channels: int = 3, *,
               max_megapixels: float | None = DEFAULT_MAX_MEGAPIXELS) -> torch.Tensor:
    """Read an image file as a float32 ``(channels, H, W)`` tensor in [0, 1]; alpha is dropped.

    Grey files are repeated to 3 channels when ``channels == 3``; RGB files are converted to
    luma with the ITU-R BT.601 weights (0.299, 0.587, 0.114) when ``channels == 1``. The EXIF
    orientation is applied (see :func:`load_image`).

    Raises:
        ImageReadError: as :func:`load_image` (``max_megapixels`` likewise).
        ValueError: ``channels`` is not 1 or 3.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    image = load_image(path, max_megapixels=max_megapixels).image
    if image.shape[0] == channels:
        return image
    if channels == 3:
        return image.expand(3, -1, -1).contiguous()
    return rgb_to_grey(image)


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def _as_chw(image: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(image).__name__}")
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 3:
        raise ValueError(f"{name} must have shape (C, H, W) or (1, C, H, W), got {tuple(image.shape)}")
    return image


def _quantize(image: torch.Tensor, max_value: int, dtype: type) -> np.ndarray:
    """Float ``(C, H, W)`` in [0, 1] -> integer ``(H, W, C)``: clamped, then rounded to nearest."""
    values = image.detach().to(device="cpu", dtype=torch.float32)
    if torch.isnan(values).any():
        raise ValueError("image contains NaN values")
    values = values.clamp(0.0, 1.0).mul(max_value).round()
    return np.ascontiguousarray(values.permute(1, 2, 0).numpy().astype(dtype))


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """Float image in [0, 1] -> ``uint8`` numpy array ``(H, W, C)`` (channel order unchanged).

    Args:
        image: tensor ``(C, H, W)`` or ``(1, C, H, W)``; values outside [0, 1] are clamped and
            the result is rounded to the nearest integer (not truncated).

    Raises:
        TypeError: ``image`` is not a tensor. ValueError: bad shape or NaN values.
    """
    return _quantize(_as_chw(image, "image"), 255, np.uint8)


def to_uint16(image: torch.Tensor) -> np.ndarray:
    """As :func:`to_uint8`, scaled to [0, 65535] and returned as ``uint16`` ``(H, W, C)``."""
    return _quantize(_as_chw(image, "image"), 65535, np.uint16)


def _is_protected(path: Path, protected: Iterable[PathLike]) -> Path | None:
    """The protected path that ``path`` designates (same resolved path or same file), if any."""
    target = path.resolve()
    for item in protected:
        other = Path(item)
        if other.resolve() == target:
            return other
        try:
            if path.exists() and other.exists() and os.path.samefile(path, other):
                return other
        except OSError:
            continue
    return None


def _encode_params(suffix: str, quality: int | None) -> list[int]:
    if suffix in (".jpg", ".jpeg"):
        return [cv2.IMWRITE_JPEG_QUALITY, 95 if quality is None else int(quality)]
    if suffix == ".webp":
        if quality is not None:
            return [cv2.IMWRITE_WEBP_QUALITY, int(quality)]
        params = [cv2.IMWRITE_WEBP_QUALITY, 101]  # > 100 selects lossless WebP
        mode = getattr(cv2, "IMWRITE_WEBP_LOSSLESS_MODE", None)
        keep = getattr(cv2, "IMWRITE_WEBP_LOSSLESS_PRESERVE_COLOR", None)
        if mode is not None and keep is not None:  # keep RGB under fully transparent pixels
            params += [mode, keep]
        return params
    return []


def _write_atomic(path: Path, payload: bytes) -> None:
    """Write ``payload`` atomically (:func:`deblurkit.io.atomic.write_bytes_atomic`), turning an
    OS error into :class:`ImageWriteError` naming the file."""
    try:
        write_bytes_atomic(path, payload)
    except OSError as exc:
        raise ImageWriteError(f"cannot write image '{path}': {exc.strerror or exc}") from exc


def save_image(
    path: PathLike,
    image: torch.Tensor,
    *,
    alpha: torch.Tensor | None = None,
    bit_depth: int = 8,
    protected: Iterable[PathLike] | PathLike = (),
    quality: int | None = None,
) -> Path:
    """Write an image file atomically; never overwrite a protected path.

    The format follows the suffix of ``path`` (one of :data:`IMAGE_EXTENSIONS`). Values are
    clamped to [0, 1] and rounded to the nearest integer level (not truncated). Missing parent
    folders are created. No EXIF orientation is written: pixels are stored as displayed.

    Args:
        path: destination file.
        image: float tensor ``(C, H, W)`` or ``(1, C, H, W)`` in [0, 1], ``C`` in {1 (grey),
            3 (RGB)}; any device and floating dtype.
        alpha: optional float ``(1, H, W)``, ``(H, W)`` or ``(1, 1, H, W)`` in [0, 1] stored as
            the alpha channel (PNG, TIFF, WebP, BMP). Grey + alpha is written as a grey+alpha
            PNG at 8 bits; elsewhere (16-bit, TIFF, WebP, BMP) as RGBA with equal colour
            channels, which reads back as RGB + alpha.
        bit_depth: 8, or 16 for PNG and TIFF.
        protected: paths that must not be overwritten (the inputs); a path that resolves to one
            of them, or is the same file (hard link), is refused.
        quality: JPEG / WebP quality 1-100. Default: JPEG 95, WebP lossless.

    Returns:
        ``Path(path)``.

    Raises:
        ImageWriteError: unsupported suffix, 16-bit or alpha not storable in the format,
            ``path`` is protected, encoding failed, or the file system refused the write (no
            temporary file is left behind and an existing file at ``path`` is untouched).
        TypeError: ``image`` / ``alpha`` not tensors.
        ValueError: bad shapes, ``bit_depth`` not 8 or 16, or NaN values.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:
        supported = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise ImageWriteError(
            f"cannot write image '{path}': unsupported file extension '{path.suffix}' (supported: {supported})"
        )
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    if bit_depth == 16 and suffix not in _SIXTEEN_BIT_EXTENSIONS:
        raise ImageWriteError(f"cannot write image '{path}': 16-bit samples need PNG or TIFF, not {suffix}")
    if alpha is not None and suffix not in _ALPHA_EXTENSIONS:
        raise ImageWriteError(
            f"cannot write image '{path}': {suffix} has no alpha channel (use PNG, TIFF or WebP)"
        )
    if isinstance(protected, (str, os.PathLike)):
        protected = [protected]
    hit = _is_protected(path, protected)
    if hit is not None:
        raise ImageWriteError(f"refusing to write image '{path}': it would overwrite the input '{hit}'")

    image = _as_chw(image, "image")
    if image.shape[0] not in (1, 3):
        raise ValueError(f"image must have 1 or 3 channels, got {image.shape[0]}")
    max_value, dtype = (255, np.uint8) if bit_depth == 8 else (65535, np.uint16)
    array = _quantize(image, max_value, dtype)
    if array.shape[2] == 3:
        array = array[..., ::-1]  # RGB -> BGR for OpenCV
    if alpha is not None:
        if isinstance(alpha, torch.Tensor) and alpha.ndim == 2:
            alpha = alpha[None]
        alpha = _as_chw(alpha, "alpha")
        if alpha.shape != (1, *image.shape[1:]):
            raise ValueError(f"alpha must have shape (1, {image.shape[1]}, {image.shape[2]}), got {tuple(alpha.shape)}")
        array = np.concatenate([array, _quantize(alpha, max_value, dtype)], axis=2)
    array = np.ascontiguousarray(array)
    if array.shape[2] == 1:
        array = array[..., 0]

    payload = _encode(path, suffix, array, quality)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageWriteError(f"cannot write image '{path}': cannot create folder ({exc.strerror or exc})") from exc
    _write_atomic(path, payload)
    return path


def _encode(path: Path, suffix: str, array: np.ndarray, quality: int | None) -> bytes:
    """Encode an OpenCV-ordered array (``(H, W)`` grey, ``(H, W, 2)`` grey+alpha, BGR, BGRA)."""
    if array.ndim == 3 and array.shape[2] == 2:
        if suffix == ".png" and array.dtype == np.uint8:
            # OpenCV writes no grey+alpha files; Pillow writes an 8-bit "LA" PNG.
            buf = io.BytesIO()
            Image.fromarray(array, "LA").save(buf, format="PNG")
            return buf.getvalue()
        array = np.ascontiguousarray(array[..., [0, 0, 0, 1]])  # stored as BGRA
    try:
        ok, encoded = cv2.imencode(suffix, array, _encode_params(suffix, quality))
    except cv2.error as exc:
        raise ImageWriteError(f"cannot write image '{path}': encoding failed ({exc})") from exc
    if not ok:
        raise ImageWriteError(f"cannot write image '{path}': encoding failed")
    return encoded.tobytes()


# --------------------------------------------------------------------------------------------
# listing
# --------------------------------------------------------------------------------------------


def list_images(paths: PathLike | Iterable[PathLike], *, recursive: bool = False) -> list[Path]:
    """Image files named by ``paths``: files as given, folders by their direct children (with
    ``recursive``, by every file below them).

    Only suffixes in :data:`IMAGE_EXTENSIONS` (any case) are kept; hidden files and folders
    (name starting with ".", e.g. macOS "._x.jpg" or temporary files) inside folders are
    skipped. The result is sorted and free of duplicates.

    Args:
        paths: one path or an iterable of paths (files and/or folders).
        recursive: search folders recursively.

    Returns:
        sorted list of :class:`pathlib.Path`.

    Raises:
        FileNotFoundError: a path does not exist (the message names it).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: set[Path] = set()
    for item in paths:
        item = Path(item)
        if item.is_dir():
            children = item.rglob("*") if recursive else item.iterdir()
            for child in children:
                if any(part.startswith(".") for part in child.relative_to(item).parts) or not child.is_file():
                    continue
                if child.suffix.lower() in IMAGE_EXTENSIONS:
                    found.add(child)
        elif item.exists():
            if item.suffix.lower() in IMAGE_EXTENSIONS:
                found.add(item)
        else:
            raise FileNotFoundError(f"no such file or folder: '{item}'")
    return sorted(found)
