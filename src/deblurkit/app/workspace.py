"""The web app's own temporary folder: every file the app writes lives under it.

One :class:`Workspace` per running app: ``<system temp>/deblurkit-app-XXXXXXXX/`` (or under a
chosen parent), one sub-folder per job named by the job's random id. Upload file names are
never used to build a path: files inside a job folder have fixed names chosen by the app
(``input.jpg``, ``result.png``, ``frame_0003.png``, ...). The whole folder is removed by
:meth:`Workspace.close` (called when the server stops and at interpreter exit).
"""
from __future__ import annotations

import atexit
import re
import shutil
import tempfile
import uuid
from pathlib import Path

__all__ = ["Workspace", "new_job_id", "JOB_ID_PATTERN"]

#: A job id: 32 lower-case hex digits (``uuid4().hex``); anything else is rejected.
JOB_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")


def new_job_id() -> str:
    """A fresh random job id (see :data:`JOB_ID_PATTERN`)."""
    return uuid.uuid4().hex


class Workspace:
    """A private temporary folder with one sub-folder per job.

    Args:
        parent: folder in which to create the workspace (default: the system temp folder).

    Raises:
        OSError: the folder cannot be created.
    """

    def __init__(self, parent: str | Path | None = None) -> None:
        if parent is not None:
            Path(parent).mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="deblurkit-app-", dir=parent)).resolve()
        self._closed = False
        atexit.register(self.close)

    def job_dir(self, job_id: str, *, create: bool = False) -> Path:
        """Folder of job ``job_id``.

        Raises:
            ValueError: ``job_id`` is not a job id (so it can never name another folder).
        """
        if not isinstance(job_id, str) or not JOB_ID_PATTERN.match(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        folder = self.root / job_id
        if create:
            folder.mkdir(exist_ok=False)
        return folder

    def remove_job(self, job_id: str) -> None:
        """Delete a job's folder and everything in it (no error if it is already gone)."""
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def close(self) -> None:
        """Delete the whole workspace folder; safe to call more than once."""
        if not self._closed:
            self._closed = True
            shutil.rmtree(self.root, ignore_errors=True)
            atexit.unregister(self.close)

    @property
    def closed(self) -> bool:
        return self._closed
