"""Assemble BENCHMARKS.md from the section files that each benchmark script writes.

Every benchmark module (``python -m benchmarks.<name>``) writes ``benchmarks/results/<name>.md`` (a
section with its tables and the exact command that produced them); this module concatenates them in
a fixed order (``ORDER``, which names every section; a section missing from it would come last).

    .venv/bin/python -m benchmarks.render
"""
from __future__ import annotations

from pathlib import Path

from ._common import RESULTS, ROOT

ORDER = ["unseen", "transfer", "calibration", "fairness", "explain", "backbones", "throughput", "ray", "fewshot",
         "continual", "lifelong", "personalizer", "service", "longform", "streaming", "onnx", "faults", "finetune", "foundation", "sequence"]

HEADER = """# Benchmarks

Every number here was produced by the command printed above its table, on the project's
development machine (2 CPU cores, no GPU) unless a section says otherwise, on the corpora in
`../shared/data` (RAVDESS en, EmoDB de (2 s copy), EMOVO it, URDU ur, rcebrian_es es,
indianemospeech en/hi; older sections use the first four). Evaluation is speaker-
disjoint; UA (unweighted average recall) is reported first. Re-run a section's command to
regenerate its file under `benchmarks/results/`, then `.venv/bin/python -m benchmarks.render`.
"""


def publish(name: str, text: str) -> Path:
    """Write ``results/<name>.md`` (a section: heading, tables, the command) and rebuild BENCHMARKS.md.

    Benchmark modules call this last (``from .render import publish``).
    """
    out = RESULTS / f"{name}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    main()
    return out


def render() -> tuple[str, int]:
    """The text of BENCHMARKS.md from the section files, and how many sections it holds."""
    files = {p.stem: p for p in RESULTS.glob("*.md")}
    ordered = [files.pop(n) for n in ORDER if n in files] + [files[k] for k in sorted(files)]
    return "\n".join([HEADER] + [p.read_text().strip() + "\n" for p in ordered]), len(ordered)


def main() -> None:
    text, n = render()
    (ROOT / "BENCHMARKS.md").write_text(text)
    print(f"wrote BENCHMARKS.md from {n} section(s)")


if __name__ == "__main__":
    main()
