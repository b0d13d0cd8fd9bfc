"""A reader for CTranslate2 ``model.bin`` files (no ``ctranslate2`` needed).

Layout (little endian): uint32 version, string spec name, uint32 revision, uint32 variable count,
then per variable: string name, uint8 rank, uint32 dims[rank], uint8 dtype, uint32 byte count, raw
data; after the variables, version >= 5 stores aliases (uint32 count, then pairs of strings).
A string is uint16 length (including the trailing NUL) and the bytes.

Example:
    >>> spec, tensors = read_ct2_model(path, prefix="encoder/")    # doctest: +SKIP
    >>> spec, tensors["encoder/conv1/weight"].shape                # doctest: +SKIP
    ('WhisperSpec', (384, 80, 3))
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import CT2FormatError

__all__ = ["read_ct2_model", "CT2FormatError"]

# CTranslate2 DataType enum -> numpy dtype (bf16 is widened by hand below)
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


def _u(fh: BinaryIO, fmt: str) -> int:
    size = struct.calcsize(fmt)
    raw = fh.read(size)
    if len(raw) != size:
        raise CT2FormatError(f"truncated model.bin at byte {fh.tell()}")
    return struct.unpack("<" + fmt, raw)[0]


def _string(fh: BinaryIO) -> str:
    n = _u(fh, "H")
    raw = fh.read(n)
    if len(raw) != n or not raw.endswith(b"\0"):
        raise CT2FormatError(f"malformed string at byte {fh.tell()}")
    return raw[:-1].decode("utf-8")


def read_ct2_model(source: str | Path | BinaryIO, *, prefix: str = "") -> tuple[str, dict[str, np.ndarray]]:
    """Read the variables of a CTranslate2 model (a path or a binary file object) whose names start
    with ``prefix``.

    Returns:
        ``(spec_name, {name: array})``; float16 / bfloat16 are returned as float32, scalars as 0-d.
    """
    if hasattr(source, "read"):
        return _read(source, prefix, getattr(source, "name", "<stream>"))  # type: ignore[arg-type]
    with open(source, "rb") as fh:
        return _read(fh, prefix, str(source))


def _read(fh: BinaryIO, prefix: str, path: str) -> tuple[str, dict[str, np.ndarray]]:
    out: dict[str, np.ndarray] = {}
    version = _u(fh, "I")
    if not 1 <= version <= 64:
        raise CT2FormatError(f"{path}: unsupported CTranslate2 binary version {version}")
    spec = _string(fh) if version >= 2 else ""
    if version >= 4:
        _u(fh, "I")  # spec revision
    count = _u(fh, "I")
    for _ in range(count):
        name = _string(fh)
        rank = _u(fh, "B")
        dims = tuple(_u(fh, "I") for _ in range(rank))
        code = _u(fh, "B")
        nbytes = _u(fh, "I")
        if code not in _DTYPES:
            raise CT2FormatError(f"{path}: variable {name!r} has unknown dtype code {code}")
        if not name.startswith(prefix):
            fh.seek(nbytes, 1)  # skip decoder weights etc. without reading them
            continue
        raw = fh.read(nbytes)
        if len(raw) != nbytes:
            raise CT2FormatError(f"{path}: truncated data of {name!r}")
        if _DTYPES[code] == "bfloat16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(_DTYPES[code]).newbyteorder("<"))
        expected = int(np.prod(dims)) if dims else 1
        if arr.size != expected:
            raise CT2FormatError(f"{path}: {name!r} holds {arr.size} values, dims say {dims}")
        arr = arr.reshape(dims)
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        out[name] = arr
    return spec, out
