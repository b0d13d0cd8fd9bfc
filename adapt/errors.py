"""Exceptions raised by ser-adapt.

Every error a caller can cause is a subclass of ``SerAdaptError`` plus the matching built-in
(``ValueError``, ``KeyError``, ...), so generic handlers keep working. This module is the one home
of the hierarchy: the research layers (``strategies``, ``scenarios``) raise these classes too.

The HTTP service maps each of these classes to a status code explicitly
(``adapt.service.errors``); any other exception is an internal error (a logged 500).
"""
from __future__ import annotations

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
    "UnknownTenantError",
    "UnknownSpeakerError",
    "UnknownLabelError",
    "TooFewClipsError",
    "BackboneNotAvailableError",
    "LabelExistsError",
    "ProfileStoreError",
    "LengthMismatchError",
    "InvalidIdError",
    "ProfileExistsError",
    "TooManyEmotionsError",
    "InvalidStateError",
    "CT2FormatError",
    "EmbeddingShapeError",
    "UnknownEmotionError",
    "DownloadError",
    "ChecksumError",
    "ChecksumMismatchError",
    "ChecksumRequiredError",
    "ConsentError",
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


class NotFittedError(SerAdaptError, ValueError, AttributeError):
    """A head or model was used before ``fit``.

    It has the bases of scikit-learn's ``NotFittedError`` (``ValueError`` and ``AttributeError``),
    which is what scikit-learn's own checks and ``check_is_fitted`` callers catch, without making
    ``import adapt`` import scikit-learn.
    """


class UnknownUserError(SerAdaptError, KeyError):
    """No profile exists for this user (in this tenant)."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else "unknown user"


class UnknownTenantError(UnknownUserError):
    """The tenant has no tenant profile (``Personalizer.tenant_summary``/``export_tenant``/``forget_tenant``).

    A subclass of ``UnknownUserError``, so code that caught a missing profile keeps working."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown tenant profile"


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


class LengthMismatchError(SerAdaptError, ValueError):
    """Inputs that must pair up do not (e.g. 5 clips but 4 labels)."""


class InvalidIdError(SerAdaptError, ValueError):
    """A tenant or user id that breaks the id rules (``adapt.store.ids``)."""


class ProfileExistsError(SerAdaptError, ValueError):
    """An import would overwrite an existing profile (pass ``overwrite=True`` to replace it)."""


class TooManyEmotionsError(SerAdaptError, ValueError):
    """A user already has the maximum number of their own emotions."""


class InvalidStateError(SerAdaptError, ValueError):
    """A persisted or exported state (user profile, head, model file) is malformed or inconsistent."""


class CT2FormatError(InvalidStateError):
    """The file is not a CTranslate2 ``model.bin`` this reader understands."""


class EmbeddingShapeError(SerAdaptError, ValueError):
    """Embeddings of the wrong shape or dimension (e.g. a minibatch that is not ``[B, D]``)."""


class UnknownEmotionError(UnknownLabelError):
    """An emotion (class) that the data (a feature table, a scenario) does not contain."""


class DownloadError(SerAdaptError, OSError):
    """The file could not be fetched (HTTP error, or the connection kept failing after retries)."""


class ChecksumError(SerAdaptError, ValueError):
    """Base class of checksum problems."""


class ChecksumMismatchError(ChecksumError):
    """The downloaded bytes do not have the expected sha256 (the file is deleted)."""


class ChecksumRequiredError(ChecksumError):
    """No trusted sha256 is known for this archive; the message gives the one computed locally."""


class ConsentError(SerAdaptError, PermissionError):
    """Feedback refused: the tenant has not enabled it or the user has not consented (``adapt.personal.feedback``)."""
