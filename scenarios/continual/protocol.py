"""The continual benchmark protocol: per seed, choose options on validation speakers, then run.

This is what ``benchmarks/continual.py`` and ``ser-adapt bench --tune`` both run. For every seed:

1. **Normalization.** The scenario is built with each candidate ``normalize`` (default
   ``("speaker", "corpus")``); for each one, Joint is trained on its validation scenario
   (``tuning.validation_scenario``: the same kind of scenario rebuilt from the *training* speakers
   only, some of them held out as validation speakers) and the candidate with the best validation
   average UA is kept (ties: the first candidate).
2. **Strategy options.** On the validation scenario of the chosen normalization, every strategy
   with a grid (``tuning.DEFAULT_GRIDS``: EWC/online EWC ``ewc_lambda``, SI ``si_lambda``, LwF
   ``alpha``, SLDA ``shrinkage``) is trained with each value and the best one is kept
   (``tuning.select_option``). An option the caller fixed (``strategy_opts``) is not tuned.
3. **Runs.** ``scenarios.runner.run_benchmark`` runs every strategy with the seed's choices.

Test speakers are never seen before step 3: every validation run goes through
``tuning.validation_score`` on a table restricted to the scenario's training speakers. Other
options (learning rate, epochs, batch, head and buffer sizes) are the registry defaults unless the
caller sets them, and then they are the same in the validation runs and in the final runs.

Example:
    >>> out = run_tuned_benchmark(fs, "language-incremental", ["naive", "ewc", "slda", "joint"],
    ...                           seeds=3, out_dir="runs/lang")                   # doctest: +SKIP
    >>> out.choices[0].normalize, out.choices[0].options                          # doctest: +SKIP
    ('corpus', {'ewc': {'ewc_lambda': 10000000.0}, 'slda': {'shrinkage': 0.5}})
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..runner import BenchmarkResult, run_benchmark
from .builders import NORMALIZATIONS, make_scenario
from .tuning import DEFAULT_GRIDS, select_option, validation_scenario, validation_score

__all__ = ["SeedChoice", "choose_options", "tune", "run_tuned_benchmark", "TunedBenchmark",
           "DEFAULT_NORMALIZATIONS", "TUNING_VERSION"]

#: what the benchmark chooses between (``"none"`` may be added by the caller)
DEFAULT_NORMALIZATIONS: tuple[str, ...] = ("speaker", "corpus")
TUNING_VERSION = 1


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def _opts_table(strategy_opts: Mapping[str, dict] | None):
    table = dict(strategy_opts or {})

    def opts_for(name: str) -> dict:
        return {**table.get("*", {}), **table.get(name, {})}
    return opts_for


@dataclass
class SeedChoice:
    """What one seed's validation runs chose, and from what.

    Attributes:
        seed: the seed (speaker split and model init).
        normalize: the chosen normalization.
        normalize_scores: Joint's validation average UA per candidate normalization (empty when
            only one candidate was given: nothing to choose).
        tuned: per strategy, ``{"option", "value", "grid", "scores" (str(value) -> validation
            average UA), "strategy_opts" (the fixed options of the validation runs)}``.
        validation_speakers: the training speakers held out for validation (never a test speaker).
        key: what the choices depend on (the candidate scenarios' fingerprints, Joint's options);
            a saved choice is reused only when it matches.
    """

    seed: int
    normalize: str
    normalize_scores: dict[str, float] = field(default_factory=dict)
    tuned: dict[str, dict] = field(default_factory=dict)
    validation_speakers: list[str] = field(default_factory=list)
    key: dict = field(default_factory=dict)
    version: int = TUNING_VERSION

    @property
    def options(self) -> dict[str, dict]:
        """``{strategy: {option: chosen value}}``, what the final runs add to their options."""
        return {name: {t["option"]: t["value"]} for name, t in self.tuned.items()}

    def describe(self) -> str:
        """One line, e.g. ``seed 0: normalize=corpus (speaker 0.712, corpus 0.745); ewc.ewc_lambda=1e+07``."""
        scores = ", ".join(f"{k} {v:.3f}" for k, v in self.normalize_scores.items())
        parts = [f"normalize={self.normalize}" + (f" ({scores})" if scores else "")]
        parts += [f"{name}.{t['option']}={t['value']:g}" if isinstance(t["value"], (int, float))
                  else f"{name}.{t['option']}={t['value']}" for name, t in self.tuned.items()]
        return f"seed {self.seed}: " + "; ".join(parts)

    def to_json(self) -> dict:
        return _jsonable(asdict(self))

    @classmethod
    def from_json(cls, data: dict) -> "SeedChoice":
        data = dict(data)
        data["normalize_scores"] = {k: float(v) for k, v in data.get("normalize_scores", {}).items()}
        return cls(**data)


def choose_options(features, scenario: str, seed: int, strategies: Sequence[str], *,
                   scenario_opts: dict | None = None, normalizations: Sequence[str] = DEFAULT_NORMALIZATIONS,
                   grids: Mapping[str, tuple[str, Sequence]] = DEFAULT_GRIDS,
                   strategy_opts: Mapping[str, dict] | None = None, previous: SeedChoice | None = None,
                   on_run=None) -> SeedChoice:
    """Choose the normalization and each strategy's grid option for ``seed`` on validation speakers.

    Arguments:
        features: the feature table (``scenarios.tables.FeatureTable``).
        scenario: a ``SCENARIOS`` name; ``scenario_opts`` its other options (not ``normalize``).
        strategies: the strategies of the benchmark; those with a grid in ``grids`` are tuned.
        normalizations: candidates; Joint picks one on validation (one candidate: no runs).
        strategy_opts: fixed options, ``{"*": {...}, name: {...}}`` as for ``run_benchmark``; they
            apply to every validation run, and a grid option set here is not tuned.
        previous: a saved choice for this seed; what still matches is reused, the rest is tuned.
        on_run: called with the number of validation runs just done (progress bars).
    """
    scenario_opts = {k: v for k, v in (scenario_opts or {}).items() if k != "normalize"}
    normalizations = tuple(normalizations)
    bad = [n for n in normalizations if n not in NORMALIZATIONS]
    if bad or not normalizations:
        raise ValueError(f"normalizations must be among {NORMALIZATIONS}, got {list(normalizations)}")
    opts_for = _opts_table(strategy_opts)
    tick = on_run or (lambda n: None)
    built = {n: make_scenario(scenario, features, seed=seed, normalize=n, **scenario_opts) for n in normalizations}
    key = {"scenarios": {n: sc.fingerprint for n, sc in built.items()}, "joint": _jsonable(opts_for("joint"))}
    reuse = previous is not None and previous.version == TUNING_VERSION and previous.key == key
    validations = {}
    if reuse:
        norm, norm_scores = previous.normalize, dict(previous.normalize_scores)
    elif len(normalizations) == 1:
        norm, norm_scores = normalizations[0], {}
    else:
        norm_scores = {}
        for n, sc in built.items():
            validations[n] = validation_scenario(features, sc)
            norm_scores[n] = validation_score(validations[n], "joint", seed, opts_for("joint"))
            tick(1)
        norm = max(norm_scores, key=norm_scores.get)  # ties keep the first candidate
    val = validations[norm] if norm in validations else validation_scenario(features, built[norm])
    choice = SeedChoice(seed=int(seed), normalize=norm, normalize_scores=norm_scores, key=key,
                        validation_speakers=sorted(set().union(*map(set, val.test_speakers))))
    for name in strategies:
        if name not in grids:
            continue
        option, grid = grids[name]
        fixed = opts_for(name)
        if option in fixed:  # the caller chose it
            continue
        wanted = {"option": option, "grid": _jsonable(list(grid)), "strategy_opts": _jsonable(fixed)}
        old = previous.tuned.get(name) if reuse else None
        if old is not None and all(old.get(k) == v for k, v in wanted.items()):
            choice.tuned[name] = old
            continue
        best, scores = select_option(val, name, option, list(grid), strategy_opts=fixed, seed=seed)
        tick(len(grid))
        choice.tuned[name] = {**wanted, "value": best, "scores": {str(k): round(v, 4) for k, v in scores.items()}}
    return choice


def _write_json(path: Path, data) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def tune(features, scenario: str, strategies: Sequence[str], seeds: int | Sequence[int] = 3, *,
         path: str | os.PathLike | None = None, progress: bool = False, **kwargs) -> dict[int, SeedChoice]:
    """``choose_options`` for every seed; ``{seed: SeedChoice}``.

    ``path`` (a JSON file, e.g. ``OUT/tuning.json``): choices saved there are reused where their
    inputs still match, and the file is rewritten after each seed (an interrupted tuning resumes).
    ``kwargs`` go to ``choose_options``.
    """
    seed_list = list(range(seeds)) if isinstance(seeds, (int, np.integer)) else [int(s) for s in seeds]
    path = Path(path) if path is not None else None
    saved = {}
    if path is not None and path.is_file():
        saved = json.loads(path.read_text())
    from tqdm.auto import tqdm

    bar = tqdm(desc=f"{scenario} tuning", unit="run", disable=not progress)
    choices: dict[int, SeedChoice] = {}
    for seed in seed_list:
        prev = saved.get(f"seed{seed}")
        previous = SeedChoice.from_json(prev) if prev else None
        bar.set_postfix_str(f"seed {seed}")
        choices[seed] = choose_options(features, scenario, seed, strategies, previous=previous,
                                       on_run=bar.update, **kwargs)
        saved[f"seed{seed}"] = choices[seed].to_json()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_json(path, saved)
    bar.close()
    return choices


@dataclass
class TunedBenchmark:
    """A benchmark run with options chosen on validation speakers: the result, the choices, the times."""

    result: BenchmarkResult
    choices: dict[int, SeedChoice]
    tune_s: float
    run_s: float


def run_tuned_benchmark(features, scenario: str, strategies: Sequence[str], seeds: int | Sequence[int] = 3, *,
                        out_dir: str | os.PathLike | None = None, scenario_opts: dict | None = None,
                        normalizations: Sequence[str] = DEFAULT_NORMALIZATIONS,
                        grids: Mapping[str, tuple[str, Sequence]] = DEFAULT_GRIDS,
                        strategy_opts: Mapping[str, dict] | None = None, head_opts: dict | None = None,
                        progress: bool = True, plots: bool = True) -> TunedBenchmark:
    """``tune`` then ``run_benchmark`` with each seed's choices (the protocol of the module docstring).

    ``strategy_opts`` (``{"*": {...}, name: {...}}``) are fixed for the validation and the final
    runs; the tuned values are added per seed. With ``out_dir``, the choices are saved to
    ``out_dir/tuning.json`` and reused by a rerun, like the runs under ``out_dir/runs/``.
    """
    names = [s.strip() for s in strategies]
    scenario_opts = {k: v for k, v in (scenario_opts or {}).items() if k != "normalize"}
    out = Path(out_dir) if out_dir is not None else None
    t0 = time.perf_counter()
    choices = tune(features, scenario, names, seeds, path=out / "tuning.json" if out is not None else None,
                   progress=progress, scenario_opts=scenario_opts, normalizations=normalizations, grids=grids,
                   strategy_opts=strategy_opts)
    tune_s = time.perf_counter() - t0
    opts_for = _opts_table(strategy_opts)

    def factory(seed: int):
        return make_scenario(scenario, features, seed=seed, normalize=choices[seed].normalize, **scenario_opts)

    def final_opts(name: str, seed: int) -> dict:
        return {**opts_for(name), **choices[seed].options.get(name, {})}

    t1 = time.perf_counter()
    result = run_benchmark(factory, names, seeds=list(choices), out_dir=out, strategy_opts=final_opts,
                           head_opts=head_opts, progress=progress, plots=plots)
    return TunedBenchmark(result=result, choices=choices, tune_s=tune_s, run_s=time.perf_counter() - t1)
