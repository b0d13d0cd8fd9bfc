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

import copy

import numpy as np
import torch
from torch import nn

from ..threads import torch_threads
from ..validation import (check_known, check_label_kind, check_labels, check_state, check_Xy, labels_from_json,
                          labels_to_json, require_fitted, state_header)
from .meta_base import MetaHeadBase, _mlp, _positive, _positive_int, _widths
from .seeding import local_generator, seeded_linear

__all__ = ["MAMLHead", "ALGORITHMS"]

ALGORITHMS = ("maml", "metasgd", "anil")


class MAMLHead(MetaHeadBase):
    """MAML / MetaSGD / ANIL classifier over the training emotions.

    Args:
        algorithm: ``"maml"``, ``"metasgd"`` or ``"anil"``.
        hidden: hidden widths of the body (``()`` = a linear classifier; any sequence of ints).
        adapt_lr, adapt_steps: inner-loop step size (MetaSGD: its initial value) and step count,
            used in meta-training and in ``fit``.
        first_order: first-order approximation (FOMAML); cheaper, often as good on small heads.
        meta_lr, meta_batch: outer Adam learning rate and episodes per outer step.
        episodes: outer steps.
        ways, shots, queries, mode, seed: as in ``ProtoNetHead``.

    Attributes (after ``meta_fit``): ``classes_`` (every training emotion), ``body_``, ``learner_``
    (the meta-learned init), ``adapted_`` (the classifier adapted to the shots of ``fit`` /
    ``partial_fit``; the init before), ``shots_`` (``(X, y)`` of those shots, or None).
    """

    def __init__(self, *, algorithm: str = "maml", hidden: tuple[int, ...] = (128,), adapt_lr: float = 0.1,
                 adapt_steps: int = 5, first_order: bool = False, meta_lr: float = 1e-3, meta_batch: int = 4,
                 episodes: int = 200, ways: int | None = None, shots: int = 5, queries: int = 5,
                 mode: str = "personal", seed: int = 0) -> None:
        self.algorithm = algorithm
        self.hidden = hidden
        self.adapt_lr = adapt_lr
        self.adapt_steps = adapt_steps
        self.first_order = first_order
        self.meta_lr = meta_lr
        self.meta_batch = meta_batch
        self.episodes = episodes
        self.ways = ways
        self.shots = shots
        self.queries = queries
        self.mode = mode
        self.seed = seed

    def _validate_params(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        _widths(self.hidden, allow_empty=True)
        _positive("adapt_lr", self.adapt_lr)
        _positive("meta_lr", self.meta_lr)
        _positive_int("adapt_steps", self.adapt_steps)
        _positive_int("meta_batch", self.meta_batch)
        self._validate_episode_params()

    def _config(self) -> dict:
        return {"algorithm": self.algorithm, "hidden": list(_widths(self.hidden, allow_empty=True)),
                "adapt_lr": float(self.adapt_lr), "adapt_steps": int(self.adapt_steps),
                "first_order": bool(self.first_order), "meta_lr": float(self.meta_lr),
                "meta_batch": int(self.meta_batch), "episodes": int(self.episodes),
                "ways": None if self.ways is None else int(self.ways), "shots": int(self.shots),
                "queries": int(self.queries), "mode": self.mode, "seed": int(self.seed)}

    def _build(self, d: int, c: int, generator: torch.Generator) -> None:
        from learn2learn.algorithms import MAML, MetaSGD

        hidden = _widths(self.hidden, allow_empty=True)
        body = _mlp(d, hidden, None, generator)
        out = seeded_linear(hidden[-1] if hidden else d, c, generator)
        lr, first_order = float(self.adapt_lr), bool(self.first_order)
        if self.algorithm == "anil":
            self.body_, self.learner_ = body, MAML(out, lr=lr, first_order=first_order)
        else:
            wrap = MetaSGD if self.algorithm == "metasgd" else MAML
            self.body_ = nn.Identity()
            self.learner_ = wrap(nn.Sequential(body, out), lr=lr, first_order=first_order)

    def _adapt(self, Z: torch.Tensor, t: torch.Tensor):
        """A clone of the meta-learned head after ``adapt_steps`` gradient steps on ``(Z, t)``."""
        learner = self.learner_.clone()
        feats = self.body_(Z)
        for _ in range(int(self.adapt_steps)):
            learner.adapt(nn.functional.cross_entropy(learner(feats), t))
        return learner

    def meta_fit(self, X, y, speakers) -> "MAMLHead":
        """Meta-train on episodes from ``X [N, D]``, ``y [N]``, ``speakers [N]``."""
        with torch_threads(1):
            return self._meta_fit(X, y, speakers)

    def _meta_fit(self, X, y, speakers) -> "MAMLHead":
        Z, y, sampler, gen = self._prepare(X, y, speakers)
        self.classes_ = np.unique(y)   # the sampler's global class indices follow the same order
        self._build(Z.shape[1], len(self.classes_), gen)
        params = list(self.body_.parameters()) + list(self.learner_.parameters())
        opt = torch.optim.Adam(params, lr=float(self.meta_lr))
        meta_batch = int(self.meta_batch)
        for _ in range(int(self.episodes)):
            opt.zero_grad()
            for _ in range(meta_batch):
                ep = sampler.sample()
                learner = self._adapt(ep.support_x, ep.support_y)
                loss = nn.functional.cross_entropy(learner(self.body_(ep.query_x)), ep.query_y) / meta_batch
                loss.backward()   # gradients accumulate over the meta-batch
            opt.step()
        self._set_shots(None)
        return self

    def fit(self, X, y) -> "MAMLHead":
        """Adapt the meta-learned head to ``X, y`` (labels must be training emotions)."""
        self._require_meta()
        self._validate_params()
        X, y = self._check_shots(X, y)
        self._set_shots((X, y))
        return self

    def partial_fit(self, X, y, classes=None) -> "MAMLHead":
        """Add shots; the head re-adapts from the meta-learned init on all shots so far.

        ``classes`` (scikit-learn's argument) must only list training emotions.
        """
        if getattr(self, "shots_", None) is None:
            self.fit(X, y)
        else:
            X, y = self._check_shots(X, y)
            self._set_shots((np.vstack([self.shots_[0], X]), np.concatenate([self.shots_[1], y])))
        if classes is not None:
            check_known(check_labels(classes).tolist(), self.classes_.tolist(), head=type(self).__name__)
        return self

    def _check_shots(self, X, y):
        X, y = check_Xy(X, y, dim=self.n_features_in_, owner=type(self).__name__)
        check_label_kind(y, self.classes_, head=type(self).__name__)
        check_known(y.tolist(), self.classes_.tolist(), head=type(self).__name__)
        return X, y

    def _set_shots(self, shots) -> None:
        """Store the shots and adapt to them now, so that predicting changes nothing on the head."""
        self.shots_ = shots
        if shots is None:
            self.adapted_ = self.learner_.module
            return
        index = {c: i for i, c in enumerate(self.classes_.tolist())}
        t = torch.as_tensor([index[c] for c in shots[1].tolist()])
        with torch_threads(1):
            learner = self._adapt(self._z(shots[0]), t)
        # a plain copy of the network with the adapted weights: no autograd graph is kept, so the
        # head stays picklable and deep-copyable
        adapted = copy.deepcopy(self.learner_.module)
        adapted.load_state_dict({k: v.detach() for k, v in learner.module.state_dict(keep_vars=True).items()})
        self.adapted_ = adapted.eval()

    def _logits(self, X) -> np.ndarray:
        """Logits ``[N, C]`` of the adapted head (of the meta-learned init before ``fit``)."""
        require_fitted(self)
        Z = self._z(self._check_X(X))
        with torch.no_grad():
            return self.adapted_(self.body_(Z)).double().numpy()

    def get_state(self) -> dict:
        require_fitted(self)
        shots = None if self.shots_ is None else {"X": self.shots_[0].tolist(), "y": labels_to_json(self.shots_[1])}
        return {**state_header(self), "config": self._config(), "classes": labels_to_json(self.classes_),
                "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
                "body": {k: v.tolist() for k, v in self.body_.state_dict().items()},
                "learner": {k: v.tolist() for k, v in self.learner_.state_dict().items()}, "shots": shots}

    @classmethod
    def from_state(cls, state: dict) -> "MAMLHead":
        check_state(state, cls)
        head = cls(**{**state["config"], "hidden": tuple(state["config"]["hidden"])})
        head._validate_params()
        head.classes_ = labels_from_json(state["classes"])
        head.mean_ = np.asarray(state["mean"], dtype=np.float64)
        head.scale_ = np.asarray(state["scale"], dtype=np.float64)
        head.n_features_in_ = len(head.mean_)
        head._build(head.n_features_in_, len(head.classes_), local_generator(0))
        head.body_.load_state_dict({k: torch.as_tensor(v) for k, v in state["body"].items()})
        head.learner_.load_state_dict({k: torch.as_tensor(v) for k, v in state["learner"].items()})
        shots = None
        if state.get("shots"):
            shots = (np.asarray(state["shots"]["X"], dtype=np.float32), labels_from_json(state["shots"]["y"]))
        head._set_shots(shots)
        return head
