"""Jobs of the web app: one worker thread runs them in order; the page polls their progress.

A job is created (its folder made in the :class:`~deblurkit.app.workspace.Workspace`) when a
request has been checked, then queued. Its public state (:meth:`Job.public`) is what
``GET /api/jobs/<id>`` returns: ``state`` (queued, running, done, error), tile progress
``done``/``total``, a ``message``, the ``error`` text, and the ``frames`` of an event job.
Finished jobs are deleted (files included) after ``keep_seconds`` or when more than
``max_jobs`` exist, and all of them when the app stops.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .workspace import JOB_ID_PATTERN, Workspace, new_job_id

__all__ = ["Job", "JobManager", "friendly_error"]

log = logging.getLogger(__name__)


@dataclass
class Job:
    """State of one run (mutated by the worker thread, read by request handlers)."""

    id: str
    kind: str  # "image" or "events"
    name: str  # the upload's display name (text only)
    state: str = "queued"
    done: int = 0
    total: int = 0
    message: str = "queued"
    error: str | None = None
    note: str = ""  # how the run went (classical pipeline: the kernel, or why it fell back)
    fell_back: bool = False  # the kernel estimate was unreliable; a conservative result was written
    frames: int = 0
    files: list[str] = field(default_factory=list)  # names the app chose, in the job folder
    created: float = field(default_factory=time.time)
    finished: float | None = None
    deleted: bool = False  # DELETE arrived while queued/running: remove when it ends

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "message": self.message,
            "error": self.error,
            "note": self.note,
            "fell_back": self.fell_back,
            "frames": self.frames,
            "files": sorted(list(self.files)),
        }

    def add_file(self, name: str) -> None:
        """Publish a finished file of the job folder (list append: safe while handlers read)."""
        if name not in self.files:
            self.files.append(name)

    def progress(self, done: int, total: int) -> None:
        """Tile (or frame) progress callback: ``progress(done, total)``."""
        self.done, self.total = int(done), int(total)
        self.message = f"{self.done} / {self.total}"


def friendly_error(exc: BaseException, workspace: Workspace | None = None) -> str:
    """One line for the page: the exception's message (``KeyError`` unquoted), with the
    workspace's path hidden."""
    msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    msg = str(msg) or type(exc).__name__
    if workspace is not None:
        msg = msg.replace(str(workspace.root), "<upload>")
    return msg


class JobManager:
    """Creates, runs (one at a time, in a worker thread), finds and deletes jobs.

    Args:
        workspace: the app's temporary folder.
        device: torch device for the networks (``"cpu"``, ``"cuda"``, ``"auto"``).
        max_jobs: finished jobs kept at most (oldest deleted first).
        keep_seconds: finished jobs older than this are deleted.
    """

    def __init__(self, workspace: Workspace, *, device: str = "cpu", max_jobs: int = 16,
                 keep_seconds: float = 3600.0) -> None:
        self.workspace = workspace
        self.device = device
        self.max_jobs = int(max_jobs)
        self.keep_seconds = float(keep_seconds)
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deblurkit-job")
        self._cached: tuple[Any, Any] | None = None  # (key, Deblurrer): the last network used

    # ------------------------------------------------------------------ bookkeeping
    def create(self, kind: str, name: str) -> Job:
        """A new job with an empty folder (older finished jobs are pruned first)."""
        self.prune()
        job = Job(id=new_job_id(), kind=kind, name=name)
        self.workspace.job_dir(job.id, create=True)
        with self._lock:
            self._jobs[job.id] = job
        return job

    def get(self, job_id: str) -> Job | None:
        if not isinstance(job_id, str) or not JOB_ID_PATTERN.match(job_id):
            return None
        with self._lock:
            return self._jobs.get(job_id)

    def remove(self, job_id: str) -> bool:
        """Forget a job and delete its folder; a running job is deleted when it finishes."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return False
            if job.state in ("queued", "running"):
                job.deleted = True
                return True
            del self._jobs[job_id]
        self.workspace.remove_job(job_id)
        return True

    def discard(self, job_id: str) -> None:
        """Forget a job that was never submitted (its request was refused) and delete its folder."""
        with self._lock:
            self._jobs.pop(job_id, None)
        self.workspace.remove_job(job_id)

    def prune(self) -> None:
        now = time.time()
        with self._lock:
            finished = sorted(
                (j for j in self._jobs.values() if j.finished is not None), key=lambda j: j.finished
            )
            excess = max(0, len(finished) - self.max_jobs + 1)
            doomed = [j.id for k, j in enumerate(finished) if k < excess or now - j.finished > self.keep_seconds]
            for jid in doomed:
                del self._jobs[jid]
        for jid in doomed:
            self.workspace.remove_job(jid)

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)

    # ------------------------------------------------------------------ running
    def submit(self, job: Job, work: Callable[[Job], None]) -> None:
        """Queue ``work(job)``; its exceptions become ``job.error`` (one line)."""

        def run() -> None:
            if job.deleted:
                self._finish_cancelled(job)
                return
            job.state, job.message = "running", "starting"
            try:
                work(job)
            except Exception as exc:  # reported on the page, logged with its traceback
                log.info("job %s failed", job.id, exc_info=True)
                job.error = friendly_error(exc, self.workspace)
                job.state, job.message = "error", "failed"
            else:
                job.state, job.message = "done", "done"
            job.finished = time.time()
            if job.deleted:
                self._finish_cancelled(job)

        self._pool.submit(run)

    def _finish_cancelled(self, job: Job) -> None:
        with self._lock:
            self._jobs.pop(job.id, None)
        self.workspace.remove_job(job.id)

    def deblurrer(self, options: Any) -> Any:
        """The runner for ``options`` (the last one is reused): the classical pipeline
        (:class:`deblurkit.inference.ClassicalDeblurrer`) or a :class:`deblurkit.inference.Deblurrer`."""
        from ..inference import ClassicalDeblurrer, Deblurrer

        weights = options.weights
        key = (options.model, str(weights) if weights else None,
               weights.stat().st_mtime_ns if weights else None, options.precision, options.tile, self.device)
        if self._cached is None or self._cached[0] != key:
            self._cached = None
            kind = ClassicalDeblurrer if options.classical else Deblurrer
            d = kind(**options.deblurrer_kwargs(), device=self.device, progress=False)
            self._cached = (key, d)
        return self._cached[1]

    def close(self) -> None:
        """Stop the worker (queued jobs are dropped) and delete the workspace."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._jobs.clear()
        self._cached = None
        self.workspace.close()
