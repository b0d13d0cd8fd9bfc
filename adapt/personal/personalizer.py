"""Per-user personalization: enroll a user with a few labelled clips, predict, correct, forget.

A ``Personalizer`` composes a frozen backbone (audio -> embedding ``[D]``), a shared
``GlobalHead`` (``adapt.personal.global_head``, format 2) and a ``ProfileStore`` holding, per
user, statistics only (``adapt.personal.user_state``: running moments of every clip, per emotion
a clip count and an embedding sum, an optional label set) and, per tenant, a deployment layer
(``adapt.personal.tenant_state``). Audio is never stored. Every write is an atomic
read-modify-write transaction in the store, so concurrent updates are never lost, and they never
touch the global head or other users.

Three levels, each shrunk toward its parent by counts: global -> tenant (``enroll_tenant``:
labelled clips of several speakers of a deployment) -> user (``enroll``/``update`` with labels,
``observe`` without). A user never seen gets the tenant's (or global) prediction; the label set
that is scored comes from the call, else the user, else the tenant, else the config.

Example:
    >>> p = Personalizer.default(store="profiles.db")          # doctest: +SKIP
    >>> p.enroll("alice", ["a_ang.wav", "a_sad.wav"], ["angry", "sad"])   # doctest: +SKIP
    >>> p.observe("alice", ["unlabelled1.wav", "unlabelled2.wav"])  # doctest: +SKIP
    >>> r = p.predict("alice", "new.wav", labels=["angry", "sad", "neutral"])  # doctest: +SKIP
    >>> r.label, r.confidence, r.uncertain                      # doctest: +SKIP
    ('angry', 0.71, False)
"""
from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Optional, Protocol, Sequence

import numpy as np

from ..audio import Waveform, load_audio
from ..errors import (AudioError, EmbeddingShapeError, InvalidStateError, LabelExistsError, LengthMismatchError,
                      ProfileExistsError, TooFewClipsError, TooManyEmotionsError, UnknownLabelError, UnknownTenantError,
                      UnknownUserError)
from ..labels import check_label
from ..store import ProfileStore, check_tenant, check_user, open_store
from .bounds import MAX_ABS_VALUE
from .global_head import GlobalHead, load_head
from .tenant_state import TenantState
from .user_state import UserState

__all__ = ["Personalizer", "PersonalizerConfig", "Prediction", "UserSummary", "TenantSummary", "default_head_path",
           "default_store_path"]

DEFAULT_HEAD = "global_head.npz"
#: the ``uncertain`` threshold when neither the config nor the head names one (an uncalibrated head)
DEFAULT_UNCERTAIN_BELOW = 0.4


def default_head_path() -> Path:
    """The global head shipped with the package (``adapt/assets/global_head.npz``)."""
    return Path(str(resources.files("adapt") / "assets" / DEFAULT_HEAD))


def default_store_path() -> Path:
    """``$SER_ADAPT_HOME/profiles.db``, else ``$XDG_DATA_HOME/ser-adapt/profiles.db`` (``~/.local/share``)."""
    home = os.environ.get("SER_ADAPT_HOME")
    if home:
        return Path(home).expanduser() / "profiles.db"
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "ser-adapt" / "profiles.db"


@dataclass(frozen=True)
class PersonalizerConfig:
    """Knobs of a ``Personalizer`` (all have working defaults).

    tenant: namespace in the store. uncertain_below: a prediction whose confidence (top
    probability) is below this is flagged ``uncertain``; None (default): the threshold stored
    with the head for the prediction's path (``GlobalHead.calibration``, chosen for a selective
    accuracy target on held-out training speakers), else ``DEFAULT_UNCERTAIN_BELOW``. min_enroll_clips / min_new_emotion_clips:
    fewer clips raise ``TooFewClipsError``. min_clip_s / max_clip_s: accepted clip durations.
    max_user_emotions / max_tenant_emotions: caps on a user's and a tenant's own classes. labels: the application's default label set
    (None: every emotion the head, tenant and user know). adapt_on_predict: fold every predicted
    clip into the user's normalization statistics (as ``observe`` does), creating the profile
    of a user never seen. The per-user shrinkage lives in the head (``GlobalHead.shrinkage``):
    it was chosen with the head.
    """

    tenant: str = "default"
    uncertain_below: Optional[float] = None
    min_enroll_clips: int = 1
    min_new_emotion_clips: int = 2
    min_clip_s: float = 0.25
    max_clip_s: float = 30.0
    max_user_emotions: int = 16
    max_tenant_emotions: int = 32
    labels: Optional[tuple[str, ...]] = None
    adapt_on_predict: bool = False

    def __post_init__(self) -> None:
        check_tenant(self.tenant)
        if self.uncertain_below is not None and not 0.0 <= self.uncertain_below <= 1.0:
            raise ValueError(f"uncertain_below must be in [0, 1], got {self.uncertain_below}")
        for name in ("min_enroll_clips", "min_new_emotion_clips", "max_user_emotions", "max_tenant_emotions"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if not 0 < self.min_clip_s < self.max_clip_s:
            raise ValueError(f"need 0 < min_clip_s < max_clip_s, got {self.min_clip_s}, {self.max_clip_s}")
        if self.labels is not None:
            object.__setattr__(self, "labels", _labelset(self.labels))
        if not isinstance(self.adapt_on_predict, bool):
            raise ValueError(f"adapt_on_predict must be a bool, got {self.adapt_on_predict!r}")


@dataclass(frozen=True)
class Prediction:
    """One clip's answer: ``label`` (top class), ``probabilities`` (class -> p, summing to 1),
    ``confidence`` (top probability, calibrated when the head is: ``GlobalHead.calibration``),
    ``uncertain`` (confidence below the threshold, ``Personalizer.uncertain_threshold``) and
    ``personalized`` (False: the user has no profile and got the global prediction)."""

    label: str
    probabilities: dict[str, float]
    confidence: float
    uncertain: bool
    personalized: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class UserSummary:
    """What a user's profile holds: labelled clips per emotion, own emotions, ``clips`` (all clips,
    labelled or observed), ``unlabelled`` (observed without a label), ``labels`` (the user's label
    set, None: the tenant's default), revision (writes so far)."""

    user: str
    counts: dict[str, int]
    custom_emotions: tuple[str, ...]
    clips: int
    revision: int
    unlabelled: int = 0
    labels: Optional[tuple[str, ...]] = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["custom_emotions"] = list(self.custom_emotions)
        d["labels"] = None if self.labels is None else list(self.labels)
        return d


@dataclass(frozen=True)
class TenantSummary:
    """What a tenant's profile holds: labelled clips per emotion, ``speakers`` that gave it a
    normalization prior, ``labels`` (the tenant's default label set), revision."""

    tenant: str
    counts: dict[str, int]
    speakers: int
    labels: Optional[tuple[str, ...]]
    revision: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["labels"] = None if self.labels is None else list(self.labels)
        return d


class Embedder(Protocol):
    """Anything that maps validated waveforms to embeddings ``[N, D]``."""

    def __call__(self, waves: Sequence[Waveform]) -> np.ndarray: ...


def _as_embedder(backbone: Any) -> Embedder | None:
    """An ``Embedder`` for ``backbone``: an ``adapt.backbones.Backbone`` goes through
    ``adapt.embed`` (default layers and pooling, the ones the global head was trained on); any other
    callable is used as it is; ``None`` (``Personalizer.admin``) has no embedder. The on-disk
    embedding cache is off here: users' clips are not kept."""
    from ..backbones import Backbone

    if backbone is None:
        return None
    if isinstance(backbone, Backbone):
        from ..embedding import embed

        return lambda waves: np.asarray(embed(backbone, list(waves), cache=False), dtype=np.float32)
    if callable(backbone):
        return backbone
    raise TypeError(f"backbone must be an adapt Backbone or a callable waveforms -> [N, D], got {type(backbone).__name__}")


_canon = check_label


def _labelset(labels: Any) -> tuple[str, ...]:
    """A validated label set: a non-empty sequence of distinct labels (harmonized, order kept)."""
    if isinstance(labels, str) or not isinstance(labels, (list, tuple)):
        raise UnknownLabelError(f"a label set must be a list of emotion labels, got {labels!r}")
    out = tuple(dict.fromkeys(_canon(lab) for lab in labels))
    if not out:
        raise UnknownLabelError("a label set must name at least one emotion")
    return out


def _label_or_none(label: str) -> str | None:
    try:
        return check_label(label)
    except UnknownLabelError:
        return None


class Personalizer:
    """Backbone + global head + per-tenant and per-user profiles in a store.

    Arguments:
        backbone: an ``adapt`` Backbone (``adapt.get_backbone()``) or any callable mapping a list
            of ``Waveform`` to embeddings ``[N, D]``.
        head: the shared ``GlobalHead`` (or the path of one, ``.npz`` or JSON); never modified.
        store: a ``ProfileStore`` or a URL/path for ``open_store``.
        config: ``PersonalizerConfig``.
        feedback: an opt-in ``adapt.personal.feedback.FeedbackAggregator``; ``share_feedback``
            submits to it and ``forget`` also deletes the user's pending feedback and consent record.
    """

    def __init__(self, backbone: Any, head: GlobalHead | str | os.PathLike, store: ProfileStore | str | os.PathLike,
                 *, config: PersonalizerConfig | None = None, feedback: Any = None):
        self.backbone = backbone
        self.feedback = feedback
        self._embedder = _as_embedder(backbone)
        head = head if not isinstance(head, (str, os.PathLike)) else load_head(head)
        if not isinstance(head, GlobalHead):
            raise InvalidStateError(f"the Personalizer needs a format-2 GlobalHead, got {type(head).__name__} "
                                    f"(a first-release head: retrain it with `ser-adapt train-head`)")
        self.head = head
        self.store = open_store(store)
        self.config = config or PersonalizerConfig()
        if self.config.labels is not None:
            self._check_available(self.config.labels, self.head.classes, "config.labels")

    @classmethod
    def default(cls, store: ProfileStore | str | os.PathLike | None = None, *, backbone: Any = None,
                head: GlobalHead | str | os.PathLike | None = None, **config: Any) -> "Personalizer":
        """The offline default backbone (``adapt.get_backbone()``), the shipped global head and a
        SQLite store (``default_store_path()`` when ``store`` is None)."""
        from ..backbones import get_backbone

        return cls(backbone if backbone is not None else get_backbone(),
                   head if head is not None else default_head_path(),
                   store if store is not None else default_store_path(),
                   config=PersonalizerConfig(**config))

    @classmethod
    def admin(cls, store: ProfileStore | str | os.PathLike | None = None, *,
              head: GlobalHead | str | os.PathLike | None = None, **config: Any) -> "Personalizer":
        """A Personalizer without a backbone, for profile administration (list, summary, export,
        import, forget, ``*_embeddings`` calls); calls that need audio raise ``TypeError``.
        The CLI's ``users`` commands use it, so they share the Python API's rules and formats."""
        return cls(None, head if head is not None else default_head_path(),
                   store if store is not None else default_store_path(), config=PersonalizerConfig(**config))

    def for_tenant(self, tenant: str) -> "Personalizer":
        """A view on another tenant's namespace sharing backbone, head and store."""
        view = copy.copy(self)   # shares backbone, head and store; only the config differs
        view.config = replace(self.config, tenant=check_tenant(tenant))
        return view

    # -- embedding ----------------------------------------------------------------------------
    def load(self, clip: Any, sr: int | None = None) -> Waveform:
        """Validate one clip (path, bytes, array with ``sr``, ``Waveform``); raises ``AudioError``."""
        if isinstance(clip, Waveform):
            if not self.config.min_clip_s <= clip.duration_s <= self.config.max_clip_s:
                return load_audio(clip.samples, sr=clip.sample_rate, min_seconds=self.config.min_clip_s,
                                  max_seconds=self.config.max_clip_s)
            return clip
        return load_audio(clip, sr=sr, min_seconds=self.config.min_clip_s, max_seconds=self.config.max_clip_s)

    def embed(self, clips: Sequence[Any], sr: int | None = None) -> np.ndarray:
        """Embeddings ``[N, D]`` of ``clips``; an ``AudioError`` names the offending clip's position."""
        if isinstance(clips, (str, bytes, os.PathLike, Waveform)) or (isinstance(clips, np.ndarray) and clips.ndim == 1):
            clips = [clips]
        waves = []
        for i, c in enumerate(clips):
            try:
                waves.append(self.load(c, sr))
            except AudioError as exc:
                raise type(exc)(f"clip {i}: {exc}") from None
        if not waves:
            raise TooFewClipsError("no clips given")
        if self._embedder is None:
            raise TypeError("this Personalizer has no backbone (Personalizer.admin): use the *_embeddings methods")
        X = np.asarray(self._embedder(waves), dtype=np.float32)
        if X.shape != (len(waves), self.head.input_dim):
            # the backbone and the head disagree: a deployment error, not the caller's input
            raise RuntimeError(f"backbone returned embeddings of shape {X.shape}, expected "
                               f"({len(waves)}, {self.head.input_dim}); is the head made for this backbone?")
        return X

    # -- state --------------------------------------------------------------------------------
    def _state(self, user: str) -> Optional[UserState]:
        blob = self.store.get(self.config.tenant, check_user(user))
        return None if blob is None else self._decode_user(user, blob)

    def _decode_user(self, user: str, blob: bytes) -> UserState:
        st = UserState.from_bytes(blob)
        if st.dim != self.head.state_dim:
            raise InvalidStateError(f"the profile of user {user!r} holds {st.dim}-dimensional statistics but this "
                                    f"head keeps {self.head.state_dim}: it was made with another head; forget "
                                    f"and re-enroll the user")
        return st

    def _tenant_state(self) -> Optional[TenantState]:
        blob = self.store.get_tenant(self.config.tenant)
        return None if blob is None else self._decode_tenant(blob)

    def _decode_tenant(self, blob: bytes) -> TenantState:
        t = TenantState.from_bytes(blob)
        if (t.dim, t.hdim) != (self.head.state_dim, self.head.dim):
            raise InvalidStateError(f"the profile of tenant {self.config.tenant!r} was made with another head "
                                    f"(dimensions {t.dim}/{t.hdim}, this head {self.head.state_dim}/{self.head.dim})")
        return t

    def _check_X(self, X: np.ndarray, n_labels: int | None = None) -> np.ndarray:
        """Validated backbone embeddings ``[N, input_dim]`` (float32)."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim == 1:
            X = X[None]
        if X.ndim != 2 or X.shape[1] != self.head.input_dim:
            raise EmbeddingShapeError(f"embeddings must be [N, {self.head.input_dim}], got shape {X.shape}")
        if len(X) == 0:
            raise TooFewClipsError("no clips given")
        if not np.isfinite(X).all():
            raise EmbeddingShapeError("embeddings contain NaN or infinity")
        if np.abs(X).max() > MAX_ABS_VALUE:   # finite, but their squares would overflow the moments
            raise EmbeddingShapeError(f"embeddings hold values beyond +-{MAX_ABS_VALUE:g}; no encoder produces "
                                      f"those (adapt.personal.bounds)")
        if n_labels is not None and len(X) != n_labels:
            raise LengthMismatchError(f"{len(X)} clips but {n_labels} labels")
        return X

    def _known(self, st: Optional[UserState], tenant: Optional[TenantState]) -> set[str]:
        """Emotions a user of this tenant may be enrolled with (global, tenant's own, user's own)."""
        return set(self.head.available_classes(st, tenant))

    def _write(self, user: str, X: np.ndarray, labels: list[str], *, create: bool, custom: Sequence[str] = (),
               new_label: str | None = None) -> UserSummary:
        """Fold ``X``/``labels`` into the user's state inside one store transaction."""
        out: list[UserState] = []
        # the tenant's emotions matter only to a label check: observed clips (no label) skip the read
        tenant = self._tenant_state() if labels or new_label is not None else None

        def fn(old: Optional[bytes]) -> bytes:
            if old is None and not create:
                raise UnknownUserError(f"no profile for user {user!r}: enroll the user first")
            st = self._decode_user(user, old) if old is not None else UserState.empty(self.head.state_dim)
            known = self._known(st, tenant)
            if new_label is not None:
                if new_label in known:
                    raise LabelExistsError(f"user {user!r} already has the emotion {new_label!r}; "
                                           f"use update()/enroll() to add clips to it")
                if len(st.custom) >= self.config.max_user_emotions:
                    raise TooManyEmotionsError(f"user {user!r} already has {len(st.custom)} own emotions "
                                               f"(max_user_emotions={self.config.max_user_emotions})")
            else:
                unknown = sorted(set(labels) - known)
                if unknown:
                    raise UnknownLabelError(f"unknown emotion(s) {unknown} for user {user!r}; known: "
                                            f"{sorted(known)} (add_emotion() creates a new one)")
            st = st.add(X, labels, custom=custom) if labels else st.observe(X)
            out.append(st)
            return st.to_bytes()

        rev = self.store.modify(self.config.tenant, check_user(user), fn)
        return self._summary(user, out[-1], rev)

    # -- public API: users --------------------------------------------------------------------
    def enroll(self, user: str, clips: Sequence[Any], labels: Sequence[str], *, sr: int | None = None) -> UserSummary:
        """Add labelled clips to a user's profile (created if new); labels must be known emotions."""
        labels = self._labels(labels, len(clips) if hasattr(clips, "__len__") else None)
        return self.enroll_embeddings(user, self.embed(clips, sr), labels)

    def enroll_embeddings(self, user: str, X: np.ndarray, labels: Sequence[str]) -> UserSummary:
        """``enroll`` from precomputed embeddings ``X`` [N, D] (e.g. from the embedding cache)."""
        labels = self._labels(labels, None)
        if len(labels) < self.config.min_enroll_clips:
            raise TooFewClipsError(f"enroll needs at least {self.config.min_enroll_clips} clip(s), got {len(labels)}")
        return self._write(user, self._check_X(X, len(labels)), labels, create=True)

    def observe(self, user: str, clips: Sequence[Any], *, sr: int | None = None) -> UserSummary:
        """Fold clips of *unknown* emotion into the user's normalization statistics (the profile
        is created if new). No label, no class mean changes: the user's frame of reference
        (voice, microphone, language) is learnt from ordinary use."""
        return self.observe_embeddings(user, self.embed(clips, sr))

    def observe_embeddings(self, user: str, X: np.ndarray) -> UserSummary:
        """``observe`` from precomputed embeddings ``X`` [N, D]."""
        return self._write(user, self._check_X(X), [], create=True)

    def update(self, user: str, clip: Any, label: str, *, sr: int | None = None) -> UserSummary:
        """A correction: ``clip`` is ``label`` for this (already enrolled) user."""
        label = _canon(label)
        return self.update_embeddings(user, self.embed([clip], sr), label)

    def update_embeddings(self, user: str, x: np.ndarray, label: str) -> UserSummary:
        label = _canon(label)
        X = self._check_X(x)
        return self._write(user, X, [label] * len(X), create=False)

    def add_emotion(self, user: str, name: str, clips: Sequence[Any], *, sr: int | None = None) -> UserSummary:
        """Create an emotion class for this user only, from ``clips`` (at least ``min_new_emotion_clips``)."""
        name = _canon(name)
        if hasattr(clips, "__len__") and len(clips) < self.config.min_new_emotion_clips:
            raise TooFewClipsError(f"a new emotion needs at least {self.config.min_new_emotion_clips} clips, got {len(clips)}")
        return self.add_emotion_embeddings(user, name, self.embed(clips, sr))

    def add_emotion_embeddings(self, user: str, name: str, X: np.ndarray) -> UserSummary:
        name = _canon(name)
        X = self._check_X(X)
        if len(X) < self.config.min_new_emotion_clips:
            raise TooFewClipsError(f"a new emotion needs at least {self.config.min_new_emotion_clips} clips, got {len(X)}")
        return self._write(user, X, [name] * len(X), create=True, custom=[name], new_label=name)

    def set_labels(self, user: str, labels: Optional[Sequence[str]]) -> UserSummary:
        """The emotions scored for ``user`` from now on (None: back to the tenant's default).
        Every label must be one the user can be scored on (``UnknownLabelError`` otherwise)."""
        ls = None if labels is None else _labelset(labels)
        out: list[UserState] = []
        tenant = self._tenant_state()

        def fn(old: Optional[bytes]) -> bytes:
            if old is None:
                raise UnknownUserError(f"no profile for user {user!r}")
            st = self._decode_user(user, old)
            if ls is not None:
                self._check_available(ls, self.head.available_classes(st, tenant), f"user {user!r}")
            st = st.with_labelset(ls)
            out.append(st)
            return st.to_bytes()

        rev = self.store.modify(self.config.tenant, check_user(user), fn)
        return self._summary(user, out[-1], rev)

    def predict(self, user: str, clip: Any, *, labels: Optional[Sequence[str]] = None, sr: int | None = None) -> Prediction:
        """The emotion of one clip for ``user`` (the tenant's or global prediction if the user has
        no profile); ``labels``: score only these emotions (this call's label set)."""
        return self.predict_embeddings(user, self.embed([clip], sr), labels=labels)[0]

    def predict_batch(self, user: str, clips: Sequence[Any], *, labels: Optional[Sequence[str]] = None,
                      sr: int | None = None) -> list[Prediction]:
        """``predict`` for several clips of one user: one embedding batch, one store lookup."""
        return self.predict_embeddings(user, self.embed(clips, sr), labels=labels)

    def predict_segments(self, user: str, audio: Any, *, labels: Optional[Sequence[str]] = None,
                         config: Any = None, sr: int | None = None, vad: Any = None) -> list:
        """Per-segment emotions of a long recording for ``user``: speech regions (Silero VAD), cut
        into windows, each scored like ``predict``; a list of ``adapt.segments.Segment`` (start/end
        seconds, label, probabilities, confidence). ``config``: ``adapt.segments.SegmentConfig``.
        Memory is bounded by the window, not the recording (``adapt.segments``)."""
        from ..segments import predict_segments

        return predict_segments(self, user, audio, labels=labels, config=config, sr=sr, vad=vad)

    def predict_embeddings(self, user: str, X: np.ndarray, *, labels: Optional[Sequence[str]] = None) -> list[Prediction]:
        """``predict`` from precomputed embeddings ``X`` [N, D]."""
        X = self._check_X(X)
        call_labels = None if labels is None else _labelset(labels)
        st = self._state(user)
        tenant = self._tenant_state()
        chosen = call_labels
        if chosen is None:
            stored = ((st.labelset if st is not None else None) or (tenant.labelset if tenant is not None else None)
                      or self.config.labels)
            if stored is not None:
                # a stored set may name an emotion that has gone since (a forgotten tenant's own
                # emotion): score what is still available rather than fail every prediction
                available = set(self.head.available_classes(st, tenant))
                chosen = tuple(c for c in stored if c in available) or None
        classes, P = self.head.predict_proba(X, st, tenant, chosen)
        personal = st is not None
        below = self.uncertain_threshold(self.head.is_enrolled(st))
        out = []
        for row in P:
            k = int(np.argmax(row))
            conf = float(row[k])
            out.append(Prediction(label=classes[k], probabilities={c: float(p) for c, p in zip(classes, row)},
                                  confidence=conf, uncertain=conf < below, personalized=personal))
        if self.config.adapt_on_predict:
            self._write(user, X, [], create=True)
        return out

    def uncertain_threshold(self, enrolled: bool) -> float:
        """The confidence below which a prediction is flagged ``uncertain`` on a path
        (``enrolled``: the user has labelled clips): ``config.uncertain_below`` if set, else the
        head's calibrated threshold, else ``DEFAULT_UNCERTAIN_BELOW``."""
        if self.config.uncertain_below is not None:
            return float(self.config.uncertain_below)
        t = self.head.calibration.threshold(enrolled)
        return DEFAULT_UNCERTAIN_BELOW if t is None else float(t)

    def user_uncertain_threshold(self, user: str) -> float:
        """``uncertain_threshold`` on ``user``'s path (enrolled when the profile holds labelled
        clips; a user without a profile takes the unenrolled path)."""
        return self.uncertain_threshold(self.head.is_enrolled(self._state(check_user(user))))

    def available_emotions(self, user: str) -> tuple[str, ...]:
        """The emotions a prediction for ``user`` may return: the head's, then the tenant's own,
        then the user's own (``add_emotion``); a user without a profile gets the first two."""
        return tuple(self.head.available_classes(self._state(check_user(user)), self._tenant_state()))

    def forget(self, user: str, *, missing_ok: bool = False) -> bool:
        """Delete every trace of ``user`` in this tenant. Raises ``UnknownUserError`` if absent
        (unless ``missing_ok``)."""
        gone = self.store.delete(self.config.tenant, check_user(user))
        if self.feedback is not None:
            gone = self.feedback.forget(self.config.tenant, user, missing_ok=True) or gone
        if not gone and not missing_ok:
            raise UnknownUserError(f"no profile for user {user!r}")
        return gone

    def share_feedback(self, user: str) -> None:
        """Submit ``user``'s profile statistics to the ``feedback`` aggregator (the tenant must have
        enabled feedback and the user consented: ``ConsentError`` otherwise; ``UnknownUserError``
        without a profile). See ``adapt.personal.feedback``."""
        if self.feedback is None:
            raise InvalidStateError("this Personalizer has no feedback aggregator (Personalizer(..., feedback=...))")
        st = self._state(check_user(user))
        if st is None:
            raise UnknownUserError(f"no profile for user {user!r}")
        self.feedback.submit(self.config.tenant, user, st)

    def has_user(self, user: str) -> bool:
        return self.store.get(self.config.tenant, check_user(user)) is not None

    def users(self, *, limit: int = 1000, offset: int = 0) -> list[str]:
        """This tenant's enrolled users, sorted."""
        return self.store.list_users(self.config.tenant, limit=limit, offset=offset)

    def summary(self, user: str) -> UserSummary:
        st = self._state(user)
        if st is None:
            raise UnknownUserError(f"no profile for user {user!r}")
        return self._summary(user, st)

    def export_user(self, user: str) -> dict[str, Any]:
        """The user's whole profile as a JSON-serializable dict (``import_user`` restores it)."""
        st = self._state(user)
        if st is None:
            raise UnknownUserError(f"no profile for user {user!r}")
        return {"user": user, "head": self._head_id(), "state": st.to_json()}

    def import_user(self, data: dict[str, Any], *, user: str | None = None, overwrite: bool = False) -> UserSummary:
        """Restore an ``export_user`` dict (as ``user``, default the exported name)."""
        if not isinstance(data, dict) or "state" not in data:
            raise InvalidStateError("not an exported user profile (expected a dict with 'state')")
        if user is None:
            user = data.get("user")
            if not isinstance(user, str):
                raise InvalidStateError("the export names no user (key 'user'); pass user=... to choose one")
        user = check_user(user)
        st = UserState.from_json(data["state"])
        if st.dim != self.head.state_dim:
            raise InvalidStateError(f"exported profile has dimension {st.dim}, this model uses {self.head.state_dim}")
        self._check_custom(st.custom)
        tenant = self._tenant_state()
        known = self._known(st, tenant)
        unknown = sorted(set(st.labels) - known)
        if unknown:
            raise UnknownLabelError(f"exported profile uses emotion(s) {unknown} unknown to this model")
        if st.labelset is not None:
            self._check_available(st.labelset, tuple(known), "the exported label set")

        def fn(old: Optional[bytes]) -> bytes:
            if old is not None and not overwrite:
                raise ProfileExistsError(f"user {user!r} already exists; pass overwrite=True to replace the profile")
            return st.to_bytes()

        rev = self.store.modify(self.config.tenant, user, fn)
        return self._summary(user, st, rev)

    # -- public API: the tenant layer ---------------------------------------------------------
    def enroll_tenant(self, clips: Sequence[Any], labels: Sequence[str], *, speakers: Optional[Sequence[str]] = None,
                      new_emotions: Sequence[str] = (), sr: int | None = None) -> TenantSummary:
        """Adapt this tenant's layer from labelled clips of several of its speakers.

        ``speakers`` (one id per clip; None: all clips are one speaker) groups the clips: each
        speaker is standardized with their own statistics, their per-emotion sums are added to the
        tenant's, and a speaker acting two or more emotions adds their centre and variance to the
        tenant's normalization prior. Speaker ids are used for grouping only and not stored.
        Labels must be global emotions or ones the tenant already has; an emotion the global head
        lacks must be named in ``new_emotions`` (so a typo is an ``UnknownLabelError``, not a new
        class) and then becomes available to every user of the tenant.
        """
        labels = self._labels(labels, len(clips) if hasattr(clips, "__len__") else None)
        return self.enroll_tenant_embeddings(self.embed(clips, sr), labels, speakers=speakers, new_emotions=new_emotions)

    def enroll_tenant_embeddings(self, X: np.ndarray, labels: Sequence[str], *,
                                 speakers: Optional[Sequence[str]] = None,
                                 new_emotions: Sequence[str] = ()) -> TenantSummary:
        """``enroll_tenant`` from precomputed embeddings ``X`` [N, D]."""
        labels = self._labels(labels, None)
        if isinstance(new_emotions, str):
            raise TypeError("new_emotions must be a sequence of labels, not a single string")
        new = {_canon(lab) for lab in new_emotions}
        X = self._check_X(X, len(labels))
        if speakers is None:
            spk = np.zeros(len(X), dtype=int)
        else:
            if isinstance(speakers, str) or len(speakers) != len(X):
                raise LengthMismatchError(f"{len(X)} clips but {0 if isinstance(speakers, str) else len(speakers)} "
                                          f"speaker ids (one per clip)")
            spk = np.asarray([str(s) for s in speakers])
        y = np.asarray(labels)
        increments = [self.head.speaker_head_sums(X[spk == s], y[spk == s]) for s in dict.fromkeys(spk.tolist())]
        out: list[TenantState] = []

        def fn(old: Optional[bytes]) -> bytes:
            t = self._decode_tenant(old) if old is not None else TenantState.empty(self.head.state_dim, self.head.dim)
            unknown = sorted(set(labels) - set(self.head.classes) - set(t.labels) - new)
            if unknown:
                raise UnknownLabelError(f"unknown emotion(s) {unknown} for tenant {self.config.tenant!r}; known: "
                                        f"{sorted(set(self.head.classes) | set(t.labels))} (name a new one in "
                                        f"new_emotions=...)")
            for inc in increments:
                t = t.add_speaker(*inc)
            self._check_tenant_emotions(t.labels, "tenant")
            out.append(t)
            return t.to_bytes()

        rev = self.store.modify_tenant(self.config.tenant, fn)
        return self._tenant_summary(out[-1], rev)

    def set_tenant_labels(self, labels: Optional[Sequence[str]]) -> TenantSummary:
        """The tenant's default label set (None: every available emotion); users without a label
        set of their own and calls without ``labels=`` score these."""
        ls = None if labels is None else _labelset(labels)
        out: list[TenantState] = []

        def fn(old: Optional[bytes]) -> bytes:
            t = self._decode_tenant(old) if old is not None else TenantState.empty(self.head.state_dim, self.head.dim)
            if ls is not None:
                self._check_available(ls, self.head.available_classes(None, t), f"tenant {self.config.tenant!r}")
            t = t.with_labelset(ls)
            out.append(t)
            return t.to_bytes()

        rev = self.store.modify_tenant(self.config.tenant, fn)
        return self._tenant_summary(out[-1], rev)

    def tenant_summary(self) -> TenantSummary:
        """What this tenant's layer holds (``UnknownUserError`` when it has none)."""
        t = self._tenant_state()
        if t is None:
            raise UnknownTenantError(f"tenant {self.config.tenant!r} has no tenant profile")
        return self._tenant_summary(t)

    def has_tenant_profile(self) -> bool:
        return self.store.get_tenant(self.config.tenant) is not None

    def export_tenant(self) -> dict[str, Any]:
        """The tenant layer as a JSON-serializable dict (``import_tenant`` restores it)."""
        t = self._tenant_state()
        if t is None:
            raise UnknownTenantError(f"tenant {self.config.tenant!r} has no tenant profile")
        return {"tenant": self.config.tenant, "head": self._head_id(), "state": t.to_json()}

    def import_tenant(self, data: dict[str, Any], *, overwrite: bool = False) -> TenantSummary:
        """Restore an ``export_tenant`` dict into this tenant."""
        if not isinstance(data, dict) or "state" not in data:
            raise InvalidStateError("not an exported tenant profile (expected a dict with 'state')")
        t = TenantState.from_json(data["state"])
        if (t.dim, t.hdim) != (self.head.state_dim, self.head.dim):
            raise InvalidStateError(f"exported tenant profile has dimensions {t.dim}/{t.hdim}, this model uses "
                                    f"{self.head.state_dim}/{self.head.dim}")
        for name in t.labels:
            if _label_or_none(name) != name:
                raise InvalidStateError(f"exported tenant profile has an invalid emotion {name!r}")
        self._check_tenant_emotions(t.labels, "exported tenant profile")
        if t.labelset is not None:
            self._check_available(t.labelset, self.head.available_classes(None, t), "the exported label set")

        def fn(old: Optional[bytes]) -> bytes:
            if old is not None and not overwrite:
                raise ProfileExistsError(f"tenant {self.config.tenant!r} already has a tenant profile; "
                                         f"pass overwrite=True to replace it")
            return t.to_bytes()

        rev = self.store.modify_tenant(self.config.tenant, fn)
        return self._tenant_summary(t, rev)

    def forget_tenant(self, *, users: bool = False, missing_ok: bool = False) -> bool:
        """Delete the tenant layer; with ``users=True`` every user profile of the tenant too.
        Returns whether anything was deleted; ``UnknownUserError`` if nothing was there (unless
        ``missing_ok``)."""
        gone = self.store.delete_tenant(self.config.tenant)
        if users:
            gone = self.store.delete_users(self.config.tenant) > 0 or gone
        if not gone and not missing_ok:
            raise UnknownTenantError(f"tenant {self.config.tenant!r} has no tenant profile")
        return gone

    # -- helpers ------------------------------------------------------------------------------
    def _labels(self, labels: Sequence[str], n: int | None) -> list[str]:
        if isinstance(labels, str):
            raise TypeError("labels must be a sequence of labels, one per clip, not a single string")
        out = [_canon(lab) for lab in labels]
        if n is not None and len(out) != n:
            raise LengthMismatchError(f"{n} clips but {len(out)} labels")
        if not out:
            raise TooFewClipsError("no clips given")
        return out

    @staticmethod
    def _check_available(ls: Sequence[str], available: Sequence[str], what: str) -> None:
        missing = [c for c in ls if c not in available]
        if missing:
            raise UnknownLabelError(f"{what}: unknown emotion(s) {missing}; available: {list(available)}")

    def _check_custom(self, custom: Sequence[str]) -> None:
        """An imported profile's own emotions follow the rules ``add_emotion`` applies."""
        for name in custom:
            if name in self.head.classes or _label_or_none(name) != name:
                raise InvalidStateError(f"exported profile has an invalid own emotion {name!r} "
                                        f"(a global emotion, or not a valid label)")
        if len(custom) > self.config.max_user_emotions:
            raise TooManyEmotionsError(f"exported profile has {len(custom)} own emotions "
                                       f"(max_user_emotions={self.config.max_user_emotions})")

    def _check_tenant_emotions(self, labels: Sequence[str], what: str) -> None:
        own = [c for c in labels if c not in self.head.classes]
        if len(own) > self.config.max_tenant_emotions:
            raise TooManyEmotionsError(f"{what} has {len(own)} emotions of its own "
                                       f"(max_tenant_emotions={self.config.max_tenant_emotions})")

    def _summary(self, user: str, st: UserState, revision: int | None = None) -> UserSummary:
        counts = {c: int(n) for c, n in zip(st.labels, st.counts)}
        return UserSummary(user=user, counts=counts, custom_emotions=st.custom, clips=int(st.n),
                           revision=revision if revision is not None else self.store.revision(self.config.tenant, user),
                           unlabelled=int(st.n) - st.labelled, labels=st.labelset)

    def _tenant_summary(self, t: TenantState, revision: int | None = None) -> TenantSummary:
        return TenantSummary(tenant=self.config.tenant, counts={c: int(n) for c, n in zip(t.labels, t.counts)},
                             speakers=t.n_speakers, labels=t.labelset,
                             revision=revision if revision is not None else self.store.tenant_revision(self.config.tenant))

    def _head_id(self) -> dict[str, Any]:
        return {"classes": list(self.head.classes), "dim": self.head.dim, "input_dim": self.head.input_dim,
                "backbone": self.head.info.get("backbone")}
