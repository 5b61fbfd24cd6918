"""Text for the terminal: JSON that gives back every value exactly and holds nothing a
terminal would obey."""

from __future__ import annotations

import json

import pytest

from passweb_tui.textsafe import json_text, visible

#: every C0 control, DEL, every C1 control, and neighbours that must pass as they are
_CHARACTERS = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA1))] + ["\u202e", "é", "€", "\\"]


@pytest.mark.parametrize("ensure_ascii", [True, False], ids=["ascii", "utf8"])
def test_json_text_gives_each_control_character_back_and_holds_none(ensure_ascii: bool) -> None:
    value = {"one": "".join(_CHARACTERS), "each": _CHARACTERS, "\x1b[2J key\x9b": 1}
    text = json_text(value, ensure_ascii=ensure_ascii)
    assert json.loads(text) == value
    assert visible(text) == text  # the commands' stdout leaves it as it is
    assert [c for c in text if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0] == []
    assert ("é" in text) is not ensure_ascii  # a readable letter stays one when asked
