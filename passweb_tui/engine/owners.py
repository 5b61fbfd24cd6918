"""Who holds something in the store (a claim on an order or a customer, the TOTAL/CHANGED
lease, the mark of a run under way): a token naming the process, and whether that
process still runs, where this machine can tell.

A token is `host[~pid namespace]:pid[.incarnation]:random`. A process on this host and
in this PID namespace is looked up by its id, and told apart from a later process that
reuses the id by its start time; anywhere else nothing can be told (None), and the
store's own expiry times decide.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from pathlib import Path


class LiveHere:
    """The tokens that this process holds now. A token of this very process is alive
    exactly while it is in here: the process runs, but what held the token may have
    ended (a push that stopped without releasing its claims, a run's thread)."""

    def __init__(self) -> None:
        self._tokens: set[str] = set()
        self._lock = threading.Lock()

    def add(self, token: str) -> None:
        with self._lock:
            self._tokens.add(token)

    def discard(self, token: str) -> None:
        with self._lock:
            self._tokens.discard(token)

    def __contains__(self, token: object) -> bool:
        with self._lock:
            return token in self._tokens


def incarnation(pid: int) -> str | None:
    """Which process holds `pid` now: its start time (clock ticks since boot) and the
    boot's id, short; None where the system does not tell. A process that reuses the id
    of a dead one (PID 1 in each new container, any id after a reboot) differs here."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        start = stat.rsplit(")", 1)[1].split()[19]  # field 22 of proc(5), after the name
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")
    except (OSError, IndexError):
        return None
    return f"{start}.{boot[:6]}" if start.isdecimal() and boot else None


def _ended(pid: int) -> bool:
    """Whether the process is a zombie: it has ended and waits only to be reaped by its
    parent (a killed sync under a supervisor that has not looked yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # gone (os.kill says so) or no /proc: nothing told here
    fields = stat.rsplit(")", 1)[1].split()
    return bool(fields) and fields[0] in ("Z", "X")


def pid_namespace() -> str | None:
    """The PID namespace this process sees, short (its inode in hex); None where the
    system does not tell."""
    try:
        link = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return None
    digits = link.rpartition("[")[2].rstrip("]")
    return format(int(digits), "x") if digits.isdecimal() else None


def host_id() -> str:
    """Where a process runs, as tokens name it: the host name and, where the system
    tells it, the PID namespace ("shop~effffffc"). Two containers may share a host name
    (host networking) and yet not see each other's processes: a process id is only
    looked up where it means the same process."""
    host, namespace = socket.gethostname(), pid_namespace()
    return f"{host[:32]}~{namespace}" if namespace else host[:40]


def new_token() -> str:
    """A token for something this process takes: within 80 characters (a host of 41 at
    most, a pid of 7 digits, 10 of start ticks: 78)."""
    pid = os.getpid()
    born = incarnation(pid)
    who = f"{pid}.{born}" if born else str(pid)
    return f"{host_id()}:{who}:{uuid.uuid4().hex[:10]}"


def same_host(host: str) -> bool:
    """Whether a token's host is this one: the same host and PID namespace, or, for a
    token written before namespaces were recorded, the same host name."""
    if host == host_id():
        return True
    return "~" not in host and host == socket.gethostname()[:40]


def token_parts(token: str) -> tuple[str, int, str | None] | None:
    """(host, pid, incarnation or None) of a token; None when it is not one. Tokens
    written before incarnations were recorded have none."""
    try:
        host, who, _ = token.rsplit(":", 2)
        pid_text, _, born = who.partition(".")
        return host, int(pid_text), born or None
    except ValueError:
        return None


def token_alive(token: str, live_here: LiveHere) -> bool | None:
    """Whether the process a token names still holds it; None when it cannot be told
    (another host or PID namespace, or not a token). A process that only reuses the
    id is told apart by its start time (see incarnation): the holder is dead then."""
    parts = token_parts(token)
    if parts is None:
        return None
    host, pid, born = parts
    if not same_host(host):
        return None
    if born is not None:
        now = incarnation(pid)
        if now is not None and now != born:
            return False  # gone, its id taken by a later process (or by nobody)
    if pid == os.getpid():
        return token in live_here
    if _ended(pid):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder_seen(token: str, live_here: LiveHere) -> bool | None:
    """token_alive for what waits on an expiry or an age otherwise (a lease, a claim):
    None also for a token without a start time (written by an older version, or on a
    system without /proc), whose process id a later process may have been given."""
    parts = token_parts(token)
    if parts is None or parts[2] is None:
        return None
    return token_alive(token, live_here)


def token_label(token: str) -> str:
    """A token as an operator reads it: "shop, pid 4242" (the token as it is when it is
    not one)."""
    parts = token_parts(token)
    if parts is None:
        return token
    host, pid, _ = parts
    return f"{host.partition('~')[0]}, pid {pid}"
