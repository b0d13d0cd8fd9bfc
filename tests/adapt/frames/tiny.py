"""A tiny real subset for the frame tests: Whisper tiny.en frames of a few EmoDB and EMOVO clips.

Frames come through the shared frame cache (``$SER_ADAPT_CACHE/frames``), so after the first run
(or the sequence benchmark) loading them is a cache hit.
"""
from __future__ import annotations

import functools

import numpy as np

EMOTIONS = ("angry", "happy", "neutral", "sad")


@functools.lru_cache(maxsize=None)
def tiny_records(per_emotion: int = 6, corpora: tuple[str, ...] = ("emodb", "emovo")):
    """``per_emotion`` clips of each of four emotions per corpus, from two speakers each."""
    from scenarios.corpora import load_corpus

    out = []
    for name in corpora:
        recs = load_corpus(name).records
        speakers = sorted({r.speaker for r in recs})[:2]
        for e in EMOTIONS:
            for s in speakers:
                out += [r for r in recs if r.emotion == e and r.speaker == s][: per_emotion // 2]
    return tuple(out)


@functools.lru_cache(maxsize=None)
def tiny_frames():
    """``(entries (L, T, D) float16 per clip, labels, corpora, speakers)`` of ``tiny_records()``."""
    from adapt.frames import extract_frames

    recs = tiny_records()
    frames = extract_frames(None, [r.path for r in recs], num_threads=1)
    return (frames, np.array([r.emotion for r in recs]), np.array([r.corpus for r in recs]),
            np.array([r.speaker for r in recs]))
