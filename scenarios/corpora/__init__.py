"""Emotional speech corpora: the shared format, loaders, file-name rules, and download recipes.

* ``load_corpus`` / ``Corpus`` / ``ClipRecord`` (``scenarios.corpora.corpus``): a corpus folder
  (``audio/`` + ``metadata.csv``) under the data root (``$SER_ADAPT_DATA``, else ``../shared/data``).
* ``TEXT_ID_RULES`` and the per-corpus parsers (``scenarios.corpora.filenames``).
* ``SOURCES`` / ``prepare`` (``scenarios.corpora.sources``) and the resumable, checksummed
  ``download`` (``scenarios.corpora.download``): fetch and convert public corpora.

The emotion vocabulary is the runtime's (``adapt.labels``).
"""
from __future__ import annotations

from adapt.labels import CANONICAL_EMOTIONS, EMOTION_ALIASES, harmonize_emotion

from .corpus import DATA_ENV, ClipRecord, Corpus, available_corpora, data_root, load_corpus
from .filenames import TEXT_ID_RULES
from .sources import SOURCES, CorpusSource, convert, get_source, prepare

#: the six corpora in ``../shared/data`` (see its README.md)
SHARED_CORPORA: tuple[str, ...] = ("ravdess", "emodb", "emovo", "urdu", "rcebrian_es", "indianemospeech")
#: the four corpora of the first release's benchmarks (language-incremental order)
DEV_CORPORA: tuple[str, ...] = ("ravdess", "emodb", "emovo", "urdu")

__all__ = ["ClipRecord", "Corpus", "load_corpus", "data_root", "available_corpora", "DATA_ENV", "SHARED_CORPORA",
           "DEV_CORPORA", "CANONICAL_EMOTIONS", "EMOTION_ALIASES", "harmonize_emotion", "TEXT_ID_RULES",
           "SOURCES", "CorpusSource", "get_source", "prepare", "convert"]
