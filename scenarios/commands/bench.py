"""``ser-adapt bench``: continual benchmarks (strategies x seeds) on the shared corpora.

Example:
    ser-adapt bench --scenario language-incremental --strategies naive,ewc,replay,joint --seeds 3 --out runs/lang
    ser-adapt bench --tune --scenario language-incremental --strategies naive,ewc,replay,embedding-replay,slda,joint \
        --seeds 3 --out runs/lang-tuned      # options chosen per seed on validation speakers (the benchmark's protocol)
    ser-adapt bench --ray --strategies naive,ewc,replay,joint --seeds 3 --out runs/lang   # runs as Ray tasks
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List

import typer


def parse_assignments(items: List[str], what: str) -> dict:
    """``["key=value", ...]`` -> dict; values are JSON when they parse (``1e4``, ``true``), comma lists
    become lists of strings, anything else stays a string."""
    out: dict = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{what} must look like key=value, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = [v.strip() for v in raw.split(",")] if "," in raw else raw
        out[key.strip()] = value
    return out


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench_cmd(
        scenario: str = typer.Option("language-incremental", "--scenario", "-s",
                                     help="speaker-incremental, language-incremental, class-incremental, "
                                          "fewshot-incremental"),
        strategies: str = typer.Option("naive,ewc,replay,joint", "--strategies",
                                       help="comma list of registry names (see --list)"),
        seeds: int = typer.Option(3, "--seeds", help="number of seeds (0..n-1); each seed re-draws the speaker split"),
        out: Path = typer.Option(..., "--out", "-o", help="output folder (runs/, CSV, JSON, plots); reruns resume"),
        corpora: str = typer.Option("ravdess,emodb,emovo,urdu", "--corpora", help="comma list of corpora"),
        backbone: str = typer.Option(None, "--backbone", "-b", help="backbone name (default: offline Whisper tiny.en)"),
        normalize: str = typer.Option(None, "--normalize",
                                      help="speaker, corpus or none (default: speaker); with --tune, a comma list of "
                                           "candidates (default: speaker,corpus) or one value to fix it"),
        tune: bool = typer.Option(False, "--tune/--no-tune",
                                  help="per seed, choose the normalization and each strategy's main option "
                                       "(ewc_lambda, si_lambda, lwf alpha, slda shrinkage) on validation speakers "
                                       "held out from the training speakers, then run with the choices"),
        epochs: int = typer.Option(None, "--epochs", help="training epochs per experience (default: registry's)"),
        lr: float = typer.Option(None, "--lr", help="Adam learning rate (default: registry's)"),
        option: List[str] = typer.Option(None, "--option", help="strategy option, e.g. ewc.ewc_lambda=1e4 (repeatable)"),
        scenario_option: List[str] = typer.Option(None, "--scenario-option",
                                                  help="scenario option, e.g. n_experiences=5, order=emodb,ravdess"),
        threads: int = typer.Option(1, "--threads", help="torch CPU threads (1 is fastest for these small heads)"),
        plots: bool = typer.Option(True, "--plots/--no-plots"),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
        list_all: bool = typer.Option(False, "--list", help="list scenarios and strategies, then exit"),
        use_ray: bool = typer.Option(False, "--ray", help="run each (strategy, seed) as a Ray task, and the embedding "
                                                          "extraction on Ray workers (pip install 'ser-adapt[ray]')"),
        address: str = typer.Option(None, "--address", help="with --ray: the Ray cluster to join (e.g. auto, "
                                                            "ray://head:10001; default $RAY_ADDRESS, else a local instance)"),
    ) -> None:
        """Run continual strategies x seeds on a scenario; write accuracy matrices, metrics and plots."""
        import time

        from rich.console import Console
        from rich.table import Table

        from scenarios.continual import NORMALIZATIONS, SCENARIOS, make_scenario
        from strategies import STRATEGIES

        console = Console(width=140)
        if list_all:
            console.print("scenarios: " + ", ".join(SCENARIOS))
            for name, spec in STRATEGIES.items():
                console.print(f"  {name:18s} {spec.description}  options: {spec.options()}")
            raise typer.Exit(0)
        if scenario not in SCENARIOS:
            raise typer.BadParameter(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
        names = [s.strip() for s in strategies.split(",") if s.strip()]
        unknown = [s for s in names if s not in STRATEGIES]
        if unknown or not names:
            raise typer.BadParameter(f"unknown strategies {unknown or names}; known: {', '.join(sorted(STRATEGIES))}")
        from scenarios.continual.protocol import DEFAULT_NORMALIZATIONS

        norms = [n.strip() for n in normalize.split(",") if n.strip()] if normalize else (
            list(DEFAULT_NORMALIZATIONS) if tune else ["speaker"])
        if not norms or any(n not in NORMALIZATIONS for n in norms) or (len(norms) > 1 and not tune):
            raise typer.BadParameter(f"--normalize must be one of {NORMALIZATIONS}"
                                     f"{' (or, with --tune, a comma list of them)' if not tune else ''}, "
                                     f"got {normalize!r}")
        if seeds < 1:
            raise typer.BadParameter(f"--seeds must be >= 1, got {seeds}")
        if address is not None and not use_ray:
            raise typer.BadParameter("--address goes with --ray")
        if use_ray and tune:
            raise typer.BadParameter("--ray does not run the --tune protocol yet: run --tune without --ray")
        per_strategy: dict[str, dict] = {"*": {}}
        if epochs is not None:
            per_strategy["*"]["epochs"] = epochs
        if lr is not None:
            per_strategy["*"]["lr"] = lr
        for key, value in parse_assignments(option, "--option").items():
            strat, dot, opt = key.partition(".")
            if not dot or strat not in STRATEGIES and strat != "*":
                raise typer.BadParameter(f"--option keys look like <strategy>.<option>, got {key!r}")
            per_strategy.setdefault(strat, {})[opt] = value
        scenario_opts = parse_assignments(scenario_option, "--scenario-option")
        if "normalize" in scenario_opts:
            raise typer.BadParameter("give the normalization with --normalize, not --scenario-option")

        import torch

        torch.set_num_threads(max(1, threads))
        from scenarios.runner import run_benchmark

        run_opts: dict = {}
        embed_opts: dict = {}
        if use_ray:
            from rich.markup import escape

            from . import connect_ray_or_exit

            connect_ray_or_exit(address, lambda msg: console.print(f"[red]error:[/red] {escape(msg)}", highlight=False))
            run_opts = {"executor": "ray", "threads_per_run": max(1, threads)}
            embed_opts = {"executor": "ray", "num_threads": max(1, threads)}

        t0 = time.perf_counter()
        from scenarios.tables import FeatureTable

        features = FeatureTable.from_corpora([c.strip() for c in corpora.split(",") if c.strip()], backbone,
                                             progress=progress, **embed_opts)
        try:
            if tune:
                from scenarios.continual.protocol import run_tuned_benchmark

                tuned = run_tuned_benchmark(features, scenario, names, seeds, out_dir=out, scenario_opts=scenario_opts,
                                            normalizations=norms, strategy_opts=per_strategy, progress=progress,
                                            plots=plots)
                result = tuned.result
            else:
                result = run_benchmark(
                    lambda seed: make_scenario(scenario, features, seed=seed, normalize=norms[0], **scenario_opts),
                    names, seeds=seeds, out_dir=out, strategy_opts=per_strategy, progress=progress, plots=plots,
                    **run_opts)
        except (TypeError, ValueError, KeyError) as err:  # bad option values: say which, no traceback
            console.print(f"[red]error:[/red] {err}")
            raise typer.Exit(2) from None
        if tune:
            console.print(f"chosen on validation speakers (held out from the training speakers; Joint's validation "
                          f"avg UA per normalization) in {tuned.tune_s:.1f} s:")
            for choice in tuned.choices.values():
                console.print("  " + choice.describe(), highlight=False)
        how = "options tuned on validation speakers" if tune else f"normalize={norms[0]}"
        table = Table(title=f"{scenario} on {corpora} ({seeds} seed(s), {how}); UA mean ± std; out: {out}")
        for col in ("strategy", "avg UA", "forgetting", "BWT", "time (s)", *result.experiences):
            table.add_column(col, justify="right" if col != "strategy" else "left")
        for row in result.table():
            fgt = "—" if row["joint"] else f"{row['forgetting']:.3f} ± {row['forgetting_std']:.3f}"
            bwt = "—" if row["joint"] else f"{row['backward_transfer']:+.3f}"
            table.add_row(row["strategy"], f"{row['average_accuracy']:.3f} ± {row['average_accuracy_std']:.3f}", fgt,
                          bwt, f"{row['wall_time_s']:.1f}", *[f"{v:.3f}" for v in row["final_ua"]])
        console.print(table)
        skipped = f", {len(result.skipped)} run(s) resumed from disk" if result.skipped else ""
        console.print(f"done in {time.perf_counter() - t0:.1f} s{skipped}; results in {out}")
