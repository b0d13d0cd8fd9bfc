"""Fault and load suite of the HTTP service: a real `ser-adapt serve` on 127.0.0.1, bounded.

Writes ``benchmarks/results/faults.md`` and rebuilds BENCHMARKS.md.

    .venv/bin/python -m benchmarks.faults                  # ~5 min on 2 cores
    .venv/bin/python -m benchmarks.faults --seconds 20     # quicker

Phases, each against the same server (default backbone + shipped head, SQLite store), with the
server's resident memory sampled from /proc every 50 ms:

1. **load**: 8 concurrent clients send predicts for ``--seconds``: p50 / p99 latency, status counts;
2. **amplification**: 8 concurrent predicts of the review's 165 kB FLAC (8 channels at 655 350 Hz,
   29 s) and of the worst legal FLAC (8 channels at 384 kHz, 29 s): status counts, peak server RSS;
3. **saturation**: 24 concurrent plain-socket clients against the default ``--max-inflight`` (4):
   how many 503s, how fast they come back (last byte sent to first byte answered), and that the
   accepted requests still succeed;
4. **slow clients**: 64 connections that send one header byte per second while 20 real predicts
   run: the real requests' errors, and whether the slow ones were closed (408) by the header timeout;
5. **crash**: 4 writers enroll one clip per request; the server is SIGKILLed mid-burst and
   restarted; every acknowledged enroll must be in the profiles.
"""
from __future__ import annotations

import argparse
import io
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ._common import free_port, load_average, provenance, rss_mb, start_server
from .render import publish


class Server:
    """`ser-adapt serve` in a subprocess, with its RSS sampled in a thread."""

    def __init__(self, db: Path, tmp: Path, extra: list[str] = ()) -> None:
        self.db, self.tmp, self.extra = db, tmp, list(extra)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.rss_mb: list[float] = []
        self._stop = threading.Event()

    def start(self) -> float:
        self.proc, seconds = start_server(self.db, self.port, self.tmp / "server.log", self.extra)
        self._stop.clear()
        threading.Thread(target=self._sample, daemon=True).start()
        return seconds

    def _sample(self) -> None:
        while not self._stop.is_set():
            mb = rss_mb(self.proc.pid)
            if mb is None:   # the process is gone
                return
            self.rss_mb.append(mb)
            time.sleep(0.05)

    def peak_since(self, mark: int) -> float:
        return max(self.rss_mb[mark:], default=float("nan"))

    def kill(self) -> None:
        self._stop.set()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        self._stop.set()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _flac(rate: int, channels: int, seconds: int) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", rate, channels, format="FLAC", subtype="PCM_16") as f:
        block = np.zeros((rate, channels), np.int16)
        for _ in range(seconds):
            f.write(block)
    return buf.getvalue()


def _raw_predict(port: int, key: str, data: bytes) -> tuple[float, int]:
    """One multipart predict over a plain socket: seconds from the last byte sent to the first
    byte of the answer, and the status. Unlike an HTTP client library this adds no client-side
    work (an ``httpx.Client`` costs 40-90 ms to create), so it times the server's answer."""
    body = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.flac"\r\n'
            b"Content-Type: audio/flac\r\n\r\n" + data + b"\r\n--b--\r\n")
    head = (f"POST /v1/users/listener/predict HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n").encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
            s.sendall(head + body)
            t = time.perf_counter()
            first = s.recv(64)
            took = time.perf_counter() - t
            while s.recv(65536):
                pass
        return took, int(first.split(b" ")[1])
    except (OSError, IndexError, ValueError):
        return float("nan"), -1


def _pct(values, q) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q)) if len(values) else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="duration of the 8-client load phase")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    import httpx

    from adapt.store import open_store
    from scenarios.corpora import load_corpus

    tmp = Path(tempfile.mkdtemp(prefix="bench_faults_"))
    db = tmp / "profiles.db"
    with open_store(db) as s:
        key = s.create_key("bench")
    H = {"Authorization": f"Bearer {key}"}
    recs = list(load_corpus("ravdess").filter(speakers=["ravdess_09"]))
    enroll_recs = [r for r in recs if r.text_id == "s01"][:16]
    clips = [(r.path.name, r.path.read_bytes()) for r in recs if r.text_id == "s02"]
    load0 = load_average()
    srv = Server(db, tmp)
    startup = srv.start()
    out: dict[str, object] = {}

    def predict(data: bytes, name: str = "x.flac", user: str = "listener") -> tuple[float, int]:
        t = time.perf_counter()
        try:
            with httpx.Client(base_url=srv.base, headers=H, timeout=120) as c:
                code = c.post(f"/v1/users/{user}/predict", files={"file": (name, data, "audio/flac")}).status_code
        except httpx.HTTPError:
            code = -1
        return time.perf_counter() - t, code

    try:
        with httpx.Client(base_url=srv.base, headers=H, timeout=120) as c:
            files = [("files", (r.path.name, r.path.read_bytes(), "audio/flac")) for r in enroll_recs]
            c.post("/v1/users/listener/enroll", files=files,
                   data={"labels": [x.emotion for x in enroll_recs]}).raise_for_status()
        for name, data in clips[:2]:
            predict(data, name)
        base_rss = srv.rss_mb[-1]

        # 1. load: 8 clients for --seconds
        mark, stop_at, res = len(srv.rss_mb), time.time() + args.seconds, []
        lock = threading.Lock()

        def client(i: int) -> None:
            j = i
            while time.time() < stop_at:
                r = predict(clips[j % len(clips)][1])
                with lock:
                    res.append(r)
                if r[1] == 503:
                    time.sleep(1.0)       # a well-behaved client honours Retry-After: 1
                else:
                    j += 8

        with ThreadPoolExecutor(8) as ex:
            list(ex.map(client, range(8)))
        lat = [t for t, c in res if c == 200]
        out["load"] = dict(n=len(res), ok=len(lat), busy=sum(c == 503 for _, c in res),
                           codes=sorted({c for _, c in res}), p50=_pct(lat, 50),
                           p99=_pct(lat, 99), rps=len(res) / args.seconds, rss=srv.peak_since(mark))
        print("load", out["load"], flush=True)

        # 2. amplification: 8 concurrent predicts of the review's file and of the worst legal FLAC
        attack, legal = _flac(655350, 8, 29), _flac(384000, 8, 29)
        mark = len(srv.rss_mb)
        with ThreadPoolExecutor(8) as ex:
            amp = list(ex.map(lambda i: predict(attack if i % 2 == 0 else legal), range(16)))
        time.sleep(0.3)
        out["amp"] = dict(attack_bytes=len(attack), legal_bytes=len(legal),
                          attack_codes=sorted({c for i, (_, c) in enumerate(amp) if i % 2 == 0}),
                          legal_codes=sorted({c for i, (_, c) in enumerate(amp) if i % 2 == 1}),
                          attack_ms=_pct([t for i, (t, _) in enumerate(amp) if i % 2 == 0], 50),
                          rss=srv.peak_since(mark))
        print("amplification", out["amp"], flush=True)

        # 3. saturation: 24 clients, 3 requests each, against max_inflight
        mark = len(srv.rss_mb)
        with ThreadPoolExecutor(24) as ex:
            sat = list(ex.map(lambda i: _raw_predict(srv.port, key, clips[i % len(clips)][1]), range(72)))
        busy = [t for t, c in sat if c == 503]
        out["sat"] = dict(n=len(sat), ok=sum(c == 200 for _, c in sat), busy=len(busy),
                          other=sorted({c for _, c in sat if c not in (200, 503)}), busy_p50=_pct(busy, 50),
                          busy_p99=_pct(busy, 99), rss=srv.peak_since(mark))
        print("saturation", out["sat"], flush=True)

        # 4. slow clients: 64 one-byte-per-second header senders while 20 real predicts run
        slow_done: list[bytes] = []

        def slowloris() -> None:
            try:
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
                s.sendall(b"GET /health HTTP/1.1\r\n")
                t0 = time.time()
                s.settimeout(1.0)
                while time.time() - t0 < 25:
                    try:
                        s.sendall(b"X")
                        got = s.recv(4096)
                        if got or got == b"":
                            slow_done.append(got[:12] or b"closed")
                            break
                    except socket.timeout:
                        continue
                    except OSError:
                        slow_done.append(b"reset")
                        break
                s.close()
            except OSError:
                slow_done.append(b"refused")

        hogs = [threading.Thread(target=slowloris, daemon=True) for _ in range(64)]
        t_slow = time.time()
        for h in hogs:
            h.start()
        time.sleep(1.0)
        with ThreadPoolExecutor(4) as ex:
            real = list(ex.map(lambda i: predict(clips[i % len(clips)][1]), range(20)))
        for h in hogs:
            h.join(30)
        out["slow"] = dict(slow=len(hogs), closed=len(slow_done), closed_408=sum(x.startswith(b"HTTP/1.1 408")
                                                                                  for x in slow_done),
                           seconds=time.time() - t_slow, real_ok=sum(c == 200 for _, c in real),
                           real_p50=_pct([t for t, c in real if c == 200], 50))
        print("slow", out["slow"], flush=True)

        # 5. crash: SIGKILL mid-burst, restart, every acknowledged enroll present
        acked = {f"writer-{i}": 0 for i in range(4)}
        clip = enroll_recs[0].path.read_bytes()
        stop_writes = threading.Event()

        def writer(user: str) -> None:
            with httpx.Client(base_url=srv.base, headers=H, timeout=30) as c:
                while not stop_writes.is_set():
                    try:
                        r = c.post(f"/v1/users/{user}/enroll", files=[("files", ("a.flac", clip, "audio/flac"))],
                                   data={"labels": ["neutral"]})
                    except httpx.HTTPError:
                        return
                    if r.status_code == 200:
                        acked[user] += 1

        ws = [threading.Thread(target=writer, args=(u,)) for u in acked]
        for w in ws:
            w.start()
        time.sleep(8.0)
        srv.kill()
        stop_writes.set()
        for w in ws:
            w.join(30)
        srv.rss_mb = []
        srv.start()
        with httpx.Client(base_url=srv.base, headers=H, timeout=30) as c:
            stored = {u: c.get(f"/v1/users/{u}").json().get("clips", 0) for u in acked}
        out["crash"] = dict(acked=sum(acked.values()), lost=sum(max(0, acked[u] - stored[u]) for u in acked),
                            extra=sum(max(0, stored[u] - acked[u]) for u in acked))
        print("crash", out["crash"], flush=True)
    finally:
        srv.stop()

    L, A, S, W, C = out["load"], out["amp"], out["sat"], out["slow"], out["crash"]
    lines = ["## Faults and load (issue #13)", "", provenance(),
             f"Server: `ser-adapt serve` with its defaults (max-inflight 4, header timeout "
             f"10 s, 256 connections, 50 requests/s per tenant), default backbone + shipped head, SQLite; started in "
             f"{startup:.0f} s; idle RSS {base_rss:.0f} MB. Load average at the start "
             f"{load0 if load0 is None else round(load0, 1)} on 2 cores (other jobs were running: latencies "
             f"include that contention).", "",
             "| phase | what was sent | result | server peak RSS |", "|---|---|---|---|",
             f"| load | 8 clients x {args.seconds:.0f} s of predicts (RAVDESS clips); p50/p99 of the 200s | {L['ok']}/{L['n']} ok, {L['busy']} x 503 (retried after 1 s), "
             f"statuses {L['codes']}; p50 {L['p50']:.0f} ms, p99 {L['p99']:.0f} ms, {L['rps']:.1f} req/s | {L['rss']:.0f} MB |",
             f"| amplification | 8 concurrent predicts of the review's {A['attack_bytes'] // 1000} kB FLAC (8 ch, "
             f"655 350 Hz, 29 s) and 8 of the worst legal one ({A['legal_bytes'] // 1000} kB, 8 ch, 384 kHz, 29 s) "
             f"| attack: statuses {A['attack_codes']} in {A['attack_ms']:.0f} ms (p50); legal: {A['legal_codes']} | "
             f"{A['rss']:.0f} MB |",
             f"| saturation | 24 plain-socket clients x 3 predicts (time: last byte sent to first byte back) | {S['ok']} ok, {S['busy']} x 503 `overloaded` (p50 "
             f"{S['busy_p50']:.0f} ms, p99 {S['busy_p99']:.0f} ms), other statuses {S['other']} | {S['rss']:.0f} MB |",
             f"| slow clients | {W['slow']} connections sending one header byte per second, with 20 predicts "
             f"meanwhile | {W['real_ok']}/20 predicts ok (p50 {W['real_p50']:.0f} ms); {W['closed']} slow "
             f"connections closed, {W['closed_408']} with 408, within {W['seconds']:.0f} s | |",
             f"| crash | 4 writers enrolling one clip per request; SIGKILL after 8 s; restart | {C['acked']} enrolls "
             f"acknowledged, {C['lost']} lost, {C['extra']} extra (in flight when killed) | |", "",
             "Targets (issue #13): peak server RSS under 8 concurrent predicts < 2 GB including the amplification "
             "file; at saturation a 503 within 100 ms instead of queueing; no acknowledged write lost.", ""]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        publish("faults", text + "\n")


if __name__ == "__main__":
    main()
