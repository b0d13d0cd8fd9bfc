"""ProtoNet head on frozen embeddings (Snell et al. 2017), meta-trained with learn2learn episodes.

A small embedding adapter (MLP ``D -> dim``) is trained so that class means of ``shots`` support
clips classify the query clips of the same episode; ``fit`` builds a ``PrototypeHead`` in the
adapted space, shrunk toward the global prototypes of the training speakers (so it is incremental
in classes, like ``PrototypeHead``). See ``adapt.heads.meta_base`` for the two-step protocol.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(m, 0.5, size=(30, 8)) for m in (0, 3, -3)]).astype("float32")
    >>> y = np.repeat(["sad", "happy", "angry"], 30); spk = np.tile(np.repeat(["a", "b", "c"], 10), 3)
    >>> head = ProtoNetHead(dim=8, hidden=16, episodes=20, shots=2, queries=2).meta_fit(X, y, spk)
    >>> head.fit(X[::10], y[::10]).score(X, y) > 0.9
    True
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.base import TransformerMixin
from torch import nn

from ..threads import torch_threads
from ..validation import check_label_kind, check_labels, check_state, check_Xy, require_fitted, state_header
from .meta_base import MetaHeadBase, _mlp, _positive, _positive_int
from .prototype import PrototypeHead

__all__ = ["ProtoNetHead"]


class ProtoNetHead(TransformerMixin, MetaHeadBase):
    """ProtoNet adapter + prototype head; also a transformer (``transform``: the adapted embeddings).

    ``TransformerMixin`` (``fit_transform``) comes first in the MRO; it defines none of the
    predicting methods, so ``HeadMixin``'s ``predict`` / ``score`` (UA) still win over
    ``ClassifierMixin``'s.

    Args:
        dim, hidden: adapter ``D -> hidden -> dim`` (ReLU).
        ways, shots, queries, mode: episodes for meta-training (``ways=None``: all emotions).
        episodes, lr: Adam steps (one episode each) and learning rate.
        shrinkage: pseudo-count of the global (training-speaker) prototypes in ``fit``; 0 = none.
        temperature: of the prototype head (euclidean distance in adapted space).
        seed: seeds the adapter's initialization and the episodes.

    Attributes (after ``meta_fit``): ``adapter_``, ``prior_`` (the training speakers' prototypes in
    adapted space, a fitted ``PrototypeHead``), ``head_`` (``prior_`` until ``fit``), ``classes_``,
    ``mean_`` / ``scale_``, ``n_features_in_``.
    """

    def __init__(self, *, dim: int = 128, hidden: int = 256, ways: int | None = None, shots: int = 5,
                 queries: int = 5, mode: str = "personal", episodes: int = 300, lr: float = 1e-3,
                 shrinkage: float = 2.0, temperature: float = 1.0, seed: int = 0) -> None:
        self.dim = dim
        self.hidden = hidden
        self.ways = ways
        self.shots = shots
        self.queries = queries
        self.mode = mode
        self.episodes = episodes
        self.lr = lr
        self.shrinkage = shrinkage
        self.temperature = temperature
        self.seed = seed

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]   # transform always returns float32
        return tags

    def _validate_params(self) -> None:
        _positive_int("dim", self.dim)
        _positive_int("hidden", self.hidden)
        _positive("lr", self.lr)
        _positive("temperature", self.temperature)
        s = self.shrinkage
        if isinstance(s, bool) or not isinstance(s, (int, float, np.number)) or s < 0:
            raise ValueError(f"shrinkage must be a number >= 0, got {s!r}")
        self._validate_episode_params()

    def _config(self) -> dict:
        return {"dim": int(self.dim), "hidden": int(self.hidden),
                "ways": None if self.ways is None else int(self.ways), "shots": int(self.shots),
                "queries": int(self.queries), "mode": self.mode, "episodes": int(self.episodes),
                "lr": float(self.lr), "shrinkage": float(self.shrinkage), "temperature": float(self.temperature),
                "seed": int(self.seed)}

    def meta_fit(self, X, y, speakers) -> "ProtoNetHead":
        """Train the adapter on episodes from ``X [N, D]``, ``y [N]``, ``speakers [N]``."""
        with torch_threads(1):
            return self._meta_fit(X, y, speakers)

    def _meta_fit(self, X, y, speakers) -> "ProtoNetHead":
        Z, y, sampler, gen = self._prepare(X, y, speakers)
        self.adapter_ = _mlp(Z.shape[1], (int(self.hidden),), int(self.dim), gen)
        opt = torch.optim.Adam(self.adapter_.parameters(), lr=float(self.lr))
        self.adapter_.train()
        for _ in range(int(self.episodes)):
            ep = sampler.sample()
            s, q = self.adapter_(ep.support_x), self.adapter_(ep.query_x)
            ways = ep.ways()
            protos = torch.stack([s[ep.support_y == c].mean(0) for c in ways])
            target = torch.searchsorted(torch.tensor(ways), ep.query_y)
            loss = nn.functional.cross_entropy(-torch.cdist(q, protos) ** 2, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.adapter_.eval()
        self.prior_ = PrototypeHead(metric="euclidean", temperature=float(self.temperature)).fit(self._embed_z(Z), y)
        self.head_, self.classes_ = self.prior_, self.prior_.classes_
        return self

    def _embed_z(self, Z) -> np.ndarray:
        with torch.no_grad():
            return self.adapter_(torch.as_tensor(Z)).numpy()

    def transform(self, X) -> np.ndarray:
        """Adapted embeddings ``[N, dim]``."""
        self._require_meta()
        return self._embed_z(self._z(self._check_X(X)))

    def fit(self, X, y) -> "ProtoNetHead":
        """Prototypes of the new speaker's shots (shrunk toward the global ones; new classes allowed)."""
        self._require_meta()
        self._validate_params()
        X, y = check_Xy(X, y, dim=self.n_features_in_, owner=type(self).__name__)
        check_label_kind(y, self.prior_.classes_, head=type(self).__name__)
        prior = self.prior_ if self.shrinkage > 0 else None
        self.head_ = PrototypeHead(metric="euclidean", temperature=float(self.temperature), prior=prior,
                                   shrinkage=float(self.shrinkage)).fit(self.transform(X), y)
        self.classes_ = self.head_.classes_
        return self

    def partial_fit(self, X, y, classes=None) -> "ProtoNetHead":
        """Add shots (and classes) to the current prototypes (``classes``: as in ``PrototypeHead``)."""
        self._require_meta()
        if self.head_ is self.prior_:
            return self.fit(X, y)
        X, y = check_Xy(X, y, dim=self.n_features_in_, owner=type(self).__name__)
        check_label_kind(y, self.classes_, head=type(self).__name__)
        if classes is not None:
            check_label_kind(check_labels(classes), self.classes_, head=type(self).__name__)
        self.head_.partial_fit(self.transform(X), y)
        self.classes_ = self.head_.classes_
        return self

    def _logits(self, X) -> np.ndarray:
        """Logits ``[N, C]``: negative squared distances to the prototypes / temperature."""
        require_fitted(self)
        return self.head_._logits(self.transform(X))

    def get_state(self) -> dict:
        require_fitted(self)
        personal = None if self.head_ is self.prior_ else self.head_.get_state()
        return {**state_header(self), "config": self._config(), "mean": self.mean_.tolist(),
                "scale": self.scale_.tolist(),
                "adapter": {k: v.tolist() for k, v in self.adapter_.state_dict().items()},
                "prior": self.prior_.get_state(), "head": personal}

    @classmethod
    def from_state(cls, state: dict) -> "ProtoNetHead":
        check_state(state, cls)
        head = cls(**state["config"])
        head._validate_params()
        head.mean_ = np.asarray(state["mean"], dtype=np.float64)
        head.scale_ = np.asarray(state["scale"], dtype=np.float64)
        head.n_features_in_ = len(head.mean_)
        head.adapter_ = _mlp(head.n_features_in_, (int(head.hidden),), int(head.dim), torch.Generator())
        head.adapter_.load_state_dict({k: torch.as_tensor(v) for k, v in state["adapter"].items()})
        head.adapter_.eval()
        head.prior_ = PrototypeHead.from_state(state["prior"])
        head.head_ = PrototypeHead.from_state(state["head"]) if state.get("head") else head.prior_
        head.classes_ = head.head_.classes_
        return head
