"""Feature tables for the continual tests: constructed tasks and real corpus metadata with cheap features."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Table:
    """The columns of a ``FeatureTable`` that the scenario builders read."""

    X: np.ndarray
    y: np.ndarray
    speakers: np.ndarray
    corpora: np.ndarray
    languages: np.ndarray


def conflict_task(*, n_per_speaker: int = 60, dim: int = 8, n_classes: int = 4, n_tasks: int = 2,
                  speakers_per_task: int = 4, marker: float = 2.0, noise: float = 0.6, seed: int = 0) -> Table:
    """Tasks share the same clusters but rotate their labels; a marker dimension tells tasks apart.

    A model trained on task 1 alone relabels task 0's clusters (Naive forgets everything), while
    a model that keeps task 0 in mind can use the marker to solve both (Joint ~ 1.0).
    """
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, dim)) * 1.5
    X, y, spk, task = [], [], [], []
    for t in range(n_tasks):
        label_of = np.roll(np.arange(n_classes), t)
        for s in range(speakers_per_task):
            k = rng.integers(0, n_classes, n_per_speaker)
            marks = np.zeros((n_per_speaker, n_tasks))
            marks[:, t] = marker
            X.append(np.hstack([centers[k] + rng.normal(size=(n_per_speaker, dim)) * noise, marks]))
            y += [f"c{label_of[j]}" for j in k]
            spk += [f"task{t}_spk{s}"] * n_per_speaker
            task += [f"task{t}"] * n_per_speaker
    return Table(np.concatenate(X).astype(np.float32), np.array(y), np.array(spk), np.array(task), np.array(task))


def corpus_table(corpora, *, dim: int = 16, signal: float = 1.0, seed: int = 0) -> Table:
    """Real labels, speakers, corpora and languages of ``corpora`` with cheap synthetic features.

    The features carry a class signal plus a per-speaker offset, so heads can learn something and
    speaker normalization matters; the tests of this table are about who is where, not accuracy.
    """
    rng = np.random.default_rng(seed)
    recs = [r for c in corpora for r in c]
    y = np.array([r.emotion for r in recs])
    spk = np.array([r.speaker for r in recs])
    classes = {c: i for i, c in enumerate(sorted(set(y)))}
    offsets = {s: rng.normal(size=dim) * 2 for s in sorted(set(spk))}
    X = rng.normal(size=(len(recs), dim))
    X[np.arange(len(recs)), [classes[v] % dim for v in y]] += signal * 3
    X += np.stack([offsets[s] for s in spk])
    return Table(X.astype(np.float32), y, spk, np.array([r.corpus for r in recs]),
                 np.array([r.language for r in recs]))
