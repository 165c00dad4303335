"""Moved to :mod:`talkit.wtal_heads.evaluation.plots`; this name keeps old imports working."""

from talkit.wtal_heads.evaluation.plots import (
    plot_map_by_threshold,
    plot_pr_curves,
    plot_video_timeline,
    safe_filename,
)

__all__ = ["plot_map_by_threshold", "plot_pr_curves", "plot_video_timeline", "safe_filename"]
