"""Reading the terminal of a pilot-driven app as a user would: its text, line by line."""

from __future__ import annotations

import asyncio
from typing import Any

from textual.worker import WorkerCancelled, WorkerState

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


async def workers_done(app: Any) -> None:
    """Wait until none of the app's workers runs.

    A screen that starts a read again cancels the one before it (an exclusive worker):
    that is the screen at work, not a fault, so a cancelled worker is waited past. A
    worker that failed still fails the test.
    """
    while True:
        running = [w for w in app.workers if w.state in (WorkerState.PENDING, WorkerState.RUNNING)]
        if not running:
            return
        for worker in running:
            if worker.state is WorkerState.PENDING:
                continue
            try:
                await worker.wait()
            except WorkerCancelled:
                pass
        if all(w.state is WorkerState.PENDING for w in running):
            await asyncio.sleep(0.01)
