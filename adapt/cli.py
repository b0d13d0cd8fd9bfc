"""The ``ser-adapt`` command line.

Sub-commands live in ``adapt/commands/<name>.py``; each module exposes ``register(app)`` and is
imported lazily here, so a missing optional dependency breaks only its own command.
"""
from __future__ import annotations

import importlib
import pkgutil

import typer

app = typer.Typer(
    name="ser-adapt",
    help="Personalized, continual speech emotion recognition on frozen speech encoders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
