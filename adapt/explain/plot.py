"""The picture of an explanation: waveform, spectrogram, relevance over time, top cues (matplotlib).

Example:
    >>> save_png(explanation, "explain.png")     # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["save_png"]


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from . import ExplainUnavailableError

        raise ExplainUnavailableError("the explanation picture needs matplotlib: pip install 'ser-adapt[explain]'") from None
    return plt


def save_png(e: Any, path: str | Path, *, title: str | None = None) -> Path:
    """Write the four-panel PNG of an ``Explanation`` to ``path``; returns the path."""
    plt = _pyplot()
    import torch

    from ..backbones.whisper import whisper_log_mel

    x = np.asarray(e.wave.samples, np.float32)
    sr = e.wave.sample_rate
    t = np.arange(len(x)) / sr
    r = e.relevance
    fig, ax = plt.subplots(4, 1, figsize=(9, 9), gridspec_kw={"height_ratios": [1, 1.3, 1, 1.4]})
    p = e.prediction
    fig.suptitle(title or f"{p.label} ({p.confidence:.2f}) — {'integrated gradients' if r.method == 'ig' else r.method}")
    ax[0].plot(t, x, lw=0.4, color="0.3")
    ax[0].set_xlim(0, r.duration_s)
    ax[0].set_ylabel("waveform")
    mel = whisper_log_mel(torch.from_numpy(x)).numpy()
    ax[1].imshow(mel, origin="lower", aspect="auto", extent=(0, mel.shape[1] * 160 / sr, 0, mel.shape[0]), cmap="magma")
    ax[1].set_xlim(0, r.duration_s)
    ax[1].set_ylabel("log-mel band")
    colors = np.where(r.values >= 0, "tab:red", "tab:blue")
    ax[2].bar(r.starts, r.values, width=r.ends - r.starts, align="edge", color=colors)
    for s, e_, _ in r.top_segments(3):
        for a in (ax[0], ax[2]):
            a.axvspan(s, e_, color="gold", alpha=0.35, lw=0)
    ax[2].axhline(0, color="0.5", lw=0.5)
    ax[2].set_xlim(0, r.duration_s)
    ax[2].set_ylabel(f"relevance ({p.label})")
    ax[2].set_xlabel("time (s)")
    if e.cues:
        names = [f"{n} [{fam}]" for n, fam, _, _ in e.cues][::-1]
        vals = [v for *_, v in e.cues][::-1]
        ax[3].barh(names, vals, color="tab:green")
        ax[3].set_xlabel(f"Shapley value, p({e.cue_target}) of the eGeMAPS cue model")
        ax[3].tick_params(axis="y", labelsize=7)
    else:
        L = e.layers
        ax[3].bar(L.layers, L.ablation, color="tab:purple")
        ax[3].set_ylabel(f"drop in {'log p' if L.output == 'logprob' else L.output} when ablated")
        ax[3].set_xlabel("encoder layer")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
