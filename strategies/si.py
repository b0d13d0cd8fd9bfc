"""Synaptic Intelligence that works on CPU: Avalanche's plugin plus copies of the weight snapshots.

Avalanche 0.6's ``SynapticIntelligencePlugin.extract_weights`` stores
``param.detach().cpu().flatten()``; on a CPU model that is a *view* of the live parameter, so the
"old" weights move with the new ones, every path-integral step is zero and SI never penalizes
anything (measured here: identical matrices to Naive for ``si_lambda`` from 1 to 1e8). The
snapshots taken at the start of an experience and of each iteration are cloned right after
Avalanche takes them; everything else (importance, clipping, penalty) is Avalanche's.

Example:
    >>> plugin = CopyingSIPlugin(si_lambda=1.0)
"""
from __future__ import annotations

from avalanche.training.plugins import SynapticIntelligencePlugin

__all__ = ["CopyingSIPlugin"]


def _detach_copies(target) -> None:
    for item in target.values():
        item.data = item.data.clone()


class CopyingSIPlugin(SynapticIntelligencePlugin):
    """``SynapticIntelligencePlugin`` whose weight snapshots are copies, not views (see module doc)."""

    def before_training_exp(self, strategy, **kwargs):
        super().before_training_exp(strategy, **kwargs)
        _detach_copies(self.ewc_data[0])  # weights at the start of the experience

    def before_training_iteration(self, strategy, **kwargs):
        super().before_training_iteration(strategy, **kwargs)
        _detach_copies(self.syn_data["old_theta"])  # weights before this update
