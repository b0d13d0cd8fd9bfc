"""Speaker-aware few-shot episodes on embeddings, sampled with learn2learn's task transforms.

An episode is an N-way few-shot task: ``shots`` support clips and ``queries`` query clips of each
of ``ways`` emotions. Two kinds, matching the two ways a model meets a new person:

* ``mode="personal"`` — support **and** query come from one speaker (personalization: adapt to
  this speaker from their few clips, then recognise their other clips). Built per speaker with
  ``learn2learn.data.TaskDataset([NWays, KShots, LoadData])`` over that speaker's clips.
* ``mode="cross"`` — support from one speaker, query from another (speaker-independent transfer).
  Both sides use ``FusedNWaysKShots`` restricted to the shared emotions.

Labels in an episode are the **global** class indices (into ``EpisodeSampler.classes``, the
sorted labels, of their own type: ``np.unique(y)``, as a head's ``classes_``) so that a head can
keep one output per emotion; ``Episode.ways()`` lists which ones are present. learn2learn
samples with Python's ``random`` module; the sampler keeps its own ``random`` state and swaps it
in around each draw, so episodes are reproducible under ``seed`` and the caller's global random
state is left untouched.

Example:
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(40, 4)).astype("float32")
    >>> y = np.array(["sad", "happy"] * 20); spk = np.repeat(["a", "b"], 20)
    >>> ep = EpisodeSampler(X, y, spk, ways=2, shots=2, queries=3, seed=0).sample()
    >>> ep.support_x.shape, ep.query_x.shape, len(set(ep.speakers))
    (torch.Size([4, 4]), torch.Size([6, 4]), 1)
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from ..validation import check_labels

__all__ = ["Episode", "EpisodeSampler", "EPISODE_MODES"]

EPISODE_MODES = ("personal", "cross")


def _l2l():
    try:
        from learn2learn.data import MetaDataset, TaskDataset
        from learn2learn.data.transforms import FusedNWaysKShots, KShots, LoadData, NWays
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("episode sampling needs learn2learn: install the 'meta' extra "
                          "(pip install 'ser-adapt[meta]'; see setup.sh)") from exc
    return MetaDataset, TaskDataset, NWays, KShots, LoadData, FusedNWaysKShots


@dataclass(frozen=True)
class Episode:
    """One few-shot task. ``*_x``: float32 ``[n, D]``; ``*_y``: int64 ``[n]`` global class indices."""

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    speakers: tuple[str, str]   # (support speaker, query speaker); equal in personal mode

    def ways(self) -> list[int]:
        """Sorted global class indices present in the episode."""
        return sorted(set(self.support_y.tolist()))


class EpisodeSampler:
    """Draws speaker-aware N-way K-shot episodes from embeddings.

    Args:
        X: ``[N, D]`` embeddings; y: ``[N]`` labels; speakers: ``[N]`` speaker ids.
        ways: emotions per episode (capped per speaker at the emotions with enough clips; an
            episode never has fewer than ``min_ways``).
        shots, queries: support and query clips per emotion.
        mode: ``"personal"`` or ``"cross"`` (see the module docstring).
        seed: makes the episode sequence reproducible.

    Raises:
        ValueError: bad arguments, or no speaker (pair) has ``min_ways`` emotions with enough clips.
    """

    def __init__(self, X, y, speakers, *, ways: int = 5, shots: int = 5, queries: int = 5,
                 mode: str = "personal", min_ways: int = 2, seed: int = 0) -> None:
        MetaDataset, TaskDataset, NWays, KShots, LoadData, Fused = _l2l()
        if mode not in EPISODE_MODES:
            raise ValueError(f"mode must be one of {EPISODE_MODES}, got {mode!r}")
        for name, v in (("ways", ways), ("shots", shots), ("queries", queries), ("min_ways", min_ways)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y)
        spk = np.asarray(speakers).astype(str)
        if X.ndim != 2 or y.shape != (len(X),) or spk.shape != (len(X),):
            raise ValueError(f"need X [N, D], y [N], speakers [N]; got {X.shape}, {y.shape}, {spk.shape}")
        y = check_labels(y)
        self.classes: list = np.unique(y).tolist()
        self.mode, self.ways, self.shots, self.queries, self.min_ways = mode, int(ways), int(shots), int(queries), int(min_ways)
        self._Fused, self._TaskDataset, self._LoadData = Fused, TaskDataset, LoadData
        index = {c: i for i, c in enumerate(self.classes)}
        y_idx = np.array([index[c] for c in y.tolist()], dtype=np.int64)
        need = shots + queries if mode == "personal" else min(shots, queries)
        self._per_speaker: dict[str, tuple] = {}
        for s in sorted(set(spk.tolist())):
            rows = np.flatnonzero(spk == s)
            counts = np.bincount(y_idx[rows], minlength=len(self.classes))
            ok = np.flatnonzero(counts >= need)
            if len(ok) < min_ways:
                continue
            rows = rows[np.isin(y_idx[rows], ok)]
            ds = torch.utils.data.TensorDataset(torch.from_numpy(X[rows]), torch.from_numpy(y_idx[rows]))
            meta = MetaDataset(ds)
            tasks = None
            if mode == "personal":
                n = min(self.ways, len(ok))
                tasks = TaskDataset(meta, [NWays(meta, n=n), KShots(meta, k=shots + queries), LoadData(meta)],
                                    num_tasks=-1)
            self._per_speaker[s] = (meta, tasks, counts)
        if mode == "personal" and not self._per_speaker:
            raise ValueError(f"no speaker has {min_ways} emotions with {need} clips each "
                             f"(shots={shots} + queries={queries})")
        self._pairs = self._cross_pairs() if mode == "cross" else []
        if mode == "cross" and not self._pairs:
            raise ValueError(f"no two speakers share {min_ways} emotions with {shots} support / {queries} query clips")
        self._state = random.Random(seed).getstate()
        self._rng = np.random.default_rng(seed)

    @property
    def speakers(self) -> list[str]:
        """Speakers that can contribute episodes."""
        return list(self._per_speaker)

    def _cross_pairs(self) -> list[tuple[str, str, list[int]]]:
        pairs = []
        for a, (_, _, ca) in self._per_speaker.items():
            for b, (_, _, cb) in self._per_speaker.items():
                shared = np.flatnonzero((ca >= self.shots) & (cb >= self.queries)).tolist()
                if a != b and len(shared) >= self.min_ways:
                    pairs.append((a, b, shared))
        return pairs

    def _draw(self, fn):
        outer = random.getstate()
        random.setstate(self._state)
        try:
            return fn()
        finally:
            self._state = random.getstate()
            random.setstate(outer)

    def sample(self) -> Episode:
        """One episode (see ``Episode``)."""
        if self.mode == "personal":
            spk = self.speakers[self._rng.integers(len(self.speakers))]
            x, y = self._draw(self._per_speaker[spk][1].sample)
            sup, qry = [], []
            for c in torch.unique(y).tolist():
                rows = torch.nonzero(y == c).flatten()
                sup.append(rows[:self.shots])
                qry.append(rows[self.shots:])
            s, q = torch.cat(sup), torch.cat(qry)
            return Episode(x[s], y[s], x[q], y[q], (spk, spk))
        a, b, shared = self._pairs[self._rng.integers(len(self._pairs))]
        n = min(self.ways, len(shared))
        chosen = sorted(self._rng.choice(shared, size=n, replace=False).tolist())

        def side(speaker: str, k: int):
            meta = self._per_speaker[speaker][0]
            task = self._TaskDataset(meta, [self._Fused(meta, n=n, k=k, filter_labels=chosen),
                                            self._LoadData(meta)], num_tasks=-1)
            return task.sample()

        sx, sy = self._draw(lambda: side(a, self.shots))
        qx, qy = self._draw(lambda: side(b, self.queries))
        return Episode(sx, sy, qx, qy, (a, b))

    def __iter__(self) -> Iterator[Episode]:
        while True:
            yield self.sample()

    def take(self, n: int) -> list[Episode]:
        """``n`` episodes as a list."""
        return [self.sample() for _ in range(n)]
