"""Every ``python`` block of every ``docs/*.md`` runs, in order, sharing one namespace per page.

A block preceded by ``<!-- not run: <reason> -->`` is illustrative (it needs network weights, a
PostgreSQL server, or would rewrite the repository) and is skipped; the reason is required.
``docs/foundation.md`` is run by ``test_foundation_doc`` with checks of its printed values.
Pages run in a temp folder (what they write stays there), with the data root in ``$SER_ADAPT_DATA``.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT

BLOCK = re.compile(r"(?:<!-- not run: (?P<why>[^>]+?) -->\n)?```python\n(?P<code>.*?)```", re.S)
PAGES = sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "foundation.md")


def blocks(page):
    return [(m.group("why"), m.group("code")) for m in BLOCK.finditer(page.read_text(encoding="utf-8"))]


def test_every_page_is_covered_and_skips_say_why():
    assert {p.name for p in PAGES} >= {"backbones.md", "continual.md", "heads.md", "notebooks.md", "personalizer.md", "trust.md"}
    for page in PAGES:
        for why, code in blocks(page):
            assert why is None or len(why.strip()) > 10, f"{page.name}: a skipped block needs a reason"


#: pages whose blocks take over a minute on 2 cores: run with ``-m slow`` (continual.md fine-tunes the
#: Whisper encoder over audio; its embedding-level API is also executed by notebook 02, and the
#: audio path with a tiny encoder by tests/scenarios/continual/test_audio.py)
SLOW_PAGES = {"continual"}


@pytest.mark.corpora
@pytest.mark.parametrize("page", [pytest.param(p, marks=pytest.mark.slow) if p.stem in SLOW_PAGES else p
                                  for p in PAGES], ids=[p.stem for p in PAGES])
def test_doc_page_python_blocks_run(page, tmp_path, data_dir):
    runnable = [code for why, code in blocks(page) if why is None]
    if not runnable:
        pytest.skip(f"{page.name} has no runnable python block")
    script = tmp_path / f"{page.stem}.py"
    script.write_text("\n".join(runnable), encoding="utf-8")
    env = {**os.environ, "SER_ADAPT_DATA": str(data_dir), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env=env)
    assert proc.returncode == 0, f"{page.name}:\n{proc.stderr[-4000:]}"
