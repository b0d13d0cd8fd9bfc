"""Research commands of ``ser-adapt`` (``bench``, ``corpora``, ``demo``, ``embed``, ``report``, ``train-head``).

Each module exposes ``register(app)``; ``pyproject.toml`` lists them in the ``ser_adapt.commands``
entry-point group, which ``adapt.cli`` loads, so the runtime never imports this package by name.
"""


def connect_ray_or_exit(address, report) -> None:
    """``--ray``: join (or start) the Ray cluster at ``address``; when Ray is not installed or no
    cluster answers there, ``report(message)`` and exit with status 2 (``bench`` and ``embed``)."""
    import typer

    from adapt.embedding.distributed import connect

    try:
        connect(address)
    except (ImportError, ConnectionError) as err:  # Ray is an optional extra; or no cluster there
        report(str(err))
        raise typer.Exit(2) from None
