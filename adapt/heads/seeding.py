"""Seeded torch building blocks: a head's randomness comes from its own ``torch.Generator``.

``torch.manual_seed(seed)`` inside ``fit`` would reset the caller's global torch RNG (and, through
it, whatever the caller draws next). The torch heads instead make one local generator per
``fit`` / ``partial_fit`` / ``meta_fit`` (``local_generator(seed)``) and draw everything from it:
weight initialization (``seeded_linear``, PyTorch's default scheme), mini-batch order
(``torch.randperm(..., generator=g)``) and dropout masks (``SeededDropout``). So a fit is
reproducible under ``seed`` and leaves the global torch, numpy and ``random`` states untouched.

Example:
    >>> import torch
    >>> before = torch.random.get_rng_state()
    >>> a = seeded_linear(4, 2, local_generator(0)).weight
    >>> b = seeded_linear(4, 2, local_generator(0)).weight
    >>> bool(torch.equal(a, b)), bool(torch.equal(before, torch.random.get_rng_state()))
    (True, True)
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["local_generator", "seeded_linear", "SeededDropout", "use_generator"]


def local_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (the global RNG is not touched)."""
    return torch.Generator().manual_seed(int(seed))


def seeded_linear(d_in: int, d_out: int, generator: torch.Generator) -> nn.Linear:
    """``nn.Linear(d_in, d_out)`` initialized as PyTorch does by default, drawn from ``generator``.

    ``skip_init`` builds the layer without running its own (global-RNG) initialization.
    """
    lin = torch.nn.utils.skip_init(nn.Linear, d_in, d_out)
    nn.init.kaiming_uniform_(lin.weight, a=math.sqrt(5), generator=generator)
    bound = 1.0 / math.sqrt(d_in) if d_in > 0 else 0.0
    nn.init.uniform_(lin.bias, -bound, bound, generator=generator)
    return lin


class SeededDropout(nn.Module):
    """``nn.Dropout(p)`` whose masks come from ``self.generator`` while it is set (see ``use_generator``).

    It has no parameters, so a model's ``state_dict`` keys are those it has with ``nn.Dropout``.
    Without a generator it falls back to the global RNG (only reachable when training it by hand).
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class use_generator:
    """Context manager: every ``SeededDropout`` of ``module`` draws from ``generator`` inside the block.

    The generator is detached afterwards, so the module stays picklable and deep-copyable.
    """

    def __init__(self, module: nn.Module, generator: torch.Generator) -> None:
        self.drops = [m for m in module.modules() if isinstance(m, SeededDropout)]
        self.generator = generator

    def __enter__(self) -> None:
        for m in self.drops:
            m.generator = self.generator

    def __exit__(self, *exc) -> None:
        for m in self.drops:
            m.generator = None
