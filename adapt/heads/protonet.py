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
from torch import nn

from ..threads import torch_threads
from ..validation import check_state, check_X, check_Xy, require_fitted, state_header
from .meta_base import MetaHeadBase, _mlp, _positive, _positive_int
from .prototype import PrototypeHead

__all__ = ["ProtoNetHead"]


class ProtoNetHead(MetaHeadBase):
    """ProtoNet adapter + prototype head.

    Args:
        dim, hidden: adapter ``D -> hidden -> dim`` (ReLU).
        ways, shots, queries, mode: episodes for meta-training (``ways=None``: all emotions).
        episodes, lr: Adam steps (one episode each) and learning rate.
        shrinkage: pseudo-count of the global (training-speaker) prototypes in ``fit``; 0 = none.
        temperature: of the prototype head (euclidean distance in adapted space).
        seed: torch and episode seed.
    """

    def __init__(self, *, dim: int = 128, hidden: int = 256, ways: int | None = None, shots: int = 5,
                 queries: int = 5, mode: str = "personal", episodes: int = 300, lr: float = 1e-3,
                 shrinkage: float = 2.0, temperature: float = 1.0, seed: int = 0) -> None:
        self.dim, self.hidden = _positive_int("dim", dim), _positive_int("hidden", hidden)
        self.lr, self.temperature = _positive("lr", lr), _positive("temperature", temperature)
        if not isinstance(shrinkage, (int, float)) or shrinkage < 0:
            raise ValueError(f"shrinkage must be a number >= 0, got {shrinkage!r}")
        self.shrinkage = float(shrinkage)
        self._check_episode_args(ways, shots, queries, episodes, mode, seed)
        self.mean_ = self.scale_ = self.n_features_in_ = None
        self.adapter_: nn.Module | None = None
        self.prior_: PrototypeHead | None = None
        self.head_: PrototypeHead | None = None
        self.classes_: np.ndarray | None = None

    def _config(self) -> dict:
        return {"dim": self.dim, "hidden": self.hidden, "ways": self.ways, "shots": self.shots,
                "queries": self.queries, "mode": self.mode, "episodes": self.episodes, "lr": self.lr,
                "shrinkage": self.shrinkage, "temperature": self.temperature, "seed": self.seed}

    def meta_fit(self, X, y, speakers) -> "ProtoNetHead":
        """Train the adapter on episodes from ``X [N, D]``, ``y [N]``, ``speakers [N]``."""
        with torch_threads(1):
            return self._meta_fit(X, y, speakers)

    def _meta_fit(self, X, y, speakers) -> "ProtoNetHead":
        Z, y, sampler = self._prepare(X, y, speakers)
        self.adapter_ = _mlp(Z.shape[1], (self.hidden,), self.dim)
        opt = torch.optim.Adam(self.adapter_.parameters(), lr=self.lr)
        self.adapter_.train()
        for _ in range(self.episodes):
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
        self.prior_ = PrototypeHead(metric="euclidean", temperature=self.temperature).fit(self._embed_z(Z), y)
        self.head_, self.classes_ = self.prior_, self.prior_.classes_
        return self

    def _embed_z(self, Z) -> np.ndarray:
        with torch.no_grad():
            return self.adapter_(torch.as_tensor(Z)).numpy()

    def transform(self, X) -> np.ndarray:
        """Adapted embeddings ``[N, dim]``."""
        self._require_meta()
        return self._embed_z(self._z(check_X(X, dim=self.n_features_in_)))

    def fit(self, X, y) -> "ProtoNetHead":
        """Prototypes of the new speaker's shots (shrunk toward the global ones; new classes allowed)."""
        self._require_meta()
        X, y = check_Xy(X, y, dim=self.n_features_in_)
        prior = self.prior_ if self.shrinkage > 0 else None
        self.head_ = PrototypeHead(metric="euclidean", temperature=self.temperature, prior=prior,
                                   shrinkage=self.shrinkage or 0.0).fit(self.transform(X), y)
        self.classes_ = self.head_.classes_
        return self

    def partial_fit(self, X, y) -> "ProtoNetHead":
        """Add shots (and classes) to the current prototypes."""
        self._require_meta()
        if self.head_ is self.prior_:
            return self.fit(X, y)
        X, y = check_Xy(X, y, dim=self.n_features_in_)
        self.head_.partial_fit(self.transform(X), y)
        self.classes_ = self.head_.classes_
        return self

    def decision_function(self, X) -> np.ndarray:
        """Logits ``[N, C]``: negative squared distances to the prototypes / temperature."""
        require_fitted(self)
        return self.head_.decision_function(self.transform(X))

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
        head.mean_ = np.asarray(state["mean"], dtype=np.float64)
        head.scale_ = np.asarray(state["scale"], dtype=np.float64)
        head.n_features_in_ = len(head.mean_)
        head.adapter_ = _mlp(head.n_features_in_, (head.hidden,), head.dim)
        head.adapter_.load_state_dict({k: torch.as_tensor(v) for k, v in state["adapter"].items()})
        head.adapter_.eval()
        head.prior_ = PrototypeHead.from_state(state["prior"])
        head.head_ = PrototypeHead.from_state(state["head"]) if state.get("head") else head.prior_
        head.classes_ = head.head_.classes_
        return head
