"""``benchmarks/`` is a package run as ``python -m benchmarks.<name>``, with one provenance line and one
home for paths and corpus lists, and BENCHMARKS.md is exactly what ``benchmarks.render`` builds."""
from __future__ import annotations

import ast
import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT

SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_") and p.stem != "render")


def test_the_benchmarks_are_modules_of_one_package_each_with_a_section():
    from benchmarks.render import ORDER

    assert (ROOT / "benchmarks" / "__init__.py").is_file()
    stems = [p.stem for p in SCRIPTS]
    assert {"backbones", "continual", "faults", "fewshot", "personalizer", "service", "unseen"} <= set(stems)
    assert [s for s in stems if s not in ORDER] == [], "every benchmark needs its place in render.ORDER"
    for path in SCRIPTS + [ROOT / "benchmarks" / "render.py"]:
        text = path.read_text()
        assert "sys.path" not in text, f"{path.name} edits sys.path"
        assert "_cache_root" not in text and "rev-parse" not in text, f"{path.name} builds its own provenance"
        assert not re.search(r"^CORPORA = \(", text, flags=re.M), f"{path.name} re-lists the corpora"
        assert "benchmarks/" + path.name not in text, f"{path.name} documents the old script path"
        imports = {n.module for n in ast.walk(ast.parse(text)) if isinstance(n, ast.ImportFrom) and n.level == 1}
        if path.stem != "render":
            assert {"render", "_common"} <= imports, f"{path.name} imports {imports}"


def test_provenance_names_the_module_command_commit_machine_and_load():
    from benchmarks._common import command, provenance

    line = provenance(name="continual", argv=["--quick", "--strategies", "naive,ewc"])
    assert line.startswith("Command: `.venv/bin/python -m benchmarks.continual --quick --strategies naive,ewc` — ")
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC, commit \w+", line)
    assert "CPU cores shared with other jobs (1-min load average " in line
    assert command("fewshot", ["--corpora", "a b"]) == ".venv/bin/python -m benchmarks.fewshot --corpora 'a b'"


def test_corpora_and_strategies_come_from_the_library():
    from benchmarks import _common, continual, fewshot
    from scenarios.corpora import DEV_CORPORA
    from strategies import STRATEGIES

    assert _common.DEV_CORPORA is DEV_CORPORA and fewshot.CORPORA is DEV_CORPORA
    assert continual.ALL_STRATEGIES == list(STRATEGIES)


def test_render_order_names_every_section_and_benchmarks_md_is_rendered():
    from benchmarks import render

    sections = {p.stem for p in render.RESULTS.glob("*.md")}
    assert sections <= set(render.ORDER), f"sections missing from render.ORDER: {sections - set(render.ORDER)}"
    text, n = render.render()
    assert n == len(sections)
    assert (ROOT / "BENCHMARKS.md").read_text() == text, "BENCHMARKS.md is stale: run python -m benchmarks.render"


def test_commands_in_results_and_docs_use_the_module_form():
    files = [*sorted((ROOT / "benchmarks" / "results").glob("*.md")), ROOT / "BENCHMARKS.md", ROOT / "README.md",
             *sorted((ROOT / "docs").glob("*.md"))]
    for path in files:
        old = re.findall(r"benchmarks/[a-z_]+\.py", path.read_text())
        assert not old, f"{path.relative_to(ROOT)} still names {old}; use python -m benchmarks.<name>"
    modules = {p.stem for p in SCRIPTS}
    for section in sorted((ROOT / "benchmarks" / "results").glob("*.md")):
        # a section names the module that wrote it (one module may write two: calibration -> fairness)
        named = set(re.findall(r"python -m benchmarks\.([a-z_]+)", section.read_text()))
        assert named & modules, f"{section.name} names no benchmark module that exists ({named})"


@pytest.mark.parametrize("name", ["continual", "foundation"])
def test_modules_run_with_dash_m(name):
    proc = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_sequence_previous_settings_block_comes_from_its_verbatim_copy():
    """benchmarks.sequence shows the rows it did not re-run from a file in the tree (not from git at
    run time, which a shallow clone lacks); the copy is the committed results file, verbatim."""
    import subprocess

    from benchmarks import sequence

    prov, body = sequence.previous_section()
    assert prov.startswith("Command: `.venv/bin/python -m benchmarks.sequence`")
    assert body.startswith("#### Speaker-independent 5-fold UA") and "### " not in body.replace("#### ", "")
    assert "| attentive | 0.733 |" in body     # the previous 8-epoch attentive row the section cites
    git = subprocess.run(["git", "show", ":".join(sequence.PREVIOUS)], cwd=ROOT, capture_output=True, text=True)
    if git.returncode == 0:                   # a full clone: the copy is byte-identical to git's
        assert (ROOT / sequence.PREVIOUS_FILE).read_text(encoding="utf-8") == git.stdout
