"""Research commands of ``ser-adapt`` (``bench``, ``corpora``, ``demo``, ``embed``, ``train-head``).

Each module exposes ``register(app)``; ``pyproject.toml`` lists them in the ``ser_adapt.commands``
entry-point group, which ``adapt.cli`` loads, so the runtime never imports this package by name.
"""
