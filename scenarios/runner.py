"""Run continual strategies x seeds on a scenario; record accuracy matrices and summary metrics.

For every (strategy, seed) the runner trains the registered Avalanche strategy experience by
experience and, after each experience ``i``, scores every experience's test set ``j``:
``R[i, j]`` = UA (``adapt.metrics.unweighted_average_recall``) of the model on experience ``j``'s
held-out speakers. From ``R`` it reports ``average_accuracy`` (mean of the last row),
``backward_transfer`` and ``forgetting`` (``adapt.metrics``), plus wall time and the peak resident
memory of the process during the run. Joint training (the upper bound) is trained once on the whole
stream; its matrix repeats the final row, so its BWT and forgetting are 0 by construction.

Outputs under ``out_dir``: ``runs/<strategy>__seed<k>.json`` (one per finished run, written
atomically: an interrupted benchmark resumes by skipping them), ``summary.json``, ``summary.csv``
(mean and std per strategy), ``runs.csv`` (one row per run), ``matrices.csv`` (long form) and the
plots ``accuracy_matrices.png`` and ``accuracy_curves.png``.

``run_benchmark(..., executor="ray")`` runs every (strategy, seed) as a Ray task (see its docstring):
same records, same files, same resume rule.

Example:
    >>> from scenarios.runner import run_benchmark                        # doctest: +SKIP
    >>> result = run_benchmark(lambda seed: language_incremental(fs, seed=seed),  # doctest: +SKIP
    ...                        ["naive", "ewc", "replay", "joint"], seeds=3, out_dir="out/lang")
    >>> result.table()[0]["strategy"]                                     # doctest: +SKIP
    'naive'
"""
from __future__ import annotations

import csv
import json
import os
import random
import resource
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from adapt import metrics
from adapt.finetune import predict_audio
from adapt.nn import MLPClassifier
from strategies import STRATEGIES, make_strategy, predict_scores

from .continual.builders import ContinualScenario

__all__ = ["run_one", "run_benchmark", "BenchmarkResult", "aggregate", "score_matrix", "audio_ua_row",
           "seed_everything"]

RUN_VERSION = 1
#: where ``run_benchmark`` runs its (strategy, seed) runs: this process, or Ray tasks
EXECUTORS = ("local", "ray")


def _rss_reset() -> None:
    # Linux: writing 5 to clear_refs resets the peak-RSS counter (VmHWM), so each run gets its own peak.
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _rss_now_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _rss_peak_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (what Avalanche and torch draw from)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def score_matrix(strategy, scenario: ContinualScenario) -> list[float]:
    """UA of ``strategy`` on each experience's test set of embeddings (one accuracy-matrix row)."""
    classes = np.asarray(scenario.classes)
    row = []
    for x, y in scenario.test_data:
        pred = predict_scores(strategy, x).argmax(1).numpy()
        row.append(metrics.unweighted_average_recall(classes[y.numpy()], classes[pred]))
    return row


def audio_ua_row(strategy, audio, *, batch_size: int = 16) -> list[float]:
    """UA of ``strategy.model`` on each test experience of an ``AudioScenario`` (one accuracy-matrix row)."""
    classes = np.asarray(audio.classes)
    row = []
    for ds in audio.test_datasets:
        pred = predict_audio(strategy.model, ds, batch_size=batch_size)
        row.append(metrics.unweighted_average_recall(classes[np.asarray(ds.targets)], classes[pred]))
    return row


def run_one(scenario, strategy: str, seed: int, *, strategy_opts: dict | None = None,
            head_opts: dict | None = None, model_factory: Callable[[], torch.nn.Module] | None = None,
            score_row: Callable | None = None, on_experience: Callable[[int], None] | None = None) -> dict:
    """Train ``strategy`` on ``scenario`` with ``seed``; return the run record (JSON-serializable).

    ``scenario``: a ``ContinualScenario`` (embeddings) or a ``scenarios.continual.audio.AudioScenario``
    (audio). ``strategy_opts`` go to ``make_strategy`` (e.g. ``{"epochs": 5, "ewc_lambda": 100}``).
    ``model_factory()`` builds the model after seeding (default: ``adapt.nn.MLPClassifier`` over the
    embeddings with ``head_opts``: ``hidden``, ``layers``, ``dropout``); ``score_row(strategy,
    scenario)`` gives one accuracy-matrix row (default: ``score_matrix`` for embeddings,
    ``audio_ua_row`` for audio).
    """
    spec = STRATEGIES.get(strategy)
    if spec is None:
        raise KeyError(f"unknown strategy {strategy!r}; known: {', '.join(sorted(STRATEGIES))}")
    audio = hasattr(scenario, "test_datasets")
    opts = dict(strategy_opts or {})
    if "seed" in spec.options() and "seed" not in opts:
        opts["seed"] = int(seed)
    seed_everything(seed)
    if model_factory is None:
        if audio:
            raise TypeError("an audio scenario needs model_factory (e.g. an adapt.finetune.EncoderClassifier)")
        model = MLPClassifier(input_size=scenario.input_size, num_classes=len(scenario.classes), **(head_opts or {}))
    else:
        model = model_factory()
    if audio and "device" not in opts:
        opts["device"] = str(getattr(model, "device", "cpu"))
    score_row = score_row or (audio_ua_row if audio else score_matrix)
    _rss_reset()
    rss_start = _rss_now_mb()
    t0 = time.perf_counter()
    T = scenario.n_experiences
    matrix = []
    # Avalanche's deprecation shims force their warnings on; keep them out of the progress output.
    with warnings.catch_warnings(record=True):
        strat = make_strategy(strategy, model, **opts)
        if spec.trains_jointly:
            strat.train(scenario.benchmark.train_stream)
            final = score_row(strat, scenario)
            matrix = [list(final) for _ in range(T)]
            if on_experience:
                on_experience(T)
        else:
            for i, experience in enumerate(scenario.benchmark.train_stream):
                strat.train(experience)
                matrix.append(score_row(strat, scenario))
                if on_experience:
                    on_experience(1)
    wall = time.perf_counter() - t0
    buffer_bytes = sum(getattr(p, "memory_bytes", 0) for p in getattr(strat, "plugins", []))
    return {
        "version": RUN_VERSION, "strategy": strategy, "seed": int(seed), "scenario": scenario.name,
        "fingerprint": scenario.fingerprint, "strategy_opts": _jsonable(opts), "head_opts": head_opts or {},
        "experiences": list(scenario.experience_names), "classes": list(scenario.classes),
        "matrix": matrix, "average_accuracy": metrics.average_accuracy(matrix),
        "backward_transfer": metrics.backward_transfer(matrix), "forgetting": metrics.forgetting(matrix),
        "final_ua": list(matrix[-1]), "joint": spec.trains_jointly, "wall_time_s": wall,
        "peak_rss_mb": _rss_peak_mb(), "rss_start_mb": rss_start, "buffer_bytes": int(buffer_bytes),
    }


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d, default=str))


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)  # atomic: an interrupted run never leaves a half-written record


def aggregate(runs: Sequence[dict]) -> list[dict]:
    """Mean and std over seeds, per strategy (in first-seen order)."""
    out = []
    for name in dict.fromkeys(r["strategy"] for r in runs):
        rs = [r for r in runs if r["strategy"] == name]
        row = {"strategy": name, "seeds": len(rs), "joint": rs[0]["joint"]}
        for key in ("average_accuracy", "forgetting", "backward_transfer", "wall_time_s", "peak_rss_mb"):
            vals = np.array([r[key] for r in rs], dtype=float)
            row[key] = float(vals.mean())
            row[key + "_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        row["final_ua"] = np.mean([r["final_ua"] for r in rs], axis=0).tolist()
        row["matrix"] = np.mean([r["matrix"] for r in rs], axis=0).tolist()
        out.append(row)
    return out


@dataclass
class BenchmarkResult:
    """All runs of a benchmark and where they were written."""

    scenario: str
    experiences: list[str]
    classes: list[str]
    runs: list[dict]
    out_dir: Path | None = None
    skipped: list[tuple[str, int]] = field(default_factory=list)

    def table(self) -> list[dict]:
        """Per-strategy summary rows (see ``aggregate``)."""
        return aggregate(self.runs)


def _write_outputs(result: BenchmarkResult, out: Path, plots: bool) -> None:
    summary = result.table()
    _write_json(out / "summary.json", {"scenario": result.scenario, "experiences": result.experiences,
                                       "classes": result.classes, "summary": summary, "runs": result.runs})
    keys = ["strategy", "seeds", "average_accuracy", "average_accuracy_std", "forgetting", "forgetting_std",
            "backward_transfer", "backward_transfer_std", "wall_time_s", "wall_time_s_std", "peak_rss_mb"]
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys + [f"final_ua_{e}" for e in result.experiences])
        for row in summary:
            w.writerow([row[k] for k in keys] + row["final_ua"])
    with open(out / "runs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["strategy", "seed", "average_accuracy", "forgetting", "backward_transfer", "wall_time_s",
                    "peak_rss_mb", "buffer_bytes"])
        for r in result.runs:
            w.writerow([r["strategy"], r["seed"], r["average_accuracy"], r["forgetting"], r["backward_transfer"],
                        r["wall_time_s"], r["peak_rss_mb"], r["buffer_bytes"]])
    with open(out / "matrices.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["strategy", "seed", "after_experience", "eval_experience", "ua"])
        for r in result.runs:
            for i, row in enumerate(r["matrix"]):
                for j, v in enumerate(row):
                    w.writerow([r["strategy"], r["seed"], result.experiences[i], result.experiences[j], v])
    if plots:
        from .continual.plots import plot_accuracy_curves, plot_accuracy_matrices

        plot_accuracy_matrices(summary, result.experiences, out / "accuracy_matrices.png", title=result.scenario)
        plot_accuracy_curves(result.runs, result.experiences, out / "accuracy_curves.png", title=result.scenario)


def run_benchmark(scenario: ContinualScenario | Callable[[int], ContinualScenario], strategies: Sequence[str],
                  seeds: int | Sequence[int] = 3, *, out_dir: str | os.PathLike | None = None,
                  strategy_opts: dict[str, dict] | Callable[[str, int], dict] | None = None,
                  head_opts: dict | None = None,
                  progress: bool = True, plots: bool = True, executor: str = "local",
                  threads_per_run: int = 1) -> BenchmarkResult:
    """Run every strategy with every seed; write results under ``out_dir``; skip finished runs.

    Arguments:
        scenario: a ``ContinualScenario``, or ``seed -> ContinualScenario`` so that the speaker
            split varies with the seed too (what the benchmarks use).
        strategies: registry names (``strategies.STRATEGIES``).
        seeds: a count ``n`` (seeds ``0..n-1``) or explicit seeds.
        out_dir: where runs, CSV/JSON and plots go; ``None`` keeps everything in memory.
        strategy_opts: per-strategy options, e.g. ``{"ewc": {"ewc_lambda": 100}, "*": {"epochs": 5}}``
            (``"*"`` applies to every strategy, the specific entry wins), or a function
            ``(strategy, seed) -> options`` (e.g. values tuned per seed on validation speakers).
        head_opts: ``make_head`` options shared by all strategies.
        progress: show a tqdm progress bar (experiences trained; with Ray, runs finished).
        plots: write the matplotlib figures (needs ``out_dir``).
        executor: ``"local"`` (one run after the other in this process) or ``"ray"``: every
            (strategy, seed) run that is not on disk yet is one Ray task (``run_one`` on one CPU),
            on the Ray instance already initialized, else ``$RAY_ADDRESS``, else a local one. Each
            record is written as soon as its task finishes, so an interrupted sweep resumes the same
            way; the results are the serial run's (every run seeds its own generators).
        threads_per_run: torch threads of each Ray task (the local executor keeps the caller's).
    """
    names = [s.strip() for s in strategies]
    unknown = [s for s in names if s not in STRATEGIES]
    if unknown or not names:
        raise KeyError(f"unknown strategies {unknown or names}; known: {', '.join(sorted(STRATEGIES))}")
    seed_list = list(range(seeds)) if isinstance(seeds, (int, np.integer)) else [int(s) for s in seeds]
    if not seed_list:
        raise ValueError(f"need at least one seed, got {seeds!r}")
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; known: {list(EXECUTORS)}")
    if isinstance(threads_per_run, bool) or not isinstance(threads_per_run, int) or threads_per_run < 1:
        raise ValueError(f"threads_per_run must be an integer >= 1, got {threads_per_run!r}")
    if executor == "ray":
        from adapt.embedding.distributed import import_ray

        import_ray()  # without Ray installed: the install hint now, before any scenario is built
    if callable(strategy_opts):
        opts_for = strategy_opts
    else:
        table = strategy_opts or {}

        def opts_for(name: str, seed: int) -> dict:
            return {**table.get("*", {}), **table.get(name, {})}
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        (out / "runs").mkdir(parents=True, exist_ok=True)
    factory = scenario if callable(scenario) and not isinstance(scenario, ContinualScenario) else (lambda _s: scenario)


    from tqdm.auto import tqdm

    scenarios = {seed: factory(seed) for seed in seed_list}
    first = scenarios[seed_list[0]]
    total = len(names) * len(seed_list) * first.n_experiences
    bar = tqdm(total=total, desc=first.name, unit="exp", disable=not progress)
    done: dict[tuple[int, str], dict] = {}
    pending: list[tuple[int, str, dict, Path | None]] = []
    skipped = []
    for seed in seed_list:
        sc = scenarios[seed]
        for name in names:
            opts = dict(opts_for(name, seed))
            path = out / "runs" / f"{name}__seed{seed}.json" if out is not None else None
            if path is not None and path.is_file():
                record = json.loads(path.read_text())
                expected = {**opts, **({"seed": seed} if "seed" in STRATEGIES[name].options() and "seed" not in opts else {})}
                if (record.get("version") == RUN_VERSION and record.get("fingerprint") == sc.fingerprint
                        and record.get("strategy_opts") == _jsonable(expected)
                        and record.get("head_opts") == (head_opts or {})):
                    done[seed, name] = record
                    skipped.append((name, seed))
                    bar.update(sc.n_experiences)
                    continue
            pending.append((seed, name, opts, path))
    if executor == "ray":
        _run_on_ray(scenarios, pending, head_opts, threads_per_run, done, bar)
    else:
        for seed, name, opts, path in pending:
            bar.set_postfix_str(f"{name} seed {seed}")
            record = run_one(scenarios[seed], name, seed, strategy_opts=opts, head_opts=head_opts,
                             on_experience=bar.update)
            if path is not None:
                _write_json(path, record)
            done[seed, name] = record
    runs = [done[seed, name] for seed in seed_list for name in names]
    bar.close()
    result = BenchmarkResult(scenario=first.name, experiences=list(first.experience_names),
                             classes=list(first.classes), runs=runs, out_dir=out, skipped=skipped)
    if out is not None:
        _write_outputs(result, out, plots)
    return result


def _run_task(scenario, strategy: str, seed: int, opts: dict, head_opts: dict | None, threads: int) -> dict:
    """One (strategy, seed) run inside a Ray worker process."""
    torch.set_num_threads(threads)
    return run_one(scenario, strategy, seed, strategy_opts=opts, head_opts=head_opts)


def _run_on_ray(scenarios: dict, pending: list, head_opts: dict | None, threads: int, done: dict, bar) -> None:
    """Submit every pending run as a Ray task; write each record as its task finishes.

    Ray does the scheduling (one task per free CPU on the cluster) and the retries of a task whose
    worker died (``max_retries``); each seed's scenario goes to the object store once.
    """
    from adapt.embedding.distributed import connect

    ray = connect()
    task = ray.remote(_run_task).options(num_cpus=threads, max_retries=3)
    refs = {seed: ray.put(sc) for seed, sc in scenarios.items() if any(p[0] == seed for p in pending)}
    futures = {task.remote(refs[seed], name, seed, opts, head_opts, threads): (seed, name, path)
               for seed, name, opts, path in pending}
    remaining = list(futures)
    try:
        while remaining:
            ready, remaining = ray.wait(remaining, num_returns=1)
            seed, name, path = futures[ready[0]]
            record = ray.get(ready[0])
            if path is not None:
                _write_json(path, record)
            done[seed, name] = record
            bar.set_postfix_str(f"{name} seed {seed} done")
            bar.update(scenarios[seed].n_experiences)
    finally:
        for ref in remaining:  # an error or an interrupt: the records written so far stay for a resume
            ray.cancel(ref)
