"""Charts a researcher reads: the qtype mix, accuracy per qtype per answerer, style similarity.

Each chart is a PNG next to ``metrics.json`` (shown in the Dagster UI) and its data a
CSV that ``dvc plots show`` / ``dvc plots diff`` render.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    _figure().close(fig)
    return buf.getvalue()


def qtype_mix_png(shares: dict[str, float]) -> bytes:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = sorted(shares, key=lambda q: -shares[q])
    ax.barh(names[::-1], [shares[q] for q in names][::-1], color="#4c72b0")
    ax.axvline(0.3, color="#c44e52", linestyle="--", linewidth=1, label="cap")
    ax.set_xlabel("share of QA pairs")
    ax.set_title("Question types")
    ax.legend(loc="lower right")
    return _png(fig)


def accuracy_png(accuracy: dict[str, Any]) -> bytes:
    plt = _figure()
    qtypes = sorted({q for acc in accuracy.values() for q in acc["by_qtype"]})
    names = list(accuracy)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    width = 0.8 / max(1, len(names))
    x = np.arange(len(qtypes))
    for i, name in enumerate(names):
        values = [accuracy[name]["by_qtype"].get(q, np.nan) for q in qtypes]
        ax.bar(x + i * width - 0.4 + width / 2, values, width, label=name)
    ax.axhline(0.25, color="grey", linestyle=":", linewidth=1)
    ax.set_xticks(x, qtypes, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy per question type")
    ax.legend(ncol=min(len(names), 5), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.28))
    return _png(fig)


def style_png(within: np.ndarray, across: np.ndarray) -> bytes:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    bins = np.linspace(min(within.min(initial=1), across.min(initial=1)), 1, 40)
    ax.hist(across, bins=bins, alpha=0.6, density=True, label="frames of different movies")
    ax.hist(within, bins=bins, alpha=0.6, density=True, label="frames of the same movie")
    ax.set_xlabel("style similarity (cosine of style descriptors)")
    ax.set_title("Style consistency")
    ax.legend(fontsize=8)
    return _png(fig)


def csv_bytes(header: list[str], rows: list[list[Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode()


def plot_tables(metrics: dict[str, Any]) -> dict[str, bytes]:
    """The CSVs behind the charts, for DVC plots."""
    acc = metrics["accuracy"]
    qtypes = sorted(metrics["qtype_share"])
    return {
        "qtype_mix.csv": csv_bytes(["qtype", "share"], [[q, metrics["qtype_share"][q]] for q in qtypes]),
        "accuracy.csv": csv_bytes(
            ["answerer", "qtype", "accuracy"],
            [[name, q, a["by_qtype"][q]] for name, a in acc.items() for q in qtypes if q in a["by_qtype"]],
        ),
    }
