"""Few-shot heads on frozen embeddings; every head is a scikit-learn classifier.

Every head subclasses ``HeadMixin, ClassifierMixin, BaseEstimator`` (``adapt.heads.base``):
``__init__`` only stores its arguments (``get_params`` / ``set_params`` / ``clone`` work; ``fit``
checks them), ``fit(X, y)``, ``partial_fit(X, y)``, ``predict(X) -> [N]`` (labels of the type
the head was fitted on), ``predict_proba(X) -> [N, C]`` ordered as ``classes_``,
``decision_function``, ``score(X, y)`` = **UA** (unweighted average recall, not scikit-learn's
accuracy), ``get_state() -> dict`` (JSON-serializable) and ``Cls.from_state(d)``. It raises
``adapt.errors.NotFittedError`` (also scikit-learn's) before fit and ``UnknownLabelError`` /
``ValueError`` on bad labels or a wrong feature dimension. A fitted ``PrototypeHead`` prior
survives ``clone`` as ``prior=sklearn.frozen.FrozenEstimator(head)``.

* ``PrototypeHead`` — class means, cosine/euclidean, incremental classes, shrinkage to a prior.
* ``LinearHead`` / ``MLPHead`` — torch, class weights, sample weights, warm-started fine-tuning.
* ``SVMHead`` / ``KNNHead`` / ``GMMHead`` — classical baselines (scikit-learn).
* ``SequenceHead`` (``adapt.heads.sequence``: 1-D CNN, BiLSTM, BiGRU, CNN-LSTM, attentive pooling,
  Transformer), ``SpectrogramCNNHead`` (``adapt.heads.spectrogram``: a from-scratch 2-D CNN on
  log-mel) and ``HMMHead`` (``adapt.heads.hmm``, one HMM per emotion) — on frame sequences
  (``adapt.frames``): ``fit(X, y, lengths=...)`` with ``X`` ``(N, T, F)`` or a list of ``(T_i, F)``.
* ``ProtoNetHead`` (``adapt.heads.protonet``), ``MAMLHead`` (MAML / MetaSGD / ANIL,
  ``adapt.heads.maml``) — meta-learned with learn2learn on speaker-aware episodes
  (``adapt.heads.episodes``); imported lazily because learn2learn is an optional extra.

``make_head(name, **opts)`` builds one by name (``HEADS`` lists them).

Example:
    >>> import numpy as np
    >>> from adapt.heads import make_head
    >>> head = make_head("prototype").fit(np.eye(2), ["happy", "sad"])
    >>> head.predict(np.array([[0.9, 0.1]])).tolist()
    ['happy']
"""
from __future__ import annotations

import importlib
from typing import Any

from .classical import GMMHead, KNNHead, SVMHead
from .linear import LinearHead, MLPHead
from .prototype import PrototypeHead

# the meta-learned heads need learn2learn (an optional extra), so they load on first use
_LAZY = {
    "ProtoNetHead": ".protonet",
    "MAMLHead": ".maml",
    "SequenceHead": ".sequence",
    "SpectrogramCNNHead": ".spectrogram",
    "HMMHead": ".hmm",
}
_EAGER = {"PrototypeHead": PrototypeHead, "LinearHead": LinearHead, "MLPHead": MLPHead, "SVMHead": SVMHead,
          "KNNHead": KNNHead, "GMMHead": GMMHead}

#: registry name -> class name
HEADS: dict[str, str] = {
    "prototype": "PrototypeHead",
    "linear": "LinearHead",
    "mlp": "MLPHead",
    "svm": "SVMHead",
    "knn": "KNNHead",
    "gmm": "GMMHead",
    "protonet": "ProtoNetHead",
    "maml": "MAMLHead",
    "sequence": "SequenceHead",
    "cnn2d": "SpectrogramCNNHead",
    "hmm": "HMMHead",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'adapt.heads' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


def make_head(name: str, **opts: Any):
    """A head by registry name (``"prototype"``, ``"linear"``, ...) with keyword options."""
    if name not in HEADS:
        raise KeyError(f"unknown head {name!r}; known heads: {sorted(HEADS)}")
    cls = _EAGER.get(HEADS[name]) or __getattr__(HEADS[name])
    return cls(**opts)


def head_from_state(state: dict):
    """Rebuild any head from its ``get_state()`` dict (dispatches on ``state['type']``)."""
    if not isinstance(state, dict) or "type" not in state:
        raise ValueError("head state must be a dict with a 'type' entry")
    kind = state["type"]
    if kind not in HEADS.values():
        raise KeyError(f"unknown head type {kind!r}; known: {sorted(HEADS.values())}")
    cls = _EAGER.get(kind) or __getattr__(kind)
    return cls.from_state(state)


# ProtoNetHead and MAMLHead are importable from here too (lazily: learn2learn is optional)
__all__ = ["PrototypeHead", "LinearHead", "MLPHead", "SVMHead", "KNNHead", "GMMHead", "HEADS", "make_head",
           "head_from_state"]
