"""Continual scenarios over *audio clips*, for users who fine-tune the encoder.

The embeddings path (``scenarios.continual``) trains heads on cached embeddings. When the top
encoder layers are unfrozen (``adapt.finetune.EncoderClassifier``) the model needs the audio
itself, so this module turns the *same* scenarios into Avalanche benchmarks over audio:

- ``AudioClipDataset``: a torch ``Dataset`` over clip paths and label indices; clips load lazily
  with ``adapt.load_audio`` (optionally cropped to ``max_seconds`` for speed); ``targets`` is the
  attribute Avalanche reads.
- ``collate_audio``: pads a list of ``(waveform, label)`` items into a named ``AudioBatch``
  (``waveforms [B, T]``, ``lengths [B]``, ``labels [B]``).
- ``audio_scenario(scenario, clips)``: the Avalanche benchmark over audio for a
  ``ContinualScenario`` built by any ``scenarios.continual`` builder: same experiences, same rows,
  same held-out speakers (the splits are C's; nothing is re-split here).
- ``clip_table(corpora)``: a table of clips *without* embeddings, for users who never compute
  them: the ``scenarios.continual`` builders accept it (its ``X`` is a one-column placeholder;
  which speakers are held out depends only on labels, speakers, corpora and the seed, never on
  ``X``), so ``audio_scenario(language_incremental(table, normalize="none"), table)`` works.

Why a wrapper around the named batch: Avalanche's strategies read a minibatch positionally
(``mbatch[0]`` is the model input, ``mbatch[1]`` the targets, ``mbatch[-1]`` the task labels) and
call ``.to(device)`` on every element. Waveforms and their lengths must reach the model together,
so the Avalanche collate (``AvalancheAudioCollate``) returns ``[PaddedAudio, labels, tasks]``,
where ``PaddedAudio`` is the smallest object that carries both and has ``.to``; the model
(``EncoderClassifier``) accepts it as its single argument.

Example:
    >>> from scenarios.continual import language_incremental          # doctest: +SKIP
    >>> table = clip_table(["ravdess", "emodb"])                       # doctest: +SKIP
    >>> audio = audio_scenario(language_incremental(table, normalize="none"), table, max_seconds=3.0)  # doctest: +SKIP
    >>> audio.benchmark.train_stream[0].dataset[0][0].shape           # doctest: +SKIP
    torch.Size([48000])
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["AudioClipDataset", "AudioBatch", "PaddedAudio", "collate_audio", "AvalancheAudioCollate",
           "ClipTable", "clip_table", "clip_paths", "AudioScenario", "audio_scenario", "run_audio"]


# ----------------------------------------------------------------------------- batches


@dataclass(frozen=True)
class PaddedAudio:
    """Right-padded waveforms ``(batch, samples)`` float32 and valid lengths ``(batch,)`` int64.

    The model input inside Avalanche minibatches; ``to(device)`` moves both tensors.
    """

    waveforms: torch.Tensor
    lengths: torch.Tensor

    def to(self, device, non_blocking: bool = False) -> "PaddedAudio":
        return PaddedAudio(self.waveforms.to(device, non_blocking=non_blocking),
                           self.lengths.to(device, non_blocking=non_blocking))

    def __len__(self) -> int:
        return int(self.waveforms.shape[0])

    @property
    def shape(self) -> torch.Size:  # some Avalanche code sizes a minibatch with mb_x.shape[0]
        return self.waveforms.shape


@dataclass(frozen=True)
class AudioBatch:
    """A named batch: ``waveforms`` ``(B, T)``, ``lengths`` ``(B,)`` samples, ``labels`` ``(B,)`` int64."""

    waveforms: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor

    @property
    def audio(self) -> PaddedAudio:
        return PaddedAudio(self.waveforms, self.lengths)

    def to(self, device) -> "AudioBatch":
        return AudioBatch(self.waveforms.to(device), self.lengths.to(device), self.labels.to(device))


def _pad(waves: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    from adapt.backbones import pad_batch

    return pad_batch(list(waves))


def collate_audio(items: Sequence[tuple]) -> AudioBatch:
    """Pad ``[(waveform (T_i,), label int), ...]`` into an ``AudioBatch`` (zeros after each clip).

    Example:
        >>> b = collate_audio([(torch.ones(3), 1), (torch.ones(5), 0)])
        >>> tuple(b.waveforms.shape), b.lengths.tolist(), b.labels.tolist()
        ((2, 5), [3, 5], [1, 0])
    """
    if len(items) == 0:
        raise ValueError("collate_audio needs at least one item, got 0")
    waves, lengths = _pad([it[0] for it in items])
    labels = torch.as_tensor([int(it[1]) for it in items], dtype=torch.long)
    return AudioBatch(waves, lengths, labels)


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


# ----------------------------------------------------------------------------- dataset


class AudioClipDataset(Dataset):
    """Clips by path with integer labels; each item is ``(waveform float32 (T,), label int)``.

    Arguments:
        paths: ``N`` audio files (anything ``adapt.load_audio`` reads).
        labels: ``N`` class indices (ints >= 0).
        max_seconds: crop each clip to its first ``max_seconds`` (``None``: whole clip); crops keep
            fine-tuning affordable on a CPU and bound GPU memory.

    Clips load on access (nothing is held in memory); ``targets`` is the label list Avalanche
    reads to build its class timeline.

    Example:
        >>> ds = AudioClipDataset(paths=["a.flac"], labels=[0], max_seconds=1.0)   # doctest: +SKIP
        >>> wave, label = ds[0]                                                 # doctest: +SKIP
    """

    def __init__(self, *, paths: Sequence[str | Path], labels: Sequence[int], max_seconds: float | None = None) -> None:
        self.paths = [Path(p) for p in paths]
        labels = np.asarray(labels)
        if labels.shape != (len(self.paths),):
            raise ValueError(f"labels must have shape ({len(self.paths)},) like paths, got {labels.shape}")
        if len(labels) and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0):
            raise TypeError(f"labels must be class indices (ints >= 0), got dtype {labels.dtype} "
                            f"with values {labels[:5].tolist()}")
        if max_seconds is not None and not max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0 or None, got {max_seconds!r}")
        self.targets = [int(v) for v in labels]
        self.max_seconds = max_seconds

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from adapt.audio import load_audio

        wave = load_audio(self.paths[index], max_seconds=None)
        samples = wave.samples
        if self.max_seconds is not None:
            samples = samples[: int(round(self.max_seconds * wave.sample_rate))]
        return torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)), self.targets[index]

    def as_avalanche(self, *, task_label: int = 0):
        """This dataset as an Avalanche classification dataset (items ``(wave, label, task)``),
        collated by ``AvalancheAudioCollate``."""
        from avalanche.benchmarks.utils import _make_taskaware_classification_dataset

        return _make_taskaware_classification_dataset(self, task_labels=task_label, targets=self.targets,
                                                      collate_fn=AvalancheAudioCollate())


# ----------------------------------------------------------------------------- tables of clips


@dataclass(frozen=True)
class ClipTable:
    """Clips of one or more corpora, one row each, with the columns the scenario builders read.

    ``X`` is a ``(N, 1)`` zero placeholder (no embeddings: the builders need a table, and their
    speaker hold-outs never look at ``X``). ``paths``: absolute audio paths.
    """

    X: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    speakers: np.ndarray = field(repr=False)
    corpora: np.ndarray = field(repr=False)
    languages: np.ndarray = field(repr=False)
    text_ids: np.ndarray = field(repr=False)
    clip_ids: np.ndarray = field(repr=False)
    paths: np.ndarray = field(repr=False)

    def __len__(self) -> int:
        return len(self.y)


def clip_table(corpora: Sequence[Any], *, root: str | None = None) -> ClipTable:
    """A ``ClipTable`` of ``corpora`` (names or ``scenarios.corpora.Corpus`` objects), rows in the
    order ``corpus_features`` uses (corpus by corpus, metadata order), so row indices agree with
    ``FeatureSet.concat([corpus_features(c) for c in corpora])``."""
    from .corpora import Corpus, load_corpus

    if isinstance(corpora, (str, Corpus)):
        corpora = [corpora]
    recs = [r for c in corpora for r in (c if isinstance(c, Corpus) else load_corpus(c, root=root)).records]
    if not recs:
        raise ValueError(f"corpora {list(corpora)!r} hold no clips")
    text_ids = np.empty(len(recs), dtype=object)
    text_ids[:] = [r.text_id for r in recs]
    return ClipTable(
        X=np.zeros((len(recs), 1), dtype=np.float32),
        y=np.array([r.emotion for r in recs], dtype=str),
        speakers=np.array([r.speaker for r in recs], dtype=str),
        corpora=np.array([r.corpus for r in recs], dtype=str),
        languages=np.array([r.language for r in recs], dtype=str),
        text_ids=text_ids,
        clip_ids=np.array([r.clip_id for r in recs], dtype=str),
        paths=np.array([str(r.path) for r in recs], dtype=str),
    )


def clip_paths(table, *, root: str | None = None) -> np.ndarray:
    """Audio path of every row of ``table``: its ``paths`` column (``ClipTable``), else its
    ``clip_ids`` (a ``FeatureSet``) resolved through ``load_corpus`` of each corpus present.

    Raises ``KeyError`` naming a clip id that no corpus under the data root holds.
    """
    if hasattr(table, "paths") and not callable(table.paths):
        return np.asarray(table.paths, dtype=str)
    if not hasattr(table, "clip_ids") or not hasattr(table, "corpora"):
        raise TypeError(f"need a table with paths, or clip_ids and corpora (a FeatureSet); got {type(table).__name__}")
    from .corpora import load_corpus

    where: dict[str, str] = {}
    for corpus in sorted(set(np.asarray(table.corpora, dtype=str).tolist())):
        where.update({r.clip_id: str(r.path) for r in load_corpus(corpus, root=root).records})
    out = []
    for cid in np.asarray(table.clip_ids, dtype=str):
        if cid not in where:
            raise KeyError(f"clip id {cid!r} is in no corpus under the data root")
        out.append(where[cid])
    return np.array(out, dtype=str)


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
    benchmark = dataset_benchmark([d.as_avalanche() for d in train], [d.as_avalanche() for d in test])
    return AudioScenario(scenario=scenario, benchmark=benchmark, train_datasets=tuple(train),
                         test_datasets=tuple(test), max_seconds=max_seconds)


def run_audio(audio: AudioScenario, strategy: str, *, model_factory, seed: int = 0,
              strategy_opts: dict | None = None, batch_size_eval: int = 16) -> dict:
    """Train registry ``strategy`` on ``audio`` experience by experience; the run record.

    ``model_factory()`` builds a fresh model (e.g. an ``EncoderClassifier``) after seeding; the
    record mirrors ``scenarios.runner.run_one``'s: ``matrix`` (UA on every test experience after
    each experience; Joint repeats its single row), ``average_accuracy``, ``backward_transfer``,
    ``forgetting``, ``wall_time_s``.
    """
    import random
    import time
    import warnings

    from adapt import metrics
    from adapt.finetune import audio_ua_row
    from strategies.registry import STRATEGIES, make_strategy

    if strategy not in STRATEGIES:
        raise KeyError(f"unknown strategy {strategy!r}; known: {', '.join(sorted(STRATEGIES))}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    model = model_factory()
    opts = {"device": getattr(model, "device", "cpu"), **(strategy_opts or {})}
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True):  # Avalanche's deprecation shims force their warnings on
        strat = make_strategy(strategy, model, **opts)
        if STRATEGIES[strategy].trains_jointly:
            strat.train(audio.benchmark.train_stream)
            matrix = [audio_ua_row(model, audio, batch_size=batch_size_eval)] * audio.n_experiences
        else:
            matrix = []
            for experience in audio.benchmark.train_stream:
                strat.train(experience)
                matrix.append(audio_ua_row(model, audio, batch_size=batch_size_eval))
    return {"strategy": strategy, "seed": int(seed), "scenario": audio.scenario.name,
            "experiences": list(audio.experience_names), "classes": list(audio.classes),
            "matrix": [list(r) for r in matrix], "average_accuracy": metrics.average_accuracy(matrix),
            "backward_transfer": metrics.backward_transfer(matrix), "forgetting": metrics.forgetting(matrix),
            "wall_time_s": time.perf_counter() - t0}
