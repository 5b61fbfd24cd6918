"""Reading the terminal of a pilot-driven app as a user would: its text, line by line."""

from __future__ import annotations

from typing import Any

#: what frames the text on screen: panel borders and scrollbars
FRAME = " │╭╮╰╯─▕▏▁▂▃▄▅▆▇█"


def screen_lines(app: Any) -> list[str]:
    """The terminal's lines as the user sees them: text only, borders included."""
    strips = app.screen._compositor.render_strips()
    return ["".join(segment.text for segment in strip) for strip in strips]


def on_screen(app: Any, text: str) -> bool:
    """Whether `text` is on the terminal, read across panel borders and wrapped lines."""
    words = " ".join(" ".join(line.strip(FRAME).split()) for line in screen_lines(app))
    return " ".join(text.split()) in words
