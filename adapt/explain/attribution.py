"""Relevance over time (integrated gradients, occlusion) and over encoder layers, with captum.

What is attributed: the probability (``ClipModel.output == "prob"``) of one class.

* ``integrated_gradients``: ``captum.attr.IntegratedGradients`` along the straight path from
  silence to the clip, on the encoder's **log-mel input** for Whisper (baseline: the log-mel of
  silence; the waveform path is numerically degenerate there, see the function) or on the
  **waveform** (baseline zeros) for other backbones; attributions are summed per window
  (``window_s``, default 100 ms), so a window's relevance is its share of
  ``p(clip) - p(silence)`` (completeness; ``Relevance.delta`` is captum's convergence delta, the
  part the quadrature missed).
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
           "window_samples", "METHODS", "require_captum"]

METHODS = ("ig", "occlusion")


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
    attributions, ``(80, frames)`` or ``(samples,)`` (IG only, else ``None``)."""

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


def integrated_gradients(model: ClipModel, wave: Any, *, target: str | int | None = None, n_steps: int = 32,
                         window_s: float = 0.1, internal_batch_size: int = 16, on: str | None = None) -> Relevance:
    """IG relevance over time of ``wave`` (``Waveform`` or 1-D array at the model's rate) for
    ``target`` (class name or index; default the predicted class), ``n_steps`` Gauss-Legendre
    points, summed per ``window_s`` window.

    ``on``: ``"mel"`` (the default for Whisper backbones: the encoder's log-mel input, from the
    log-mel of silence) or ``"wave"`` (the waveform, from zeros; the default for other backbones).
    Why not the waveform for Whisper: its front end is differentiable, but the log-mel is
    normalized to the clip's loudest bin, so along the straight path ``a * x`` the prediction
    only changes for ``a`` between about 1e-4 and 1e-3 and the quadrature misses it (on an EmoDB
    clip the convergence delta was 0.97 of a 0.99 probability gap at 24 steps; on the log-mel
    0.026 at 16 steps and 0.011 at 32). A log-mel frame ``j`` (10 ms hop) counts toward the
    window holding its first sample, ``160 j``.
    """
    attr = require_captum()
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
            base = model.mel(torch.zeros_like(x))
        a, delta = attr.IntegratedGradients(model.from_mel).attribute(
            mel, baselines=base, target=k, n_steps=n_steps, internal_batch_size=internal_batch_size,
            return_convergence_delta=True)
        raw = a[0].detach().cpu().double().numpy()                      # (80, frames)
        frame_window = (np.arange(raw.shape[1]) * 160) // win
        values = np.bincount(frame_window, weights=raw.sum(axis=0), minlength=len(starts))[:len(starts)]
    elif on == "wave":
        a, delta = attr.IntegratedGradients(model).attribute(
            x, baselines=torch.zeros_like(x), target=k, n_steps=n_steps, internal_batch_size=internal_batch_size,
            return_convergence_delta=True)
        raw = a[0].detach().cpu().double().numpy()                      # (samples,)
        values = _per_window(raw, win, "sum")
    else:
        raise KeyError(f"unknown IG input {on!r}; known: ['mel', 'wave']")
    return Relevance(method="ig", target=model.classes[k], target_index=k, classes=model.classes,
                     starts=starts / model.sample_rate, values=values, window_s=window_s,
                     duration_s=x.shape[1] / model.sample_rate, probability=p, delta=float(delta.abs().max()),
                     attributed_to=on, raw=raw)


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
