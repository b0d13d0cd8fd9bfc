"""Every ``python`` block of docs/foundation.md runs (in order, sharing one namespace)."""
from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import ROOT

DOC = ROOT / "docs" / "foundation.md"


def test_foundation_doc_examples_run(data_dir, capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 5
    namespace: dict = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{DOC.name}[block {i}]", "exec"), namespace)  # noqa: S102 - our own docs
    out = capsys.readouterr().out
    # the printed values quoted in the comments of the page are the real ones
    assert "16000 16000 2.0 False" in out
    assert "32 {'angry': 16, 'sad': 16}" in out
    assert "UnreadableAudioError - cannot decode audio from <16 bytes>" in out
    assert "ravdess_01 neutral m s01 ravdess/Actor_01/03-01-01-01-01-01-01.flac" in out
    assert "16 30 {'s01'} {'s02'}" in out
    assert "'wa': 0.5," in out and "0.7166" in out
