"""A feature set's spec in words: the rows `talkit store info` and the demo print.

The spec is stored as data (``FeatureSetSpec``); users read it to know which backbone,
snippet, input, weights and flow made the features, without opening JSON. One function
turns a stored spec into labelled rows so every printout says the same things the same way.
"""

from __future__ import annotations

from typing import Any


def _number(value: Any) -> str:
    """12.0 -> "12", 29.97 -> "29.97": seconds and fps without noise."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _sampling(spec: dict[str, Any]) -> str:
    fps, clip, stride = spec.get("fps"), spec.get("clip_len"), spec.get("stride")
    if fps is None or clip is None or stride is None:
        return "not recorded (imported features)"
    params = spec.get("params") or {}
    rate = params.get("sampling_rate")
    frames = f"{clip} frames at {_number(fps)} fps"
    if rate:
        frames += f" (1 in {rate} of {_number(params.get('base_fps'))} fps)"
    window, step = clip / fps, stride / fps
    tail = {"drop": "dropped", "pad": "padded"}.get(params.get("tail", ""), "")
    text = f"{frames}: a {window:.3g} s window every {step:.3g} s"
    return text + (f"; a last partial window is {tail}" if tail else "")


def _input(params: dict[str, Any]) -> str | None:
    size = params.get("input_size")
    if size is None:
        return None
    short = params.get("resize_short")
    text = (
        f"short side {short} -> centre crop {size}"
        if short is not None and params.get("crop", "center") == "center"
        else f"resized to {size}x{size}"
    )
    norm = params.get("normalisation")
    if norm:
        mean = "/".join(_number(m) for m in norm.get("mean", ()))
        std = "/".join(_number(s) for s in norm.get("std", ()))
        text += f"; (x / {_number(norm.get('value_range', 255.0))} - {mean}) / {std}"
    return text


def _weights(spec: dict[str, Any]) -> str:
    shown = []
    for stream, digest in (spec.get("checkpoints") or {}).items():
        if digest is None:
            shown.append(f"{stream}: unknown")
        elif digest.startswith("random:"):
            shown.append(f"{stream}: {digest}")
        else:
            shown.append(f"{stream}: sha256 {digest[:16]}")
    return ", ".join(shown) or "-"


def _flow(flow: dict[str, Any]) -> str:
    parts = [str(flow.get("method"))]
    if flow.get("device"):
        parts.append(f"on {flow['device']}")
    if flow.get("bound") is not None:
        parts.append(f"clipped to +-{_number(flow['bound'])}")
    if flow.get("params"):
        parts.append(", ".join(f"{k}={v}" for k, v in sorted(flow["params"].items())))
    return ", ".join(parts)


def spec_rows(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """Labelled rows, in reading order, for a stored spec (``FeatureSetSpec`` as a dict)."""
    params = spec.get("params") or {}
    rows = [("backbone", str(spec.get("backbone"))), ("snippet", _sampling(spec))]
    shown_input = _input(params)
    if shown_input:
        rows.append(("input", shown_input))
    if params.get("feature"):
        rows.append(("feature", str(params["feature"])))
    rows.append(("weights", _weights(spec)))
    if params.get("flow"):
        rows.append(("flow", _flow(params["flow"])))
    if params.get("random_weights"):
        rows.append(("note", "random weights: for tests and demos, not real features"))
    return rows
