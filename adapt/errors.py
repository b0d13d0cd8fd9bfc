"""Exceptions raised by ser-adapt.

Every error a caller can cause is a subclass of ``SerAdaptError`` plus the matching built-in
(``ValueError``, ``KeyError``, ...), so generic handlers keep working.
"""
from __future__ import annotations

from sklearn.exceptions import NotFittedError as _SkNotFitted

__all__ = [
    "SerAdaptError",
    "AudioError",
    "UnreadableAudioError",
    "EmptyAudioError",
    "TooShortAudioError",
    "TooLongAudioError",
    "NonFiniteAudioError",
    "AudioShapeError",
    "SampleRateError",
    "NotFittedError",
    "UnknownUserError",
    "UnknownSpeakerError",
    "UnknownLabelError",
    "TooFewClipsError",
    "BackboneNotAvailableError",
    "LabelExistsError",
    "ProfileStoreError",
]


class SerAdaptError(Exception):
    """Base class of every ser-adapt error."""


class AudioError(SerAdaptError, ValueError):
    """Audio that cannot be used; the message names the problem and the offending value."""


class UnreadableAudioError(AudioError):
    """The bytes are not a decodable audio file (corrupt, truncated, not audio)."""


class EmptyAudioError(AudioError):
    """The audio holds zero samples."""


class TooShortAudioError(AudioError):
    """The clip is shorter than the configured minimum duration."""


class TooLongAudioError(AudioError):
    """The clip is longer than the configured maximum duration."""


class NonFiniteAudioError(AudioError):
    """The samples contain NaN or infinity."""


class AudioShapeError(AudioError):
    """An array of a shape that is not mono ``(time,)`` or multichannel ``(channels, time)``."""


class SampleRateError(AudioError):
    """A missing, non-positive or implausible sample rate."""


class NotFittedError(_SkNotFitted, SerAdaptError):
    """A head or model was used before ``fit``; also a scikit-learn ``NotFittedError``."""


class UnknownUserError(SerAdaptError, KeyError):
    """No profile exists for this user (in this tenant)."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else "unknown user"


class UnknownSpeakerError(SerAdaptError, KeyError):
    """A speaker id that is not in the data (e.g. the target of a personalization split)."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else "unknown speaker"


class UnknownLabelError(SerAdaptError, ValueError):
    """An emotion label that the model or user profile does not know."""


class TooFewClipsError(SerAdaptError, ValueError):
    """Not enough labelled clips for the requested operation."""


class BackboneNotAvailableError(SerAdaptError, RuntimeError):
    """A backbone's weights are not available locally (no download is ever attempted)."""


class LabelExistsError(SerAdaptError, ValueError):
    """A new emotion class was requested under a name the user's model already knows."""


class ProfileStoreError(SerAdaptError, RuntimeError):
    """The profile store cannot be opened or used (newer schema, locked, closed, unreachable)."""
