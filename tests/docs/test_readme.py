"""The README's Python examples run as written (in a temp folder), and its commands exist."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_starts_with_setup_test_and_demo_commands():
    first = re.search(r"```bash\n(.*?)```", README, flags=re.S).group(1).splitlines()
    commands = [line.split("#")[0].strip() for line in first]
    assert commands[:3] == ["./setup.sh", ".venv/bin/python -m pytest", ".venv/bin/ser-adapt demo"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./setup.sh" in ci and "\n.venv/bin/python -m pytest\n" in ci + "\n"


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_block_runs(index, tmp_path, data_dir):
    proc = subprocess.run([sys.executable, "-c", BLOCKS[index]], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip(), "every README example prints what it shows"


def test_readme_cli_subcommands_exist():
    from typer.testing import CliRunner

    from adapt.cli import app

    used = set(re.findall(r"ser-adapt ([a-z][a-z-]+)", README))
    assert {"demo", "serve", "bench", "embed", "corpora", "keys", "enroll", "predict", "users"} <= used
    for name in sorted(used):
        result = CliRunner().invoke(app, [name, "--help"])
        assert result.exit_code == 0, f"ser-adapt {name} --help failed: {result.output[-500:]}"
