"""Torch heads on embeddings: ``LinearHead`` (multinomial logistic regression) and ``MLPHead``.

Both standardize their inputs with statistics frozen at ``fit`` time, weigh classes
(``class_weight="balanced"``: unbalanced corpora otherwise favour the big classes) and examples
(``sample_weight``: e.g. a new speaker's few shots ×20 next to many training clips).

``partial_fit`` fine-tunes a fitted head: new labels add output rows, and the loss carries an
L2 pull toward the weights before the call (L2-SP, Li et al. 2018) instead of toward zero, so a
handful of shots moves the head without erasing what it knew. ``module_`` is the plain
``torch.nn`` model (input: standardized ``[B, D]``), for continual strategies that train it.

Both are scikit-learn classifiers (``get_params`` / ``clone`` / ``GridSearchCV``; ``score`` is UA).

``objective="multitask"`` / ``"adversarial"`` (default ``None``: unchanged) adds auxiliary
classifiers on the shared representation while ``fit`` trains (``fit(X, y, aux={"corpus": ...})``;
``adapt.heads.objectives``): the MLP's last hidden layer, or for ``LinearHead`` a linear projection
to ``rep_dim`` dims placed before its output layer (still a linear classifier, trained with Adam
for ``max_iter`` epochs instead of L-BFGS, since gradient reversal has no line search).
Their randomness (MLP initialization, batch order, dropout) comes from a local generator seeded
with ``seed``: fitting twice gives the same head, and the global torch RNG is left alone.

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
from sklearn.base import BaseEstimator, ClassifierMixin
from torch import nn

from ..nn import load_json_weights, weights_to_json
from ..stats import Standardizer
from ..threads import torch_threads
from ..validation import (append_labels, check_label_kind, check_labels, check_sample_weight, check_state, check_X,
                          check_Xy, labels_from_json, labels_to_json, require_fitted, state_header)
from .base import HeadMixin
from .objectives import AuxiliaryHeads, check_objective, encode_aux
from .seeding import SeededDropout, local_generator, seeded_linear, use_generator

__all__ = ["LinearHead", "MLPHead"]


def _check_int(name: str, v, low: int = 1) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
        raise ValueError(f"{name} must be an int >= {low}, got {v!r}")


class _TorchHead(HeadMixin, ClassifierMixin, BaseEstimator):
    """Shared fitting/inference for the torch heads; subclasses build ``_make_module``.

    Subclasses' ``__init__`` only stores its arguments; ``_validate_params`` checks them in ``fit``.
    """

    def _validate_params(self) -> None:
        cw = self.class_weight
        if isinstance(cw, dict):
            bad = {k: v for k, v in cw.items()
                   if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not np.isfinite(v) or v < 0}
            if bad:
                raise ValueError(f"class_weight values must be finite numbers >= 0, got {bad!r}")
        elif cw not in (None, "balanced"):
            raise ValueError(f"class_weight must be None, 'balanced' or a dict label -> weight, got {cw!r}")
        wd = self.weight_decay
        if isinstance(wd, bool) or not isinstance(wd, (int, float, np.number)) or wd < 0 or not np.isfinite(wd):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {wd!r}")
        for name in ("max_iter", "finetune_iter"):
            _check_int(name, getattr(self, name))
        _check_int("seed", self.seed, low=0)
        check_objective(getattr(self, "objective", None), getattr(self, "aux_weight", 0.5))

    # subclasses --------------------------------------------------------------------------------
    def _make_module(self, d: int, c: int, generator: torch.Generator) -> nn.Module:
        raise NotImplementedError

    def _output_layer(self) -> nn.Linear:
        raise NotImplementedError

    def _optimize(self, Z: torch.Tensor, t: torch.Tensor, w: torch.Tensor, anchor: list | None, iters: int,
                  generator: torch.Generator) -> None:
        raise NotImplementedError

    def _config(self) -> dict:
        raise NotImplementedError

    # shared ------------------------------------------------------------------------------------
    def _weights(self, y_idx: np.ndarray, sample_weight: np.ndarray, c: int) -> torch.Tensor:
        w = sample_weight.copy()
        if isinstance(self.class_weight, dict):   # label -> weight; unlisted labels weigh 1
            cw = np.array([float(self.class_weight.get(c, 1.0)) for c in self.classes_.tolist()])
            w = w * cw[y_idx]
        elif self.class_weight == "balanced":
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
        return ce + float(self.weight_decay) * reg

    def _standardize(self, X: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((X - self.mean_) / self.scale_, dtype=torch.float32)

    def fit(self, X, y, sample_weight=None, *, aux=None):
        """Train from scratch on ``X [N, D]``, ``y [N]`` (``sample_weight [N]`` optional).

        ``classes_ = np.unique(y)`` (labels keep their type); ``sample_weight`` weighs every clip's
        loss and the input statistics, so an integer weight is the same as repeating the clip.
        ``aux``: ``{name: labels [N]}`` auxiliary targets of ``objective`` (ignored without one).
        """
        self._validate_params()
        X, y = check_Xy(X, y, owner=type(self).__name__)
        sw = check_sample_weight(sample_weight, len(y))
        if not sw.sum() > 0:
            raise ValueError("sample_weight is all zero (weights sum to 0): there is nothing to fit")
        gen = local_generator(self.seed)
        aux_codes = encode_aux(aux, len(y), getattr(self, "objective", None))
        self.classes_ = np.unique(y)
        self.n_features_in_ = X.shape[1]
        std = Standardizer().fit(X, sample_weight=sw)
        self.mean_, self.scale_ = std.mean_, std.scale_
        self.module_ = self._make_module(X.shape[1], len(self.classes_), gen)
        self._train(X, y, sw, anchor=False, iters=self.max_iter, generator=gen, aux=aux_codes)
        return self

    def partial_fit(self, X, y, sample_weight=None, *, classes: Sequence | None = None):
        """Fine-tune on ``X, y`` (L2 pull toward the current weights); unseen labels become new classes.

        On an unfitted head this is ``fit``. ``classes`` optionally lists extra labels to add
        (appended after the new labels of ``y``, in first-seen order).
        """
        name = type(self).__name__
        extra = np.array([], dtype=object) if classes is None else check_labels(classes)
        if getattr(self, "module_", None) is None:
            self.fit(X, y, sample_weight)
            check_label_kind(extra, self.classes_, head=name)
            self._add_classes([c for c in dict.fromkeys(extra.tolist()) if c not in set(self.classes_.tolist())])
            return self
        self._validate_params()
        X, y = check_Xy(X, y, dim=self.n_features_in_, owner=name)
        check_label_kind(y, self.classes_, head=name)
        check_label_kind(extra, self.classes_, head=name)
        sw = check_sample_weight(sample_weight, len(y))
        known = set(self.classes_.tolist())
        new = [c for c in dict.fromkeys(y.tolist() + extra.tolist()) if c not in known]
        self._add_classes(new)
        self._train(X, y, sw, anchor=True, iters=self.finetune_iter, generator=local_generator(self.seed))
        return self

    def _add_classes(self, new: list) -> None:
        if not new:
            return
        out = self._output_layer()
        with torch.no_grad():
            w = torch.cat([out.weight, torch.zeros(len(new), out.in_features)])
            # new classes start at the mean bias, so they neither dominate nor vanish
            b = torch.cat([out.bias, out.bias.mean().repeat(len(new))])
            out.weight, out.bias = nn.Parameter(w), nn.Parameter(b)
            out.out_features = w.shape[0]
        self.classes_ = append_labels(self.classes_, new)

    def _train(self, X, y, sw, *, anchor: bool, iters: int, generator: torch.Generator, aux=None) -> None:
        index = {c: i for i, c in enumerate(self.classes_.tolist())}
        y_idx = np.fromiter((index[c] for c in y.tolist()), dtype=np.int64, count=len(y))
        Z, t = self._standardize(X), torch.as_tensor(y_idx)
        w = self._weights(y_idx, sw, len(self.classes_))
        ref = [p.detach().clone() for p in self.module_.parameters()] if anchor else None
        self.module_.train()
        with torch_threads(1), use_generator(self.module_, generator):
            if aux:
                self._optimize_objective(Z, t, w, aux, iters, generator)
            else:
                self._optimize(Z, t, w, ref, iters, generator)
        self.module_.eval()

    def _optimize_objective(self, Z, t, w, aux, iters, generator) -> None:
        """Adam epochs on emotion CE plus the objective's auxiliary loss on the representation
        (the module without its output layer)."""
        body = self.module_[:-1]
        aux_heads = AuxiliaryHeads.build(self.objective, rep_dim=self._output_layer().in_features,
                                         targets={k: int(v.max()) + 1 for k, v in aux.items()}, generator=generator,
                                         aux_weight=float(self.aux_weight))
        opt = torch.optim.Adam(list(self.module_.parameters()) + list(aux_heads.parameters()),
                               lr=float(getattr(self, "lr", 1e-3)))
        auxt = {k: torch.as_tensor(v) for k, v in aux.items()}
        n, bs = len(t), int(getattr(self, "batch_size", 64))
        total, step = max(iters * ((n + bs - 1) // bs), 1), 0
        for _ in range(iters):
            perm = torch.randperm(n, generator=generator)
            for start in range(0, n, bs):
                b = perm[start:start + bs]
                opt.zero_grad()
                rep = body(Z[b])
                wb = w[b] / w[b].sum().clamp_min(1e-12)
                loss = self._loss(self._output_layer()(rep), t[b], wb, None)
                (loss + aux_heads.loss(rep, {k: v[b] for k, v in auxt.items()}, progress=step / total)).backward()
                opt.step()
                step += 1
        self.n_iter_ = int(iters)

    def _logits(self, X) -> np.ndarray:
        """Logits ``[N, C]`` ordered as ``classes_``."""
        require_fitted(self)
        X = check_X(X, dim=self.n_features_in_, owner=type(self).__name__)
        with torch.no_grad():
            return self.module_(self._standardize(X)).double().numpy()

    def get_state(self) -> dict:
        """JSON-serializable state: config, classes, input statistics and every weight tensor."""
        require_fitted(self)
        return {**state_header(self), "config": self._config(), "classes": labels_to_json(self.classes_),
                "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
                "weights": weights_to_json(self.module_)}

    @classmethod
    def from_state(cls, state: dict):
        check_state(state, cls)
        head = cls(**state["config"])
        head._validate_params()
        head.classes_ = labels_from_json(state["classes"])
        head.mean_ = np.asarray(state["mean"], dtype=np.float64)
        head.scale_ = np.asarray(state["scale"], dtype=np.float64)
        head.n_features_in_ = int(head.mean_.shape[0])
        head.module_ = head._make_module(head.n_features_in_, len(head.classes_), local_generator(0))
        load_json_weights(head.module_, state["weights"], cls.__name__)
        return head


class LinearHead(_TorchHead):
    """Multinomial logistic regression trained full-batch with L-BFGS.

    Args:
        weight_decay: L2 penalty on the weights (toward 0 in ``fit``, toward the previous weights in
            ``partial_fit``), on standardized inputs.
        class_weight: ``"balanced"`` (default), None, or a dict ``label -> weight`` (unlisted labels
            weigh 1), as in scikit-learn.
        max_iter: L-BFGS iterations of ``fit``; ``finetune_iter``: of ``partial_fit``. ``n_iter_``
            (after fitting) is the number the last call ran.
        seed: kept for a uniform interface; the weights start at zero and L-BFGS is
            deterministic, so nothing is random.
        objective, aux_weight: ``None`` (default), ``"multitask"`` or ``"adversarial"`` with the weight
            of the auxiliary loss (``adapt.heads.objectives``); ``rep_dim``: the projection they act on.
    """

    def __init__(self, *, weight_decay: float = 1e-3, class_weight: str | None = "balanced",
                 max_iter: int = 100, finetune_iter: int = 30, seed: int = 0, objective: str | None = None,
                 aux_weight: float = 0.5, rep_dim: int = 128) -> None:
        self.weight_decay = weight_decay
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.finetune_iter = finetune_iter
        self.seed = seed
        self.objective = objective
        self.aux_weight = aux_weight
        self.rep_dim = rep_dim

    def _make_module(self, d, c, generator):
        if self.objective is not None:   # a shared linear projection for the objective's classifiers
            _check_int("rep_dim", self.rep_dim)
            return nn.Sequential(seeded_linear(d, int(self.rep_dim), generator), seeded_linear(int(self.rep_dim), c, generator))
        lin = torch.nn.utils.skip_init(nn.Linear, d, c)   # no default (global-RNG) init: it starts at zero
        nn.init.zeros_(lin.weight)
        nn.init.zeros_(lin.bias)
        return lin

    def _output_layer(self):
        return self.module_[-1] if isinstance(self.module_, nn.Sequential) else self.module_

    def _optimize(self, Z, t, w, anchor, iters, generator):
        opt = torch.optim.LBFGS(self.module_.parameters(), lr=1.0, max_iter=iters, history_size=20,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-9)

        def closure():
            opt.zero_grad()
            loss = self._loss(self.module_(Z), t, w, anchor)
            loss.backward()
            return loss

        opt.step(closure)
        self.n_iter_ = int(opt.state[opt.param_groups[0]["params"][0]].get("n_iter", 0))

    def _config(self):
        cfg = {"weight_decay": float(self.weight_decay), "class_weight": self.class_weight,
               "max_iter": int(self.max_iter), "finetune_iter": int(self.finetune_iter), "seed": int(self.seed)}
        if self.objective is not None:
            cfg.update(objective=self.objective, aux_weight=float(self.aux_weight), rep_dim=int(self.rep_dim))
        return cfg


class MLPHead(_TorchHead):
    """One- or two-hidden-layer MLP (ReLU, dropout) trained with Adam in mini-batches.

    Args:
        hidden: hidden layer widths, e.g. ``(256,)`` (any sequence of ints; kept as given).
        dropout: dropout after each hidden layer.
        lr, batch_size: Adam learning rate and mini-batch size.
        max_iter: epochs of ``fit``; ``finetune_iter``: epochs of ``partial_fit`` (``n_iter_``: of the last call).
        weight_decay, class_weight: as in ``LinearHead``.
        seed: seeds the head's own generator (initialization, batch order, dropout).
        objective, aux_weight: ``None`` (default), ``"multitask"`` or ``"adversarial"`` on the last
            hidden layer (``adapt.heads.objectives``).
    """

    def __init__(self, *, hidden: Sequence[int] = (256,), dropout: float = 0.2, lr: float = 1e-3,
                 batch_size: int = 64, weight_decay: float = 1e-4, class_weight: str | None = "balanced",
                 max_iter: int = 60, finetune_iter: int = 20, seed: int = 0, objective: str | None = None,
                 aux_weight: float = 0.5) -> None:
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.finetune_iter = finetune_iter
        self.seed = seed
        self.objective = objective
        self.aux_weight = aux_weight

    def _widths(self) -> tuple[int, ...]:
        try:
            hidden = tuple(self.hidden)
        except TypeError:
            raise ValueError(f"hidden must list positive widths, got {self.hidden!r}") from None
        if not hidden or any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1 for h in hidden):
            raise ValueError(f"hidden must list positive widths, got {self.hidden!r}")
        return tuple(int(h) for h in hidden)

    def _validate_params(self) -> None:
        super()._validate_params()
        self._widths()
        d = self.dropout
        if isinstance(d, bool) or not isinstance(d, (int, float, np.number)) or not 0 <= d < 1:
            raise ValueError(f"dropout must be in [0, 1), got {d!r}")
        lr, bs = self.lr, self.batch_size
        if (isinstance(lr, bool) or not isinstance(lr, (int, float, np.number)) or not lr > 0
                or isinstance(bs, bool) or not isinstance(bs, (int, np.integer)) or bs < 1):
            raise ValueError(f"need lr > 0 and an int batch_size >= 1, got lr={lr!r}, batch_size={bs!r}")

    def _make_module(self, d, c, generator):
        layers: list[nn.Module] = []
        for h in self._widths():
            layers += [seeded_linear(d, h, generator), nn.ReLU(), SeededDropout(float(self.dropout))]
            d = h
        layers.append(seeded_linear(d, c, generator))
        return nn.Sequential(*layers)

    def _output_layer(self):
        return self.module_[-1]

    def _optimize(self, Z, t, w, anchor, iters, generator):
        opt = torch.optim.Adam(self.module_.parameters(), lr=float(self.lr))
        n, bs = len(t), int(self.batch_size)
        for _ in range(iters):
            perm = torch.randperm(n, generator=generator)
            for start in range(0, n, bs):
                b = perm[start:start + bs]
                opt.zero_grad()
                # re-normalize the batch's weights so the loss scale does not depend on batch size
                wb = w[b] / w[b].sum().clamp_min(1e-12)
                self._loss(self.module_(Z[b]), t[b], wb, anchor).backward()
                opt.step()
        self.n_iter_ = int(iters)

    def _config(self):
        return {"hidden": list(self._widths()), "dropout": float(self.dropout), "lr": float(self.lr),
                "batch_size": int(self.batch_size), "weight_decay": float(self.weight_decay),
                "class_weight": self.class_weight, "max_iter": int(self.max_iter),
                "finetune_iter": int(self.finetune_iter), "seed": int(self.seed),
                **({} if self.objective is None else {"objective": self.objective, "aux_weight": float(self.aux_weight)})}
