"""ser-adapt runtime: audio I/O, backbones, embeddings, heads, personalizer, metrics, service.

Also available here, imported on first use: ``get_backbone``, ``Backbone``, ``BackboneSpec``,
``LayerStack`` (``adapt.backbones``), ``embed``, ``embed_layers`` (``adapt.embed``), ``Personalizer``
(``adapt.personalizer``), ``ProfileStore`` (``adapt.profiles``), and the ``metrics`` and ``heads``
modules.

Heavy submodules are imported on first attribute access, so ``import adapt`` stays fast and an
optional dependency missing for one part does not break the others.
"""
from __future__ import annotations

import importlib
from typing import Any

from .audio import Waveform, load_audio
from .errors import (
    AudioError,
    BackboneNotAvailableError,
    NotFittedError,
    SerAdaptError,
    TooFewClipsError,
    UnknownLabelError,
    UnknownUserError,
)

__version__ = "0.1.0"

# public name -> module that defines it (resolved lazily)
_LAZY = {
    "get_backbone": "adapt.backbones",
    "Backbone": "adapt.backbones",
    "BackboneSpec": "adapt.backbones",
    "LayerStack": "adapt.backbones",
    "embed": "adapt.embed",
    "embed_layers": "adapt.embed",
    "EmbeddingCache": "adapt.embed",
    "Personalizer": "adapt.personalizer",
    "ProfileStore": "adapt.profiles",
    "metrics": "adapt.metrics",
    "heads": "adapt.heads",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'adapt' has no attribute {name!r}")
    mod = importlib.import_module(module)
    return mod if module.endswith("." + name) else getattr(mod, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


# Lazily resolved names stay out of __all__ so that documentation tools (pdoc) that read __all__
# don't have to import every optional dependency; they are documented in their own modules.
__all__ = [
    "Waveform", "load_audio", "AudioError", "BackboneNotAvailableError", "NotFittedError",
    "SerAdaptError", "TooFewClipsError", "UnknownLabelError", "UnknownUserError",
]
