"""Settings of the web app (``deblurkit serve`` options)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["AppConfig", "default_examples_dir"]


def default_examples_dir() -> Path | None:
    """``examples/real_blur`` of a source checkout (``None`` when deblurkit is installed
    without its examples)."""
    folder = Path(__file__).resolve().parents[3] / "examples" / "real_blur"
    return folder if folder.is_dir() else None


@dataclass
class AppConfig:
    """Settings of one app instance.

    Attributes:
        max_upload_mb: largest accepted upload in MiB (images and recordings); bigger ones get
            HTTP 413 and a message on the page.
        max_megapixels: largest accepted image (width x height / 1e6).
        examples_dir: folder of example photos offered on the page (``None``: none).
        device: torch device for the networks (``cpu``, ``cuda``, ``cuda:N``, ``auto``).
        workdir: folder in which the app creates its own temporary folder (default: the
            system temp folder); nothing is written anywhere else.
        max_jobs: finished jobs kept (with their files) at most.
        keep_seconds: finished jobs are deleted after this long.
        host: the address the app is bound to; with ``127.0.0.1``, ``localhost`` and ``::1``
            the host names accepted in requests' ``Host`` header (:mod:`deblurkit.app.guard`).
        allowed_hosts: further host names accepted (``deblurkit serve --allow-host``).
    """

    max_upload_mb: float = 50.0
    max_megapixels: float = 40.0
    examples_dir: Path | None = None
    device: str = "auto"
    workdir: Path | None = None
    max_jobs: int = 16
    keep_seconds: float = 3600.0
    host: str = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.max_upload_mb > 0:
            raise ValueError(f"--max-upload-mb must be > 0, got {self.max_upload_mb}")
        if not self.max_megapixels > 0:
            raise ValueError(f"--max-megapixels must be > 0, got {self.max_megapixels}")
        self.allowed_hosts = tuple(self.allowed_hosts)
        if self.max_jobs < 1:
            raise ValueError(f"max_jobs must be >= 1, got {self.max_jobs}")
        if self.examples_dir is not None:
            self.examples_dir = Path(self.examples_dir)
            if not self.examples_dir.is_dir():
                raise FileNotFoundError(f"examples folder not found: '{self.examples_dir}' (--examples)")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

    @property
    def max_pixels(self) -> int:
        return int(self.max_megapixels * 1e6)
