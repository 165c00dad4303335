"""Turning the text of CLI options into typed values, with errors that name the option.

Several commands take comma-separated names (``--streams rgb,flow``, ``--classes
Jump,Throw``) or ``KEY=VALUE`` pairs (``--checkpoint rgb=rgb.pt``). They read them here,
so the grammar (spaces around items and ``=`` do not matter, empty items are dropped) is
the same everywhere and a malformed value always gets the same kind of message.
"""

from __future__ import annotations

from talkit.errors import InputError


def comma_list(text: str) -> list[str]:
    """``" rgb, flow,"`` -> ``["rgb", "flow"]``: items stripped, empty ones dropped."""
    return [item.strip() for item in text.split(",") if item.strip()]


def key_value(text: str, *, option: str, form: str, example: str) -> tuple[str, str]:
    """``"rgb=a.pt"`` -> ``("rgb", "a.pt")``, both sides stripped and neither empty.

    ``option``, ``form`` and ``example`` make the message, e.g. ``--checkpoint 'rgb' is
    not STREAM=PATH (e.g. --checkpoint rgb=rgb_imagenet.pt)``.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise InputError(f"{option} {text!r} is not {form}", hint=f"e.g. {example}")
    return key.strip(), value.strip()
