"""The research layer: corpora, speaker-disjoint splits, feature tables, few-shot protocols,
continual scenarios (Avalanche benchmarks), the benchmark runner and the research commands.

It may import ``adapt`` (the runtime) and ``strategies``; neither imports it.
"""
from __future__ import annotations

from .corpora import (DEV_CORPORA, SHARED_CORPORA, ClipRecord, Corpus, available_corpora, data_root,
                      harmonize_emotion, load_corpus)

__all__ = ["ClipRecord", "Corpus", "available_corpora", "data_root", "harmonize_emotion", "load_corpus",
           "SHARED_CORPORA", "DEV_CORPORA"]
