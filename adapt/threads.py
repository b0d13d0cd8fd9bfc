"""Thread settings for torch and BLAS work on small CPUs.

``torch_threads(n)`` runs a block with ``n`` torch intra-op threads and restores the previous
setting; ``single_blas_thread`` runs a function with one BLAS thread (numpy's matrix products).
"""
from __future__ import annotations

import functools
from contextlib import contextmanager

__all__ = ["torch_threads", "single_blas_thread"]

_BLAS: list = []


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


def single_blas_thread(fn):
    """Decorator: run ``fn`` with one BLAS thread (threadpoolctl; a no-op where it is missing).

    The per-user model multiplies small matrices; on a busy CPU (a backbone's threads, other
    requests) multi-threaded OpenBLAS made a 39 x 1920 x 256 product ~10x slower than one thread.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not _BLAS:
            try:
                from threadpoolctl import ThreadpoolController

                _BLAS.append(ThreadpoolController())
            except Exception:  # noqa: BLE001 - threadpoolctl is optional; only speed depends on it
                _BLAS.append(None)
        if _BLAS[0] is None:
            return fn(*args, **kwargs)
        with _BLAS[0].limit(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper
