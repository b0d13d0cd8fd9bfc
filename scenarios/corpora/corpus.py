"""Emotional speech corpora in the shared format.

A corpus folder holds ``audio/`` and ``metadata.csv`` with the columns ``path, speaker, emotion,
language, gender, duration_s`` (paths relative to the folder). ``load_corpus("ravdess")`` finds it
under the data root: ``$SER_ADAPT_DATA`` if set, else ``../shared/data`` beside the project.

Example:
    >>> corpus = load_corpus("emodb")                       # doctest: +SKIP
    >>> len(corpus), len(corpus.speakers)                   # doctest: +SKIP
    (535, 10)
    >>> corpus.filter(emotions=["angry", "sad"]).emotions   # doctest: +SKIP
    ('angry', 'sad')
"""
from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from adapt.labels import CANONICAL_EMOTIONS, harmonize_emotion

from .filenames import TEXT_ID_RULES

__all__ = [
    "ClipRecord",
    "Corpus",
    "load_corpus",
    "data_root",
    "available_corpora",
    "CANONICAL_EMOTIONS",
    "harmonize_emotion",
    "DATA_ENV",
]

DATA_ENV = "SER_ADAPT_DATA"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding corpora: ``root``, else ``$SER_ADAPT_DATA``, else ``../shared/data``."""
    if root is not None:
        return Path(root)
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    project = Path(__file__).resolve().parents[2]
    return project.parent / "shared" / "data"


def available_corpora(root: str | os.PathLike | None = None) -> list[str]:
    """Names of the corpus folders under the data root that hold a ``metadata.csv``."""
    base = data_root(root)
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / "metadata.csv").is_file())


@dataclass(frozen=True)
class ClipRecord:
    """One labelled clip. ``text_id`` names the spoken sentence where the corpus has fixed texts."""

    path: Path
    speaker: str
    emotion: str
    language: str
    gender: str
    duration_s: float
    corpus: str
    text_id: str | None = None

    @property
    def clip_id(self) -> str:
        """Stable id: ``<corpus>/<parent folder>/<file name>`` (e.g. ``ravdess/Actor_01/03-01-...flac``).

        Unique within a corpus whose files sit at most one folder below ``audio/`` (the shared format).
        """
        return f"{self.corpus}/{self.path.parent.name}/{self.path.name}"


@dataclass(frozen=True)
class Corpus:
    """An ordered, immutable collection of ``ClipRecord`` with filtering helpers."""

    name: str
    root: Path
    records: tuple[ClipRecord, ...] = field(repr=False)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[ClipRecord]:
        return iter(self.records)

    def __getitem__(self, index: int) -> ClipRecord:
        return self.records[index]

    @property
    def speakers(self) -> tuple[str, ...]:
        return tuple(sorted({r.speaker for r in self.records}))

    @property
    def emotions(self) -> tuple[str, ...]:
        return tuple(sorted({r.emotion for r in self.records}))

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(sorted({r.language for r in self.records}))

    def counts(self) -> dict[str, int]:
        """Clips per emotion."""
        return dict(sorted(Counter(r.emotion for r in self.records).items()))

    def labels(self) -> list[str]:
        return [r.emotion for r in self.records]

    def paths(self) -> list[Path]:
        return [r.path for r in self.records]

    def filter(
        self,
        *,
        speakers: Iterable[str] | None = None,
        emotions: Iterable[str] | None = None,
        languages: Iterable[str] | None = None,
        where: Callable[[ClipRecord], bool] | None = None,
    ) -> "Corpus":
        """A new corpus with the records that match every given condition."""
        sp = set(speakers) if speakers is not None else None
        em = {harmonize_emotion(e) for e in emotions} if emotions is not None else None
        la = set(languages) if languages is not None else None
        checks = ((sp, self.speakers, "speaker"), (em, self.emotions, "emotion"), (la, self.languages, "language"))
        for wanted, have, what in checks:
            if wanted is not None and not wanted <= set(have):
                unknown = sorted(wanted - set(have))
                raise KeyError(f"unknown {what}(s) {unknown} in corpus {self.name!r}; known: {list(have)}")
        keep = tuple(
            r for r in self.records
            if (sp is None or r.speaker in sp)
            and (em is None or r.emotion in em)
            and (la is None or r.language in la)
            and (where is None or where(r))
        )
        return replace(self, records=keep)

    def subset(self, indices: Sequence[int]) -> "Corpus":
        return replace(self, records=tuple(self.records[i] for i in indices))

    def __add__(self, other: "Corpus") -> "Corpus":
        return Corpus(name=f"{self.name}+{other.name}", root=self.root, records=self.records + other.records)


def load_corpus(name_or_path: str | os.PathLike, root: str | os.PathLike | None = None) -> Corpus:
    """Load a corpus by name (a folder under the data root) or by the path of its folder.

    Raises:
        FileNotFoundError: the folder or its ``metadata.csv`` does not exist (the message says where
            it looked and which variable overrides the location).
        ValueError: ``metadata.csv`` lacks a required column or has a malformed row.
    """
    candidate = Path(name_or_path)
    folder = candidate if (candidate / "metadata.csv").is_file() else data_root(root) / str(name_or_path)
    meta = folder / "metadata.csv"
    if not meta.is_file():
        known = available_corpora(root)
        raise FileNotFoundError(
            f"no corpus {str(name_or_path)!r}: {meta} does not exist (data root {data_root(root)}, "
            f"override with ${DATA_ENV}); known corpora: {known}"
        )
    name = folder.name
    rule = TEXT_ID_RULES.get(name)
    required = {"path", "speaker", "emotion", "language", "gender", "duration_s"}
    records = []
    with meta.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = required - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{meta} lacks columns {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                duration = float(row["duration_s"])
            except (TypeError, ValueError):
                raise ValueError(f"{meta}:{line}: duration_s {row['duration_s']!r} is not a number") from None
            if not duration > 0 or duration == float("inf"):
                raise ValueError(f"{meta}:{line}: duration_s {row['duration_s']!r} must be a positive number")
            empty = [k for k in ("path", "speaker", "emotion") if not (row[k] or "").strip()]
            if empty:
                raise ValueError(f"{meta}:{line}: empty {empty} in row {row}")
            rel = Path(row["path"])
            stem = rel.stem
            text_id = row.get("text_id") or (rule(stem) if rule else None)
            records.append(ClipRecord(
                path=folder / rel,
                speaker=row["speaker"],
                emotion=harmonize_emotion(row["emotion"]),
                language=row["language"],
                gender=row["gender"],
                duration_s=duration,
                corpus=name,
                text_id=text_id,
            ))
    return Corpus(name=name, root=folder, records=tuple(records))
