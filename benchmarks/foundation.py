"""Foundation benchmark: audio loading speed and the sizes of the evaluation protocols.

Writes ``benchmarks/results/foundation.md`` and re-renders BENCHMARKS.md.

    .venv/bin/python -m benchmarks.foundation            # all clips of the four corpora
    .venv/bin/python -m benchmarks.foundation --quick    # 100 clips per corpus
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from adapt.audio import load_audio
from adapt.errors import TooFewClipsError
from scenarios.corpora import available_corpora, load_corpus
from scenarios.splits import personalization_split, speaker_kfold

from ._common import DEV_CORPORA, provenance
from .render import publish

SHOTS = (1, 2, 4, 8)


def loading_table(names: list[str], limit: int | None) -> list[str]:
    rows = ["| corpus | clips | audio (s) | wall (s) | clips/s | audio s per wall s |", "|---|---|---|---|---|---|"]
    for name in names:
        corpus = load_corpus(name)
        records = list(corpus)[:limit] if limit else list(corpus)
        start = time.perf_counter()
        total = sum(load_audio(r.path).duration_s for r in records)
        wall = time.perf_counter() - start
        rows.append(f"| {name} | {len(records)} | {total:.0f} | {wall:.2f} | {len(records) / wall:.0f} | {total / wall:.0f} |")
    return rows


def resample_table(seconds: float = 60.0) -> list[str]:
    rows = ["| input rate (Hz) | method | 60 s of audio: wall (s) | realtime factor |", "|---|---|---|---|"]
    rng = np.random.default_rng(0)
    for rate in (8000, 22050, 44100, 48000, 7919):
        x = (0.1 * rng.standard_normal(int(seconds * rate))).astype(np.float32)
        load_audio(x[: rate], sr=rate)  # warm-up (kernel construction, imports)
        start = time.perf_counter()
        load_audio(x, sr=rate)
        wall = time.perf_counter() - start
        method = "FFT (scipy)" if rate == 7919 else "windowed sinc (torchaudio)"
        rows.append(f"| {rate} | {method} | {wall:.3f} | {seconds / wall:.0f}x |")
    return rows


def _split_stats(spk, lab, txt, speakers, k, shortfall):
    enroll, test, reasons = [], [], {}
    for target in speakers:
        try:
            e, t = personalization_split(spk, lab, target, shots=k, text_ids=txt, shortfall=shortfall, seed=0)
        except TooFewClipsError as err:
            msg = str(err)
            key = ("too few clips of an emotion" if "too few clips" in msg
                   else "emotion only in the test sentence" if "only in the sentences" in msg
                   else "nothing left for test")
            reasons[key] = reasons.get(key, 0) + 1
            continue
        enroll.append(len(e))
        test.append(len(t))
    return enroll, test, reasons


def protocol_table(names: list[str]) -> list[str]:
    rows = ["| corpus | K shots | sentence-disjoint | eligible targets (strict) | why not | "
            "eligible with the cap | median enroll / test clips (cap) |",
            "|---|---|---|---|---|---|---|"]
    for name in names:
        corpus = load_corpus(name)
        spk = np.array([r.speaker for r in corpus], dtype=object)
        lab = np.array(corpus.labels(), dtype=object)
        txt = np.array([r.text_id for r in corpus], dtype=object)
        disjoint = any(t is not None for t in txt)
        n = len(corpus.speakers)
        for k in SHOTS:
            strict, _, reasons = _split_stats(spk, lab, txt, corpus.speakers, k, "fail")
            enroll, test, _ = _split_stats(spk, lab, txt, corpus.speakers, k, "cap")
            why = ", ".join(f"{r}: {v}" for r, v in sorted(reasons.items())) or "-"
            sizes = f"{np.median(enroll):.0f} / {np.median(test):.0f}" if enroll else "-"
            rows.append(f"| {name} | {k} | {'yes' if disjoint else 'no (no fixed texts)'} | {len(strict)}/{n} | "
                        f"{why} | {len(enroll)}/{n} | {sizes} |")
    return rows


def kfold_table(names: list[str]) -> list[str]:
    rows = ["| corpus | speakers | folds | test clips per fold (seed 0) |", "|---|---|---|---|"]
    for name in names:
        corpus = load_corpus(name)
        spk = [r.speaker for r in corpus]
        k = min(5, len(corpus.speakers))
        sizes = [len(te) for _, te in speaker_kfold(spk, k, seed=0)]
        rows.append(f"| {name} | {len(corpus.speakers)} | {k} | {', '.join(map(str, sizes))} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="time 100 clips per corpus instead of all")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # the machine's 2 cores are shared; report single-thread numbers
    names = [n for n in DEV_CORPORA if n in available_corpora()]
    if not names:
        sys.exit("no corpora found (set $SER_ADAPT_DATA)")
    parts = [
        "## Foundation: audio loading and protocol sizes", "",
        "### `load_audio` on the shared corpora (16 kHz FLAC: decode + validation, no resampling)", "",
        *loading_table(names, 100 if args.quick else None), "",
        "### Resampling 60 s of mono audio to 16 kHz", "",
        *resample_table(), "",
        "### Personalization protocol: which target speakers allow K shots per emotion",
        "",
        "`personalization_split(speakers, labels, target, shots=K, text_ids=..., sentence_disjoint=True, seed=0)` "
        "for every speaker of each corpus. Enrollment = K clips of every emotion the target has; test = the target's "
        "clips of other sentences (RAVDESS, EmoDB, EMOVO) or all remaining clips (URDU, no fixed texts). "
        "`shortfall=\"cap\"` enrolls up to K clips per emotion from at most half of the speaker's sentences (split by clip: one clip of each emotion stays for test).", "",
        *protocol_table(names), "",
        "### Speaker-disjoint k-fold balance", "",
        *kfold_table(names), "",
    ]
    parts[2:2] = [provenance(), ""]
    print("\n".join(parts))
    publish("foundation", "\n".join(parts))


if __name__ == "__main__":
    main()
