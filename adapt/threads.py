"""Thread settings for torch work on small CPUs.

``torch_threads(n)`` runs a block with ``n`` intra-op threads and restores the previous setting.
"""
from __future__ import annotations

from contextlib import contextmanager

__all__ = ["torch_threads"]


@contextmanager
def torch_threads(n: int | None = 1):
    """Run a block with ``n`` torch intra-op threads (``None``: leave them), then restore them.

    Small heads train on tiny matrices, where thread hand-offs cost more than the arithmetic:
    on the 2-core development machine a ProtoNet meta-training run took 6 s with one thread and
    38 s with two while other jobs were running.
    """
    if n is None:
        yield
        return
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"num_threads must be a positive integer, got {n!r}")
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
