"""Plots of a training run: loss and validation mAP over iterations, mAP per tIoU.

Written as PNGs into ``RUN/plots`` with matplotlib's non-interactive backend, so they work
on headless training machines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from talkit.wtal_heads.config import RunConfig
    from talkit.wtal_heads.evaluation.mean_ap import EvalResult
    from talkit.wtal_heads.rundir import RunDir


def _curves(ax_loss: Axes, ax_val: Axes, rundir: RunDir, label: str, key: str) -> None:
    metrics = rundir.read_metrics()
    train = [m for m in metrics if m.get("split") == "train"]
    val = [m for m in metrics if m.get("split") == "val"]
    if train:
        ax_loss.plot([m["iteration"] for m in train], [m["loss"] for m in train], label=label)
    if val and key in val[0]["average_mAP"]:
        ax_val.plot(
            [m["iteration"] for m in val],
            [100 * m["average_mAP"][key] for m in val],
            marker="o",
            label=f"{label} ({key})",
        )


def plot_run(rundir: RunDir, config: RunConfig, split: str, result: EvalResult) -> None:
    """training.png (loss, validation mAP) and map_<split>.png (mAP per threshold)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from talkit.wtal_heads.inference import selection_metric

    key = selection_metric(config)
    rundir.plots.mkdir(parents=True, exist_ok=True)
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.5))
    members = config.members()
    if config.ensemble:
        for m in members:
            _curves(ax_loss, ax_val, rundir.member(m.name), m.name, key)
    else:
        _curves(ax_loss, ax_val, rundir, config.name, key)
    ax_loss.set(xlabel="iteration", ylabel="training loss", title="loss")
    ax_val.set(xlabel="iteration", ylabel="mAP (%)", title="validation average mAP")
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(rundir.plots / "training.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    thr = np.asarray(result.thresholds)
    ax.bar([f"{t:g}" for t in thr], 100 * result.map, color="tab:blue")
    ax.set(xlabel="tIoU", ylabel="mAP (%)", title=f"{config.name}: {split}")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(rundir.plots / f"map_{split}.png", dpi=100)
    plt.close(fig)
