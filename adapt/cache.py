"""Where ser-adapt keeps derived files (converted weights, embeddings, feature tables).

``cache_dir()`` is ``$SER_ADAPT_CACHE`` if set, else ``<project>/.cache`` when running from a source
checkout (git-ignored), else ``~/.cache/ser-adapt``. Nothing is ever written next to the data.

Example:
    >>> cache_dir("embeddings").name
    'embeddings'
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_dir", "atomic_write_bytes", "sha256_file", "sha256_files"]

CACHE_ENV = "SER_ADAPT_CACHE"


def cache_dir(*parts: str) -> Path:
    """The cache folder (created), optionally a sub-folder of it: ``cache_dir("embeddings")``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        base = Path(env)
    else:
        project = Path(__file__).resolve().parent.parent
        # a source checkout has pyproject.toml beside the package; an installed wheel does not
        base = project / ".cache" if (project / "pyproject.toml").is_file() else Path.home() / ".cache" / "ser-adapt"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers never see a partial file.

    Writes a temp file in the same folder, then ``os.replace`` (atomic on POSIX and Windows): two
    processes writing the same entry at once both succeed and the last one wins whole.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; cache files are shareable like any other
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def sha256_files(paths, chunk: int = 1 << 22) -> str:
    """Hex sha256 of the bytes of ``paths`` read one after the other (a model split over several
    files hashes as its concatenation), in 4 MiB chunks."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes, read in 4 MiB chunks."""
    return sha256_files([path], chunk)
