from __future__ import annotations

import pytest

from gptmagic.errors import RequestError
from gptmagic.insertion import split_insertion


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no marker", ("no marker", None)),
        ("a [insert] b", ("a ", " b")),
        ("[insert]tail", ("", "tail")),
        ("head[insert]", ("head", "")),
        ("keep \\[insert] literal", ("keep [insert] literal", None)),
        ("x \\[insert] y [insert] z", ("x [insert] y ", " z")),
        ("[INSERT] is not the marker", ("[INSERT] is not the marker", None)),
    ],
)
def test_split(text, expected):
    assert split_insertion(text) == expected


def test_two_markers_name_both_lines():
    with pytest.raises(RequestError, match="cell line 2 and cell line 4") as e:
        split_insertion("a\n[insert]\nb\nc [insert]")
    assert e.value.param == "cell"


def test_custom_marker():
    assert split_insertion("a <FILL> b", "<FILL>") == ("a ", " b")
    with pytest.raises(RequestError, match="must not be empty"):
        split_insertion("x", "")
