"""Continual scenarios: builders over embedding tables (Avalanche benchmarks), their audio
counterparts, option tuning on validation speakers, and plots.

* ``builders`` — ``speaker_incremental``, ``language_incremental``, ``class_incremental``,
  ``fewshot_incremental``, ``make_scenario``, ``ContinualScenario``.
* ``audio`` — ``audio_scenario``: the same scenario over audio clips, for encoder fine-tuning.
* ``tuning`` — ``validation_scenario``, ``select_option`` (never on test speakers).
* ``protocol`` — ``run_tuned_benchmark``: per seed, options chosen on validation speakers, then the
  runs (the benchmark's protocol; ``ser-adapt bench --tune``).
* ``plots`` — accuracy matrices and curves (matplotlib).
"""
from __future__ import annotations

from .builders import (NORMALIZATIONS, SCENARIOS, ContinualScenario, ScenarioBuilder, UnknownEmotionError,
                       builder_of, class_incremental, fewshot_incremental, language_incremental, make_scenario,
                       speaker_incremental)

__all__ = ["ContinualScenario", "speaker_incremental", "language_incremental", "class_incremental",
           "fewshot_incremental", "SCENARIOS", "ScenarioBuilder", "builder_of", "make_scenario", "NORMALIZATIONS",
           "UnknownEmotionError"]
