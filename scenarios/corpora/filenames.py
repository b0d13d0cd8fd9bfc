"""File-name parsers of the corpora: member path in the archive -> ``ClipInfo`` or ``None``, and
the text-id rules of the converted corpora (``TEXT_ID_RULES``, built on the same parsers).

Each parser documents the naming scheme it reads. ``None`` means "not a clip of this corpus"
(another file in the archive, or a name that does not follow the scheme): the converter skips it
and lists it in PROVENANCE.md rather than guessing a label.

Example:
    >>> from pathlib import PurePosixPath
    >>> parse_emodb(PurePosixPath("wav/03a01Fa.wav"))
    ClipInfo(speaker='03', emotion='happy', gender='m', text_id='a01')
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

__all__ = [
    "ClipInfo", "parse_ravdess", "parse_crema_d", "crema_d_genders", "parse_tess", "parse_savee",
    "parse_emodb", "parse_emovo", "parse_urdu", "parse_subesco", "TEXT_ID_RULES",
]


@dataclass(frozen=True)
class ClipInfo:
    """Labels read from one file name. ``gender`` ``None``: look it up elsewhere (or unknown)."""

    speaker: str
    emotion: str
    gender: str | None
    text_id: str | None = None


_RAVDESS_EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
                     "06": "fear", "07": "disgust", "08": "surprise"}


def parse_ravdess(rel: PurePosixPath) -> ClipInfo | None:
    """``03-01-05-01-02-01-12.wav``: modality (03 audio-only), channel (01 speech), emotion,
    intensity, statement, repetition, actor (odd = male)."""
    m = re.fullmatch(r"03-01-(\d\d)-0[12]-(0[12])-0[12]-(\d\d)", rel.stem)
    if not m or m.group(1) not in _RAVDESS_EMOTIONS:
        return None
    actor = int(m.group(3))
    return ClipInfo(speaker=m.group(3), emotion=_RAVDESS_EMOTIONS[m.group(1)],
                    gender="m" if actor % 2 else "f", text_id=f"s{m.group(2)}")


_CREMA_EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}


def parse_crema_d(rel: PurePosixPath) -> ClipInfo | None:
    """``1001_DFA_ANG_XX.wav``: actor (1001-1091), sentence code, emotion, level (LO/MD/HI/XX).
    Gender comes from ``VideoDemographics.csv`` (see ``crema_d_genders``)."""
    m = re.fullmatch(r"(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})", rel.stem)
    if not m or m.group(3) not in _CREMA_EMOTIONS:
        return None
    return ClipInfo(speaker=m.group(1), emotion=_CREMA_EMOTIONS[m.group(3)], gender=None, text_id=m.group(2))


def crema_d_genders(raw: Path) -> dict[str, str]:
    """``{actor id: "f"|"m"}`` from ``VideoDemographics.csv`` (columns ActorID, Sex), if present."""
    found = sorted(Path(raw).rglob("VideoDemographics.csv"))
    if not found:
        return {}
    with found[0].open(newline="", encoding="utf-8-sig") as fh:
        return {
            row["ActorID"].strip(): {"male": "m", "female": "f"}.get(row["Sex"].strip().lower(), "u")
            for row in csv.DictReader(fh)
            if row.get("ActorID") and row.get("Sex")
        }


_TESS_EMOTIONS = {"angry", "disgust", "fear", "happy", "neutral", "ps", "sad"}


def parse_tess(rel: PurePosixPath) -> ClipInfo | None:
    """``OAF_back_angry.wav``: speaker (OAF older / YAF younger female), target word, emotion
    (``ps`` = pleasant surprise)."""
    m = re.fullmatch(r"([OY]AF)_([A-Za-z]+)_([A-Za-z]+)", rel.stem)
    if not m or m.group(3).lower() not in _TESS_EMOTIONS:
        return None
    return ClipInfo(speaker=m.group(1).upper(), emotion=m.group(3).lower(), gender="f", text_id=m.group(2).lower())


_SAVEE_EMOTIONS = {"a": "angry", "d": "disgust", "f": "fear", "h": "happy", "n": "neutral", "sa": "sad", "su": "surprise"}
_SAVEE_SPEAKERS = {"DC", "JE", "JK", "KL"}


def parse_savee(rel: PurePosixPath) -> ClipInfo | None:
    """``AudioData/DC/sa03.wav`` or ``ALL/DC_sa03.wav``: speaker (4 males), emotion code, number.
    The number indexes sentences per emotion, not shared texts, so ``text_id`` stays ``None``."""
    m = re.fullmatch(r"(DC|JE|JK|KL)_([a-z]{1,2})(\d\d)", rel.stem)
    if m:
        speaker, code = m.group(1), m.group(2)
    else:
        m = re.fullmatch(r"([a-z]{1,2})(\d\d)", rel.stem)
        if not m or rel.parent.name not in _SAVEE_SPEAKERS:
            return None
        speaker, code = rel.parent.name, m.group(1)
    if code not in _SAVEE_EMOTIONS:
        return None
    return ClipInfo(speaker=speaker, emotion=_SAVEE_EMOTIONS[code], gender="m")


_EMODB_EMOTIONS = {"W": "angry", "L": "boredom", "E": "disgust", "A": "fear", "F": "happy", "T": "sad", "N": "neutral"}
_EMODB_GENDERS = {"03": "m", "08": "f", "09": "f", "10": "m", "11": "m", "12": "m", "13": "f", "14": "f",
                  "15": "m", "16": "f"}


def parse_emodb(rel: PurePosixPath) -> ClipInfo | None:
    """``03a01Fa.wav``: speaker, text (a01..b10), emotion letter (German initial), version."""
    m = re.fullmatch(r"(\d\d)([ab]\d\d)([WLEAFTN])[a-z]", rel.stem)
    if not m or m.group(1) not in _EMODB_GENDERS:
        return None
    return ClipInfo(speaker=m.group(1), emotion=_EMODB_EMOTIONS[m.group(3)],
                    gender=_EMODB_GENDERS[m.group(1)], text_id=m.group(2))


_EMOVO_EMOTIONS = {"dis": "disgust", "gio": "happy", "neu": "neutral", "pau": "fear", "rab": "angry",
                   "sor": "surprise", "tri": "sad"}


def parse_emovo(rel: PurePosixPath) -> ClipInfo | None:
    """``dis-f1-b1.wav``: emotion (Italian abbreviation), speaker (f1-f3, m1-m3), sentence."""
    m = re.fullmatch(r"([a-z]{3})-([fm][1-3])-([a-z]\d)", rel.stem.lower())
    if not m or m.group(1) not in _EMOVO_EMOTIONS:
        return None
    return ClipInfo(speaker=m.group(2), emotion=_EMOVO_EMOTIONS[m.group(1)], gender=m.group(2)[0], text_id=m.group(3))


_URDU_EMOTIONS = {"angry": "angry", "happy": "happy", "neutral": "neutral", "sad": "sad"}


def parse_urdu(rel: PurePosixPath) -> ClipInfo | None:
    """``Angry/SM1_F10_A010.wav``: the folder is the emotion; speaker ``S[FM]<n>`` (F/M = gender)."""
    emotion = _URDU_EMOTIONS.get(rel.parent.name.lower())
    m = re.fullmatch(r"(S([FM])\d+)_F\d+_[A-Z]\d+", rel.stem)
    if emotion is None or not m:
        return None
    return ClipInfo(speaker=m.group(1), emotion=emotion, gender=m.group(2).lower())


_SUBESCO_EMOTIONS = {"ANGRY", "DISGUST", "FEAR", "HAPPY", "NEUTRAL", "SAD", "SURPRISE"}


def parse_subesco(rel: PurePosixPath) -> ClipInfo | None:
    """``F_01_OISHI_S_1_ANGRY_1.wav``: gender, speaker number and name, sentence, emotion, take."""
    m = re.fullmatch(r"([FM])_(\d\d)_([A-Z]+)_S_(\d+)_([A-Z]+)_(\d+)", rel.stem)
    if not m or m.group(5) not in _SUBESCO_EMOTIONS:
        return None
    return ClipInfo(speaker=f"{m.group(1)}{m.group(2)}", emotion=m.group(5).lower(),
                    gender=m.group(1).lower(), text_id=f"s{m.group(4)}")


# ----------------------------------------------------------------------------- text ids


def _from_parser(parse: Callable[[PurePosixPath], ClipInfo | None]) -> Callable[[str], str | None]:
    """A text-id rule reusing a recipe's file-name parser (converted corpora keep the names)."""
    def rule(stem: str) -> str | None:
        info = parse(PurePosixPath(stem))
        return None if info is None else info.text_id
    return rule


def _text_id_rcebrian(name: str) -> str | None:
    # Alegria_12 / Ira__2: emotion_sentence (Neutro alone has no sentence number)
    m = re.match(r"^[A-Za-z]+_+(\d+)$", name)
    return f"s{int(m.group(1))}" if m else None


def _text_id_indianemo(name: str) -> str | None:
    # bacho-safe-angry-<timestamp>-<user hash>: the keyword is the spoken text
    parts = name.split("-")
    return parts[0].lower() if len(parts) == 5 else None


#: corpus folder name -> rule deriving the spoken text's id from a file's stem (None: unknown)
TEXT_ID_RULES: dict[str, Callable[[str], str | None]] = {
    "ravdess": _from_parser(parse_ravdess),
    "emodb": _from_parser(parse_emodb),
    "emovo": _from_parser(parse_emovo),
    "crema_d": _from_parser(parse_crema_d),
    "tess": _from_parser(parse_tess),
    "subesco": _from_parser(parse_subesco),
    "rcebrian_es": _text_id_rcebrian,
    "indianemospeech": _text_id_indianemo,
}
