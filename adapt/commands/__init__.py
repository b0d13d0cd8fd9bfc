"""CLI sub-commands: one module per command group, each with ``register(app: typer.Typer)``."""
