"""Fine-tuning the encoder on audio: the model, its batches and datasets, its predictions.

* ``EncoderClassifier`` (``adapt.finetune.model``): a backbone with its top layers unfrozen,
  SUPERB-style layer weights and a small MLP head.
* ``PaddedAudio``, ``AudioBatch``, ``collate_audio``, ``AudioClipDataset`` (``adapt.finetune.data``).
* ``predict_audio`` (``adapt.finetune.predict``).

Continual training over audio (Avalanche benchmarks, strategies) lives in the research layers:
``scenarios.continual.audio`` and ``strategies``.
"""
from __future__ import annotations

from .data import AudioBatch, AudioClipDataset, PaddedAudio, collate_audio
from .model import LAYER_MODES, EncoderClassifier, default_device
from .predict import predict_audio

__all__ = ["EncoderClassifier", "LAYER_MODES", "default_device", "PaddedAudio", "AudioBatch", "collate_audio",
           "AudioClipDataset", "predict_audio"]
