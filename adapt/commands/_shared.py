"""What the runtime commands share: the ``--store`` option, the personalizer factories and one
error policy (``cli_errors``): a ser-adapt error a user can cause prints ``error: <Type>: <message>``
and exits with status 2; anything else is a bug and keeps its traceback."""
from __future__ import annotations

import functools

import typer

from ..errors import SerAdaptError

__all__ = ["STORE_HELP", "store_option", "open_cli_store", "cli_personalizer", "admin_personalizer", "cli_errors",
           "fail"]

STORE_HELP = "profile store: SQLite path or postgresql:// URL (default: $SER_ADAPT_STORE or the user data folder)"


def store_option():
    return typer.Option(None, "--store", envvar="SER_ADAPT_STORE", help=STORE_HELP)


def open_cli_store(store: str | None):
    from ..personal import default_store_path
    from ..store import open_store

    return open_store(store if store else default_store_path())


def cli_personalizer(store: str | None, tenant: str, backbone: str | None, head: str | None):
    """The default Personalizer for a command (backbone by name, shipped head unless ``head``)."""
    from ..personal import Personalizer, default_store_path

    bb = None
    if backbone:
        from ..backbones import get_backbone

        bb = get_backbone(backbone)
    return Personalizer.default(store if store else default_store_path(), backbone=bb, head=head, tenant=tenant)


def admin_personalizer(store: str | None, tenant: str, head: str | None = None):
    """A Personalizer without a backbone, for the ``users`` commands (no model is loaded)."""
    from ..personal import Personalizer

    return Personalizer.admin(open_cli_store(store), head=head, tenant=tenant)


def fail(exc: BaseException, code: int = 2) -> None:
    typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
    raise typer.Exit(code)


def cli_errors(fn):
    """Turn the errors a user can cause (``SerAdaptError``, which also covers bad ids, labels,
    audio and files) into ``error: ...`` on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (SerAdaptError, FileNotFoundError, PermissionError) as exc:
            fail(exc)

    return wrapper
