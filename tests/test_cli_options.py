"""Option values the commands share: comma lists and KEY=VALUE pairs, and their messages."""

from __future__ import annotations

import pytest

from talkit.cli_options import comma_list, key_value
from talkit.errors import InputError


def test_comma_list_strips_items_and_drops_empty_ones() -> None:
    assert comma_list(" rgb, flow,") == ["rgb", "flow"]
    assert comma_list("Jump") == ["Jump"]
    assert comma_list(" , ,") == []


def test_key_value_strips_both_sides() -> None:
    opts = {"option": "--checkpoint", "form": "STREAM=PATH", "example": "rgb=a.pt"}
    assert key_value("rgb=a.pt", **opts) == ("rgb", "a.pt")
    assert key_value(" flow = b=c.pt ", **opts) == ("flow", "b=c.pt")  # first '=' splits


@pytest.mark.parametrize("text", ["rgb", "=a.pt", "rgb=", " = "])
def test_key_value_refuses_a_missing_side_naming_option_form_and_example(text: str) -> None:
    with pytest.raises(InputError) as info:
        key_value(text, option="--checkpoint", form="STREAM=PATH", example="rgb=a.pt")
    assert info.value.exit_code == 2
    assert info.value.message == f"--checkpoint {text!r} is not STREAM=PATH"
    assert info.value.hint == "e.g. rgb=a.pt"
