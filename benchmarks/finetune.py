"""Fine-tuning the encoder on audio (adapt.finetune) -> benchmarks/results/finetune.md.

1. Time: one training epoch of ``EncoderClassifier`` on the default Whisper tiny.en over 64
   RAVDESS clips (whole clips, batch 8, Adam), for ``unfreeze_top`` 0, 1 and 2, plus inference
   over the same clips. This is what a CPU-only user pays; real fine-tuning wants a GPU.
2. A small continual run over audio (``--continual``): language-incremental RAVDESS -> EmoDB on the
   6 emotions both share, speakers held out exactly as the embeddings path does
   (``scenarios.continual.language_incremental``, seed 0), ``shots`` training clips per class per
   experience, clips cropped to 3 s, Naive / EWC / Replay / Joint with ``unfreeze_top=1``. UA per
   experience on the held-out speakers. Options are the registry defaults (lr 1e-3, EWC lambda
   100), fixed before the run; nothing is tuned on test speakers.

    .venv/bin/python -m benchmarks.finetune                 # timing only (~2-4 min on 2 cores)
    .venv/bin/python -m benchmarks.finetune --continual     # + the continual run (~5-10 min)
"""
from __future__ import annotations

import argparse
import time

from ._common import provenance
from .render import publish


def time_epochs(n_clips: int, unfreeze: list[int], batch_size: int) -> list[dict]:
    import numpy as np
    import torch

    from adapt.backbones import get_backbone
    from adapt.finetune import EncoderClassifier
    from adapt.finetune import AudioClipDataset, collate_audio
    from scenarios.corpora import load_corpus

    rav = load_corpus("ravdess")
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(rav), size=n_clips, replace=False))
    emotions = sorted({rav[i].emotion for i in idx})
    ds = AudioClipDataset(paths=[rav[i].path for i in idx], labels=[emotions.index(rav[i].emotion) for i in idx])
    items = [ds[i] for i in range(len(ds))]  # decode once: the timing is the model's
    seconds = sum(len(w) for w, _ in items) / 16_000
    batches = [collate_audio(items[s:s + batch_size]) for s in range(0, len(items), batch_size)]
    rows = []
    for k in unfreeze:
        torch.manual_seed(0)
        model = EncoderClassifier(backbone=get_backbone(None, reuse=False), num_classes=len(emotions),
                                  unfreeze_top=k, device="cpu")
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        model.train()
        t0 = time.perf_counter()
        for b in batches:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(b.waveforms, b.lengths), b.labels)
            loss.backward()
            opt.step()
        train_s = time.perf_counter() - t0
        model.eval()
        t0 = time.perf_counter()
        with torch.no_grad():
            for b in batches:
                model(b.waveforms, b.lengths)
        infer_s = time.perf_counter() - t0
        rows.append({"unfreeze_top": k, "trainable": trainable, "clips": len(items), "audio_s": seconds,
                     "epoch_s": train_s, "infer_s": infer_s})
        print(rows[-1], flush=True)
    return rows


def continual(shots: int, epochs: int, strategies: list[str], lr: float) -> tuple[list[dict], object]:
    from adapt.backbones import get_backbone
    from adapt.finetune import EncoderClassifier
    from scenarios.continual import language_incremental
    from scenarios.continual.audio import audio_scenario
    from scenarios.runner import run_one
    from scenarios.tables import FeatureTable

    table = FeatureTable.from_clips(["ravdess", "emodb"])
    audio = audio_scenario(language_incremental(table, normalize="none", shots=shots, seed=0), table, max_seconds=3.0)
    runs = []
    for name in strategies:
        opts = {"epochs": epochs, "batch_size": 8, "eval_batch_size": 16, "lr": lr}
        if name == "replay":
            opts["mem_size"] = 4 * shots
        rec = run_one(audio, name, seed=0, strategy_opts=opts,
                        model_factory=lambda: EncoderClassifier(backbone=get_backbone(None, reuse=False),
                                                                num_classes=len(audio.classes), unfreeze_top=1,
                                                                device="cpu"))
        runs.append(rec)
        print(name, rec["matrix"], round(rec["wall_time_s"], 1), flush=True)
    return runs, audio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--continual", action="store_true")
    ap.add_argument("--shots", type=int, default=24)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--strategies", default="naive,ewc,replay,joint")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rows = time_epochs(args.clips, [0, 1, 2], args.batch_size)
    runs, audio = continual(args.shots, args.epochs, args.strategies.split(","), args.lr) if args.continual else ([], None)
    out = [
        "## Fine-tuning the encoder on audio (Whisper tiny.en, top layers unfrozen)", "",
        f"{provenance()} These are CPU numbers; fine-tuning is meant for a GPU.", "",
        f"### One epoch over {rows[0]['clips']} RAVDESS clips ({rows[0]['audio_s']:.0f} s of audio, whole clips, "
        f"batch {args.batch_size}, Adam, decoded beforehand)", "",
        "| unfreeze_top | trainable parameters | train epoch s | clips/s (train) | inference pass s |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(f"| {r['unfreeze_top']} | {r['trainable']:,} | {r['epoch_s']:.1f} | {r['clips'] / r['epoch_s']:.1f} "
                   f"| {r['infer_s']:.1f} |")
    out += ["", "Trainable parameters: the head (MLP, 256 hidden) and the 5 softmax layer weights, plus the top "
            "blocks (and the final layer norm) when unfrozen. unfreeze_top=0 runs the encoder without autograd."]
    if runs:
        names = list(audio.experience_names)
        out += ["", f"### Continual over audio: language-incremental {' -> '.join(names)}, unfreeze_top=1", "",
                f"Seed 0, classes {', '.join(audio.classes)}; {args.shots} training clips per class per experience "
                f"(`shots`), clips cropped to 3 s, {args.epochs} epochs, batch 8, lr {args.lr:g}, EWC lambda 100 (registry default), replay "
                f"buffer {4 * args.shots}. Held-out test speakers: "
                + "; ".join(f"{n}: {', '.join(s)}" for n, s in zip(names, audio.test_speakers)) + ".", "",
                "| strategy | " + " | ".join(f"UA {n} after last" for n in names)
                + " | avg UA | forgetting | wall s |", "|---" * (len(names) + 4) + "|"]
        for r in runs:
            # Joint trains once on everything: its matrix repeats one row, forgetting is 0 by construction
            f = "—" if r["forgetting"] is None or r["strategy"] == "joint" else f"{100 * r['forgetting']:.1f}"
            out.append(f"| {r['strategy']} | " + " | ".join(f"{v:.3f}" for v in r["matrix"][-1])
                       + f" | {r['average_accuracy']:.3f} | {f} | {r['wall_time_s']:.0f} |")
        out += ["", "Forgetting in UA points (negative: UA on an earlier experience rose later). One seed and "
                "few clips: these numbers are a working-path check, not a comparison of strategies (the "
                "embeddings path in the continual section is the benchmark)."]
    publish("finetune", "\n".join(out) + "\n")


if __name__ == "__main__":
    main()
