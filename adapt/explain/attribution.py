"""Relevance over time (integrated gradients, occlusion) and over encoder layers, with captum.

What is attributed: the probability (``ClipModel.output == "prob"``) of one class; integrated
gradients by default its log-probability (``output="logprob"``, see below).

* ``integrated_gradients``: ``captum.attr.IntegratedGradients`` on the encoder's **log-mel input**
  for Whisper (the waveform path is numerically degenerate there, see the function) or on the
  **waveform** for other backbones; attributions are summed per window (``window_s``, default
  100 ms), so a window's relevance is its share of ``f(clip) - f(baseline)`` (completeness;
  ``Relevance.delta`` is captum's convergence delta, the part the quadrature missed).

  *The baseline* is what the deletion curves (``adapt.explain.faithfulness``) do to a window.
  Whisper's log-mel is normalized per clip: log10 power clamped at the clip's loudest bin - 8,
  then ``(x + 4) / 4``, so a window zeroed in the waveform sits at the clip's own floor,
  ``mel.max() - 2`` in normalized units, not at the -1.5 of the log-mel of digital silence (the
  old baseline, ``baseline="silence"``; ``baseline="floor"`` is the single floor-valued log-mel,
  ``mel_baseline``). The default, ``baseline="deleted"``, goes one step further: the mean IG over
  ``n_baselines`` (4) baselines, each the log-mel of the clip with a seeded random subset of its
  windows silenced in the waveform (``deleted_baselines``; deleted fractions spread over (0, 1)),
  so a window is attributed in contexts where other windows are missing too, as along a deletion
  curve; it costs ``n_baselines`` IG runs. ``reduce``: the signed sum per window (default) or
  the sum of the positive part (``"positive"``). All variants stay reachable by parameter.

  *Which variant is the default* was chosen on training speakers only (``python -m
  benchmarks.explain --select``: an inner split of the training speakers, 8 clips per corpus, 12
  variants = baseline silence / floor / deleted x output p / log p x reduction; rule: most corpora
  with deletion AUC <= 0.8x random, then the lowest worst-corpus ratio). ``deleted`` + log p +
  signed sum met it on all six inner sets (worst 0.78); the old silence / p / sum on five (worst
  0.86); the floor baseline alone barely moved the ratios (worst 0.87). See
  ``benchmarks/results/explain.md``.
* ``occlusion``: non-overlapping windows replaced by zeros one at a time (``captum.attr``'s
  ``FeatureAblation`` over a window mask, which is ``Occlusion`` with the clip's last, shorter
  window included); a window's relevance is the drop in probability when it alone is silenced.
* ``layer_relevance``: which encoder layers the head relies on. The head consumes all layers'
  pooled vectors concatenated; ``captum.attr.FeatureAblation`` replaces one layer's block by the
  user's centre (so that block is standardized to zero: the layer says nothing about this clip)
  and reports the drop in log p (by default: p itself barely moves when it is near 1);
  ``IntegratedGradients`` on the embedding from that same baseline gives each layer's share of
  ``log p(clip) - log p(centre)``.

Example:
    >>> r = integrated_gradients(model, wave, n_steps=16)      # doctest: +SKIP
    >>> r.top_segments(3)                                      # doctest: +SKIP
    [(1.2, 1.3, 0.081), (1.3, 1.4, 0.064), (0.5, 0.6, 0.040)]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .model import ClipModel, waveform_tensor

__all__ = ["Relevance", "LayerRelevance", "integrated_gradients", "occlusion", "layer_relevance", "explain_time",
           "window_samples", "mel_baseline", "deleted_baselines", "deletion_masks", "rereduced", "METHODS",
           "BASELINES", "REDUCTIONS", "require_captum"]

METHODS = ("ig", "occlusion")
#: IG baselines on the log-mel (``mel_baseline``) and per-window reductions of IG attributions
BASELINES = ("floor", "silence", "deleted")
REDUCTIONS = ("sum", "positive")


def require_captum():
    """``captum.attr``, or an ``ExplainUnavailableError`` saying which extra to install."""
    try:
        import captum.attr as attr
    except ImportError:
        from . import ExplainUnavailableError

        raise ExplainUnavailableError("explanations need captum: pip install 'ser-adapt[explain]' "
                                      "(or pip install captum)") from None
    return attr


@dataclass(frozen=True)
class Relevance:
    """A relevance curve over a clip: ``values[k]`` is the relevance of the window starting at
    ``starts[k]`` seconds (``window_s`` long; the last may be shorter, ending at ``duration_s``),
    for class ``target`` (index ``target_index`` in ``classes``). ``method``: ``"ig"`` or
    ``"occlusion"``; ``delta``: captum's convergence delta for IG (``None`` otherwise);
    ``attributed_to``: ``"mel"`` (log-mel input) or ``"wave"`` (samples); ``raw``: IG's own
    attributions, ``(80, frames)`` or ``(samples,)`` (IG only, else ``None``); ``output``: what
    the values are shares or drops of (``"prob"``: p, ``"logprob"``: log p, ``"logit"``)."""

    method: str
    target: str
    target_index: int
    classes: tuple[str, ...]
    starts: np.ndarray
    values: np.ndarray
    window_s: float
    duration_s: float
    probability: float
    delta: float | None = None
    attributed_to: str = "wave"
    raw: np.ndarray | None = None
    output: str = "prob"

    @property
    def ends(self) -> np.ndarray:
        return np.minimum(self.starts + self.window_s, self.duration_s)

    def top_segments(self, k: int = 3) -> list[tuple[float, float, float]]:
        """The ``k`` most relevant windows: ``(start s, end s, relevance)``, most relevant first."""
        order = np.argsort(-self.values, kind="stable")[:k]
        return [(round(float(self.starts[i]), 3), round(float(self.ends[i]), 3), float(self.values[i])) for i in order]


@dataclass(frozen=True)
class LayerRelevance:
    """Per encoder layer (``layers[i]``, ``"L0"`` = conv front end + positions): ``ablation[i]``,
    the drop in the target's ``output`` (log p by default) when that layer's pooled block is replaced by the user's
    centre, and ``integrated_gradients[i]``, that block's summed IG attribution (same baseline)."""

    target: str
    layers: tuple[str, ...]
    ablation: np.ndarray
    integrated_gradients: np.ndarray
    output: str = "logprob"


def window_samples(model: ClipModel, window_s: float) -> int:
    n = int(round(window_s * model.sample_rate))
    if n < 1:
        raise ValueError(f"window_s must be at least one sample, got {window_s}")
    return n


def _windows(n_samples: int, win: int) -> np.ndarray:
    return np.arange(0, n_samples, win)


def _per_window(values: np.ndarray, win: int, reduce: str) -> np.ndarray:
    starts = _windows(len(values), win)
    fn = np.sum if reduce == "sum" else np.mean
    return np.array([fn(values[s:s + win]) for s in starts], dtype=np.float64)


def _reduced(raw: np.ndarray, reduce: str) -> np.ndarray:
    if reduce == "sum":
        return raw
    if reduce == "positive":
        return np.maximum(raw, 0.0)
    raise KeyError(f"unknown IG reduction {reduce!r}; known: {list(REDUCTIONS)}")


def _binned(raw: np.ndarray, attributed_to: str, win: int, n_windows: int, reduce: str) -> np.ndarray:
    """IG attributions summed per window (after ``reduce``); a log-mel frame ``j`` (10 ms hop)
    counts toward the window holding its first sample, ``160 j``."""
    raw = _reduced(raw, reduce)
    if attributed_to == "mel":
        frame_window = (np.arange(raw.shape[1]) * 160) // win
        return np.bincount(frame_window, weights=raw.sum(axis=0), minlength=n_windows)[:n_windows]
    return _per_window(raw, win, "sum")


def rereduced(model: ClipModel, r: Relevance, reduce: str) -> Relevance:
    """An IG ``Relevance`` with its windows re-summed from ``r.raw`` under another ``reduce``
    (``REDUCTIONS``), so comparing reductions costs no second IG run."""
    from dataclasses import replace

    if r.raw is None:
        raise ValueError("rereduced needs IG's raw attributions (Relevance.raw)")
    win = window_samples(model, r.window_s)
    return replace(r, values=_binned(r.raw, r.attributed_to, win, len(r.values), reduce))


def _target(model: ClipModel, x: torch.Tensor, target: str | int | None) -> tuple[int, float]:
    with torch.no_grad():
        p = model.probabilities(x)[0]
    if target is None:
        k = int(torch.argmax(p))
    elif isinstance(target, str):
        if target not in model.classes:
            from ..errors import UnknownLabelError

            raise UnknownLabelError(f"target {target!r} is not scored here; classes: {list(model.classes)}")
        k = model.classes.index(target)
    else:
        k = int(target)
    return k, float(p[k])


def mel_baseline(mel: torch.Tensor, baseline: str = "floor") -> torch.Tensor:
    """The IG baseline for a Whisper log-mel ``mel`` (``(B, 80, F)``, normalized units).

    ``"floor"``: every bin at the clip's own floor, ``mel.max() - 2`` per clip, which is what a
    window silenced in the waveform looks like in the clip's log-mel while the rest of the clip
    sets the normalization (``whisper_log_mel`` clamps log10 power at the loudest bin - 8 and maps
    ``x -> (x + 4) / 4``, so a zeroed window, log10(1e-10) = -10, sits at exactly max - 8, i.e. 2
    normalized units below the clip's loudest bin). ``"silence"``: the log-mel of digital silence
    (-10 + 4) / 4 = -1.5 everywhere, which a silenced window reaches only when the whole clip is."""
    if baseline == "floor":
        top = mel.flatten(1).max(dim=1).values
        return (top - 2.0)[:, None, None].expand_as(mel).clone()
    if baseline == "silence":
        return torch.full_like(mel, (-10.0 + 4.0) / 4.0)
    raise KeyError(f"unknown IG baseline {baseline!r} for mel_baseline; known: ['floor', 'silence'] "
                   f"('deleted' needs the waveform: deleted_baselines)")


def deletion_masks(n_windows: int, n: int, seed: int = 0) -> np.ndarray:
    """``(n, n_windows)`` booleans, True = window silenced, of ``deleted_baselines``."""
    if n < 1:
        raise ValueError(f"n_baselines must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, n_windows), bool)
    for s in range(n):
        masks[s] = rng.random(n_windows) < (s + rng.random()) / n
        if not masks[s].any():
            masks[s, rng.integers(n_windows)] = True
    return masks


def deleted_baselines(model: ClipModel, x: torch.Tensor, win: int, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` log-mels ``(n, 80, F)`` of the clip ``x`` (``(1, S)``) with a seeded random subset of its
    ``win``-sample windows silenced in the waveform (what the deletion curves do, normalization
    included): baseline ``s`` deletes each window with probability ``(s + u) / n``, ``u`` uniform,
    so the deleted fractions spread over (0, 1); at least one window is deleted."""
    out = []
    for drop in deletion_masks(int(np.ceil(x.shape[1] / win)), n, seed):
        keep = torch.ones(x.shape[1], dtype=x.dtype, device=x.device)
        for w in np.flatnonzero(drop):
            keep[w * win:(w + 1) * win] = 0.0
        out.append(model.mel(x * keep))
    return torch.cat(out)


def integrated_gradients(model: ClipModel, wave: Any, *, target: str | int | None = None, n_steps: int = 32,
                         window_s: float = 0.1, internal_batch_size: int = 16, on: str | None = None,
                         baseline: str = "deleted", reduce: str = "sum", output: str | None = "logprob",
                         n_baselines: int = 4, seed: int = 0) -> Relevance:
    """IG relevance over time of ``wave`` (``Waveform`` or 1-D array at the model's rate) for
    ``target`` (class name or index; default the predicted class), ``n_steps`` Gauss-Legendre
    points, summed per ``window_s`` window.

    ``baseline`` (``BASELINES``): ``"deleted"`` (default: the mean over ``n_baselines`` baselines
    from ``deleted_baselines``, seeded by ``seed``), ``"floor"`` (the clip's own floor) or
    ``"silence"`` (the log-mel of digital silence, the old default); on the waveform "floor" and
    "silence" are both zeros. ``output``: ``"logprob"`` (default), ``"prob"``, ``"logit"``, or
    ``None`` for the model's own ``output``. ``reduce`` (``REDUCTIONS``): ``"sum"`` or
    ``"positive"``. With several baselines the attributions are their mean, and ``delta`` is the
    mean signed convergence delta (the completeness error of that mean), as an absolute value.
    See the module docstring for why these defaults.

    ``on``: ``"mel"`` (the default for Whisper backbones: the encoder's log-mel input) or
    ``"wave"`` (the waveform; the default for other backbones).
    Why not the waveform for Whisper: its front end is differentiable, but the log-mel is
    normalized to the clip's loudest bin, so along the straight path ``a * x`` the prediction
    only changes for ``a`` between about 1e-4 and 1e-3 and the quadrature misses it (on an EmoDB
    clip the convergence delta was 0.97 of a 0.99 probability gap at 24 steps; on the log-mel
    0.026 at 16 steps and 0.011 at 32). A log-mel frame ``j`` (10 ms hop) counts toward the
    window holding its first sample, ``160 j``.
    """
    from .model import OUTPUTS, _output

    attr = require_captum()
    output = output or model.output
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {list(OUTPUTS)}, got {output!r}")
    x = waveform_tensor(wave).to(model.backbone.device)
    k, p = _target(model, x, target)
    on = on or ("mel" if model.has_mel else "wave")
    win = window_samples(model, window_s)
    starts = _windows(x.shape[1], win)
    if on == "mel":
        if not model.has_mel:
            raise ValueError(f"on='mel' needs a Whisper backbone, got {model.backbone.spec.name}")
        with torch.no_grad():
            mel = model.mel(x)
            if baseline == "deleted":
                base = deleted_baselines(model, x, win, n_baselines, seed)
            else:
                base = mel_baseline(mel, baseline)

        def from_mel(m: torch.Tensor) -> torch.Tensor:
            e = model.layers_from_mel(m)
            return _output(model.head(e.reshape(e.shape[0], -1)), output)

        a, delta = attr.IntegratedGradients(from_mel).attribute(
            mel.expand(base.shape[0], -1, -1), baselines=base, target=k, n_steps=n_steps,
            internal_batch_size=internal_batch_size, return_convergence_delta=True)
        # several baselines: the mean attribution; its completeness error is the mean signed delta
        raw = a.mean(dim=0).detach().cpu().double().numpy()             # (80, frames)
        delta = delta.mean()
        values = _binned(raw, "mel", win, len(starts), reduce)
    elif on == "wave":
        # on the waveform "floor" and "silence" are both zeros (silencing a window is zeroing its
        # samples); "deleted": the clip with the deletion_masks' windows zeroed
        if baseline == "deleted":
            masks = torch.from_numpy(deletion_masks(len(starts), n_baselines, seed)).to(x.device)
            base = x * (~masks).to(x.dtype).repeat_interleave(win, dim=1)[:, :x.shape[1]]
        elif baseline in ("floor", "silence"):
            base = torch.zeros_like(x)
        else:
            raise KeyError(f"unknown IG baseline {baseline!r}; known: {list(BASELINES)}")
        a, delta = attr.IntegratedGradients(lambda w: _output(model.logits(w), output)).attribute(
            x.expand(base.shape[0], -1), baselines=base, target=k, n_steps=n_steps,
            internal_batch_size=internal_batch_size, return_convergence_delta=True)
        raw = a.mean(dim=0).detach().cpu().double().numpy()             # (samples,)
        delta = delta.mean()
        values = _binned(raw, "wave", win, len(starts), reduce)
    else:
        raise KeyError(f"unknown IG input {on!r}; known: ['mel', 'wave']")
    return Relevance(method="ig", target=model.classes[k], target_index=k, classes=model.classes,
                     starts=starts / model.sample_rate, values=values, window_s=window_s,
                     duration_s=x.shape[1] / model.sample_rate, probability=p, delta=float(delta.abs().max()),
                     attributed_to=on, raw=raw, output=output)


def occlusion(model: ClipModel, wave: Any, *, target: str | int | None = None, window_s: float = 0.1,
              perturbations_per_eval: int = 8) -> Relevance:
    """Occlusion relevance over time: each ``window_s`` window silenced (zeros) on its own; the
    relevance is the drop in the ``target`` probability."""
    attr = require_captum()
    x = waveform_tensor(wave).to(model.backbone.device)
    k, p = _target(model, x, target)
    win = window_samples(model, window_s)
    # captum's Occlusion only slides whole windows, so a clip's tail shorter than one window would
    # never be occluded; FeatureAblation over a window-index mask is the same occlusion, tail included
    mask = (torch.arange(x.shape[1], device=x.device) // win)[None]
    with torch.no_grad():
        a = attr.FeatureAblation(model).attribute(x, baselines=0.0, target=k, feature_mask=mask,
                                                  perturbations_per_eval=perturbations_per_eval)
    per_sample = a[0].detach().cpu().double().numpy()
    return Relevance(method="occlusion", target=model.classes[k], target_index=k, classes=model.classes,
                     starts=_windows(x.shape[1], win) / model.sample_rate, values=_per_window(per_sample, win, "mean"),
                     window_s=window_s, duration_s=x.shape[1] / model.sample_rate, probability=p)


def explain_time(model: ClipModel, wave: Any, method: str = "ig", **kw: Any) -> Relevance:
    """``integrated_gradients`` or ``occlusion`` by name (``METHODS``)."""
    if method == "ig":
        return integrated_gradients(model, wave, **kw)
    if method == "occlusion":
        return occlusion(model, wave, **kw)
    raise KeyError(f"unknown explanation method {method!r}; known: {list(METHODS)}")


def layer_relevance(model: ClipModel, wave: Any, *, target: str | int | None = None, n_steps: int = 32,
                    output: str = "logprob") -> LayerRelevance:
    """Which encoder layers drive the ``target`` class (see the module docstring). ``output``:
    ``"logprob"`` (the default: drops in log p stay visible when p is near 1, where a probability
    barely moves), ``"prob"`` or ``"logit"``."""
    from .model import OUTPUTS, _output

    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {list(OUTPUTS)}, got {output!r}")
    fn = lambda e: _output(model.head(e), output)  # noqa: E731
    attr = require_captum()
    x = waveform_tensor(wave).to(model.backbone.device)
    k, _ = _target(model, x, target)
    L = model.num_layers
    with torch.no_grad():
        emb = model.embed(x)
    D = emb.shape[1] // L
    mask = torch.arange(L, device=emb.device).repeat_interleave(D)[None]
    baseline = model.head.mu[None].expand_as(emb)
    with torch.no_grad():
        abl = attr.FeatureAblation(fn).attribute(emb, baselines=baseline, target=k, feature_mask=mask)
    ig = attr.IntegratedGradients(fn).attribute(emb, baselines=baseline, target=k, n_steps=n_steps)
    blocks = lambda a: a[0].detach().cpu().double().numpy().reshape(L, D)  # noqa: E731
    return LayerRelevance(target=model.classes[k], layers=tuple(f"L{i}" for i in range(L)), output=output,
                          ablation=blocks(abl)[:, 0].copy(), integrated_gradients=blocks(ig).sum(axis=1))
