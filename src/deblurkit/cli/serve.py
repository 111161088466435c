"""``deblurkit serve``: the local web app (see :mod:`deblurkit.app`)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import app
from . import fail as _fail


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback by default: only this computer)."),
    port: int = typer.Option(8000, help="TCP port."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N or auto."),
    max_upload_mb: float = typer.Option(50.0, help="Largest accepted upload in MiB."),
    max_megapixels: float = typer.Option(40.0, help="Largest accepted image in megapixels."),
    examples: Optional[Path] = typer.Option(None, help="Folder of example photos (default: examples/real_blur of a source checkout)."),
    workdir: Optional[Path] = typer.Option(None, help="Where the app creates its temporary folder (default: system temp)."),
    allow_host: List[str] = typer.Option([], "--allow-host", help="Also answer requests addressed to this host name (repeatable); by default only the --host address, 127.0.0.1, localhost and [::1] (protects against DNS rebinding)."),
):
    """Start the local web app: upload or pick a photo, deblur it, compare and download the result."""
    try:
        import uvicorn

        from ..app import AppConfig, create_app
        from ..app.config import default_examples_dir
        from ..engine.trainer import resolve_device
    except ImportError as exc:
        _fail(f"the web app needs fastapi and uvicorn ({exc}); pip install fastapi uvicorn")
    try:
        resolve_device(device)
    except (ValueError, RuntimeError) as exc:
        _fail(str(exc) if "--device" in str(exc) else f"--device {device}: {exc}")
    if not 0 < port < 65536:
        _fail(f"--port must be between 1 and 65535, got {port}")
    try:
        config = AppConfig(max_upload_mb=max_upload_mb, max_megapixels=max_megapixels,
                           examples_dir=examples if examples is not None else default_examples_dir(),
                           device=device, workdir=workdir, host=host, allowed_hosts=tuple(allow_host))
        web = create_app(config)
    except (ValueError, FileNotFoundError, OSError) as exc:
        _fail(str(exc))
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.secho(f"warning: listening on {host}: other computers can reach the app", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"deblurkit web app on http://{'[' + host + ']' if ':' in host else host}:{port}/ "
               f"(temporary folder {web.state.workspace.root}); Ctrl+C to stop")
    uvicorn.run(web, host=host, port=port, log_level="warning")
