"""Resumable downloads, sha256 verification and safe archive extraction (standard library only).

Used by ``scenarios.recipes``; usable alone:

Example:
    >>> from pathlib import Path
    >>> archive = download("https://example.org/corpus.zip", Path("/tmp/corpus.zip"))  # doctest: +SKIP
    >>> verify_sha256(archive, "9f86d0...")                                           # doctest: +SKIP
    >>> extract_archive(archive, Path("/tmp/corpus"))                                  # doctest: +SKIP

``download`` writes to ``<file>.part`` and renames it only when complete. After a dropped
connection it asks the server for the remaining bytes (HTTP ``Range``); a server that ignores
``Range`` gets a clean restart from byte 0. A ``.part`` left by an interrupted run is resumed by
the next call.
"""
from __future__ import annotations

import http.client
import os
import re
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable

from adapt.cache import sha256_file
from adapt.errors import ChecksumError, ChecksumMismatchError, ChecksumRequiredError, DownloadError

__all__ = [
    "DownloadError",
    "ChecksumError",
    "ChecksumMismatchError",
    "ChecksumRequiredError",
    "download",
    "sha256_of",
    "verify_sha256",
    "extract_archive",
]

_CHUNK = 1 << 20
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


sha256_of = sha256_file  # one streaming sha256 for the project (adapt.cache)


def normalize_sha256(value: str) -> str:
    """Lower-case hex digest; accepts ``sha256:<hex>``. Raises ``ValueError`` on anything else."""
    if not isinstance(value, str):
        raise TypeError(f"sha256 must be a hex string, got {type(value).__name__}")
    v = value.strip().lower().removeprefix("sha256:")
    if not _HEX64.match(v):
        raise ValueError(f"sha256 must be 64 hex digits, got {value!r}")
    return v


def verify_sha256(path: Path, expected: str, *, delete_on_mismatch: bool = True) -> str:
    """Check ``path`` against ``expected``; on mismatch delete it (so a retry re-downloads) and raise."""
    want = normalize_sha256(expected)
    got = sha256_of(path)
    if got != want:
        if delete_on_mismatch:
            path.unlink(missing_ok=True)
        raise ChecksumMismatchError(
            f"sha256 mismatch for {path.name}: expected {want}, got {got}"
            + (" (the download was deleted; check the URL and the checksum)" if delete_on_mismatch else "")
        )
    return got


def _total_from(resp, offset: int) -> int | None:
    content_range = resp.headers.get("Content-Range") or ""
    m = re.match(r"bytes\s+\d+-\d+/(\d+)", content_range)
    if m:
        return int(m.group(1))
    length = resp.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def _fetch_once(url: str, part: Path, timeout: float, progress: Callable[[int, int | None], None] | None) -> bool:
    """One request: append to ``part`` (or restart it). True when the file is complete."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "ser-adapt"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            return True  # nothing left to send: the .part is whole (the checksum will tell)
        if 400 <= err.code < 500:
            raise DownloadError(f"HTTP {err.code} {err.reason} for {url}") from None
        raise  # 5xx: retried by the caller
    with resp:
        status = getattr(resp, "status", 200)
        started = re.match(r"bytes\s+(\d+)-", resp.headers.get("Content-Range") or "")
        if offset and status == 206 and (not started or int(started.group(1)) != offset):
            part.unlink()  # a different range than asked for: never splice it; the retry starts at 0
            raise http.client.HTTPException(f"asked for bytes {offset}-, got {resp.headers.get('Content-Range')!r}")
        if offset and status != 206:
            offset = 0  # the server ignored Range: start again rather than append a second copy
        total = _total_from(resp, offset)
        with open(part, "ab" if offset else "wb") as fh:
            done = offset
            while block := resp.read(_CHUNK):
                fh.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
    if total is not None and done < total:
        raise http.client.IncompleteRead(b"", total - done)
    return True


def download(
    url: str,
    dest: Path,
    *,
    retries: int = 5,
    timeout: float = 60.0,
    backoff: float = 1.0,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Fetch ``url`` into ``dest`` via ``dest.part``, resuming after dropped connections.

    Arguments:
        url: http(s) or file URL.
        dest: the final file; written only once the download is complete.
        retries: further attempts after a failed one (each resumes where the last stopped).
        timeout: seconds without data before a connection counts as dropped.
        backoff: seconds before the first retry, doubled each time.
        progress: called as ``progress(bytes_so_far, total_or_None)``.

    Returns:
        ``dest``.

    Raises:
        DownloadError: a 4xx answer, or still failing after ``retries`` retries (the ``.part`` is
            kept, so a later call resumes it).
    """
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last: Exception | None = None
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, timeout, progress)
            os.replace(part, dest)
            return dest
        except DownloadError:
            raise
        except (OSError, http.client.HTTPException) as err:  # URLError, resets, timeouts, TLS errors
            last = err
            if attempt < retries:
                time.sleep(backoff * (2 ** attempt))
    have = part.stat().st_size if part.exists() else 0
    raise DownloadError(
        f"download of {url} failed after {retries + 1} attempts ({have} bytes kept in {part} for the next try): {last!r}"
    )


def _safe_target(root: Path, name: str) -> Path:
    target = (root / name).resolve()
    if target != root and root not in target.parents:
        raise ValueError(f"archive member {name!r} would be written outside {root}")
    return target


def extract_archive(archive: Path, into: Path) -> Path:
    """Extract a zip or tar(.gz/.bz2/.xz) archive into ``into``, refusing paths that escape it.

    The type is read from the file's bytes, not its name (download URLs often end in ``?download=1``).

    Raises:
        ValueError: not a zip or tar archive, or a member with an absolute / ``..`` path or a link.
    """
    into = Path(into)
    into.mkdir(parents=True, exist_ok=True)
    root = into.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                target = _safe_target(root, info.filename)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
        return into
    try:
        is_tar = tarfile.is_tarfile(archive)
    except OSError:
        is_tar = False
    if not is_tar:
        raise ValueError(f"{Path(archive).name} is neither a zip nor a tar archive")
    with tarfile.open(archive) as tf:
        members = []
        for m in tf.getmembers():
            _safe_target(root, m.name)
            if m.issym() or m.islnk() or m.isdev():
                raise ValueError(f"archive member {m.name!r} is a link or device; refusing to extract")
            members.append(m)
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: the stdlib's own safety filter too
            tf.extractall(root, members=members, filter="data")
        else:
            tf.extractall(root, members=members)
    return into
