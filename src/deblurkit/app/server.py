"""The web app (FastAPI): a static page plus a small JSON API over the inference engine.

Routes (all answers to bad input are ``{"error": "<message>"}`` with a 4xx status):

- ``GET /``: the page (``static/index.html``, vanilla JS, no external resources).
- ``GET /api/info``: the default (the classical pipeline), the embedded network, the other models,
  examples, limits, event support.
- ``GET /api/examples/<name>``: an example photo (only names listed by ``/api/info``).
- ``POST /api/jobs?model=&weights=&precision=&tile=[&example=NAME]``: deblur one image; the
  image is the raw request body (header ``X-File-Name`` carries its name as text) or the named
  example. Answers ``202 {"job": {...}}``.
- ``POST /api/events?model=&weights=``: deblur an ``.aedat4`` recording (raw body), when
  ``deblurkit.io.events`` provides it (:mod:`.events`), else 501 with the reason.
- ``GET /api/jobs/<id>``: state and progress; ``GET /api/jobs/<id>/files/<name>[?download=1]``:
  ``input.png``, ``result.png``, ``kernel.png`` (classical pipeline: the kernel used, scaled to its
  maximum and enlarged) or ``frame_NNNN.png``; ``DELETE /api/jobs/<id>``.

Every request first passes :mod:`.guard`: a ``Host`` allow-list (against DNS rebinding) and, for
state-changing requests, a same-origin check (against cross-site requests); refused ones get 403.
Everything the app writes goes into its :class:`~deblurkit.app.workspace.Workspace`.
"""
from __future__ import annotations

import importlib.resources
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .config import AppConfig
from .events import AEDAT4_SIGNATURE, event_support
from .guard import allowed_host_names, refusal
from .jobs import Job, JobManager
from .options import CLASSICAL, EMBEDDED, RunOptions, parse_weights, event_models, image_models, parse_options
from .uploads import UploadError, check_size, display_name, download_stem, store_image_upload, store_upload
from .workspace import Workspace

__all__ = ["create_app", "CONTENT_SECURITY_POLICY"]

#: Sent with every answer: the page may load nothing from anywhere but this server.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)


#: A refused upload up to this size is read to its end and dropped, so that the client gets the
#: 413 answer instead of a broken pipe; a bigger one is cut off.
DRAIN_LIMIT_BYTES = 2**30


def _static_dir() -> Path:
    return Path(str(importlib.resources.files("deblurkit.app").joinpath("static")))


def _examples(config: AppConfig) -> dict[str, Path]:
    from ..io import list_images

    if config.examples_dir is None:
        return {}
    return {p.name: p for p in list_images(config.examples_dir)}


def create_app(config: AppConfig | None = None) -> FastAPI:
    """Build the FastAPI application.

    Args:
        config: settings (:class:`AppConfig`; default settings when ``None``).

    Returns:
        a ``fastapi.FastAPI`` instance; ``app.state.jobs`` is its :class:`JobManager` and
        ``app.state.workspace`` its temporary folder, deleted when the app shuts down.
    """
    config = config or AppConfig()
    workspace = Workspace(config.workdir)
    jobs = JobManager(workspace, device=config.device, max_jobs=config.max_jobs, keep_seconds=config.keep_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        jobs.close()

    app = FastAPI(title="deblurkit", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.config, app.state.jobs, app.state.workspace = config, jobs, workspace
    static = _static_dir()

    host_names, any_ip = allowed_host_names(config.host, config.allowed_hosts)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Any:
        refused = refusal(request.method, request.headers, host_names, any_ip)  # see .guard
        if refused is not None:
            response = JSONResponse({"error": refused}, status_code=403)
        else:
            response = await call_next(request)
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if request.url.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, exc: UploadError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": f"bad request: {exc.errors()}"}, status_code=422)

    async def read_body(request: Request, name: str) -> bytes:
        """The raw request body, refused (413) once it exceeds the upload limit.

        A refused body is still read to its end (and dropped, up to :data:`DRAIN_LIMIT_BYTES`)
        before the answer goes out: a server that answers and closes while the client is still
        sending makes the client's send fail (broken pipe) and it never sees the 413 message.
        """
        limit = config.max_upload_bytes
        declared = request.headers.get("content-length", "")
        buf = bytearray()
        try:
            if declared.isdigit():
                check_size(int(declared), limit, name)
            async for chunk in request.stream():
                buf += chunk
                check_size(len(buf), limit, name)
        except UploadError:
            seen = len(buf)
            buf = bytearray()
            if not declared.isdigit() or int(declared) <= DRAIN_LIMIT_BYTES:
                async for chunk in request.stream():
                    seen += len(chunk)
                    if seen > DRAIN_LIMIT_BYTES:
                        break
            raise
        return bytes(buf)

    def get_job(job_id: str) -> Job:
        job = jobs.get(job_id)
        if job is None:
            raise UploadError(f"no such job: '{job_id[:40]}' (finished jobs are deleted after a while)", status=404)
        return job

    # ------------------------------------------------------------------ page
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(static / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        from ..inference import default_model_info

        try:
            default_model_info()
            embedded, embedded_error = EMBEDDED, None
        except (FileNotFoundError, ValueError) as exc:
            embedded, embedded_error = None, str(exc)
        events_fn, events_reason = event_support()
        return {
            "default_model": CLASSICAL,
            "default_model_label": "classical blind deconvolution: estimates the blur kernel, no weights",
            "embedded_model": embedded,
            "embedded_model_error": embedded_error,
            "models": image_models(),
            "event_models": event_models(),
            "events_available": events_fn is not None,
            "events_reason": events_reason,
            "examples": sorted(_examples(config)),
            "max_upload_bytes": config.max_upload_bytes,
            "max_megapixels": config.max_megapixels,
            "device": config.device,
        }

    @app.get("/api/examples/{name}")
    def example(name: str) -> FileResponse:
        found = _examples(config).get(name)
        if found is None:
            raise UploadError(f"no such example: '{display_name(name)}'", status=404)
        return FileResponse(found)

    # ------------------------------------------------------------------ images
    @app.post("/api/jobs", status_code=202)
    async def create_job(request: Request) -> dict[str, Any]:
        params = request.query_params
        options = parse_options(params, allowed_models=image_models())
        example_name = params.get("example")
        if example_name:
            path = _examples(config).get(example_name)
            if path is None:
                raise UploadError(f"no such example: '{display_name(example_name)}'", status=404)
            name, data = path.name, await run_in_threadpool(path.read_bytes)
        else:
            name = display_name(request.headers.get("x-file-name"))
            data = await read_body(request, name)
        job = jobs.create("image", name)
        try:
            loaded = await run_in_threadpool(_prepare_image, job, data, config, workspace)
        except BaseException:
            jobs.discard(job.id)
            raise
        jobs.submit(job, lambda j: _run_image(j, loaded, options, jobs, workspace))
        return {"job": job.public()}

    # ------------------------------------------------------------------ events
    @app.post("/api/events", status_code=202)
    async def create_event_job(request: Request) -> dict[str, Any]:
        fn, reason = event_support()
        if fn is None:
            raise UploadError(reason, status=501)
        params = request.query_params
        model = (params.get("model") or "evdeblur").strip()
        allowed = event_models()
        if model not in allowed:
            raise UploadError(f"unknown event model '{model}'; choose one of: {', '.join(allowed)}")
        weights = parse_weights(params.get("weights") or "")
        name = display_name(request.headers.get("x-file-name"), default="recording")
        data = await read_body(request, name)
        if not data.startswith(AEDAT4_SIGNATURE):
            raise UploadError(f"'{name}' is not an AEDAT 4.0 recording (.aedat4 files start with "
                              f"{AEDAT4_SIGNATURE.decode()!r})")
        job = jobs.create("events", name)
        try:
            path = await run_in_threadpool(store_upload, data, workspace.job_dir(job.id) / "recording.aedat4")
        except BaseException:
            jobs.discard(job.id)
            raise

        def work(j: Job) -> None:
            from ..io import save_image

            j.message = "reading events"
            folder = workspace.job_dir(j.id)
            frames = fn(path, model=model, weights=weights, device=config.device, progress=j.progress)
            for i, frame in enumerate(frames):
                fname = f"frame_{i:04d}.png"
                save_image(folder / fname, frame)
                j.add_file(fname)
                j.frames = i + 1
            if j.frames == 0:
                raise ValueError(f"'{j.name}' gave no frames to deblur")

        jobs.submit(job, work)
        return {"job": job.public()}

    # ------------------------------------------------------------------ job state and files
    @app.get("/api/jobs/{job_id}")
    def job_state(job_id: str) -> dict[str, Any]:
        return {"job": get_job(job_id).public()}

    @app.get("/api/jobs/{job_id}/files/{fname}")
    def job_file(job_id: str, fname: str, download: int = 0) -> Response:
        job = get_job(job_id)
        if fname not in job.files:  # only names the app itself chose
            raise UploadError(f"job has no file '{display_name(fname)}'", status=404)
        path = workspace.job_dir(job.id) / fname
        if not download:
            return FileResponse(path, media_type="image/png")
        stem = download_stem(job.name)
        suffix = {"input.png": "input", "kernel.png": "kernel"}.get(fname, "deblurred")
        out_name = f"{stem}_{suffix}.png" if job.kind == "image" else f"{stem}_{fname}"
        return FileResponse(path, media_type="image/png", filename=out_name)

    @app.delete("/api/jobs/{job_id}")
    def delete_job(job_id: str) -> dict[str, Any]:
        get_job(job_id)
        jobs.remove(job_id)
        return {"deleted": job_id}

    return app


def _prepare_image(job: Job, data: bytes, config: AppConfig, workspace: Workspace) -> Any:
    """Check and store the upload; write the 8-bit ``input.png`` preview shown on the page."""
    from ..io import save_image

    folder = workspace.job_dir(job.id)
    loaded = store_image_upload(data, job.name, folder, max_pixels=config.max_pixels)
    save_image(folder / "input.png", loaded.image, alpha=loaded.alpha, bit_depth=8)
    job.add_file("input.png")
    return loaded


def _run_image(job: Job, loaded: Any, options: RunOptions, jobs: JobManager, workspace: Workspace) -> None:
    """Worker: deblur the image (tile progress into ``job``) and write ``result.png`` (bit depth
    and alpha of the upload kept)."""
    from ..io import save_image

    job.message = "loading the model"
    deblurrer = jobs.deblurrer(options)
    c, h, w = loaded.image.shape
    tile = deblurrer.tile_for(h, w)
    folder = workspace.job_dir(job.id)
    if options.classical:
        from ..inference import write_kernel

        job.message = f"estimating the blur kernel, then deconvolving {w}x{h}" + (f" in tiles of {tile}" if tile else "")
        res = deblurrer.restore(loaded.image, progress=job.progress)
        result = res.image[0]
        job.note, job.fell_back = res.describe(), res.fell_back
        if res.kernel is not None:
            write_kernel(res.kernel, folder / "kernel.png")
            job.add_file("kernel.png")
    else:
        job.message = f"deblurring {w}x{h}" + (f" in tiles of {tile}" if tile else "")
        result = deblurrer.deblur_tensor(loaded.image, progress=job.progress)
    save_image(folder / "result.png", result, alpha=loaded.alpha, bit_depth=loaded.bit_depth)
    job.add_file("result.png")
