"""Corpora, speaker-disjoint splits, few-shot protocols and continual scenarios (Avalanche benchmarks)."""
from __future__ import annotations

from .corpora import ClipRecord, Corpus, available_corpora, data_root, harmonize_emotion, load_corpus

__all__ = ["ClipRecord", "Corpus", "available_corpora", "data_root", "harmonize_emotion", "load_corpus"]
