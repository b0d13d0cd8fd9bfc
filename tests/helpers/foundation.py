"""Test helpers of the foundation tests: a local HTTP server with Range support and faults, and a
small RAVDESS-like archive."""
from __future__ import annotations

import io
import re
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import soundfile as sf


@dataclass
class Served:
    """What the server sends and how it misbehaves.

    mode: ``"ok"``; ``"drop_first"`` (the first GET sends ``drop_at`` bytes, then closes);
    ``"always_drop"``; ``"ignore_range"`` (never answers 206, and drops the first GET too);
    ``"wrong_range"`` (drops the first GET, then answers the Range request with the wrong range).
    """

    files: dict[str, bytes] = field(default_factory=dict)
    mode: str = "ok"
    drop_at: int = 0
    requests: list[dict] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    served: Served

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        s = self.served
        body = s.files.get(self.path.split("?")[0])
        s.requests.append({"path": self.path, "range": self.headers.get("Range")})
        if body is None:
            self.send_error(404, "not found")
            return
        start = 0
        m = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
        honour_range = m is not None and s.mode != "ignore_range"
        if m is not None and s.mode == "wrong_range" and len(s.requests) == 2:
            # a broken server: 206 for a range that was not asked for (the whole file)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes 0-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if honour_range:
            start = int(m.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        first = len(s.requests) == 1
        drop = s.mode == "always_drop" or (first and s.mode in ("drop_first", "ignore_range", "wrong_range"))
        if drop:
            self.wfile.write(chunk[: s.drop_at])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)  # the "network" fails mid-transfer
            return
        self.wfile.write(chunk)


class LocalServer:
    """``with LocalServer(served) as base_url: ...`` serves on 127.0.0.1 in a thread."""

    def __init__(self, served: Served) -> None:
        handler = type("Handler", (_Handler,), {"served": served})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def wav_bytes(seconds: float, sr: int, channels: int = 1, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * (150 + 50 * seed) * t) + 0.01 * rng.standard_normal(len(t))
    if channels > 1:
        x = np.stack([x] * channels, axis=1)
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def ravdess_like_zip() -> tuple[bytes, dict[str, dict]]:
    """A zip in the RAVDESS speech layout and, per valid member, the labels it should get.

    Two actors (01 male, 02 female), three emotions, two statements, 48 kHz (one file stereo),
    plus members the converter must skip: an unrecognised name, a corrupt WAV with a valid name,
    a macOS resource fork and a text file.
    """
    emotions = {"01": "neutral", "04": "sad", "05": "angry"}
    expected: dict[str, dict] = {}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        seed = 0
        for actor in ("01", "02"):
            for code, emotion in emotions.items():
                for statement in ("01", "02"):
                    name = f"03-01-{code}-01-{statement}-01-{actor}"
                    member = f"Audio_Speech_Actors_01-24/Actor_{actor}/{name}.wav"
                    seed += 1
                    zf.writestr(member, wav_bytes(0.6, 48_000, channels=2 if seed == 3 else 1, seed=seed % 7))
                    expected[f"audio/Actor_{actor}/{name}.flac"] = {
                        "speaker": f"ravdess_{actor}", "emotion": emotion, "gender": "m" if actor == "01" else "f",
                        "text_id": f"s{statement}",
                    }
        zf.writestr("Audio_Speech_Actors_01-24/Actor_01/notes.wav", wav_bytes(0.6, 48_000))
        zf.writestr("Audio_Speech_Actors_01-24/Actor_02/03-01-08-01-01-01-02.wav", b"RIFF\x00\x00garbage")
        zf.writestr("__MACOSX/Audio_Speech_Actors_01-24/._03-01-01-01-01-01-01.wav", b"\x00\x05\x16\x07")
        zf.writestr("Audio_Speech_Actors_01-24/README.txt", "RAVDESS-like test archive\n")
    return buf.getvalue(), expected


def tree(path: Path) -> list[str]:
    """Every path under ``path`` (relative, sorted), hidden ones included."""
    return sorted(p.relative_to(path).as_posix() for p in Path(path).rglob("*")) if Path(path).exists() else []
