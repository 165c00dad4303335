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


_INVOCATION: list[list[str]] = []  # the arguments talkit.cli.main was called with


def record_invocation(args: list[str]) -> None:
    """Remember this process's talkit arguments (``talkit.cli.main`` calls it)."""
    _INVOCATION[:] = [list(args)]


def command_line() -> list[str]:
    """``["talkit", ARGS...]`` as the user typed them: what "run the same command" means.

    The arguments ``main`` was given (also when it is called in-process), else
    ``sys.argv``.
    """
    import sys

    args = _INVOCATION[0] if _INVOCATION else sys.argv[1:]
    return ["talkit", *args]
