"""``ser-adapt enroll`` / ``predict`` and ``ser-adapt users ...``: personalization from the shell.

Uses the embedded default store (``--store``, ``$SER_ADAPT_STORE``, else the user data folder),
the default backbone and the shipped global head.
"""
from __future__ import annotations

import json
from pathlib import Path

import typer

from .keys import open_cli_store, store_option


def _personalizer(store: str | None, tenant: str, backbone: str | None, head: str | None):
    from ..personalizer import Personalizer, default_store_path

    bb = None
    if backbone:
        from ..backbones import get_backbone

        bb = get_backbone(backbone)
    return Personalizer.default(store if store else default_store_path(), backbone=bb, head=head, tenant=tenant)


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
    raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    tenant_opt = typer.Option("default", "--tenant", help="tenant namespace in the store")
    backbone_opt = typer.Option(None, "--backbone", help="backbone name (default: the offline default)")
    head_opt = typer.Option(None, "--head", help="global head file, .npz or .json (default: the shipped one)")

    @app.command("enroll")
    def enroll(user: str = typer.Option(..., "--user", help="user id"),
               label: list[str] = typer.Option(..., "--label", help="one label for all files, or one per file (repeat)"),
               files: list[Path] = typer.Argument(..., help="audio files"),
               store: str = store_option(), tenant: str = tenant_opt, backbone: str = backbone_opt,
               head: str = head_opt) -> None:
        """Add labelled clips to a user's profile (created if new)."""
        from ..errors import SerAdaptError

        labels = list(label) * len(files) if len(label) == 1 else list(label)
        try:
            s = _personalizer(store, tenant, backbone, head).enroll(user, [str(f) for f in files], labels)
        except (SerAdaptError, ValueError) as exc:
            _fail(exc)
        typer.echo(json.dumps(s.to_dict()))

    @app.command("predict")
    def predict(user: str = typer.Option(..., "--user", help="user id (unknown users get the global model)"),
                files: list[Path] = typer.Argument(..., help="audio files"),
                store: str = store_option(), tenant: str = tenant_opt, backbone: str = backbone_opt,
                head: str = head_opt) -> None:
        """Predict the emotion of each file for a user; one JSON line per file."""
        from ..errors import SerAdaptError

        try:
            preds = _personalizer(store, tenant, backbone, head).predict_batch(user, [str(f) for f in files])
        except (SerAdaptError, ValueError) as exc:
            _fail(exc)
        for f, r in zip(files, preds):
            typer.echo(json.dumps({"file": str(f), **r.to_dict()}))

    users = typer.Typer(help="List, export, import and forget user profiles.", no_args_is_help=True)

    @users.command("list")
    def list_(tenant: str = tenant_opt, store: str = store_option(),
              limit: int = typer.Option(1000, min=1), offset: int = typer.Option(0, min=0)) -> None:
        """Enrolled users of a tenant, one per line."""
        with open_cli_store(store) as s:
            for u in s.list_users(tenant, limit=limit, offset=offset):
                typer.echo(u)

    @users.command("forget")
    def forget(user: str = typer.Argument(...), tenant: str = tenant_opt, store: str = store_option()) -> None:
        """Delete every trace of a user."""
        with open_cli_store(store) as s:
            if not s.delete(tenant, user):
                typer.echo(f"error: no profile for user {user!r} in tenant {tenant!r}", err=True)
                raise typer.Exit(1)
        typer.echo(f"forgot {user}")

    @users.command("export")
    def export(user: str = typer.Argument(...), out: Path = typer.Option(None, "--out", help="file (default stdout)"),
               tenant: str = tenant_opt, store: str = store_option()) -> None:
        """Write a user's profile as JSON."""
        from ..errors import UnknownUserError
        from ..personal_model import UserState

        with open_cli_store(store) as s:
            try:
                st = UserState.from_bytes(s.require(tenant, user))
            except UnknownUserError as exc:
                _fail(exc)
        text = json.dumps({"user": user, "state": st.to_json()})
        if out is None:
            typer.echo(text)
        else:
            out.write_text(text)

    @users.command("import")
    def import_(file: Path = typer.Argument(..., exists=True, dir_okay=False), user: str = typer.Option(None, "--user"),
                overwrite: bool = typer.Option(False, "--overwrite"), tenant: str = tenant_opt,
                store: str = store_option(), head: str = head_opt) -> None:
        """Restore a profile written by `users export` (checked against the global head)."""
        from ..personal_model import GlobalHead
        from ..personalizer import Personalizer, PersonalizerConfig, default_head_path

        with open_cli_store(store) as s:
            p = Personalizer(lambda w: None, GlobalHead.load(head or default_head_path()), s,
                             config=PersonalizerConfig(tenant=tenant))
            try:
                summary = p.import_user(json.loads(file.read_text()), user=user, overwrite=overwrite)
            except (ValueError, KeyError) as exc:
                _fail(exc)
        typer.echo(json.dumps(summary.to_dict()))

    app.add_typer(users, name="users")
