"""The default encoder on torch vs onnxruntime fp32 vs onnxruntime dynamic int8: real-time factor on
``--threads`` threads, and what int8 costs in UA on every shared corpus.

Speed: ``--clips`` clips drawn evenly from the six shared corpora (seed 0), decoded once. *Per
clip* is one forward per clip (the Personalizer's request path): the runtimes take turns clip by
clip, ``--repeats`` times, and each clip's fastest forward counts (so a burst of load from other
jobs hits every runtime alike). *embed()* is ``adapt.embed`` without the cache (torch:
length-bucketed batches of 16; onnxruntime: clip by clip, the graph takes one waveform), fastest
of ``--repeats`` interleaved rounds. RTF = seconds / audio seconds. The
1-minute load average is recorded around every runtime's rounds; numbers measured under load are
pessimistic.

UA: speaker-independent, per corpus. Speakers are split ``speaker_kfold(5, seed=0)``; on the
first ``--folds`` folds (default all 5) a ``GlobalHead`` is fit on the *training* speakers' torch
embeddings (the cached default table) and scores the held-out speakers' clips embedded by torch
and by int8 (and by onnxruntime fp32 on the first fold); unenrolled path: no clip of the test
speaker is used. That is the deployment case: a head trained on fp32 embeddings meets int8 ones.
Nothing is tuned here; the int8 recipe (``adapt.onnx.export.quantize_int8``) was chosen on
training speakers' clips only.

    .venv/bin/python -m benchmarks.onnx            # writes benchmarks/results/onnx.md
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from adapt.audio import load_audio
from adapt.backbones import get_backbone
from adapt.embedding import embed
from adapt.metrics import unweighted_average_recall
from adapt.personal import GlobalHead
from scenarios.corpora import load_corpus
from scenarios.splits import speaker_kfold
from scenarios.tables import corpus_features

from ._common import SHARED_CORPORA, load_average, provenance
from .render import publish

RUNTIMES = (("torch fp32", "whisper-tiny.en"), ("onnxruntime fp32", "whisper-tiny.en@onnx"),
            ("onnxruntime int8", "whisper-tiny.en@onnx-int8"))


def _clips(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    per = max(1, n // len(SHARED_CORPORA))
    out = []
    for name in SHARED_CORPORA:
        recs = load_corpus(name).records
        out += [load_audio(recs[i].path).samples for i in sorted(rng.choice(len(recs), size=per, replace=False))]
    return out


def _timed(fn, clock=time.perf_counter) -> float:
    t = clock()
    fn()
    return clock() - t


def speed(backbones: dict, waves: list[np.ndarray], repeats: int, clock=time.perf_counter) -> list[dict]:
    """RTF per runtime: per clip (each clip's fastest of ``repeats`` forwards, summed; the runtimes
    take turns clip by clip, so a burst of load from other jobs hits all of them alike) and through
    ``embed`` (fastest of ``repeats`` interleaved rounds)."""
    audio_s = sum(len(w) for w in waves) / 16_000
    tensors = [torch.from_numpy(w)[None] for w in waves]
    best = {label: np.full(len(waves), np.inf) for label in backbones}
    embed_s = {label: [] for label in backbones}
    loads: dict[str, list] = {label: [] for label in backbones}
    with torch.inference_mode():
        for bb in backbones.values():   # warm-up: first calls allocate and (onnxruntime) plan
            for x in tensors[:3]:
                bb(x)
        for _ in range(repeats):
            for k, x in enumerate(tensors):
                for label, bb in backbones.items():
                    best[label][k] = min(best[label][k], _timed(lambda: bb(x), clock))
            for label, bb in backbones.items():
                loads[label].append(load_average())
                embed_s[label].append(_timed(lambda: embed(bb, waves, sr=16_000, cache=False), clock))
                loads[label].append(load_average())
    out = []
    for label in backbones:
        ld = [v for v in loads[label] if v is not None]
        out.append({"runtime": label, "per_clip": float(best[label].sum()) / audio_s, "embed": min(embed_s[label]) / audio_s,
                    "load": (min(ld), max(ld)) if ld else None})
    return out


def ua_cost(backbones: dict, folds: int) -> list[dict]:
    rows = []
    for name in SHARED_CORPORA:
        table = corpus_features(name)
        preds = {label: [] for label in backbones}
        truth = []
        first = 0   # clips of the first fold: where the onnxruntime fp32 column is scored too
        for k, (train, test) in enumerate(speaker_kfold(table.speakers, 5, seed=0)[:folds]):
            head = GlobalHead.fit(table.X[train], table.y[train], speakers=table.speakers[train])
            paths = [str(p) for p in table.paths[test]]
            truth += table.y[test].tolist()
            first = first or len(truth)
            for label, bb in backbones.items():
                if label == "onnxruntime fp32" and k > 0:
                    continue
                X = table.X[test] if label == "torch fp32" else embed(bb, paths)
                classes, P = head.predict_proba(X)
                preds[label] += [classes[i] for i in P.argmax(axis=1)]
        ua = {label: unweighted_average_recall(truth[:len(p)], p) for label, p in preds.items()}
        ua["torch fp32, fold 1"] = unweighted_average_recall(truth[:first], preds["torch fp32"][:first])
        agree = float(np.mean(np.array(preds["onnxruntime int8"]) == np.array(preds["torch fp32"])))
        rows.append({"corpus": name, "clips": len(truth), "first": first, **ua, "agree": agree})
        print(name, rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=48, help="clips for the speed rounds (spread over six corpora)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--folds", type=int, default=5, help="speaker folds (of 5) scored per corpus for the UA cost "
                    "(onnxruntime fp32: the first fold only)")
    ap.add_argument("--skip-ua", action="store_true", help="speed only")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from adapt.onnx import OnnxBackbone

    torch_bb = get_backbone()
    backbones = {"torch fp32": torch_bb}
    for label, name in RUNTIMES[1:]:
        exported = get_backbone(name)   # exported into <cache>/onnx on first use
        backbones[label] = OnnxBackbone(exported.path, num_threads=args.threads, expected_source=torch_bb.spec.fingerprint)
    waves = _clips(args.clips)
    audio_s = sum(len(w) for w in waves) / 16_000
    fast = speed(backbones, waves, args.repeats)
    print(fast, flush=True)
    # the same on one thread in process CPU time: what the compute costs, whatever the other jobs do
    torch.set_num_threads(1)
    single = {"torch fp32": torch_bb, **{label: OnnxBackbone(bb.path, num_threads=1) for label, bb in backbones.items()
                                         if label != "torch fp32"}}
    cpu = speed(single, waves, args.repeats, clock=time.process_time)
    torch.set_num_threads(args.threads)
    print(cpu, flush=True)
    for row, c in zip(fast, cpu):
        row["cpu_per_clip"], row["cpu_embed"] = c["per_clip"], c["embed"]
    ua = [] if args.skip_ua else ua_cost(backbones, args.folds)
    publish("onnx", render(fast, ua, audio_s, len(waves), args, backbones))


def render(fast: list[dict], ua: list[dict], audio_s: float, n: int, args, backbones: dict) -> str:
    base = next(r for r in fast if r["runtime"] == "torch fp32")
    sizes = {label: (bb.path.stat().st_size / 2**20 if hasattr(bb, "path") else None) for label, bb in backbones.items()}
    lines = ["## ONNX export: torch vs onnxruntime fp32 vs int8", "", provenance(), "",
             f"Speed: {n} clips ({audio_s:.0f} s of audio) from the six shared corpora, {args.threads} threads; per "
             f"clip: the runtimes take turns clip by clip and each clip's fastest of {args.repeats} forwards counts; "
             f"embed(): fastest of {args.repeats} interleaved rounds. RTF = compute seconds / audio seconds (lower is faster); "
             "speed-up against torch's per-clip and embed() RTF. Load = 1-minute load average around the rounds "
             "(the cores are shared; numbers under load are pessimistic).", "",
             "CPU columns: the same rounds on 1 thread, timed in process CPU seconds per audio second (time the "
             "process itself computed, so other jobs on the cores change it little).", "",
             "| runtime | model file | RTF per clip | speed-up | RTF embed() | speed-up | load | CPU per clip, 1 thread | "
             "speed-up | CPU embed(), 1 thread | speed-up |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in fast:
        size = sizes[r["runtime"]]
        load = "n/a" if r["load"] is None else f"{r['load'][0]:.1f}-{r['load'][1]:.1f}"
        lines.append(f"| {r['runtime']} | {'(torch state dict)' if size is None else f'{size:.1f} MiB'} | "
                     f"{r['per_clip']:.4f} | {base['per_clip'] / r['per_clip']:.2f}x | {r['embed']:.4f} | "
                     f"{base['embed'] / r['embed']:.2f}x | {load} | {r['cpu_per_clip']:.4f} | "
                     f"{base['cpu_per_clip'] / r['cpu_per_clip']:.2f}x | {r['cpu_embed']:.4f} | "
                     f"{base['cpu_embed'] / r['cpu_embed']:.2f}x |")
    if ua:
        lines += ["", f"UA, speaker-independent: a GlobalHead fit on the training speakers' torch embeddings "
                  f"(speaker_kfold(5, seed=0), {args.folds} fold(s), every fold's test speakers pooled) scores the "
                  "held-out speakers' clips (unenrolled). onnxruntime fp32 is scored on the first fold only (its "
                  "embeddings equal torch's within 1e-5), next to torch on the same clips. Agreement = share of "
                  "clips where int8 predicts what torch predicts.", "",
                  "| corpus | test clips | torch fp32 | onnxruntime int8 | int8 - torch (points) | int8/torch agreement "
                  "| fold-1 clips | torch fp32, fold 1 | onnxruntime fp32, fold 1 |", "|---|---|---|---|---|---|---|---|---|"]
        for r in ua:
            d = 100 * (r["onnxruntime int8"] - r["torch fp32"])
            lines.append(f"| {r['corpus']} | {r['clips']} | {r['torch fp32']:.3f} | {r['onnxruntime int8']:.3f} | "
                         f"{d:+.1f} | {r['agree']:.3f} | {r['first']} | {r['torch fp32, fold 1']:.3f} | "
                         f"{r['onnxruntime fp32']:.3f} |")
    lines += ["", _verdict(fast, ua, base), ""]
    return "\n".join(lines)


def _verdict(fast: list[dict], ua: list[dict], base: dict) -> str:
    fp32 = next(r for r in fast if r["runtime"] == "onnxruntime fp32")
    int8 = next(r for r in fast if r["runtime"] == "onnxruntime int8")

    def ratio(row, wall: bool) -> float:   # against torch's faster mode, onnxruntime's faster mode
        keys = ("per_clip", "embed") if wall else ("cpu_per_clip", "cpu_embed")
        return min(base[k] for k in keys) / min(row[k] for k in keys)

    def said(x: float, target: float) -> str:
        return f"{'met' if x >= target else 'missed'} ({x:.2f}x)"

    parts = [f"Targets (each runtime's faster mode against torch's faster mode; 2-thread wall clock / 1-thread CPU "
             f"time): onnxruntime fp32 at least as fast as torch: {said(ratio(fp32, True), 1)} / "
             f"{said(ratio(fp32, False), 1)}; int8 at least 1.5x faster than torch fp32: "
             f"{said(ratio(int8, True), 1.5)} / {said(ratio(int8, False), 1.5)}"]
    if ua:
        worst = min(ua, key=lambda r: r["onnxruntime int8"] - r["torch fp32"])
        lost = 100 * (worst["torch fp32"] - worst["onnxruntime int8"])
        parts.append(f"int8 loses at most 1 UA point on every shared corpus: {'met' if lost <= 1 else 'missed'} "
                     f"(worst {worst['corpus']}: {lost:.1f} points lost)")
    return "; ".join(parts) + "."


if __name__ == "__main__":
    main()
