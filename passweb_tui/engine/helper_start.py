"""The first thing the row builder's server (see builder.py) loads, before the modules
that take it a second or more to load.

The server and the worker it forks are in the sync's process group, so a ctrl+c at
the terminal reaches them too. The sync takes that ctrl+c (it cancels its run and ends
its worker); in them it would only interrupt whatever they were loading and print a
traceback on the operator's terminal. From here on they ignore SIGINT (the worker,
forked by the server after this, keeps that) and write nothing to the terminal.
Nothing happens when this is imported anywhere else.

What is left: a ctrl+c in the few tens of milliseconds the server's interpreter takes
to start, before it gets here, still interrupts it (it cannot be told to ignore SIGINT
earlier: the sync must keep taking it). The run goes on without its worker then.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys

#: set in the sync's environment before its row builder's server starts: the server
#: and every process it forks then write nothing to the terminal. A worker asked to
#: start by a run that ended meanwhile finds its queues gone and dies; it would print
#: that on the terminal, often the TUI's.
SERVER_ENV = "PASSWEB_TUI_ROW_BUILDER_SERVER"


def quiet_stderr() -> None:
    """Nothing the worker might print (a warning, a dying traceback) may reach the
    terminal it inherited, which may be showing the TUI: what goes wrong in it comes
    back to the sync as a failed page, and the sync logs that."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
    finally:
        os.close(null)
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the process's stderr for good


if (
    os.environ.get(SERVER_ENV) == "1"
    and multiprocessing.parent_process() is None
    and "multiprocessing.forkserver" in sys.modules
):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    quiet_stderr()
