"""What an exported ``.onnx`` model says about itself (``metadata_props``), and its validation.

Every model that ``ser-adapt export onnx`` writes carries string key/value metadata, readable with
onnxruntime alone (``session.get_modelmeta().custom_metadata_map``) or ``onnx``
(``model.metadata_props``). JSON values are JSON text.

Common keys: ``ser_adapt.format`` (``ser-adapt.onnx-encoder`` or ``ser-adapt.onnx-head``),
``ser_adapt.format_version``, ``ser_adapt.version`` (the exporting library's version),
``graph_sha256`` (sha256 of the serialized graph, weights included: a model edited after export
fails to load), ``source_fingerprint`` (the torch backbone's ``spec.fingerprint`` the model was
exported from) and ``precision`` (``fp32`` / ``int8``).

Encoder keys: ``backbone``, ``source_sha256`` (the pinned ``model.bin``), ``sample_rate``,
``preprocessing`` (JSON: the log-mel computed *inside* the graph and its parameters; the input is
the raw waveform), ``layers`` (JSON: count, dim, what layer 0 is), ``pooling`` (JSON: time pooling
and layer combination of the ``embedding`` output), ``max_samples``, ``frame_rate``, ``inputs`` /
``outputs`` (JSON: names and shapes).

Head keys: ``labels`` (JSON list: the label map, column ``i`` of ``probabilities`` is
``labels[i]``), ``input_dim``, ``temperature``, ``head`` (JSON: the head's recorded ``info``),
``normalization`` (JSON: what the overridable ``center`` / ``scale`` inputs are).

Example:
    >>> meta = {"ser_adapt.format": ENCODER_FORMAT, "ser_adapt.format_version": "1"}
    >>> check_format(meta, ENCODER_FORMAT, "encoder.onnx")
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from ..errors import InvalidStateError

__all__ = ["ENCODER_FORMAT", "HEAD_FORMAT", "FORMAT_VERSION", "ENCODER_KEYS", "HEAD_KEYS", "graph_sha256",
           "set_metadata", "get_metadata", "check_format", "check_keys", "json_value"]

ENCODER_FORMAT = "ser-adapt.onnx-encoder"
HEAD_FORMAT = "ser-adapt.onnx-head"
FORMAT_VERSION = "1"
_COMMON = ("ser_adapt.format", "ser_adapt.format_version", "ser_adapt.version", "graph_sha256",
           "source_fingerprint", "precision")
ENCODER_KEYS = _COMMON + ("backbone", "source_sha256", "sample_rate", "preprocessing", "layers", "pooling",
                          "max_samples", "frame_rate", "inputs", "outputs")
HEAD_KEYS = _COMMON + ("labels", "input_dim", "temperature", "head", "normalization", "inputs", "outputs")


def graph_sha256(model: Any) -> str:
    """sha256 of an ``onnx.ModelProto``'s serialized graph (nodes and weights, not the metadata)."""
    return hashlib.sha256(model.graph.SerializeToString(deterministic=True)).hexdigest()


def set_metadata(model: Any, values: Mapping[str, Any]) -> None:
    """Replace ``model.metadata_props`` with ``values`` (non-strings as JSON) plus ``graph_sha256``."""
    del model.metadata_props[:]
    entries = {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in values.items()}
    entries["graph_sha256"] = graph_sha256(model)
    for key in sorted(entries):
        prop = model.metadata_props.add()
        prop.key, prop.value = key, entries[key]


def get_metadata(model: Any) -> dict[str, str]:
    """``metadata_props`` of an ``onnx.ModelProto`` as a dict."""
    return {p.key: p.value for p in model.metadata_props}


def check_format(meta: Mapping[str, str], expected: str, where: str) -> None:
    """Raise ``InvalidStateError`` unless ``meta`` declares format ``expected`` in a version we read."""
    found = meta.get("ser_adapt.format")
    if found != expected:
        what = "no ser-adapt metadata" if found is None else f"format {found!r}"
        raise InvalidStateError(f"{where} is not a ser-adapt {expected.rsplit('-', 1)[-1]} model ({what}; "
                                f"expected {expected!r}): export one with `ser-adapt export onnx --out DIR`")
    version = meta.get("ser_adapt.format_version")
    if version != FORMAT_VERSION:
        raise InvalidStateError(f"{where}: metadata format version {version!r} is not {FORMAT_VERSION!r}; "
                                f"re-export it with this ser-adapt")


def check_keys(meta: Mapping[str, str], keys: tuple[str, ...], where: str) -> None:
    """Raise ``InvalidStateError`` naming the metadata keys missing from ``meta``."""
    missing = [k for k in keys if k not in meta]
    if missing:
        raise InvalidStateError(f"{where}: metadata lacks {missing} (edited or truncated after export?)")


def json_value(meta: Mapping[str, str], key: str, where: str) -> Any:
    """The JSON value of metadata ``key``; ``InvalidStateError`` if it is not JSON."""
    try:
        return json.loads(meta[key])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidStateError(f"{where}: metadata {key!r} is not valid JSON ({exc})") from None
