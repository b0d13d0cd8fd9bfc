"""The training options every strategy shares, as one typed, frozen configuration.

Example:
    >>> TrainConfig(epochs=5).lr, TrainConfig(epochs=5).epochs
    (0.001, 5)
    >>> TrainConfig(lr=0)
    Traceback (most recent call last):
    ...
    ValueError: lr must be > 0, got 0
"""
from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    """Options shared by every registry strategy.

    The defaults were fixed before any benchmark was run (values common in the continual-learning
    literature for small MLPs), not tuned on test speakers; see docs/continual.md.

    Attributes:
        lr: Adam learning rate.
        epochs: passes over each experience.
        batch_size: training minibatch.
        weight_decay: Adam weight decay.
        eval_batch_size: evaluation minibatch.
        device: torch device (``"cpu"``, ``"cuda"``...).
    """

    lr: float = 1e-3
    epochs: int = 10
    batch_size: int = 64
    weight_decay: float = 0.0
    eval_batch_size: int = 512
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))
