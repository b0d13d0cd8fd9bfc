"""Continual scenarios over *audio clips*, for users who fine-tune the encoder.

The embeddings path (``scenarios.continual.builders``) trains heads on cached embeddings. When the
top encoder layers are unfrozen (``adapt.finetune.EncoderClassifier``) the model needs the audio
itself, so ``audio_scenario(scenario, table)`` turns the *same* scenario into an Avalanche benchmark
over audio: same experiences, same rows, same held-out speakers (nothing is re-split here). The
datasets and batches are the runtime's (``adapt.finetune.data``); this module adds only what is
Avalanche-specific.

A table without embeddings (``scenarios.tables.FeatureTable.from_clips``) is enough for users who
never compute them: the builders' speaker hold-outs depend only on labels, speakers, corpora and
the seed, never on ``X``, so ``audio_scenario(language_incremental(table, normalize="none"), table)``
works.

Why a wrapper around the named batch: Avalanche's strategies read a minibatch positionally
(``mbatch[0]`` is the model input, ``mbatch[1]`` the targets, ``mbatch[-1]`` the task labels) and
call ``.to(device)`` on every element. Waveforms and their lengths must reach the model together,
so the Avalanche collate (``AvalancheAudioCollate``) returns ``[PaddedAudio, labels, tasks]``,
where ``PaddedAudio`` is the smallest object that carries both and has ``.to``; the model
(``EncoderClassifier``) accepts it as its single argument.

Example:
    >>> from scenarios.continual import language_incremental          # doctest: +SKIP
    >>> table = FeatureTable.from_clips(["ravdess", "emodb"])          # doctest: +SKIP
    >>> audio = audio_scenario(language_incremental(table, normalize="none"), table, max_seconds=3.0)  # doctest: +SKIP
    >>> audio.benchmark.train_stream[0].dataset[0][0].shape           # doctest: +SKIP
    torch.Size([48000])
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from adapt.finetune.data import AudioClipDataset, collate_audio

from ..tables import clip_paths

__all__ = ["AvalancheAudioCollate", "as_avalanche", "AudioScenario", "audio_scenario"]


class AvalancheAudioCollate:
    """Avalanche's collate: items ``(waveform, label, task)`` -> ``[PaddedAudio, labels, tasks]``.

    A class (not a closure) so datasets stay picklable for DataLoader workers.
    """

    def __call__(self, items: Sequence[tuple]) -> list:
        batch = collate_audio([(it[0], it[1]) for it in items])
        tasks = torch.as_tensor([int(it[-1]) for it in items], dtype=torch.long)
        return [batch.audio, batch.labels, tasks]

    def __eq__(self, other: object) -> bool:  # Avalanche concatenates datasets only with equal collates
        return isinstance(other, AvalancheAudioCollate)

    def __hash__(self) -> int:
        return hash(AvalancheAudioCollate)


def as_avalanche(dataset: AudioClipDataset, *, task_label: int = 0):
    """``dataset`` as an Avalanche classification dataset (items ``(wave, label, task)``),
    collated by ``AvalancheAudioCollate``."""
    from avalanche.benchmarks.utils import _make_taskaware_classification_dataset

    return _make_taskaware_classification_dataset(dataset, task_labels=task_label, targets=dataset.targets,
                                                  collate_fn=AvalancheAudioCollate())


# ----------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class AudioScenario:
    """A ``ContinualScenario``'s experiences over audio.

    Attributes:
        scenario: the source ``ContinualScenario`` (its splits, speakers, options, fingerprint).
        benchmark: Avalanche benchmark (``dataset_benchmark``; one task label) whose experience
            datasets yield ``(waveform, label, task)`` and collate to ``[PaddedAudio, labels, tasks]``.
        train_datasets / test_datasets: the ``AudioClipDataset`` of each experience.
        max_seconds: the crop used (``None``: whole clips).
    """

    scenario: Any = field(repr=False)
    benchmark: Any = field(repr=False)
    train_datasets: tuple[AudioClipDataset, ...] = field(repr=False)
    test_datasets: tuple[AudioClipDataset, ...] = field(repr=False)
    max_seconds: float | None = None

    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def fingerprint(self) -> str:
        """The source scenario's fingerprint plus the crop (runs resume on it)."""
        return f"{self.scenario.fingerprint}-audio{self.max_seconds}"

    @property
    def classes(self) -> tuple[str, ...]:
        return self.scenario.classes

    @property
    def experience_names(self) -> tuple[str, ...]:
        return self.scenario.experience_names

    @property
    def n_experiences(self) -> int:
        return self.scenario.n_experiences

    @property
    def train_speakers(self) -> tuple[tuple[str, ...], ...]:
        return self.scenario.train_speakers

    @property
    def test_speakers(self) -> tuple[tuple[str, ...], ...]:
        return self.scenario.test_speakers


def audio_scenario(scenario, clips, *, max_seconds: float | None = None, root: str | None = None) -> AudioScenario:
    """The Avalanche benchmark over audio for ``scenario`` (any ``scenarios.continual`` builder's output).

    Arguments:
        scenario: a ``ContinualScenario`` built from a table of ``N`` rows.
        clips: that table (a ``ClipTable`` or a ``FeatureSet``, see ``clip_paths``) or ``N`` paths.
        max_seconds: crop every clip to its first ``max_seconds`` (``None``: whole clips).

    Experience ``i`` trains on the rows ``scenario.train_indices[i]`` with the labels of
    ``scenario.train_data[i]`` and tests on ``scenario.test_indices[i]``: the same clips and
    held-out speakers as the embeddings path.
    """
    from avalanche.benchmarks import dataset_benchmark

    if not hasattr(scenario, "train_indices") or not hasattr(scenario, "train_data"):
        raise TypeError(f"scenario must be a ContinualScenario, got {type(scenario).__name__}")
    if isinstance(clips, (list, tuple, np.ndarray)):
        paths = np.asarray(clips, dtype=str)
    else:
        paths = clip_paths(clips, root=root)
    n_rows = 1 + max(int(a.max()) for a in scenario.train_indices + scenario.test_indices if len(a))
    if len(paths) < n_rows:
        raise ValueError(f"clips has {len(paths)} rows but the scenario indexes row {n_rows - 1}: "
                         "pass the table the scenario was built from")
    train, test = [], []
    for kind, indices, data, out in (("train", scenario.train_indices, scenario.train_data, train),
                                     ("test", scenario.test_indices, scenario.test_data, test)):
        for rows, (_x, y) in zip(indices, data):
            out.append(AudioClipDataset(paths=paths[rows].tolist(), labels=y.numpy(), max_seconds=max_seconds))
    benchmark = dataset_benchmark([as_avalanche(d) for d in train], [as_avalanche(d) for d in test])
    return AudioScenario(scenario=scenario, benchmark=benchmark, train_datasets=tuple(train),
                         test_datasets=tuple(test), max_seconds=max_seconds)
