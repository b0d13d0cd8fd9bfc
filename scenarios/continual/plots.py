"""Matplotlib figures of continual benchmarks: accuracy-matrix heatmaps and accuracy curves.

Both take the runner's records (``scenarios.runner``) and write a PNG; the Agg backend is used so
they work without a display.

Example:
    >>> result = run_benchmark(scenario, ["naive", "replay"], seeds=2)           # doctest: +SKIP
    >>> plot_accuracy_curves(result.runs, result.experiences, "curves.png")      # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["plot_accuracy_matrices", "plot_accuracy_curves"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy_matrices(summary: Sequence[dict], experiences: Sequence[str], path, *, title: str = "") -> Path:
    """One heatmap per strategy of the seed-averaged matrix ``R[i, j]`` (UA on ``j`` after ``i``)."""
    plt = _pyplot()
    n = len(summary)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    size = max(2.6, 0.55 * len(experiences) + 1.6)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols + 1.6, size * rows + 0.8), squeeze=False,
                             layout="constrained")
    image = None
    for k, (ax, row) in enumerate(zip(axes.flat, summary)):
        m = np.asarray(row["matrix"], dtype=float)
        image = ax.imshow(m, vmin=0.0, vmax=1.0, cmap="viridis")
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if v < 0.6 else "black")
        ax.set_title(f"{row['strategy']} (n={row['seeds']})", fontsize=9)
        ax.set_xticks(range(len(experiences)), experiences, rotation=45, ha="right", fontsize=7)
        ax.set_xlabel("evaluated on experience", fontsize=8)
        if k % cols == 0:  # one shared y axis per row of panels keeps the labels readable
            ax.set_yticks(range(len(experiences)), experiences, fontsize=7)
            ax.set_ylabel("after training on", fontsize=8)
        else:
            ax.set_yticks(range(len(experiences)), [""] * len(experiences))
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="UA")
    fig.suptitle(f"Accuracy matrices (UA) — {title}" if title else "Accuracy matrices (UA)")
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_accuracy_curves(runs: Sequence[dict], experiences: Sequence[str], path, *, title: str = "") -> Path:
    """Mean UA over the experiences seen so far, after each experience; mean ± std over seeds."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.6, 4.4), layout="constrained")
    x = np.arange(1, len(experiences) + 1)
    names = list(dict.fromkeys(r["strategy"] for r in runs))
    # more strategies than the default 10-colour cycle: distinct colours and markers for each
    colors = plt.get_cmap("tab20")(np.linspace(0, 1, 20))[: len(names)] if len(names) > 10 else [None] * len(names)
    markers = "osD^v<>pPX*hH8d"
    for k, name in enumerate(names):
        curves = []
        for r in (r for r in runs if r["strategy"] == name):
            m = np.asarray(r["matrix"], dtype=float)
            curves.append([m[i, : i + 1].mean() for i in range(len(m))])
        c = np.asarray(curves)
        mean, std = c.mean(0), c.std(0)
        (line,) = ax.plot(x, mean, marker=markers[k % len(markers)], label=name, color=colors[k],
                          linestyle="--" if name == "joint" else "-")
        ax.fill_between(x, mean - std, mean + std, alpha=0.15, color=line.get_color())
    ax.set_xticks(x, experiences, rotation=30, ha="right")
    ax.set_xlabel("after training on experience")
    ax.set_ylabel("mean UA over experiences seen so far")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=1 if len(names) <= 8 else 2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"Accuracy vs. experience — {title}" if title else "Accuracy vs. experience")
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
