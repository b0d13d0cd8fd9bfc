"""What the runtime commands share: the ``--store`` option, the personalizer factories and one
error policy (``cli_errors``, on every runtime command).

Exit statuses: 0 done; 1 nothing to do (``users forget`` of a user without a profile, ``keys
revoke`` of no active key); 2 an error the user can cause - a usage error (click), any
``SerAdaptError`` (invalid id or label, bad audio, unknown user, store unavailable, ...), a missing
or unwritable file, an unknown backbone name - printed as ``error: <Type>: <message>`` (usage
errors as click's usage message). Anything else is a bug and keeps its traceback (Python's status 1)."""
from __future__ import annotations

import functools

import typer

from ..errors import SerAdaptError

__all__ = ["STORE_HELP", "store_option", "open_cli_store", "cli_backbone", "cli_personalizer", "admin_personalizer",
           "cli_errors", "fail", "split_list", "labels_or_clear", "read_json_export"]

STORE_HELP = "profile store: SQLite path or postgresql:// URL (default: $SER_ADAPT_STORE or the user data folder)"


def store_option():
    return typer.Option(None, "--store", envvar="SER_ADAPT_STORE", help=STORE_HELP)


def open_cli_store(store: str | None):
    from ..personal import default_store_path
    from ..store import open_store

    return open_store(store if store else default_store_path())


def cli_backbone(name: str | None):
    """The backbone called ``name`` (``None``: the default, chosen by ``Personalizer.default``);
    an unknown name is a usage error of ``--backbone`` (exit status 2), not a traceback."""
    if not name:
        return None
    from ..backbones import get_backbone

    try:
        return get_backbone(name)
    except KeyError as exc:   # the registry's "unknown backbone ...; known: [...]"
        raise typer.BadParameter(str(exc.args[0]) if exc.args else str(exc), param_hint="'--backbone'") from None


def cli_personalizer(store: str | None, tenant: str, backbone: str | None, head: str | None, **config):
    """The default Personalizer for a command (backbone by name, shipped head unless ``head``)."""
    from ..personal import Personalizer, default_store_path

    return Personalizer.default(store if store else default_store_path(), backbone=cli_backbone(backbone), head=head,
                                tenant=tenant, **config)


def admin_personalizer(store: str | None, tenant: str, head: str | None = None):
    """A Personalizer without a backbone, for the ``users`` commands (no model is loaded)."""
    from ..personal import Personalizer

    return Personalizer.admin(open_cli_store(store), head=head, tenant=tenant)


def split_list(values: list[str] | None) -> list[str]:
    """Comma-separated and/or repeated option values as one list: ``["a,b", "c"]`` -> ``[a, b, c]``
    (blanks around commas dropped; an empty list is left for the Personalizer to refuse)."""
    return [v.strip() for value in values or () for v in value.split(",") if v.strip()]


def labels_or_clear(labels: str | None, clear: bool) -> list[str] | None:
    """The label set of a ``labels`` command: ``a,b,c``, or None with ``--clear`` (exactly one of them)."""
    if clear == (labels is not None):
        raise typer.BadParameter("give a comma-separated label set or --clear (not both)", param_hint="'LABELS'")
    return None if clear else split_list([labels])


def read_json_export(file) -> dict:
    """A JSON export file (``users export`` / ``tenant export``); ``InvalidStateError`` if not JSON."""
    import json

    try:
        return json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        from ..errors import InvalidStateError

        raise InvalidStateError(f"{file} is not a JSON export: {exc}") from None


def fail(exc: BaseException, code: int = 2) -> None:
    typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
    raise typer.Exit(code)


def cli_errors(fn):
    """Turn the errors a user can cause (``SerAdaptError``, which also covers bad ids, labels,
    audio and stores; a missing, unreadable or misplaced file) into ``error: ...`` on stderr and
    exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (SerAdaptError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
            fail(exc)

    return wrapper
