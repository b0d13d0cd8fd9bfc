"""Helpers of the HTTP service tests (not a test module): headers, FLAC bytes, multipart enroll."""
from __future__ import annotations

import io

import soundfile as sf


def H(key):
    """Bearer-auth headers for ``key``."""
    return {"Authorization": f"Bearer {key}"}


def flac(samples, sr=16000):
    buf = io.BytesIO()
    sf.write(buf, samples, sr, format="FLAC")
    return buf.getvalue()


def audio_part(name, data, field="files"):
    return (field, (name, data, "audio/flac"))


def enroll(client, key, user, clips):
    """Enroll the first two clips of every emotion in ``clips`` (``{emotion: [bytes, ...]}``)."""
    files = [audio_part(f"{e}{i}.flac", c) for e, cs in clips.items() for i, c in enumerate(cs[:2])]
    labels = [e for e, cs in clips.items() for _ in cs[:2]]
    return client.post(f"/v1/users/{user}/enroll", files=files, data={"labels": labels}, headers=H(key))
