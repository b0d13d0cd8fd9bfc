"""Embedding throughput on RAVDESS clips: per-clip loop vs length-bucketed batches vs cache hits.

For the default backbone (Whisper tiny.en) and a wav2vec2-base-sized random-init model (same
compute as the real one; weights do not matter for speed). Real-time factor = compute seconds /
audio seconds on ``--threads`` torch threads.

    .venv/bin/python -m benchmarks.throughput            # writes benchmarks/results/throughput.md
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

from adapt.audio import load_audio  # noqa: E402
from adapt.backbones import get_backbone  # noqa: E402
from adapt.embedding import EmbeddingCache, embed_layers  # noqa: E402
from scenarios.corpora import load_corpus  # noqa: E402

from ._common import provenance  # noqa: E402
from .render import publish  # noqa: E402


def wav2vec2_base_random(folder: Path):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    Wav2Vec2Model(Wav2Vec2Config()).save_pretrained(folder)  # defaults = wav2vec2-base dims (95 M params)
    return get_backbone(f"hf:{folder}", reuse=False)


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    corpus = load_corpus("ravdess")
    rng = np.random.default_rng(0)
    picks = sorted(rng.choice(len(corpus), size=args.clips, replace=False))
    waves = [load_audio(corpus.records[i].path) for i in picks]  # decode once: time the encoder, not FLAC
    audio_s = sum(w.duration_s for w in waves)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        backbones = [("whisper-tiny.en (default)", get_backbone()),
                     ("wav2vec2-base-sized, random init (hf:)", wav2vec2_base_random(Path(tmp) / "w2v"))]
        for label, bb in backbones:
            embed_layers(bb, waves[:2], cache=False)  # warm-up (allocator, kernels)
            loop = timed(lambda: embed_layers(bb, waves, cache=False, batch_size=1))
            batched = timed(lambda: embed_layers(bb, waves, cache=False, batch_size=args.batch_size))
            cache = EmbeddingCache(root=Path(tmp) / "cache")
            embed_layers(bb, waves, cache=cache, batch_size=args.batch_size)
            hit = timed(lambda: embed_layers(bb, waves, cache=cache))
            rows.append((label, loop, batched, hit))
            print(label, f"loop {loop:.2f}s batched {batched:.2f}s hit {hit:.3f}s", flush=True)
    n = args.clips
    lines = ["## Throughput: per-clip loop vs bucketed batches vs cache hits", "",
             f"{provenance()} With other jobs on the cores, absolute times are pessimistic.", "",
             f"{n} RAVDESS clips ({audio_s:.0f} s of audio, decoded beforehand), all layers, mean pooling. "
             f"Batches: up to {args.batch_size} clips, sorted by length. Cache hits include hashing the samples.", "",
             "| backbone | loop s | batched s | cache hit s | loop clips/s | batched clips/s | RTF loop | RTF batched "
             "| batched / loop speed-up | hit / batched speed-up |", "|---" * 10 + "|"]
    for label, loop, batched, hit in rows:
        lines.append(f"| {label} | {loop:.2f} | {batched:.2f} | {hit:.3f} | {n / loop:.1f} | {n / batched:.1f} | "
                     f"{loop / audio_s:.3f} | {batched / audio_s:.3f} | {loop / batched:.2f}x | {batched / hit:.0f}x |")
    lines += ["", "Targets (issue #4): batching >= 1.5x the loop; cache hit >= 100x compute. "
              + "; ".join(f"{label}: batching {'met' if loop / batched >= 1.5 else 'MISSED'}, "
                          f"cache {'met' if batched / hit >= 100 else 'MISSED'}" for label, loop, batched, hit in rows),
              "", "Notes: the wav2vec2-base-style model runs its GroupNorm CNN one clip at a time (needed for "
              "padded-batch consistency, see docs/backbones.md), so only its transformer is batched. "
              "Whisper computes log-mel per clip and batches the encoder with a key-padding mask."]
    out = publish("throughput", "\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
