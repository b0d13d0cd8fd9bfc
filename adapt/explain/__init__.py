"""Explanations of single predictions: relevance over time, over encoder layers, and named cues.

* ``adapt.explain.torch_head`` — ``TorchHead``: a differentiable torch copy of the global head's
  scoring for one user (``scoring_params``), equal to ``GlobalHead.predict_proba`` within 1e-4.
* ``adapt.explain.model`` — ``ClipModel`` (waveform -> probabilities: backbone + pooling + head)
  and ``for_user`` (one for a ``Personalizer`` user, or the unenrolled model).
* ``adapt.explain.attribution`` — ``integrated_gradients`` and ``occlusion`` over time (captum;
  a ``Relevance`` curve per 100 ms window of the *waveform*), ``layer_relevance`` (which encoder
  layers matter).
* ``adapt.explain.faithfulness`` — deletion / insertion curves against random relevance.
* ``adapt.explain.cues`` — the interpretable pipeline: ``CueModel`` on the 88 eGeMAPS features,
  Shapley values per clip and permutation importance per data set, with cue families.
* ``adapt.explain.plot`` — the PNG of ``ser-adapt explain`` (waveform, spectrogram, relevance,
  top cues).

``explain_clip`` does what ``ser-adapt explain`` prints. captum is an optional dependency
(``pip install 'ser-adapt[explain]'``); without it the functions that need it raise
``ExplainUnavailableError`` with that hint. Nothing here imports captum or matplotlib at import time.

Example:
    >>> from adapt import Personalizer                                    # doctest: +SKIP
    >>> from adapt.explain import explain_clip
    >>> e = explain_clip(Personalizer.default(), "clip.wav", method="ig")  # doctest: +SKIP
    >>> e.prediction.label, e.relevance.top_segments(3)                   # doctest: +SKIP
    ('angry', [(1.1, 1.2, 0.41), (1.6, 1.7, 0.22), (2.7, 2.8, 0.12)])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import SerAdaptError

__all__ = ["ExplainUnavailableError", "Explanation", "explain_clip"]


class ExplainUnavailableError(SerAdaptError, ImportError):
    """An optional dependency of ``adapt.explain`` (captum, matplotlib) is not installed."""


@dataclass(frozen=True)
class Explanation:
    """What ``explain_clip`` found for one clip: the ``prediction`` (``adapt.Prediction``), the
    ``relevance`` over time, the ``layers`` (``LayerRelevance``), ``cues`` (``(name, family,
    z-score, Shapley value)`` rows of the eGeMAPS cue model, for ``cue_target``; empty with a
    ``cue_note`` when unavailable), and the clip itself (``wave``)."""

    prediction: Any
    relevance: Any
    layers: Any
    cues: list
    cue_target: str | None
    cue_note: str
    wave: Any


def explain_clip(personalizer: Any, clip: Any, *, user: str | None = None, method: str = "ig", n_steps: int = 32,
                 window_s: float = 0.1, top_cues: int = 5, cue_model: Any = None, sr: int | None = None) -> Explanation:
    """Explain the prediction of ``personalizer`` for ``user`` (None: unenrolled) on ``clip``.

    ``method``: ``"ig"`` (integrated gradients, ``n_steps`` points) or ``"occlusion"``; relevance
    per ``window_s`` window. ``cue_model``: a ``CueModel`` or path (default: the shipped one); the
    cues explain the cue model's probability of the predicted emotion (of its own prediction when
    it does not know that emotion). Cues are skipped, with a note, when openSMILE is missing.
    """
    from .attribution import explain_time, layer_relevance
    from .model import for_user

    model, wave, pred = for_user(personalizer, user, clip, sr=sr)
    kw = {"n_steps": n_steps} if method == "ig" else {}
    relevance = explain_time(model, wave, method, target=pred.label, window_s=window_s, **kw)
    layers = layer_relevance(model, wave, target=pred.label, n_steps=n_steps)
    cues, target, note = _cues(wave, pred.label, top_cues, cue_model)
    return Explanation(prediction=pred, relevance=relevance, layers=layers, cues=cues, cue_target=target,
                       cue_note=note, wave=wave)


def _cues(wave: Any, label: str, k: int, cue_model: Any) -> tuple[list, str | None, str]:
    from ..errors import BackboneNotAvailableError
    from .cues import CueModel

    if k <= 0:
        return [], None, "cues not requested"
    if cue_model is None:
        from .cues import default_cue_model_path

        if not default_cue_model_path().is_file():
            return [], None, "cues unavailable: no cue model shipped (python -m benchmarks.explain --write-cue-model)"
    model = cue_model if isinstance(cue_model, CueModel) else CueModel.load(cue_model)
    try:
        from ..backbones import get_backbone
        from ..embedding import embed

        x = embed(get_backbone("egemaps"), [wave], cache=False)[0]
    except BackboneNotAvailableError as exc:
        return [], None, f"cues unavailable: {exc}"
    if label in model.classes:
        target, note = label, f"cues for {label!r} (eGeMAPS cue model)"
    else:
        target = str(model.predict(x)[0])
        note = f"the cue model does not know {label!r}; cues for its own prediction {target!r}"
    return model.top_cues(x, target, k=k), target, note
