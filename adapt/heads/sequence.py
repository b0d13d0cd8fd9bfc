"""Sequence heads on frame features: 1-D CNN, BiLSTM, BiGRU, CNN-LSTM, attentive pooling, Transformer.

The architectures of the SER literature, run on the frozen encoder's frames
(``adapt.frames``) instead of one pooled vector per clip. Every head is a scikit-learn style
classifier like the pooled heads (``get_params`` / ``clone``; ``score`` is UA):

* ``fit(X, y, *, lengths=None, mask=None, sample_weight=None, aux=None)``, ``predict(X, ...)``,
  ``predict_proba(X, ...)``, ``score(X, y, ...)``: ``X`` is a list of ``(T_i, F)`` arrays, or a
  padded ``(N, T, F)`` array with ``lengths`` ``(N,)`` or a boolean ``mask`` ``(N, T)``.
* ``embed(X, ...)`` / ``transform(X, ...)``: the pooled representation ``(N, E)`` that feeds the
  classifier; use it as features for the few-shot personal heads (``adapt.heads``, ``Personalizer``).
* ``get_state()`` (JSON-serializable) / ``Cls.from_state(state)``.
* ``objective="multitask"`` or ``"adversarial"`` with ``aux={"corpus": ..., "gender": ...}`` in
  ``fit`` (``adapt.heads.objectives``).

Everything is masking-aware: convolutions see zeros past each clip's end (as a one-by-one call
does), recurrent layers run on packed sequences, attention and pooling ignore padded frames, so a
padded batch gives the same outputs as one-by-one calls (tested).

Input: optionally each clip normalized by its own mean (and std) over time (``utterance_norm``),
frames standardized with per-feature statistics of the training frames, then an optional
learned softmax weighting of layers (``num_layers=L`` when each frame is the concatenation of ``L``
layers of ``D`` dims, i.e. ``select_layers(entry, "all")``), then a linear projection to ``hidden``.

| ``arch`` | body after the projection |
|---|---|
| ``cnn`` | two masked 1-D convolutions (kernel 5, ReLU), mean + std pooling |
| ``bilstm`` | one bidirectional LSTM layer (packed sequences), mean + std pooling |
| ``bigru`` | one bidirectional GRU layer (packed sequences), mean + std pooling |
| ``cnn-lstm`` | one masked convolution, then a BiLSTM, mean + std pooling |
| ``attentive`` | attentive statistics pooling (``adapt.embedding.pooling``) + a hidden layer |
| ``transformer`` | 2 pre-norm Transformer encoder layers (4 heads, sinusoidal positions, padding mask), then attentive pooling (``pooling="attentive"``) or a class token (``"cls"``) |

Randomness: module initialization, batch order and dropout come from ``seed`` inside
``torch.random.fork_rng``, so fitting twice gives the same head and the caller's global torch RNG
is left as it was.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = [rng.normal(size=(int(rng.integers(5, 12)), 8)) + (i % 2) for i in range(40)]
    >>> head = SequenceHead(arch="cnn", hidden=16, max_iter=5).fit(X, np.array(["a", "b"] * 20))
    >>> head.predict(X[:2]).tolist(), head.embed(X[:2]).shape
    (['a', 'b'], (2, 32))
"""
from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from torch import nn

from ..embedding.pooling import AttentiveStatsPooling, LayerWeights
from ..frames.batch import UTTERANCE_NORMS, as_ragged, normalize_utterances, pad_rows
from ..nn import load_json_weights, weights_to_json
from ..stats import softmax
from ..threads import torch_threads
from ..validation import (check_known, check_label_kind, check_labels, check_sample_weight, check_state,
                          labels_from_json, labels_to_json, require_fitted, state_header)
from .objectives import AuxiliaryHeads, check_objective, encode_aux

__all__ = ["ARCHS", "SequenceHead", "SequenceNet", "FrameHeadBase", "masked_mean_std"]

ARCHS = ("cnn", "bilstm", "bigru", "cnn-lstm", "attentive", "transformer")


def masked_mean_std(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, T, H)`` frames, ``(B, T)`` mask -> ``(B, 2H)`` mean and std over valid frames."""
    m = mask.to(h.dtype)[..., None]
    n = m.sum(1).clamp_min(1.0)
    mu = (h * m).sum(1) / n
    var = (((h - mu[:, None]) ** 2) * m).sum(1) / n
    return torch.cat([mu, var.clamp_min(1e-8).sqrt()], dim=-1)


def _positions(t: int, d: int, device) -> torch.Tensor:
    pos = torch.arange(t, device=device, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(t, d, device=device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : d // 2]
    return pe


class SequenceNet(nn.Module):
    """``(B, T, F)`` standardized frames + lengths -> pooled representation ``(B, E)`` -> logits ``(B, C)``."""

    def __init__(self, *, arch: str, in_dim: int, num_classes: int, hidden: int = 128, num_layers: int | None = None,
                 dropout: float = 0.2, pooling: str = "attentive", kernel: int = 5, input_stats: bool = False) -> None:
        super().__init__()
        self.arch, self.hidden, self.kernel = arch, int(hidden), int(kernel)
        self.layer_weights = None
        d = in_dim
        if num_layers:
            self.layer_weights = LayerWeights(num_layers=num_layers)
            self.num_layers, d = int(num_layers), in_dim // int(num_layers)
        self.proj = nn.Sequential(nn.Linear(d, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout))
        h = hidden
        self.drop = nn.Dropout(dropout)
        self.pooling = pooling
        if arch == "cnn":
            self.convs = nn.ModuleList([nn.Conv1d(h, h, kernel, padding=kernel // 2) for _ in range(2)])
            self.rep_dim = 2 * h
        elif arch in ("bilstm", "bigru", "cnn-lstm"):
            if arch == "cnn-lstm":
                self.convs = nn.ModuleList([nn.Conv1d(h, h, kernel, padding=kernel // 2)])
            rnn = nn.GRU if arch == "bigru" else nn.LSTM
            self.rnn = rnn(h, h // 2, batch_first=True, bidirectional=True)
            self.rep_dim = 2 * h
        elif arch == "attentive":
            self.attend = AttentiveStatsPooling(dim=h, hidden=h)
            self.mlp = nn.Sequential(nn.Linear(2 * h, h), nn.ReLU(), nn.Dropout(dropout))
            self.rep_dim = h
        elif arch == "transformer":
            layer = nn.TransformerEncoderLayer(h, nhead=4, dim_feedforward=2 * h, dropout=dropout, batch_first=True,
                                               norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
            if pooling == "cls":
                self.cls = nn.Parameter(torch.zeros(1, 1, h))
                self.rep_dim = h
            else:
                self.attend = AttentiveStatsPooling(dim=h, hidden=h)
                self.rep_dim = 2 * h
        else:
            raise ValueError(f"unknown arch {arch!r}; known: {list(ARCHS)}")
        self.stats = None
        if input_stats:   # a pooled-linear path next to the body: masked mean + std of the input frames
            self.stats = nn.Sequential(nn.Linear(2 * d, hidden), nn.Dropout(dropout))
            self.rep_dim += hidden
        self.classifier = nn.Linear(self.rep_dim, num_classes)

    def _conv(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.to(x.dtype)[..., None]
        for conv in self.convs:
            # zeros past the end: exactly what the conv's zero padding shows a one-by-one call
            x = self.drop(torch.relu(conv((x * m).transpose(1, 2)).transpose(1, 2)))
        return x * m

    def _rnn(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return self.drop(out)

    def embed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Pooled representation ``(B, rep_dim)``."""
        mask = torch.arange(x.shape[1], device=x.device)[None, :] < lengths.to(x.device)[:, None]
        if self.layer_weights is not None:
            b, t, f = x.shape
            x = self.layer_weights(x.reshape(b, t, self.num_layers, f // self.num_layers).permute(2, 0, 1, 3))
        if self.stats is not None:
            return torch.cat([self._body(self.proj(x), mask, lengths), self.stats(masked_mean_std(x, mask))], dim=-1)
        return self._body(self.proj(x), mask, lengths)

    def _body(self, h: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.arch == "cnn":
            return masked_mean_std(self._conv(h, mask), mask)
        if self.arch in ("bilstm", "bigru"):
            return masked_mean_std(self._rnn(h, lengths), mask)
        if self.arch == "cnn-lstm":
            return masked_mean_std(self._rnn(self._conv(h, mask), lengths), mask)
        if self.arch == "attentive":
            return self.mlp(self.attend(h, lengths))
        h = h + _positions(h.shape[1], self.hidden, h.device)[None]
        if self.pooling == "cls":
            h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1)
            mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
            return self.encoder(h, src_key_padding_mask=~mask)[:, 0]
        return self.attend(self.encoder(h, src_key_padding_mask=~mask), lengths)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x, lengths))


def _check_num(name: str, v, *, low: float, integer: bool = False, below: float | None = None) -> None:
    ok = not isinstance(v, bool) and isinstance(v, (int, np.integer) if integer else (int, float, np.number))
    if not ok or not np.isfinite(v) or v < low or (below is not None and v >= below):
        kind = "an int" if integer else "a number"
        raise ValueError(f"{name} must be {kind} >= {low}{f' and < {below}' if below is not None else ''}, got {v!r}")


class FrameHeadBase(ClassifierMixin, BaseEstimator):
    """Fitting, batching, inference and state of the torch heads on frames; subclasses build the net.

    Subclasses define ``_make_net(in_dim, num_classes)`` and ``_config()`` and list their
    parameters in ``__init__`` (stored as given; checked by ``_validate_params`` in ``fit``).
    """

    # subclasses ---------------------------------------------------------------------------------
    def _make_net(self, in_dim: int, num_classes: int) -> nn.Module:  # pragma: no cover
        raise NotImplementedError

    def _config(self) -> dict:  # pragma: no cover
        raise NotImplementedError

    def _validate_params(self) -> None:
        _check_num("hidden", self.hidden, low=4, integer=True)
        _check_num("dropout", self.dropout, low=0, below=1)
        _check_num("lr", self.lr, low=1e-12)
        _check_num("weight_decay", self.weight_decay, low=0)
        for name in ("batch_size", "max_iter"):
            _check_num(name, getattr(self, name), low=1, integer=True)
        _check_num("seed", self.seed, low=0, integer=True)
        if self.num_threads is not None:
            _check_num("num_threads", self.num_threads, low=1, integer=True)
        if self.class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be None or 'balanced', got {self.class_weight!r}")
        check_objective(self.objective, self.aux_weight)

    # shared -------------------------------------------------------------------------------------
    def _fit_input(self, flat: np.ndarray) -> np.ndarray:
        """Frame statistics (and the PCA of ``input_pca``) from the training frames; returns the
        frames the net trains on (projected when ``input_pca`` is set)."""
        mean = flat.mean(0, dtype=np.float64)
        scale = np.maximum(flat.std(0, dtype=np.float64), 1e-6)
        k = getattr(self, "input_pca", None)
        self.components_ = None
        if k is not None and k < flat.shape[1]:
            rng = np.random.default_rng(int(self.seed))
            sample = flat[rng.choice(len(flat), size=min(len(flat), 20000), replace=False)]
            z = (sample.astype(np.float64) - mean) / scale
            _, _, vt = np.linalg.svd(z - z.mean(0), full_matrices=False)
            self.components_ = vt[:k].astype(np.float32)
            self.input_mean_, self.input_scale_ = mean.astype(np.float32), scale.astype(np.float32)
            flat = self._project(flat)
            mean, scale = flat.mean(0, dtype=np.float64), np.maximum(flat.std(0, dtype=np.float64), 1e-6)
        self.mean_, self.scale_ = mean.astype(np.float32), scale.astype(np.float32)
        return flat

    def _project(self, flat: np.ndarray) -> np.ndarray:
        """Raw frames -> the PCA space of ``input_pca`` (identity without it), in chunks."""
        if getattr(self, "components_", None) is None:
            return flat
        out = np.empty((len(flat), self.components_.shape[0]), dtype=np.float32)
        for s in range(0, len(flat), 65536):
            z = (flat[s:s + 65536].astype(np.float32) - self.input_mean_) / self.input_scale_
            out[s:s + 65536] = z @ self.components_.T
        return out

    def _net_dim(self) -> int:
        comps = getattr(self, "components_", None)
        return self.n_features_in_ if comps is None else int(comps.shape[0])

    def _batch(self, flat: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, rows: np.ndarray, *,
               drop: float = 0.0, rng: np.random.Generator | None = None):
        """Standardized, zero-padded ``(B, T_b, F)`` tensor and lengths of clips ``rows``.

        ``drop`` > 0 (training only): each frame of each clip is left out with this probability
        (at least one frame kept; order kept), a different subset every batch."""
        if drop > 0:
            keep = [np.flatnonzero(rng.random(int(lengths[i])) >= drop) for i in rows]
            keep = [k if len(k) else rng.integers(int(lengths[i]), size=1) for k, i in zip(keep, rows)]
            lb = np.array([len(k) for k in keep], dtype=np.int64)
            x = np.zeros((len(rows), int(lb.max()), flat.shape[1]), dtype=np.float32)
            for j, (i, k) in enumerate(zip(rows, keep)):
                x[j, : len(k)] = flat[offsets[i] + k]
        else:
            x = pad_rows(flat, offsets, lengths, rows)
            lb = lengths[rows]
        x = (x - self.mean_) / self.scale_
        x[np.arange(x.shape[1])[None, :] >= lb[:, None]] = 0.0
        return torch.from_numpy(x.astype(np.float32, copy=False)), torch.from_numpy(lb)

    def _batches(self, lengths: np.ndarray, bs: int, rng: np.random.Generator | None) -> list[np.ndarray]:
        """Index batches of similar lengths (less padding); shuffled when ``rng`` is given."""
        n = len(lengths)
        order = rng.permutation(n) if rng is not None else np.arange(n)
        pool = bs * 8
        batches = []
        for s in range(0, n, pool):
            chunk = order[s:s + pool]
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
            batches += [chunk[i:i + bs] for i in range(0, len(chunk), bs)]
        if rng is not None:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def fit(self, X, y, *, lengths=None, mask=None, sample_weight=None, aux=None):
        """Train from scratch on frames ``X`` and labels ``y`` ``(N,)``.

        ``aux``: ``{name: labels (N,)}`` auxiliary targets for ``objective="multitask"`` /
        ``"adversarial"`` (e.g. corpus, gender, speaker); ignored without an objective.
        """
        self._validate_params()
        owner = type(self).__name__
        flat, lengths = as_ragged(X, lengths, mask, owner=owner)
        y = check_labels(y, len(lengths))
        sw = check_sample_weight(sample_weight, len(y))
        aux_codes = encode_aux(aux, len(y), self.objective)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"{owner} needs at least 2 classes, got {self.classes_.tolist()}")
        self.n_features_in_ = int(flat.shape[1])
        flat = self._fit_input(normalize_utterances(flat, lengths, getattr(self, "utterance_norm", None)))
        index = {c: i for i, c in enumerate(self.classes_.tolist())}
        t = np.fromiter((index[c] for c in y.tolist()), dtype=np.int64, count=len(y))
        w = sw.copy()
        if self.class_weight == "balanced":
            per = np.bincount(t, weights=w, minlength=len(self.classes_))
            w = w * (w.sum() / (len(self.classes_) * np.maximum(per, 1e-12)))[t]
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        with torch.random.fork_rng(devices=[]), torch_threads(self.num_threads):
            torch.manual_seed(int(self.seed))
            self.module_ = self._make_net(self._net_dim(), len(self.classes_))
            aux_heads = None
            if aux_codes:
                aux_heads = AuxiliaryHeads.build(self.objective, rep_dim=self.module_.rep_dim,
                                                 targets={k: int(v.max()) + 1 for k, v in aux_codes.items()},
                                                 generator=torch.Generator().manual_seed(int(self.seed) + 1),
                                                 aux_weight=float(self.aux_weight))
            self._train(flat, offsets, lengths, t, w, aux_codes, aux_heads)
        self.module_.eval()
        return self

    def _train(self, flat, offsets, lengths, t, w, aux_codes, aux_heads) -> None:
        params = list(self.module_.parameters()) + (list(aux_heads.parameters()) if aux_heads is not None else [])
        opt = torch.optim.AdamW(params, lr=float(self.lr), weight_decay=float(self.weight_decay))
        rng = np.random.default_rng(int(self.seed))
        epochs = int(self.max_iter)
        steps_per_epoch = len(self._batches(lengths, int(self.batch_size), None))
        total = max(epochs * steps_per_epoch, 1)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=float(self.lr), total_steps=total, pct_start=0.15)
        tt, wt = torch.from_numpy(t), torch.as_tensor(w, dtype=torch.float32)
        auxt = {k: torch.from_numpy(v) for k, v in aux_codes.items()}
        self.module_.train()
        step = 0
        for _ in range(epochs):
            for b in self._batches(lengths, int(self.batch_size), rng):
                bt = torch.from_numpy(b)
                xb, lb = self._batch(flat, offsets, lengths, b, drop=float(getattr(self, "frame_dropout", 0.0)),
                                     rng=rng)
                rep = self.module_.embed(xb, lb)
                ce = nn.functional.cross_entropy(self.module_.classifier(rep), tt[bt], reduction="none")
                wb = wt[bt]
                loss = (ce * wb).sum() / wb.sum().clamp_min(1e-12)
                if aux_heads is not None:
                    loss = loss + aux_heads.loss(rep, {k: v[bt] for k, v in auxt.items()}, progress=step / total)
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(params, 5.0)
                opt.step()
                sched.step()
                step += 1
        self.n_iter_ = epochs

    def _forward(self, X, lengths, mask, fn) -> np.ndarray:
        require_fitted(self)
        flat, lengths = as_ragged(X, lengths, mask, dim=self.n_features_in_, owner=type(self).__name__)
        flat = self._project(normalize_utterances(flat, lengths, getattr(self, "utterance_norm", None)))
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        outs, order = [], []
        with torch.no_grad(), torch_threads(self.num_threads):
            for b in self._batches(lengths, 64, None):
                outs.append(fn(*self._batch(flat, offsets, lengths, b)).double().numpy())
                order.append(b)
        out = np.empty((len(lengths), outs[0].shape[1]))
        out[np.concatenate(order)] = np.concatenate(outs)
        return out

    def decision_function(self, X, *, lengths=None, mask=None) -> np.ndarray:
        """Logits ``(N, C)`` ordered as ``classes_``."""
        return self._forward(X, lengths, mask, self.module_.forward if hasattr(self, "module_") else None)

    def predict_proba(self, X, *, lengths=None, mask=None) -> np.ndarray:
        """Class probabilities ``(N, C)`` ordered as ``classes_``."""
        return softmax(self.decision_function(X, lengths=lengths, mask=mask))

    def predict(self, X, *, lengths=None, mask=None) -> np.ndarray:
        """Predicted labels ``(N,)``."""
        scores = self.decision_function(X, lengths=lengths, mask=mask)   # raises NotFittedError first
        return self.classes_[np.argmax(scores, axis=1)]

    def embed(self, X, *, lengths=None, mask=None) -> np.ndarray:
        """The pooled representation ``(N, E)`` (input of the classifier) as float32."""
        return self._forward(X, lengths, mask, self.module_.embed if hasattr(self, "module_") else None
                             ).astype(np.float32)

    def transform(self, X, *, lengths=None, mask=None) -> np.ndarray:
        """Same as ``embed`` (scikit-learn's name for a feature extractor)."""
        return self.embed(X, lengths=lengths, mask=mask)

    def score(self, X, y, *, lengths=None, mask=None) -> float:
        """UA (unweighted average recall) on ``X, y``; every label must be known."""
        from ..metrics import unweighted_average_recall

        require_fitted(self)
        y = check_labels(y)
        check_label_kind(y, self.classes_, head=type(self).__name__)
        check_known(y.tolist(), self.classes_.tolist(), head=type(self).__name__)
        return unweighted_average_recall(y, self.predict(X, lengths=lengths, mask=mask))

    def n_parameters(self) -> int:
        """Trainable parameters of the fitted net (auxiliary training-only classifiers excluded)."""
        require_fitted(self)
        return int(sum(p.numel() for p in self.module_.parameters()))

    def get_state(self) -> dict:
        """JSON-serializable state: config, classes, input statistics and every weight tensor."""
        require_fitted(self)
        state = {**state_header(self), "config": self._config(), "classes": labels_to_json(self.classes_),
                 "n_features_in": int(self.n_features_in_), "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
                 "weights": weights_to_json(self.module_)}
        if getattr(self, "components_", None) is not None:
            state["pca"] = {"components": self.components_.tolist(), "mean": self.input_mean_.tolist(),
                            "scale": self.input_scale_.tolist()}
        return state

    @classmethod
    def from_state(cls, state: dict):
        check_state(state, cls)
        head = cls(**state["config"])
        head._validate_params()
        head.classes_ = labels_from_json(state["classes"])
        head.mean_ = np.asarray(state["mean"], dtype=np.float32)
        head.scale_ = np.asarray(state["scale"], dtype=np.float32)
        head.n_features_in_ = int(state.get("n_features_in", head.mean_.shape[0]))
        head.components_ = None
        if state.get("pca") is not None:
            head.components_ = np.asarray(state["pca"]["components"], dtype=np.float32)
            head.input_mean_ = np.asarray(state["pca"]["mean"], dtype=np.float32)
            head.input_scale_ = np.asarray(state["pca"]["scale"], dtype=np.float32)
        head.module_ = head._make_net(head._net_dim(), len(head.classes_))
        load_json_weights(head.module_, state["weights"], cls.__name__)
        return head


class SequenceHead(FrameHeadBase):
    """A masking-aware sequence classifier on frames (see the module docstring for ``arch``).

    Args:
        arch: one of ``ARCHS``.
        hidden: width after the input projection (conv channels, 2 x RNN units per direction,
            Transformer model dim).
        num_layers: ``L`` when each frame concatenates ``L`` encoder layers: learn softmax layer
            weights (SUPERB-style) before the projection. ``None``: use the frame features as they are.
        dropout, lr, batch_size, weight_decay: AdamW with a one-cycle schedule, mini-batches of
            similar lengths.
        max_iter: epochs.
        class_weight: ``"balanced"`` (default) or None.
        pooling: Transformer only: ``"attentive"`` (default) or ``"cls"`` (a class token).
        objective, aux_weight: ``None``, ``"multitask"`` or ``"adversarial"`` (``adapt.heads.objectives``).
        utterance_norm: ``None``, ``"mean"`` or ``"meanvar"``: normalize each clip's frames by its own
            mean (and std) over time before everything else (``adapt.frames.normalize_utterances``;
            removes per-recording offsets such as channel and speaker level, and with them the
            clip's average frame).
        input_stats: also feed the classifier a linear map (to ``hidden``) of the masked mean and std
            over time of the (standardized, layer-weighted) input frames: a pooled-linear path next to
            the sequence body, so the head keeps what a pooled head sees.
        frame_dropout: training only: leave each frame of a clip out with this probability, a new
            subset per batch (time-masking augmentation; at least one frame kept). Prediction uses
            every frame.
        input_pca: project the standardized frames onto their first ``input_pca`` principal
            components (fit on the training frames, part of the state) before the net: a cheaper
            net on concatenated layers (excludes ``num_layers``).
        seed: initialization, batch order, dropout.
        num_threads: torch threads while fitting / predicting (``None``: leave them).
    """

    def __init__(self, *, arch: str = "cnn", hidden: int = 128, num_layers: int | None = None, dropout: float = 0.2,
                 lr: float = 2e-3, batch_size: int = 32, max_iter: int = 15, weight_decay: float = 1e-2,
                 class_weight: str | None = "balanced", pooling: str = "attentive", objective: str | None = None,
                 aux_weight: float = 0.5, input_pca: int | None = None, utterance_norm: str | None = None,
                 input_stats: bool = False, frame_dropout: float = 0.0, seed: int = 0,
                 num_threads: int | None = 1) -> None:
        self.arch = arch
        self.hidden = hidden
        self.num_layers = num_layers
        self.dropout = dropout
        self.lr = lr
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.weight_decay = weight_decay
        self.class_weight = class_weight
        self.pooling = pooling
        self.objective = objective
        self.aux_weight = aux_weight
        self.input_pca = input_pca
        self.utterance_norm = utterance_norm
        self.input_stats = input_stats
        self.frame_dropout = frame_dropout
        self.seed = seed
        self.num_threads = num_threads

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.input_pca is not None:
            _check_num("input_pca", self.input_pca, low=1, integer=True)
            if self.num_layers:
                raise ValueError("input_pca and num_layers exclude each other (PCA mixes the layers)")
        _check_num("frame_dropout", self.frame_dropout, low=0, below=1)
        if not isinstance(self.input_stats, (bool, np.bool_)):
            raise ValueError(f"input_stats must be True or False, got {self.input_stats!r}")
        if self.utterance_norm not in UTTERANCE_NORMS:
            raise ValueError(f"utterance_norm must be one of {list(UTTERANCE_NORMS)}, got {self.utterance_norm!r}")
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; known: {list(ARCHS)}")
        if self.pooling not in ("attentive", "cls"):
            raise ValueError(f"pooling must be 'attentive' or 'cls', got {self.pooling!r}")
        if self.num_layers is not None:
            _check_num("num_layers", self.num_layers, low=1, integer=True)
        if self.arch == "transformer" and self.hidden % 4:
            raise ValueError(f"the Transformer needs hidden divisible by its 4 heads, got {self.hidden}")

    def _make_net(self, in_dim, num_classes):
        if self.num_layers and in_dim % int(self.num_layers):
            raise ValueError(f"{in_dim} features per frame do not split into num_layers={self.num_layers} layers")
        return SequenceNet(arch=self.arch, in_dim=in_dim, num_classes=num_classes, hidden=int(self.hidden),
                           num_layers=int(self.num_layers) if self.num_layers else None, dropout=float(self.dropout),
                           pooling=self.pooling, input_stats=bool(self.input_stats))

    def _config(self):
        return {"arch": self.arch, "hidden": int(self.hidden),
                "num_layers": int(self.num_layers) if self.num_layers else None, "dropout": float(self.dropout),
                "lr": float(self.lr), "batch_size": int(self.batch_size), "max_iter": int(self.max_iter),
                "weight_decay": float(self.weight_decay), "class_weight": self.class_weight, "pooling": self.pooling,
                "objective": self.objective, "aux_weight": float(self.aux_weight),
                "input_pca": None if self.input_pca is None else int(self.input_pca),
                "utterance_norm": self.utterance_norm, "input_stats": bool(self.input_stats),
                "frame_dropout": float(self.frame_dropout), "seed": int(self.seed),
                "num_threads": self.num_threads}
