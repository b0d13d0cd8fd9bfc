"""Assemble BENCHMARKS.md from the section files that each benchmark script writes.

Every script under ``benchmarks/`` writes ``benchmarks/results/<name>.md`` (a section with its
tables and the exact command that produced them); this script concatenates them in a fixed order.

    .venv/bin/python benchmarks/render.py
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["backbones", "throughput", "fewshot", "continual", "personalizer", "service"]

HEADER = """# Benchmarks

Every number here was produced by the command printed above its table, on the project's
development machine (2 CPU cores, no GPU) unless a section says otherwise, on the corpora in
`../shared/data` (RAVDESS en, EmoDB de (2 s copy), EMOVO it, URDU ur). Evaluation is speaker-
disjoint; UA (unweighted average recall) is reported first. Re-run a section's command to
regenerate its file under `benchmarks/results/`, then `.venv/bin/python benchmarks/render.py`.
"""


def publish(name: str, text: str) -> Path:
    """Write ``results/<name>.md`` (a section: heading, tables, the command) and rebuild BENCHMARKS.md.

    Benchmark scripts call this last: ``from render import publish`` (the script's folder is on
    ``sys.path`` when it runs as ``python benchmarks/<script>.py``).
    """
    out = HERE / "results" / f"{name}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    main()
    return out


def main() -> None:
    results = HERE / "results"
    files = {p.stem: p for p in results.glob("*.md")}
    ordered = [files.pop(n) for n in ORDER if n in files] + [files[k] for k in sorted(files)]
    parts = [HEADER] + [p.read_text().strip() + "\n" for p in ordered]
    (HERE.parent / "BENCHMARKS.md").write_text("\n".join(parts))
    print(f"wrote BENCHMARKS.md from {len(ordered)} section(s)")


if __name__ == "__main__":
    main()
