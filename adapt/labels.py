"""The emotion vocabulary: canonical names, corpus aliases, and label validation.

Every label that enters ser-adapt (a corpus's metadata, an ``enroll`` call, an HTTP form field)
goes through ``harmonize_emotion``: corpus-specific spellings map onto one canonical vocabulary
(``"Anger"`` -> ``"angry"``, ``"fearful"`` -> ``"fear"``); anything else is lower-cased and passes
through, so a user's own emotion (``"sarcastic"``) keeps its name. ``check_label`` adds the rules
an application label must follow (a non-empty printable string of at most 64 characters).

The runtime owns this vocabulary: the corpus loaders in ``scenarios.corpora`` import it, never the
other way round.

Example:
    >>> harmonize_emotion(" Anger "), harmonize_emotion("fearful"), harmonize_emotion("Sarcastic")
    ('angry', 'fear', 'sarcastic')
    >>> check_label("happiness")
    'happy'
"""
from __future__ import annotations

from .errors import UnknownLabelError

__all__ = ["CANONICAL_EMOTIONS", "EMOTION_ALIASES", "MAX_LABEL_LENGTH", "harmonize_emotion", "check_label"]

#: One canonical vocabulary; corpus-specific names map onto it (see ``EMOTION_ALIASES``).
CANONICAL_EMOTIONS: tuple[str, ...] = (
    "neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise", "boredom",
)
EMOTION_ALIASES: dict[str, str] = {
    "neu": "neutral", "neutrality": "neutral",
    "hap": "happy", "happiness": "happy", "joy": "happy", "gioia": "happy",
    "sadness": "sad", "tristezza": "sad",
    "anger": "angry", "ang": "angry", "rabbia": "angry",
    "fearful": "fear", "fea": "fear", "anxiety": "fear", "paura": "fear",
    "disgusted": "disgust", "dis": "disgust", "disgusto": "disgust",
    "surprised": "surprise", "sur": "surprise", "ps": "surprise", "sorpresa": "surprise",
    "bored": "boredom",
}
MAX_LABEL_LENGTH = 64


def harmonize_emotion(label: str) -> str:
    """Map a corpus label to the canonical vocabulary (``"Anger"`` -> ``"angry"``).

    Unknown labels are returned stripped and lower-cased, so user-defined emotions pass through.
    """
    key = label.strip().lower()
    return EMOTION_ALIASES.get(key, key)


def check_label(label: object) -> str:
    """A validated, harmonized emotion label; raises ``UnknownLabelError`` naming the problem.

    A label is a non-empty string of at most ``MAX_LABEL_LENGTH`` printable characters.
    """
    if not isinstance(label, str) or not label.strip():
        raise UnknownLabelError(f"an emotion label must be a non-empty string, got {label!r}")
    if len(label) > MAX_LABEL_LENGTH or not label.isprintable():
        raise UnknownLabelError(f"invalid emotion label {label!r}: at most {MAX_LABEL_LENGTH} printable characters")
    return harmonize_emotion(label)
