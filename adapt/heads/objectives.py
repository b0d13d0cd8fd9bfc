"""Training objectives beyond plain emotion cross-entropy: multi-task and domain-adversarial.

Both act on a head's *shared representation* (the pooled output of a sequence head, the last
hidden layer of ``MLPHead``, the projection of ``LinearHead``):

* ``"multitask"``: one extra linear classifier per auxiliary target (gender, corpus, ...), its
  cross-entropy added with weight ``aux_weight``: the representation is asked to carry them too.
* ``"adversarial"``: domain-adversarial training (DANN; Ganin & Lempitsky, 2015). A small MLP
  predicts each auxiliary target (corpus, speaker) from the representation through a
  gradient-reversal layer, so the shared layers are pushed to make the target unpredictable. The
  reversal strength follows DANN's schedule ``2 / (1 + exp(-10 p)) - 1`` over training progress
  ``p`` in [0, 1], times ``aux_weight``.

Auxiliary targets are passed to ``fit`` as ``aux={"corpus": [...], "gender": [...]}`` (one label
per clip); they are used only while training: the auxiliary classifiers are not part of the head's
state and predictions never depend on them. A target with a single value is skipped (nothing to
learn or to hide).

Hand-written because the gradient-reversal layer is four lines of ``torch.autograd.Function``;
the libraries that ship one (e.g. ``pytorch-adapt``) would add a framework around it.

Example:
    >>> import torch
    >>> aux = AuxiliaryHeads.build("adversarial", rep_dim=8, targets={"corpus": 3}, generator=torch.Generator())
    >>> z = torch.randn(4, 8, requires_grad=True)
    >>> loss = aux.loss(z, {"corpus": torch.tensor([0, 1, 2, 0])}, progress=0.5)
    >>> loss.backward(); z.grad.shape
    torch.Size([4, 8])
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch
from torch import nn

__all__ = ["OBJECTIVES", "GradientReversal", "grad_reverse", "AuxiliaryHeads", "check_objective", "encode_aux"]

#: objective name -> description (``None``: emotion cross-entropy only)
OBJECTIVES = {
    None: "emotion cross-entropy only",
    "multitask": "plus auxiliary classifiers (gender, corpus, ...) on the shared representation",
    "adversarial": "plus gradient-reversal classifiers that try to predict corpus / speaker (DANN)",
}


class GradientReversal(torch.autograd.Function):
    """Identity forward; gradient multiplied by ``-scale`` backward."""

    @staticmethod
    def forward(ctx, x, scale: float):  # noqa: D102
        ctx.scale = float(scale)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        return -ctx.scale * grad, None


def grad_reverse(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``x`` unchanged forward; ``-scale * grad`` backward."""
    return GradientReversal.apply(x, scale)


def check_objective(objective, aux_weight) -> None:
    """Validate a head's ``objective`` / ``aux_weight`` parameters (``ValueError`` naming the value)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {objective!r}")
    if isinstance(aux_weight, bool) or not isinstance(aux_weight, (int, float, np.number)) or not (
            math.isfinite(aux_weight) and aux_weight >= 0):
        raise ValueError(f"aux_weight must be a finite number >= 0, got {aux_weight!r}")


def encode_aux(aux: Mapping[str, object] | None, n: int, objective) -> dict[str, np.ndarray]:
    """Auxiliary labels -> integer codes ``{name: (n,) int64}``; targets with one value are dropped.

    Raises ``ValueError`` when an objective needs targets and none are given, or a target's length
    is not ``n``.
    """
    if objective is None:
        return {}
    if not aux:
        raise ValueError(f"objective={objective!r} needs auxiliary targets: fit(..., aux={{'corpus': [...]}})")
    if not isinstance(aux, Mapping):
        raise TypeError(f"aux must be a dict name -> labels, got {type(aux).__name__}")
    out = {}
    for name, labels in aux.items():
        arr = np.asarray(labels).astype(str)
        if arr.shape != (n,):
            raise ValueError(f"auxiliary target {name!r} has shape {arr.shape}, expected ({n},) (one per clip)")
        _, codes = np.unique(arr, return_inverse=True)
        if codes.max() > 0:
            out[str(name)] = codes.astype(np.int64)
    return out


class AuxiliaryHeads(nn.Module):
    """The training-only classifiers of an objective, one per auxiliary target."""

    def __init__(self, objective: str, heads: Mapping[str, nn.Module], aux_weight: float = 0.5) -> None:
        super().__init__()
        self.objective = objective
        self.aux_weight = float(aux_weight)
        self.heads = nn.ModuleDict(dict(heads))

    @classmethod
    def build(cls, objective: str, *, rep_dim: int, targets: Mapping[str, int], generator: torch.Generator,
              aux_weight: float = 0.5, hidden: int = 64) -> "AuxiliaryHeads":
        """Classifiers for ``targets`` (name -> number of values) on a ``rep_dim`` representation."""
        from .seeding import seeded_linear

        heads: dict[str, nn.Module] = {}
        for name, k in targets.items():
            if objective == "adversarial":
                heads[name] = nn.Sequential(seeded_linear(rep_dim, hidden, generator), nn.ReLU(),
                                            seeded_linear(hidden, int(k), generator))
            else:
                heads[name] = seeded_linear(rep_dim, int(k), generator)
        return cls(objective, heads, aux_weight)

    def loss(self, rep: torch.Tensor, targets: Mapping[str, torch.Tensor], *, progress: float) -> torch.Tensor:
        """The auxiliary loss on a batch's representation ``(B, E)`` (already scaled by ``aux_weight``)."""
        if not self.heads:
            return rep.new_zeros(())
        if self.objective == "adversarial":
            lam = 2.0 / (1.0 + math.exp(-10.0 * float(progress))) - 1.0
            rep = grad_reverse(rep, lam)
        total = rep.new_zeros(())
        for name, head in self.heads.items():
            total = total + nn.functional.cross_entropy(head(rep), targets[name])
        return self.aux_weight * total / len(self.heads)
