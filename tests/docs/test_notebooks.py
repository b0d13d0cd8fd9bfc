"""The notebooks in ``notebooks/`` run end to end on the real corpora and are committed clean.

Each notebook is executed with nbclient in a fresh ``python3`` kernel of this interpreter (cwd and
``$TMPDIR`` in a pytest temp folder, so nothing lands in the repo). A failing cell raises
``CellExecutionError`` with the cell's traceback. The session fixture warms the feature tables of
the four corpora first, so a cold cache is paid once (a few minutes) and not inside a cell timeout.
"""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from tests.helpers import ROOT
NB_DIR = ROOT / "notebooks"
EXPECTED = (
    "01_fewshot_enrollment.ipynb",
    "02_continual_benchmark.ipynb",
    "03_personalization_service.ipynb",
    "04_crosslingual_fewshot.ipynb",
    "05_trust.ipynb",
)
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 600   # generous: a cold embedding of one corpus on 2 shared cores fits in it


def _ids(paths):
    return [p.stem for p in paths]


def test_expected_notebooks_present():
    missing = [n for n in EXPECTED if not (NB_DIR / n).is_file()]
    assert not missing, f"notebooks missing from {NB_DIR}: {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_committed_clean(path):
    """Outputs cleared (small diffs, no stale numbers), and an intro markdown cell first."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.cells and nb.cells[0].cell_type == "markdown", f"{path.name} must begin with a markdown cell"
    assert "minute" in nb.cells[0].source or " s " in nb.cells[0].source, \
        f"{path.name}: the first cell must say how long the notebook takes"
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; clear them before committing"


@pytest.fixture(scope="session")
def warm_features(data_dir):
    """Embed (or load from the cache) the four corpora once, outside the per-cell timeouts."""
    from scenarios.tables import corpus_features

    return {c: len(corpus_features(c)) for c in ("ravdess", "emodb", "emovo", "urdu")}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_executes(path, warm_features, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    # the kernel inherits this environment: importable project, temp files under tmp_path, no hub
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()   # raises CellExecutionError on the first failing cell
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: error outputs {[(e.ename, e.evalue) for e in errors]}"
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, f"{path.name} produced no figure"
    # nothing may be written into the repository (outputs belong in a temp dir)
    assert not list(NB_DIR.glob("*.png")) and not (NB_DIR / "outputs").exists()
