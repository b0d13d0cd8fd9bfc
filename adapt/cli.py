"""The ``ser-adapt`` command line.

Runtime commands live in ``adapt/commands/<name>.py`` (``enroll``, ``predict``, ``users``, ``keys``,
``serve``); each module exposes ``register(app)``. Commands of other layers plug into the same
executable through the ``ser_adapt.commands`` entry-point group (``pyproject.toml``): the research
commands of ``scenarios`` (``bench``, ``corpora``, ``demo``, ``embed``, ``train-head``) register
themselves there, so ``adapt`` never imports them by name. A command group whose module fails to
import (a missing optional extra) is skipped with a note on ``--help``, and the others keep working.
"""
from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points

import typer

app = typer.Typer(
    name="ser-adapt",
    help="Personalized, continual speech emotion recognition on frozen speech encoders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: entry-point group through which other packages add commands: ``name = "module:register"``
ENTRY_POINT_GROUP = "ser_adapt.commands"
_SKIPPED: list[str] = []


def _register_commands() -> None:
    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            register = ep.load()
        except ImportError as exc:  # e.g. the research extras are not installed
            _SKIPPED.append(f"{ep.name} ({exc})")
            continue
        register(app)
    if _SKIPPED:
        app.info.help = (app.info.help or "") + "\n\nUnavailable command groups: " + "; ".join(_SKIPPED)


_register_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
