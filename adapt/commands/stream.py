"""``ser-adapt stream FILE``: stream a recording to the service's WebSocket route and print the
per-window predictions as they arrive (one JSON line each); and the ``predict --segments`` output.

The client reads the file in bounded blocks (``adapt.segments.LongAudio``), sends 16 kHz mono
int16 chunks of ``--chunk-ms`` at ``--speed`` times real time (1: as a live microphone would; 0: as
fast as possible, with the server's ``overflow: "block"`` so nothing is dropped), and prints each
``prediction`` message. ``--serve`` first starts the service in this process on a free port, with
a temporary profile store and key, so the command runs on its own. The protocol is documented in
``adapt.service.stream``; needs the ``realtime`` extra (``websockets``).
"""
from __future__ import annotations

import csv
import json
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import typer

from ._shared import cli_errors, cli_personalizer, fail, split_list, store_option

SEGMENT_FORMATS = ("jsonl", "csv")


def print_segments(make_personalizer: Callable, user: str, files: list[Path], *, labels=None, fmt: str = "jsonl",
                   window: float = 1.5, hop: float = 0.75, smoothing: int = 1, vad: bool = True) -> None:
    """``predict --segments``: one row per segment of each file, as JSON Lines or CSV on stdout."""
    from ..segments import SEGMENT_FIELDS, SegmentConfig, iter_segments

    if fmt not in SEGMENT_FORMATS:
        raise typer.BadParameter(f"unknown format {fmt!r}; known: {list(SEGMENT_FORMATS)}", param_hint="'--format'")
    try:
        config = SegmentConfig(window_s=window, hop_s=hop, smoothing=smoothing, vad=vad)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"no such audio file: {f}")
    p = make_personalizer()
    writer = None
    for f in files:
        for s in iter_segments(p, user, str(f), labels=labels, config=config):
            row = s.to_dict()
            if fmt == "jsonl":
                typer.echo(json.dumps({"file": str(f), **row}))
                continue
            if writer is None:
                classes = list(row["probabilities"])
                writer = csv.writer(sys.stdout, lineterminator="\n")
                writer.writerow(["file", *SEGMENT_FIELDS, *[f"p_{c}" for c in classes]])
            writer.writerow([str(f), *[round(row[k], 4) if isinstance(row[k], float) else row[k]
                                       for k in SEGMENT_FIELDS],
                             *[round(row["probabilities"].get(c, 0.0), 4) for c in classes]])
        sys.stdout.flush()


def pcm_chunks(file: str, chunk_ms: int):
    """16 kHz mono int16 little-endian chunks of ``chunk_ms`` of ``file`` (read in bounded blocks)."""
    import numpy as np

    from ..segments import LongAudio

    n = 16 * chunk_ms
    with LongAudio(file, block_s=10.0) as rec:
        for block in rec.blocks():
            pcm = (np.clip(block, -1.0, 1.0) * 32767.0).astype("<i2")
            for i in range(0, len(pcm), n):
                yield pcm[i:i + n].tobytes()


def stream_file(url: str, key: str, user: str, file: str, *, window: float = 2.0, hop: float = 1.0,
                speed: float = 1.0, chunk_ms: int = 100, labels=None, on_message: Optional[Callable] = None) -> dict:
    """Stream ``file`` to ``{url}/v1/users/{user}/stream``; ``on_message`` gets every prediction
    (a dict) as it arrives. Returns the server's ``end`` message."""
    from websockets.sync.client import connect

    ws_url = url.replace("https://", "wss://").replace("http://", "ws://").rstrip("/") + f"/v1/users/{user}/stream"
    config = {"type": "config", "format": "int16", "window_s": window, "hop_s": hop,
              "overflow": "drop" if speed > 0 else "block"}
    if labels:
        config["labels"] = list(labels)
    end: dict = {}
    with connect(ws_url, additional_headers={"X-API-Key": key}, open_timeout=30, max_size=2 ** 20) as ws:
        ws.send(json.dumps(config))
        ready = json.loads(ws.recv(timeout=30))
        if ready.get("type") != "ready":
            raise RuntimeError(f"the server refused the stream: {ready}")

        def send() -> None:
            t0 = time.perf_counter()
            sent = 0.0
            try:
                for chunk in pcm_chunks(file, chunk_ms):
                    if speed > 0:   # pace as a live source would
                        delay = t0 + sent / speed - time.perf_counter()
                        if delay > 0:
                            time.sleep(delay)
                    ws.send(chunk)
                    sent += len(chunk) / 2 / 16000
                ws.send(json.dumps({"type": "end"}))
            except Exception:  # noqa: BLE001 - the receiving side reports why the connection ended
                pass

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        for raw in ws:
            msg = json.loads(raw)
            kind = msg.pop("type", None)
            if kind == "prediction" and on_message is not None:
                on_message(msg)
            elif kind == "end":
                end = msg
            elif kind == "error":
                raise RuntimeError(f"{msg.get('code')}: {msg.get('message')}")
        sender.join(5)
    return end


def _serve_in_process(store: Optional[str], tenant: str, backbone: Optional[str], head: Optional[str]):
    """Start the service on a free port in this process: ``(url, key, stop)``."""
    import socket
    import tempfile

    import uvicorn

    from ..service import create_app
    from ..service.server import WS_MAX_SIZE, ServerOptions, protocol_class

    tmp = tempfile.mkdtemp(prefix="ser_adapt_stream_")
    p = cli_personalizer(store or f"{tmp}/profiles.db", tenant, backbone, head)
    key = p.store.create_key(tenant)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    opts = ServerOptions()
    server = uvicorn.Server(uvicorn.Config(create_app(p), host="127.0.0.1", port=port, http=protocol_class(opts),
                                           log_level="warning", ws_max_size=WS_MAX_SIZE))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started and time.time() < deadline:
        time.sleep(0.05)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)

    return f"http://127.0.0.1:{port}", key, stop


@cli_errors
def stream(file: Path = typer.Argument(..., help="audio file to stream"),
           user: str = typer.Option(..., "--user", help="user id (unknown users get the global model)"),
           url: str = typer.Option("http://127.0.0.1:8000", "--url", help="the service's base URL"),
           key: str = typer.Option(None, "--key", envvar="SER_ADAPT_API_KEY", help="tenant API key"),
           serve: bool = typer.Option(False, "--serve", help="start the service in this process first (temporary "
                                                             "store and key; --url and --key are ignored)"),
           window: float = typer.Option(2.0, "--window", help="seconds of audio per prediction"),
           hop: float = typer.Option(1.0, "--hop", help="seconds between predictions"),
           speed: float = typer.Option(1.0, "--speed", min=0.0, help="times real time (0: as fast as possible)"),
           chunk_ms: int = typer.Option(100, "--chunk-ms", min=10, max=1000, help="audio per message"),
           labels: str = typer.Option(None, "--labels", help="comma-separated emotions to score"),
           store: str = store_option(),
           tenant: str = typer.Option("default", "--tenant", help="with --serve: tenant namespace"),
           backbone: str = typer.Option(None, "--backbone", help="with --serve: backbone name"),
           head: str = typer.Option(None, "--head", help="with --serve: global head file")) -> None:
    """Stream a recording to the WebSocket route; one JSON line per window's prediction."""
    try:
        import websockets  # noqa: F401
    except ImportError:
        fail(ImportError("streaming needs websockets: pip install 'ser-adapt[realtime]'"))
    if not file.is_file():
        raise FileNotFoundError(f"no such audio file: {file}")
    stop = None
    if serve:
        url, key, stop = _serve_in_process(store, tenant, backbone, head)
    elif not key:
        raise typer.BadParameter("an API key is needed: --key or $SER_ADAPT_API_KEY (or --serve)", param_hint="'--key'")
    from websockets.exceptions import InvalidStatus, WebSocketException

    def show(msg: dict) -> None:
        typer.echo(json.dumps(msg))

    try:
        end = stream_file(url, key, user, str(file), window=window, hop=hop, speed=speed, chunk_ms=chunk_ms,
                          labels=split_list([labels]) if labels else None, on_message=show)
    except InvalidStatus as exc:
        fail(RuntimeError(f"the server refused the connection: HTTP {exc.response.status_code} "
                          f"{exc.response.body.decode(errors='replace')[:300]}"))
    except (OSError, WebSocketException, RuntimeError) as exc:
        fail(exc)
    finally:
        if stop is not None:
            stop()
    typer.echo(f"streamed {end.get('seconds', 0):.1f} s: {end.get('windows', 0)} windows, "
               f"{end.get('dropped', 0)} dropped", err=True)


def register(app: typer.Typer) -> None:
    app.command("stream")(stream)
