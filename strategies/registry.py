"""One registry of continual-learning strategies: ``make_strategy(name, model, **opts)``.

Every entry builds an Avalanche strategy (``avalanche.training``) for a small head on frozen
embeddings; our additions are Avalanche plugins/strategies too (``strategies.replay``,
``strategies.ncm``, ``strategies.slda``). The options every strategy shares are a
``strategies.TrainConfig`` (``lr``, ``epochs``, ``batch_size``, ``weight_decay``,
``eval_batch_size``, ``device``), passed as ``train=TrainConfig(...)`` or as keywords of the same
names; ``plugins`` adds Avalanche plugins and ``evaluator`` replaces the silent default
(``strategies.evaluation.silent_evaluator``).

Strategy-specific options are listed by ``describe(name)``; an option a strategy does not take
raises ``TypeError`` naming it; an unknown name raises ``KeyError`` listing the known ones.

Example:
    >>> from adapt.nn import MLPClassifier
    >>> model = MLPClassifier(input_size=384, num_classes=4)
    >>> strategy = make_strategy("ewc", model, ewc_lambda=100.0, epochs=5)
    >>> type(strategy).__name__, strategy.train_epochs
    ('EWC', 5)
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from avalanche.training import (
    AGEM, EWC, GEM, Cumulative, GDumb, JointTraining, LwF, Naive, Replay, StreamingLDA,
)
from avalanche.training.plugins import ReplayPlugin
from avalanche.training.storage_policy import ClassBalancedBuffer

from adapt.nn import head_dims

from .config import TrainConfig
from .evaluation import silent_evaluator
from .ncm import NearestClassMean
from .replay import EmbeddingReplayPlugin, PrototypeReplayPlugin
from .si import CopyingSIPlugin
from .slda import MinibatchStreamingLDA

__all__ = ["make_strategy", "STRATEGIES", "StrategySpec", "describe", "predict_scores", "Common"]


@dataclass(frozen=True)
class Common:
    """What every builder receives: the shared ``TrainConfig``, extra plugins and the evaluator."""

    train: TrainConfig
    plugins: Sequence = ()
    evaluator: object = None


@dataclass(frozen=True)
class StrategySpec:
    """A registry entry: ``build(model, common, **opts)`` and a one-line description."""

    build: Callable
    description: str
    trains_jointly: bool = False  # JointTraining: one call on the whole stream (upper bound)

    def options(self) -> dict:
        """Strategy-specific keyword options with their defaults."""
        sig = inspect.signature(self.build)
        return {k: p.default for k, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY}


def _sgd(model, common: Common, cls, plugins=(), **kw):
    t = common.train
    opt = torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    return cls(model=model, optimizer=opt, criterion=torch.nn.CrossEntropyLoss(),
               train_mb_size=t.batch_size, train_epochs=t.epochs, eval_mb_size=t.eval_batch_size, device=t.device,
               plugins=list(common.plugins) + list(plugins), evaluator=common.evaluator, **kw)


def _naive(model, common):
    return _sgd(model, common, Naive)


def _joint(model, common):
    return _sgd(model, common, JointTraining)


def _cumulative(model, common):
    return _sgd(model, common, Cumulative)


def _ewc(model, common, *, ewc_lambda: float = 100.0):
    return _sgd(model, common, EWC, ewc_lambda=ewc_lambda)


def _online_ewc(model, common, *, ewc_lambda: float = 100.0, decay_factor: float = 0.9):
    return _sgd(model, common, EWC, ewc_lambda=ewc_lambda, mode="online", decay_factor=decay_factor,
                keep_importance_data=True)


def _si(model, common, *, si_lambda: float = 1.0, eps: float = 1e-7):
    # Avalanche's SynapticIntelligence is a no-op on CPU (its weight snapshots are views); same
    # plugin with copied snapshots, on Naive.
    return _sgd(model, common, Naive, plugins=[CopyingSIPlugin(si_lambda=si_lambda, eps=eps)])


def _lwf(model, common, *, alpha: float = 1.0, temperature: float = 2.0):
    return _sgd(model, common, LwF, alpha=alpha, temperature=temperature)


def _replay(model, common, *, mem_size: int = 200):
    return _sgd(model, common, Replay, mem_size=mem_size)


def _replay_balanced(model, common, *, mem_size: int = 200):
    policy = ClassBalancedBuffer(max_size=mem_size, adaptive_size=True)
    return _sgd(model, common, Naive, plugins=[ReplayPlugin(mem_size=mem_size, storage_policy=policy)])


def _gem(model, common, *, patterns_per_exp: int = 50, memory_strength: float = 0.5):
    return _sgd(model, common, GEM, patterns_per_exp=patterns_per_exp, memory_strength=memory_strength)


def _agem(model, common, *, patterns_per_exp: int = 50, sample_size: int = 64):
    return _sgd(model, common, AGEM, patterns_per_exp=patterns_per_exp, sample_size=sample_size)


def _gdumb(model, common, *, mem_size: int = 200):
    return _sgd(model, common, GDumb, mem_size=mem_size)


def _embedding_replay(model, common, *, mem_size: int = 200, policy: str = "class_balanced",
                      replay_batch_size: int | None = None, seed: int = 0):
    plugin = EmbeddingReplayPlugin(mem_size=mem_size, policy=policy, replay_batch_size=replay_batch_size,
                                   seed=seed)
    return _sgd(model, common, Naive, plugins=[plugin])


def _prototype_replay(model, common, *, replay_batch_size: int | None = None, scale: float = 1.0,
                      seed: int = 0):
    plugin = PrototypeReplayPlugin(replay_batch_size=replay_batch_size, scale=scale, seed=seed)
    return _sgd(model, common, Naive, plugins=[plugin])


def _ncm(model, common: Common, *, cosine: bool = True):
    input_size, num_classes = head_dims(model)
    t = common.train
    return NearestClassMean(input_size=input_size, num_classes=num_classes, cosine=cosine,
                            train_mb_size=max(t.batch_size, 256), eval_mb_size=t.eval_batch_size, device=t.device,
                            plugins=list(common.plugins), evaluator=common.evaluator)


def _slda(model, common, *, shrinkage: float = 1e-4, streaming_update_sigma: bool = True):
    input_size, num_classes = head_dims(model)
    t = common.train
    return MinibatchStreamingLDA(input_size=input_size, num_classes=num_classes, shrinkage=shrinkage,
                                 streaming_update_sigma=streaming_update_sigma, train_mb_size=max(t.batch_size, 256),
                                 eval_mb_size=t.eval_batch_size, device=t.device, plugins=list(common.plugins),
                                 evaluator=common.evaluator)


STRATEGIES: dict[str, StrategySpec] = {
    "naive": StrategySpec(_naive, "fine-tune on each experience in turn (lower bound)"),
    "joint": StrategySpec(_joint, "train once on all experiences together (upper bound, not continual)",
                          trains_jointly=True),
    "cumulative": StrategySpec(_cumulative, "retrain on all data seen so far (stores everything)"),
    "ewc": StrategySpec(_ewc, "Elastic Weight Consolidation (Kirkpatrick et al. 2017)"),
    "online-ewc": StrategySpec(_online_ewc, "online EWC with decaying importance (Schwarz et al. 2018)"),
    "si": StrategySpec(_si, "Synaptic Intelligence (Zenke et al. 2017)"),
    "lwf": StrategySpec(_lwf, "Learning without Forgetting: distil the previous model (Li & Hoiem 2017)"),
    "replay": StrategySpec(_replay, "Avalanche replay, reservoir buffer of stored examples"),
    "replay-balanced": StrategySpec(_replay_balanced, "Avalanche replay, class-balanced buffer"),
    "gem": StrategySpec(_gem, "Gradient Episodic Memory (Lopez-Paz & Ranzato 2017)"),
    "agem": StrategySpec(_agem, "Averaged GEM (Chaudhry et al. 2019)"),
    "gdumb": StrategySpec(_gdumb, "GDumb: greedy class-balanced buffer, retrain from it"),
    "embedding-replay": StrategySpec(_embedding_replay, "replay of stored float16 embeddings (ours)"),
    "prototype-replay": StrategySpec(_prototype_replay,
                                     "replay Gaussian pseudo-embeddings around class prototypes (ours)"),
    "ncm": StrategySpec(_ncm, "nearest class mean on the embeddings, running means (no training)"),
    "slda": StrategySpec(_slda, "Avalanche streaming LDA on the embeddings, minibatch covariance update (Hayes & Kanan 2020)"),
}

def _spec(name: str) -> StrategySpec:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}") from None


def describe(name: str) -> dict:
    """The description and the options (with defaults) of one strategy."""
    spec = _spec(name)
    return {"name": name, "description": spec.description, "common": dataclasses.asdict(TrainConfig()),
            "options": spec.options()}


def make_strategy(name: str, model: torch.nn.Module, *, train: TrainConfig | None = None, plugins=None,
                  evaluator=None, **opts):
    """Build the registered Avalanche strategy ``name`` around ``model``.

    Arguments:
        name: a key of ``STRATEGIES`` (``"naive"``, ``"ewc"``, ``"replay"``, ``"joint"``, ...).
        model: a head ``[B, D] -> logits [B, C]``, e.g. ``adapt.nn.MLPClassifier(...)``; ``"ncm"``
            and ``"slda"`` classify the embeddings directly and only read ``D`` and ``C`` from it.
        train: the shared options (``TrainConfig``); fields of it may also be given as keywords
            (``epochs=5``), which override ``train``.
        plugins: extra Avalanche plugins; evaluator: an ``EvaluationPlugin`` (default: silent).
        **opts: strategy-specific options (``describe(name)["options"]``).

    Returns an ``avalanche.training`` template; train it with ``strategy.train(experience)``
    (``"joint"``: ``strategy.train(benchmark.train_stream)``).
    """
    spec = _spec(name)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    shared = {k: opts.pop(k) for k in list(opts) if k in TrainConfig.field_names()}
    train = dataclasses.replace(train or TrainConfig(), **shared)
    allowed = spec.options()
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        raise TypeError(f"strategy {name!r} does not take option(s) {unknown}; "
                        f"its options: {sorted(allowed) or 'none'}; shared options: {list(TrainConfig.field_names())}")
    common = Common(train=train, plugins=tuple(plugins or ()), evaluator=evaluator or silent_evaluator())
    return spec.build(model, common, **opts)


@torch.no_grad()
def predict_scores(strategy, x: torch.Tensor, *, batch_size: int = 2048) -> torch.Tensor:
    """Class scores ``[N, C]`` of a trained strategy's classifier on embeddings ``x [N, D]``."""
    model = strategy.model
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].to(strategy.device)
        scores = model(xb)
        if isinstance(strategy, StreamingLDA):  # SLDA's model is the feature extractor
            scores = strategy.predict(scores)
        out.append(scores.cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros((0, 0))
