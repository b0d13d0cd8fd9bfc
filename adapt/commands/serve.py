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
          max_clip_s: float = typer.Option(30.0, help="longest clip, seconds"),
          max_inflight: int = typer.Option(4, min=1, help="audio requests processed at once; more get 503"),
          tenant_rate: float = typer.Option(50.0, min=0.0, help="requests/s per tenant (0: unlimited); more get 429"),
          tenant_burst: int = typer.Option(100, min=1, help="burst allowance of the per-tenant rate"),
          header_timeout_s: float = typer.Option(10.0, min=0.1, help="time to send a request head, seconds"),
          keep_alive_s: float = typer.Option(5.0, min=0.1, help="idle keep-alive connections close after this"),
          max_connections: int = typer.Option(256, min=1, help="open connections; more get 503")) -> None:
    """Serve enroll / predict / feedback / emotions / users over HTTP. Create keys with `ser-adapt keys create`."""
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        typer.echo("error: serving needs uvicorn: pip install 'ser-adapt[service]'", err=True)
        raise typer.Exit(2)
    from ..service import ServiceLimits, create_app
    from ..service.server import ServerOptions, run

    p = cli_personalizer(store, "default", backbone, head, max_clip_s=max_clip_s)
    limits = ServiceLimits(max_request_bytes=int(max_upload_mb * 2**20), max_file_bytes=int(max_file_mb * 2**20),
                           max_inflight=max_inflight, tenant_rate_per_s=tenant_rate or None, tenant_burst=tenant_burst)
    run(create_app(p, limits=limits), host=host, port=port,
        options=ServerOptions(header_timeout_s=header_timeout_s, keep_alive_s=keep_alive_s,
                              max_connections=max_connections))


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
