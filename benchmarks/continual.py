"""Continual benchmarks on the four shared corpora -> benchmarks/results/continual.md.

Speaker-, language- and class-incremental scenarios (``scenarios.continual``) over RAVDESS, EmoDB,
EMOVO and URDU embeddings (offline Whisper tiny.en, all layers; cached by ``corpus_features``),
every registry strategy x 3 seeds (each seed re-draws the speaker split). Nothing is chosen on
test speakers: the protocol is the library's ``scenarios.continual.protocol.run_tuned_benchmark``
(what ``ser-adapt bench --tune`` runs): per seed, the embedding normalization (per speaker vs per
corpus) is picked with Joint training on a validation scenario built from the training speakers
only, then each tunable strategy's main option (``scenarios.continual.tuning.DEFAULT_GRIDS``) is
picked on the same validation scenario; all other options are the registry defaults.

    .venv/bin/python -m benchmarks.continual                  # full run (~30-60 min on 2 busy cores)
    .venv/bin/python -m benchmarks.continual --quick          # 1 seed, 4 strategies, smoke test

Outputs: ``benchmarks/results/continual.md`` (+ PNG plots in ``benchmarks/results/continual/``),
raw runs under ``.cache/bench/continual/<scenario>/`` (a rerun resumes from them), then
``benchmarks.render`` rebuilds BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from strategies import STRATEGIES

from ._common import DEV_CORPORA, RESULTS, ROOT, bench_cache, load_average, provenance
from .render import publish

ALL_STRATEGIES = list(STRATEGIES)
SCENARIO_OPTS = {
    "speaker-incremental": {"n_experiences": 4},
    "language-incremental": {"order": ["ravdess", "emodb", "emovo", "urdu"]},
    "class-incremental": {"n_experiences": 3},
}


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def run_scenario(features, scenario_name: str, strategies: list[str], seeds: int, out: Path) -> dict:
    """The library's protocol (``scenarios.continual.protocol``), with the timing of the run that did the work."""
    from scenarios.continual.protocol import run_tuned_benchmark

    out.mkdir(parents=True, exist_ok=True)
    load_start = load_average()
    tuned = run_tuned_benchmark(features, scenario_name, strategies, seeds, out_dir=out,
                                scenario_opts=SCENARIO_OPTS[scenario_name], progress=True)
    result, tune_s, run_s = tuned.result, tuned.tune_s, tuned.run_s
    # A rerun that resumes everything measures nothing: keep the timing of the run that did the work.
    timing_path = out / "timing.json"
    fresh = len(result.skipped) < len(result.runs)
    if fresh or not timing_path.is_file():
        load = f"{_num(load_start)} at start, {_num(load_average())} at end"
        timing_path.write_text(json.dumps({"tune_s": tune_s, "run_s": run_s, "seeds": seeds,
                                           "strategies": strategies, "load": load}))
    else:
        saved = json.loads(timing_path.read_text())
        tune_s, run_s, load = saved["tune_s"], saved["run_s"], saved.get("load", "not recorded")
    from scenarios.continual import make_scenario

    sc0 = make_scenario(scenario_name, features, seed=0, normalize=tuned.choices[0].normalize,
                        **SCENARIO_OPTS[scenario_name])
    return {"result": result, "choices": tuned.choices, "tune_s": tune_s, "run_s": run_s, "load": load,
            "scenario": sc0}


def _pm(mean, std, digits=3):
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def section(name: str, info: dict, plots_dir: Path) -> list[str]:
    res, sc = info["result"], info["scenario"]
    rows = res.table()
    lines = [f"### {name}", ""]
    summ = sc.summary()
    lines.append("Experiences (seed 0): " + "; ".join(
        f"**{r['experience']}** {r['train_clips']} train clips / {r['train_speakers']} spk, "
        f"{r['test_clips']} test clips / {r['test_speakers']} held-out spk" for r in summ) + ".")
    lines.append(f"Classes: {', '.join(sc.classes)}.")
    choices = [info["choices"][seed] for seed in sorted(info["choices"])]
    lines.append("Normalization chosen on validation speakers: " + ", ".join(f"seed{c.seed}: {c.normalize}"
                                                                             for c in choices) + ".")
    opts = {}
    for c in choices:
        for strat, o in c.options.items():
            opts.setdefault(strat, []).append(", ".join(f"{a}={b:g}" for a, b in o.items()))
    if opts:
        lines.append(f"Options chosen on validation speakers (seed {', '.join(str(c.seed) for c in choices)}): " + "; ".join(
            f"{s}: {' / '.join(v)}" for s, v in opts.items()) + ".")
    lines += ["", "| strategy | avg UA | forgetting | BWT | " + " | ".join(f"final UA {e}" for e in res.experiences)
              + " | time / run (s) | peak RSS (MB) |",
              "|---|---|---|---|" + "---|" * len(res.experiences) + "---|---|"]
    for r in sorted(rows, key=lambda r: -r["average_accuracy"]):
        fgt = "— (offline)" if r["joint"] else _pm(r["forgetting"], r["forgetting_std"])
        bwt = "—" if r["joint"] else f"{r['backward_transfer']:+.3f}"
        lines.append(f"| {r['strategy']} | {_pm(r['average_accuracy'], r['average_accuracy_std'])} | {fgt} | {bwt} | "
                     + " | ".join(f"{v:.3f}" for v in r["final_ua"]) + f" | {r['wall_time_s']:.1f} | {r['peak_rss_mb']:.0f} |")
    slug = name.split()[0]
    for png in ("accuracy_matrices.png", "accuracy_curves.png"):
        src = res.out_dir / png
        if src.is_file():
            shutil.copyfile(src, plots_dir / f"{slug}_{png}")
    lines += ["", f"Plots: [accuracy matrices](results/continual/{slug}_accuracy_matrices.png), "
              f"[accuracy vs. experience](results/continual/{slug}_accuracy_curves.png). "
              f"Tuning took {info['tune_s']:.0f} s and the runs {info['run_s']:.0f} s (wall clock, this machine, "
              f"load average {info['load']}).", ""]
    return lines


def targets(infos: dict) -> list[str]:
    lines = ["### Targets", "", "| target | scenario | measured | met? |", "|---|---|---|---|"]
    for name in ("speaker-incremental", "language-incremental"):
        if name not in infos:
            continue
        rows = {r["strategy"]: r for r in infos[name]["result"].table()}
        if "joint" in rows:
            cands = [r for r in rows.values() if not r["joint"]]
            best = max(cands, key=lambda r: r["average_accuracy"])
            gap = rows["joint"]["average_accuracy"] - best["average_accuracy"]
            ok = gap <= 0.02 and best["forgetting"] <= 0.02
            lines.append(f"| best strategy within 2 UA points of Joint, forgetting <= 2 points | {name} | "
                         f"best = {best['strategy']}: avg UA {best['average_accuracy']:.3f} vs Joint "
                         f"{rows['joint']['average_accuracy']:.3f} (gap {100 * gap:+.1f} points), forgetting "
                         f"{100 * best['forgetting']:.1f} points | {'yes' if ok else 'no'} |")
            fine = [r for r in cands if rows["joint"]["average_accuracy"] - r["average_accuracy"] <= 0.02
                    and r["forgetting"] <= 0.02]
            if fine and not ok:
                lines.append(f"| (same target, any strategy) | {name} | {', '.join(r['strategy'] for r in fine)} | yes |")
        if "naive" in rows:
            for s in ("ewc", "replay"):
                if s not in rows:
                    continue
                naive_f, f = rows["naive"]["forgetting"], rows[s]["forgetting"]
                measured = f"{s} {100 * f:.1f} vs Naive {100 * naive_f:.1f} points"
                if naive_f <= 0.005:  # nothing to cut: a ratio of two noise-level numbers means nothing
                    verdict, measured = "n/a (Naive does not forget here)", measured
                else:
                    verdict = "yes" if f / naive_f <= 0.5 else "no"
                    measured += f" (ratio {f / naive_f:.2f})"
                lines.append(f"| {s} cuts Naive's forgetting by >= half | {name} | {measured} | {verdict} |")
    return lines


def time_cli(out: Path) -> tuple[float, str]:
    """Wall time of the documented CLI command (cached embeddings), fresh output folder."""
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "adapt.cli", "bench", "--scenario", "language-incremental", "--strategies",
           "naive,ewc,replay,joint", "--seeds", "3", "--out", str(out), "--no-progress"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0, " ".join(["ser-adapt"] + cmd[3:-3] + ["--out", "DIR"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--scenarios", default="speaker-incremental,language-incremental,class-incremental")
    ap.add_argument("--strategies", default=",".join(ALL_STRATEGIES))
    ap.add_argument("--quick", action="store_true", help="1 seed, naive/ewc/replay/joint, no CLI timing")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from scenarios.tables import FeatureTable

    seeds = 1 if args.quick else args.seeds
    strategies = ["naive", "ewc", "replay", "joint"] if args.quick else args.strategies.split(",")
    t_start = time.perf_counter()
    t0 = time.perf_counter()
    features = FeatureTable.from_corpora(list(DEV_CORPORA), progress=True)
    load_s = time.perf_counter() - t0
    plots_dir = RESULTS / "continual"
    plots_dir.mkdir(parents=True, exist_ok=True)
    infos = {}
    for name in args.scenarios.split(","):
        print(f"== {name}", flush=True)
        infos[name] = run_scenario(features, name, strategies, seeds, bench_cache("continual", name))
    cli_s, cli_cmd = (None, None) if args.quick else time_cli(bench_cache("continual_cli"))
    total_s = time.perf_counter() - t_start
    lines = ["## Continual learning (speaker-, language-, class-incremental)", "",
             f"{provenance()} Features: {features.X.shape[1]}-dim "
             f"offline Whisper tiny.en embeddings (all layers, mean-pooled) of {', '.join(DEV_CORPORA)} "
             f"({len(features.X)} clips), cached; loading them took {load_s:.1f} s.", "",
             "Protocol: every experience has held-out test speakers that no experience trains on; the matrix "
             "entry R[i, j] is the UA on experience j's test speakers after training on experience i. "
             "avg UA = mean of the last row, forgetting = mean drop from the best earlier score "
             "(Chaudhry et al.), BWT = mean of R[T-1, j] - R[j, j]. Mean ± std over "
             f"{seeds} seed(s); each seed re-draws the speaker split and the model init. Joint trains once "
             "on everything (upper bound), so its forgetting is not defined. Heads: MLP 1920-256-C, "
             "Adam lr 1e-3, 10 epochs per experience, batch 64 (registry defaults, fixed before any run); "
             "buffers: replay/embedding-replay/GDumb 200 items, GEM/AGEM 50 per experience. Peak RSS is the "
             "whole process (torch, Avalanche and the loaded features take most of it), reset per run.", ""]
    for name, info in infos.items():
        lines += section(name, info, plots_dir)
    lines += targets(infos)
    if "language-incremental" in infos:
        info = infos["language-incremental"]
        runs = info["result"].runs
        lines += ["", "### Timing (4-corpus language-incremental, cached embeddings)", "",
                  f"- All {len(set(r['strategy'] for r in runs))} strategies x {seeds} seed(s): "
                  f"{info['run_s']:.0f} s of runs + {info['tune_s']:.0f} s of validation tuning = "
                  f"{(info['run_s'] + info['tune_s']) / 60:.1f} min (target < 10 min: "
                  f"{'met' if info['run_s'] + info['tune_s'] < 600 else 'missed'}).",
                  f"- Sum of per-run training+evaluation times: {sum(r['wall_time_s'] for r in runs):.0f} s."]
        if cli_s is not None:
            lines.append(f"- `{cli_cmd}` end to end (process start, feature loading, 4 strategies x 3 seeds, "
                         f"plots): {cli_s:.0f} s.")
    lines += ["", f"This invocation of the script: {total_s / 60:.1f} min (runs and tuning found on disk are "
              "resumed, not redone; the times above are those of the run that did the work).", ""]
    publish("continual", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
