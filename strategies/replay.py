"""Avalanche plugins that replay *embeddings* (never audio) for heads on a frozen backbone.

- ``EmbeddingReplayPlugin``: a small buffer of stored embeddings ``[M, D]`` (float16 by default)
  with their labels, filled by reservoir sampling, either per class (``policy="class_balanced"``)
  or over the whole stream (``policy="reservoir"``); each training minibatch is extended with a
  random draw from the buffer.
- ``PrototypeReplayPlugin``: keeps only per-class running means and variances of the embeddings
  (``2 x C x D`` floats, no example at all) and extends each minibatch with pseudo-embeddings
  drawn from a diagonal Gaussian around each old class prototype.

Both work with any Avalanche ``SupervisedTemplate`` strategy (Naive, EWC, ...) whose inputs are
embeddings ``[B, D]``; an input of another shape (e.g. raw audio ``[B, T]`` with huge ``T`` is
indistinguishable, so we check the dimension against the first experience) raises
``EmbeddingShapeError``.

Example:
    >>> import torch
    >>> from avalanche.models import SimpleMLP
    >>> from avalanche.training import Naive
    >>> model = SimpleMLP(num_classes=4, input_size=16)
    >>> plugin = EmbeddingReplayPlugin(mem_size=40)
    >>> strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters()),
    ...                  plugins=[plugin])                                   # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from avalanche.training.plugins import SupervisedPlugin

from adapt.errors import EmbeddingShapeError
from adapt.stats import batch_moments, merge_moments

__all__ = ["EmbeddingReplayPlugin", "PrototypeReplayPlugin", "EmbeddingShapeError", "REPLAY_POLICIES"]

REPLAY_POLICIES = ("class_balanced", "reservoir")


def _experience_tensors(strategy) -> tuple[torch.Tensor, torch.Tensor]:
    """All ``(x [N, D], y [N])`` of the current training experience, read once in eval mode."""
    dataset = strategy.experience.dataset.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=4096, shuffle=False)
    xs, ys = [], []
    for batch in loader:
        xs.append(batch[0])
        ys.append(batch[1])
    return torch.cat(xs), torch.cat(ys).long()


def _check_embeddings(x: torch.Tensor, dim: int | None, who: str) -> int:
    if x.ndim != 2:
        raise EmbeddingShapeError(
            f"{who} replays embeddings of shape [batch, dim]; got a batch of shape {tuple(x.shape)}"
            " (embed the audio first: adapt.embed)")
    if dim is not None and x.shape[1] != dim:
        raise EmbeddingShapeError(f"{who}: embedding dim changed from {dim} to {x.shape[1]}")
    return int(x.shape[1])


def _extend_minibatch(strategy, x: torch.Tensor, y: torch.Tensor) -> None:
    """Append replayed ``(x, y)`` to the current minibatch (task label 0), in place."""
    mb = strategy.mbatch
    device = mb[0].device
    mb[0] = torch.cat([mb[0], x.to(device=device, dtype=mb[0].dtype)])
    mb[1] = torch.cat([mb[1], y.to(device=device, dtype=mb[1].dtype)])
    if len(mb) > 2:  # task labels: single-task scenarios use 0 everywhere
        mb[-1] = torch.cat([mb[-1], torch.zeros(len(y), dtype=mb[-1].dtype, device=device)])


class EmbeddingReplayPlugin(SupervisedPlugin):
    """Replay from a buffer of stored embeddings (never raw audio).

    Arguments:
        mem_size: total number of stored embeddings ``M`` (all classes together).
        policy: ``"class_balanced"`` (each seen class gets ``M // n_classes`` slots, filled by
            per-class reservoir sampling) or ``"reservoir"`` (uniform over every clip seen).
        replay_batch_size: embeddings added to each training minibatch (default: as many as the
            minibatch holds).
        dtype: storage type of the buffer; float16 halves its memory at no measurable cost.
        seed: seed of the sampling generator (reservoir keys and minibatch draws).

    Reservoir sampling is implemented with random keys: every clip gets a uniform key once and
    the buffer keeps the largest keys, which is a uniform sample of everything seen so far
    (per class, or overall) whatever the order of the experiences.
    """

    def __init__(self, *, mem_size: int = 200, policy: str = "class_balanced",
                 replay_batch_size: int | None = None, dtype: torch.dtype = torch.float16, seed: int = 0):
        super().__init__()
        if not isinstance(mem_size, int) or mem_size < 1:
            raise ValueError(f"mem_size must be a positive int, got {mem_size!r}")
        if policy not in REPLAY_POLICIES:
            raise ValueError(f"policy must be one of {REPLAY_POLICIES}, got {policy!r}")
        if replay_batch_size is not None and replay_batch_size < 1:
            raise ValueError(f"replay_batch_size must be >= 1, got {replay_batch_size!r}")
        self.mem_size = mem_size
        self.policy = policy
        self.replay_batch_size = replay_batch_size
        self.dtype = dtype
        self._gen = torch.Generator().manual_seed(seed)
        self.buffer_x: torch.Tensor | None = None   # [M, D]
        self.buffer_y = torch.zeros(0, dtype=torch.long)
        self._keys = torch.zeros(0)
        self._dim: int | None = None

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the stored embeddings and labels."""
        if self.buffer_x is None:
            return 0
        return self.buffer_x.element_size() * self.buffer_x.nelement() + 8 * len(self.buffer_y)

    def __len__(self) -> int:
        return len(self.buffer_y)

    def after_training_exp(self, strategy, **kwargs) -> None:
        x, y = _experience_tensors(strategy)
        self._dim = _check_embeddings(x, self._dim, type(self).__name__)
        self.update(x, y)

    def update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Merge new embeddings ``x [N, D]`` with labels ``y [N]`` into the buffer."""
        keys = torch.rand(len(y), generator=self._gen)
        old_x = self.buffer_x if self.buffer_x is not None else x.new_zeros((0, x.shape[1]))
        all_x = torch.cat([old_x.float(), x.float()])
        all_y = torch.cat([self.buffer_y, y.long()])
        all_k = torch.cat([self._keys, keys])
        if self.policy == "reservoir":
            keep = torch.argsort(all_k, descending=True)[: self.mem_size]
        else:
            classes = torch.unique(all_y)
            per_class = max(1, self.mem_size // len(classes))
            keep_parts = []
            for c in classes:
                idx = torch.nonzero(all_y == c).flatten()
                keep_parts.append(idx[torch.argsort(all_k[idx], descending=True)[:per_class]])
            keep = torch.cat(keep_parts)
        self.buffer_x = all_x[keep].to(self.dtype)
        self.buffer_y = all_y[keep]
        self._keys = all_k[keep]

    def before_forward(self, strategy, **kwargs) -> None:
        if not strategy.is_training or len(self) == 0:
            return
        _check_embeddings(strategy.mb_x, self._dim, type(self).__name__)
        n = self.replay_batch_size or len(strategy.mb_y)
        pick = torch.randint(0, len(self), (n,), generator=self._gen)
        _extend_minibatch(strategy, self.buffer_x[pick].float(), self.buffer_y[pick])


@dataclass
class _ClassStats:
    count: int = 0
    mean: torch.Tensor | None = None
    m2: torch.Tensor | None = None  # sum of squared deviations (adapt.stats.merge_moments)
    extra: dict = field(default_factory=dict)


class PrototypeReplayPlugin(SupervisedPlugin):
    """Replay pseudo-embeddings drawn around stored class prototypes (no example is stored).

    After each experience the plugin merges the experience's per-class mean and variance into
    running statistics; during training each minibatch is extended with ``replay_batch_size``
    samples ``mean_c + scale * std_c * N(0, I)`` of classes seen in earlier experiences.

    Arguments:
        replay_batch_size: pseudo-embeddings per minibatch (default: the minibatch size).
        scale: multiplies the per-dimension standard deviation of the draws.
        seed: seed of the draws.
    """

    def __init__(self, *, replay_batch_size: int | None = None, scale: float = 1.0, seed: int = 0):
        super().__init__()
        if replay_batch_size is not None and replay_batch_size < 1:
            raise ValueError(f"replay_batch_size must be >= 1, got {replay_batch_size!r}")
        if not scale >= 0:
            raise ValueError(f"scale must be >= 0, got {scale!r}")
        self.replay_batch_size = replay_batch_size
        self.scale = float(scale)
        self._gen = torch.Generator().manual_seed(seed)
        self.stats: dict[int, _ClassStats] = {}
        self._dim: int | None = None

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the prototypes (means and variances, float32)."""
        return sum(2 * 4 * int(s.mean.numel()) for s in self.stats.values() if s.mean is not None)

    def after_training_exp(self, strategy, **kwargs) -> None:
        x, y = _experience_tensors(strategy)
        self._dim = _check_embeddings(x, self._dim, type(self).__name__)
        self.update(x, y)

    def update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Merge the per-class mean/variance of ``x [N, D]`` (labels ``y [N]``) into the prototypes."""
        x = x.float()
        for c in torch.unique(y).tolist():
            s = self.stats.setdefault(int(c), _ClassStats())
            s.count, s.mean, s.m2 = merge_moments(s.count, s.mean, s.m2, *batch_moments(x[y == c]))

    def prototypes(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(classes [C], means [C, D], stds [C, D])`` of the classes seen so far."""
        classes = sorted(self.stats)
        means = torch.stack([self.stats[c].mean for c in classes])
        stds = torch.stack([(self.stats[c].m2 / max(1, self.stats[c].count - 1)).sqrt() for c in classes])
        return torch.tensor(classes), means, stds

    def before_forward(self, strategy, **kwargs) -> None:
        if not strategy.is_training or not self.stats:
            return
        _check_embeddings(strategy.mb_x, self._dim, type(self).__name__)
        classes, means, stds = self.prototypes()
        n = self.replay_batch_size or len(strategy.mb_y)
        pick = torch.randint(0, len(classes), (n,), generator=self._gen)
        noise = torch.randn((n, means.shape[1]), generator=self._gen)
        x = means[pick] + self.scale * stds[pick] * noise
        _extend_minibatch(strategy, x, classes[pick])
