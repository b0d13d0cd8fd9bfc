"""MAML-family heads on frozen embeddings, meta-trained with learn2learn.

``MAMLHead`` is a small classifier (optional hidden MLP + linear output over all training
emotions) whose initialization is meta-learned so that ``adapt_steps`` gradient steps on a
speaker's shots help that speaker most: ``algorithm="maml"`` (``learn2learn.algorithms.MAML``,
``first_order=True`` for FOMAML), ``"metasgd"`` (``MetaSGD``: per-parameter learned step sizes)
or ``"anil"`` (only the output layer adapts; the hidden layer is learned in the outer loop).
See ``adapt.heads.meta_base`` for the two-step protocol.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(m, 0.5, size=(30, 8)) for m in (0, 3, -3)]).astype("float32")
    >>> y = np.repeat(["sad", "happy", "angry"], 30); spk = np.tile(np.repeat(["a", "b", "c"], 10), 3)
    >>> head = MAMLHead(algorithm="anil", episodes=20, shots=2, queries=2).meta_fit(X, y, spk)
    >>> head.fit(X[::10], y[::10]).score(X, y) > 0.9
    True
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..threads import torch_threads
from ..validation import check_known, check_state, check_X, check_Xy, require_fitted, state_header
from .meta_base import MetaHeadBase, _mlp, _positive, _positive_int

__all__ = ["MAMLHead", "ALGORITHMS"]

ALGORITHMS = ("maml", "metasgd", "anil")


class MAMLHead(MetaHeadBase):
    """MAML / MetaSGD / ANIL classifier over the training emotions.

    Args:
        algorithm: ``"maml"``, ``"metasgd"`` or ``"anil"``.
        hidden: hidden widths of the body (``()`` = a linear classifier).
        adapt_lr, adapt_steps: inner-loop step size (MetaSGD: its initial value) and step count,
            used in meta-training and in ``fit``.
        first_order: first-order approximation (FOMAML); cheaper, often as good on small heads.
        meta_lr, meta_batch: outer Adam learning rate and episodes per outer step.
        episodes: outer steps.
        ways, shots, queries, mode, seed: as in ``ProtoNetHead``.
    """

    def __init__(self, *, algorithm: str = "maml", hidden: tuple[int, ...] = (128,), adapt_lr: float = 0.1,
                 adapt_steps: int = 5, first_order: bool = False, meta_lr: float = 1e-3, meta_batch: int = 4,
                 episodes: int = 200, ways: int | None = None, shots: int = 5, queries: int = 5,
                 mode: str = "personal", seed: int = 0) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
        self.algorithm, self.hidden = algorithm, tuple(int(h) for h in hidden)
        self.adapt_lr, self.meta_lr = _positive("adapt_lr", adapt_lr), _positive("meta_lr", meta_lr)
        self.adapt_steps, self.meta_batch = _positive_int("adapt_steps", adapt_steps), _positive_int("meta_batch", meta_batch)
        self.first_order = bool(first_order)
        self._check_episode_args(ways, shots, queries, episodes, mode, seed)
        self.mean_ = self.scale_ = self.n_features_in_ = None
        self.classes_: np.ndarray | None = None
        self.shots_: tuple[np.ndarray, np.ndarray] | None = None
        self._cache = None   # (shots it was adapted on, adapted learner): adapt once per fit

    def _config(self) -> dict:
        return {"algorithm": self.algorithm, "hidden": list(self.hidden), "adapt_lr": self.adapt_lr,
                "adapt_steps": self.adapt_steps, "first_order": self.first_order, "meta_lr": self.meta_lr,
                "meta_batch": self.meta_batch, "episodes": self.episodes, "ways": self.ways, "shots": self.shots,
                "queries": self.queries, "mode": self.mode, "seed": self.seed}

    def _build(self, d: int, c: int) -> None:
        from learn2learn.algorithms import MAML, MetaSGD

        body = _mlp(d, self.hidden, None)
        out = nn.Linear(self.hidden[-1] if self.hidden else d, c)
        if self.algorithm == "anil":
            self.body_, self.learner_ = body, MAML(out, lr=self.adapt_lr, first_order=self.first_order)
        else:
            wrap = MetaSGD if self.algorithm == "metasgd" else MAML
            self.body_ = nn.Identity()
            self.learner_ = wrap(nn.Sequential(body, out), lr=self.adapt_lr, first_order=self.first_order)

    def _adapt(self, Z: torch.Tensor, t: torch.Tensor):
        """A clone of the meta-learned head after ``adapt_steps`` gradient steps on ``(Z, t)``."""
        learner = self.learner_.clone()
        feats = self.body_(Z)
        for _ in range(self.adapt_steps):
            learner.adapt(nn.functional.cross_entropy(learner(feats), t))
        return learner

    def meta_fit(self, X, y, speakers) -> "MAMLHead":
        """Meta-train on episodes from ``X [N, D]``, ``y [N]``, ``speakers [N]``."""
        with torch_threads(1):
            return self._meta_fit(X, y, speakers)

    def _meta_fit(self, X, y, speakers) -> "MAMLHead":
        Z, y, sampler = self._prepare(X, y, speakers)
        self.classes_ = np.array(sampler.classes, dtype=object)
        self._build(Z.shape[1], len(self.classes_))
        params = list(self.body_.parameters()) + list(self.learner_.parameters())
        opt = torch.optim.Adam(params, lr=self.meta_lr)
        for _ in range(self.episodes):
            opt.zero_grad()
            for _ in range(self.meta_batch):
                ep = sampler.sample()
                learner = self._adapt(ep.support_x, ep.support_y)
                loss = nn.functional.cross_entropy(learner(self.body_(ep.query_x)), ep.query_y) / self.meta_batch
                loss.backward()   # gradients accumulate over the meta-batch
            opt.step()
        self.shots_ = None
        return self

    def fit(self, X, y) -> "MAMLHead":
        """Adapt the meta-learned head to ``X, y`` (labels must be training emotions)."""
        self._require_meta()
        X, y = check_Xy(X, y, dim=self.n_features_in_)
        check_known(y.tolist(), self.classes_.tolist(), head=type(self).__name__)
        self.shots_ = (X, y)
        return self

    def partial_fit(self, X, y) -> "MAMLHead":
        """Add shots; the head re-adapts from the meta-learned init on all shots so far."""
        if self.shots_ is None:
            return self.fit(X, y)
        X, y = check_Xy(X, y, dim=self.n_features_in_)
        check_known(y.tolist(), self.classes_.tolist(), head=type(self).__name__)
        self.shots_ = (np.vstack([self.shots_[0], X]), np.concatenate([self.shots_[1], y]))
        return self

    def _adapted(self):
        if self.shots_ is None:
            return self.learner_
        if self._cache is None or self._cache[0] is not self.shots_:
            index = {c: i for i, c in enumerate(self.classes_)}
            t = torch.as_tensor([index[c] for c in self.shots_[1]])
            self._cache = (self.shots_, self._adapt(self._z(self.shots_[0]), t))
        return self._cache[1]

    def decision_function(self, X) -> np.ndarray:
        """Logits ``[N, C]`` of the adapted head (of the meta-learned init before ``fit``)."""
        require_fitted(self)
        Z = self._z(check_X(X, dim=self.n_features_in_))
        learner = self._adapted()
        with torch.no_grad():
            return learner(self.body_(Z)).double().numpy()

    def get_state(self) -> dict:
        require_fitted(self)
        shots = None if self.shots_ is None else {"X": self.shots_[0].tolist(), "y": list(self.shots_[1])}
        return {**state_header(self), "config": self._config(), "classes": list(self.classes_),
                "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
                "body": {k: v.tolist() for k, v in self.body_.state_dict().items()},
                "learner": {k: v.tolist() for k, v in self.learner_.state_dict().items()}, "shots": shots}

    @classmethod
    def from_state(cls, state: dict) -> "MAMLHead":
        check_state(state, cls)
        head = cls(**{**state["config"], "hidden": tuple(state["config"]["hidden"])})
        head.classes_ = np.array(state["classes"], dtype=object)
        head.mean_ = np.asarray(state["mean"], dtype=np.float64)
        head.scale_ = np.asarray(state["scale"], dtype=np.float64)
        head.n_features_in_ = len(head.mean_)
        head._build(head.n_features_in_, len(head.classes_))
        head.body_.load_state_dict({k: torch.as_tensor(v) for k, v in state["body"].items()})
        head.learner_.load_state_dict({k: torch.as_tensor(v) for k, v in state["learner"].items()})
        if state.get("shots"):
            head.shots_ = (np.asarray(state["shots"]["X"], dtype=np.float32),
                           np.array(state["shots"]["y"], dtype=object))
        return head
