"""``ser-adapt serve``: run the HTTP service (FastAPI + uvicorn)."""
from __future__ import annotations

import typer

from ._shared import cli_errors, cli_personalizer, store_option


@cli_errors
def serve(host: str = typer.Option("127.0.0.1", help="bind address"),
          port: int = typer.Option(8000, min=1, max=65535),
          store: str = store_option(),
          backbone: str = typer.Option(None, "--backbone", help="backbone name (default: the offline default)"),
          head: str = typer.Option(None, "--head", help="global head file, .npz or .json (default: the shipped one)"),
          max_upload_mb: float = typer.Option(20.0, min=0.001, help="largest request body, MiB"),
          max_file_mb: float = typer.Option(10.0, min=0.001, help="largest audio file, MiB"),
          max_clip_s: float = typer.Option(30.0, help="longest clip, seconds")) -> None:
    """Serve enroll / predict / feedback / emotions / users over HTTP. Create keys with `ser-adapt keys create`."""
    try:
        import uvicorn
    except ImportError:
        typer.echo("error: serving needs uvicorn: pip install 'ser-adapt[service]'", err=True)
        raise typer.Exit(2)
    from ..service import ServiceLimits, create_app

    p = cli_personalizer(store, "default", backbone, head, max_clip_s=max_clip_s)
    limits = ServiceLimits(max_request_bytes=int(max_upload_mb * 2**20), max_file_bytes=int(max_file_mb * 2**20))
    uvicorn.run(create_app(p, limits=limits), host=host, port=port, log_level="info")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
