"""The API reference builds from the docstrings without warnings (the README's docs command)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT


def test_api_reference_builds_without_warnings(tmp_path):
    out = tmp_path / "api"
    proc = subprocess.run([sys.executable, "docs/build.py", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning:" not in proc.stderr, proc.stderr[-3000:]
    pages = {p.relative_to(out).as_posix() for p in out.rglob("*.html")}
    for page in ("adapt.html", "adapt/audio.html", "adapt/metrics.html", "adapt/embedding.html", "adapt/personal/personalizer.html", "adapt/store.html",
                 "adapt/heads/prototype.html", "scenarios/corpora.html", "scenarios/splits.html", "scenarios/fewshot/recipes.html",
                 "strategies.html"):
        assert page in pages, f"{page} missing from the API reference; got {sorted(pages)[:40]}"
