"""Checking what the browser sends: size limits, image type, safe names.

An upload arrives as the raw request body (no multipart parsing, so nothing is spooled to a
temporary file outside the app's workspace); its original file name comes in a header and is
used only as text in messages and in the suggested download name, never as a path.
"""
from __future__ import annotations

import io
import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

from ..io import ImageReadError, LoadedImage, load_image
from ..io.atomic import write_bytes_atomic

__all__ = [
    "UploadError",
    "IMAGE_FORMATS",
    "display_name",
    "download_stem",
    "store_image_upload",
    "store_upload",
]

#: Container formats accepted for an image upload -> the fixed suffix of the stored copy.
IMAGE_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "BMP": ".bmp", "WEBP": ".webp"}


class UploadError(ValueError):
    """Bad input from the page; ``status`` is the HTTP status to answer with (400 or 413)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def display_name(raw: str | None, default: str = "upload") -> str:
    """The upload's file name as text for messages: URL-decoded, folders and control characters
    dropped, at most 120 characters. Never use it as a path."""
    name = unquote(raw or "")
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:120] or default


def download_stem(name: str) -> str:
    """A harmless file stem for ``Content-Disposition`` built from ``name``: ``[A-Za-z0-9._-]``
    only, no leading dots, at most 60 characters (``"image"`` if nothing is left)."""
    stem = name.rsplit(".", 1)[0] if "." in name else name
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).lstrip("._")[:60]
    return stem or "image"


def check_size(n_bytes: int, limit_bytes: int, name: str) -> None:
    """Raise :class:`UploadError` (413) when ``n_bytes`` exceeds ``limit_bytes``."""
    if n_bytes > limit_bytes:
        raise UploadError(
            f"'{name}' is too large: {n_bytes / 2**20:.1f} MB, the limit is {limit_bytes / 2**20:.1f} MB "
            "(deblurkit serve --max-upload-mb)",
            status=413,
        )


def store_upload(data: bytes, dest: Path) -> Path:
    """Write an upload's bytes to ``dest`` (a fixed name inside a job folder), atomically."""
    return write_bytes_atomic(dest, data)


def store_image_upload(data: bytes, name: str, job_dir: Path, *, max_pixels: int) -> LoadedImage:
    """Check that ``data`` is a supported, intact image no larger than ``max_pixels``, store it as
    ``job_dir/upload.<ext>`` and read it.

    Args:
        data: the uploaded bytes.
        name: the upload's display name (:func:`display_name`), for messages only.
        job_dir: the job's folder inside the workspace.
        max_pixels: largest accepted width x height.

    Returns:
        :class:`deblurkit.io.LoadedImage` (``image`` (C,H,W) float32 in [0, 1]).

    Raises:
        UploadError: empty, not an image, unsupported format, corrupt or truncated data (400),
            or too many pixels (413). The message names the upload, not the stored path.
    """
    from PIL import Image, UnidentifiedImageError

    supported = "PNG, JPEG, TIFF, BMP, WebP"
    if not data:
        raise UploadError(f"'{name}' is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt, (w, h) = im.format, im.size
    except Image.DecompressionBombError:
        raise UploadError(f"'{name}' has far too many pixels", status=413) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise UploadError(f"'{name}' is not an image this app can read (supported: {supported})") from None
    if fmt not in IMAGE_FORMATS:
        raise UploadError(f"'{name}' is a {fmt} file; supported: {supported}")
    if w * h > max_pixels:
        raise UploadError(
            f"'{name}' is {w}x{h} = {w * h / 1e6:.1f} MP, over the limit of {max_pixels / 1e6:.1f} MP "
            "(deblurkit serve --max-megapixels)",
            status=413,
        )
    path = store_upload(data, job_dir / f"upload{IMAGE_FORMATS[fmt]}")
    try:
        return load_image(path, max_megapixels=None)  # checked above, against the app's own limit
    except ImageReadError as exc:
        msg = str(exc).replace(f"cannot read image '{path}'", f"cannot read '{name}'").replace(str(path), name)
        raise UploadError(msg) from None
