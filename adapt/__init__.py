"""ser-adapt runtime: audio I/O, backbones, embeddings, heads, per-user personalization, store, service.

The public API, by the path a clip takes:

* audio: ``load_audio``, ``Waveform`` (``adapt.audio``); errors in ``adapt.errors``;
* backbones: ``get_backbone``, ``Backbone``, ``BackboneSpec``, ``LayerStack`` (``adapt.backbones``);
* embeddings: ``embed``, ``embed_layers``, ``EmbeddingCache`` (``adapt.embedding``);
* heads and normalization: the ``heads`` module, ``SpeakerNormalizer`` (``adapt.normalization``);
* personalization: ``Personalizer``, ``PersonalizerConfig``, ``Prediction``, ``UserSummary``,
  ``TenantSummary``, ``GlobalHead``, ``UserState``, ``TenantState``, ``load_head`` (``adapt.personal``);
* profile store: ``ProfileStore``, ``open_store`` (``adapt.store``);
* labels: ``harmonize_emotion``, ``CANONICAL_EMOTIONS`` (``adapt.labels``); the ``metrics`` module.

Everything but audio, labels and errors is imported on first attribute access, so ``import adapt``
stays fast and needs neither the research layers (``strategies``, ``scenarios``) nor their
dependencies (Avalanche, matplotlib).
"""
from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from .audio import Waveform, load_audio
from .errors import (
    AudioError,
    BackboneNotAvailableError,
    LabelExistsError,
    NotFittedError,
    ProfileStoreError,
    SerAdaptError,
    TooFewClipsError,
    UnknownLabelError,
    UnknownUserError,
)
from .labels import CANONICAL_EMOTIONS, harmonize_emotion

try:
    __version__ = version("ser-adapt")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
    __version__ = "0+unknown"

# public name -> module that defines it (resolved lazily)
_LAZY = {
    "get_backbone": "adapt.backbones",
    "Backbone": "adapt.backbones",
    "BackboneSpec": "adapt.backbones",
    "LayerStack": "adapt.backbones",
    "embed": "adapt.embedding",
    "embed_layers": "adapt.embedding",
    "EmbeddingCache": "adapt.embedding",
    "SpeakerNormalizer": "adapt.normalization",
    "Personalizer": "adapt.personal",
    "PersonalizerConfig": "adapt.personal",
    "Prediction": "adapt.personal",
    "UserSummary": "adapt.personal",
    "GlobalHead": "adapt.personal",
    "UserState": "adapt.personal",
    "TenantState": "adapt.personal",
    "TenantSummary": "adapt.personal",
    "load_head": "adapt.personal",
    "ProfileStore": "adapt.store",
    "open_store": "adapt.store",
    "metrics": "adapt.metrics",
    "heads": "adapt.heads",
}

if TYPE_CHECKING:  # for type checkers and IDEs; at run time these load lazily
    from . import heads, metrics
    from .backbones import Backbone, BackboneSpec, LayerStack, get_backbone
    from .embedding import EmbeddingCache, embed, embed_layers
    from .normalization import SpeakerNormalizer
    from .personal import (GlobalHead, Personalizer, PersonalizerConfig, Prediction, TenantState, TenantSummary,
                           UserState, UserSummary, load_head)
    from .store import ProfileStore, open_store


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'adapt' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if module.endswith("." + name) else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Waveform", "load_audio", "AudioError", "BackboneNotAvailableError", "LabelExistsError", "NotFittedError",
    "ProfileStoreError", "SerAdaptError", "TooFewClipsError", "UnknownLabelError", "UnknownUserError",
    "CANONICAL_EMOTIONS", "harmonize_emotion", *(n for n in _LAZY if n not in ("metrics", "heads")),
]  # the metrics and heads modules are documented as submodules
