"""Few-shot adaptation recipes compared by the protocols in ``scenarios.fewshot.protocols``.

A recipe is trained on the *training speakers* of a fold (``fit_reference``), then adapts to a
target from its labelled enrollment clips and predicts the target's test clips
(``personalize``). Recipes are built by name (``make_recipe("linear-ft+norm")``); ``+norm`` means
every speaker is standardized with ``adapt.normalization.SpeakerNormalizer`` (training speakers
from all their clips, emotions weighted equally; the target only from its enrollment clips).

=================  ==========================================================================
``si``             speaker-independent ``LinearHead``; ignores the shots (the reference)
``norm``           ``si`` on standardized speakers; the target's shots are used *unlabeled*
``prototype``      ``PrototypeHead`` of the shots, shrunk toward the training prototypes
``linear-ft``      ``si``'s head fine-tuned on the shots (L2-SP pull toward the reference)
``protonet``       ``ProtoNetHead`` meta-trained on personal episodes, prototypes of the shots
``maml``/``anil``  ``MAMLHead`` (first-order MAML / ANIL) meta-trained on personal episodes
=================  ==========================================================================

How the hyper-parameters were chosen (never on test speakers): all are fixed defaults set before
the first run on real data — ``LinearHead`` weight decay 1e-3 with 100 L-BFGS iterations, the
fine-tuning pull ``ft_decay`` 1e-2 with 30 iterations, prototype ``shrinkage`` 2 pseudo-clips,
``SpeakerNormalizer`` defaults, and meta-learning sizes small enough for a few seconds per fold on
2 CPU cores. For the new-corpus protocol ``scenarios.fewshot.select_by_corpus_cv`` can instead
choose ``ft_decay`` by leave-one-corpus-out CV on the training corpora
(``scenarios.fewshot.selection``); the benchmark reports both.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 8)).astype("float32"); y = np.array(["a", "b"] * 20)
    >>> m = make_recipe("prototype+norm").fit_reference(X, y, np.repeat(["s1", "s2"], 20))
    >>> m.personalize(X[:4], y[:4], X[4:6]).shape
    (2,)
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from sklearn.base import clone

from adapt.heads import LinearHead, PrototypeHead
from adapt.normalization import SpeakerNormalizer, standardize_by_speaker

__all__ = ["Recipe", "RECIPES", "make_recipe", "RecipeConfig", "ReferenceCache"]


@dataclass(frozen=True)
class RecipeConfig:
    """Knobs shared by the recipes (see the module docstring for how they were chosen).

    ``normalizer`` is an *unfitted* ``SpeakerNormalizer`` used as a prototype (scikit-learn style:
    every speaker gets a ``clone`` of it).
    """

    weight_decay: float = 1e-3        # LinearHead L2 toward 0 when training the reference
    ft_decay: float = 1e-2            # L2-SP pull toward the reference when fine-tuning on shots
    ft_iter: int = 30                 # L-BFGS iterations of the fine-tuning
    shrinkage: float = 2.0            # prototype pseudo-count of the training prototypes
    temperature: float = 0.1          # prototype temperature (cosine)
    meta_episodes: int = 200          # meta-training steps per fold
    seed: int = 0
    normalizer: SpeakerNormalizer = field(default_factory=SpeakerNormalizer)

    def new_normalizer(self) -> SpeakerNormalizer:
        """A fresh, unfitted copy of ``normalizer``."""
        return clone(self.normalizer)


class ReferenceCache:
    """The references trained on one fold, shared by the recipes of that fold.

    Recipes with the same ``reference_key`` (``si`` and ``linear-ft`` both use the speaker-
    independent ``LinearHead``) train it once; a reference is never modified after training
    (recipes copy it before adapting).
    """

    def __init__(self) -> None:
        self._refs: dict[tuple, Any] = {}

    def get(self, key: tuple, build: Callable[[], Any]) -> Any:
        if key not in self._refs:
            self._refs[key] = build()
        return self._refs[key]

    def __len__(self) -> int:
        return len(self._refs)


class Recipe:
    """Base recipe: optional speaker normalization around ``_fit`` (the reference) / ``_adapt``."""

    #: recipes with the same key train the same reference (``si`` and ``linear-ft`` share a head)
    reference_key: str = ""
    #: the target is standardized from its labelled shots (emotions weigh equally), else unlabelled
    _labelled_norm = True

    def __init__(self, *, normalize: bool, config: RecipeConfig) -> None:
        self.normalize, self.config = normalize, config
        self.reference: Any = None

    def fit_reference(self, X: np.ndarray, y: np.ndarray, speakers: np.ndarray, *,
                      X_normalized: np.ndarray | None = None, cache: ReferenceCache | None = None) -> "Recipe":
        """Train on the training speakers' ``X [N, D]``, ``y [N]``, ``speakers [N]``.

        ``X_normalized``: the same rows already standardized per speaker (saves recomputing it
        per recipe); ``cache``: shared by the recipes of one fold, so recipes with the same
        reference train it once.
        """
        def build():
            Z = X
            if self.normalize:
                Z = X_normalized if X_normalized is not None else standardize_by_speaker(
                    X, speakers, y, **self.config.normalizer.get_params())
            return self._fit(Z, np.asarray(y).astype(object), np.asarray(speakers))

        key = (self.reference_key or type(self).__name__, self.normalize)
        self.reference = cache.get(key, build) if cache is not None else build()
        return self

    def personalize(self, Xe: np.ndarray, ye: np.ndarray, Xt: np.ndarray, *,
                    pre_normalized: bool = False, restrict: bool = False) -> np.ndarray:
        """Adapt to a target's enrollment ``Xe, ye`` and predict its test clips ``Xt`` -> ``[M]`` labels.

        ``restrict=True`` limits predictions to the enrolled emotions (a new corpus defines its
        label set by what was enrolled); ``pre_normalized=True``: the caller already standardized
        ``Xe`` and ``Xt``.
        """
        if self.normalize and not pre_normalized:
            norm = self.config.new_normalizer().fit(Xe, ye if self._labelled_norm else None)
            Xe, Xt = norm.transform(Xe), norm.transform(Xt)
        ye = np.asarray(ye).astype(object)
        head = self._adapt(self.reference, Xe, ye, Xt)
        scores = head.predict_log_proba(Xt)   # [M, C] whatever C (decision_function is [M] for 2 classes)
        allowed = np.isin(head.classes_.astype(str), np.unique(ye.astype(str)))
        if restrict and allowed.any():
            scores = np.where(allowed[None, :], scores, -np.inf)
        return head.classes_[np.argmax(scores, axis=1)]

    def _fit(self, X, y, speakers) -> Any:
        """The reference trained on the training speakers."""
        raise NotImplementedError

    def _adapt(self, reference, Xe, ye, Xt):
        """The adapted head (anything with ``classes_`` and ``predict_log_proba``); never modifies ``reference``."""
        raise NotImplementedError


class SpeakerIndependent(Recipe):
    """A ``LinearHead`` on the training speakers; the shots only feed the normalizer (unlabeled)."""

    _labelled_norm = False
    reference_key = "linear"

    def _fit(self, X, y, speakers):
        return LinearHead(weight_decay=self.config.weight_decay, seed=self.config.seed).fit(X, y)

    def _adapt(self, reference, Xe, ye, Xt):
        return reference


class LinearFineTune(SpeakerIndependent):
    """The reference head fine-tuned on the shots with an L2 pull toward its weights (L2-SP)."""

    _labelled_norm = True

    def _adapt(self, reference, Xe, ye, Xt):
        head = copy.deepcopy(reference)
        head.weight_decay, head.finetune_iter = self.config.ft_decay, self.config.ft_iter
        return head.partial_fit(Xe, ye)


class Prototype(Recipe):
    """Cosine prototypes of the shots, shrunk toward the training speakers' prototypes."""

    reference_key = "prototype"

    def _fit(self, X, y, speakers):
        return PrototypeHead(temperature=self.config.temperature).fit(X, y)

    def _adapt(self, reference, Xe, ye, Xt):
        head = PrototypeHead(temperature=self.config.temperature, prior=reference, shrinkage=self.config.shrinkage)
        return head.fit(Xe, ye)


class Meta(Recipe):
    """A meta-learned head (``adapt.heads.protonet`` / ``adapt.heads.maml``) trained on personal
    episodes of the training speakers."""

    def __init__(self, *, kind: str, normalize: bool, config: RecipeConfig) -> None:
        super().__init__(normalize=normalize, config=config)
        self.kind = kind
        self.reference_key = f"meta-{kind}"

    def _fit(self, X, y, speakers):
        from adapt.heads import MAMLHead, ProtoNetHead

        shots = 2   # small support sets: every training speaker has >= 2 + 2 clips of most emotions
        if self.kind == "protonet":
            head = ProtoNetHead(episodes=self.config.meta_episodes, shots=shots, queries=2,
                                shrinkage=self.config.shrinkage, seed=self.config.seed)
        else:
            head = MAMLHead(algorithm=self.kind, first_order=self.kind == "maml", hidden=(128,),
                            episodes=max(1, self.config.meta_episodes // 4), meta_batch=4, shots=shots,
                            queries=2, seed=self.config.seed)
        return head.meta_fit(X, y, speakers)

    def _adapt(self, reference, Xe, ye, Xt):
        known = np.isin(ye, reference.classes_) if self.kind != "protonet" else np.ones(len(ye), bool)
        if not known.any():
            return reference
        return copy.deepcopy(reference).fit(Xe[known], ye[known])


def _factory(cls, **kw) -> Callable[[bool, RecipeConfig], Recipe]:
    return lambda normalize, config: cls(normalize=normalize, config=config, **kw)


_BASE: dict[str, Callable[[bool, RecipeConfig], Recipe]] = {
    "si": _factory(SpeakerIndependent),
    "prototype": _factory(Prototype),
    "linear-ft": _factory(LinearFineTune),
    "protonet": _factory(Meta, kind="protonet"),
    "maml": _factory(Meta, kind="maml"),
    "anil": _factory(Meta, kind="anil"),
}

#: every recipe name, with and without speaker normalization ("norm" = "si+norm")
RECIPES: tuple[str, ...] = tuple(["norm"] + [n for b in _BASE for n in (b, f"{b}+norm") if n != "si+norm"])


def make_recipe(name: str, config: RecipeConfig | None = None) -> Recipe:
    """A fresh recipe by name (``"prototype"``, ``"linear-ft+norm"``, ...)."""
    if name not in RECIPES:
        raise KeyError(f"unknown few-shot recipe {name!r}; known: {list(RECIPES)}")
    base, normalize = (("si", True) if name == "norm" else
                       (name[:-5], True) if name.endswith("+norm") else (name, False))
    return _BASE[base](normalize, config or RecipeConfig())
