"""Few-shot protocols on embedding tables: recipes, protocols, option selection, unseen corpora.

* ``recipes`` — ``make_recipe("linear-ft+norm")``, ``RECIPES``, ``RecipeConfig``.
* ``protocols`` — ``personalization``, ``new_corpus``, ``new_emotion``.
* ``selection`` — ``select_by_corpus_cv`` (leave-one-*training*-corpus-out).
* ``transfer`` — alternatives to the LDA global head for unenrolled users (logistic, MLP, DANN,
  group DRO, mixup) on the same features, for ``benchmarks.transfer``.
* ``unseen`` — the ``Personalizer`` on corpora it never saw (leave one corpus out: ``loco_scores``,
  ``within_corpus_ceiling``, ``select_on_training_corpora``).
* ``report`` — ``FewShotRow``, ``rows_to_markdown``.
"""
from __future__ import annotations

from .protocols import OFFSETS, SPLIT_MODES, new_corpus, new_emotion, personalization
from .recipes import RECIPES, Recipe, RecipeConfig, ReferenceCache, make_recipe
from .report import FewShotRow, Predictions, rows_to_markdown
from .selection import select_by_corpus_cv

__all__ = ["personalization", "new_corpus", "new_emotion", "SPLIT_MODES", "OFFSETS", "Recipe", "RECIPES",
           "RecipeConfig", "ReferenceCache", "make_recipe", "FewShotRow", "Predictions", "rows_to_markdown",
           "select_by_corpus_cv"]
