"""Helpers shared by the personalizer / profile / service tests (not a test module).

``LogMelEmbedder`` is a cheap stand-in backbone: mean and standard deviation of 64 log-mel bands
(128 dims). It lets store and service tests run without the real encoder; tests that need the
real default backbone say so and use ``adapt.get_backbone()``.
"""
from __future__ import annotations

import os
import threading

import numpy as np

from adapt.personal import GlobalHead


class LogMelEmbedder:
    """Callable ``list[Waveform] -> [N, 128]`` float32 (log-mel band means and stds)."""

    dim = 128

    def __init__(self) -> None:
        import torch
        import torchaudio

        self._torch = torch
        self._mel = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=400, hop_length=160, n_mels=64)
        self._lock = threading.Lock()  # the transform's buffers are shared; keep threads apart
        self.calls = 0

    def __call__(self, waves) -> np.ndarray:
        out = []
        with self._lock, self._torch.inference_mode():
            self.calls += 1
            for w in waves:
                m = self._mel(self._torch.from_numpy(np.ascontiguousarray(w.samples)))
                lm = self._torch.log(m + 1e-6)
                out.append(self._torch.cat([lm.mean(1), lm.std(1)]).numpy())
        return np.stack(out).astype(np.float32)


def fit_head(corpus, embedder, speakers, emotions=None) -> GlobalHead:
    """A GlobalHead fitted on ``speakers`` of ``corpus`` with ``embedder``."""
    from adapt.audio import load_audio

    sub = corpus.filter(speakers=speakers, emotions=emotions)
    X = embedder([load_audio(r.path) for r in sub])
    return GlobalHead.fit(X, np.array(sub.labels()), speakers=np.array([r.speaker for r in sub]), dim=64,
                          info={"backbone": "test-logmel", "corpus": corpus.name})


# -- cached test model: a head fitted on 3 RAVDESS speakers with the log-mel embedder --------
_CACHE: dict = {}


def small_model():
    """``(embedder, head)`` fitted once per process on RAVDESS speakers 01-03 (real audio)."""
    if "model" not in _CACHE:
        from scenarios.corpora import load_corpus

        corpus = load_corpus("ravdess")
        emb = LogMelEmbedder()
        _CACHE["model"] = (emb, fit_head(corpus, emb, ["ravdess_01", "ravdess_02", "ravdess_03"]))
    return _CACHE["model"]


# -- a throwaway PostgreSQL server ----------------------------------------------------------
PG_ENV = "SER_ADAPT_TEST_PG_URL"


def _pg_bin() -> str | None:
    import glob
    import shutil

    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(cands[-1]) if cands else None


def start_postgres():
    """A PostgreSQL URL for tests: ``$SER_ADAPT_TEST_PG_URL`` if set, else a throwaway cluster in a
    temp dir on 127.0.0.1 (as the ``postgres`` user when running as root). Returns ``(url, stop)``;
    ``(None, reason)`` when no server can be had."""
    url = os.environ.get(PG_ENV)
    if url:
        return url, lambda: None
    bindir = _pg_bin()
    if bindir is None:
        return None, "no PostgreSQL server: set $SER_ADAPT_TEST_PG_URL or install the Debian 'postgresql' package"
    import pwd
    import shutil
    import socket
    import subprocess
    import tempfile

    run_as: list[str] = []
    tmp = tempfile.mkdtemp(prefix="ser_adapt_pg_")
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            return None, "running as root and no 'postgres' user to run the throwaway cluster"
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = os.path.join(tmp, "data")
    try:
        subprocess.run(run_as + [f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run(run_as + [f"{bindir}/pg_ctl", "-D", data, "-l", os.path.join(tmp, "log"), "-w", "-o",
                                 f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                       check=True, capture_output=True, timeout=120)
    except (subprocess.SubprocessError, OSError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        return None, f"could not start a throwaway PostgreSQL cluster: {exc}"

    def stop() -> None:
        subprocess.run(run_as + [f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)

    return f"postgresql://postgres@127.0.0.1:{port}/postgres", stop
