"""Frame features of the frozen backbone: extraction, the per-clip frame cache, padded batches.

The sequence heads (``adapt.heads.sequence``), the HMM (``adapt.heads.hmm``) and the from-scratch
spectrogram CNN (``adapt.heads.spectrogram``) train on frames rather than pooled embeddings.

* ``extract_frames(backbone, clips, options=FrameOptions(...))``: per-clip float16 ``(L, T, D)``
  arrays, frame rate reduced by average pooling (default 4x: 12.5 Hz for Whisper), cached in a
  ``FrameCache`` (``$SER_ADAPT_CACHE/frames``, content-addressed like the embedding cache, one
  memory-mappable ``.npy`` per clip, corruption detected and recomputed).
* ``select_layers(entry, layers)``: ``(L, T, D)`` -> ``(T, F)`` (a layer, a concatenation, the mean,
  fixed weights); heads with learned layer weights take ``"all"`` and ``num_layers=L``.
* ``pad_sequences`` / ``as_padded``: variable lengths padded with zeros plus lengths (or a mask);
  never truncated silently.
* ``normalize_utterances(flat, lengths, "mean" | "meanvar")``: per-clip mean (and variance)
  normalization over time (the sequence heads' ``utterance_norm``).

Example:
    >>> import numpy as np
    >>> from adapt.backbones import get_backbone
    >>> entry = extract_frames(get_backbone("mfcc"), [np.random.randn(8000).astype("float32")], sr=16000,
    ...                        cache=False)[0]
    >>> X, lengths = pad_sequences([select_layers(entry, 0)])
    >>> X.shape, lengths.tolist()
    ((1, 13, 40), [13])
"""
from __future__ import annotations

from .batch import (UTTERANCE_NORMS, as_padded, as_ragged, lengths_to_mask, normalize_utterances, pad_rows, pad_sequences,
                    select_layers)
from .cache import FrameCache
from .extract import FrameOptions, extract_frames, reduce_rate

__all__ = ["FrameCache", "FrameOptions", "extract_frames", "reduce_rate", "pad_sequences", "select_layers",
           "as_padded", "as_ragged", "pad_rows", "lengths_to_mask", "normalize_utterances", "UTTERANCE_NORMS"]
