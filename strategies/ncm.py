"""Nearest-class-mean on frozen embeddings, as an Avalanche strategy.

``NearestClassMean`` keeps, for every class, the running sum and count of the embeddings it was
trained on (exact cumulative means, no stored example, no gradient step) and classifies with
Avalanche's ``NCMClassifier``. Classes never seen score ``-inf``, so a class-incremental model
never predicts a class it has not learned. Like Avalanche's ``StreamingLDA`` (which this project
registers as ``"slda"``), it cannot forget: a class mean only moves when that class gets new data.

Example:
    >>> import torch
    >>> strategy = NearestClassMean(input_size=8, num_classes=3)
    >>> strategy.model(torch.zeros(2, 8)).shape
    torch.Size([2, 3])
"""
from __future__ import annotations


import torch
from avalanche.models import NCMClassifier
from avalanche.training.templates import SupervisedTemplate

from .evaluation import silent_evaluator

__all__ = ["NearestClassMean", "NCMHead"]


class NCMHead(torch.nn.Module):
    """Avalanche ``NCMClassifier`` plus running sums: ``forward(x [B, D]) -> scores [B, C]``.

    Scores are negative distances to the class means (cosine geometry when ``cosine``: embeddings and means L2-normalized);
    unseen classes get ``-inf``.
    """

    def __init__(self, *, input_size: int, num_classes: int, cosine: bool = True):
        super().__init__()
        if input_size < 1 or num_classes < 1:
            raise ValueError(f"input_size and num_classes must be >= 1, got {input_size}, {num_classes}")
        self.input_size, self.num_classes, self.cosine = input_size, num_classes, cosine
        self.ncm = NCMClassifier(normalize=cosine)
        self.register_buffer("sums", torch.zeros(num_classes, input_size))
        self.register_buffer("counts", torch.zeros(num_classes))

    @torch.no_grad()
    def accumulate(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Add embeddings ``x [B, D]`` with labels ``y [B]`` to the running class sums."""
        if self.cosine:  # mean of unit vectors, as Avalanche's compute_class_means does
            x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
        self.sums.index_add_(0, y.long(), x.float())
        self.counts.index_add_(0, y.long(), torch.ones(len(y), device=self.counts.device))
        seen = torch.nonzero(self.counts > 0).flatten().tolist()
        means = {c: self.sums[c] / self.counts[c] for c in seen}
        if self.cosine:
            means = {c: m / m.norm().clamp_min(1e-12) for c, m in means.items()}
        self.ncm.replace_class_means_dict(means)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.full((len(x), self.num_classes), float("-inf"), device=x.device)
        if not self.ncm.class_means_dict:
            return torch.zeros_like(out)
        scores = self.ncm(x)
        k = min(scores.shape[1], self.num_classes)
        seen = (self.counts[:k] > 0).to(x.device)
        out[:, :k] = torch.where(seen, scores[:, :k], out[:, :k])
        return out


class NearestClassMean(SupervisedTemplate):
    """Nearest-class-mean classifier updated from each experience's embeddings (one pass).

    Arguments (keyword-only): ``input_size``, ``num_classes``, ``cosine`` (cosine geometry),
    ``train_mb_size``, ``eval_mb_size``, ``device``, ``plugins``, ``evaluator``.
    """

    def __init__(self, *, input_size: int, num_classes: int, cosine: bool = True,
                 train_mb_size: int = 256, eval_mb_size: int = 512, device: str | torch.device = "cpu",
                 plugins=None, evaluator=None, **kwargs):
        model = NCMHead(input_size=input_size, num_classes=num_classes, cosine=cosine)
        super().__init__(
            model=model, optimizer=None, criterion=torch.nn.CrossEntropyLoss(),  # type: ignore[arg-type]
            train_mb_size=train_mb_size, train_epochs=1, eval_mb_size=eval_mb_size, device=device,
            plugins=plugins or [], evaluator=evaluator or silent_evaluator(), **kwargs)

    def make_optimizer(self, **kwargs) -> None:
        """No optimizer: the class means are closed-form."""

    def training_epoch(self, **kwargs) -> None:
        for self.mbatch in self.dataloader:
            self._unpack_minibatch()
            self._before_training_iteration(**kwargs)
            self._before_forward(**kwargs)
            self.model.accumulate(self.mb_x, self.mb_y)
            self.mb_output = self.model(self.mb_x)
            self._after_forward(**kwargs)
            self.loss = self._make_empty_loss()
            self._before_update(**kwargs)
            self._after_update(**kwargs)
            self._after_training_iteration(**kwargs)
