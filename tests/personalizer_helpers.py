"""Helpers shared by the personalizer / profile / service tests (not a test module).

``LogMelEmbedder`` is a cheap stand-in backbone: mean and standard deviation of 64 log-mel bands
(128 dims). It lets store and service tests run without the real encoder; tests that need the
real default backbone say so and use ``adapt.get_backbone()``.
"""
from __future__ import annotations

import threading

import numpy as np

from adapt.personal_model import GlobalHead


class LogMelEmbedder:
    """Callable ``list[Waveform] -> [N, 128]`` float32 (log-mel band means and stds)."""

    dim = 128

    def __init__(self) -> None:
        import torch
        import torchaudio

        self._torch = torch
        self._mel = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=400, hop_length=160, n_mels=64)
        self._lock = threading.Lock()  # the transform's buffers are shared; keep threads apart
        self.calls = 0

    def __call__(self, waves) -> np.ndarray:
        out = []
        with self._lock, self._torch.inference_mode():
            self.calls += 1
            for w in waves:
                m = self._mel(self._torch.from_numpy(np.ascontiguousarray(w.samples)))
                lm = self._torch.log(m + 1e-6)
                out.append(self._torch.cat([lm.mean(1), lm.std(1)]).numpy())
        return np.stack(out).astype(np.float32)


def fit_head(corpus, embedder, speakers, emotions=None) -> GlobalHead:
    """A GlobalHead fitted on ``speakers`` of ``corpus`` with ``embedder``."""
    from adapt.audio import load_audio

    sub = corpus.filter(speakers=speakers, emotions=emotions)
    X = embedder([load_audio(r.path) for r in sub])
    return GlobalHead.fit(X, np.array(sub.labels()), speakers=np.array([r.speaker for r in sub]), linear=True,
                          info={"backbone": "test-logmel", "corpus": corpus.name})
