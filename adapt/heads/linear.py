"""Torch heads on embeddings: ``LinearHead`` (multinomial logistic regression) and ``MLPHead``.

Both standardize their inputs with statistics frozen at ``fit`` time, weigh classes
(``class_weight="balanced"``: unbalanced corpora otherwise favour the big classes) and examples
(``sample_weight``: e.g. a new speaker's few shots ×20 next to many training clips).

``partial_fit`` fine-tunes a fitted head: new labels add output rows, and the loss carries an
L2 pull toward the weights before the call (L2-SP, Li et al. 2018) instead of toward zero, so a
handful of shots moves the head without erasing what it knew. ``module_`` is the plain
``torch.nn`` model (input: standardized ``[B, D]``), for continual strategies that train it.

Example:
    >>> import numpy as np
    >>> X = np.array([[2.0, 0.0], [1.8, 0.2], [0.0, 2.0], [0.1, 1.9]])
    >>> head = LinearHead().fit(X, ["happy", "happy", "sad", "sad"])
    >>> head.predict(np.array([[1.9, 0.1]])).tolist()
    ['happy']
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..stats import Standardizer
from ..threads import torch_threads
from ..validation import check_sample_weight, check_state, check_X, check_Xy, require_fitted, state_header
from .base import HeadMixin

__all__ = ["LinearHead", "MLPHead"]


class _TorchHead(HeadMixin):
    """Shared fitting/inference for the torch heads; subclasses build ``_make_module``."""

    def __init__(self, *, weight_decay: float, class_weight: str | None, max_iter: int, finetune_iter: int,
                 seed: int) -> None:
        if class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be None or 'balanced', got {class_weight!r}")
        if not isinstance(weight_decay, (int, float)) or weight_decay < 0 or not np.isfinite(weight_decay):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
        for name, v in (("max_iter", max_iter), ("finetune_iter", finetune_iter)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        self.weight_decay = float(weight_decay)
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.finetune_iter = finetune_iter
        self.seed = seed
        self.classes_: np.ndarray | None = None
        self.module_: nn.Module | None = None
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.n_features_in_: int | None = None

    # subclasses --------------------------------------------------------------------------------
    def _make_module(self, d: int, c: int) -> nn.Module:
        raise NotImplementedError

    def _output_layer(self) -> nn.Linear:
        raise NotImplementedError

    def _optimize(self, Z: torch.Tensor, t: torch.Tensor, w: torch.Tensor, anchor: list | None, iters: int) -> None:
        raise NotImplementedError

    def _config(self) -> dict:
        raise NotImplementedError

    # shared ------------------------------------------------------------------------------------
    def _weights(self, y_idx: np.ndarray, sample_weight: np.ndarray, c: int) -> torch.Tensor:
        w = sample_weight.copy()
        if self.class_weight == "balanced":
            per = np.bincount(y_idx, weights=w, minlength=c)
            present = per > 0
            cw = np.zeros(c)
            cw[present] = w.sum() / (present.sum() * per[present])
            w = w * cw[y_idx]
        return torch.as_tensor(w / max(w.sum(), 1e-12), dtype=torch.float32)

    def _loss(self, logits, t, w, anchor) -> torch.Tensor:
        ce = (nn.functional.cross_entropy(logits, t, reduction="none") * w).sum()
        params = list(self.module_.parameters())
        ref = anchor if anchor is not None else [None] * len(params)
        reg = sum(((p - r) ** 2).sum() if r is not None else (p ** 2).sum()
                  for p, r in zip(params, ref) if p.ndim > 1)   # biases are not penalized
        return ce + self.weight_decay * reg

    def _standardize(self, X: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((X - self.mean_) / self.scale_, dtype=torch.float32)

    def fit(self, X, y, sample_weight=None):
        """Train from scratch on ``X [N, D]``, ``y [N]`` (``sample_weight [N]`` optional)."""
        X, y = check_Xy(X, y)
        sw = check_sample_weight(sample_weight, len(y))
        torch.manual_seed(self.seed)
        self.classes_ = np.array(sorted(set(y.tolist())), dtype=object)
        self.n_features_in_ = X.shape[1]
        std = Standardizer().fit(X)
        self.mean_, self.scale_ = std.mean_, std.scale_
        self.module_ = self._make_module(X.shape[1], len(self.classes_))
        self._train(X, y, sw, anchor=False, iters=self.max_iter)
        return self

    def partial_fit(self, X, y, sample_weight=None, *, classes: Sequence[str] | None = None):
        """Fine-tune on ``X, y`` (L2 pull toward the current weights); unseen labels become new classes.

        On an unfitted head this is ``fit``. ``classes`` optionally lists extra labels to add.
        """
        if self.classes_ is None:
            return self.fit(X, y, sample_weight)
        X, y = check_Xy(X, y, dim=self.n_features_in_)
        sw = check_sample_weight(sample_weight, len(y))
        new = [c for c in dict.fromkeys(list(y.tolist()) + list(classes or [])) if c not in set(self.classes_)]
        if new:
            self._add_classes(new)
        self._train(X, y, sw, anchor=True, iters=self.finetune_iter)
        return self

    def _add_classes(self, new: list[str]) -> None:
        out = self._output_layer()
        with torch.no_grad():
            w = torch.cat([out.weight, torch.zeros(len(new), out.in_features)])
            # new classes start at the mean bias, so they neither dominate nor vanish
            b = torch.cat([out.bias, out.bias.mean().repeat(len(new))])
            out.weight, out.bias = nn.Parameter(w), nn.Parameter(b)
            out.out_features = w.shape[0]
        self.classes_ = np.array(list(self.classes_) + new, dtype=object)

    def _train(self, X, y, sw, *, anchor: bool, iters: int) -> None:
        index = {c: i for i, c in enumerate(self.classes_)}
        y_idx = np.fromiter((index[c] for c in y), dtype=np.int64, count=len(y))
        Z, t = self._standardize(X), torch.as_tensor(y_idx)
        w = self._weights(y_idx, sw, len(self.classes_))
        ref = [p.detach().clone() for p in self.module_.parameters()] if anchor else None
        self.module_.train()
        with torch_threads(1):
            self._optimize(Z, t, w, ref, iters)
        self.module_.eval()

    def decision_function(self, X) -> np.ndarray:
        """Logits ``[N, C]`` ordered as ``classes_``."""
        require_fitted(self)
        X = check_X(X, dim=self.n_features_in_)
        with torch.no_grad():
            return self.module_(self._standardize(X)).double().numpy()


    def get_state(self) -> dict:
        """JSON-serializable state: config, classes, input statistics and every weight tensor."""
        require_fitted(self)
        return {**state_header(self), "config": self._config(), "classes": list(self.classes_),
                "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
                "weights": {k: v.tolist() for k, v in self.module_.state_dict().items()}}

    @classmethod
    def from_state(cls, state: dict):
        check_state(state, cls)
        head = cls(**state["config"])
        head.classes_ = np.array([str(c) for c in state["classes"]], dtype=object)
        head.mean_ = np.asarray(state["mean"], dtype=np.float64)
        head.scale_ = np.asarray(state["scale"], dtype=np.float64)
        head.n_features_in_ = int(head.mean_.shape[0])
        head.module_ = head._make_module(head.n_features_in_, len(head.classes_))
        sd = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in state["weights"].items()}
        try:
            head.module_.load_state_dict(sd)
        except RuntimeError as exc:
            raise ValueError(f"{cls.__name__} state does not match its config: {exc}") from None
        head.module_.eval()
        return head


class LinearHead(_TorchHead):
    """Multinomial logistic regression trained full-batch with L-BFGS.

    Args:
        weight_decay: L2 penalty on the weights (toward 0 in ``fit``, toward the previous weights in
            ``partial_fit``), on standardized inputs.
        class_weight: ``"balanced"`` (default) or None.
        max_iter: L-BFGS iterations of ``fit``; ``finetune_iter``: of ``partial_fit``.
        seed: torch seed (the linear problem is convex, so it matters little).
    """

    def __init__(self, *, weight_decay: float = 1e-3, class_weight: str | None = "balanced",
                 max_iter: int = 100, finetune_iter: int = 30, seed: int = 0) -> None:
        super().__init__(weight_decay=weight_decay, class_weight=class_weight, max_iter=max_iter,
                         finetune_iter=finetune_iter, seed=seed)

    def _make_module(self, d, c):
        lin = nn.Linear(d, c)
        nn.init.zeros_(lin.weight)
        nn.init.zeros_(lin.bias)
        return lin

    def _output_layer(self):
        return self.module_

    def _optimize(self, Z, t, w, anchor, iters):
        opt = torch.optim.LBFGS(self.module_.parameters(), lr=1.0, max_iter=iters, history_size=20,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-9)

        def closure():
            opt.zero_grad()
            loss = self._loss(self.module_(Z), t, w, anchor)
            loss.backward()
            return loss

        opt.step(closure)

    def _config(self):
        return {"weight_decay": self.weight_decay, "class_weight": self.class_weight,
                "max_iter": self.max_iter, "finetune_iter": self.finetune_iter, "seed": self.seed}


class MLPHead(_TorchHead):
    """One- or two-hidden-layer MLP (ReLU, dropout) trained with Adam in mini-batches.

    Args:
        hidden: hidden layer widths, e.g. ``(256,)``.
        dropout: dropout after each hidden layer.
        lr, batch_size: Adam learning rate and mini-batch size.
        max_iter: epochs of ``fit``; ``finetune_iter``: epochs of ``partial_fit``.
        weight_decay, class_weight, seed: as in ``LinearHead``.
    """

    def __init__(self, *, hidden: Sequence[int] = (256,), dropout: float = 0.2, lr: float = 1e-3,
                 batch_size: int = 64, weight_decay: float = 1e-4, class_weight: str | None = "balanced",
                 max_iter: int = 60, finetune_iter: int = 20, seed: int = 0) -> None:
        hidden = tuple(int(h) for h in hidden)
        if not hidden or any(h < 1 for h in hidden):
            raise ValueError(f"hidden must list positive widths, got {hidden!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if not lr > 0 or isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"need lr > 0 and an int batch_size >= 1, got lr={lr!r}, batch_size={batch_size!r}")
        super().__init__(weight_decay=weight_decay, class_weight=class_weight, max_iter=max_iter,
                         finetune_iter=finetune_iter, seed=seed)
        self.hidden, self.dropout, self.lr, self.batch_size = hidden, float(dropout), float(lr), batch_size

    def _make_module(self, d, c):
        layers: list[nn.Module] = []
        for h in self.hidden:
            layers += [nn.Linear(d, h), nn.ReLU(), nn.Dropout(self.dropout)]
            d = h
        layers.append(nn.Linear(d, c))
        return nn.Sequential(*layers)

    def _output_layer(self):
        return self.module_[-1]

    def _optimize(self, Z, t, w, anchor, iters):
        gen = torch.Generator().manual_seed(self.seed)
        opt = torch.optim.Adam(self.module_.parameters(), lr=self.lr)
        n = len(t)
        for _ in range(iters):
            perm = torch.randperm(n, generator=gen)
            for start in range(0, n, self.batch_size):
                b = perm[start:start + self.batch_size]
                opt.zero_grad()
                # re-normalize the batch's weights so the loss scale does not depend on batch size
                wb = w[b] / w[b].sum().clamp_min(1e-12)
                self._loss(self.module_(Z[b]), t[b], wb, anchor).backward()
                opt.step()

    def _config(self):
        return {"hidden": list(self.hidden), "dropout": self.dropout, "lr": self.lr, "batch_size": self.batch_size,
                "weight_decay": self.weight_decay, "class_weight": self.class_weight, "max_iter": self.max_iter,
                "finetune_iter": self.finetune_iter, "seed": self.seed}
